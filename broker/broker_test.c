/*  broker_test.c: unit tests of the broker actor, run in-process.

    Each test starts a real broker on free loopback ports and talks to it
    through plain DEALER sockets that speak the wire protocol by hand, one
    playing a client and others playing workers, so every frame of
    doc/protocol.md is checked as sent and as received.
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "broker.h"
#include <jansson.h>
#include <sqlite3.h>
#include <malloc.h>
#if defined (__SANITIZE_ADDRESS__)
//  AddressSanitizer's count of the bytes allocated and not freed: its
//  runtime has it, but GCC ships no header that declares it.
size_t __sanitizer_get_current_allocated_bytes (void);
#endif
#include "resv_proto.h"

typedef struct {
    resv_cfg_t *cfg;
    zactor_t *broker;
    char *frontend;
    char *backend;
    char *events;
    zsock_t *client;
    char dir [64];              //  The broker's data directory
} fixture_t;

//  Starts a broker whose services may each have queue_max requests waiting.
static int
s_setup_queue (void **state, const char *queue_max)
{
    setenv ("RESV_BROKER_FRONTEND", "tcp://127.0.0.1:*", 1);
    setenv ("RESV_BROKER_BACKEND", "tcp://127.0.0.1:*", 1);
    setenv ("RESV_BROKER_EVENTS", "tcp://127.0.0.1:*", 1);
    setenv ("RESV_BROKER_HEARTBEAT", "400", 1);
    setenv ("RESV_BROKER_LIVENESS", "3", 1);
    setenv ("RESV_BROKER_GRACE", "200", 1);
    setenv ("RESV_BROKER_QUEUE_MAX", queue_max, 1);
    //  Unless a set-up said otherwise (s_setup_no_breaker).
    setenv ("RESV_BROKER_BREAKER_FAILURES", "2", 0);
    setenv ("RESV_BROKER_BREAKER_COOLDOWN", "300", 1);
    fixture_t *self = (fixture_t *) zmalloc (sizeof (fixture_t));
    //  Each broker journals into a fresh directory of its own.
    strcpy (self->dir, "/tmp/resv-broker-test.XXXXXX");
    assert_non_null (mkdtemp (self->dir));
    setenv ("RESV_DATA_DIR", self->dir, 1);
    self->cfg = resv_cfg_load (NULL);
    assert_non_null (self->cfg);
    self->broker = broker_new (self->cfg);
    assert_non_null (self->broker);
    zstr_send (self->broker, "ENDPOINTS");
    zstr_recvx (self->broker, &self->frontend, &self->backend, &self->events, NULL);
    self->client = zsock_new_dealer (self->frontend);
    zsock_set_rcvtimeo (self->client, 2000);
    *state = self;
    return 0;
}

static int
s_setup (void **state)
{
    return s_setup_queue (state, "3");
}

static int
s_setup_no_queue (void **state)
{
    return s_setup_queue (state, "0");
}

//  Up to 1000 requests wait per service.
static int
s_setup_long_queue (void **state)
{
    return s_setup_queue (state, "1000");
}

//  Deadlines cut to 300 ms.
static int
s_setup_short_timeout (void **state)
{
    setenv ("RESV_BROKER_MAX_TIMEOUT", "300", 1);
    int rc = s_setup (state);
    unsetenv ("RESV_BROKER_MAX_TIMEOUT");
    return rc;
}

//  Timeouts count toward the breaker only of requests given min_time ms.
static int
s_setup_min_time_of (void **state, const char *min_time)
{
    setenv ("RESV_BROKER_BREAKER_MIN_TIME", min_time, 1);
    int rc = s_setup (state);
    unsetenv ("RESV_BROKER_BREAKER_MIN_TIME");
    return rc;
}

static int
s_setup_min_time (void **state)
{
    return s_setup_min_time_of (state, "150");
}

static int
s_setup_min_time_1s (void **state)
{
    return s_setup_min_time_of (state, "1000");
}

//  Failures do not open the circuit (as good as never).
static int
s_setup_no_breaker (void **state)
{
    setenv ("RESV_BROKER_BREAKER_FAILURES", "1000000", 1);
    int rc = s_setup (state);
    setenv ("RESV_BROKER_BREAKER_FAILURES", "2", 1);
    return rc;
}

static int
s_teardown (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_destroy (&self->client);
    zactor_destroy (&self->broker);
    resv_cfg_destroy (&self->cfg);
    zstr_free (&self->frontend);
    zstr_free (&self->backend);
    zstr_free (&self->events);
    char *command = zsys_sprintf ("rm -rf '%s'", self->dir);
    if (system (command) != 0)
        fprintf (stderr, "broker_test: could not remove %s\n", self->dir);
    zstr_free (&command);
    free (self);
    return 0;
}

//  Sends a client request.
static void
s_request (zsock_t *client, const char *id, const char *service,
           const char *method, const char *timeout, const char *body)
{
    zstr_sendx (client, RESV_PROTO_CLIENT, RESV_CMD_REQUEST, id, service,
                method, timeout, body, NULL);
}

//  Receives a client reply and checks its status; returns its body, and
//  its request id in *id_p (the caller frees both).
static char *
s_recv_reply (zsock_t *client, const char *status, char **id_p)
{
    zmsg_t *msg = zmsg_recv (client);
    assert_non_null (msg);
    assert_int_equal (zmsg_size (msg), RESV_CLIENT_REP_FRAMES);
    char *header = zmsg_popstr (msg);
    char *command = zmsg_popstr (msg);
    *id_p = zmsg_popstr (msg);
    char *code = zmsg_popstr (msg);
    char *body = zmsg_popstr (msg);
    assert_string_equal (header, RESV_PROTO_CLIENT);
    assert_string_equal (command, RESV_CMD_REPLY);
    if (!streq (code, status))
        fprintf (stderr, "reply %s %s: %s\n", *id_p, code, body);
    assert_string_equal (code, status);
    zstr_free (&header);
    zstr_free (&command);
    zstr_free (&code);
    zmsg_destroy (&msg);
    return body;
}

//  Receives a client reply and checks its id and status; returns its body.
static char *
s_expect_reply (zsock_t *client, const char *id, const char *status)
{
    char *rid;
    char *body = s_recv_reply (client, status, &rid);
    assert_string_equal (rid, id);
    zstr_free (&rid);
    return body;
}

static void
s_expect_error (zsock_t *client, const char *id, const char *status,
                const char *reason)
{
    char *body = s_expect_reply (client, id, status);
    assert_non_null (strstr (body, reason));
    zstr_free (&body);
}

//  Nothing arrives on sock within msecs.
static void
s_expect_silence (zsock_t *sock, int msecs)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    assert_null (zpoller_wait (poller, msecs));
    zpoller_destroy (&poller);
}

static zsock_t *
s_worker (fixture_t *self, const char *service, const char *credit)
{
    zsock_t *worker = zsock_new_dealer (self->backend);
    zsock_set_rcvtimeo (worker, 2000);
    zstr_sendx (worker, RESV_PROTO_WORKER, RESV_CMD_READY, service, credit, NULL);
    return worker;
}

//  Receives the next REQ on a worker, skipping heartbeats; returns the
//  ticket and, if method_p is given, the method.
static char *
s_worker_take (zsock_t *worker, char **method_p)
{
    while (true) {
        zmsg_t *msg = zmsg_recv (worker);
        assert_non_null (msg);
        char *header = zmsg_popstr (msg);
        char *command = zmsg_popstr (msg);
        assert_string_equal (header, RESV_PROTO_WORKER);
        bool heartbeat = streq (command, RESV_CMD_HEARTBEAT);
        if (!heartbeat) {
            assert_string_equal (command, RESV_CMD_REQUEST);
            assert_int_equal (zmsg_size (msg), RESV_WORKER_REQ_FRAMES - 2);
        }
        char *ticket = heartbeat? NULL: zmsg_popstr (msg);
        if (method_p && ticket)
            *method_p = zmsg_popstr (msg);
        zstr_free (&header);
        zstr_free (&command);
        zmsg_destroy (&msg);
        if (ticket)
            return ticket;
    }
}

//  Waits up to msecs for a REQ on worker, heartbeating as a live worker
//  does; returns its ticket, or NULL if none came.
static char *
s_worker_take_within (zsock_t *worker, int msecs)
{
    char *ticket = NULL;
    zpoller_t *poller = zpoller_new (worker, NULL);
    int64_t end = zclock_mono () + msecs;
    while (!ticket && zclock_mono () < end) {
        zstr_sendx (worker, RESV_PROTO_WORKER, RESV_CMD_HEARTBEAT, NULL);
        if (!zpoller_wait (poller, 50))
            continue;
        zmsg_t *msg = zmsg_recv (worker);
        zmsg_first (msg);
        zframe_t *command = zmsg_next (msg);
        if (command && zframe_streq (command, RESV_CMD_REQUEST))
            ticket = zframe_strdup (zmsg_next (msg));
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    return ticket;
}

static void
s_worker_reply (zsock_t *worker, char **ticket_p, const char *status,
                const char *body)
{
    zstr_sendx (worker, RESV_PROTO_WORKER, RESV_CMD_REPLY, *ticket_p, status,
                body, NULL);
    zstr_free (ticket_p);
}

//  Waits until stats shows the service with the given number of workers.
static void
s_wait_workers_at (zsock_t *client, const char *service, int count)
{
    char pattern [64];
    snprintf (pattern, sizeof pattern, "\"%s\":{\"workers\":%d,", service, count);
    for (int i = 0; i < 100; i++) {
        s_request (client, "stats", "stats", "", "1000", "");
        char *body = s_expect_reply (client, "stats", "200");
        bool found = strstr (body, pattern) != NULL;
        zstr_free (&body);
        if (found)
            return;
        zclock_sleep (20);
    }
    fail_msg ("service %s never had %d workers", service, count);
}

static void
s_wait_workers (fixture_t *self, const char *service, int count)
{
    s_wait_workers_at (self->client, service, count);
}


static void
test_ping (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_request (self->client, "r1", "ping", "", "1000", "");
    char *body = s_expect_reply (self->client, "r1", "200");
    assert_non_null (strstr (body, "\"pong\":true"));
    zstr_free (&body);
}

//  The broker's HEARTBEAT to a worker carries its clock (SENT, protocol
//  section 3), which an idle worker keeps its estimate fresh with.
static void
test_heartbeat_carries_the_clock (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 1);
    zmsg_t *msg = zmsg_recv (worker);   //  Within one interval, 400 ms
    assert_non_null (msg);
    int64_t now = zclock_mono ();
    assert_int_equal (zmsg_size (msg), 3);
    char *header = zmsg_popstr (msg);
    char *command = zmsg_popstr (msg);
    char *sent = zmsg_popstr (msg);
    assert_string_equal (header, RESV_PROTO_WORKER);
    assert_string_equal (command, RESV_CMD_HEARTBEAT);
    assert_true (strspn (sent, "0123456789") == strlen (sent));
    int64_t at = atoll (sent);
    assert_true (at <= now && at > now - 400);
    zstr_free (&header);
    zstr_free (&command);
    zstr_free (&sent);
    zmsg_destroy (&msg);
    zsock_destroy (&worker);
}

static void
test_round_trip (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "echo", "1000", "{\"a\":1}");
    char *method = NULL;
    char *ticket = s_worker_take (worker, &method);
    assert_string_equal (method, "echo");
    zstr_free (&method);
    s_worker_reply (worker, &ticket, "200", "{\"b\":2}");
    char *body = s_expect_reply (self->client, "r1", "200");
    assert_string_equal (body, "{\"b\":2}");
    zstr_free (&body);
    zsock_destroy (&worker);
}

static void
test_no_worker_503_after_grace (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    int64_t start = zclock_mono ();
    s_request (self->client, "r1", "nobody", "x", "5000", "");
    s_expect_error (self->client, "r1", "503", RESV_REASON_NO_WORKER);
    int64_t elapsed = zclock_mono () - start;
    assert_true (elapsed >= 190 && elapsed < 2000);
}

//  Requests for names no worker serves (typos) do not fill the table of
//  services for good: once they are answered, a real service still finds
//  room when its worker announces itself.
static void
test_unused_services_make_room (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_set_rcvtimeo (self->client, 5000);
    for (int round = 0; round < 2; round++) {
        //  Up to 100 at a time: the service table holds 256.
        for (int i = 0; i < 150; i++) {
            char name [16], id [16];
            snprintf (name, sizeof name, "typo%d", round * 150 + i);
            snprintf (id, sizeof id, "t%d", i);
            s_request (self->client, id, name, "x", "5000", "");
        }
        for (int i = 0; i < 150; i++) {
            char *rid;
            char *body = s_recv_reply (self->client, "503", &rid);
            assert_non_null (strstr (body, RESV_REASON_NO_WORKER));
            zstr_free (&rid);
            zstr_free (&body);
        }
    }
    zsock_t *worker = s_worker (self, "latecomer", "1");
    s_wait_workers (self, "latecomer", 1);
    s_request (self->client, "r1", "latecomer", "x", "2000", "hi");
    char *ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "200", "served");
    char *body = s_expect_reply (self->client, "r1", "200");
    assert_string_equal (body, "served");
    zstr_free (&body);
    zsock_destroy (&worker);
}

static void
test_worker_within_grace_serves (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_request (self->client, "r1", "late", "x", "5000", "");
    zclock_sleep (50);
    zsock_t *worker = s_worker (self, "late", "1");
    char *ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "200", "{}");
    char *body = s_expect_reply (self->client, "r1", "200");
    zstr_free (&body);
    zsock_destroy (&worker);
}

static void
test_credit_limits_dispatch (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "2");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "a", "echo", "", "3000", "1");
    s_request (self->client, "b", "echo", "", "3000", "2");
    s_request (self->client, "c", "echo", "", "3000", "3");
    char *first = s_worker_take (worker, NULL);
    char *second = s_worker_take (worker, NULL);
    //  The third waits in the queue until the worker has credit again.
    s_expect_silence (worker, 150);
    s_worker_reply (worker, &first, "200", "x");
    char *third = s_worker_take (worker, NULL);
    s_worker_reply (worker, &second, "200", "y");
    s_worker_reply (worker, &third, "200", "z");
    for (int i = 0; i < 3; i++) {
        zmsg_t *msg = zmsg_recv (self->client);
        assert_non_null (msg);
        zmsg_destroy (&msg);
    }
    zsock_destroy (&worker);
}

static void
test_least_loaded_worker_first (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *one = s_worker (self, "echo", "8");
    zsock_t *two = s_worker (self, "echo", "8");
    s_wait_workers (self, "echo", 2);
    s_request (self->client, "a", "echo", "", "3000", "");
    s_request (self->client, "b", "echo", "", "3000", "");
    //  Each worker gets one: the second request goes to the idle worker.
    char *t1 = s_worker_take (one, NULL);
    char *t2 = s_worker_take (two, NULL);
    s_worker_reply (one, &t1, "200", "");
    s_worker_reply (two, &t2, "200", "");
    //  Both requests are answered, 200 with the empty body, once each, in
    //  either order.
    bool got_a = false, got_b = false;
    for (int i = 0; i < 2; i++) {
        char *rid;
        char *body = s_recv_reply (self->client, "200", &rid);
        assert_string_equal (body, "");
        if (streq (rid, "a") && !got_a)
            got_a = true;
        else
        if (streq (rid, "b") && !got_b)
            got_b = true;
        else
            fail_msg ("unexpected or repeated reply %s", rid);
        zstr_free (&rid);
        zstr_free (&body);
    }
    zsock_destroy (&one);
    zsock_destroy (&two);
}

static void
test_deadline_504_and_late_reply_dropped (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "slow", "1");
    s_wait_workers (self, "slow", 1);
    int64_t start = zclock_mono ();
    s_request (self->client, "r1", "slow", "", "200", "");
    char *ticket = s_worker_take (worker, NULL);
    s_expect_error (self->client, "r1", "504", RESV_REASON_DEADLINE);
    assert_true (zclock_mono () - start >= 190);
    s_worker_reply (worker, &ticket, "200", "late");
    s_expect_silence (self->client, 150);
    zsock_destroy (&worker);
}

//  Nothing but heartbeats reaches worker for msecs.
static void
s_expect_no_request (zsock_t *worker, int msecs)
{
    char *ticket = s_worker_take_within (worker, msecs);
    if (ticket)
        fail_msg ("the worker was given %s", ticket);
}

//  A worker whose request passed its deadline is still working on it:
//  the client has its 504, but the worker keeps the request's credit
//  until it answers. It was given its next requests at once, behind the
//  slow one, where each passed its deadline too, while another worker of
//  the service stood idle.
static void
test_deadline_keeps_the_worker_busy (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *slow = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "", "200", "");
    char *late = s_worker_take_within (slow, 1000);
    assert_non_null (late);
    zsock_t *quick = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 2);
    s_expect_error (self->client, "r1", "504", RESV_REASON_DEADLINE);
    for (int i = 2; i <= 4; i++) {
        char id [8];
        snprintf (id, sizeof id, "r%d", i);
        s_request (self->client, id, "echo", "", "1000", "");
        char *ticket = s_worker_take_within (quick, 500);
        assert_non_null (ticket);
        s_worker_reply (quick, &ticket, "200", "quick");
        char *body = s_expect_reply (self->client, id, "200");
        zstr_free (&body);
    }
    s_expect_no_request (slow, 100);
    //  Its late answer frees the credit: the next request may go to it.
    s_worker_reply (slow, &late, "200", "late");
    s_expect_silence (self->client, 100);
    s_request (self->client, "r5", "echo", "", "1000", "");
    s_request (self->client, "r6", "echo", "", "1000", "");
    char *first = s_worker_take_within (slow, 500);
    char *second = s_worker_take_within (quick, 500);
    assert_non_null (first);
    assert_non_null (second);
    s_worker_reply (slow, &first, "200", "");
    s_worker_reply (quick, &second, "200", "");
    char *rid;
    for (int i = 0; i < 2; i++) {
        char *body = s_recv_reply (self->client, "200", &rid);
        zstr_free (&rid);
        zstr_free (&body);
    }
    zsock_destroy (&slow);
    zsock_destroy (&quick);
}

//  A late reply that never comes is waited for broker/max_timeout past
//  the deadline (300 ms here), then the worker's credit is free again.
static void
test_late_reply_waited_for_a_while (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "", "100", "");
    char *lost = s_worker_take_within (worker, 500);
    assert_non_null (lost);
    zstr_free (&lost);
    s_expect_error (self->client, "r1", "504", RESV_REASON_DEADLINE);
    //  Its credit is held: r2 waits in the queue, to its deadline, which
    //  comes well before r1's credit is free (a deadline of 300 ms put
    //  the two within a few ms of each other, and r2 went to the worker
    //  when the machine was busy). No worker had it: not_started, which
    //  tells a saga that it need not undo it.
    s_request (self->client, "r2", "echo", "", "150", "");
    s_expect_no_request (worker, 100);
    s_expect_error (self->client, "r2", "504", RESV_REASON_NOT_STARTED);
    //  r1's deadline and 300 ms, and a heartbeat round (400 ms), later.
    s_expect_no_request (worker, 700);
    s_request (self->client, "r3", "echo", "", "300", "");
    char *ticket = s_worker_take_within (worker, 200);
    assert_non_null (ticket);
    s_worker_reply (worker, &ticket, "200", "");
    char *body = s_expect_reply (self->client, "r3", "200");
    zstr_free (&body);
    zsock_destroy (&worker);
}

static void
test_queue_full_429 (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "busy", "1");
    s_wait_workers (self, "busy", 1);
    //  One in the worker's hands, three in the queue (queue_max), the
    //  fifth is refused at once.
    s_request (self->client, "r0", "busy", "", "3000", "");
    char *ticket = s_worker_take (worker, NULL);
    for (int i = 1; i <= 3; i++) {
        char id [8];
        snprintf (id, sizeof id, "r%d", i);
        s_request (self->client, id, "busy", "", "3000", "");
    }
    s_request (self->client, "r4", "busy", "", "3000", "");
    s_expect_error (self->client, "r4", "429", RESV_REASON_QUEUE_FULL);
    s_worker_reply (worker, &ticket, "200", "");
    char *body = s_expect_reply (self->client, "r0", "200");
    zstr_free (&body);
    zsock_destroy (&worker);
}

//  broker/queue_max 0: no request may wait, but one that finds a worker
//  with credit does not wait, and goes. Every request was refused 429.
static void
test_queue_max_zero_still_routes (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "busy", "1");
    s_wait_workers (self, "busy", 1);
    s_request (self->client, "r0", "busy", "", "3000", "");
    char *ticket = s_worker_take (worker, NULL);
    s_request (self->client, "r1", "busy", "", "3000", "");
    s_expect_error (self->client, "r1", "429", RESV_REASON_QUEUE_FULL);
    s_worker_reply (worker, &ticket, "200", "done");
    char *body = s_expect_reply (self->client, "r0", "200");
    assert_string_equal (body, "done");
    zstr_free (&body);
    zsock_destroy (&worker);
}

static void
test_breaker_opens_and_closes (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "flaky", "1");
    s_wait_workers (self, "flaky", 1);
    //  Two 500s in a row open the circuit (breaker_failures = 2).
    for (int i = 0; i < 2; i++) {
        char id [8];
        snprintf (id, sizeof id, "f%d", i);
        s_request (self->client, id, "flaky", "", "1000", "");
        char *ticket = s_worker_take (worker, NULL);
        s_worker_reply (worker, &ticket, "500", "{}");
        char *body = s_expect_reply (self->client, id, "500");
        zstr_free (&body);
    }
    s_request (self->client, "open", "flaky", "", "1000", "");
    s_expect_error (self->client, "open", "503", RESV_REASON_CIRCUIT_OPEN);
    s_expect_silence (worker, 50);
    //  After the cool-down one probe passes; its success closes the circuit.
    zclock_sleep (350);
    s_request (self->client, "probe", "flaky", "", "1000", "");
    char *ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "200", "{}");
    char *body = s_expect_reply (self->client, "probe", "200");
    zstr_free (&body);
    s_request (self->client, "after", "flaky", "", "1000", "");
    ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "200", "{}");
    body = s_expect_reply (self->client, "after", "200");
    zstr_free (&body);
    zsock_destroy (&worker);
}

//  Deadlines that pass before any worker took the request (here: the
//  service has none, and the deadline is shorter than the grace) say
//  nothing of how the service's workers fare, and do not open its
//  circuit: they did, and the worker that came back was refused 503
//  circuit_open for the cool-down.
static void
test_deadline_without_worker_keeps_circuit_closed (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    for (int i = 0; i < 3; i++) {
        char id [8];
        snprintf (id, sizeof id, "s%d", i);
        s_request (self->client, id, "absent", "", "100", "");
        s_expect_error (self->client, id, "504", RESV_REASON_NOT_STARTED);
    }
    zsock_t *worker = s_worker (self, "absent", "1");
    s_wait_workers (self, "absent", 1);
    s_request (self->client, "back", "absent", "", "1000", "");
    char *ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "200", "served");
    char *body = s_expect_reply (self->client, "back", "200");
    assert_string_equal (body, "served");
    zstr_free (&body);
    zsock_destroy (&worker);
}

//  Sends request ID with a deadline of TIMEOUT ms, lets the worker take
//  it and never answer, and checks the client gets 504.
static void
s_time_out (fixture_t *self, zsock_t *worker, const char *id,
            const char *timeout)
{
    s_request (self->client, id, "slow", "", timeout, "");
    char *ticket = s_worker_take_within (worker, 500);
    assert_non_null (ticket);
    zstr_free (&ticket);
    s_expect_error (self->client, id, "504", RESV_REASON_DEADLINE);
}

//  A deadline that passes at a worker, of a client that asked for less
//  than broker/breaker_min_time, says more of the client than of the
//  service: three of them in a row (one client asking for 50 ms of a
//  loaded service) opened the circuit for every client. A client that
//  asked for the minimum still counts.
static void
test_short_deadlines_keep_circuit_closed (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "slow", "10");
    s_wait_workers (self, "slow", 1);
    for (int i = 0; i < 3; i++) {
        char id [8];
        snprintf (id, sizeof id, "s%d", i);
        s_time_out (self, worker, id, "50");
    }
    s_request (self->client, "fine", "slow", "", "1000", "");
    char *ticket = s_worker_take_within (worker, 500);
    assert_non_null (ticket);
    s_worker_reply (worker, &ticket, "200", "served");
    char *body = s_expect_reply (self->client, "fine", "200");
    assert_string_equal (body, "served");
    zstr_free (&body);
    //  Two that gave it 200 ms do open it (breaker_failures = 2).
    s_time_out (self, worker, "l0", "200");
    s_time_out (self, worker, "l1", "200");
    s_request (self->client, "open", "slow", "", "1000", "");
    s_expect_error (self->client, "open", "503", RESV_REASON_CIRCUIT_OPEN);
    zsock_destroy (&worker);
}

//  A service that hangs once its queue is long: each request a client
//  gave 1.5 s waits 1 s for the worker's credit, and the worker, given it
//  with 0.5 s left, never answers. That is less than breaker_min_time (1
//  s here) at the worker, and the circuit never opened: every client got
//  its 504 after waiting its whole deadline, for as long as the service
//  hung. The client asked for the minimum, so each such timeout counts.
static void
test_queued_then_hung_opens_circuit (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "hung", "2");
    s_wait_workers (self, "hung", 1);
    s_request (self->client, "b0", "hung", "", "5000", "");
    s_request (self->client, "b1", "hung", "", "5000", "");
    char *busy0 = s_worker_take (worker, NULL);
    char *busy1 = s_worker_take (worker, NULL);
    s_request (self->client, "q0", "hung", "", "1500", "");
    s_request (self->client, "q1", "hung", "", "1500", "");
    s_expect_no_request (worker, 1000);         //  Heartbeating meanwhile
    //  The two it holds are answered, and the queued two go to it.
    s_worker_reply (worker, &busy0, "200", "");
    s_worker_reply (worker, &busy1, "200", "");
    char *body = s_expect_reply (self->client, "b0", "200");
    zstr_free (&body);
    body = s_expect_reply (self->client, "b1", "200");
    zstr_free (&body);
    for (int i = 0; i < 2; i++) {
        char *ticket = s_worker_take_within (worker, 400);
        assert_non_null (ticket);
        zstr_free (&ticket);
    }
    s_expect_error (self->client, "q0", "504", RESV_REASON_DEADLINE);
    s_expect_error (self->client, "q1", "504", RESV_REASON_DEADLINE);
    //  Two failures: open (breaker_failures = 2).
    s_request (self->client, "open", "hung", "", "1000", "");
    s_expect_error (self->client, "open", "503", RESV_REASON_CIRCUIT_OPEN);
    zsock_destroy (&worker);
}

//  A half-open circuit's probe whose deadline passes below the minimum
//  neither closes nor opens it: the next request is the probe, and not
//  refused as though one were still out.
static void
test_short_probe_lets_the_next_probe (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "flaky", "4");
    s_wait_workers (self, "flaky", 1);
    for (int i = 0; i < 2; i++) {
        s_request (self->client, "f", "flaky", "", "1000", "");
        char *ticket = s_worker_take (worker, NULL);
        s_worker_reply (worker, &ticket, "500", "{}");
        char *body = s_expect_reply (self->client, "f", "500");
        zstr_free (&body);
    }
    s_request (self->client, "open", "flaky", "", "1000", "");
    s_expect_error (self->client, "open", "503", RESV_REASON_CIRCUIT_OPEN);
    zclock_sleep (350);
    s_request (self->client, "short", "flaky", "", "50", "");
    char *held = s_worker_take_within (worker, 500);
    assert_non_null (held);
    zstr_free (&held);
    s_expect_error (self->client, "short", "504", RESV_REASON_DEADLINE);
    s_request (self->client, "probe", "flaky", "", "1000", "");
    char *ticket = s_worker_take_within (worker, 500);
    assert_non_null (ticket);
    s_worker_reply (worker, &ticket, "200", "");
    char *body = s_expect_reply (self->client, "probe", "200");
    zstr_free (&body);
    //  Closed: two at once both pass.
    s_request (self->client, "c0", "flaky", "", "1000", "");
    s_request (self->client, "c1", "flaky", "", "1000", "");
    for (int i = 0; i < 2; i++) {
        ticket = s_worker_take_within (worker, 500);
        assert_non_null (ticket);
        s_worker_reply (worker, &ticket, "200", "");
    }
    body = s_expect_reply (self->client, "c0", "200");
    zstr_free (&body);
    body = s_expect_reply (self->client, "c1", "200");
    zstr_free (&body);
    zsock_destroy (&worker);
}

static void
test_failed_probe_reopens (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "flaky", "1");
    s_wait_workers (self, "flaky", 1);
    for (int i = 0; i < 2; i++) {
        s_request (self->client, "f", "flaky", "", "1000", "");
        char *ticket = s_worker_take (worker, NULL);
        s_worker_reply (worker, &ticket, "500", "{}");
        char *body = s_expect_reply (self->client, "f", "500");
        zstr_free (&body);
    }
    zclock_sleep (350);
    s_request (self->client, "probe", "flaky", "", "1000", "");
    char *ticket = s_worker_take (worker, NULL);
    //  While the probe is out, others are still refused.
    s_request (self->client, "other", "flaky", "", "1000", "");
    s_expect_error (self->client, "other", "503", RESV_REASON_CIRCUIT_OPEN);
    s_worker_reply (worker, &ticket, "500", "{}");
    char *body = s_expect_reply (self->client, "probe", "500");
    zstr_free (&body);
    s_request (self->client, "again", "flaky", "", "1000", "");
    s_expect_error (self->client, "again", "503", RESV_REASON_CIRCUIT_OPEN);
    zsock_destroy (&worker);
}

static void
test_malformed_requests_400 (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  Bad timeout, bad service name, bad method, too few frames.
    s_request (self->client, "t1", "echo", "", "soon", "");
    s_expect_error (self->client, "t1", "400", RESV_REASON_MALFORMED);
    s_request (self->client, "t2", "Echo!", "", "1000", "");
    s_expect_error (self->client, "t2", "400", RESV_REASON_MALFORMED);
    s_request (self->client, "t3", "echo", "a b", "1000", "");
    s_expect_error (self->client, "t3", "400", RESV_REASON_MALFORMED);
    s_request (self->client, "t4", "echo", "", "0", "");
    s_expect_error (self->client, "t4", "400", RESV_REASON_MALFORMED);
    zstr_sendx (self->client, RESV_PROTO_CLIENT, RESV_CMD_REQUEST, "t5", "echo", NULL);
    s_expect_error (self->client, "t5", "400", RESV_REASON_MALFORMED);
    zstr_sendx (self->client, "MDPC01", RESV_CMD_REQUEST, "t6", "echo", "", "1", "", NULL);
    s_expect_error (self->client, "t6", "400", RESV_REASON_MALFORMED);
    //  Garbage naming no request is dropped, and the broker still serves.
    zstr_send (self->client, "garbage");
    zsock_send (self->client, "b", "", 0);
    for (int i = 0; i < 300; i++)
        zstr_sendm (self->client, "x");
    zstr_send (self->client, "x");
    s_expect_silence (self->client, 100);
    test_ping (state);
}

//  Any deadline is taken and cut to broker/max_timeout (60 s here), however
//  many digits it has: libresv sends up to ten (an int of milliseconds).
static void
test_long_timeout_cut (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    const char *timeouts [] = {
        "1000000000", "2147483647", "9223372036854775807",
        "99999999999999999999999999", NULL
    };
    for (const char **timeout = timeouts; *timeout; timeout++) {
        s_request (self->client, "long", "echo", "echo", *timeout, "{}");
        zmsg_t *msg = zmsg_recv (worker);
        assert_non_null (msg);
        assert_int_equal (zmsg_size (msg), RESV_WORKER_REQ_FRAMES);
        char *header = zmsg_popstr (msg);
        char *command = zmsg_popstr (msg);
        char *ticket = zmsg_popstr (msg);
        char *method = zmsg_popstr (msg);
        char *left = zmsg_popstr (msg);
        assert_string_equal (command, RESV_CMD_REQUEST);
        assert_true (atoll (left) >= 1 && atoll (left) <= 60000);
        //  TIMEOUT@SENT: the broker's clock when it sent it, ours here.
        char *sent = strchr (left, '@');
        assert_non_null (sent);
        assert_true (llabs (atoll (sent + 1) - zclock_mono ()) < 1000);
        s_worker_reply (worker, &ticket, "200", "{}");
        char *body = s_expect_reply (self->client, "long", "200");
        zstr_free (&body);
        zstr_free (&header);
        zstr_free (&command);
        zstr_free (&method);
        zstr_free (&left);
        zmsg_destroy (&msg);
    }
    //  The broker's own services take them too.
    s_request (self->client, "longping", "ping", "", "1000000000", "");
    char *body = s_expect_reply (self->client, "longping", "200");
    zstr_free (&body);
    //  Still refused: no digits, other characters, zero.
    s_request (self->client, "t1", "echo", "", "", "");
    s_expect_error (self->client, "t1", "400", RESV_REASON_MALFORMED);
    s_request (self->client, "t2", "echo", "", "-5", "");
    s_expect_error (self->client, "t2", "400", RESV_REASON_MALFORMED);
    s_request (self->client, "t3", "echo", "", "000", "");
    s_expect_error (self->client, "t3", "400", RESV_REASON_MALFORMED);
    zsock_destroy (&worker);
}

static void
test_garbage_from_workers_ignored (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *rogue = zsock_new_dealer (self->backend);
    zsock_set_rcvtimeo (rogue, 1000);
    //  Not ready, so every command but READY gets BYE.
    zstr_sendx (rogue, RESV_PROTO_WORKER, RESV_CMD_HEARTBEAT, NULL);
    char *header, *command;
    zstr_recvx (rogue, &header, &command, NULL);
    assert_string_equal (command, RESV_CMD_DISCONNECT);
    zstr_free (&header);
    zstr_free (&command);
    zstr_sendx (rogue, RESV_PROTO_WORKER, RESV_CMD_READY, "BAD NAME", "1", NULL);
    zstr_recvx (rogue, &header, &command, NULL);
    assert_string_equal (command, RESV_CMD_DISCONNECT);
    zstr_free (&header);
    zstr_free (&command);
    zstr_sendx (rogue, RESV_PROTO_WORKER, RESV_CMD_READY, "ping", "1", NULL);
    zstr_recvx (rogue, &header, &command, NULL);
    assert_string_equal (command, RESV_CMD_DISCONNECT);
    zstr_free (&header);
    zstr_free (&command);
    zstr_sendx (rogue, "junk", NULL);
    zstr_sendx (rogue, RESV_PROTO_WORKER, RESV_CMD_REPLY, "no-such-ticket", "200", "", NULL);
    zsock_destroy (&rogue);
    test_ping (state);
}

//  A plain TCP connection to a loopback endpoint "tcp://127.0.0.1:PORT".
static int
s_tcp_connect (const char *endpoint)
{
    const char *colon = strrchr (endpoint, ':');
    assert_non_null (colon);
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (fd >= 0);
    struct sockaddr_in addr = { .sin_family = AF_INET };
    addr.sin_port = htons ((uint16_t) atoi (colon + 1));
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (connect (fd, (struct sockaddr *) &addr, sizeof addr), 0);
    return fd;
}

//  Writes random bytes straight into a TCP port, as a confused peer would.
static void
s_tcp_garbage (const char *endpoint, size_t size)
{
    int fd = s_tcp_connect (endpoint);
    byte *junk = (byte *) malloc (size);
    for (size_t i = 0; i < size; i++)
        junk [i] = (byte) randof (256);
    //  The broker may drop the connection half-way: that is its right.
    ssize_t rc = send (fd, junk, size, MSG_NOSIGNAL);
    (void) rc;
    free (junk);
    close (fd);
}

static void
test_garbage_on_both_ports (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    s_tcp_garbage (self->frontend, 5000);
    s_tcp_garbage (self->backend, 5000);
    //  Empty frames, alone and many.
    zsock_t *front = zsock_new_dealer (self->frontend);
    zsock_t *back = zsock_new_dealer (self->backend);
    zstr_send (front, "");
    zstr_send (back, "");
    for (int i = 0; i < 500; i++) {
        zstr_sendm (front, "");
        zstr_sendm (back, "");
    }
    zstr_send (front, "");
    zstr_send (back, "");
    //  Forged headers: each side's protocol on the other's port.
    zstr_sendx (front, RESV_PROTO_WORKER, RESV_CMD_READY, "echo", "5", NULL);
    zstr_sendx (back, RESV_PROTO_CLIENT, RESV_CMD_REQUEST, "x", "echo", "", "100", "", NULL);
    zstr_sendx (back, RESV_PROTO_WORKER, RESV_CMD_REPLY, "forged", "200", "", NULL);
    //  A frame of 2 MB, over max_message, is read and dropped (it names
    //  no request to answer); one over RESV_FRAME_MAX (and four times
    //  max_message) makes ZeroMQ drop the peer unread.
    size_t sizes [] = { 2 * 1024 * 1024, (size_t) RESV_FRAME_MAX + 1 };
    for (size_t index = 0; index < 2; index++) {
        zframe_t *frame = zframe_new (NULL, sizes [index]);
        memset (zframe_data (frame), 'x', sizes [index]);
        zframe_t *copy = zframe_dup (frame);
        zframe_send (&frame, front, 0);
        zframe_send (&copy, back, 0);
    }
    zclock_sleep (100);
    zsock_destroy (&front);
    zsock_destroy (&back);
    //  A real request still goes through, and the worker kept its place.
    s_request (self->client, "after", "echo", "", "2000", "ok");
    char *ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "200", "fine");
    char *body = s_expect_reply (self->client, "after", "200");
    assert_string_equal (body, "fine");
    zstr_free (&body);
    zsock_destroy (&worker);
    test_ping (state);
}

//  A reply with a status out of range fails its request at once, 500,
//  rather than leaving the client to its deadline.
static void
test_bad_status_reply_500 (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    //  resv answers 2xx, 4xx or 5xx: 1xx and 3xx are out of range too.
    const char *statuses [] = { "600", "100", "302", "99", NULL };
    for (int i = 0; statuses [i]; i++) {
        s_request (self->client, "r1", "echo", "", "10000", "x");
        char *ticket = s_worker_take (worker, NULL);
        s_worker_reply (worker, &ticket, statuses [i], "odd");
        s_expect_error (self->client, "r1", "500", RESV_REASON_INTERNAL);
        //  The worker still serves (and its success keeps the circuit
        //  closed for the next round).
        s_request (self->client, "r2", "echo", "", "2000", "y");
        ticket = s_worker_take (worker, NULL);
        s_worker_reply (worker, &ticket, "200", "fine");
        char *body = s_expect_reply (self->client, "r2", "200");
        assert_string_equal (body, "fine");
        zstr_free (&body);
    }
    zsock_destroy (&worker);
}

//  The client asks method of echo as id, retried while in flight when
//  retried is true; the worker answers it reply after sleeping ms.
static void
s_serve (fixture_t *self, zsock_t *worker, const char *id, const char *method,
         const char *timeout, bool retried, int ms, const char *reply)
{
    s_request (self->client, id, "echo", method, timeout, "");
    char *taken = NULL;
    char *ticket = s_worker_take (worker, &taken);
    assert_string_equal (taken, method);
    zstr_free (&taken);
    if (retried) {
        s_request (self->client, id, "echo", method, timeout, "");
        s_expect_silence (self->client, 100);   //  The retry reaches the broker
    }
    zclock_sleep (ms);
    s_worker_reply (worker, &ticket, "200", reply);
    char *body = s_expect_reply (self->client, id, "200");
    assert_string_equal (body, reply);
    zstr_free (&body);
}

//  A late retry of id, then a new request: the worker gets only the new
//  one, so the broker dropped the retry.
static void
s_expect_dropped (fixture_t *self, zsock_t *worker, const char *id,
                  const char *method, const char *next_id)
{
    s_request (self->client, id, "echo", method, "10000", "");
    s_serve (self, worker, next_id, "next", "10000", false, 0, "next");
    s_expect_silence (self->client, 100);
}

//  A retry that crosses the answer of its request on the wire is dropped:
//  the client retried while the request was in flight, or the request took
//  long enough for a first retry to be on its way, so the broker remembers
//  the answered ticket, until the request's deadline and a margin
//  (ANSWERED_MARGIN, 1 s) have passed, at a heartbeat (400 ms here). A
//  fast request that was never retried is not remembered: its id sent
//  again is a new request.
static void
test_retry_after_answer_dropped (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    s_serve (self, worker, "r1", "first", "10000", true, 0, "once");
    s_expect_dropped (self, worker, "r1", "first", "n1");
    //  Fast and never retried: the same id again runs again.
    s_serve (self, worker, "r2", "second", "10000", false, 0, "two");
    s_serve (self, worker, "r2", "second", "10000", false, 0, "two again");
    //  Never retried but slow (ANSWERED_AGE, 500 ms): libresv's first
    //  retry, at 1 s, could cross its answer, so it is remembered too.
    s_serve (self, worker, "r3", "third", "10000", false, 600, "three");
    s_expect_dropped (self, worker, "r3", "third", "n3");
    //  Remembered until the deadline and a margin, then forgotten.
    s_serve (self, worker, "r4", "fourth", "500", true, 0, "four");
    //  A fresh worker after the wait: this one sends no heartbeats.
    zsock_destroy (&worker);
    zclock_sleep (500 + 1000 + 400 + 100);
    worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    s_serve (self, worker, "r4", "fourth", "500", false, 0, "four again");
    zsock_destroy (&worker);
}

//  A client DEALER with the routing id a libresv client keeps across
//  reconnects.
static zsock_t *
s_client_named (fixture_t *self, const char *identity)
{
    zsock_t *client = zsock_new (ZMQ_DEALER);
    zsock_set_identity (client, identity);
    zsock_set_linger (client, 0);
    zsock_set_rcvtimeo (client, 2000);
    assert_int_equal (zsock_connect (client, "%s", self->frontend), 0);
    return client;
}

//  A retried request whose reply cannot leave (its client's connection is
//  gone) is not remembered: the retry that comes over the next connection
//  runs it again, and gets the answer.
static void
test_retry_after_lost_reply_runs_again (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    zsock_t *client = s_client_named (self, "lost-reply");
    s_request (client, "r1", "echo", "first", "10000", "");
    char *ticket = s_worker_take (worker, NULL);
    s_request (client, "r1", "echo", "first", "10000", "");
    zclock_sleep (100);         //  The retry reaches the broker
    zsock_destroy (&client);
    zclock_sleep (500);         //  The broker sees the connection go
    s_worker_reply (worker, &ticket, "200", "lost");
    zclock_sleep (100);
    //  Retried as libresv does, each 300 ms, until the worker has it: the
    //  first may reach the broker before it let go of the old connection.
    client = s_client_named (self, "lost-reply");
    zsock_set_rcvtimeo (worker, 300);
    ticket = NULL;
    for (int round = 0; round < 10 && !ticket; round++) {
        s_request (client, "r1", "echo", "first", "10000", "");
        zmsg_t *msg;
        while (!ticket && (msg = zmsg_recv (worker))) {
            char *header = zmsg_popstr (msg);
            char *command = zmsg_popstr (msg);
            if (streq (command, RESV_CMD_REQUEST)) {
                ticket = zmsg_popstr (msg);
                char *method = zmsg_popstr (msg);
                assert_string_equal (method, "first");
                zstr_free (&method);
            }
            zstr_free (&header);
            zstr_free (&command);
            zmsg_destroy (&msg);
        }
    }
    assert_non_null (ticket);
    s_worker_reply (worker, &ticket, "200", "found");
    char *body = s_expect_reply (client, "r1", "200");
    assert_string_equal (body, "found");
    zstr_free (&body);
    zsock_destroy (&client);
    zsock_destroy (&worker);
}

//  A worker cannot answer a request it was not given.
static void
test_reply_to_other_workers_ticket_dropped (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *honest = s_worker (self, "echo", "1");
    zsock_t *thief = s_worker (self, "other", "1");
    s_wait_workers (self, "other", 1);
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "", "2000", "");
    char *ticket = s_worker_take (honest, NULL);
    char *stolen = strdup (ticket);
    s_worker_reply (thief, &stolen, "200", "forged");
    s_expect_silence (self->client, 100);
    s_worker_reply (honest, &ticket, "200", "real");
    char *body = s_expect_reply (self->client, "r1", "200");
    assert_string_equal (body, "real");
    zstr_free (&body);
    zsock_destroy (&honest);
    zsock_destroy (&thief);
}

static void
test_events_publish_read_and_fan_out (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *sub = zsock_new_sub (self->events, "reservation.");
    zsock_set_rcvtimeo (sub, 2000);
    zclock_sleep (100);         //  Let the subscription reach the broker
    s_request (self->client, "p1", "events", "publish", "2000",
               "{\"events\":[{\"id\":\"e1\",\"type\":\"reservation.requested\","
               "\"reservation\":\"r1\",\"correlation_id\":\"r1\",\"data\":{\"units\":2}},"
               "{\"id\":\"e2\",\"type\":\"resource.registered\",\"resource\":\"x\"}]}");
    char *body = s_expect_reply (self->client, "p1", "200");
    assert_non_null (strstr (body, "\"seqs\":[1,2]"));
    zstr_free (&body);
    //  The subscriber sees only its prefix: topic; seq and the seqs of the
    //  family's and the type's event before (none); event.
    char *topic, *seqs, *event;
    assert_int_equal (zstr_recvx (sub, &topic, &seqs, &event, NULL), 3);
    assert_string_equal (topic, "reservation.requested");
    assert_string_equal (seqs, "1 0 0");
    assert_non_null (strstr (event, "\"seq\":1"));
    assert_non_null (strstr (event, "\"at\":\""));
    zstr_free (&topic);
    zstr_free (&seqs);
    zstr_free (&event);
    //  A resend of e1 is acknowledged with its old seq and not fanned out.
    s_request (self->client, "p2", "events", "publish", "2000",
               "{\"events\":[{\"id\":\"e1\",\"type\":\"reservation.requested\"}]}");
    body = s_expect_reply (self->client, "p2", "200");
    assert_non_null (strstr (body, "\"seqs\":[1]"));
    zstr_free (&body);
    s_expect_silence (sub, 100);
    //  The next of the family names e1 (seq 1) as its previous, over e2;
    //  it is the first of its type.
    s_request (self->client, "p3", "events", "publish", "2000",
               "{\"events\":[{\"id\":\"e3\",\"type\":\"reservation.confirmed\"}]}");
    body = s_expect_reply (self->client, "p3", "200");
    assert_non_null (strstr (body, "\"seqs\":[3]"));
    zstr_free (&body);
    assert_int_equal (zstr_recvx (sub, &topic, &seqs, &event, NULL), 3);
    assert_string_equal (seqs, "3 1 0");
    zstr_free (&topic);
    zstr_free (&seqs);
    zstr_free (&event);
    //  The next of the type names e3 both as the family's previous and as
    //  the type's.
    s_request (self->client, "p4", "events", "publish", "2000",
               "{\"events\":[{\"id\":\"e4\",\"type\":\"reservation.confirmed\"}]}");
    body = s_expect_reply (self->client, "p4", "200");
    assert_non_null (strstr (body, "\"seqs\":[4]"));
    zstr_free (&body);
    assert_int_equal (zstr_recvx (sub, &topic, &seqs, &event, NULL), 3);
    assert_string_equal (topic, "reservation.confirmed");
    assert_string_equal (seqs, "4 3 3");
    assert_non_null (strstr (event, "\"id\":\"e4\""));
    zstr_free (&topic);
    zstr_free (&seqs);
    zstr_free (&event);
    //  Read back, all and by prefix.
    s_request (self->client, "r1", "events", "read", "2000", "{\"from\":1}");
    body = s_expect_reply (self->client, "r1", "200");
    assert_non_null (strstr (body, "\"id\":\"e1\""));
    assert_non_null (strstr (body, "\"id\":\"e2\""));
    assert_non_null (strstr (body, "\"next\":5"));
    zstr_free (&body);
    s_request (self->client, "r2", "events", "read", "2000",
               "{\"from\":1,\"type\":\"resource\"}");
    body = s_expect_reply (self->client, "r2", "200");
    assert_null (strstr (body, "\"id\":\"e1\""));
    assert_non_null (strstr (body, "\"id\":\"e2\""));
    zstr_free (&body);
    zsock_destroy (&sub);
}

//  Resident memory of this process, in bytes.
static size_t
s_rss (void)
{
    long pages = 0, resident = 0;
    FILE *file = fopen ("/proc/self/statm", "r");
    if (file) {
        if (fscanf (file, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose (file);
    }
    return (size_t) resident * (size_t) sysconf (_SC_PAGESIZE);
}

//  Speaks ZMTP 3.0 as a SUB (NULL mechanism) on a raw TCP connection and
//  sends one subscription to a prefix of size bytes, then closes. (A
//  libzmq SUB would keep the prefix in a tree of a node per byte, and
//  free it recursively: megabytes of it overflow this test's stack.)
static void
s_zmtp_subscribe (const char *endpoint, size_t size)
{
    int fd = s_tcp_connect (endpoint);
    //  Greeting: signature, version 3.0, mechanism NULL, as client.
    byte greeting [64] = { 0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3, 0 };
    memcpy (greeting + 12, "NULL", 4);
    //  READY with Socket-Type SUB: a short command frame.
    static const byte ready [] = {
        0x04, 25, 5, 'R', 'E', 'A', 'D', 'Y',
        11, 'S', 'o', 'c', 'k', 'e', 't', '-', 'T', 'y', 'p', 'e',
        0, 0, 0, 3, 'S', 'U', 'B'
    };
    //  The subscription: a long last frame, 1 then the prefix.
    size_t body = size + 1;
    byte *frame = (byte *) malloc (9 + body);
    assert_non_null (frame);
    frame [0] = 0x02;
    for (int i = 0; i < 8; i++)
        frame [1 + i] = (byte) ((uint64_t) body >> (56 - 8 * i));
    frame [9] = 1;
    memset (frame + 10, 'x', size);
    //  The broker may drop the connection half-way: that is its right.
    ssize_t rc = send (fd, greeting, sizeof greeting, MSG_NOSIGNAL);
    rc = send (fd, ready, sizeof ready, MSG_NOSIGNAL);
    rc = send (fd, frame, 9 + body, MSG_NOSIGNAL);
    (void) rc;
    free (frame);
    zclock_sleep (200);         //  Let the broker read it before the close
    close (fd);
}

//  A subscription of megabytes is refused (ZeroMQ drops that peer): the
//  broker would file it under a node per byte when it next publishes,
//  taking hundreds of megabytes and seconds of its loop. Honest
//  subscribers go on receiving.
static void
test_events_huge_subscription_dropped (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *sub = zsock_new_sub (self->events, "reservation.");
    zsock_set_rcvtimeo (sub, 2000);
    zclock_sleep (100);         //  Let the subscription reach the broker
    size_t before = s_rss ();
    s_zmtp_subscribe (self->events, 4 * 1024 * 1024);
    s_request (self->client, "p1", "events", "publish", "2000",
               "{\"events\":[{\"id\":\"e1\",\"type\":\"reservation.requested\","
               "\"reservation\":\"r1\"}]}");
    char *body = s_expect_reply (self->client, "p1", "200");
    zstr_free (&body);
    char *topic, *seqs, *event;
    assert_int_equal (zstr_recvx (sub, &topic, &seqs, &event, NULL), 3);
    assert_string_equal (topic, "reservation.requested");
    zstr_free (&topic);
    zstr_free (&seqs);
    zstr_free (&event);
    size_t after = s_rss ();
    //  Filed, the subscription took some 200 MB; refused, nothing.
    assert_true (after < before + 64 * 1024 * 1024);
    zsock_destroy (&sub);
    test_ping (state);
}

//  A publish in the relays' form is journaled as sent, behind its seq;
//  one in any other form is read whole and journaled the same way.
static void
test_events_publish_keeps_the_text (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_request (self->client, "t1", "events", "publish", "2000",
               "{\"events\":[{\"id\":\"t-a\",\"type\":\"a.b\","
               "\"at\":\"2026-01-01T00:00:00.000Z\",\"data\":{\"z\":1,\"a\":2}},"
               "{\"id\":\"t-b\",\"type\":\"a.b\"}]}");
    char *body = s_expect_reply (self->client, "t1", "200");
    assert_non_null (strstr (body, "\"seqs\":[1,2]"));
    zstr_free (&body);
    s_request (self->client, "t2", "events", "publish", "2000",
               " { \"events\" : [ { \"id\" : \"t-c\", \"type\" : \"a.b\" } ] } ");
    body = s_expect_reply (self->client, "t2", "200");
    assert_non_null (strstr (body, "\"seqs\":[3]"));
    zstr_free (&body);
    s_request (self->client, "r", "events", "read", "2000", "{}");
    body = s_expect_reply (self->client, "r", "200");
    assert_non_null (strstr (body, "{\"seq\":1,\"id\":\"t-a\",\"type\":\"a.b\","
        "\"at\":\"2026-01-01T00:00:00.000Z\",\"data\":{\"z\":1,\"a\":2}}"));
    json_t *page = json_loads (body, 0, NULL);
    zstr_free (&body);
    json_t *items = json_object_get (page, "items");
    assert_int_equal (json_array_size (items), 3);
    for (size_t i = 1; i < 3; i++) {
        json_t *event = json_array_get (items, i);
        assert_int_equal (json_integer_value (json_object_get (event, "seq")),
                          (json_int_t) i + 1);
        assert_string_equal (json_string_value (json_object_get (event, "id")),
                             i == 1? "t-b": "t-c");
        assert_true (json_is_string (json_object_get (event, "at")));
        assert_true (json_is_object (json_object_get (event, "data")));
    }
    json_decref (page);
}

static void
test_events_publishes_share_a_commit (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  Sent back to back, the three reach the broker in one loop turn (or
    //  not): either way each is answered on its own. The bad one is
    //  refused alone; the others get the seqs of their own events, and a
    //  resend inside the group gets its first seq.
    s_request (self->client, "g1", "events", "publish", "2000",
               "{\"events\":[{\"id\":\"g-a\",\"type\":\"payment.authorized\"},"
               "{\"id\":\"g-b\",\"type\":\"payment.captured\"}]}");
    s_request (self->client, "g2", "events", "publish", "2000",
               "{\"events\":[{\"id\":\"g-c\",\"type\":\"Not A Type\"}]}");
    s_request (self->client, "g3", "events", "publish", "2000",
               "{\"events\":[{\"id\":\"g-d\",\"type\":\"payment.voided\"},"
               "{\"id\":\"g-a\",\"type\":\"payment.authorized\"}]}");
    for (int reply = 0; reply < 3; reply++) {
        zmsg_t *msg = zmsg_recv (self->client);
        assert_non_null (msg);
        assert_int_equal (zmsg_size (msg), RESV_CLIENT_REP_FRAMES);
        zframe_destroy (&(zframe_t *) { zmsg_pop (msg) });
        zframe_destroy (&(zframe_t *) { zmsg_pop (msg) });
        char *rid = zmsg_popstr (msg);
        char *code = zmsg_popstr (msg);
        char *body = zmsg_popstr (msg);
        if (streq (rid, "g1")) {
            assert_string_equal (code, "200");
            assert_non_null (strstr (body, "\"seqs\":[1,2]"));
        }
        else
        if (streq (rid, "g2")) {
            assert_string_equal (code, "400");
            assert_non_null (strstr (body, "lowercase"));
        }
        else {
            assert_string_equal (rid, "g3");
            assert_string_equal (code, "200");
            assert_non_null (strstr (body, "\"seqs\":[3,1]"));
        }
        zstr_free (&rid);
        zstr_free (&code);
        zstr_free (&body);
        zmsg_destroy (&msg);
    }
    //  The journal holds the three good events once each, gap-free.
    s_request (self->client, "r", "events", "read", "2000", "{}");
    char *body = s_expect_reply (self->client, "r", "200");
    assert_non_null (strstr (body, "\"last\":3"));
    assert_null (strstr (body, "g-c"));
    zstr_free (&body);
}

//  Takes the journal's write lock on a connection of its own (returned;
//  COMMIT and close it to let go), then publishes p1, an event of id
//  event_id with a deadline of timeout ms, whose commit then waits.
static sqlite3 *
s_journal_held (fixture_t *self, const char *event_id, const char *timeout)
{
    char *path = zsys_sprintf ("%s/journal.db", self->dir);
    sqlite3 *db = NULL;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    zstr_free (&path);
    assert_int_equal (sqlite3_exec (db, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                      SQLITE_OK);
    char *body = zsys_sprintf ("{\"events\":[{\"id\":\"%s\","
                               "\"type\":\"payment.authorized\"}]}", event_id);
    s_request (self->client, "p1", "events", "publish", timeout, body);
    zstr_free (&body);
    zclock_sleep (200);         //  It is in, its commit held
    return db;
}

//  A publish waits for its commit, but nothing else does. While another
//  connection holds the journal's write lock (as a WAL restart does for
//  two syncs of the disk), the broker still answers a ping at once; the
//  publish, and a read sent once it was given to the journal, are
//  answered when the lock goes, the read seeing the publish.
static void
test_routes_while_the_journal_waits (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    sqlite3 *db = s_journal_held (self, "w-a", "5000");
    s_request (self->client, "g1", "ping", "", "1000", "");
    char *body = s_expect_reply (self->client, "g1", "200");
    assert_non_null (strstr (body, "\"pong\":true"));
    zstr_free (&body);
    //  Reads go to the journal's thread too, in order: behind the commit.
    s_request (self->client, "r1", "events", "read", "5000", "{}");
    s_expect_silence (self->client, 200);
    assert_int_equal (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    body = s_expect_reply (self->client, "p1", "200");
    assert_non_null (strstr (body, "\"seqs\":[1]"));
    zstr_free (&body);
    body = s_expect_reply (self->client, "r1", "200");
    assert_non_null (strstr (body, "w-a"));
    assert_non_null (strstr (body, "\"last\":1"));
    zstr_free (&body);
    sqlite3_close (db);
}

//  Thousands of reads sent while the journal's thread waits (its commit
//  behind a lock): the broker keeps at most READS_MAX in hand and answers
//  the rest 429 queue_full at once, and routes on. It handed every read
//  to the thread, blocked once the pipe between them was full, and then
//  answered nothing at all, the thread blocked in turn handing back
//  results that the loop no longer took.
static void
test_reads_in_hand_are_bounded (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    sqlite3 *db = s_journal_held (self, "b-a", "20000");
    const int reads = 5000;
    for (int index = 0; index < reads; index++) {
        char id [16];
        snprintf (id, sizeof id, "r%d", index);
        s_request (self->client, id, "events", "read", "20000",
                   "{\"limit\":1}");
    }
    s_request (self->client, "g1", "ping", "", "5000", "");
    //  The reads past the bound, then the ping, answered meanwhile.
    int refused = 0;
    bool pong = false;
    while (!pong) {
        zmsg_t *msg = zmsg_recv (self->client);
        assert_non_null (msg);
        zframe_t *frame = zmsg_first (msg);
        frame = zmsg_next (msg);
        char *id = zframe_strdup (zmsg_next (msg));
        char *code = zframe_strdup (zmsg_next (msg));
        char *body = zframe_strdup (zmsg_next (msg));
        (void) frame;
        if (streq (id, "g1")) {
            assert_string_equal (code, "200");
            pong = true;
        }
        else {
            assert_int_equal (id [0], 'r');
            assert_string_equal (code, "429");
            assert_non_null (strstr (body, RESV_REASON_QUEUE_FULL));
            refused++;
        }
        zstr_free (&id);
        zstr_free (&code);
        zstr_free (&body);
        zmsg_destroy (&msg);
    }
    assert_int_equal (refused, reads - 256);
    //  Once the commit is through, the publish and the reads in hand.
    assert_int_equal (sqlite3_exec (db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (db);
    char *body = s_expect_reply (self->client, "p1", "200");
    zstr_free (&body);
    for (int index = 0; index < 256; index++) {
        char *id;
        body = s_recv_reply (self->client, "200", &id);
        assert_non_null (strstr (body, "b-a"));
        zstr_free (&id);
        zstr_free (&body);
    }
    //  And reads are taken again.
    s_request (self->client, "r-after", "events", "read", "5000", "{}");
    body = s_expect_reply (self->client, "r-after", "200");
    zstr_free (&body);
}

static void
test_events_bad_input_400 (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  Not a JSON object: malformed, as a worker would say.
    const char *unread [] = {
        "not json", "[]",
        //  The relays' form, then something after it
        "{\"events\":[{\"id\":\"ok\",\"type\":\"a\"}]}junk",
        "{\"events\":[{\"id\":\"ok\",\"type\":\"a\"}],\"x\":",
        "{\"events\":[{\"id\":\"ok\",\"type\":\"a\"},]}",
    };
    for (size_t i = 0; i < sizeof unread / sizeof unread [0]; i++) {
        s_request (self->client, "b", "events", "publish", "2000", unread [i]);
        s_expect_error (self->client, "b", "400", RESV_REASON_MALFORMED);
    }
    const char *bad [] = {
        "{}", "{\"events\":[]}", "{\"events\":{}}",
        "{\"events\":[{\"type\":\"a\"}]}",
        "{\"events\":[{\"id\":\"x\",\"type\":\"Bad Type\"}]}",
        "{\"events\":[{\"id\":\"x\",\"type\":\"a\",\"data\":5}]}",
        "{\"events\":[{\"id\":\"x\",\"type\":\"a\",\"extra\":1}]}",
        "{\"events\":[{\"id\":\"ok\",\"type\":\"a\"},7]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        s_request (self->client, "b", "events", "publish", "2000", bad [i]);
        s_expect_error (self->client, "b", "400", RESV_REASON_BAD_REQUEST);
    }
    s_request (self->client, "m", "events", "nothing", "2000", "{}");
    s_expect_error (self->client, "m", "400", RESV_REASON_UNKNOWN_METHOD);
    s_request (self->client, "l", "events", "read", "2000", "{\"limit\":0}");
    s_expect_error (self->client, "l", "400", RESV_REASON_BAD_REQUEST);
    s_request (self->client, "f", "events", "read", "2000", "{\"from\":\"x\"}");
    s_expect_error (self->client, "f", "400", RESV_REASON_BAD_REQUEST);
    //  Not JSON at all: the answer says where, in jansson's words.
    const char *unparsed [] = { "{\"from\":1e400}", "{\"from\":9223372036854775808}" };
    for (size_t i = 0; i < 2; i++) {
        s_request (self->client, "j", "events", "read", "2000", unparsed [i]);
        char *error = s_expect_reply (self->client, "j", "400");
        assert_non_null (strstr (error, "not valid JSON: "));
        assert_non_null (strstr (error, i? "too big integer": "real number overflow"));
        zstr_free (&error);
    }
    //  Nothing of the bad batches was stored: "ok" came with a bad event.
    s_request (self->client, "r", "events", "read", "2000", "{}");
    char *body = s_expect_reply (self->client, "r", "200");
    assert_null (strstr (body, "\"id\":\"ok\""));
    zstr_free (&body);
}

//  A broker of its own with the internal key "sesame", on ports and a
//  data directory of its own (the fixture's broker holds the journal of
//  its directory), and its frontend and backend.
typedef struct {
    resv_cfg_t *cfg;
    zactor_t *broker;
    char *frontend, *backend, *events;
} s_keyed_t;

static void
s_keyed_start (fixture_t *self, s_keyed_t *keyed)
{
    setenv ("RESV_BROKER_INTERNAL_KEY", "sesame", 1);
    char *dir = zsys_sprintf ("%s/keyed", self->dir);
    setenv ("RESV_DATA_DIR", dir, 1);
    keyed->cfg = resv_cfg_load (NULL);
    keyed->broker = broker_new (keyed->cfg);
    unsetenv ("RESV_BROKER_INTERNAL_KEY");
    setenv ("RESV_DATA_DIR", self->dir, 1);
    zstr_free (&dir);
    assert_non_null (keyed->broker);
    zstr_send (keyed->broker, "ENDPOINTS");
    zstr_recvx (keyed->broker, &keyed->frontend, &keyed->backend,
                &keyed->events, NULL);
}

static void
s_keyed_stop (s_keyed_t *keyed)
{
    zactor_destroy (&keyed->broker);
    resv_cfg_destroy (&keyed->cfg);
    zstr_free (&keyed->frontend);
    zstr_free (&keyed->backend);
    zstr_free (&keyed->events);
}

static void
test_internal_methods_need_the_key (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_keyed_t keyed;
    s_keyed_start (self, &keyed);
    zsock_t *client = zsock_new_dealer (keyed.frontend);
    zsock_set_rcvtimeo (client, 2000);
    const char *internal [] = { "availability", "hold", "payment", "void",
                                "events", "publish", NULL };
    for (int i = 0; internal [i]; i += 2) {
        //  No key, a wrong key: refused, whatever the body.
        s_request (client, "a", internal [i], internal [i + 1], "1000", "{}");
        s_expect_error (client, "a", "403", RESV_REASON_INTERNAL_ONLY);
        zstr_sendx (client, RESV_PROTO_CLIENT, RESV_CMD_REQUEST, "b", internal [i],
                    internal [i + 1], "1000", "{}", "open-sesame", NULL);
        s_expect_error (client, "b", "403", RESV_REASON_INTERNAL_ONLY);
    }
    //  A batch of an internal method is that method.
    s_request (client, "e", "availability", "batch.hold", "1000", "{\"batch\":[{}]}");
    s_expect_error (client, "e", "403", RESV_REASON_INTERNAL_ONLY);
    //  The right key passes: here to a service with no worker.
    zstr_sendx (client, RESV_PROTO_CLIENT, RESV_CMD_REQUEST, "c", "availability",
                "hold", "1000", "{}", "sesame", NULL);
    s_expect_error (client, "c", "503", RESV_REASON_NO_WORKER);
    //  And public methods need no key.
    s_request (client, "d", "availability", "availability", "1000", "{}");
    s_expect_error (client, "d", "503", RESV_REASON_NO_WORKER);
    zsock_destroy (&client);
    s_keyed_stop (&keyed);
}

//  The next message on worker is BYE.
static void
s_expect_bye (zsock_t *worker)
{
    char *header, *command;
    assert_int_equal (zstr_recvx (worker, &header, &command, NULL), 2);
    assert_string_equal (command, RESV_CMD_DISCONNECT);
    zstr_free (&header);
    zstr_free (&command);
}

//  A broker with an internal key takes no worker without it: a process
//  that reaches the backend cannot serve a service's requests, and see
//  what they carry, unless it is one of the deployment's own.
static void
test_ready_needs_the_key (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_keyed_t keyed;
    s_keyed_start (self, &keyed);
    zsock_t *client = zsock_new_dealer (keyed.frontend);
    zsock_set_rcvtimeo (client, 2000);
    zsock_t *rogue = zsock_new_dealer (keyed.backend);
    zsock_set_rcvtimeo (rogue, 2000);
    zstr_sendx (rogue, RESV_PROTO_WORKER, RESV_CMD_READY, "payment", "5", NULL);
    s_expect_bye (rogue);
    zstr_sendx (rogue, RESV_PROTO_WORKER, RESV_CMD_READY, "payment", "5",
                "open-sesame", NULL);
    s_expect_bye (rogue);
    //  Neither counts as a worker: a request finds none.
    s_request (client, "a", "payment", "authorize-me", "1000", "{}");
    s_expect_error (client, "a", "503", RESV_REASON_NO_WORKER);
    s_expect_silence (rogue, 200);
    zsock_destroy (&rogue);
    //  With the key, the worker is taken and served.
    zsock_t *worker = zsock_new_dealer (keyed.backend);
    zsock_set_rcvtimeo (worker, 2000);
    zstr_sendx (worker, RESV_PROTO_WORKER, RESV_CMD_READY, "payment", "5",
                "sesame", NULL);
    s_wait_workers_at (client, "payment", 1);
    s_request (client, "b", "payment", "status", "1000", "{}");
    char *ticket = s_worker_take (worker, NULL);
    assert_non_null (ticket);
    s_worker_reply (worker, &ticket, "200", "{\"ok\":true}");
    char *body = s_expect_reply (client, "b", "200");
    assert_string_equal (body, "{\"ok\":true}");
    zstr_free (&body);
    zsock_destroy (&worker);
    zsock_destroy (&client);
    s_keyed_stop (&keyed);
}

static void
test_too_large_request_400 (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    size_t big = 2 * 1024 * 1024;
    char *body = (char *) malloc (big + 1);
    memset (body, 'x', big);
    body [big] = 0;
    s_request (self->client, "big", "echo", "echo", "1000", body);
    s_expect_error (self->client, "big", "400", RESV_REASON_TOO_LARGE);
    free (body);
    test_ping (state);
}

static void
test_retry_in_flight_dropped (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "same", "echo", "", "2000", "");
    s_request (self->client, "same", "echo", "", "2000", "");
    char *ticket = s_worker_take (worker, NULL);
    s_expect_silence (worker, 100);
    s_worker_reply (worker, &ticket, "200", "once");
    char *body = s_expect_reply (self->client, "same", "200");
    assert_string_equal (body, "once");
    zstr_free (&body);
    s_expect_silence (self->client, 100);
    zsock_destroy (&worker);
}

static void
test_dead_worker_request_redispatched (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *dying = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "", "3000", "");
    char *lost = s_worker_take (dying, NULL);
    zstr_free (&lost);
    zsock_t *healthy = s_worker (self, "echo", "1");
    //  The healthy worker heartbeats; the dying one falls silent and is
    //  dropped after liveness x heartbeat, its request going to the other.
    char *ticket = s_worker_take_within (healthy, 5000);
    assert_non_null (ticket);
    s_worker_reply (healthy, &ticket, "200", "saved");
    char *body = s_expect_reply (self->client, "r1", "200");
    assert_string_equal (body, "saved");
    zstr_free (&body);
    zsock_destroy (&dying);
    zsock_destroy (&healthy);
}

//  A request whose worker was lost goes to another, which answers it 504
//  not_started (payment found too little of its deadline left to begin
//  it; or so some items of a batch): the lost one may have done it, or
//  may still until the deadline, so its client must not hear that nothing
//  was done (a saga would not undo it: an authorisation never voided, a
//  hold never released), nor hear anything before the deadline (its void
//  would find no payment yet). The broker answers deadline_exceeded at
//  the deadline, the rest of a batch's reply as it was, and gives the
//  worker's credit to others meanwhile.
static void
test_redispatched_not_started_may_be_done (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *not_started = "{\"error\":{\"code\":504,\"reason\":\""
                              RESV_REASON_NOT_STARTED "\",\"message\":"
                              "\"not begun\"}}";
    char batch [512];
    snprintf (batch, sizeof batch, "{\"batch\":[{\"status\":200,\"body\":"
              "{\"payment\":{\"id\":\"p1\"}}},{\"status\":504,\"body\":%s}]}",
              not_started);
    zsock_t *dying = s_worker (self, "echo", "2");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "", "5000", "");
    s_request (self->client, "r2", "echo", "batch.x", "5000", "");
    char *lost = s_worker_take (dying, NULL);
    zstr_free (&lost);
    lost = s_worker_take (dying, NULL);
    zstr_free (&lost);
    zsock_t *healthy = s_worker (self, "echo", "2");
    char *first = s_worker_take_within (healthy, 5000);
    assert_non_null (first);
    char *second = s_worker_take_within (healthy, 1000);
    assert_non_null (second);
    //  Which is which: the batch's ticket ends in r2.
    bool first_is_r1 = strlen (first) > 2 && streq (first + strlen (first) - 2, "r1");
    char **single = first_is_r1? &first: &second;
    char **batched = first_is_r1? &second: &first;
    s_worker_reply (healthy, single, "504", not_started);
    s_worker_reply (healthy, batched, "200", batch);
    //  Its credit is free: r3 goes to it at once. Its first worker's
    //  not_started is the truth, and passes, before r1's and r2's.
    s_request (self->client, "r3", "echo", "", "5000", "");
    char *ticket = s_worker_take_within (healthy, 1000);
    assert_non_null (ticket);
    s_worker_reply (healthy, &ticket, "504", not_started);
    s_expect_error (self->client, "r3", "504", RESV_REASON_NOT_STARTED);
    //  r1 and r2 at their deadline, in the order they were sent.
    zsock_set_rcvtimeo (self->client, 6000);
    char *r1 = s_expect_reply (self->client, "r1", "504");
    char *r2 = s_expect_reply (self->client, "r2", "200");
    assert_null (strstr (r1, RESV_REASON_NOT_STARTED));
    assert_non_null (strstr (r1, RESV_REASON_DEADLINE));
    assert_null (strstr (r2, RESV_REASON_NOT_STARTED));
    assert_non_null (strstr (r2, RESV_REASON_DEADLINE));
    assert_non_null (strstr (r2, "\"p1\""));
    zstr_free (&r1);
    zstr_free (&r2);
    zsock_destroy (&dying);
    zsock_destroy (&healthy);
}

//  Which of tickets (count of them, as workers see them: client ":" id;
//  NULL once answered) is that of request id.
static char **
s_ticket_of (char **tickets, size_t count, const char *id)
{
    for (size_t index = 0; index < count; index++) {
        const char *colon = tickets [index]? strrchr (tickets [index], ':')
                                           : NULL;
        if (colon && streq (colon + 1, id))
            return &tickets [index];
    }
    fail_msg ("no ticket of %s", id);
    return NULL;
}

//  The same for a failure of the next worker (503 payment_unavailable:
//  its provider failed; or so an item of a batch): the lost one may have
//  done it, or may until the deadline, and a caller told at once undoes
//  it before then, finding nothing yet (seen end to end: the reserve's
//  void found no payment, and the lost worker's authorisation, recorded a
//  second later, stayed for good). Its reply is held to the deadline, as
//  it came. A refusal (4xx) passes at once: the lost one refused it too.
//  A not_started in a reply that jansson cannot read (a number beyond its
//  range) is not passed on either: the broker says deadline_exceeded.
static void
test_redispatched_failure_waits_for_its_deadline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *unavailable = "{\"error\":{\"code\":503,\"reason\":\""
                              RESV_REASON_PAYMENT_UNAVAILABLE "\","
                              "\"message\":\"the provider failed\"}}";
    const char *declined = "{\"error\":{\"code\":402,\"reason\":\""
                           RESV_REASON_PAYMENT_DECLINED "\","
                           "\"message\":\"above the limit\"}}";
    char batch [512];
    snprintf (batch, sizeof batch, "{\"batch\":[{\"status\":200,\"body\":"
              "{\"payment\":{\"id\":\"p1\"}}},{\"status\":503,\"body\":%s}]}",
              unavailable);
    const char *unreadable = "{\"error\":{\"code\":504,\"reason\":\""
                             RESV_REASON_NOT_STARTED "\",\"message\":"
                             "\"not begun\"},\"n\":1e999}";
    zsock_t *dying = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "", "5000", "");
    s_request (self->client, "r2", "echo", "batch.x", "5000", "");
    s_request (self->client, "r4", "echo", "", "5000", "");
    s_request (self->client, "r5", "echo", "", "5000", "");
    for (int i = 0; i < 4; i++) {
        char *lost = s_worker_take (dying, NULL);
        zstr_free (&lost);
    }
    zsock_t *healthy = s_worker (self, "echo", "4");
    char *tickets [4];
    for (int i = 0; i < 4; i++) {
        tickets [i] = s_worker_take_within (healthy, i? 1000: 5000);
        assert_non_null (tickets [i]);
    }
    s_worker_reply (healthy, s_ticket_of (tickets, 4, "r1"), "503",
                    unavailable);
    s_worker_reply (healthy, s_ticket_of (tickets, 4, "r2"), "200",
                    batch);
    s_worker_reply (healthy, s_ticket_of (tickets, 4, "r5"), "504",
                    unreadable);
    s_worker_reply (healthy, s_ticket_of (tickets, 4, "r4"), "402",
                    declined);
    s_expect_error (self->client, "r4", "402", RESV_REASON_PAYMENT_DECLINED);
    //  The worker's credit is free, and what it answers later passes first.
    s_request (self->client, "r3", "echo", "", "5000", "");
    char *ticket = s_worker_take_within (healthy, 1000);
    assert_non_null (ticket);
    s_worker_reply (healthy, &ticket, "200", "{}");
    char *body = s_expect_reply (self->client, "r3", "200");
    zstr_free (&body);
    //  At their deadline, in any order (the same millisecond, maybe).
    zsock_set_rcvtimeo (self->client, 6000);
    for (int i = 0; i < 3; i++) {
        zmsg_t *msg = zmsg_recv (self->client);
        assert_non_null (msg);
        assert_int_equal (zmsg_size (msg), RESV_CLIENT_REP_FRAMES);
        char *header = zmsg_popstr (msg);
        char *command = zmsg_popstr (msg);
        zstr_free (&header);
        zstr_free (&command);
        char *id = zmsg_popstr (msg);
        char *code = zmsg_popstr (msg);
        body = zmsg_popstr (msg);
        if (streq (id, "r1")) {
            assert_string_equal (code, "503");
            assert_string_equal (body, unavailable);
        }
        else
        if (streq (id, "r2")) {
            assert_string_equal (code, "200");
            assert_string_equal (body, batch);
        }
        else {
            assert_string_equal (id, "r5");
            assert_string_equal (code, "504");
            assert_null (strstr (body, RESV_REASON_NOT_STARTED));
            assert_non_null (strstr (body, RESV_REASON_DEADLINE));
        }
        zstr_free (&id);
        zstr_free (&code);
        zstr_free (&body);
        zmsg_destroy (&msg);
    }
    zsock_destroy (&dying);
    zsock_destroy (&healthy);
}

//  A request whose second worker is lost too is answered 503 worker_lost
//  at its deadline, not at once: either may still do it until then. Told
//  at once, a caller's undo went to a third worker and found nothing yet.
static void
test_lost_twice_waits_for_its_deadline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *first = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "", "5000", "");
    char *lost = s_worker_take (first, NULL);
    zstr_free (&lost);
    zsock_t *second = s_worker (self, "echo", "1");
    lost = s_worker_take_within (second, 5000);
    assert_non_null (lost);
    zstr_free (&lost);
    //  Both silent: both taken for dead. Nothing is said of r1 meanwhile
    //  (its reply would come before the stats that show them gone).
    s_wait_workers (self, "echo", 0);
    zsock_t *third = s_worker (self, "echo", "1");
    s_request (self->client, "r3", "echo", "", "5000", "");
    char *ticket = s_worker_take_within (third, 1000);
    assert_non_null (ticket);
    s_worker_reply (third, &ticket, "200", "{}");
    char *body = s_expect_reply (self->client, "r3", "200");
    zstr_free (&body);
    zsock_set_rcvtimeo (self->client, 6000);
    s_expect_error (self->client, "r1", "503", RESV_REASON_WORKER_LOST);
    zsock_destroy (&first);
    zsock_destroy (&second);
    zsock_destroy (&third);
}

//  The half-open circuit's probe, sent again after its worker was lost
//  and held to its deadline, closes the circuit when its reply comes; at
//  its deadline it no longer counts as the probe, so a later half-open
//  circuit still lets one probe through at a time, not two.
static void
test_held_probe_is_done_with (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *not_started = "{\"error\":{\"code\":504,\"reason\":\""
                              RESV_REASON_NOT_STARTED "\",\"message\":"
                              "\"not begun\"}}";
    zsock_t *dying = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 1);
    //  Two failures open the circuit; after its cool-down r1 is the probe.
    for (int i = 0; i < 2; i++) {
        s_request (self->client, "f", "echo", "", "5000", "");
        char *ticket = s_worker_take (dying, NULL);
        s_worker_reply (dying, &ticket, "500", "{}");
        char *body = s_expect_reply (self->client, "f", "500");
        zstr_free (&body);
    }
    zclock_sleep (350);
    s_request (self->client, "r1", "echo", "", "5000", "");
    char *lost = s_worker_take (dying, NULL);
    zstr_free (&lost);
    zsock_t *healthy = s_worker (self, "echo", "1");
    char *ticket = s_worker_take_within (healthy, 5000);
    assert_non_null (ticket);
    s_worker_reply (healthy, &ticket, "504", not_started);
    //  Closed by it: open it again, and after the cool-down r4 is the
    //  probe, which its worker keeps.
    for (int i = 0; i < 2; i++) {
        s_request (self->client, "g", "echo", "", "5000", "");
        ticket = s_worker_take_within (healthy, 1000);
        assert_non_null (ticket);
        s_worker_reply (healthy, &ticket, "500", "{}");
        char *body = s_expect_reply (self->client, "g", "500");
        zstr_free (&body);
    }
    zclock_sleep (350);
    s_request (self->client, "r4", "echo", "", "10000", "");
    ticket = s_worker_take_within (healthy, 1000);
    assert_non_null (ticket);
    //  r1's reply at its deadline, the worker heartbeating meanwhile.
    zpoller_t *poller = zpoller_new (self->client, NULL);
    for (int i = 0; i < 60 && !zpoller_wait (poller, 100); i++)
        zstr_sendx (healthy, RESV_PROTO_WORKER, RESV_CMD_HEARTBEAT, NULL);
    zpoller_destroy (&poller);
    s_expect_error (self->client, "r1", "504", RESV_REASON_DEADLINE);
    s_request (self->client, "r5", "echo", "", "5000", "");
    s_expect_error (self->client, "r5", "503", RESV_REASON_CIRCUIT_OPEN);
    s_worker_reply (healthy, &ticket, "200", "{}");
    char *body = s_expect_reply (self->client, "r4", "200");
    zstr_free (&body);
    zsock_destroy (&dying);
    zsock_destroy (&healthy);
}

//  Sends a client's retry (RTRY): the same request sent again, unanswered.
static void
s_retry (zsock_t *client, const char *id, const char *service,
         const char *timeout)
{
    zstr_sendx (client, RESV_PROTO_CLIENT, RESV_CMD_RETRY, id, service, "",
                timeout, "", NULL);
}

//  Waits for the next reply on client, and checks it is id's, of status,
//  with reason, and that it came within [at_least, at_most] ms of since.
static void
s_expect_error_at (zsock_t *client, const char *id, const char *status,
                   const char *reason, int64_t since, int at_least,
                   int at_most)
{
    char *body = s_expect_reply (client, id, status);
    int64_t after = zclock_mono () - since;
    if (after < at_least || after > at_most || !strstr (body, reason))
        print_error ("%s: %s %s after %" PRId64 " ms\n", id, status, body,
                     after);
    assert_non_null (strstr (body, reason));
    assert_true (after >= at_least && after <= at_most);
    zstr_free (&body);
}

//  A retry the broker does not know (it restarted since the first send,
//  or answered it over a connection since lost) may have been done then.
//  Waiting out its deadline in the queue, it is answered deadline_exceeded,
//  not not_started, which would let a saga skip the undo of a payment the
//  first send made. The same request sent once is not_started.
static void
test_unknown_retry_not_begun_may_be_done (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "busy", "1");
    s_wait_workers (self, "busy", 1);
    s_request (self->client, "r0", "busy", "", "5000", "");
    char *ticket = s_worker_take (worker, NULL);
    int64_t sent = zclock_mono ();
    s_retry (self->client, "again", "busy", "300");
    s_request (self->client, "once", "busy", "", "300", "");
    s_expect_error_at (self->client, "again", "504", RESV_REASON_DEADLINE,
                       sent, 250, 1000);
    s_expect_error_at (self->client, "once", "504", RESV_REASON_NOT_STARTED,
                       sent, 250, 1000);
    //  A retry of a request in flight is still dropped.
    s_retry (self->client, "r0", "busy", "5000");
    assert_null (s_worker_take_within (worker, 150));
    s_worker_reply (worker, &ticket, "200", "done");
    char *body = s_expect_reply (self->client, "r0", "200");
    assert_string_equal (body, "done");
    zstr_free (&body);
    s_expect_silence (self->client, 100);
    zsock_destroy (&worker);
}

//  An unknown retry that a full queue or an open circuit turns away is
//  not refused at once (429 queue_full, 503 circuit_open say nothing was
//  begun): it is answered deadline_exceeded at its deadline, as a request
//  sent more than once that no worker of ours began.
static void
test_unknown_retry_refusal_waits_for_its_deadline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "busy", "1");
    s_wait_workers (self, "busy", 1);
    s_request (self->client, "r0", "busy", "", "5000", "");
    char *ticket = s_worker_take (worker, NULL);
    //  queue_max 0: nothing waits.
    int64_t sent = zclock_mono ();
    s_retry (self->client, "full", "busy", "400");
    s_request (self->client, "once", "busy", "", "400", "");
    s_expect_error_at (self->client, "once", "429", RESV_REASON_QUEUE_FULL,
                       sent, 0, 200);
    s_expect_error_at (self->client, "full", "504", RESV_REASON_DEADLINE,
                       sent, 350, 1000);
    //  Two failures open the circuit (breaker_failures 2).
    s_worker_reply (worker, &ticket, "500", "{}");
    char *body = s_expect_reply (self->client, "r0", "500");
    zstr_free (&body);
    s_request (self->client, "f", "busy", "", "5000", "");
    ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "500", "{}");
    body = s_expect_reply (self->client, "f", "500");
    zstr_free (&body);
    sent = zclock_mono ();
    s_retry (self->client, "open", "busy", "250");
    s_request (self->client, "shut", "busy", "", "250", "");
    s_expect_error_at (self->client, "shut", "503", RESV_REASON_CIRCUIT_OPEN,
                       sent, 0, 200);
    //  At its deadline (250 ms), not at once; a loaded machine may be
    //  some tens of ms late with it.
    s_expect_error_at (self->client, "open", "504", RESV_REASON_DEADLINE,
                       sent, 200, 1000);
    assert_null (s_worker_take_within (worker, 50));
    //  After the cool-down, an unknown retry may be the probe, and its
    //  success closes the circuit.
    zclock_sleep (100);
    s_retry (self->client, "probe", "busy", "1000");
    ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "200", "{}");
    body = s_expect_reply (self->client, "probe", "200");
    zstr_free (&body);
    zsock_destroy (&worker);
}

//  The broker's count of replies held to their deadlines, from stats.
static int
s_held (zsock_t *client)
{
    s_request (client, "stats", "stats", "", "1000", "");
    char *body = s_expect_reply (client, "stats", "200");
    json_t *stats = json_loads (body, 0, NULL);
    zstr_free (&body);
    assert_non_null (stats);
    json_t *held = json_object_get (stats, "held");
    assert_true (json_is_integer (held));
    int count = (int) json_integer_value (held);
    json_decref (stats);
    return count;
}

//  Heartbeats from each worker given, as a live worker sends them.
static void
s_beat (zsock_t *first, zsock_t *second)
{
    zstr_sendx (first, RESV_PROTO_WORKER, RESV_CMD_HEARTBEAT, NULL);
    zstr_sendx (second, RESV_PROTO_WORKER, RESV_CMD_HEARTBEAT, NULL);
}

//  Replies held to their deadlines are bounded (HELD_MAX in broker.c,
//  65536): past it, an unknown retry that a full queue turns away, and a
//  worker's failure to one, are left unanswered, for the client to answer
//  at its deadline, and not run again if sent again. Room comes back as
//  the held ones are answered.
static void
test_held_replies_are_bounded (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    enum { HELD = 65536 };
    zsock_t *busy = s_worker (self, "busy", "1");
    zsock_t *pay = s_worker (self, "pay", "1");
    s_wait_workers (self, "busy", 1);
    s_wait_workers (self, "pay", 1);
    s_request (self->client, "r0", "busy", "", "20000", "");
    char *ticket = s_worker_take (busy, NULL);
    //  queue_max 0: every retry for busy is turned away, and held.
    int64_t started = zclock_mono ();
    int64_t beat = started;
    for (int i = 0; i < HELD; i++) {
        char id [16];
        snprintf (id, sizeof id, "h%d", i);
        s_retry (self->client, id, "busy", "6000");
        if (zclock_mono () - beat >= 100) {
            s_beat (busy, pay);
            beat = zclock_mono ();
        }
    }
    int64_t sent = zclock_mono ();
    //  Well within their deadline, 6 s, or room comes back too soon.
    fprintf (stderr, "held retries: sent in %" PRId64 " ms\n", sent - started);
    assert_true (sent - started < 5000);
    s_retry (self->client, "over", "busy", "6000");
    s_retry (self->client, "failed", "pay", "6000");
    //  The broker may still be reading the retries: both workers beat.
    char *failed = NULL;
    while (!failed && zclock_mono () - sent < 5000) {
        s_beat (busy, pay);
        failed = s_worker_take_within (pay, 100);
    }
    assert_non_null (failed);
    s_worker_reply (pay, &failed, "503", "{\"error\":{\"code\":503,\"reason\":"
                    "\"payment_unavailable\",\"message\":\"down\"}}");
    //  Forgotten, but as answered: sent again, it is not run again.
    s_retry (self->client, "failed", "pay", "6000");
    assert_null (s_worker_take_within (pay, 300));
    assert_int_equal (s_held (self->client), HELD);
    //  Each held one at its deadline, once; neither of the two after them.
    char *seen = (char *) zmalloc (HELD);
    zpoller_t *poller = zpoller_new (self->client, NULL);
    int answered = 0;
    while (answered < HELD && zclock_mono () - sent < 20000) {
        s_beat (busy, pay);
        if (!zpoller_wait (poller, 100))
            continue;
        char *rid;
        char *body = s_recv_reply (self->client, "504", &rid);
        assert_non_null (strstr (body, RESV_REASON_DEADLINE));
        assert_int_equal (rid [0], 'h');
        int index = atoi (rid + 1);
        assert_true (index >= 0 && index < HELD && !seen [index]);
        seen [index] = 1;
        answered++;
        zstr_free (&rid);
        zstr_free (&body);
    }
    assert_int_equal (answered, HELD);
    zpoller_destroy (&poller);
    free (seen);
    s_beat (busy, pay);
    s_expect_silence (self->client, 300);
    //  Room again.
    sent = zclock_mono ();
    s_retry (self->client, "again", "busy", "300");
    s_beat (busy, pay);
    s_expect_error_at (self->client, "again", "504", RESV_REASON_DEADLINE,
                       sent, 250, 1000);
    s_worker_reply (busy, &ticket, "200", "{}");
    char *body = s_expect_reply (self->client, "r0", "200");
    zstr_free (&body);
    assert_int_equal (s_held (self->client), 0);
    zsock_destroy (&busy);
    zsock_destroy (&pay);
}

//  A failure (5xx, or not_started from the worker) of an unknown retry is
//  held to the deadline, each not_started said deadline_exceeded: the
//  first send may still be done until then, by a worker the broker before
//  us gave it to. A success goes at once.
static void
test_unknown_retry_failure_waits_for_its_deadline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *not_started = "{\"error\":{\"code\":504,\"reason\":\""
                              RESV_REASON_NOT_STARTED "\",\"message\":"
                              "\"not begun\"}}";
    zsock_t *worker = s_worker (self, "pay", "2");
    s_wait_workers (self, "pay", 1);
    int64_t sent = zclock_mono ();
    s_retry (self->client, "failed", "pay", "600");
    s_retry (self->client, "late", "pay", "600");
    char *failed = s_worker_take (worker, NULL);
    char *late = s_worker_take (worker, NULL);
    bool swapped = !streq (failed + strlen (failed) - 6, "failed");
    s_worker_reply (worker, swapped? &late: &failed, "503",
                    "{\"error\":{\"code\":503,\"reason\":\"payment_unavailable\","
                    "\"message\":\"provider down\"}}");
    s_worker_reply (worker, swapped? &failed: &late, "504", not_started);
    //  The worker is free meanwhile: a third goes to it, and its success
    //  comes first.
    s_retry (self->client, "served", "pay", "600");
    char *ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "200", "{}");
    char *body = s_expect_reply (self->client, "served", "200");
    zstr_free (&body);
    assert_true (zclock_mono () - sent < 500);
    s_expect_error_at (self->client, "failed", "503", "payment_unavailable",
                       sent, 550, 1500);
    s_expect_error_at (self->client, "late", "504", RESV_REASON_DEADLINE,
                       sent, 550, 1500);
    zsock_destroy (&worker);
}

//  A reply with a status out of range, to an unknown retry, is a failure
//  of the worker's like a 500: held to the deadline as the others, since
//  the first send may still be done until then. The worker is free
//  meanwhile.
static void
test_unknown_retry_bad_reply_waits_for_its_deadline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "pay", "1");
    s_wait_workers (self, "pay", 1);
    int64_t sent = zclock_mono ();
    s_retry (self->client, "odd", "pay", "1000");
    char *ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "600", "odd");
    s_request (self->client, "next", "pay", "", "1000", "");
    ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "200", "{}");
    char *body = s_expect_reply (self->client, "next", "200");
    zstr_free (&body);
    s_expect_error_at (self->client, "odd", "500", RESV_REASON_INTERNAL,
                       sent, 950, 2500);
    zsock_destroy (&worker);
}

//  A reply a worker gives to an unknown retry, and whether the broker
//  holds it to the retry's deadline (800 ms) or sends it at once.
typedef struct {
    const char *id, *status, *reply;
    bool held;
} s_held_case_t;

//  Sends count unknown retries of method with body, one per case, has a
//  worker answer each as its case says, and checks that each reply comes
//  as it was given, at once or, if held, at the deadline.
static void
s_expect_held (fixture_t *self, const char *method, const char *body,
               s_held_case_t *cases, size_t count)
{
    zsock_t *worker = s_worker (self, "pay", "16");
    s_wait_workers (self, "pay", 1);
    int64_t sent = zclock_mono ();
    for (size_t index = 0; index < count; index++)
        zstr_sendx (self->client, RESV_PROTO_CLIENT, RESV_CMD_RETRY,
                    cases [index].id, "pay", method, "800", body, NULL);
    const char *ids [16];
    char *tickets [16];
    assert_true (count <= 16);
    for (size_t index = 0; index < count; index++) {
        ids [index] = cases [index].id;
        tickets [index] = s_worker_take (worker, NULL);
    }
    for (size_t index = 0; index < count; index++)
        s_worker_reply (worker, s_ticket_of (tickets, count, ids [index]),
                        cases [index].status, cases [index].reply);
    zsock_set_rcvtimeo (self->client, 3000);
    for (size_t index = 0; index < count; index++) {
        zmsg_t *msg = zmsg_recv (self->client);
        assert_non_null (msg);
        assert_int_equal (zmsg_size (msg), RESV_CLIENT_REP_FRAMES);
        zmsg_first (msg);               //  Header, command: as always
        zmsg_next (msg);
        char *rid = zframe_strdup (zmsg_next (msg));
        char *code = zframe_strdup (zmsg_next (msg));
        char *text = zframe_strdup (zmsg_next (msg));
        zmsg_destroy (&msg);
        int64_t after = zclock_mono () - sent;
        size_t which = 0;
        while (which < count && !streq (ids [which], rid))
            which++;
        assert_true (which < count);
        bool late = after >= 750;
        if (late != cases [which].held || after > 2500)
            print_error ("%s after %" PRId64 " ms\n", rid, after);
        assert_true (late == cases [which].held && after <= 2500);
        assert_string_equal (code, cases [which].status);
        assert_string_equal (text, cases [which].reply);
        zstr_free (&rid);
        zstr_free (&code);
        zstr_free (&text);
    }
    zsock_destroy (&worker);
}

//  A 200 to a batch that its caller cannot read item by item (too few
//  or too many items, an item with no valid status, a success whose body
//  is not an object, a NUL in a string, a key twice, no JSON) fails its
//  calls with 500 there: to an unknown retry, it is held to the deadline
//  as any failure is. A sound one goes at once, and so does a refusal of
//  the whole batch (409), which its caller gives each call as it is.
static void
test_unknown_retry_bad_batch_waits_for_its_deadline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_held_case_t cases [] = {
        { "sound", "200", "{\"batch\":[{\"status\":200,\"body\":{}},"
                          "{\"status\":409,\"body\":\"no\"}]}", false },
        { "nobody", "200", "{\"batch\":[{\"status\":200},"
                           "{\"status\":200,\"body\":null}]}", false },
        { "refused", "409", "{\"error\":{\"code\":409,\"reason\":"
                            "\"conflict\",\"message\":\"no\"}}", false },
        { "short", "200", "{\"batch\":[{\"status\":200,\"body\":{}}]}",
          true },
        { "long", "200", "{\"batch\":[{\"status\":200,\"body\":{}},"
                         "{\"status\":200,\"body\":{}},{\"status\":200,"
                         "\"body\":{}}]}", true },
        { "odd", "200", "{\"batch\":[{\"status\":200,\"body\":{}},"
                        "{\"status\":600,\"body\":{}}]}", true },
        { "bare", "200", "{\"batch\":[{\"status\":200,\"body\":{}},"
                         "{\"body\":{}}]}", true },
        { "text", "200", "{\"batch\":[{\"status\":200,\"body\":{}},"
                         "{\"status\":200,\"body\":\"done\"}]}", true },
        { "nul", "200", "{\"batch\":[{\"status\":200,\"body\":{}},"
                        "{\"status\":200,\"body\":{\"a\":\"\\u0000\"}}]}",
          true },
        { "twice", "200", "{\"batch\":[{\"status\":200,\"body\":{}},"
                          "{\"status\":200,\"status\":200,\"body\":{}}]}",
          true },
        { "oops", "200", "oops", true }
    };
    s_expect_held (self, "batch.authorise", "{\"batch\":[{\"n\":1},{\"n\":2}]}",
                   cases, sizeof cases / sizeof cases [0]);
}

//  So is a success of one call that its caller cannot read: not JSON, a
//  NUL in a string, not an object, or one that jscan does not read whole
//  (the caller reads a success's fields from it with jscan: a key twice,
//  white space after it). An empty one is {}; a refusal goes at once,
//  whatever its body.
static void
test_unknown_retry_unreadable_success_waits_for_its_deadline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_held_case_t cases [] = {
        { "sound", "200", "{\"payment\":{\"status\":\"voided\"}}", false },
        { "empty", "200", "", false },
        { "refused", "404", "not found", false },
        { "oops", "200", "oops", true },
        { "list", "200", "[1]", true },
        { "nul", "200", "{\"a\":\"\\u0000\"}", true },
        { "trailing", "200", "{}\n", true },
        { "twice", "200", "{\"payment\":{\"id\":\"p\",\"id\":\"q\"}}", true }
    };
    s_expect_held (self, "void", "{\"reservation\":\"r1\"}", cases,
                   sizeof cases / sizeof cases [0]);
}

//  Bytes this process has allocated and not freed: AddressSanitizer's
//  count in a sanitizer build, else glibc's, over all its arenas (the
//  broker's thread and ZeroMQ's allocate in arenas of their own).
static size_t
s_allocated (void)
{
#if defined (__SANITIZE_ADDRESS__)
    return __sanitizer_get_current_allocated_bytes ();
#else
    return mallinfo2 ().uordblks;
#endif
}

//  A reply held to the deadline keeps a copy of its body, not the 8 KB
//  buffer ZeroMQ read it into (a held reply came alone, so nothing else
//  shares that buffer): 200 of them, each read on its own, add a few
//  hundred bytes each, where each kept a buffer before (some 9 KB).
static void
test_held_replies_keep_little (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    enum { HELD = 200 };
    char body [301];
    memset (body, 'x', sizeof body - 1);
    body [sizeof body - 1] = 0;
    memcpy (body, "{\"e\":\"", 6);
    memcpy (body + sizeof body - 3, "\"}", 2);
    zsock_t *worker = s_worker (self, "pay", "1");
    s_wait_workers (self, "pay", 1);
    //  One round first, so what the first request allocates once is not
    //  counted (the client's clock, the service's tables).
    s_retry (self->client, "warm", "pay", "5000");
    char *ticket = s_worker_take (worker, NULL);
    s_worker_reply (worker, &ticket, "200", "{}");
    char *reply = s_expect_reply (self->client, "warm", "200");
    zstr_free (&reply);
    size_t before = s_allocated ();
    int64_t sent = zclock_mono ();
    for (int index = 0; index < HELD; index++) {
        char id [16];
        snprintf (id, sizeof id, "held-%d", index);
        s_retry (self->client, id, "pay", "5000");
        //  The worker has credit 1: the broker gives it the next only
        //  after it has read this reply, alone.
        ticket = s_worker_take (worker, NULL);
        s_worker_reply (worker, &ticket, "503", body);
    }
    //  The last one read: the worker takes one more request.
    s_request (self->client, "last", "pay", "", "5000", "");
    ticket = s_worker_take (worker, NULL);
    size_t after = s_allocated ();
    size_t each = after > before? (after - before) / HELD: 0;
    print_message ("held replies: %zu bytes each\n", each);
    assert_true (zclock_mono () - sent < 4500);
    //  A copy of its 300 bytes at least: the count is the allocator's.
    assert_true (each >= 300 && each < 4096);
    s_worker_reply (worker, &ticket, "200", "{}");
    reply = s_expect_reply (self->client, "last", "200");
    zstr_free (&reply);
    //  Each at its deadline, as it came.
    zsock_set_rcvtimeo (self->client, 8000);
    for (int index = 0; index < HELD; index++) {
        char *id;
        reply = s_recv_reply (self->client, "503", &id);
        assert_true (zclock_mono () - sent >= 4900);
        assert_string_equal (reply, body);
        zstr_free (&id);
        zstr_free (&reply);
    }
    zsock_destroy (&worker);
}

//  A request that waits in its service's queue keeps a copy of its id
//  and body, not the 8 KB buffer ZeroMQ read it into: the queue holds up
//  to broker/queue_max of them (10000 by default), each read on its own
//  when they come one by one, as here.
static void
test_queued_requests_keep_little (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    enum { QUEUED = 200 };
    char body [301], id [RESV_ID_MAX + 1];
    memset (body, 'x', sizeof body - 1);
    body [sizeof body - 1] = 0;
    memcpy (body, "{\"e\":\"", 6);
    memcpy (body + sizeof body - 3, "\"}", 2);
    memset (id, 'q', RESV_ID_MAX);
    id [RESV_ID_MAX] = 0;
    zsock_t *worker = s_worker (self, "slow", "1");
    s_wait_workers (self, "slow", 1);
    s_request (self->client, "first", "slow", "", "8000", "");
    char *first = s_worker_take (worker, NULL);
    size_t before = s_allocated ();
    for (int index = 0; index < QUEUED; index++) {
        char digits [4];
        snprintf (digits, sizeof digits, "%03d", index);
        memcpy (id, digits, 3);         //  The longest id, 64 characters
        s_request (self->client, id, "slow", "", "8000", body);
        //  Answered by the broker after it has read the request: the next
        //  comes in a read of its own.
        s_request (self->client, "ping", "ping", "", "1000", "");
        char *pong = s_expect_reply (self->client, "ping", "200");
        zstr_free (&pong);
        zstr_sendx (worker, RESV_PROTO_WORKER, RESV_CMD_HEARTBEAT, NULL);
    }
    size_t after = s_allocated ();
    size_t each = after > before? (after - before) / QUEUED: 0;
    print_message ("queued requests: %zu bytes each\n", each);
    //  Copies of its 364 bytes at least: the count is the allocator's.
    assert_true (each >= 364 && each < 4096);
    //  Each goes to the worker in its turn, with its body whole.
    s_worker_reply (worker, &first, "200", "{}");
    char *reply = s_expect_reply (self->client, "first", "200");
    zstr_free (&reply);
    int served = 0;
    while (served < QUEUED) {
        zmsg_t *msg = zmsg_recv (worker);
        assert_non_null (msg);
        zmsg_first (msg);
        zframe_t *command = zmsg_next (msg);
        if (zframe_streq (command, RESV_CMD_REQUEST)) {
            char *ticket = zframe_strdup (zmsg_next (msg));
            zframe_t *last = zmsg_last (msg);
            assert_int_equal (zframe_size (last), strlen (body));
            assert_memory_equal (zframe_data (last), body, strlen (body));
            s_worker_reply (worker, &ticket, "200", "{}");
            served++;
        }
        zmsg_destroy (&msg);
    }
    zsock_set_rcvtimeo (self->client, 3000);
    for (int index = 0; index < QUEUED; index++) {
        char *rid;
        reply = s_recv_reply (self->client, "200", &rid);
        zstr_free (&rid);
        zstr_free (&reply);
    }
    zsock_destroy (&worker);
}

//  A request whose worker was lost, with no other worker to take it by
//  the grace's end, is answered 503 worker_lost at its deadline, not at
//  the grace's end: the lost worker (stopped, not dead) may still do it
//  until then, and a caller told sooner would undo it before.
static void
test_lost_without_worker_waits_for_its_deadline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 1);
    int64_t sent = zclock_mono ();
    s_request (self->client, "r1", "echo", "", "3000", "");
    char *lost = s_worker_take (worker, NULL);
    zstr_free (&lost);
    //  Silent: taken for dead after 1.2 to 1.6 s; the grace is 200 ms.
    s_wait_workers (self, "echo", 0);
    zsock_set_rcvtimeo (self->client, 4000);
    s_expect_error_at (self->client, "r1", "503", RESV_REASON_WORKER_LOST,
                       sent, 2950, 3800);
    zsock_destroy (&worker);
}

//  Receives the next REQ on a worker, skipping heartbeats; returns its
//  ticket, and the TIMEOUT of its timeout frame in *timeout_p.
static char *
s_worker_take_timeout (zsock_t *worker, int64_t *timeout_p)
{
    while (true) {
        zmsg_t *msg = zmsg_recv (worker);
        assert_non_null (msg);
        zmsg_first (msg);
        zframe_t *command = zmsg_next (msg);
        if (zframe_streq (command, RESV_CMD_REQUEST)) {
            char *ticket = zframe_strdup (zmsg_next (msg));
            zmsg_next (msg);
            char *timeout = zframe_strdup (zmsg_next (msg));
            *timeout_p = atoll (timeout);
            zstr_free (&timeout);
            zmsg_destroy (&msg);
            return ticket;
        }
        zmsg_destroy (&msg);
    }
}

//  With the client's clock in the timeout (TIMEOUT@SENT), the deadline
//  counts from when the client sent the request, not from when the broker
//  read it: a broker that was stopped meanwhile must not hand out work its
//  client gave up on (and undid). A request whose deadline passed before
//  it was read is not begun: 504 not_started at once, or, a retry we do
//  not know, deadline_exceeded.
static void
test_deadline_counts_from_client_send (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    char timeout [64];
    //  Sent now: the clocks agree (one host).
    snprintf (timeout, sizeof timeout, "1000@%" PRId64, zclock_mono ());
    s_request (self->client, "now", "echo", "", timeout, "");
    int64_t left;
    char *ticket = s_worker_take_timeout (worker, &left);
    assert_true (left > 900 && left <= 1000);
    s_worker_reply (worker, &ticket, "200", "{}");
    char *body = s_expect_reply (self->client, "now", "200");
    zstr_free (&body);
    //  Sent 600 ms ago, as if it had waited for a stopped broker (and
    //  after the first: an earlier SENT would be another clock's).
    zclock_sleep (700);
    snprintf (timeout, sizeof timeout, "1000@%" PRId64, zclock_mono () - 600);
    s_request (self->client, "waited", "echo", "", timeout, "");
    ticket = s_worker_take_timeout (worker, &left);
    if (left > 450)
        print_error ("the worker was given %" PRId64 " ms, not 400\n", left);
    assert_true (left > 300 && left <= 450);
    s_worker_reply (worker, &ticket, "200", "{}");
    body = s_expect_reply (self->client, "waited", "200");
    zstr_free (&body);
    //  Its deadline passed before it was read.
    snprintf (timeout, sizeof timeout, "500@%" PRId64, zclock_mono () - 600);
    s_request (self->client, "late", "echo", "", timeout, "");
    s_expect_error (self->client, "late", "504", RESV_REASON_NOT_STARTED);
    zstr_sendx (self->client, RESV_PROTO_CLIENT, RESV_CMD_RETRY, "again",
                "echo", "", timeout, "", NULL);
    s_expect_error (self->client, "again", "504", RESV_REASON_DEADLINE);
    assert_null (s_worker_take_within (worker, 100));
    //  Malformed: 400.
    const char *bad [] = { "1000@", "@5", "1000@x", "1000@1@2", "0@5",
                           "1000@1234567890123456789", NULL };
    for (int i = 0; bad [i]; i++) {
        s_request (self->client, "bad", "echo", "", bad [i], "");
        s_expect_error (self->client, "bad", "400", RESV_REASON_MALFORMED);
    }
    zsock_destroy (&worker);
}

//  A client that comes back under the same routing id with another clock
//  (one that names its own, back after a reboot), its SENT far lower, has
//  its deadlines counted from its new clock: the old estimate put them
//  in the past, and every request of it was answered 504 at once.
static void
test_client_back_with_another_clock (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    zsock_t *client = s_client_named (self, "same-client");
    const char *ids [] = { "before", "after", "again" };
    int64_t sent [] = { zclock_mono (), 5, 0 };
    int64_t after_at = 0;       //  When "after" was sent, by our clock
    for (int index = 0; index < 3; index++) {
        char timeout [64];
        if (index == 1)
            after_at = zclock_mono ();
        if (index == 2)         //  As the new clock would say now
            sent [2] = sent [1] + zclock_mono () - after_at;
        snprintf (timeout, sizeof timeout, "1000@%" PRId64, sent [index]);
        s_request (client, ids [index], "echo", "", timeout, "");
        int64_t left;
        char *ticket = s_worker_take_timeout (worker, &left);
        if (left <= 900)
            print_error ("%s: the worker was given %" PRId64 " ms\n",
                         ids [index], left);
        assert_true (left > 900 && left <= 1000);
        s_worker_reply (worker, &ticket, "200", "{}");
        char *body = s_expect_reply (client, ids [index], "200");
        zstr_free (&body);
    }
    zsock_destroy (&client);
    zsock_destroy (&worker);
}

//  An unknown retry for a service with no worker is not answered
//  no_worker at the grace's end (that says nothing was begun): it waits
//  for its deadline and gets deadline_exceeded, as one that waited out
//  its deadline in the queue.
static void
test_unknown_retry_without_worker_waits_for_its_deadline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    int64_t sent = zclock_mono ();
    s_retry (self->client, "r1", "nobody", "900");
    s_request (self->client, "once", "nobody", "", "900", "");
    s_expect_error_at (self->client, "once", "503", RESV_REASON_NO_WORKER,
                       sent, 150, 800);
    s_expect_error_at (self->client, "r1", "504", RESV_REASON_DEADLINE,
                       sent, 850, 2500);
}

//  An unknown retry that outlived its grace with no worker (after a
//  broker's restart, its workers not back yet) waits on in the queue, and
//  goes to the worker that comes before its deadline. Here it is also the
//  half-open circuit's probe, and its success closes the circuit. (Held
//  at the grace's end instead, it was answered 504 at its deadline and
//  undone, though a worker could have done it.)
static void
test_unknown_retry_waits_for_a_worker_past_its_grace (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 1);
    //  Two failures open the circuit (breaker_failures 2).
    for (int i = 0; i < 2; i++) {
        s_request (self->client, "f", "echo", "", "5000", "");
        char *ticket = s_worker_take (worker, NULL);
        s_worker_reply (worker, &ticket, "500", "{}");
        char *body = s_expect_reply (self->client, "f", "500");
        zstr_free (&body);
    }
    //  The worker leaves; after the cool-down, p is the probe, and waits
    //  past its grace (200 ms) with no worker.
    zstr_sendx (worker, RESV_PROTO_WORKER, RESV_CMD_DISCONNECT, NULL);
    s_wait_workers (self, "echo", 0);
    zsock_destroy (&worker);
    zclock_sleep (350);
    s_retry (self->client, "p", "echo", "4000");
    zclock_sleep (500);
    worker = s_worker (self, "echo", "1");
    char *ticket = s_worker_take_within (worker, 2000);
    assert_non_null (ticket);
    assert_true (streq (ticket + strlen (ticket) - 2, ":p"));
    s_worker_reply (worker, &ticket, "200", "{\"done\":true}");
    char *body = s_expect_reply (self->client, "p", "200");
    assert_string_equal (body, "{\"done\":true}");
    zstr_free (&body);
    //  Closed by it: the next request goes through.
    s_request (self->client, "n", "echo", "", "1000", "");
    ticket = s_worker_take_within (worker, 1000);
    assert_non_null (ticket);
    s_worker_reply (worker, &ticket, "200", "{}");
    body = s_expect_reply (self->client, "n", "200");
    zstr_free (&body);
    zsock_destroy (&worker);
}

//  A request whose worker was lost, queued again with no worker to take
//  it, is answered 503 worker_lost at its deadline: it does not count
//  against the service's circuit (no worker failed it), which stays
//  closed for the worker that comes back.
static void
test_lost_without_worker_keeps_circuit_closed (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "4");
    s_wait_workers (self, "echo", 1);
    //  Three requests (breaker_failures 2), lost with their silent worker.
    for (int i = 0; i < 3; i++) {
        char id [8];
        snprintf (id, sizeof id, "r%d", i);
        s_request (self->client, id, "echo", "", "2000", "");
        char *lost = s_worker_take (worker, NULL);
        zstr_free (&lost);
    }
    s_wait_workers (self, "echo", 0);
    zsock_set_rcvtimeo (self->client, 3000);
    for (int i = 0; i < 3; i++) {
        char *rid;
        char *body = s_recv_reply (self->client, "503", &rid);
        assert_non_null (strstr (body, RESV_REASON_WORKER_LOST));
        zstr_free (&rid);
        zstr_free (&body);
    }
    zsock_destroy (&worker);
    worker = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "back", "echo", "", "1000", "");
    char *ticket = s_worker_take_within (worker, 1000);
    assert_non_null (ticket);
    s_worker_reply (worker, &ticket, "200", "{}");
    char *body = s_expect_reply (self->client, "back", "200");
    zstr_free (&body);
    zsock_destroy (&worker);
}

//  A worker that sets its own routing id, crashes holding a request and
//  comes back with the same id before the broker took it for dead: its
//  READY is a new connection, so what the old one held is lost and goes
//  out again (here to the new one), and the new credit counts. The READY
//  was dropped as a repeat: the request waited for its deadline, and the
//  worker, heartbeating, was never given anything meanwhile.
static void
test_worker_back_with_same_identity (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = zsock_new (ZMQ_DEALER);
    zsock_set_identity (worker, "fixed-id");
    zsock_connect (worker, "%s", self->backend);
    zstr_sendx (worker, RESV_PROTO_WORKER, RESV_CMD_READY, "echo", "1", NULL);
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "", "5000", "");
    char *ticket = s_worker_take_within (worker, 1000);
    assert_non_null (ticket);
    zstr_free (&ticket);
    zsock_set_linger (worker, 0);
    zsock_destroy (&worker);
    zclock_sleep (100);
    worker = zsock_new (ZMQ_DEALER);
    zsock_set_identity (worker, "fixed-id");
    zsock_connect (worker, "%s", self->backend);
    zstr_sendx (worker, RESV_PROTO_WORKER, RESV_CMD_READY, "echo", "2", NULL);
    //  Well within the old connection's liveness (3 x 400 ms).
    ticket = s_worker_take_within (worker, 600);
    assert_non_null (ticket);
    s_request (self->client, "r2", "echo", "", "5000", "");
    char *second = s_worker_take_within (worker, 600);
    assert_non_null (second);
    s_worker_reply (worker, &ticket, "200", "{\"again\":true}");
    char *body = s_expect_reply (self->client, "r1", "200");
    assert_string_equal (body, "{\"again\":true}");
    zstr_free (&body);
    s_worker_reply (worker, &second, "200", "new");
    body = s_expect_reply (self->client, "r2", "200");
    zstr_free (&body);
    s_wait_workers (self, "echo", 1);
    zsock_destroy (&worker);
}

//  A worker that answers and closes its connection at once (it exits, is
//  killed, or takes the broker for dead): its reply waits in the backend
//  behind what it sent before, while ZeroMQ already knows the connection
//  gone. A request the broker hands it meanwhile fails (ROUTER_MANDATORY),
//  and the worker must not be removed before its reply is read: its
//  request would go out again (run twice) or fail 503, the answer lost.
//  The broker must read faster than it is sent to for that to show: a
//  few rounds.
static void
s_reply_then_close (fixture_t *self, int round)
{
    zsock_t *worker = zsock_new (ZMQ_DEALER);
    zsock_set_sndhwm (worker, 200000);
    zsock_set_rcvtimeo (worker, 2000);
    zsock_connect (worker, "%s", self->backend);
    zstr_sendx (worker, RESV_PROTO_WORKER, RESV_CMD_READY, "echo", "1000",
                NULL);
    s_wait_workers (self, "echo", 1);
    char r1 [16];
    snprintf (r1, sizeof r1, "r%d", round);
    s_request (self->client, r1, "echo", "", "5000", "");
    char *ticket = s_worker_take (worker, NULL);
    //  Enough in front of the reply for the broker to read it over many
    //  turns of its loop, within its receive high-water mark, sent faster
    //  than it reads them.
    void *handle = zsock_resolve (worker);
    for (int count = 0; count < 90000; count++) {
        zmq_send (handle, RESV_PROTO_WORKER, strlen (RESV_PROTO_WORKER),
                  ZMQ_SNDMORE);
        zmq_send (handle, RESV_CMD_HEARTBEAT, strlen (RESV_CMD_HEARTBEAT), 0);
    }
    s_worker_reply (worker, &ticket, "200", "done");
    zsock_set_linger (worker, 5000);
    zsock_destroy (&worker);
    //  Requests the broker hands the worker while it reads. Those it
    //  handed the worker before it knew the connection closed may have
    //  been done, and are answered at their deadline: a short one.
    for (int index = 0; index < 100; index++) {
        char id [16];
        snprintf (id, sizeof id, "x%d-%d", round, index);
        s_request (self->client, id, "echo", "", "800", "");
        zclock_sleep (1);
    }
    //  r1 is answered as the worker answered it, whatever the others get
    //  (all are answered before the next round's worker comes). The
    //  broker first reads the 90 000 heartbeats, which under the
    //  sanitizers on a loaded machine took longer than the client's usual
    //  2 s wait (make check, once): a bound, not a speed.
    zsock_set_rcvtimeo (self->client, 15000);
    char *status = NULL;
    char *body = NULL;
    for (int replies = 0; replies < 101; replies++) {
        zmsg_t *msg = zmsg_recv (self->client);
        assert_non_null (msg);
        char *header = zmsg_popstr (msg);
        char *command = zmsg_popstr (msg);
        char *id = zmsg_popstr (msg);
        if (id && streq (id, r1)) {
            status = zmsg_popstr (msg);
            body = zmsg_popstr (msg);
        }
        zstr_free (&header);
        zstr_free (&command);
        zstr_free (&id);
        zmsg_destroy (&msg);
    }
    assert_non_null (status);
    if (!streq (status, "200"))
        print_error ("round %d: %s answered %s %s\n", round, r1, status,
                     body);
    assert_string_equal (status, "200");
    assert_string_equal (body, "done");
    zstr_free (&status);
    zstr_free (&body);
    zsock_set_rcvtimeo (self->client, 2000);
    s_wait_workers (self, "echo", 0);
}

static void
test_reply_before_close_not_lost (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    for (int round = 1; round <= 6; round++)
        s_reply_then_close (self, round);
}

static void
test_worker_bye_drains (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "2");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "", "3000", "");
    char *ticket = s_worker_take (worker, NULL);
    zstr_sendx (worker, RESV_PROTO_WORKER, RESV_CMD_DISCONNECT, NULL);
    char *header, *command;
    do {
        zstr_recvx (worker, &header, &command, NULL);
        bool bye = streq (command, RESV_CMD_DISCONNECT);
        zstr_free (&header);
        zstr_free (&command);
        if (bye)
            break;
    } while (true);
    //  No new work after BYE, but the one in hand is still answered.
    s_request (self->client, "r2", "echo", "", "3000", "");
    s_worker_reply (worker, &ticket, "200", "done");
    char *body = s_expect_reply (self->client, "r1", "200");
    zstr_free (&body);
    s_wait_workers (self, "echo", 0);
    s_expect_error (self->client, "r2", "503", RESV_REASON_NO_WORKER);
    zsock_destroy (&worker);
}

//  Tells the broker to STOP and returns once it has taken it: the pipe is
//  read in order, but apart from the client's socket, so once ENDPOINTS
//  is answered STOP has been taken, and what the client sends next comes
//  after it.
static void
s_stop (fixture_t *self)
{
    zstr_send (self->broker, "STOP");
    zstr_send (self->broker, "ENDPOINTS");
    char *endpoints [3];
    assert_int_equal (zstr_recvx (self->broker, &endpoints [0], &endpoints [1],
                                  &endpoints [2], NULL), 3);
    for (int index = 0; index < 3; index++)
        zstr_free (&endpoints [index]);
}

//  The stopping broker says, within a second, that it has stopped.
static void
s_expect_stopped (fixture_t *self)
{
    zpoller_t *poller = zpoller_new (self->broker, NULL);
    assert_non_null (zpoller_wait (poller, 1000));
    assert_int_equal (zsock_wait (self->broker), 0);
    zpoller_destroy (&poller);
}

//  A stopping broker takes no new work, but a worker's call (an internal
//  method; on a broker with a key, any call with the key) made while
//  requests are in flight may be a step of one of them: it was refused
//  503 stopping, and a reserve in flight was undone for it.
static void
test_stop_finishes_in_flight (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "1");
    zsock_t *holder = s_worker (self, "availability", "1");
    s_wait_workers (self, "echo", 1);
    s_wait_workers (self, "availability", 1);
    s_request (self->client, "r1", "echo", "", "3000", "");
    char *ticket = s_worker_take (worker, NULL);
    s_stop (self);
    s_request (self->client, "r2", "echo", "", "3000", "");
    s_expect_error (self->client, "r2", "503", RESV_REASON_STOPPING);
    s_request (self->client, "h1", "availability", "hold", "3000", "{}");
    char *hold = s_worker_take_within (holder, 1000);
    assert_non_null (hold);
    s_worker_reply (holder, &hold, "200", "held");
    char *body = s_expect_reply (self->client, "h1", "200");
    assert_string_equal (body, "held");
    zstr_free (&body);
    //  Not stopped while r1 is in flight.
    zpoller_t *poller = zpoller_new (self->broker, NULL);
    assert_null (zpoller_wait (poller, 100));
    s_worker_reply (worker, &ticket, "200", "");
    body = s_expect_reply (self->client, "r1", "200");
    zstr_free (&body);
    assert_non_null (zpoller_wait (poller, 1000));
    assert_int_equal (zsock_wait (self->broker), 0);
    //  With nothing in flight, a worker's call is new work.
    s_request (self->client, "h2", "availability", "hold", "3000", "{}");
    s_expect_error (self->client, "h2", "503", RESV_REASON_STOPPING);
    zpoller_destroy (&poller);
    zsock_destroy (&worker);
    zsock_destroy (&holder);
}

//  Workers' calls that follow one another, each made while the one
//  before is in flight (two workers' ticks, say, taking turns), kept a
//  stopping broker from ever stopping: each found a request in flight.
//  Only a request taken before the stop makes one a step of unfinished
//  work; once those are done, a worker's call is new work.
static void
test_stop_not_kept_by_workers_calls (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "1");
    zsock_t *holder = s_worker (self, "availability", "2");
    s_wait_workers (self, "echo", 1);
    s_wait_workers (self, "availability", 1);
    s_request (self->client, "r1", "echo", "", "3000", "");
    char *ticket = s_worker_take (worker, NULL);
    s_stop (self);
    //  h1, a step of r1 for all the broker knows, is taken.
    s_request (self->client, "h1", "availability", "hold", "3000", "{}");
    char *hold = s_worker_take_within (holder, 1000);
    assert_non_null (hold);
    s_worker_reply (worker, &ticket, "200", "");
    char *body = s_expect_reply (self->client, "r1", "200");
    zstr_free (&body);
    //  r1 is done; h2 comes while h1 is in flight, and is refused.
    s_request (self->client, "h2", "availability", "hold", "3000", "{}");
    s_expect_no_request (holder, 200);
    s_expect_error (self->client, "h2", "503", RESV_REASON_STOPPING);
    s_worker_reply (holder, &hold, "200", "held");
    body = s_expect_reply (self->client, "h1", "200");
    zstr_free (&body);
    s_expect_stopped (self);
    zsock_destroy (&worker);
    zsock_destroy (&holder);
}

//  A retry the broker does not know, which a stopping broker cannot
//  take, is left unanswered, not refused 503 stopping at once: the broker
//  before it may have done it, and the caller would undo it too soon. Its
//  client sends it again to the next broker, or times out. A request sent
//  once is refused as before.
static void
test_stop_leaves_unknown_retries_unanswered (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *worker = s_worker (self, "echo", "1");
    s_wait_workers (self, "echo", 1);
    s_request (self->client, "r1", "echo", "", "3000", "");
    char *ticket = s_worker_take (worker, NULL);
    s_stop (self);
    s_retry (self->client, "again", "echo", "3000");
    s_request (self->client, "new", "echo", "", "3000", "");
    s_expect_error (self->client, "new", "503", RESV_REASON_STOPPING);
    s_expect_silence (self->client, 300);
    s_worker_reply (worker, &ticket, "200", "");
    char *body = s_expect_reply (self->client, "r1", "200");
    zstr_free (&body);
    s_expect_stopped (self);
    s_expect_silence (self->client, 100);
    zsock_destroy (&worker);
}

//  So is one for a service the broker has no room for (its table of 256
//  full of services in use), where a request sent once gets 503 at once.
static void
test_full_table_leaves_unknown_retries_unanswered (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_set_rcvtimeo (self->client, 5000);
    enum { SERVICES = 256 };
    for (int i = 0; i < SERVICES; i++) {
        char name [16], id [16];
        snprintf (name, sizeof name, "s%d", i);
        snprintf (id, sizeof id, "t%d", i);
        s_request (self->client, id, name, "x", "5000", "");
    }
    s_retry (self->client, "again", "one-more", "5000");
    s_request (self->client, "new", "one-more", "x", "5000", "");
    s_expect_error (self->client, "new", "503", RESV_REASON_NO_WORKER);
    //  The rest at their grace's end (200 ms), no_worker; the retry never.
    for (int i = 0; i < SERVICES; i++) {
        char *rid;
        char *body = s_recv_reply (self->client, "503", &rid);
        assert_non_null (strstr (body, RESV_REASON_NO_WORKER));
        assert_true (rid [0] == 't');
        zstr_free (&rid);
        zstr_free (&body);
    }
    s_expect_silence (self->client, 300);
}

static void
test_bind_failure_returns_null (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  The fixture's broker holds its frontend port: a second one fails.
    setenv ("RESV_BROKER_FRONTEND", self->frontend, 1);
    resv_cfg_t *cfg = resv_cfg_load (NULL);
    assert_null (broker_new (cfg));
    resv_cfg_destroy (&cfg);
    setenv ("RESV_BROKER_FRONTEND", "not-an-endpoint", 1);
    cfg = resv_cfg_load (NULL);
    assert_null (broker_new (cfg));
    resv_cfg_destroy (&cfg);
}

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_ping, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_round_trip, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_heartbeat_carries_the_clock, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_no_worker_503_after_grace, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unused_services_make_room, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_worker_within_grace_serves, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_credit_limits_dispatch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_least_loaded_worker_first, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deadline_504_and_late_reply_dropped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deadline_keeps_the_worker_busy, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_late_reply_waited_for_a_while, s_setup_short_timeout, s_teardown),
        cmocka_unit_test_setup_teardown (test_short_deadlines_keep_circuit_closed, s_setup_min_time, s_teardown),
        cmocka_unit_test_setup_teardown (test_queued_then_hung_opens_circuit, s_setup_min_time_1s, s_teardown),
        cmocka_unit_test_setup_teardown (test_short_probe_lets_the_next_probe, s_setup_min_time, s_teardown),
        cmocka_unit_test_setup_teardown (test_queue_full_429, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_queue_max_zero_still_routes, s_setup_no_queue, s_teardown),
        cmocka_unit_test_setup_teardown (test_breaker_opens_and_closes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deadline_without_worker_keeps_circuit_closed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_failed_probe_reopens, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_malformed_requests_400, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_long_timeout_cut, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_garbage_from_workers_ignored, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_garbage_on_both_ports, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_status_reply_500, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_retry_after_answer_dropped,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_retry_after_lost_reply_runs_again,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reply_to_other_workers_ticket_dropped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_internal_methods_need_the_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_ready_needs_the_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_too_large_request_400, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_retry_in_flight_dropped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_events_publish_read_and_fan_out, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_events_huge_subscription_dropped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_events_publish_keeps_the_text, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_events_publishes_share_a_commit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_routes_while_the_journal_waits, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reads_in_hand_are_bounded, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_events_bad_input_400, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_dead_worker_request_redispatched, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_redispatched_not_started_may_be_done, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_redispatched_failure_waits_for_its_deadline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lost_twice_waits_for_its_deadline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_held_probe_is_done_with, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_retry_not_begun_may_be_done, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_retry_refusal_waits_for_its_deadline, s_setup_no_queue, s_teardown),
        cmocka_unit_test_setup_teardown (test_held_replies_are_bounded, s_setup_no_queue, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_retry_failure_waits_for_its_deadline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_retry_bad_reply_waits_for_its_deadline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_retry_bad_batch_waits_for_its_deadline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_retry_unreadable_success_waits_for_its_deadline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_held_replies_keep_little, s_setup_no_breaker, s_teardown),
        cmocka_unit_test_setup_teardown (test_queued_requests_keep_little, s_setup_long_queue, s_teardown),
        cmocka_unit_test_setup_teardown (test_lost_without_worker_waits_for_its_deadline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deadline_counts_from_client_send, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_client_back_with_another_clock, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_retry_without_worker_waits_for_its_deadline, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_retry_waits_for_a_worker_past_its_grace, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_lost_without_worker_keeps_circuit_closed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_worker_back_with_same_identity, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reply_before_close_not_lost, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_worker_bye_drains, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stop_finishes_in_flight, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stop_not_kept_by_workers_calls, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_stop_leaves_unknown_retries_unanswered, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_full_table_leaves_unknown_retries_unanswered, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bind_failure_returns_null, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("broker", tests, NULL, NULL);
}
