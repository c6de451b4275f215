/*  svc_view_test.c: the view service (svc_view.c), against a real broker
    (in-process actor) and real SQLite files in a temporary directory.

    Events are published by hand into the broker's journal, in the shapes
    of doc/saga.md, and the service's state consumes them as it does in a
    worker process; requests go straight to the handler, and once through
    a real worker and libresv.
*/

#include <limits.h>
#include <pthread.h>
#include <unistd.h>
#include "testkit.h"
#include "db.h"

//  A state of the service, with no worker (testkit.h): every test's
//  fixture.
typedef testkit_service_t fixture_t;


//  --------------------------------------------------------------------------
//  Events

//  A new event about reservation id (or, with subject "resource", about a
//  resource) with a fresh event id; data is taken.
static json_t *
s_event (fixture_t *self, const char *type, const char *subject,
         const char *id, json_t *data)
{
    bool reservation = streq (subject, "reservation");
    json_t *event = testkit_event (self->kit, NULL, type,
                                   reservation? id: NULL, data);
    if (!reservation) {
        json_object_set_new (event, subject, json_string (id));
        json_object_set_new (event, "correlation_id", json_string (id));
    }
    return event;
}

//  Publishes events (one or an array, taken) into the journal; returns the
//  last seq given.
static int64_t
s_publish (fixture_t *self, json_t *events)
{
    return testkit_publish (self->kit, events);
}

//  A reservation object as the reservation service writes it.
static json_t *
s_reservation (const char *id, const char *customer, const char *resource,
               const char *status)
{
    char payment [64];
    snprintf (payment, sizeof payment, "p-%s", id);
    return json_pack ("{s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:i,s:i,s:s,s:n,"
                      "s:{s:s,s:s},s:s,s:s}",
        "id", id, "request_id", "rq-1", "customer", customer,
        "resource", resource, "date", "2026-12-01", "days", 2,
        "slot", "all-day", "units", 1, "amount", 3000, "status", status,
        "reason", "payment", "id", payment, "status", "authorized",
        "created_at", "2026-11-28T10:00:00.000Z",
        "updated_at", "2026-11-28T10:00:00.000Z");
}

//  Publishes reservation.TYPE for a reservation now in status.
static int64_t
s_put (fixture_t *self, const char *type, const char *id,
       const char *customer, const char *resource, const char *status)
{
    return s_publish (self, s_event (self, type, "reservation", id,
        json_pack ("{s:o,s:s}", "reservation",
                   s_reservation (id, customer, resource, status),
                   "previous", "PENDING")));
}

//  Publishes payment.TYPE for reservation id, payment now in status.
static int64_t
s_pay (fixture_t *self, const char *type, const char *id, const char *status)
{
    char payment [64];
    snprintf (payment, sizeof payment, "p-%s", id);
    return s_publish (self, s_event (self, type, "reservation", id,
        json_pack ("{s:{s:s,s:s,s:i},s:s}", "payment", "id", payment,
                   "status", status, "amount", 3000, "customer", "c1")));
}

//  Waits until the view has applied every event published so far.
static void
s_sync (fixture_t *self)
{
    testkit_sync (self->kit, self->store, "view");
}


//  --------------------------------------------------------------------------
//  Requests

//  Sends body (text) to method; returns the status and the reply parsed.
static int
s_call (fixture_t *self, const char *method, const char *body, json_t **reply_p)
{
    return testkit_handle (svc_view, self->state, method, body, strlen (body),
                           5000, reply_p);
}

//  The same with a JSON request, taken.
static json_t *
s_ok (fixture_t *self, const char *method, json_t *request)
{
    char *body = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    json_t *reply;
    int status = s_call (self, method, body, &reply);
    if (status != 200)
        fail_msg ("%s %s: %d %s", method, body, status,
                  json_dumps (reply, JSON_COMPACT));
    free (body);
    return reply;
}

//  Asserts that body sent to method gets exactly code and reason.
static void
s_refused (fixture_t *self, const char *method, const char *body, int code,
           const char *reason)
{
    testkit_refused (svc_view, self->state, method, body, code, reason);
}

static json_t *
s_status (fixture_t *self, const char *id)
{
    return s_ok (self, "status", json_pack ("{s:s}", "id", id));
}

//  The ids of a list's items, comma-separated, into buf.
static const char *
s_ids (json_t *reply, char *buf, size_t size)
{
    buf [0] = 0;
    size_t index;
    json_t *item;
    json_array_foreach (json_object_get (reply, "items"), index, item) {
        size_t len = strlen (buf);
        snprintf (buf + len, size - len, "%s%s", index? ",": "",
                  json_string_value (json_object_get (item, "id")));
    }
    return buf;
}

//  Asserts that list with filter (JSON text) returns exactly ids, with no
//  next cursor.
static void
s_assert_list (fixture_t *self, const char *filter, const char *ids)
{
    json_t *reply = s_ok (self, "list", json_loads (filter, 0, NULL));
    char buf [1024];
    if (!streq (s_ids (reply, buf, sizeof buf), ids))
        fail_msg ("list %s: expected [%s], got [%s]", filter, ids, buf);
    assert_null (json_object_get (reply, "next"));
    json_decref (reply);
}

//  The payment status of a reservation in the view.
static void
s_assert_payment (fixture_t *self, const char *id, const char *status)
{
    json_t *reservation = s_status (self, id);
    json_t *payment = json_object_get (reservation, "payment");
    assert_string_equal (json_string_value (json_object_get (payment, "status")),
                         status);
    char expected [64];
    snprintf (expected, sizeof expected, "p-%s", id);
    assert_string_equal (json_string_value (json_object_get (payment, "id")),
                         expected);
    json_decref (reservation);
}


//  --------------------------------------------------------------------------
//  Success

static void
test_registered (void **state)
{
    (void) state;
    testkit_assert_service ("view", svc_view, svc_view_new,
                            svc_view_destroy);
}

static void
test_status_follows_the_reservation (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_put (self, "reservation.requested", "r1", "c1", "res-1", "PENDING");
    s_pay (self, "payment.authorized", "r1", "authorized");
    s_sync (self);
    json_t *reservation = s_status (self, "r1");
    json_t *expected = s_reservation ("r1", "c1", "res-1", "PENDING");
    assert_true (json_equal (reservation, expected));
    json_decref (reservation);
    json_decref (expected);

    s_put (self, "reservation.confirmed", "r1", "c1", "res-1", "CONFIRMED");
    s_sync (self);
    reservation = s_status (self, "r1");
    assert_string_equal (json_string_value (json_object_get (reservation,
                                            "status")), "CONFIRMED");
    json_decref (reservation);
    s_pay (self, "payment.captured", "r1", "captured");
    s_sync (self);
    s_assert_payment (self, "r1", "captured");

    //  The cancellation carries the reservation service's stale copy of
    //  the payment ("authorized"); the payment events stay the authority.
    s_put (self, "reservation.cancelled", "r1", "c1", "res-1", "CANCELLED");
    s_sync (self);
    reservation = s_status (self, "r1");
    assert_string_equal (json_string_value (json_object_get (reservation,
                                            "status")), "CANCELLED");
    json_decref (reservation);
    s_assert_payment (self, "r1", "captured");
    s_pay (self, "payment.refunded", "r1", "refunded");
    s_sync (self);
    s_assert_payment (self, "r1", "refunded");
}

