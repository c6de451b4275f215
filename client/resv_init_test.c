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
#include <signal.h>
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


//  --------------------------------------------------------------------------
//  The program's signal handling is its own

static volatile sig_atomic_t s_caught;

static void
s_on_signal (int signal_number)
{
    s_caught = signal_number;
}

//  True if signal_number's handler is handler.
static bool
s_handler_is (int signal_number, void (*handler) (int))
{
    struct sigaction action;
    return sigaction (signal_number, NULL, &action) == 0
        && action.sa_handler == handler;
}

//  A program with its own SIGTERM handler and the default SIGINT makes a
//  client: both stay as they were, and its handler runs.
static int
s_signals_child (void)
{
    signal (SIGTERM, s_on_signal);
    resv_t *client = resv_new (S_ENDPOINT);
    if (!client)
        return 2;
    int rc = 0;
    if (!s_handler_is (SIGTERM, s_on_signal))
        rc = 3;
    else
    if (!s_handler_is (SIGINT, SIG_DFL))
        rc = 4;
    else {
        raise (SIGTERM);
        if (s_caught != SIGTERM)
            rc = 5;
    }
    resv_destroy (&client);
    return rc;
}

static void
test_signal_handlers_kept (void **state)
{
    (void) state;
    assert_int_equal (s_in_child (s_signals_child), 0);
}

//  Ctrl-C still ends a program that waits in a call.
static int
s_interrupt_child (void)
{
    resv_t *client = resv_new (S_ENDPOINT);
    if (!client)
        return 2;
    //  Nothing answers: the call waits until the signal ends the process.
    alarm (1);
    signal (SIGALRM, SIG_DFL);
    kill (getpid (), SIGINT);
    resv_call (client, "ping", "", NULL, 3000, NULL);
    resv_destroy (&client);
    return 0;
}

static void
test_interrupt_ends_program (void **state)
{
    (void) state;
    fflush (NULL);
    pid_t pid = fork ();
    assert_true (pid >= 0);
    if (pid == 0)
        _exit (s_interrupt_child ());
    int status;
    assert_int_equal (waitpid (pid, &status, 0), pid);
    assert_true (WIFSIGNALED (status));
    assert_int_equal (WTERMSIG (status), SIGINT);
}

//  A program that set CZMQ up before its first client keeps CZMQ's
//  handling (zsys_interrupted), as resv's daemons and resv-bench want.
static int
s_czmq_first_child (void)
{
    zsys_init ();
    struct sigaction before;
    sigaction (SIGINT, NULL, &before);
    resv_t *client = resv_new (S_ENDPOINT);
    if (!client)
        return 2;
    int rc = s_handler_is (SIGINT, before.sa_handler)
          && before.sa_handler != SIG_DFL? 0: 3;
    raise (SIGINT);
    if (!rc && !zsys_interrupted)
        rc = 4;
    resv_destroy (&client);
    return rc;
}

static void
test_czmq_handling_when_asked (void **state)
{
    (void) state;
    assert_int_equal (s_in_child (s_czmq_first_child), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_first_clients_in_threads),
        cmocka_unit_test (test_signal_handlers_kept),
        cmocka_unit_test (test_interrupt_ends_program),
        cmocka_unit_test (test_czmq_handling_when_asked),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
