/*  getpid_cache.c: getpid without a system call, for resv's busy programs.

    libzmq checks the process id each time one of its threads signals
    another and each time a socket looks at its command pipe (to notice
    that the process forked). Since glibc 2.25 every getpid is a system
    call, and on this project's machines a system call is dear (1.1 us
    for a getpid): at 64 reserves in flight the processes made about 14 of
    them per reservation, some 15 us of about 500 us of CPU
    (doc/performance.md).

    Linked into a program (resv-broker and resv-worker; not into libresv,
    whose users' getpid is their own business), this getpid answers from
    a copy taken at start and taken again in the child of every fork
    (pthread_atfork runs the handler there before fork returns). The
    programs fork no other way: resvd's children exec, and libzmq, CZMQ and
    SQLite only read the id.  */

#include <pthread.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static pid_t s_pid;

static void
s_take (void)
{
    __atomic_store_n (&s_pid, (pid_t) syscall (SYS_getpid), __ATOMIC_RELAXED);
}

__attribute__ ((constructor)) static void
s_init (void)
{
    s_take ();
    //  If registering fails, every call asks the kernel, as glibc would.
    if (pthread_atfork (NULL, NULL, s_take))
        __atomic_store_n (&s_pid, -1, __ATOMIC_RELAXED);
}

pid_t
getpid (void)
{
    pid_t pid = __atomic_load_n (&s_pid, __ATOMIC_RELAXED);
    //  0: called before s_init, from another library's constructor.
    return pid > 0? pid: (pid_t) syscall (SYS_getpid);
}