static void
test_payment_before_its_reservation (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  The payment service's events may reach the journal first.
    s_pay (self, "payment.authorized", "r2", "authorized");
    s_pay (self, "payment.voided", "r2", "voided");
    s_sync (self);
    s_refused (self, "status", "{\"id\":\"r2\"}", 404, "not_found");
    s_put (self, "reservation.requested", "r2", "c1", "res-1", "PENDING");
    s_sync (self);
    s_assert_payment (self, "r2", "voided");
    //  A reservation without a payment member gets one from the table.
    json_t *reservation = s_reservation ("r3", "c1", "res-1", "PENDING");
    json_object_del (reservation, "payment");
    s_pay (self, "payment.authorized", "r3", "authorized");
    s_publish (self, s_event (self, "reservation.requested", "reservation", "r3",
                              json_pack ("{s:o}", "reservation", reservation)));
    s_sync (self);
    s_assert_payment (self, "r3", "authorized");
}

static void
test_list_filters (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_put (self, "reservation.requested", "a", "c1", "x", "PENDING");
    s_put (self, "reservation.requested", "b", "c2", "x", "PENDING");
    s_put (self, "reservation.requested", "c", "c1", "y", "PENDING");
    s_put (self, "reservation.requested", "d", "c2", "y", "PENDING");
    s_put (self, "reservation.confirmed", "a", "c1", "x", "CONFIRMED");
    s_put (self, "reservation.requested", "e", "c1", "x", "PENDING");
    s_put (self, "reservation.declined", "d", "c2", "y", "DECLINED");
    s_put (self, "reservation.cancelled", "b", "c2", "x", "CANCELLED");
    s_sync (self);
    //  Always in the order the reservations first appeared.
    s_assert_list (self, "{}", "a,b,c,d,e");
    s_assert_list (self, "{\"customer\":\"c1\"}", "a,c,e");
    s_assert_list (self, "{\"customer\":\"c2\"}", "b,d");
    s_assert_list (self, "{\"resource\":\"x\"}", "a,b,e");
    s_assert_list (self, "{\"status\":\"PENDING\"}", "c,e");
    s_assert_list (self, "{\"status\":\"CONFIRMED\"}", "a");
    s_assert_list (self, "{\"status\":\"DECLINED\"}", "d");
    s_assert_list (self, "{\"status\":\"CANCELLED\"}", "b");
    s_assert_list (self, "{\"status\":\"EXPIRED\"}", "");
    s_assert_list (self, "{\"customer\":\"c1\",\"resource\":\"x\"}", "a,e");
    s_assert_list (self, "{\"customer\":\"c1\",\"status\":\"PENDING\"}", "c,e");
    s_assert_list (self, "{\"resource\":\"y\",\"status\":\"PENDING\"}", "c");
    s_assert_list (self, "{\"customer\":\"c2\",\"resource\":\"x\","
                         "\"status\":\"CANCELLED\"}", "b");
    s_assert_list (self, "{\"customer\":\"nobody\"}", "");
    //  null is the same as absent.
    s_assert_list (self, "{\"customer\":null,\"status\":\"CONFIRMED\"}", "a");
    //  The items are whole reservations.
    json_t *reply = s_ok (self, "list", json_pack ("{s:s}", "status", "DECLINED"));
    json_t *expected = s_reservation ("d", "c2", "y", "DECLINED");
    assert_true (json_equal (json_array_get (json_object_get (reply, "items"), 0),
                             expected));
    json_decref (expected);
    json_decref (reply);
}

//  Pages through list with filter (JSON text, without limit) limit items
//  at a time; returns the ids of all pages in buf.
static const char *
s_page_all (fixture_t *self, const char *filter, int limit, int *pages_p,
            char *buf, size_t size)
{
    buf [0] = 0;
    char *after = NULL;
    int pages = 0;
    while (true) {
        json_t *request = json_loads (filter, 0, NULL);
        json_object_set_new (request, "limit", json_integer (limit));
        if (after)
            json_object_set_new (request, "after", json_string (after));
        zstr_free (&after);
        json_t *reply = s_ok (self, "list", request);
        size_t count = json_array_size (json_object_get (reply, "items"));
        assert_true (count <= (size_t) limit);
        char ids [1024];
        s_ids (reply, ids, sizeof ids);
        size_t len = strlen (buf);
        snprintf (buf + len, size - len, "%s%s", len && *ids? ",": "", ids);
        pages++;
        json_t *next = json_object_get (reply, "next");
        if (next) {
            //  A next cursor only on a full page.
            assert_int_equal (count, limit);
            after = strdup (json_string_value (next));
        }
        json_decref (reply);
        if (!after)
            break;
    }
    *pages_p = pages;
    return buf;
}

