/*  resv_util_test.c: the helpers of resv_util.c that a unit can pin down
    without a broker.  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "resv_util.h"
#include <signal.h>
#include <sys/time.h>

//  Sockets set up while a timer interrupts the process every few
//  microseconds, as a stop can reach a process setting up its own.
#define S_ROUNDS        2000

static void
s_nothing (int signum)
{
    (void) signum;
}

//  Starts (or, with usecs 0, stops) a timer whose SIGALRM interrupts
//  every usecs: its handler does nothing and asks no restart, as CZMQ's
//  handlers of SIGTERM and SIGINT.
static void
s_interrupt_every (long usecs)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = usecs? s_nothing: SIG_IGN;
    assert_int_equal (sigaction (SIGALRM, &action, NULL), 0);
    struct itimerval timer = { { 0, usecs }, { 0, usecs } };
    assert_int_equal (setitimer (ITIMER_REAL, &timer, NULL), 0);
}

//  A signal while a socket connects or binds must not fail it: ZeroMQ
//  fails such a call EINTR with nothing done (without the retry, some
//  hundreds of these rounds failed so).
static void
test_connect_and_bind_through_signals (void **state)
{
    (void) state;
    int failed = 0;
    s_interrupt_every (20);
    for (int round = 0; round < S_ROUNDS; round++) {
        zsock_t *client = zsock_new (ZMQ_DEALER);
        zsock_t *server = zsock_new (ZMQ_ROUTER);
        assert_non_null (client);
        assert_non_null (server);
        zsock_set_linger (client, 0);
        if (resv_sock_connect (client, "tcp://127.0.0.1:1") == -1)
            failed++;
        if (resv_sock_bind (server, "tcp://127.0.0.1:*") == -1)
            failed++;
        zsock_destroy (&client);
        zsock_destroy (&server);
    }
    s_interrupt_every (0);
    assert_int_equal (failed, 0);
}

//  Errors other than EINTR still fail at once.
static void
test_bad_endpoints_fail (void **state)
{
    (void) state;
    zsock_t *sock = zsock_new (ZMQ_DEALER);
    assert_int_equal (resv_sock_connect (sock, "nonsense://x"), -1);
    assert_int_equal (resv_sock_bind (sock, "tcp://256.0.0.1:5"), -1);
    zsock_destroy (&sock);
}

//  The deadline of TIMEOUT@SENT counts from the send, on the sender's
//  clock as estimated: the least (now - SENT) seen, which ages 1 ms a
//  second, and which a SENT lower than the last starts again.
static void
test_clock_estimate (void **state)
{
    (void) state;
    resv_clock_t clock = { 0 };
    //  No SENT: from now.
    assert_int_equal (resv_clock_deadline (&clock, 5000, 300, -1), 5300);
    assert_false (clock.known);
    //  The first sets the estimate: 1000 (now 5000 at sent 4000).
    assert_int_equal (resv_clock_deadline (&clock, 5000, 300, 4000), 5300);
    //  One that waited 200 ms on the way has 100 left.
    assert_int_equal (resv_clock_deadline (&clock, 5300, 300, 4100), 5400);
    //  A quicker one lowers the estimate to 900.
    assert_int_equal (resv_clock_deadline (&clock, 5400, 300, 4500), 5700);
    assert_int_equal (resv_clock_deadline (&clock, 5500, 300, 4500), 5700);
    //  Ten seconds later it has risen by 10 ms.
    assert_int_equal (resv_clock_deadline (&clock, 16000, 300, 15000), 16210);
    //  A timeout beyond the end of time is cut there.
    assert_int_equal (resv_clock_deadline (&clock, 16000, INT64_MAX, 15100),
                      INT64_MAX);
    //  The peer restarted with another clock, its SENT far lower: the
    //  estimate starts again (the old one would make it 99 s past).
    assert_int_equal (resv_clock_deadline (&clock, 17000, 300, 100), 17300);
    assert_int_equal (clock.offset, 16900);
    assert_int_equal (resv_clock_deadline (&clock, 17100, 300, 150), 17350);
    //  The same SENT again is the same clock.
    assert_int_equal (resv_clock_deadline (&clock, 17200, 300, 150), 17350);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_connect_and_bind_through_signals),
        cmocka_unit_test (test_bad_endpoints_fail),
        cmocka_unit_test (test_clock_estimate),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
