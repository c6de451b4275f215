/*  resv_init_test.c: what a program's first resv_new does to the process.

    The first client of a process sets up CZMQ for it, which is a one-time
    change to process-wide state. Each test therefore runs its case in a
    forked child whose CZMQ is not yet set up: this file's main touches no
    CZMQ function, so every child starts from a process with none of it.
    No broker is needed: a client connects without waiting for one.
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "resv.h"
#include <czmq.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

//  Where the clients connect: nothing needs to listen there.
#define S_ENDPOINT      "tcp://127.0.0.1:1"
//  Threads that make their first client at once, and processes that try.
#define S_THREADS       16
#define S_ROUNDS        40

//  Runs child in a new process; returns its exit status, or -1 if a
//  signal (an abort) ended it.
static int
s_in_child (int (*child) (void))
{
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0)
        _exit (child ());
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    return WIFEXITED (status)? WEXITSTATUS (status): -1;
}


//  --------------------------------------------------------------------------
//  Several threads make the process's first clients at the same time

static pthread_barrier_t s_start;

static void *
s_first_client (void *arg)
{
    (void) arg;
    pthread_barrier_wait (&s_start);
    resv_t *client = resv_new (S_ENDPOINT);
    bool made = client != NULL;
    resv_destroy (&client);
    return made? (void *) 1: NULL;
}

static int
s_threads_child (void)
{
    pthread_t threads [S_THREADS];
    pthread_barrier_init (&s_start, NULL, S_THREADS);
    for (int i = 0; i < S_THREADS; i++)
        if (pthread_create (&threads [i], NULL, s_first_client, NULL))
            return 2;
    int failed = 0;
    for (int i = 0; i < S_THREADS; i++) {
        void *made;
        pthread_join (threads [i], &made);
        failed += made? 0: 1;
    }
    return failed? 1: 0;
}

static void
test_first_clients_in_threads (void **state)
{
    (void) state;
    //  The race lasts a few microseconds: each round is a fresh process.
    for (int round = 0; round < S_ROUNDS; round++)
        assert_int_equal (s_in_child (s_threads_child), 0);
}


int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_first_clients_in_threads),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