static void
test_list_limit_and_paging (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char all [1024] = "", c1 [1024] = "", pending [1024] = "";
    json_t *events = json_array ();
    for (int i = 0; i < 25; i++) {
        char id [8];
        snprintf (id, sizeof id, "r%02d", i);
        const char *customer = i % 2? "c2": "c1";
        const char *status = i % 3? "PENDING": "CONFIRMED";
        json_array_append_new (events, s_event (self, "reservation.requested",
            "reservation", id, json_pack ("{s:o}", "reservation",
            s_reservation (id, customer, "x", status))));
        #define S_ADD(list) snprintf (list + strlen (list), \
            sizeof list - strlen (list), "%s%s", *list? ",": "", id)
        S_ADD (all);
        if (i % 2 == 0)
            S_ADD (c1);
        if (i % 3)
            S_ADD (pending);
    }
    s_publish (self, events);
    s_sync (self);
    char buf [1024];
    int pages;
    assert_string_equal (s_page_all (self, "{}", 7, &pages, buf, sizeof buf), all);
    assert_int_equal (pages, 4);
    assert_string_equal (s_page_all (self, "{}", 1, &pages, buf, sizeof buf), all);
    assert_int_equal (pages, 25);
    //  A limit that divides the count exactly ends without a next cursor.
    assert_string_equal (s_page_all (self, "{}", 5, &pages, buf, sizeof buf), all);
    assert_int_equal (pages, 5);
    assert_string_equal (s_page_all (self, "{}", 1000, &pages, buf, sizeof buf), all);
    assert_int_equal (pages, 1);
    assert_string_equal (s_page_all (self, "{\"customer\":\"c1\"}", 4, &pages,
                                     buf, sizeof buf), c1);
    assert_int_equal (pages, 4);
    assert_string_equal (s_page_all (self, "{\"status\":\"PENDING\"}", 3, &pages,
                                     buf, sizeof buf), pending);
    //  The default limit is 100.
    json_t *reply = s_ok (self, "list", json_object ());
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 25);
    json_decref (reply);

    //  Writes between pages lose and repeat nothing: a new reservation
    //  comes after the cursor, a changed one stays where it was.
    reply = s_ok (self, "list", json_pack ("{s:i}", "limit", 10));
    char *after = strdup (json_string_value (json_object_get (reply, "next")));
    json_decref (reply);
    s_put (self, "reservation.requested", "r99", "c1", "x", "PENDING");
    s_put (self, "reservation.confirmed", "r03", "c2", "x", "CONFIRMED");
    s_put (self, "reservation.confirmed", "r15", "c2", "x", "CONFIRMED");
    s_sync (self);
    reply = s_ok (self, "list", json_pack ("{s:s,s:i}", "after", after, "limit", 100));
    free (after);
    assert_string_equal (s_ids (reply, buf, sizeof buf),
                         "r10,r11,r12,r13,r14,r15,r16,r17,r18,r19,r20,r21,r22,"
                         "r23,r24,r99");
    json_decref (reply);
}

static void
test_history_in_order (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_put (self, "reservation.requested", "r1", "c1", "res-1", "PENDING");
    s_publish (self, s_event (self, "approval.approved", "reservation", "r1",
                              json_pack ("{s:s,s:b}", "owner", "o1", "auto", 1)));
    s_put (self, "reservation.requested", "r2", "c2", "res-1", "PENDING");
    s_pay (self, "payment.authorized", "r1", "authorized");
    s_publish (self, s_event (self, "resource.updated", "resource", "res-1",
                              json_pack ("{s:{s:s}}", "resource", "id", "res-1")));
    s_put (self, "reservation.confirmed", "r1", "c1", "res-1", "CONFIRMED");
    s_publish (self, s_event (self, "notification.sent", "reservation", "r1",
                              json_pack ("{s:{s:s}}", "notification", "id", "n1")));
    s_sync (self);
    json_t *reply = s_ok (self, "history", json_pack ("{s:s}", "id", "r1"));
    json_t *items = json_object_get (reply, "items");
    const char *types [] = { "reservation.requested", "approval.approved",
        "payment.authorized", "reservation.confirmed", "notification.sent" };
    assert_int_equal (json_array_size (items), 5);
    int64_t seq = 0;
    for (size_t i = 0; i < 5; i++) {
        json_t *event = json_array_get (items, i);
        assert_string_equal (json_string_value (json_object_get (event, "type")),
                             types [i]);
        assert_true (json_integer_value (json_object_get (event, "seq")) > seq);
        seq = json_integer_value (json_object_get (event, "seq"));
        assert_string_equal (json_string_value (json_object_get (event,
                             "reservation")), "r1");
        assert_string_equal (json_string_value (json_object_get (event,
                             "correlation_id")), "r1");
        assert_non_null (json_object_get (event, "id"));
        assert_non_null (json_object_get (event, "at"));
        assert_true (json_is_object (json_object_get (event, "data")));
    }
    json_decref (reply);
    reply = s_ok (self, "history", json_pack ("{s:s}", "id", "r2"));
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 1);
    json_decref (reply);
}

//  Everything the view answers, as one text: status and history of each
//  reservation, and lists with every kind of filter.
static char *
s_snapshot (fixture_t *self)
{
    const char *ids [] = { "r1", "r2", "r3", "r4", "r5", "bad" };
    const char *lists [] = { "{}", "{\"customer\":\"c1\"}", "{\"resource\":\"y\"}",
        "{\"status\":\"PENDING\"}", "{\"status\":\"CANCELLED\"}",
        "{\"limit\":2}", "{\"limit\":2,\"after\":\"v3\"}" };
    char *text = strdup ("");
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        for (int method = 0; method < 2; method++) {
            char body [64];
            snprintf (body, sizeof body, "{\"id\":\"%s\"}", ids [i]);
            json_t *reply;
            int status = s_call (self, method? "history": "status", body, &reply);
            char *dump = json_dumps (reply, JSON_COMPACT);
            char *more = zsys_sprintf ("%s\n%d %s", text, status, dump);
            free (dump);
            free (text);
            text = more;
            json_decref (reply);
        }
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        json_t *reply = s_ok (self, "list", json_loads (lists [i], 0, NULL));
        char *dump = json_dumps (reply, JSON_COMPACT);
        char *more = zsys_sprintf ("%s\n%s", text, dump);
        free (dump);
        free (text);
        text = more;
        json_decref (reply);
    }
    return text;
}

//  A varied journal: payments before and after their reservations, every
//  status, other services' events, a malformed event.
static void
s_varied_journal (fixture_t *self)
{
    s_pay (self, "payment.authorized", "r1", "authorized");
    s_put (self, "reservation.requested", "r1", "c1", "x", "PENDING");
    s_put (self, "reservation.requested", "r2", "c2", "y", "PENDING");
    s_put (self, "reservation.requested", "r3", "c1", "y", "PENDING");
    s_publish (self, s_event (self, "approval.approved", "reservation", "r1",
                              json_pack ("{s:s,s:b}", "owner", "o", "auto", 1)));
    s_put (self, "reservation.confirmed", "r1", "c1", "x", "CONFIRMED");
    s_pay (self, "payment.captured", "r1", "captured");
    s_put (self, "reservation.declined", "r2", "c2", "y", "DECLINED");
    s_pay (self, "payment.voided", "r2", "voided");
    s_put (self, "reservation.requested", "r4", "c2", "x", "PENDING");
    s_put (self, "reservation.expired", "r4", "c2", "x", "EXPIRED");
    s_put (self, "reservation.cancelled", "r1", "c1", "x", "CANCELLED");
    s_pay (self, "payment.refunded", "r1", "refunded");
    s_publish (self, s_event (self, "resource.registered", "resource", "x",
                              json_pack ("{s:{s:s}}", "resource", "id", "x")));
    s_publish (self, s_event (self, "reservation.requested", "reservation",
                              "bad", json_pack ("{s:s}", "reservation", "oops")));
    s_put (self, "reservation.requested", "r5", "c1", "x", "PENDING");
    s_sync (self);
}

