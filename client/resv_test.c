/*  resv_test.c: unit tests of libresv, the client library.

    No broker runs here. Tests of argument checks and of an unreachable
    broker need nothing; tests of the wire codec play the broker's side of
    RESVC1 on a real ROUTER socket, either driven by hand in the test (to
    see every frame, drop replies, hold them back) or, for synchronous
    calls, from a small scripted broker actor (s_fake_broker) that answers:
    -   service "script": to {"status":N,"body":"TEXT","delay":MS} waits
        MS (if given), then replies status N and body TEXT as raw bytes;
    -   service "silent": never replies;
    -   anything else: 200 and {"service":S,"method":M,"body":B}, where B is
        the request body parsed as JSON (null when empty).
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "resv.h"
#include "resv_util.h"
#include <czmq.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

//  How long a test waits for a message that should come.
#define S_WAIT      3000


//  --------------------------------------------------------------------------
//  Helpers

//  A ROUTER on a free loopback port, playing the broker by hand.
static zsock_t *
s_router_new (void)
{
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert_non_null (router);
    zsock_set_sndhwm (router, 100000);
    zsock_set_rcvhwm (router, 100000);
    zsock_set_rcvtimeo (router, S_WAIT);
    zsock_set_linger (router, 0);
    assert_true (zsock_bind (router, "tcp://127.0.0.1:*") > 0);
    return router;
}

//  A client of router, once connected to it: a request sent before the
//  connection is made is refused by the socket (ZMQ_IMMEDIATE) and goes
//  out at the client's next resv_recv or call, which tests that read the
//  router first do not make.
static resv_t *
s_client_of (zsock_t *router)
{
    resv_t *client = resv_new (zsock_endpoint (router));
    assert_non_null (client);
    zmq_pollitem_t item = { resv_socket (client), 0, ZMQ_POLLOUT, 0 };
    assert_int_equal (zmq_poll (&item, 1, S_WAIT), 1);
    return client;
}

//  An endpoint where nothing listens, for as long as the test holds it: a
//  TCP port bound but not listening, so that connections to it are
//  refused and no other process can take it meanwhile.
typedef struct {
    int fd;                     //  The bound socket
    char endpoint [64];         //  tcp://127.0.0.1:PORT
} s_dead_t;

static s_dead_t *
s_dead_new (void)
{
    s_dead_t *dead = (s_dead_t *) calloc (1, sizeof *dead);
    assert_non_null (dead);
    dead->fd = socket (AF_INET, SOCK_STREAM, 0);
    assert_true (dead->fd >= 0);
    struct sockaddr_in address;
    memset (&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    assert_int_equal (bind (dead->fd, (struct sockaddr *) &address,
                            sizeof address), 0);
    socklen_t size = sizeof address;
    assert_int_equal (getsockname (dead->fd, (struct sockaddr *) &address,
                                   &size), 0);
    snprintf (dead->endpoint, sizeof dead->endpoint, "tcp://127.0.0.1:%d",
              ntohs (address.sin_port));
    return dead;
}

static void
s_dead_destroy (s_dead_t **dead_p)
{
    if (*dead_p) {
        close ((*dead_p)->fd);
        free (*dead_p);
        *dead_p = NULL;
    }
}

//  Receives one message on the router, or fails the test after S_WAIT.
static zmsg_t *
s_router_recv (zsock_t *router)
{
    zmsg_t *msg = zmsg_recv (router);
    assert_non_null (msg);
    return msg;
}

//  True if the router gets nothing for wait_ms.
static bool
s_router_quiet (zsock_t *router, int wait_ms)
{
    zpoller_t *poller = zpoller_new (router, NULL);
    void *which = zpoller_wait (poller, wait_ms);
    zpoller_destroy (&poller);
    return which == NULL;
}

//  Sends a reply: identity, RESVC1, REP, id, status, body.
static void
s_router_reply (zsock_t *router, zframe_t *identity, const char *id,
                const char *status, const char *body)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &(zframe_t *) { zframe_dup (identity) });
    zmsg_addstr (msg, RESV_PROTO_CLIENT);
    zmsg_addstr (msg, RESV_CMD_REPLY);
    zmsg_addstr (msg, id);
    zmsg_addstr (msg, status);
    zmsg_addstr (msg, body);
    assert_int_equal (zmsg_send (&msg, router), 0);
}

//  Frame number index of msg as a new string.
static char *
s_frame_str (zmsg_t *msg, size_t index)
{
    zframe_t *frame = zmsg_first (msg);
    for (size_t i = 0; i < index && frame; i++)
        frame = zmsg_next (msg);
    assert_non_null (frame);
    return zframe_strdup (frame);
}

//  The reason word of an error object, or NULL.
static const char *
s_reason (json_t *reply)
{
    return json_string_value (json_object_get (
        json_object_get (reply, "error"), "reason"));
}

//  The message of an error object, or NULL.
static const char *
s_message (json_t *reply)
{
    return json_string_value (json_object_get (
        json_object_get (reply, "error"), "message"));
}

static int64_t
s_code (json_t *reply)
{
    return json_integer_value (json_object_get (
        json_object_get (reply, "error"), "code"));
}

//  The scripted broker actor (see the top of the file).
static void
s_fake_broker (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    zsock_set_linger (router, 0);
    zsock_bind (router, "tcp://127.0.0.1:*");
    zsock_signal (pipe, 0);
    zstr_send (pipe, zsock_endpoint (router));
    zpoller_t *poller = zpoller_new (pipe, router, NULL);
    while (true) {
        void *which = zpoller_wait (poller, -1);
        if (which != router)
            break;              //  $TERM, or interrupted
        zmsg_t *msg = zmsg_recv (router);
        if (!msg || zmsg_size (msg) != RESV_CLIENT_REQ_FRAMES + 1) {
            zmsg_destroy (&msg);
            continue;
        }
        zframe_t *identity = zmsg_pop (msg);
        zframe_destroy (&(zframe_t *) { zmsg_pop (msg) });   //  RESVC1
        zframe_destroy (&(zframe_t *) { zmsg_pop (msg) });   //  REQ
        char *id = zmsg_popstr (msg);
        char *service = zmsg_popstr (msg);
        char *method = zmsg_popstr (msg);
        zframe_destroy (&(zframe_t *) { zmsg_pop (msg) });   //  timeout
        zframe_t *body = zmsg_pop (msg);
        json_t *request = zframe_size (body)
            ? json_loadb ((const char *) zframe_data (body),
                          zframe_size (body), JSON_DECODE_ANY, NULL)
            : json_null ();
        char status [4] = "200";
        char *text = NULL;
        if (streq (service, "script")) {
            zclock_sleep ((int) json_integer_value (
                json_object_get (request, "delay")));
            snprintf (status, sizeof status, "%03d", (int) json_integer_value (
                json_object_get (request, "status")));
            text = strdup (json_string_value (
                json_object_get (request, "body")));
        }
        else
        if (!streq (service, "silent")) {
            json_t *echo = json_pack ("{s:s, s:s, s:O}", "service", service,
                                      "method", method, "body",
                                      request? request: json_null ());
            text = json_dumps (echo, JSON_COMPACT);
            json_decref (echo);
        }
        if (text) {
            zmsg_t *reply = zmsg_new ();
            zmsg_append (reply, &identity);
            zmsg_addstr (reply, RESV_PROTO_CLIENT);
            zmsg_addstr (reply, RESV_CMD_REPLY);
            zmsg_addstr (reply, id);
            zmsg_addstr (reply, status);
            zmsg_addstr (reply, text);
            zmsg_send (&reply, router);
        }
        free (text);
        json_decref (request);
        zframe_destroy (&body);
        zframe_destroy (&identity);
        zstr_free (&id);
        zstr_free (&service);
        zstr_free (&method);
        zmsg_destroy (&msg);
    }
    zpoller_destroy (&poller);
    zsock_destroy (&router);
}

typedef struct {
    zactor_t *broker;           //  The scripted broker, or NULL
    resv_t *client;             //  A client connected to it
} s_fixture_t;

static int
s_with_fake_broker (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) calloc (1, sizeof *fixture);
    fixture->broker = zactor_new (s_fake_broker, NULL);
    assert_non_null (fixture->broker);
    char *endpoint = zstr_recv (fixture->broker);
    fixture->client = resv_new (endpoint);
    assert_non_null (fixture->client);
    resv_set_timeout (fixture->client, S_WAIT);
    zstr_free (&endpoint);
    *state = fixture;
    return 0;
}

static int
s_without_fake_broker (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    resv_destroy (&fixture->client);
    zactor_destroy (&fixture->broker);
    free (fixture);
    return 0;
}


//  --------------------------------------------------------------------------
//  Failures: invalid arguments, refused locally with exact codes

static void
test_new_invalid_endpoint (void **state)
{
    (void) state;
    assert_null (resv_new ("not-an-endpoint"));
    assert_null (resv_new ("tcp://127.0.0.1:notaport"));
    assert_null (resv_new ("nosuch://x"));
    assert_null (resv_new (""));
}

static void
test_call_without_service (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    assert_non_null (client);
    json_t *reply = NULL;
    assert_int_equal (resv_call (client, NULL, "m", NULL, 100, &reply),
                      RESV_BAD_REQUEST);
    assert_string_equal (s_reason (reply), RESV_REASON_BAD_REQUEST);
    assert_int_equal (s_code (reply), RESV_BAD_REQUEST);
    json_decref (reply);
    //  Without a client at all.
    assert_int_equal (resv_call (NULL, "echo", "m", NULL, 100, &reply),
                      RESV_BAD_REQUEST);
    assert_string_equal (s_reason (reply), RESV_REASON_BAD_REQUEST);
    json_decref (reply);
    //  And with nowhere to put the reply.
    assert_int_equal (resv_call (client, NULL, "m", NULL, 100, NULL),
                      RESV_BAD_REQUEST);
    assert_int_equal (resv_inflight (client), 0);
    resv_destroy (&client);
    s_dead_destroy (&dead);
}

static void
test_call_bad_service_names (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    const char *bad [] = {
        "", "Echo", "a b", "a/b", "caf\xc3\xa9", "x\"y",
        "abcdefghijklmnopqrstuvwxyz0123456",    //  33 characters
        NULL
    };
    for (int i = 0; bad [i]; i++) {
        json_t *reply = NULL;
        assert_int_equal (resv_call (client, bad [i], "m", NULL, 100, &reply),
                          RESV_BAD_REQUEST);
        assert_string_equal (s_reason (reply), RESV_REASON_BAD_REQUEST);
        json_decref (reply);
    }
    //  A long name is quoted in part, cut between characters: "x" and 30
    //  two-byte characters, of which 40 bytes hold 19 and half of one.
    char name [64] = "x";
    for (int i = 0; i < 30; i++)
        strcat (name, "\xc3\xa9");
    json_t *reply = NULL;
    assert_int_equal (resv_call (client, name, "m", NULL, 100, &reply),
                      RESV_BAD_REQUEST);
    name [1 + 2 * 19] = 0;
    char quoted [80];
    snprintf (quoted, sizeof quoted, "'%s'", name);
    assert_non_null (strstr (s_message (reply), quoted));
    json_decref (reply);
    assert_int_equal (resv_inflight (client), 0);
    resv_destroy (&client);
    s_dead_destroy (&dead);
}

static void
test_call_bad_method_names (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    const char *bad [] = {
        "Echo", "a b", "a/b", "x\ny",
        "abcdefghijklmnopqrstuvwxyz0123456",    //  33 characters
        NULL
    };
    for (int i = 0; bad [i]; i++) {
        json_t *reply = NULL;
        assert_int_equal (resv_call (client, "echo", bad [i], NULL, 100,
                                     &reply), RESV_BAD_REQUEST);
        assert_string_equal (s_reason (reply), RESV_REASON_BAD_REQUEST);
        json_decref (reply);
    }
    resv_destroy (&client);
    s_dead_destroy (&dead);
}

static void
test_send_invalid (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    assert_int_equal (resv_send (NULL, "echo", "echo", "{}", 2, 100), -1);
    assert_int_equal (resv_send (client, NULL, "echo", "{}", 2, 100), -1);
    assert_int_equal (resv_send (client, "ECHO", "echo", "{}", 2, 100), -1);
    assert_int_equal (resv_send (client, "echo", "e/cho", "{}", 2, 100), -1);
    assert_int_equal (resv_send (client, "echo", "echo", NULL, 5, 100), -1);
    assert_int_equal (resv_inflight (client), 0);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, 0, &reply), -1);
    resv_destroy (&client);
    s_dead_destroy (&dead);
}

static void
test_call_raw_invalid (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    char *body = NULL;
    size_t size = 0;
    assert_int_equal (resv_call_raw (client, "bad service", "", NULL, 0, 100,
                                     &body, &size), RESV_BAD_REQUEST);
    assert_non_null (body);
    assert_int_equal (strlen (body), size);
    json_t *reply = json_loads (body, 0, NULL);
    assert_non_null (reply);
    assert_int_equal (s_code (reply), RESV_BAD_REQUEST);
    assert_string_equal (s_reason (reply), RESV_REASON_BAD_REQUEST);
    json_decref (reply);
    free (body);
    assert_int_equal (resv_call_raw (client, "echo", "", NULL, 3, 100,
                                     NULL, NULL), RESV_BAD_REQUEST);
    //  A body over RESV_FRAME_MAX is refused here, 400 too_large, and not
    //  sent: the broker would drop it unread. One of RESV_FRAME_MAX goes.
    size_t big = (size_t) RESV_FRAME_MAX + 1;
    char *data = (char *) malloc (big);
    assert_non_null (data);
    memset (data, 'x', big);
    assert_int_equal (resv_call_raw (client, "echo", "echo", data, big, 100,
                                     &body, &size), RESV_BAD_REQUEST);
    reply = json_loads (body, 0, NULL);
    assert_non_null (reply);
    assert_string_equal (s_reason (reply), RESV_REASON_TOO_LARGE);
    json_decref (reply);
    free (body);
    assert_int_equal (resv_send (client, "echo", "echo", data, big, 100), -1);
    assert_int_equal (resv_inflight (client), 0);
    assert_true (resv_send (client, "echo", "echo", data, big - 1, 100) > 0);
    assert_int_equal (resv_inflight (client), 1);
    free (data);
    resv_destroy (&client);
    s_dead_destroy (&dead);
}

static void
test_helpers_missing_arguments (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    json_t *reply = NULL;
#   define S_REFUSED(call) do { \
        reply = NULL; \
        assert_int_equal ((call), RESV_BAD_REQUEST); \
        assert_string_equal (s_reason (reply), RESV_REASON_BAD_REQUEST); \
        json_decref (reply); \
    } while (0)
    S_REFUSED (resv_resource_show (client, NULL, &reply));
    S_REFUSED (resv_resource_show (client, "", &reply));
    S_REFUSED (resv_resource_add (client, NULL, &reply));
    json_t *array = json_array ();
    S_REFUSED (resv_resource_add (client, array, &reply));
    S_REFUSED (resv_resource_update (client, "r1", NULL, NULL, &reply));
    S_REFUSED (resv_resource_remove (client, "r1", "", &reply));
    S_REFUSED (resv_availability (client, "r1", NULL, 1, &reply));
    S_REFUSED (resv_reserve (client, NULL, &reply));
    S_REFUSED (resv_cancel (client, "x1", NULL, &reply));
    S_REFUSED (resv_approve (client, NULL, "o", &reply));
    S_REFUSED (resv_decline (client, "x1", NULL, "why", &reply));
    S_REFUSED (resv_status (client, NULL, &reply));
    S_REFUSED (resv_history (client, "", &reply));
    S_REFUSED (resv_notifications (client, NULL, &reply));
    S_REFUSED (resv_notifications_query (client, NULL, &reply));
    S_REFUSED (resv_notifications_query (client, array, &reply));
    S_REFUSED (resv_resource_query (client, array, &reply));
    S_REFUSED (resv_list (client, array, &reply));
    json_decref (array);
    S_REFUSED (resv_scale (client, "Bad Name", 1, &reply));
    S_REFUSED (resv_scale (client, "echo", -1, &reply));
    //  Nothing of that went out.
    assert_true (s_router_quiet (router, 100));
    assert_int_equal (resv_inflight (client), 0);
    resv_destroy (&client);
    zsock_destroy (&router);
}

//  A query whose filter is not a JSON object says so, whichever query it
//  is; one of notifications without a customer says that.
static void
test_query_filter_not_object (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    json_t *filters [3] = { json_array (), json_string ("c1"),
                            json_integer (1) };
    for (int i = 0; i < 3; i++) {
        json_t *replies [3] = { NULL, NULL, NULL };
        assert_int_equal (resv_notifications_query (client, filters [i],
                                                    &replies [0]),
                          RESV_BAD_REQUEST);
        assert_int_equal (resv_resource_query (client, filters [i],
                                               &replies [1]),
                          RESV_BAD_REQUEST);
        assert_int_equal (resv_list (client, filters [i], &replies [2]),
                          RESV_BAD_REQUEST);
        for (int j = 0; j < 3; j++) {
            assert_string_equal (s_reason (replies [j]),
                                 RESV_REASON_BAD_REQUEST);
            assert_non_null (strstr (s_message (replies [j]),
                                     ": the filter must be a JSON object"));
            json_decref (replies [j]);
        }
        json_decref (filters [i]);
    }
    json_t *empty = json_object ();
    json_t *reply = NULL;
    assert_int_equal (resv_notifications_query (client, empty, &reply),
                      RESV_BAD_REQUEST);
    assert_string_equal (s_message (reply), "customer is required");
    json_decref (reply);
    assert_int_equal (resv_notifications_query (client, NULL, &reply),
                      RESV_BAD_REQUEST);
    assert_string_equal (s_message (reply), "customer is required");
    json_decref (reply);
    json_decref (empty);
    //  Nothing of that went out.
    assert_true (s_router_quiet (router, 100));
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_strstatus_unknown (void **state)
{
    (void) state;
    assert_string_equal (resv_strstatus (0), "unknown status");
    assert_string_equal (resv_strstatus (-1), "unknown status");
    assert_string_equal (resv_strstatus (999), "unknown status");
}

//  Random ids: hex, never repeated across refills of the thread's pool,
//  and a forked child never hands out what its parent will.
static void
test_random_hex (void **state)
{
    (void) state;
    zhashx_t *seen = zhashx_new ();
    char id [21];
    for (int i = 0; i < 1000; i++) {
        assert_int_equal (resv_random_hex (id, 10), 0);
        assert_int_equal (strlen (id), 20);
        assert_int_equal (strspn (id, "0123456789abcdef"), 20);
        assert_int_equal (zhashx_insert (seen, id, (void *) 1), 0);
    }
    zhashx_destroy (&seen);

    int fds [2];
    assert_int_equal (pipe (fds), 0);
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        char theirs [21];
        int rc = resv_random_hex (theirs, 10);
        ssize_t written = rc == 0? write (fds [1], theirs, 20): -1;
        _exit (written == 20? 0: 1);
    }
    char mine [21], theirs [21] = "";
    assert_int_equal (resv_random_hex (mine, 10), 0);
    assert_int_equal (read (fds [0], theirs, 20), 20);
    int status;
    assert_int_equal (waitpid (child, &status, 0), child);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    assert_string_not_equal (mine, theirs);
    close (fds [0]);
    close (fds [1]);
}

//  The 128-bit hash gives the same digits on every build: ids derived
//  from it (reservations by request, events caused by others) are stored,
//  and must come out the same after an upgrade. These values are those
//  of the first version.
static void
test_hash128_known (void **state)
{
    (void) state;
    char hex [RESV_HASH_SIZE];
    const char *parts [] = { "", "cora", "r0123456789abcdef",
                             "reservation.confirmed" };
    assert_string_equal (resv_hash128 (parts, 4, hex),
                         "cc2ff85f0ca6928a080e65e2d6204724");
    const char *caused [] = { "e019cd4a2f1b3c8e9a7f0d1e2c3b4a59687",
                              "payment.captured" };
    assert_string_equal (resv_hash128 (caused, 2, hex),
                         "4865d118ca3389e999a2624ad0d5e403");
}

//  resv_decimal writes what "%" PRId64 writes, at the ends of the range
//  and across it.
static void
test_decimal (void **state)
{
    (void) state;
    int64_t values [] = { 0, 1, -1, 9, 10, -10, 99, 100, 12345, -987654321,
                          INT64_MAX, INT64_MIN, INT64_MAX - 1, INT64_MIN + 1 };
    for (size_t index = 0; index < sizeof values / sizeof values [0]; index++) {
        char mine [RESV_DECIMAL_SIZE], theirs [32];
        size_t size = resv_decimal (values [index], mine);
        snprintf (theirs, sizeof theirs, "%" PRId64, values [index]);
        assert_string_equal (mine, theirs);
        assert_int_equal (size, strlen (theirs));
    }
    uint64_t value = 1;
    for (int index = 0; index < 100000; index++) {
        value = value * 6364136223846793005ULL + 1442695040888963407ULL;
        int64_t signed_value = (int64_t) (value >> (index % 64));
        char mine [RESV_DECIMAL_SIZE], theirs [32];
        resv_decimal (signed_value, mine);
        snprintf (theirs, sizeof theirs, "%" PRId64, signed_value);
        assert_string_equal (mine, theirs);
    }
}

//  resv_parse_int takes all of a decimal text within its range, and
//  nothing else: the CLI's, the config's and the benchmarks' numbers.
static void
test_parse_int (void **state)
{
    (void) state;
    static const struct { const char *text; int64_t value; } good [] = {
        { "0", 0 }, { "7", 7 }, { "-3", -3 }, { "+5", 5 }, { "0010", 10 },
        { "100", 100 }, { "-100", -100 }
    };
    for (size_t index = 0; index < sizeof good / sizeof good [0]; index++) {
        int64_t value = 12345;
        assert_int_equal (resv_parse_int (good [index].text, -100, 100, &value), 0);
        assert_int_equal (value, good [index].value);
    }
    static const char *bad [] = {
        "", " 1", "\t1", "1 ", "1x", "x1", "1.5", "0x10", "1e2", "--1",
        "101", "-101", "99999999999999999999", NULL
    };
    for (size_t index = 0; bad [index]; index++) {
        int64_t value = 12345;
        assert_int_equal (resv_parse_int (bad [index], -100, 100, &value), -1);
        assert_int_equal (value, 12345);    //  Untouched on failure
    }
    int64_t value = 0;
    assert_int_equal (resv_parse_int (NULL, 0, 1, &value), -1);
    assert_int_equal (resv_parse_int ("9223372036854775807", 0, INT64_MAX, &value), 0);
    assert_true (value == INT64_MAX);
    assert_int_equal (resv_parse_int ("-9223372036854775808", INT64_MIN, 0, &value), 0);
    assert_true (value == INT64_MIN);
    assert_int_equal (resv_parse_int ("9223372036854775808", 0, INT64_MAX, &value), -1);
}

//  A repeated log line is due the first time, then once per interval,
//  saying how many were left out; clearing makes the next one due at once.
static void
test_log_limit (void **state)
{
    (void) state;
    resv_log_limit_t limit = { 0, 0, 0 };
    unsigned skipped = 99;
    assert_true (resv_log_due (&limit, 60000, &skipped));
    assert_int_equal (skipped, 0);
    for (int index = 0; index < 5; index++)
        assert_false (resv_log_due (&limit, 60000, &skipped));
    //  The interval has passed (as if 60 s later).
    limit.next = 0;
    assert_true (resv_log_due (&limit, 60000, &skipped));
    assert_int_equal (skipped, 5);
    assert_false (resv_log_due (&limit, 60000, &skipped));
    assert_int_equal (resv_log_clear (&limit), 8);
    assert_int_equal (resv_log_clear (&limit), 0);
    assert_true (resv_log_due (&limit, 60000, &skipped));
    assert_int_equal (skipped, 0);
}

//  --------------------------------------------------------------------------
//  Failures: no broker, a silent broker, bad replies

static void
test_unreachable_sync (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    assert_non_null (client);
    int64_t start = zclock_mono ();
    json_t *reply = NULL;
    assert_int_equal (resv_call (client, "echo", "echo", NULL, 200, &reply),
                      RESV_TIMEOUT);
    int64_t elapsed = zclock_mono () - start;
    assert_string_equal (s_reason (reply), RESV_REASON_UNREACHABLE);
    assert_int_equal (s_code (reply), RESV_TIMEOUT);
    //  The deadline, plus the grace given to a broker's own 504.
    assert_true (elapsed >= 200);
    assert_true (elapsed < 1000);
    json_decref (reply);
    assert_int_equal (resv_inflight (client), 0);
    //  The helpers time out the same way, with the client's default.
    resv_set_timeout (client, 100);
    start = zclock_mono ();
    assert_int_equal (resv_ping (client, &reply), RESV_TIMEOUT);
    assert_true (zclock_mono () - start < 1000);
    assert_string_equal (s_reason (reply), RESV_REASON_UNREACHABLE);
    json_decref (reply);
    resv_destroy (&client);
    s_dead_destroy (&dead);
}

static void
test_unreachable_async (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    //  Sent in one order, deadlines in another.
    int timeouts [4] = { 300, 100, 250, 150 };
    int order [4] = { 1, 3, 2, 0 };     //  By deadline
    int64_t handles [4];
    for (int i = 0; i < 4; i++) {
        handles [i] = resv_send (client, "echo", "echo", "{}", 2,
                                 timeouts [i]);
        assert_true (handles [i] > 0);
    }
    assert_int_equal (resv_inflight (client), 4);
    int64_t start = zclock_mono ();
    for (int i = 0; i < 4; i++) {
        resv_reply_t reply;
        assert_int_equal (resv_recv (client, -1, &reply), 0);
        //  Expiry follows the deadlines: shortest first.
        assert_int_equal (reply.handle, handles [order [i]]);
        assert_int_equal (reply.status, RESV_TIMEOUT);
        json_t *body = json_loadb (reply.body, reply.size, 0, NULL);
        assert_string_equal (s_reason (body), RESV_REASON_UNREACHABLE);
        json_decref (body);
        free (reply.body);
    }
    assert_true (zclock_mono () - start < 1500);
    assert_int_equal (resv_inflight (client), 0);
    resv_reply_t reply;
    start = zclock_mono ();
    assert_int_equal (resv_recv (client, -1, &reply), -1);
    assert_true (zclock_mono () - start < 100);
    resv_destroy (&client);
    s_dead_destroy (&dead);
}

static void
test_recv_nothing_in_flight (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    resv_reply_t reply;
    int64_t start = zclock_mono ();
    assert_int_equal (resv_recv (client, -1, &reply), -1);
    assert_int_equal (resv_recv (client, 1000, &reply), -1);
    assert_true (zclock_mono () - start < 100);
    assert_int_equal (resv_recv (client, 0, NULL), -1);
    assert_int_equal (resv_recv (NULL, 0, &reply), -1);
    resv_destroy (&client);
    s_dead_destroy (&dead);
}

static void
test_unknown_reply_dropped (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    resv_set_retry (client, 0);
    int64_t handle = resv_send (client, "echo", "echo", "{}", 2, S_WAIT);
    assert_true (handle > 0);
    zmsg_t *request = s_router_recv (router);
    zframe_t *identity = zmsg_first (request);
    char *id = s_frame_str (request, 3);
    //  Same prefix, a counter never used; another prefix; no prefix.
    char other [80];
    snprintf (other, sizeof other, "%.9s%x", id, 0xabcde);
    s_router_reply (router, identity, other, "200", "\"unknown\"");
    s_router_reply (router, identity, "00000000-1", "200", "\"foreign\"");
    s_router_reply (router, identity, "1", "200", "\"short\"");
    //  Not a RESVC1 reply: a bad header.
    zmsg_t *bad = zmsg_new ();
    zmsg_append (bad, &(zframe_t *) { zframe_dup (identity) });
    zmsg_addstr (bad, "RESVC0");
    zmsg_addstr (bad, RESV_CMD_REPLY);
    zmsg_addstr (bad, id);
    zmsg_addstr (bad, "200");
    zmsg_addstr (bad, "\"bad header\"");
    zmsg_send (&bad, router);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, 300, &reply), -1);
    assert_int_equal (resv_inflight (client), 1);
    //  The real reply still gets through, once.
    s_router_reply (router, identity, id, "200", "\"real\"");
    s_router_reply (router, identity, id, "200", "\"duplicate\"");
    assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
    assert_int_equal (reply.handle, handle);
    assert_int_equal (reply.status, RESV_OK);
    assert_string_equal (reply.body, "\"real\"");
    free (reply.body);
    assert_int_equal (resv_recv (client, 200, &reply), -1);
    assert_int_equal (resv_inflight (client), 0);
    zstr_free (&id);
    zmsg_destroy (&request);
    resv_destroy (&client);
    zsock_destroy (&router);
}

//  Sends identity, RESVC1, REP, then the count frames given as strings.
static void
s_router_send (zsock_t *router, zframe_t *identity, int count, ...)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_append (msg, &(zframe_t *) { zframe_dup (identity) });
    zmsg_addstr (msg, RESV_PROTO_CLIENT);
    zmsg_addstr (msg, RESV_CMD_REPLY);
    va_list args;
    va_start (args, count);
    for (int i = 0; i < count; i++)
        zmsg_addstr (msg, va_arg (args, const char *));
    va_end (args);
    assert_int_equal (zmsg_send (&msg, router), 0);
}

//  resv_reply_json, which resv_call and the workers' events_call share:
//  what a status and a body become.
static void
test_reply_json (void **state)
{
    (void) state;
    int status = 200;
    json_t *reply = resv_reply_json (&status, NULL, 0);
    assert_true (json_is_object (reply) && json_object_size (reply) == 0);
    json_decref (reply);
    status = 200;
    reply = resv_reply_json (&status, "[1,2]", 5);
    assert_int_equal (status, 200);
    assert_int_equal (json_array_size (reply), 2);
    json_decref (reply);
    //  A success that is not JSON is a failure, quoted.
    status = 200;
    reply = resv_reply_json (&status, "oops", 4);
    assert_int_equal (status, 500);
    json_t *error = json_object_get (reply, "error");
    assert_int_equal (json_integer_value (json_object_get (error, "code")), 500);
    assert_non_null (strstr (json_string_value (json_object_get (error,
                             "message")), "oops"));
    json_decref (reply);
    //  A failure's error object as it came; anything else wrapped in one.
    status = 409;
    const char *conflict = "{\"error\":{\"code\":409,\"reason\":\"conflict\","
                           "\"message\":\"no\"}}";
    reply = resv_reply_json (&status, conflict, strlen (conflict));
    assert_string_equal (json_string_value (json_object_get (json_object_get (
                         reply, "error"), "message")), "no");
    json_decref (reply);
    status = 503;
    reply = resv_reply_json (&status, "\"busy\"", 6);
    assert_int_equal (status, 503);
    error = json_object_get (reply, "error");
    assert_int_equal (json_integer_value (json_object_get (error, "code")), 503);
    assert_non_null (strstr (json_string_value (json_object_get (error,
                             "message")), "busy"));
    json_decref (reply);
    status = 504;
    reply = resv_reply_json (&status, NULL, 0);
    assert_int_equal (json_integer_value (json_object_get (json_object_get (
                      reply, "error"), "code")), 504);
    json_decref (reply);
}

//  A reply the client cannot read fails the request it names at once with
//  500 "malformed", rather than leaving it to time out; one that names no
//  request in flight fails none, but a request that times out says that
//  one was heard.
static void
test_malformed_reply_fails_request (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    resv_set_retry (client, 0);
    //  Too few frames, too many, then statuses that are not 3 digits or
    //  not of the classes resv answers with (2xx, 4xx, 5xx).
    const char *statuses [] = { NULL, NULL, "2x0", "20", "100", "302", "600",
                                "000" };
    for (int i = 0; i < (int) (sizeof statuses / sizeof statuses [0]); i++) {
        int64_t start = zclock_mono ();
        int64_t handle = resv_send (client, "echo", "echo", "{}", 2, S_WAIT);
        assert_true (handle > 0);
        zmsg_t *request = s_router_recv (router);
        zframe_t *identity = zmsg_first (request);
        char *id = s_frame_str (request, 3);
        if (i == 0)
            s_router_send (router, identity, 2, id, "200");
        else
        if (i == 1)
            s_router_send (router, identity, 4, id, "200", "{}", "more");
        else
            s_router_send (router, identity, 3, id, statuses [i], "{}");
        resv_reply_t reply;
        assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
        assert_true (zclock_mono () - start < 1000);
        assert_int_equal (reply.handle, handle);
        assert_int_equal (reply.status, RESV_INTERNAL);
        json_t *body = json_loadb (reply.body, reply.size, 0, NULL);
        assert_string_equal (s_reason (body), RESV_REASON_MALFORMED);
        assert_int_equal (s_code (body), RESV_INTERNAL);
        const char *message = json_string_value (json_object_get (
            json_object_get (body, "error"), "message"));
        assert_non_null (strstr (message, "malformed reply"));
        //  It says what is wrong: a 302 is 3 digits, of a class resv
        //  never answers with.
        if (i >= 4) {
            char expected [80];
            snprintf (expected, sizeof expected, "its status, %s, is not "
                      "2xx, 4xx or 5xx", statuses [i]);
            assert_non_null (strstr (message, expected));
        }
        else
        if (i >= 2)
            assert_non_null (strstr (message, "its status is not 3 digits"));
        json_decref (body);
        free (reply.body);
        //  The real reply, later, finds nothing to complete.
        s_router_reply (router, identity, id, "200", "{}");
        assert_int_equal (resv_recv (client, 100, &reply), -1);
        assert_int_equal (resv_inflight (client), 0);
        zstr_free (&id);
        zmsg_destroy (&request);
    }
    //  Without an id, or with one not in flight: nothing to fail.
    int64_t handle = resv_send (client, "echo", "echo", "{}", 2, 300);
    zmsg_t *request = s_router_recv (router);
    zframe_t *identity = zmsg_first (request);
    s_router_send (router, identity, 0);
    s_router_send (router, identity, 2, "00000000-1", "200");
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
    assert_int_equal (reply.handle, handle);
    assert_int_equal (reply.status, RESV_TIMEOUT);
    json_t *body = json_loadb (reply.body, reply.size, 0, NULL);
    assert_string_equal (s_reason (body), RESV_REASON_DEADLINE);
    const char *message = json_string_value (json_object_get (
        json_object_get (body, "error"), "message"));
    assert_non_null (strstr (message, "malformed"));
    json_decref (body);
    free (reply.body);
    zmsg_destroy (&request);
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_deadline_exceeded_reason (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    int64_t handle = resv_send (client, "echo", "echo", NULL, 0, 200);
    zmsg_t *request = s_router_recv (router);
    //  The broker is heard from, but never answers this request.
    s_router_reply (router, zmsg_first (request), "nobody", "200", "{}");
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
    assert_int_equal (reply.handle, handle);
    assert_int_equal (reply.status, RESV_TIMEOUT);
    json_t *body = json_loadb (reply.body, reply.size, 0, NULL);
    assert_string_equal (s_reason (body), RESV_REASON_DEADLINE);
    assert_int_equal (s_code (body), RESV_TIMEOUT);
    json_decref (body);
    free (reply.body);
    zmsg_destroy (&request);
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_foreign_message_is_not_the_broker (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    int64_t handle = resv_send (client, "echo", "echo", NULL, 0, 200);
    zmsg_t *request = s_router_recv (router);
    //  What a worker backend says to a stranger, and a request echoed
    //  back: neither is a broker frontend's reply.
    zmsg_t *bye = zmsg_new ();
    zmsg_append (bye, &(zframe_t *) { zframe_dup (zmsg_first (request)) });
    zmsg_addstr (bye, RESV_PROTO_WORKER);
    zmsg_addstr (bye, RESV_CMD_DISCONNECT);
    zmsg_send (&bye, router);
    zmsg_t *echo = zmsg_dup (request);
    zmsg_send (&echo, router);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
    assert_int_equal (reply.handle, handle);
    assert_int_equal (reply.status, RESV_TIMEOUT);
    json_t *body = json_loadb (reply.body, reply.size, 0, NULL);
    assert_string_equal (s_reason (body), RESV_REASON_UNREACHABLE);
    json_decref (body);
    free (reply.body);
    zmsg_destroy (&request);
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_retry_off (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    resv_set_retry (client, 0);
    resv_send (client, "echo", "echo", NULL, 0, 400);
    zmsg_t *request = s_router_recv (router);
    zmsg_destroy (&request);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
    assert_int_equal (reply.status, RESV_TIMEOUT);
    free (reply.body);
    //  One request out, never a second.
    assert_true (s_router_quiet (router, 100));
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_non_json_reply (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    json_t *reply = NULL;
    json_t *script = json_pack ("{s:i, s:s}", "status", 200,
                                "body", "this is not JSON");
    assert_int_equal (resv_call (fixture->client, "script", "", script, 0,
                                 &reply), RESV_INTERNAL);
    assert_string_equal (s_reason (reply), RESV_REASON_INTERNAL);
    assert_int_equal (s_code (reply), RESV_INTERNAL);
    const char *message = json_string_value (json_object_get (
        json_object_get (reply, "error"), "message"));
    assert_non_null (strstr (message, "this is not JSON"));
    json_decref (reply);
    json_decref (script);
}

//  A quoted body cut to fit an error message is cut between characters:
//  the message keeps the characters it quotes, where a cut through one
//  made it invalid UTF-8 and every character not ASCII became '?'.
static void
test_quoted_body_cut_at_character (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    //  "x" and 150 two-byte characters: 200 bytes end inside the 100th.
    char text [400] = "x";
    char expected [400] = "x";
    for (int i = 0; i < 150; i++)
        strcat (text, "\xc3\xa9");
    for (int i = 0; i < 99; i++)
        strcat (expected, "\xc3\xa9");
    strcat (expected, "...");
    //  A success that is not JSON, then an error that is JSON but not an
    //  error object, whose text is quoted in its place: the string of the
    //  150 characters, whose 200 bytes end inside the 100th too.
    char quoted [410];
    snprintf (quoted, sizeof quoted, "\"%s\"", text + 1);
    int statuses [2] = { 200, 404 };
    const char *bodies [2] = { text, quoted };
    for (int i = 0; i < 2; i++) {
        json_t *script = json_pack ("{s:i, s:s}", "status", statuses [i],
                                    "body", bodies [i]);
        json_t *reply = NULL;
        assert_int_equal (resv_call (fixture->client, "script", "", script, 0,
                                     &reply), i == 0? RESV_INTERNAL
                                                    : RESV_NOT_FOUND);
        const char *message = s_message (reply);
        assert_non_null (message);
        assert_null (strchr (message, '?'));
        assert_non_null (strstr (message, i == 0? expected: expected + 1));
        json_decref (reply);
        json_decref (script);
    }
}

//  A success whose JSON holds \u0000 in a string is JSON all the same.
static void
test_reply_with_escaped_nul (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    json_t *reply = NULL;
    json_t *script = json_pack ("{s:i, s:s}", "status", 200,
                                "body", "{\"a\":\"x\\u0000y\"}");
    assert_int_equal (resv_call (fixture->client, "script", "", script, 0,
                                 &reply), RESV_OK);
    assert_int_equal (json_string_length (json_object_get (reply, "a")), 3);
    json_decref (reply);
    json_decref (script);
}

static void
test_error_reply_without_body (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    json_t *reply = NULL;
    json_t *script = json_pack ("{s:i, s:s}", "status", 503, "body", "");
    //  The status stands; the library makes up the error object.
    assert_int_equal (resv_call (fixture->client, "script", "", script, 0,
                                 &reply), RESV_UNAVAILABLE);
    assert_int_equal (s_code (reply), RESV_UNAVAILABLE);
    assert_non_null (s_reason (reply));
    json_decref (reply);
    json_decref (script);
    script = json_pack ("{s:i, s:s}", "status", 404, "body", "[1,2]");
    assert_int_equal (resv_call (fixture->client, "script", "", script, 0,
                                 &reply), RESV_NOT_FOUND);
    assert_int_equal (s_code (reply), RESV_NOT_FOUND);
    assert_string_equal (s_reason (reply), RESV_REASON_NOT_FOUND);
    json_decref (reply);
    json_decref (script);
}

static void
test_error_reply_passes_through (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    const char *error = "{\"error\":{\"code\":409,\"reason\":\"no_capacity\","
                        "\"message\":\"r-42 is full on 2030-01-01\"}}";
    json_t *script = json_pack ("{s:i, s:s}", "status", 409, "body", error);
    json_t *reply = NULL;
    assert_int_equal (resv_call (fixture->client, "script", "", script, 0,
                                 &reply), RESV_CONFLICT);
    json_t *expected = json_loads (error, 0, NULL);
    assert_true (json_equal (reply, expected));
    json_decref (expected);
    json_decref (reply);
    json_decref (script);
}

static void
test_broker_timeout_comes_first (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    //  The broker answers 504 just after the deadline, as a live broker
    //  does: the caller sees the broker's answer, not a local one.
    const char *error = "{\"error\":{\"code\":504,\"reason\":"
                        "\"deadline_exceeded\",\"message\":\"from the"
                        " broker\"}}";
    json_t *script = json_pack ("{s:i, s:s, s:i}", "status", 504,
                                "body", error, "delay", 220);
    json_t *reply = NULL;
    assert_int_equal (resv_call (fixture->client, "script", "", script, 200,
                                 &reply), RESV_TIMEOUT);
    json_t *expected = json_loads (error, 0, NULL);
    assert_true (json_equal (reply, expected));
    json_decref (expected);
    json_decref (reply);
    json_decref (script);
}


//  --------------------------------------------------------------------------
//  Successes

//  A request the socket never took (no broker connected) is given up at
//  its deadline: no broker has it, so there is no 504 of its own to wait
//  for. It waited S_EXPIRE_GRACE (250 ms) past it, for nothing, as one
//  that went out does: here 350 ms for a deadline of 100.
static void
test_unsent_request_ends_at_its_deadline (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    assert_non_null (client);
    resv_set_retry (client, 0);
    int64_t handle = resv_send (client, "echo", "echo", NULL, 0, 100);
    assert_true (handle > 0);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, 300, &reply), 0);
    assert_int_equal (reply.handle, handle);
    assert_int_equal (reply.status, RESV_TIMEOUT);
    assert_non_null (strstr (reply.body, "broker_unreachable"));
    free (reply.body);
    resv_destroy (&client);
    s_dead_destroy (&dead);
}

//  resv_send_waits says 0 once the request that waited for the socket has
//  ended: it said 1 for good, and a loop that waits for ZMQ_POLLOUT while
//  it says 1 then woke at once, for ever, with nothing in flight.
static void
test_send_waits_ends_with_its_request (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    assert_non_null (client);
    resv_set_retry (client, 0);
    assert_true (resv_send (client, "echo", "echo", NULL, 0, 100) > 0);
    assert_int_equal (resv_send_waits (client), 1);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
    assert_int_equal (reply.status, RESV_TIMEOUT);
    free (reply.body);
    assert_int_equal (resv_send_waits (client), 0);
    resv_destroy (&client);
    s_dead_destroy (&dead);
}

//  A reply behind more late replies than one read takes (600, for requests
//  given up on) is read before its request's timers run, however late the
//  caller comes: it was given up as unanswered, its reply unread.
static void
test_reply_behind_many_late_ones_is_read (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    resv_set_retry (client, 0);
    enum { LATE = 600 };
    char *ids [LATE];
    zframe_t *identity = NULL;
    for (int i = 0; i < LATE; i++)
        assert_true (resv_send (client, "echo", "echo", NULL, 0, 50) > 0);
    for (int i = 0; i < LATE; i++) {
        zmsg_t *msg = s_router_recv (router);
        if (!identity)
            identity = zframe_dup (zmsg_first (msg));
        ids [i] = s_frame_str (msg, 3);
        zmsg_destroy (&msg);
    }
    resv_reply_t reply;
    for (int i = 0; i < LATE; i++) {
        assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
        assert_int_equal (reply.status, RESV_TIMEOUT);
        free (reply.body);
    }
    int64_t handle = resv_send (client, "echo", "echo", NULL, 0, 1500);
    assert_true (handle > 0);
    zmsg_t *msg = s_router_recv (router);
    char *id = s_frame_str (msg, 3);
    zmsg_destroy (&msg);
    for (int i = 0; i < LATE; i++) {
        s_router_reply (router, identity, ids [i], "200", "{}");
        zstr_free (&ids [i]);
    }
    s_router_reply (router, identity, id, "200", "{\"a\":1}");
    zstr_free (&id);
    zclock_sleep (1900);        //  Past its deadline, and its grace
    assert_int_equal (resv_recv (client, 0, &reply), 0);
    assert_int_equal (reply.handle, handle);
    assert_int_equal (reply.status, 200);
    free (reply.body);
    zframe_destroy (&identity);
    resv_destroy (&client);
    zsock_destroy (&router);
}

//  Nothing is kept in the socket while no broker is there: a request made
//  then goes out once one comes, with the time left and the clock reading
//  of when it goes, and one the client gave up on meanwhile never does.
//  Kept, the first came with the time left when it was made, and a broker
//  just started counted it from when it read it: a deadline later than the
//  client's (past the one here by the whole wait); and the second came
//  after the client had answered itself 504.
static void
test_nothing_kept_while_no_broker (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    assert_non_null (client);
    resv_set_retry (client, 0);
    int64_t gone = resv_send (client, "echo", "gone", NULL, 0, 200);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
    assert_int_equal (reply.handle, gone);
    assert_int_equal (reply.status, RESV_TIMEOUT);
    free (reply.body);
    int64_t made = zclock_mono ();
    int64_t later = resv_send (client, "echo", "later", NULL, 0, 5000);
    assert_true (later > 0);
    assert_int_equal (resv_recv (client, 400, &reply), -1);
    assert_int_equal (resv_send_waits (client), 1);
    //  The broker comes, on the port nothing listened on.
    char endpoint [64];
    snprintf (endpoint, sizeof endpoint, "%s", dead->endpoint);
    s_dead_destroy (&dead);
    zsock_t *router = zsock_new (ZMQ_ROUTER);
    assert_non_null (router);
    zsock_set_linger (router, 0);
    zsock_set_rcvtimeo (router, S_WAIT);
    assert_true (zsock_bind (router, "%s", endpoint) > 0);
    int64_t came = zclock_mono ();
    //  The client sends as it waits for replies.
    for (int i = 0; i < S_WAIT / 10 && s_router_quiet (router, 0); i++)
        assert_int_equal (resv_recv (client, 10, &reply), -1);
    zmsg_t *msg = s_router_recv (router);
    char *method = s_frame_str (msg, 5);
    char *timeout = s_frame_str (msg, 6);
    assert_string_equal (method, "later");
    char *at = strchr (timeout, '@');
    assert_non_null (at);
    int64_t left = atoll (timeout), sent = atoll (at + 1);
    assert_true (sent >= came);
    assert_true (llabs (sent + left - (made + 5000)) <= 20);
    zstr_free (&method);
    zstr_free (&timeout);
    zmsg_destroy (&msg);
    assert_int_equal (resv_send_waits (client), 0);
    //  And the one given up on never comes.
    assert_true (s_router_quiet (router, 300));
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_request_frames (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    const char body [] = "{\"a\":1}\0tail";     //  Raw bytes, NUL inside
    int64_t handle = resv_send (client, "availability", "resource.add", body,
                                sizeof body - 1, 1500);
    assert_true (handle > 0);
    zmsg_t *msg = s_router_recv (router);
    //  ROUTER identity plus the 7 frames of RESVC1 REQ.
    assert_int_equal (zmsg_size (msg), 1 + RESV_CLIENT_REQ_FRAMES);
    zframe_t *identity = zmsg_first (msg);
    assert_int_equal (zframe_size (identity), 16);
    for (size_t i = 0; i < 16; i++)
        assert_non_null (strchr ("0123456789abcdef",
                                 zframe_data (identity) [i]));
    char *frames [7];
    for (int i = 0; i < 7; i++)
        frames [i] = s_frame_str (msg, (size_t) i + 1);
    assert_string_equal (frames [0], RESV_PROTO_CLIENT);
    assert_string_equal (frames [1], RESV_CMD_REQUEST);
    assert_true (strlen (frames [2]) >= 1);
    assert_true (strlen (frames [2]) <= RESV_ID_MAX);
    assert_string_equal (frames [3], "availability");
    assert_string_equal (frames [4], "resource.add");
    //  TIMEOUT@SENT: the deadline, and our clock at the send.
    assert_true (strncmp (frames [5], "1500@", 5) == 0);
    assert_true (llabs (atoll (frames [5] + 5) - zclock_mono ()) < 1000);
    zframe_t *last = zmsg_last (msg);
    assert_int_equal (zframe_size (last), sizeof body - 1);
    assert_memory_equal (zframe_data (last), body, sizeof body - 1);
    for (int i = 0; i < 7; i++)
        zstr_free (&frames [i]);
    zmsg_destroy (&msg);

    //  No method and no body: empty frames, still seven of them.
    resv_send (client, "ping", NULL, NULL, 0, 0);
    msg = s_router_recv (router);
    assert_int_equal (zmsg_size (msg), 1 + RESV_CLIENT_REQ_FRAMES);
    char *method = s_frame_str (msg, 5);
    char *timeout = s_frame_str (msg, 6);
    assert_string_equal (method, "");
    //  The client's default deadline.
    assert_int_equal (atoi (timeout), RESV_DEFAULT_TIMEOUT);
    assert_int_equal (zframe_size (zmsg_last (msg)), 0);
    zstr_free (&method);
    zstr_free (&timeout);
    zmsg_destroy (&msg);
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_set_timeout (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    int wanted [] = { 1234, RESV_DEFAULT_TIMEOUT };
    resv_set_timeout (client, 1234);
    for (int i = 0; i < 2; i++) {
        resv_send (client, "echo", "", NULL, 0, 0);
        zmsg_t *msg = s_router_recv (router);
        char *timeout = s_frame_str (msg, 6);
        assert_int_equal (atoi (timeout), wanted [i]);
        zstr_free (&timeout);
        zmsg_destroy (&msg);
        resv_set_timeout (client, 0);       //  Back to the default
    }
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_call_round_trip (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    json_t *request = json_pack ("{s:i, s:s}", "a", 1, "quote", "it's \"q\"");
    json_t *reply = NULL;
    assert_int_equal (resv_call (fixture->client, "echo", "echo", request, 0,
                                 &reply), RESV_OK);
    assert_string_equal (json_string_value (json_object_get (reply,
                                                             "service")),
                         "echo");
    assert_true (json_equal (json_object_get (reply, "body"), request));
    json_decref (reply);
    //  Without a body: the service sees an empty one.
    assert_int_equal (resv_call (fixture->client, "echo", "", NULL, 0,
                                 &reply), RESV_OK);
    assert_true (json_is_null (json_object_get (reply, "body")));
    json_decref (reply);
    //  A raw call gets the bytes as sent.
    char *raw = NULL;
    size_t size = 0;
    assert_int_equal (resv_call_raw (fixture->client, "echo", "x", "[1]", 3,
                                     0, &raw, &size), RESV_OK);
    assert_string_equal (raw, "{\"service\":\"echo\",\"method\":\"x\","
                              "\"body\":[1]}");
    assert_int_equal (size, strlen (raw));
    free (raw);
    json_decref (request);
    assert_int_equal (resv_inflight (fixture->client), 0);
}

static void
test_retry_same_id (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    resv_set_retry (client, 100);
    int64_t handle = resv_send (client, "echo", "echo", "{}", 2, 2000);
    zmsg_t *first = s_router_recv (router);
    //  Silence: the client's timers run while it waits for replies.
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, 250, &reply), -1);
    zmsg_t *second = s_router_recv (router);
    char *id1 = s_frame_str (first, 3);
    char *id2 = s_frame_str (second, 3);
    assert_string_equal (id1, id2);
    //  The resend asks only for what is left of the deadline.
    char *timeout1 = s_frame_str (first, 6);
    char *timeout2 = s_frame_str (second, 6);
    assert_true (atoi (timeout2) < atoi (timeout1));
    assert_true (atoi (timeout2) > 0);
    //  Same identity: the broker can tell a retry for what it is. And it
    //  says it is one (RTRY), so that a broker that does not know it (it
    //  restarted meanwhile) does not take it for one never begun.
    assert_true (zframe_eq (zmsg_first (first), zmsg_first (second)));
    char *command1 = s_frame_str (first, 2);
    char *command2 = s_frame_str (second, 2);
    assert_string_equal (command1, RESV_CMD_REQUEST);
    assert_string_equal (command2, RESV_CMD_RETRY);
    zstr_free (&command1);
    zstr_free (&command2);
    //  One reply per copy; the request completes once.
    s_router_reply (router, zmsg_first (first), id1, "200", "{\"n\":1}");
    s_router_reply (router, zmsg_first (first), id1, "200", "{\"n\":2}");
    assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
    assert_int_equal (reply.handle, handle);
    assert_string_equal (reply.body, "{\"n\":1}");
    free (reply.body);
    assert_int_equal (resv_recv (client, 100, &reply), -1);
    zstr_free (&id1);
    zstr_free (&id2);
    zstr_free (&timeout1);
    zstr_free (&timeout2);
    zmsg_destroy (&first);
    zmsg_destroy (&second);
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_async_many_in_flight (void **state)
{
    (void) state;
    enum { COUNT = 2000, DUPLICATES = 100 };
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    resv_set_retry (client, 0);
    int64_t *handles = (int64_t *) calloc (COUNT, sizeof *handles);
    for (int i = 0; i < COUNT; i++) {
        char body [32];
        snprintf (body, sizeof body, "%d", i);
        handles [i] = resv_send (client, "echo", "echo", body, strlen (body),
                                 10000);
        assert_true (handles [i] > 0);
        assert_true (i == 0 || handles [i] > handles [i - 1]);
    }
    assert_int_equal (resv_inflight (client), COUNT);
    //  All of them reach the broker before any reply: they are in flight
    //  together, not one at a time.
    zmsg_t **requests = (zmsg_t **) calloc (COUNT, sizeof *requests);
    zhashx_t *ids = zhashx_new ();
    for (int i = 0; i < COUNT; i++) {
        requests [i] = s_router_recv (router);
        char *id = s_frame_str (requests [i], 3);
        assert_int_equal (zhashx_insert (ids, id, requests [i]), 0);
        zstr_free (&id);
    }
    assert_int_equal (zhashx_size (ids), COUNT);
    //  Replies in reverse order, each body the request's own, and some
    //  twice.
    for (int i = COUNT - 1; i >= 0; i--) {
        char *id = s_frame_str (requests [i], 3);
        char *body = s_frame_str (requests [i], 7);
        s_router_reply (router, zmsg_first (requests [i]), id, "200", body);
        if (i < DUPLICATES)
            s_router_reply (router, zmsg_first (requests [i]), id, "201",
                            body);
        zstr_free (&id);
        zstr_free (&body);
    }
    char *seen = (char *) calloc (COUNT, 1);
    for (int done = 0; done < COUNT; done++) {
        resv_reply_t reply;
        assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
        int index = atoi (reply.body);
        assert_true (index >= 0 && index < COUNT);
        assert_int_equal (reply.handle, handles [index]);
        assert_int_equal (reply.status, RESV_OK);
        assert_int_equal (seen [index], 0);
        seen [index] = 1;
        free (reply.body);
    }
    assert_int_equal (resv_inflight (client), 0);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, 200, &reply), -1);
    for (int i = 0; i < COUNT; i++)
        zmsg_destroy (&requests [i]);
    zhashx_destroy (&ids);
    free (requests);
    free (handles);
    free (seen);
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_recv_polls_without_waiting (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    int64_t handle = resv_send (client, "echo", "echo", NULL, 0, S_WAIT);
    zmsg_t *request = s_router_recv (router);
    char *id = s_frame_str (request, 3);
    s_router_reply (router, zmsg_first (request), id, "200", "{}");
    //  Give the reply time to arrive, then take it without waiting.
    zclock_sleep (200);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, 0, &reply), 0);
    assert_int_equal (reply.handle, handle);
    assert_int_equal (reply.status, RESV_OK);
    free (reply.body);
    zstr_free (&id);
    zmsg_destroy (&request);
    resv_destroy (&client);
    zsock_destroy (&router);
}

//  A caller busy elsewhere while its replies came reads them all when it
//  comes back, past the retry interval and the deadlines: none is
//  resent, none is taken for unanswered. (Only the first 256 were read
//  before the timers ran: the others were sent again, and completed 504
//  "no reply within 300 ms" though their 200 waited unread.)
static void
test_late_reader_gets_every_reply (void **state)
{
    (void) state;
    enum { COUNT = 1000 };
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    resv_set_retry (client, 100);
    for (int i = 0; i < COUNT; i++)
        assert_true (resv_send (client, "echo", "echo", "{}", 2, 300) > 0);
    for (int i = 0; i < COUNT; i++) {
        zmsg_t *request = s_router_recv (router);
        char *id = s_frame_str (request, 3);
        s_router_reply (router, zmsg_first (request), id, "200", "{}");
        zstr_free (&id);
        zmsg_destroy (&request);
    }
    //  Past the deadline, its local grace and several retry intervals,
    //  without reading.
    zclock_sleep (300 + 250 + 400);
    int answered = 0;
    resv_reply_t reply;
    while (resv_recv (client, 0, &reply) == 0) {
        if (reply.status == RESV_OK)
            answered++;
        free (reply.body);
    }
    assert_int_equal (answered, COUNT);
    assert_int_equal (resv_inflight (client), 0);
    assert_true (s_router_quiet (router, 100));
    resv_destroy (&client);
    zsock_destroy (&router);
}

//  resv_set_retry leaves the requests in flight on the schedule they had
//  (resv.h): one sent with resends every 100 ms is still resent after
//  retries are turned off. (It was resent once more, then never.)
static void
test_set_retry_keeps_schedule_in_flight (void **state)
{
    (void) state;
    zsock_t *router = s_router_new ();
    resv_t *client = s_client_of (router);
    resv_set_retry (client, 100);
    int64_t handle = resv_send (client, "echo", "echo", NULL, 0, 1000);
    zmsg_t *request = s_router_recv (router);
    zmsg_destroy (&request);
    resv_set_retry (client, 0);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
    assert_int_equal (reply.handle, handle);
    assert_int_equal (reply.status, RESV_TIMEOUT);
    free (reply.body);
    //  Resends every 100 ms until the deadline: about 9 of them.
    int resends = 0;
    while (!s_router_quiet (router, 0)) {
        request = s_router_recv (router);
        zmsg_destroy (&request);
        resends++;
    }
    assert_true (resends >= 3);
    //  A request sent now has none.
    resv_send (client, "echo", "echo", NULL, 0, 400);
    request = s_router_recv (router);
    zmsg_destroy (&request);
    assert_int_equal (resv_recv (client, S_WAIT, &reply), 0);
    free (reply.body);
    assert_true (s_router_quiet (router, 100));
    resv_destroy (&client);
    zsock_destroy (&router);
}

static void
test_sync_keeps_async_replies (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    int64_t first = resv_send (fixture->client, "echo", "one", NULL, 0, 0);
    int64_t second = resv_send (fixture->client, "echo", "two", NULL, 0, 0);
    assert_int_equal (resv_inflight (fixture->client), 2);
    json_t *reply = NULL;
    assert_int_equal (resv_call (fixture->client, "echo", "three", NULL, 0,
                                 &reply), RESV_OK);
    assert_string_equal (json_string_value (json_object_get (reply,
                                                             "method")),
                         "three");
    json_decref (reply);
    //  The replies that came meanwhile wait for resv_recv, in order.
    assert_int_equal (resv_inflight (fixture->client), 2);
    resv_reply_t one, two;
    assert_int_equal (resv_recv (fixture->client, S_WAIT, &one), 0);
    assert_int_equal (resv_recv (fixture->client, S_WAIT, &two), 0);
    assert_int_equal (one.handle, first);
    assert_int_equal (two.handle, second);
    assert_non_null (strstr (one.body, "\"one\""));
    assert_non_null (strstr (two.body, "\"two\""));
    free (one.body);
    free (two.body);
    assert_int_equal (resv_inflight (fixture->client), 0);
}

static void
test_handles_unique (void **state)
{
    (void) state;
    s_dead_t *dead = s_dead_new ();
    resv_t *client = resv_new (dead->endpoint);
    resv_t *other = resv_new (dead->endpoint);
    int64_t last = 0;
    for (int i = 0; i < 1000; i++) {
        int64_t handle = resv_send (client, "echo", "", NULL, 0, 60000);
        assert_true (handle > last);
        last = handle;
    }
    assert_int_equal (resv_inflight (client), 1000);
    assert_true (resv_send (other, "echo", "", NULL, 0, 60000) > 0);
    //  Destroying with requests in flight frees them (ASan checks).
    resv_destroy (&client);
    assert_null (client);
    resv_destroy (&client);
    resv_destroy (&other);
    resv_destroy (NULL);
    s_dead_destroy (&dead);
}

static void
test_helpers_send_their_requests (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    resv_t *client = fixture->client;
    json_t *reply = NULL;
    //  With a request id of its own (test_request_ids has one made up).
    json_t *resource = json_pack ("{s:s, s:s, s:i, s:s}", "name", "Table 4",
                                  "owner", "olga", "capacity", 2,
                                  "request_id", "t4");
    json_t *filter = json_pack ("{s:s, s:i}", "customer", "carl", "limit", 5);
    json_t *owned = json_pack ("{s:s, s:i, s:s}", "owner", "olga", "limit", 5,
                               "after", "p7");
    json_t *changes = json_pack ("{s:i, s:s}", "price", 1500, "id", "lost");
    struct {
        const char *service;
        const char *method;
        const char *body;       //  What the helper must send, as JSON
    } want [] = {
        { "availability", "resource.add",
          "{\"name\":\"Table 4\",\"owner\":\"olga\",\"capacity\":2,"
          "\"request_id\":\"t4\"}" },
        { "availability", "resource.list", "{\"owner\":\"olga\"}" },
        { "availability", "resource.show", "{\"id\":\"r1\"}" },
        { "availability", "resource.update",
          "{\"id\":\"r1\",\"owner\":\"olga\",\"price\":1500}" },
        { "availability", "resource.remove",
          "{\"id\":\"r1\",\"owner\":\"olga\"}" },
        { "availability", "availability",
          "{\"resource\":\"r1\",\"date\":\"2030-01-01\",\"days\":3}" },
        { "reservation", "cancel", "{\"id\":\"x1\",\"customer\":\"carl\"}" },
        { "approval", "approve", "{\"id\":\"x1\",\"owner\":\"olga\"}" },
        { "approval", "decline",
          "{\"id\":\"x1\",\"owner\":\"olga\",\"reason\":\"closed\"}" },
        { "view", "status", "{\"id\":\"x1\"}" },
        { "view", "list", "{\"customer\":\"carl\",\"limit\":5}" },
        { "view", "history", "{\"id\":\"x1\"}" },
        { "view", "rebuild", "{}" },
        { "notification", "list", "{\"customer\":\"carl\"}" },
        { "notification", "list", "{\"customer\":\"carl\",\"limit\":5}" },
        { "availability", "resource.list",
          "{\"owner\":\"olga\",\"limit\":5,\"after\":\"p7\"}" },
        { "events", "read", "{\"from\":7,\"type\":\"reservation.\"}" },
        { "events", "read", "{\"limit\":10}" },
        { "resvd", "scale", "{\"service\":\"echo\",\"count\":3}" },
        { "ping", "", "null" },
        { "stats", "", "null" },
    };
    int status [sizeof want / sizeof want [0]];
    json_t *replies [sizeof want / sizeof want [0]];
    int n = 0;
#   define S_SENT(call) do { status [n] = (call); replies [n++] = reply; } \
    while (0)
    S_SENT (resv_resource_add (client, resource, &reply));
    S_SENT (resv_resource_list (client, "olga", NULL, &reply));
    S_SENT (resv_resource_show (client, "r1", &reply));
    S_SENT (resv_resource_update (client, "r1", "olga", changes, &reply));
    S_SENT (resv_resource_remove (client, "r1", "olga", &reply));
    S_SENT (resv_availability (client, "r1", "2030-01-01", 3, &reply));
    S_SENT (resv_cancel (client, "x1", "carl", &reply));
    S_SENT (resv_approve (client, "x1", "olga", &reply));
    S_SENT (resv_decline (client, "x1", "olga", "closed", &reply));
    S_SENT (resv_status (client, "x1", &reply));
    S_SENT (resv_list (client, filter, &reply));
    S_SENT (resv_history (client, "x1", &reply));
    S_SENT (resv_view_rebuild (client, &reply));
    S_SENT (resv_notifications (client, "carl", &reply));
    S_SENT (resv_notifications_query (client, filter, &reply));
    S_SENT (resv_resource_query (client, owned, &reply));
    S_SENT (resv_events (client, 7, "reservation.", 0, &reply));
    S_SENT (resv_events (client, 0, NULL, 10, &reply));
    S_SENT (resv_scale (client, "echo", 3, &reply));
    S_SENT (resv_ping (client, &reply));
    S_SENT (resv_stats (client, &reply));
    assert_int_equal (n, sizeof want / sizeof want [0]);
    for (int i = 0; i < n; i++) {
        assert_int_equal (status [i], RESV_OK);
        assert_string_equal (json_string_value (json_object_get (
            replies [i], "service")), want [i].service);
        assert_string_equal (json_string_value (json_object_get (
            replies [i], "method")), want [i].method);
        json_t *expected = json_loads (want [i].body, JSON_DECODE_ANY, NULL);
        if (!json_equal (json_object_get (replies [i], "body"), expected)) {
            char *got = json_dumps (json_object_get (replies [i], "body"),
                                    JSON_ENCODE_ANY);
            fail_msg ("%s/%s sent %s, not %s", want [i].service,
                      want [i].method, got, want [i].body);
        }
        json_decref (expected);
        json_decref (replies [i]);
    }
    //  The arguments were borrowed, not changed.
    assert_string_equal (json_string_value (json_object_get (changes, "id")),
                         "lost");
    json_decref (resource);
    json_decref (filter);
    json_decref (owned);
    json_decref (changes);
}

//  reserve and resource add send a request id of their own when the
//  caller gives none (so resends and re-dispatch are safe), and keep the
//  caller's.
static void
test_request_ids (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    int (*calls [2]) (resv_t *, json_t *, json_t **) = {
        resv_reserve, resv_resource_add
    };
    for (int index = 0; index < 2; index++) {
        int (*call) (resv_t *, json_t *, json_t **) = calls [index];
        json_t *request = json_pack ("{s:s, s:s, s:s, s:i}", "customer", "carl",
                                     "resource", "r1", "date", "2030-01-01",
                                     "units", 2);
        json_t *reply = NULL;
        assert_int_equal (call (fixture->client, request, &reply), RESV_OK);
        json_t *body = json_object_get (reply, "body");
        const char *key = json_string_value (json_object_get (body,
                                                              "request_id"));
        assert_non_null (key);
        assert_int_equal (strlen (key), 32);
        for (size_t i = 0; i < 32; i++)
            assert_non_null (strchr ("0123456789abcdef", key [i]));
        assert_int_equal (json_integer_value (json_object_get (body, "units")),
                          2);
        //  The caller's object is left as it was.
        assert_null (json_object_get (request, "request_id"));
        //  Two calls without a key get different keys.
        json_t *again = NULL;
        assert_int_equal (call (fixture->client, request, &again), RESV_OK);
        assert_string_not_equal (key, json_string_value (json_object_get (
            json_object_get (again, "body"), "request_id")));
        json_decref (again);
        json_decref (reply);
        //  A key given is kept.
        json_object_set_new (request, "request_id", json_string ("my-key-1"));
        assert_int_equal (call (fixture->client, request, &reply), RESV_OK);
        assert_string_equal (json_string_value (json_object_get (
            json_object_get (reply, "body"), "request_id")), "my-key-1");
        json_decref (reply);
        json_decref (request);
    }
}

static void
test_error_new_shape (void **state)
{
    (void) state;
    json_t *error = resv_error_new (RESV_CONFLICT, RESV_REASON_CONFLICT,
                                    "r-%d is %s", 42, "taken");
    assert_non_null (error);
    assert_int_equal (json_object_size (error), 1);
    json_t *inner = json_object_get (error, "error");
    assert_int_equal (json_object_size (inner), 3);
    assert_int_equal (json_integer_value (json_object_get (inner, "code")),
                      RESV_CONFLICT);
    assert_string_equal (json_string_value (json_object_get (inner,
                                                             "reason")),
                         "conflict");
    assert_string_equal (json_string_value (json_object_get (inner,
                                                             "message")),
                         "r-42 is taken");
    json_decref (error);
    //  Defaults: the usual reason, the status phrase.
    error = resv_error_new (RESV_NOT_FOUND, NULL, NULL);
    assert_string_equal (s_reason (error), RESV_REASON_NOT_FOUND);
    assert_string_equal (json_string_value (json_object_get (
        json_object_get (error, "error"), "message")), "not found");
    json_decref (error);
    //  Text that is not UTF-8 still makes an object.
    error = resv_error_new (RESV_INTERNAL, "internal", "bad \xff byte");
    assert_non_null (error);
    assert_string_equal (json_string_value (json_object_get (
        json_object_get (error, "error"), "message")), "bad ? byte");
    json_decref (error);
}

static void
test_strstatus_known (void **state)
{
    (void) state;
    assert_string_equal (resv_strstatus (RESV_OK), "ok");
    assert_string_equal (resv_strstatus (RESV_CREATED), "created");
    assert_string_equal (resv_strstatus (RESV_BAD_REQUEST), "bad request");
    assert_string_equal (resv_strstatus (RESV_PAYMENT_DECLINED),
                         "payment declined");
    assert_string_equal (resv_strstatus (RESV_FORBIDDEN), "forbidden");
    assert_string_equal (resv_strstatus (RESV_NOT_FOUND), "not found");
    assert_string_equal (resv_strstatus (RESV_CONFLICT), "conflict");
    assert_string_equal (resv_strstatus (RESV_TOO_MANY), "too many requests");
    assert_string_equal (resv_strstatus (RESV_INTERNAL), "internal error");
    assert_string_equal (resv_strstatus (RESV_NOT_IMPLEMENTED),
                         "not implemented");
    assert_string_equal (resv_strstatus (RESV_UNAVAILABLE),
                         "service unavailable");
    assert_string_equal (resv_strstatus (RESV_TIMEOUT), "timeout");
}

int
main (void)
{
    zsys_set_logstream (stderr);
#   define S_BROKER_TEST(test) \
        cmocka_unit_test_setup_teardown (test, s_with_fake_broker, \
                                         s_without_fake_broker)
    const struct CMUnitTest tests [] = {
        //  Failures
        cmocka_unit_test (test_log_limit),
        cmocka_unit_test (test_reply_json),
        cmocka_unit_test (test_new_invalid_endpoint),
        cmocka_unit_test (test_call_without_service),
        cmocka_unit_test (test_call_bad_service_names),
        cmocka_unit_test (test_call_bad_method_names),
        cmocka_unit_test (test_send_invalid),
        cmocka_unit_test (test_call_raw_invalid),
        cmocka_unit_test (test_helpers_missing_arguments),
        cmocka_unit_test (test_query_filter_not_object),
        cmocka_unit_test (test_strstatus_unknown),
        cmocka_unit_test (test_random_hex),
        cmocka_unit_test (test_hash128_known),
        cmocka_unit_test (test_decimal),
        cmocka_unit_test (test_parse_int),
        cmocka_unit_test (test_unreachable_sync),
        cmocka_unit_test (test_unreachable_async),
        cmocka_unit_test (test_recv_nothing_in_flight),
        cmocka_unit_test (test_unsent_request_ends_at_its_deadline),
        cmocka_unit_test (test_send_waits_ends_with_its_request),
        cmocka_unit_test (test_reply_behind_many_late_ones_is_read),
        cmocka_unit_test (test_nothing_kept_while_no_broker),
        cmocka_unit_test (test_unknown_reply_dropped),
        cmocka_unit_test (test_malformed_reply_fails_request),
        cmocka_unit_test (test_deadline_exceeded_reason),
        cmocka_unit_test (test_foreign_message_is_not_the_broker),
        cmocka_unit_test (test_retry_off),
        S_BROKER_TEST (test_non_json_reply),
        S_BROKER_TEST (test_quoted_body_cut_at_character),
        S_BROKER_TEST (test_reply_with_escaped_nul),
        S_BROKER_TEST (test_error_reply_without_body),
        S_BROKER_TEST (test_error_reply_passes_through),
        S_BROKER_TEST (test_broker_timeout_comes_first),
        //  Successes
        cmocka_unit_test (test_request_frames),
        cmocka_unit_test (test_set_timeout),
        S_BROKER_TEST (test_call_round_trip),
        cmocka_unit_test (test_retry_same_id),
        cmocka_unit_test (test_async_many_in_flight),
        cmocka_unit_test (test_recv_polls_without_waiting),
        cmocka_unit_test (test_late_reader_gets_every_reply),
        cmocka_unit_test (test_set_retry_keeps_schedule_in_flight),
        S_BROKER_TEST (test_sync_keeps_async_replies),
        cmocka_unit_test (test_handles_unique),
        S_BROKER_TEST (test_helpers_send_their_requests),
        S_BROKER_TEST (test_request_ids),
        cmocka_unit_test (test_error_new_shape),
        cmocka_unit_test (test_strstatus_known),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
