/*  getpid_cache_test.c: unit tests of the cached getpid (getpid_cache.c):
    the kernel's answer, in every thread, in the children and grandchildren
    of fork, and the one the process's libraries call.  */

#define _GNU_SOURCE             //  dladdr
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t
s_kernel_pid (void)
{
    return (pid_t) syscall (SYS_getpid);
}

//  The getpid this one stands in for: the next in the search order, libc's.
static pid_t
s_libc_pid (void)
{
    pid_t (*libc_getpid) (void) =
        (pid_t (*) (void)) dlsym (RTLD_NEXT, "getpid");
    assert_non_null (libc_getpid);
    assert_ptr_not_equal ((void *) libc_getpid, (void *) getpid);
    return libc_getpid ();
}

static void
test_matches_the_kernel (void **state)
{
    (void) state;
    assert_int_equal (getpid (), s_kernel_pid ());
    //  And what libc's own getpid says.
    assert_int_equal (getpid (), s_libc_pid ());
}

int main (void);

//  Libraries (libzmq) call getpid through the dynamic linker: they must
//  get the one in this program (where main is), not libc's.
static void
test_libraries_get_this_one (void **state)
{
    (void) state;
    void *found = dlsym (RTLD_DEFAULT, "getpid");
    assert_non_null (found);
    Dl_info found_in, main_in;
    assert_int_not_equal (dladdr (found, &found_in), 0);
    assert_int_not_equal (dladdr ((void *) main, &main_in), 0);
    assert_ptr_equal (found_in.dli_fbase, main_in.dli_fbase);
}

static void *
s_thread (void *arg)
{
    pid_t *seen = (pid_t *) arg;
    *seen = getpid ();
    return NULL;
}

static void
test_threads (void **state)
{
    (void) state;
    pid_t seen = 0;
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_thread, &seen), 0);
    assert_int_equal (pthread_join (thread, NULL), 0);
    assert_int_equal (seen, s_kernel_pid ());
}

//  In a child: 0 if its getpid is its own id and not its parent's.
static int
s_child_check (pid_t parent)
{
    pid_t pid = getpid ();
    return pid == s_kernel_pid () && pid != parent && getppid () == parent? 0: 1;
}

//  Waits for child; returns its exit status, or -1 if it did not exit.
static int
s_child_status (pid_t child)
{
    int status;
    if (waitpid (child, &status, 0) != child || !WIFEXITED (status))
        return -1;
    return WEXITSTATUS (status);
}

static void
test_fork (void **state)
{
    (void) state;
    pid_t parent = getpid ();
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0)
        _exit (s_child_check (parent));
    assert_int_equal (s_child_status (child), 0);
    //  The parent's copy is untouched.
    assert_int_equal (getpid (), parent);
    assert_int_equal (getpid (), s_kernel_pid ());
}

//  A child's child: the copy is taken again at every level.
static void
test_fork_twice (void **state)
{
    (void) state;
    pid_t parent = getpid ();
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        if (s_child_check (parent))
            _exit (1);
        pid_t middle = getpid ();
        pid_t grandchild = fork ();
        if (grandchild < 0)
            _exit (2);
        if (grandchild == 0)
            _exit (s_child_check (middle));
        _exit (s_child_status (grandchild) == 0 && getpid () == middle? 0: 3);
    }
    assert_int_equal (s_child_status (child), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_matches_the_kernel),
        cmocka_unit_test (test_libraries_get_this_one),
        cmocka_unit_test (test_threads),
        cmocka_unit_test (test_fork),
        cmocka_unit_test (test_fork_twice),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