static void
test_rebuild_identical (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_varied_journal (self);
    char *before = s_snapshot (self);
    json_t *reply = s_ok (self, "rebuild", json_object ());
    assert_int_equal (json_integer_value (json_object_get (reply, "events")),
                      testkit_published (self->kit));
    assert_int_equal (json_integer_value (json_object_get (reply,
                      "reservations")), 5);
    json_decref (reply);
    char *after = s_snapshot (self);
    assert_string_equal (before, after);
    free (after);
    //  And again, with an empty body, which is {}.
    json_t *rebuilt;
    assert_int_equal (s_call (self, "rebuild", "", &rebuilt), 200);
    json_decref (rebuilt);
    after = s_snapshot (self);
    assert_string_equal (before, after);
    free (after);
    free (before);
    assert_int_equal (store_cursor (self->store, "view"),
                      testkit_published (self->kit));
}

static void
test_rebuild_while_events_arrive (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  The live consumer is still applying this batch when the rebuild
    //  empties the view: the two share the cursor, and end together.
    json_t *events = json_array ();
    for (int i = 0; i < 400; i++) {
        char id [8];
        snprintf (id, sizeof id, "q%03d", i);
        json_array_append_new (events, s_event (self, "reservation.requested",
            "reservation", id, json_pack ("{s:o}", "reservation",
            s_reservation (id, i % 2? "c1": "c2", "x", "PENDING"))));
    }
    s_publish (self, events);
    json_t *reply = s_ok (self, "rebuild", json_object ());
    json_decref (reply);
    s_sync (self);
    reply = s_ok (self, "list", json_pack ("{s:i}", "limit", 1000));
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 400);
    json_decref (reply);
    reply = s_ok (self, "rebuild", json_object ());
    assert_int_equal (json_integer_value (json_object_get (reply, "events")), 400);
    assert_int_equal (json_integer_value (json_object_get (reply,
                      "reservations")), 400);
    json_decref (reply);
}

static void
test_two_views_agree (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  A second process of the service, on the same store.
    void *second = svc_view_new (testkit_cfg (self->kit), NULL);
    assert_non_null (second);
    s_varied_journal (self);
    char *before = s_snapshot (self);
    svc_view_destroy (&second);
    //  Two processes applying at once leave what one would have.
    json_t *reply = s_ok (self, "rebuild", json_object ());
    json_decref (reply);
    char *after = s_snapshot (self);
    assert_string_equal (before, after);
    free (before);
    free (after);
}

//  A rebuild run in a thread of its own: rounds rebuilds on state, each
//  with a deadline timeout ms away; wrong counts the answers that are not
//  200 with the true counts, events and reservations, and answer and
//  status are the first of them, else the last answer. (No cmocka
//  assertion in the thread: the test checks what it left.)
typedef struct {
    void *state;                //  Its own state of the service
    int timeout;
    int rounds;
    int64_t events;             //  The true counts
    int64_t reservations;
    int wrong;
    int status;                 //  The status of answer
    char answer [160];
} s_rebuilder_t;

static void *
s_rebuilder (void *args)
{
    s_rebuilder_t *self = (s_rebuilder_t *) args;
    for (int round = 0; round < self->rounds; round++) {
        zframe_t *body = zframe_new ("{}", 2);
        zframe_t *reply = NULL;
        int status = svc_view (self->state, "rebuild", &body,
                               zclock_mono () + self->timeout, &reply);
        zframe_destroy (&body);
        json_t *json = reply? json_loadb ((const char *) zframe_data (reply),
                                          zframe_size (reply), 0, NULL): NULL;
        bool right = status == 200
            && json_integer_value (json_object_get (json, "events")) == self->events
            && json_integer_value (json_object_get (json, "reservations"))
               == self->reservations;
        if (!right)
            self->wrong++;
        //  The first wrong answer is kept; until one comes, the last.
        if (self->wrong == (right? 0: 1)) {
            snprintf (self->answer, sizeof self->answer, "%.*s",
                      reply? (int) zframe_size (reply): 6,
                      reply? (const char *) zframe_data (reply): "(none)");
            self->status = status;
        }
        json_decref (json);
        zframe_destroy (&reply);
    }
    return NULL;
}

static void
test_rebuilds_at_once (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_varied_journal (self);
    char *before = s_snapshot (self);
    //  Two processes of the service on the same store, each rebuilding
    //  again and again while the other does: each answer must give the
    //  counts of the whole view, never those of a view the other has
    //  just emptied.
    enum { REBUILDERS = 2 };
    s_rebuilder_t rebuilders [REBUILDERS];
    pthread_t threads [REBUILDERS];
    for (int i = 0; i < REBUILDERS; i++) {
        rebuilders [i] = (s_rebuilder_t) {
            .state = svc_view_new (testkit_cfg (self->kit), NULL),
            .timeout = 20000, .rounds = 300,
            .events = testkit_published (self->kit), .reservations = 5
        };
        assert_non_null (rebuilders [i].state);
    }
    for (int i = 0; i < REBUILDERS; i++)
        assert_int_equal (pthread_create (&threads [i], NULL, s_rebuilder,
                                          &rebuilders [i]), 0);
    int wrong = 0;
    for (int i = 0; i < REBUILDERS; i++) {
        pthread_join (threads [i], NULL);
        if (rebuilders [i].wrong)
            print_message ("rebuilder %d: %d of %d answers wrong, first: "
                           "%d %s\n", i, rebuilders [i].wrong,
                           rebuilders [i].rounds, rebuilders [i].status,
                           rebuilders [i].answer);
        wrong += rebuilders [i].wrong;
        svc_view_destroy (&rebuilders [i].state);
    }
    assert_int_equal (wrong, 0);
    //  And the view they leave is the one they started from.
    char *after = s_snapshot (self);
    assert_string_equal (before, after);
    free (before);
    free (after);
}

//  A rebuild of a large view keeps its worker's heartbeats going while it
//  empties the view. It sent none, and SQLite's secure delete wrote every
//  page freed to the WAL in the commit: on a view of 60 000 reservations
//  that took a second, past a short liveness, and the broker gave the
//  rebuild to the worker again once it was back, which emptied the view a
//  second time (and the client got 503 worker_lost).
static int
s_setup_short_liveness (void **state)
{
    const char *env [] = { "RESV_BROKER_HEARTBEAT", "100",
                           "RESV_BROKER_LIVENESS", "3", NULL };
    *state = testkit_service_new ("view", env);
    return *state? 0: -1;
}

