/*  resv_poll_test.c: unit tests of resv_poll, over real ZeroMQ sockets
    (inproc pairs, and a ROUTER that a peer connects to).  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <errno.h>
#include "resv_poll.h"

//  Three connected PAIRs: each test sends on out [i] and waits on in [i].
typedef struct {
    zsock_t *in [3];
    zsock_t *out [3];
} s_pairs_t;

//  Each pair has an endpoint of its own: a closed socket's inproc name may
//  not be free at once.
static int s_endpoints;

static int
s_setup (void **state)
{
    s_pairs_t *self = (s_pairs_t *) calloc (1, sizeof *self);
    assert_non_null (self);
    for (int index = 0; index < 3; index++) {
        //  '@' binds, '>' connects (zsock_new's endpoint prefixes).
        char bind [80], connect [80];
        snprintf (bind, sizeof bind, "@inproc://resv-poll-%d", s_endpoints++);
        snprintf (connect, sizeof connect, ">%s", bind + 1);
        self->in [index] = zsock_new_pair (bind);
        self->out [index] = zsock_new_pair (connect);
        assert_non_null (self->in [index]);
        assert_non_null (self->out [index]);
    }
    *state = self;
    return 0;
}

static int
s_teardown (void **state)
{
    s_pairs_t *self = (s_pairs_t *) *state;
    for (int index = 0; index < 3; index++) {
        zsock_destroy (&self->in [index]);
        zsock_destroy (&self->out [index]);
    }
    free (self);
    return 0;
}

static void
s_items (s_pairs_t *self, zmq_pollitem_t *items)
{
    for (int index = 0; index < 3; index++)
        items [index] = (zmq_pollitem_t) {
            zsock_resolve (self->in [index]), 0, ZMQ_POLLIN, 0
        };
}

//  A message already queued is reported at once, on its socket only.
static void
test_queued (void **state)
{
    s_pairs_t *self = (s_pairs_t *) *state;
    zmq_pollitem_t items [3];
    s_items (self, items);
    zstr_send (self->out [1], "one");
    assert_int_equal (resv_poll (items, 3, -1), 1);
    assert_int_equal (items [0].revents, 0);
    assert_int_equal (items [1].revents, ZMQ_POLLIN);
    assert_int_equal (items [2].revents, 0);
    char *text = zstr_recv (self->in [1]);
    assert_string_equal (text, "one");
    zstr_free (&text);
}

//  With nothing queued, a check (timeout 0) says 0 and a wait lasts its
//  timeout, then says 0.
static void
test_timeout (void **state)
{
    s_pairs_t *self = (s_pairs_t *) *state;
    zmq_pollitem_t items [3];
    s_items (self, items);
    assert_int_equal (resv_poll (items, 3, 0), 0);
    int64_t start = zclock_mono ();
    assert_int_equal (resv_poll (items, 3, 40), 0);
    assert_true (zclock_mono () - start >= 40);
    for (int index = 0; index < 3; index++)
        assert_int_equal (items [index].revents, 0);
}

//  The descriptor fires once for what arrives together: after one of two
//  messages is read, the next wait must still see the other without a
//  new edge, and after both, it must not see any.
static void
test_second_message (void **state)
{
    s_pairs_t *self = (s_pairs_t *) *state;
    zmq_pollitem_t items [3];
    s_items (self, items);
    zstr_send (self->out [2], "first");
    zstr_send (self->out [2], "second");
    assert_int_equal (resv_poll (items, 3, 5000), 1);
    char *text = zstr_recv (self->in [2]);
    zstr_free (&text);
    assert_int_equal (resv_poll (items, 3, 5000), 1);
    assert_int_equal (items [2].revents, ZMQ_POLLIN);
    text = zstr_recv (self->in [2]);
    assert_string_equal (text, "second");
    zstr_free (&text);
    assert_int_equal (resv_poll (items, 3, 20), 0);
}

//  A message sent by another thread while the wait sleeps wakes it.
static void
s_sender (zsock_t *pipe, void *args)
{
    zsock_t *out = (zsock_t *) args;
    zsock_signal (pipe, 0);
    zclock_sleep (50);
    zstr_send (out, "late");
    zsock_wait (pipe);          //  Until the test is done with it
}

static void
test_wakes (void **state)
{
    s_pairs_t *self = (s_pairs_t *) *state;
    zmq_pollitem_t items [3];
    s_items (self, items);
    //  The PAIR's other end now belongs to the sender's thread alone.
    zactor_t *sender = zactor_new (s_sender, self->out [0]);
    assert_non_null (sender);
    assert_int_equal (resv_poll (items, 3, 10000), 1);
    assert_int_equal (items [0].revents, ZMQ_POLLIN);
    char *text = zstr_recv (self->in [0]);
    assert_string_equal (text, "late");
    zstr_free (&text);
    zsock_signal (sender, 0);
    zactor_destroy (&sender);
}

//  A descriptor that wakes for a command that brings no message (here a
//  peer connecting to a ROUTER) sends the wait back to sleep; the peer's
//  message then ends it.
static void
test_command_only (void **state)
{
    (void) state;
    zsock_t *router = zsock_new_router ("@inproc://resv-poll-router");
    assert_non_null (router);
    zmq_pollitem_t item = { zsock_resolve (router), 0, ZMQ_POLLIN, 0 };
    assert_int_equal (resv_poll (&item, 1, 0), 0);
    zsock_t *dealer = zsock_new_dealer (">inproc://resv-poll-router");
    assert_non_null (dealer);
    assert_int_equal (resv_poll (&item, 1, 30), 0);
    assert_int_equal (item.revents, 0);
    zstr_send (dealer, "hello");
    assert_int_equal (resv_poll (&item, 1, 5000), 1);
    zmsg_t *msg = zmsg_recv (router);
    assert_int_equal (zmsg_size (msg), 2);
    zmsg_destroy (&msg);
    zsock_destroy (&dealer);
    zsock_destroy (&router);
}

//  Items resv_poll does not take are refused, not half-served.
static void
test_refused (void **state)
{
    s_pairs_t *self = (s_pairs_t *) *state;
    zmq_pollitem_t items [17];
    memset (items, 0, sizeof items);
    items [0] = (zmq_pollitem_t) { NULL, 0, ZMQ_POLLIN, 0 };
    errno = 0;
    assert_int_equal (resv_poll (items, 1, 0), -1);
    assert_int_equal (errno, EINVAL);
    for (int index = 0; index < 17; index++)
        items [index] = (zmq_pollitem_t) {
            zsock_resolve (self->in [0]), 0, ZMQ_POLLIN, 0
        };
    errno = 0;
    assert_int_equal (resv_poll (items, 17, 0), -1);
    assert_int_equal (errno, EINVAL);
    //  An item that asks whether a send would be taken hears that, and
    //  not of a message waiting; one that asks for neither, nothing.
    zstr_send (self->out [0], "x");
    items [0].events = ZMQ_POLLOUT;
    assert_int_equal (resv_poll (items, 1, 20), 1);
    assert_int_equal (items [0].revents, ZMQ_POLLOUT);
    items [0].events = ZMQ_POLLPRI;
    assert_int_equal (resv_poll (items, 1, 20), 0);
    assert_int_equal (items [0].revents, 0);
    char *text = zstr_recv (self->in [0]);
    zstr_free (&text);
}

//  ZMQ_POLLOUT on a socket that refuses sends until it is connected
//  (ZMQ_IMMEDIATE, as libresv's client): the wait ends when the peer
//  comes, not at its timeout.
static void
test_writable_once_connected (void **state)
{
    (void) state;
    zsock_t *dealer = zsock_new (ZMQ_DEALER);
    assert_non_null (dealer);
    zsock_set_immediate (dealer, 1);
    zsock_set_linger (dealer, 0);
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert_non_null (router);
    int port = zsock_bind (router, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    zsock_unbind (router, "tcp://127.0.0.1:%d", port);
    assert_int_equal (zsock_connect (dealer, "tcp://127.0.0.1:%d", port), 0);
    zmq_pollitem_t item = { zsock_resolve (dealer), 0, ZMQ_POLLOUT, 0 };
    //  Nobody there: no send would be taken.
    assert_int_equal (resv_poll (&item, 1, 150), 0);
    assert_int_equal (zmq_send (zsock_resolve (dealer), "x", 1, ZMQ_DONTWAIT),
                      -1);
    assert_int_equal (zsock_bind (router, "tcp://127.0.0.1:%d", port), port);
    int64_t start = zclock_mono ();
    assert_int_equal (resv_poll (&item, 1, 10000), 1);
    assert_int_equal (item.revents, ZMQ_POLLOUT);
    assert_true (zclock_mono () - start < 9000);
    assert_int_equal (zmq_send (zsock_resolve (dealer), "x", 1, ZMQ_DONTWAIT),
                      1);
    zsock_destroy (&dealer);
    zsock_destroy (&router);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_queued, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_second_message, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_wakes, s_setup, s_teardown),
        cmocka_unit_test (test_command_only),
        cmocka_unit_test_setup_teardown (test_refused, s_setup, s_teardown),
        cmocka_unit_test (test_writable_once_connected),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