static void
test_a_large_rebuild_keeps_its_worker (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  Rows straight into the store, as 40 000 reservations leave them.
    assert_int_equal (sqlite3_exec (store_db (self->store),
        "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
        "                         WHERE i < 240000)"
        "INSERT INTO history (reservation, seq, event)"
        "    SELECT 'big' || (i / 6), i, printf ('%.*c', 700, 'x') FROM n;"
        "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
        "                         WHERE i < 40000)"
        "INSERT INTO reservations (id, customer, resource, status, seq, body)"
        "    SELECT 'big' || i, 'c', 'x', 'CONFIRMED', i,"
        "           printf ('{\"pad\":\"%.*c\"}', 400, 'x') FROM n;",
        NULL, NULL, NULL), SQLITE_OK);
    testkit_start (self->kit, "view");
    json_t *reply = NULL;
    int status = resv_view_rebuild (testkit_client (self->kit), &reply);
    char *text = json_dumps (reply, JSON_COMPACT);
    if (status != 200)
        fail_msg ("rebuild: %d %s", status, text);
    free (text);
    json_decref (reply);
    //  One request, one rebuild.
    assert_int_equal (testkit_sql_int (self->store,
                                       "SELECT started FROM rebuild"), 1);
    assert_int_equal (testkit_sql_int (self->store,
                                       "SELECT count (*) FROM history"), 0);
    testkit_stop (self->kit, "view");
}

//  A worker told to stop stops a rebuild's replay between two pages, but
//  a replay whose last page is in is done: answered with its counts and
//  recorded as finished (it was answered 503 stopping, and another view
//  process waiting for it ran one of its own).
static void
test_a_rebuild_done_as_its_worker_stops (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_put (self, "reservation.requested", "s1", "c1", "x", "PENDING");
    s_put (self, "reservation.requested", "s2", "c1", "x", "PENDING");
    s_sync (self);
    worker_t *worker = worker_new (testkit_cfg (self->kit), "view", 1);
    assert_non_null (worker);
    worker_stop (worker);
    void *stopping = svc_view_new (testkit_cfg (self->kit), worker);
    assert_non_null (stopping);
    json_t *reply = NULL;
    int status = testkit_handle (svc_view, stopping, "rebuild", "{}", 2, 5000,
                                 &reply);
    char *text = json_dumps (reply, JSON_COMPACT);
    if (status != 200)
        fail_msg ("rebuild: %d %s", status, text);
    free (text);
    assert_int_equal (json_integer_value (json_object_get (reply,
                      "reservations")), 2);
    json_decref (reply);
    assert_int_equal (testkit_sql_int (self->store,
                                       "SELECT finished FROM rebuild"), 1);
    svc_view_destroy (&stopping);
    worker_destroy (&worker);
}

static void
test_through_a_worker (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  A real worker of the service, serving through the broker.
    testkit_start (self->kit, "view");
    s_put (self, "reservation.requested", "r1", "c1", "x", "PENDING");
    s_sync (self);
    json_t *reply = NULL;
    assert_int_equal (resv_status (testkit_client (self->kit), "r1", &reply),
                      200);
    assert_string_equal (json_string_value (json_object_get (reply, "id")), "r1");
    json_decref (reply);
    json_t *filter = json_pack ("{s:s,s:i}", "customer", "c1", "limit", 5);
    assert_int_equal (resv_list (testkit_client (self->kit), filter, &reply),
                      200);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 1);
    json_decref (filter);
    json_decref (reply);
    assert_int_equal (resv_history (testkit_client (self->kit), "r1", &reply),
                      200);
    json_decref (reply);
    assert_int_equal (resv_status (testkit_client (self->kit), "r404", &reply),
                      404);
    json_decref (reply);
    assert_int_equal (resv_view_rebuild (testkit_client (self->kit), &reply),
                      200);
    assert_int_equal (json_integer_value (json_object_get (reply,
                      "reservations")), 1);
    json_decref (reply);
    testkit_stop (self->kit, "view");
}


//  --------------------------------------------------------------------------
//  Failures

static void
test_bad_status_and_history (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *methods [] = { "status", "history" };
    for (int i = 0; i < 2; i++) {
        const char *method = methods [i];
        s_refused (self, method, "{}", 400, "bad_request");
        s_refused (self, method, "{\"id\":null}", 400, "bad_request");
        s_refused (self, method, "{\"id\":5}", 400, "bad_request");
        s_refused (self, method, "{\"id\":[\"r1\"]}", 400, "bad_request");
        s_refused (self, method, "{\"id\":\"\"}", 400, "bad_request");
        s_refused (self, method, "{\"id\":\"r\\n1\"}", 400, "bad_request");
        s_refused (self, method, "{\"id\":\"r1\",\"x\":1}", 400, "bad_request");
        s_refused (self, method, "{\"id\":\"r1\"", 400, "malformed");
        s_refused (self, method, "[\"r1\"]", 400, "malformed");
        s_refused (self, method, "\"r1\"", 400, "malformed");
        char body [400] = "{\"id\":\"";
        memset (body + 7, 'r', 257);
        strcpy (body + 7 + 257, "\"}");
        s_refused (self, method, body, 400, "bad_request");
        //  Quotes and SQL are only text: no such reservation.
        s_refused (self, method, "{\"id\":\"r1' OR '1'='1\"}", 404, "not_found");
        s_refused (self, method, "{\"id\":\"r\\\"1\"}", 404, "not_found");
        s_refused (self, method, "{\"id\":\"r1\"}", 404, "not_found");
    }
}

static void
test_bad_list (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *bodies [] = {
        "{\"customer\":5}", "{\"customer\":\"\"}", "{\"customer\":true}",
        "{\"resource\":{}}", "{\"resource\":\"a\\u0001b\"}",
        "{\"status\":\"pending\"}", "{\"status\":\"BOGUS\"}",
        "{\"status\":\"\"}", "{\"status\":1}",
        "{\"limit\":0}", "{\"limit\":-1}", "{\"limit\":1001}",
        "{\"limit\":\"5\"}", "{\"limit\":2.5}", "{\"limit\":true}",
        "{\"after\":\"\"}", "{\"after\":5}", "{\"after\":\"abc\"}",
        "{\"after\":\"v\"}", "{\"after\":\"v12x\"}", "{\"after\":\"v-1\"}",
        "{\"after\":\"n12\"}", "{\"after\":\"v12345678901234567890\"}",
        "{\"cursor\":\"v1\"}", "{\"Customer\":\"c1\"}",
        NULL
    };
    for (const char **body = bodies; *body; body++)
        s_refused (self, "list", *body, 400, "bad_request");
    s_refused (self, "list", "{", 400, "malformed");
    s_refused (self, "list", "[]", 400, "malformed");
    s_refused (self, "list", "null", 400, "malformed");
}

static void
test_bad_method_and_rebuild (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_refused (self, "stats", "{}", 400, "unknown_method");
    s_refused (self, "", "{}", 400, "unknown_method");
    s_refused (self, "STATUS", "{\"id\":\"r1\"}", 400, "unknown_method");
    s_refused (self, "rebuild", "{\"from\":0}", 400, "bad_request");
    s_refused (self, "rebuild", "{\"x\":null}", 400, "bad_request");
    s_refused (self, "rebuild", "[", 400, "malformed");
    //  A refused rebuild changes nothing.
    s_put (self, "reservation.requested", "r1", "c1", "x", "PENDING");
    s_sync (self);
    s_refused (self, "rebuild", "{\"all\":true}", 400, "bad_request");
    assert_int_equal (store_cursor (self->store, "view"),
                      testkit_published (self->kit));
    json_decref (s_status (self, "r1"));
}

static void
test_malformed_events_are_skipped (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  Producers' bugs: logged, kept in the history, and they stop nothing.
    s_publish (self, s_event (self, "reservation.requested", "reservation", "m1",
                              NULL));
    s_publish (self, s_event (self, "reservation.confirmed", "reservation", "m2",
        json_pack ("{s:{s:s}}", "reservation", "customer", "c1")));
    s_publish (self, s_event (self, "reservation.requested", "reservation", "m3",
        json_pack ("{s:o}", "reservation", s_reservation ("other", "c1", "x",
                                                          "PENDING"))));
    s_publish (self, s_event (self, "payment.captured", "reservation", "m4",
        json_pack ("{s:{s:s}}", "payment", "id", "p")));
    s_publish (self, s_event (self, "payment.captured", "reservation", "m5",
        json_pack ("{s:i}", "payment", 7)));
    s_publish (self, s_event (self, "reservation.requested", "reservation", "m6",
        json_pack ("{s:s}", "reservation", "not an object")));
    s_publish (self, s_event (self, "reservation.requested", "reservation", "m7",
        json_pack ("{s:{s:s,s:i,s:s,s:s}}", "reservation", "id", "m7",
                   "customer", 7, "resource", "x", "status", "PENDING")));
    s_put (self, "reservation.requested", "ok", "c1", "x", "PENDING");
    s_sync (self);
    s_refused (self, "status", "{\"id\":\"m1\"}", 404, "not_found");
    s_refused (self, "status", "{\"id\":\"m2\"}", 404, "not_found");
    s_refused (self, "status", "{\"id\":\"m3\"}", 404, "not_found");
    s_refused (self, "status", "{\"id\":\"other\"}", 404, "not_found");
    s_refused (self, "status", "{\"id\":\"m6\"}", 404, "not_found");
    s_refused (self, "status", "{\"id\":\"m7\"}", 404, "not_found");
    json_decref (s_status (self, "ok"));
    json_t *reply = s_ok (self, "history", json_pack ("{s:s}", "id", "m4"));
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 1);
    json_decref (reply);
    s_assert_list (self, "{}", "ok");
}

//  Strings with escapes in the event text (a quote, a backslash, a control
//  character, which jansson writes as a \u escape) reach the read store
//  decoded, and the filters find them by their decoded text. Non-ASCII
//  text passes as it is.
static void
test_escaped_strings (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *customer = "c\"o\\r/a\x01 \xc3\xa9\xe2\x82\xac";
    s_put (self, "reservation.requested", "e1", customer, "r\"1", "PENDING");
    s_put (self, "reservation.requested", "e2", "plain", "r1", "PENDING");
    s_sync (self);
    json_t *items = testkit_journal (self->kit, "reservation.requested", "e1");
    char *text = json_dumps (json_array_get (items, 0), JSON_COMPACT);
    json_decref (items);
    assert_non_null (strstr (text, "c\\\"o\\\\r/a\\u0001"));
    free (text);
    //  The list refuses control characters in a filter: the column says.
    text = testkit_sql_text (self->store,
                             "SELECT customer FROM reservations WHERE id = 'e1'");
    assert_string_equal (text, customer);
    free (text);
    s_assert_list (self, "{\"resource\":\"r\\\"1\"}", "e1");
    s_assert_list (self, "{\"resource\":\"r1\"}", "e2");
    json_t *reservation = s_status (self, "e1");
    assert_string_equal (json_string_value (json_object_get (reservation,
                         "customer")), customer);
    json_decref (reservation);
}

//  A publish whose event gives a key twice: JSON allows it, and the
//  broker takes the last, as jansson does (its in-place reading refuses
//  such a text, so it parses the body instead and journals the event
//  written anew). The view reads what the journal holds.
static void
test_duplicate_keys (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *event = s_event (self, "reservation.requested", "reservation", "d1",
        json_pack ("{s:o,s:s}", "reservation",
                   s_reservation ("d1", "dora", "res-1", "PENDING"),
                   "previous", "PENDING"));
    char *text = json_dumps (event, JSON_COMPACT);
    json_decref (event);
    //  The same key at the top and in the reservation, first with other
    //  values.
    char body [4096];
    const char *inner = strstr (text, "\"customer\":");
    assert_non_null (inner);
    snprintf (body, sizeof body, "{\"events\":[{\"reservation\":\"d0\",%.*s"
              "\"customer\":\"first\",\"status\":\"FIRST\",%s]}",
              (int) (inner - text - 1), text + 1, inner);
    free (text);
    char *reply = NULL;
    assert_int_equal (resv_call_raw (testkit_client (self->kit), "events",
                                     "publish", body, strlen (body), 5000,
                                     &reply, NULL), 200);
    json_t *answer = json_loads (reply, 0, NULL);
    free (reply);
    int64_t seq = json_integer_value (json_array_get (
        json_object_get (answer, "seqs"), 0));
    json_decref (answer);
    assert_true (seq > 0);
    assert_true (testkit_wait_cursor (self->kit, self->store, "view", seq));
    json_t *reservation = s_status (self, "d1");
    assert_string_equal (json_string_value (json_object_get (reservation,
                         "customer")), "dora");
    assert_string_equal (json_string_value (json_object_get (reservation,
                         "status")), "PENDING");
    json_decref (reservation);
    assert_int_equal (testkit_sql_int (self->store,
        "SELECT count (*) FROM reservations WHERE id = 'd0'"), 0);
}

//  Runs sql on the test's own connection.
static void
s_exec (fixture_t *self, const char *sql)
{
    assert_int_equal (sqlite3_exec (store_db (self->store), sql, NULL, NULL,
                                    NULL), SQLITE_OK);
}

static void
test_store_failures_answer_500 (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_put (self, "reservation.requested", "r1", "c1", "x", "PENDING");
    s_sync (self);
    //  Statements prepared before the tables vanish, and after.
    json_decref (s_status (self, "r1"));
    json_decref (s_ok (self, "list", json_object ()));
    json_decref (s_ok (self, "history", json_pack ("{s:s}", "id", "r1")));
    s_exec (self, "DROP TABLE reservations; DROP TABLE history;");
    s_refused (self, "status", "{\"id\":\"r1\"}", 500, "internal");
    s_refused (self, "list", "{}", 500, "internal");
    s_refused (self, "list", "{\"customer\":\"c1\"}", 500, "internal");
    s_refused (self, "history", "{\"id\":\"r1\"}", 500, "internal");
    json_t *reply;
    assert_int_equal (s_call (self, "status", "{\"id\":\"r1\"}", &reply), 500);
    const char *message = json_string_value (json_object_get (
        json_object_get (reply, "error"), "message"));
    assert_non_null (strstr (message, "status"));
    assert_non_null (strstr (message, "no such table"));
    json_decref (reply);
    //  A failed rebuild is rolled back whole: the cursor stays.
    s_refused (self, "rebuild", "{}", 500, "internal");
    assert_int_equal (store_cursor (self->store, "view"),
                      testkit_published (self->kit));
}

static void
test_failed_apply_is_retried (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_put (self, "reservation.requested", "r1", "c1", "x", "PENDING");
    s_sync (self);
    int64_t cursor = testkit_published (self->kit);
    s_exec (self, "DROP TABLE history;");
    s_put (self, "reservation.confirmed", "r1", "c1", "x", "CONFIRMED");
    zclock_sleep (300);
    //  Not applied, and not skipped either.
    assert_int_equal (store_cursor (self->store, "view"), cursor);
    store_t *again = store_new (testkit_cfg (self->kit), "view",
        "CREATE TABLE history (reservation TEXT NOT NULL, "
        "seq INTEGER NOT NULL, event TEXT NOT NULL, "
        "PRIMARY KEY (reservation, seq));");
    assert_non_null (again);
    store_destroy (&again);
    s_sync (self);
    json_t *reservation = s_status (self, "r1");
    assert_string_equal (json_string_value (json_object_get (reservation,
                                            "status")), "CONFIRMED");
    json_decref (reservation);
}

static void
test_rebuild_without_a_journal (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_put (self, "reservation.requested", "r1", "c1", "x", "PENDING");
    s_sync (self);
    //  A process whose broker frontend answers nobody.
    svc_view_destroy (&self->state);
    setenv ("RESV_BROKER_FRONTEND", "tcp://127.0.0.1:1", 1);
    resv_cfg_t *cfg = resv_cfg_load (NULL);
    self->state = svc_view_new (cfg, NULL);
    assert_non_null (self->state);
    s_refused (self, "rebuild", "{}", 500, "internal");
    svc_view_destroy (&self->state);
    resv_cfg_destroy (&cfg);
}

//  A rebuild whose replay stopped half way (a journal read that failed: a
//  broker paused or restarting) leaves the store reset and its cursor
//  back; the live consumer, which had seen the end of the journal, picks
//  up from the stored cursor by itself, with no new event to wake it.
//  Only an apply looked at the stored cursor, and a quiet system kept the
//  view half built.
static void
test_half_rebuild_is_finished_while_quiet (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_varied_journal (self);
    char *before = s_snapshot (self);
    //  As a rebuild leaves it whose first journal read failed: emptied,
    //  its cursor at 0.
    s_exec (self, "BEGIN IMMEDIATE;"
                  "DELETE FROM reservations; DELETE FROM payments;"
                  "DELETE FROM history;"
                  "UPDATE cursors SET seq = 0 WHERE name = 'view';"
                  "COMMIT");
    char *half = s_snapshot (self);
    assert_string_not_equal (half, before);
    free (half);
    bool whole = false;
    for (int i = 0; i < 100 && !whole; i++) {
        zclock_sleep (50);
        char *now = s_snapshot (self);
        whole = streq (now, before);
        free (now);
    }
    assert_true (whole);
    assert_int_equal (store_cursor (self->store, "view"),
                      testkit_published (self->kit));
    free (before);
}

//  --------------------------------------------------------------------------
//  Rebuilds take turns

//  Writes the rebuild row as another process's rebuild left it.
static void
s_rebuild_row (fixture_t *self, int64_t started, int64_t holder,
               int64_t finished)
{
    char sql [256];
    snprintf (sql, sizeof sql, "INSERT OR REPLACE INTO rebuild "
              "(one, started, holder, finished) VALUES (1, %" PRId64
              ", %" PRId64 ", %" PRId64 ")", started, holder, finished);
    s_exec (self, sql);
}

//  Takes the rebuild lock of the store, as another process's rebuild
//  holds it while under way; close the descriptor to let go. Returns it.
static int
s_rebuild_lock (fixture_t *self)
{
    char path [PATH_MAX];
    snprintf (path, sizeof path, "%s.rebuild.lock", store_path (self->store));
    int lock = db_lock (path);
    assert_true (lock >= 0);
    return lock;
}

//  Asserts the rebuild row's started, holder and finished.
static void
s_assert_rebuild_row (fixture_t *self, int64_t started, int64_t holder,
                      int64_t finished)
{
    sqlite3_stmt *stmt = store_stmt (self->store,
        "SELECT started, holder, finished FROM rebuild");
    assert_non_null (stmt);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int64 (stmt, 0), started);
    assert_int_equal (sqlite3_column_int64 (stmt, 1), holder);
    assert_int_equal (sqlite3_column_int64 (stmt, 2), finished);
    sqlite3_reset (stmt);
}

//  Starts a rebuild on the fixture's state in a thread, with 10 s to
//  answer; the true answer has the journal's events and reservations.
static pthread_t
s_rebuild_start (fixture_t *self, s_rebuilder_t *rebuilder,
                 int64_t reservations)
{
    *rebuilder = (s_rebuilder_t) {
        .state = self->state, .timeout = 10000, .rounds = 1,
        .events = testkit_published (self->kit), .reservations = reservations
    };
    pthread_t thread;
    assert_int_equal (pthread_create (&thread, NULL, s_rebuilder, rebuilder), 0);
    return thread;
}

//  Joins the thread and asserts that its rebuild answered the true counts.
static void
s_rebuild_join (pthread_t thread, s_rebuilder_t *rebuilder)
{
    pthread_join (thread, NULL);
    if (rebuilder->wrong)
        fail_msg ("rebuild answered %d %s", rebuilder->status,
                  rebuilder->answer);
}

static void
test_rebuild_waits_its_turn (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_varied_journal (self);
    int64_t published = testkit_published (self->kit);
    //  Another process's rebuild, the seventh, is under way: it holds the
    //  lock.
    int lock = s_rebuild_lock (self);
    s_rebuild_row (self, 7, 7, 6);
    //  One whose deadline comes first answers 503 and leaves the view as
    //  the other is making it.
    json_t *reply;
    assert_int_equal (testkit_handle (svc_view, self->state, "rebuild", "{}",
                                      2, 400, &reply), 503);
    assert_string_equal (json_string_value (json_object_get (json_object_get (
                         reply, "error"), "reason")), "in_progress");
    json_decref (reply);
    assert_int_equal (store_cursor (self->store, "view"), published);
    json_decref (s_status (self, "r1"));
    s_assert_rebuild_row (self, 7, 7, 6);
    //  One with time to wait: the other fails (it lets go of the view
    //  without completing), so this one runs itself.
    s_rebuilder_t rebuilder;
    pthread_t thread = s_rebuild_start (self, &rebuilder, 5);
    zclock_sleep (200);
    assert_int_equal (store_cursor (self->store, "view"), published);
    s_exec (self, "UPDATE rebuild SET holder = 0");
    close (lock);
    s_rebuild_join (thread, &rebuilder);
    s_assert_rebuild_row (self, 8, 0, 8);
    //  The other completes: this one answers the counts of the view that
    //  one left (here one reservation less), with no replay of its own.
    lock = s_rebuild_lock (self);
    s_rebuild_row (self, 9, 9, 8);
    thread = s_rebuild_start (self, &rebuilder, 4);
    zclock_sleep (200);
    s_exec (self, "DELETE FROM reservations WHERE id = 'r5'; "
                  "UPDATE rebuild SET holder = 0, finished = 9");
    close (lock);
    s_rebuild_join (thread, &rebuilder);
    s_assert_rebuild_row (self, 9, 0, 9);
    //  The lock taken by another that has not begun yet (no holder in the
    //  row): that one's completion answers this one too.
    lock = s_rebuild_lock (self);
    thread = s_rebuild_start (self, &rebuilder, 3);
    zclock_sleep (200);
    s_exec (self, "DELETE FROM reservations WHERE id = 'r4'; "
                  "UPDATE rebuild SET started = 10, finished = 10");
    close (lock);
    s_rebuild_join (thread, &rebuilder);
    s_assert_rebuild_row (self, 10, 0, 10);
    //  A worker told to stop waits no more.
    lock = s_rebuild_lock (self);
    s_rebuild_row (self, 11, 11, 10);
    zsys_interrupted = 1;
    assert_int_equal (testkit_handle (svc_view, self->state, "rebuild", "{}",
                                      2, 5000, &reply), 503);
    zsys_interrupted = 0;
    close (lock);
    assert_string_equal (json_string_value (json_object_get (json_object_get (
                         reply, "error"), "reason")), "stopping");
    json_decref (reply);
}

static void
test_rebuild_takes_over_a_dead_one (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_varied_journal (self);
    int64_t published = testkit_published (self->kit);
    //  A rebuild under way in the row, but no process holds the lock: its
    //  process died (killed half way, and maybe this one's own process
    //  before a restart). The next rebuild runs at once, not after a
    //  wait: with a 2 s deadline it is no 503 in_progress.
    s_rebuild_row (self, 3, 3, 2);
    json_t *reply;
    assert_int_equal (testkit_handle (svc_view, self->state, "rebuild", "{}",
                                      2, 2000, &reply), 200);
    assert_int_equal (json_integer_value (json_object_get (reply, "events")),
                      published);
    assert_int_equal (json_integer_value (json_object_get (reply,
                      "reservations")), 5);
    json_decref (reply);
    s_assert_rebuild_row (self, 4, 0, 4);
    //  A failed replay (no event can be applied) lets go of the view, for
    //  the next rebuild.
    s_exec (self, "CREATE TRIGGER refuse BEFORE INSERT ON history "
                  "BEGIN SELECT RAISE (FAIL, 'refused'); END;");
    s_refused (self, "rebuild", "{}", 500, "internal");
    s_assert_rebuild_row (self, 5, 0, 4);
    s_exec (self, "DROP TRIGGER refuse;");
    //  Even one that could not clear its holder: no process holds the lock.
    s_exec (self, "UPDATE rebuild SET holder = 5");
    assert_int_equal (testkit_handle (svc_view, self->state, "rebuild", "{}",
                                      2, 2000, &reply), 200);
    assert_int_equal (json_integer_value (json_object_get (reply,
                      "reservations")), 5);
    json_decref (reply);
    s_assert_rebuild_row (self, 6, 0, 6);
}

static void
test_new_failures (void **state)
{
    (void) state;
    testkit_assert_no_state (svc_view_new, svc_view_destroy);
    setenv ("RESV_BROKER_FRONTEND", "not an endpoint", 1);
    resv_cfg_t *cfg = resv_cfg_load (NULL);
    assert_null (svc_view_new (cfg, NULL));
    resv_cfg_destroy (&cfg);
}

int
main (void)
{
    testkit_init ();
    #define S_TEST(name) cmocka_unit_test_prestate_setup_teardown (name, \
        testkit_service_setup, testkit_service_teardown, "view")
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_registered),
        S_TEST (test_status_follows_the_reservation),
        S_TEST (test_payment_before_its_reservation),
        S_TEST (test_list_filters),
        S_TEST (test_list_limit_and_paging),
        S_TEST (test_history_in_order),
        S_TEST (test_rebuild_identical),
        S_TEST (test_rebuild_while_events_arrive),
        S_TEST (test_two_views_agree),
        S_TEST (test_rebuilds_at_once),
        S_TEST (test_through_a_worker),
        S_TEST (test_a_rebuild_done_as_its_worker_stops),
        cmocka_unit_test_setup_teardown (test_a_large_rebuild_keeps_its_worker,
            s_setup_short_liveness, testkit_service_teardown),
        S_TEST (test_bad_status_and_history),
        S_TEST (test_bad_list),
        S_TEST (test_bad_method_and_rebuild),
        S_TEST (test_malformed_events_are_skipped),
        S_TEST (test_escaped_strings),
        S_TEST (test_duplicate_keys),
        S_TEST (test_store_failures_answer_500),
        S_TEST (test_failed_apply_is_retried),
        S_TEST (test_rebuild_without_a_journal),
        S_TEST (test_half_rebuild_is_finished_while_quiet),
        S_TEST (test_rebuild_waits_its_turn),
        S_TEST (test_rebuild_takes_over_a_dead_one),
        S_TEST (test_new_failures),
    };
    return cmocka_run_group_tests_name ("svc_view", tests, NULL, NULL);
}
