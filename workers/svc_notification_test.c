/*  svc_notification_test.c: the notification service
    (svc_notification.c), against a real broker (in-process actor) and
    real SQLite files in a temporary directory.

    Events are published by hand into the broker's journal, in the shapes
    of doc/saga.md; the service's states consume them as worker processes
    do, and requests go straight to the handler (once through a real worker
    and libresv).
*/

#include "testkit.h"

//  A state of the service, with no worker (testkit.h): every test's
//  fixture.
typedef testkit_service_t fixture_t;


//  --------------------------------------------------------------------------
//  Events

//  Publishes events (one or an array, taken); returns the last seq given.
static int64_t
s_publish_all (fixture_t *self, json_t *events)
{
    return testkit_publish (self->kit, events);
}

//  An event about reservation id with a fresh event id; data is taken.
static json_t *
s_event (fixture_t *self, const char *type, const char *id, json_t *data)
{
    return testkit_event (self->kit, NULL, type, id, data);
}

//  The data of a reservation.TYPE event for customer's reservation id.
static json_t *
s_reservation_data (const char *id, const char *customer, int days,
                    const char *status)
{
    return json_pack ("{s:{s:s,s:s,s:s,s:s,s:s,s:i,s:s,s:i,s:i,s:s,s:n,"
                      "s:{s:s,s:s},s:s,s:s},s:s}",
        "reservation", "id", id, "request_id", "rq-1", "customer", customer,
        "resource", "res-7", "date", "2026-12-01", "days", days,
        "slot", "all-day", "units", 1, "amount", 12345, "status", status,
        "reason", "payment", "id", "p-1", "status", "authorized",
        "created_at", "2026-11-28T10:00:00.000Z",
        "updated_at", "2026-11-28T10:00:00.000Z", "previous", "PENDING");
}

static int64_t
s_put (fixture_t *self, const char *type, const char *id,
       const char *customer, const char *status)
{
    return s_publish_all (self, json_pack ("[o]", s_event (self, type, id,
                          s_reservation_data (id, customer, 1, status))));
}

static json_t *
s_payment_event (fixture_t *self, const char *type, const char *id,
                 const char *customer, int amount)
{
    return s_event (self, type, id, json_pack ("{s:{s:s,s:s,s:i},s:s}",
        "payment", "id", "p-1", "status", type + 8, "amount", amount,
        "customer", customer));
}

//  Waits until the service has applied every event published so far.
//  The types notification takes, each with a cursor of its own.
static const char *s_types [] = {
    "reservation.confirmed", "reservation.declined", "reservation.expired",
    "reservation.cancelled", "payment.refunded", NULL
};

static void
s_sync (fixture_t *self)
{
    testkit_sync_types (self->kit, self->store, "notification", s_types);
}

//  The notification.sent events in the journal, once the relay has sent
//  count of them (waits up to 5 s); the caller owns the array.
static json_t *
s_sent (fixture_t *self, size_t count)
{
    testkit_wait_count (self->kit, "notification.sent", NULL, count);
    return testkit_journal (self->kit, "notification.sent", NULL);
}

//  Rows in the notifications table.
static int64_t
s_rows (fixture_t *self)
{
    return testkit_sql_int (self->store, "SELECT count (*) FROM notifications");
}


//  --------------------------------------------------------------------------
//  Requests

static int
s_call (fixture_t *self, const char *method, const char *body, json_t **reply_p)
{
    return testkit_handle (svc_notification, self->state, method, body,
                           strlen (body), 5000, reply_p);
}

//  list for customer (with more, a JSON text of other members, or NULL).
static json_t *
s_list (fixture_t *self, const char *customer, const char *more)
{
    char body [256];
    snprintf (body, sizeof body, "{\"customer\":\"%s\"%s%s}", customer,
              more? ",": "", more? more: "");
    json_t *reply;
    int status = s_call (self, "list", body, &reply);
    if (status != 200)
        fail_msg ("list %s: %d", body, status);
    return reply;
}

static void
s_refused (fixture_t *self, const char *method, const char *body, int code,
           const char *reason)
{
    testkit_refused (svc_notification, self->state, method, body, code,
                     reason);
}

static const char *
s_get (json_t *object, const char *key)
{
    return json_string_value (json_object_get (object, key));
}


//  --------------------------------------------------------------------------
//  Success

static void
test_registered (void **state)
{
    (void) state;
    testkit_assert_service ("notification", svc_notification,
                            svc_notification_new, svc_notification_destroy);
}

static void
test_one_notice_per_change (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  Only the customer-facing changes notify.
    s_put (self, "reservation.requested", "r1", "c1", "PENDING");
    s_publish_all (self, json_pack ("[o]", s_payment_event (self,
                   "payment.authorized", "r1", "c1", 12345)));
    s_publish_all (self, json_pack ("[o]", s_event (self, "approval.approved",
                   "r1", json_pack ("{s:s,s:b}", "owner", "o", "auto", 1))));
    s_put (self, "reservation.confirmed", "r1", "c1", "CONFIRMED");
    s_publish_all (self, json_pack ("[o]", s_payment_event (self,
                   "payment.captured", "r1", "c1", 12345)));
    s_put (self, "reservation.cancelled", "r1", "c1", "CANCELLED");
    s_publish_all (self, json_pack ("[o]", s_payment_event (self,
                   "payment.refunded", "r1", "c1", 12345)));
    json_t *declined = s_reservation_data ("r2", "c1", 3, "DECLINED");
    json_object_set_new (declined, "reason",
                         json_string ("closed for \"works\" \\ \xc3\xa9\t."));
    s_publish_all (self, json_pack ("[o]", s_event (self,
                   "reservation.declined", "r2", declined)));
    s_put (self, "reservation.expired", "r3", "c1", "EXPIRED");
    s_publish_all (self, json_pack ("[o]", s_event (self,
                   "reservation.declined", "r4",
                   s_reservation_data ("r4", "c1", 1, "DECLINED"))));
    //  A decline without a reason carries the default one (approval and
    //  the reservation service set it): the notice does not repeat it.
    declined = s_reservation_data ("r5", "c1", 1, "DECLINED");
    json_object_set_new (declined, "reason", json_string ("declined by the owner"));
    s_publish_all (self, json_pack ("[o]", s_event (self,
                   "reservation.declined", "r5", declined)));
    s_publish_all (self, json_pack ("[o]", s_event (self,
                   "resource.updated", "r9", NULL)));
    s_sync (self);

    json_t *reply = s_list (self, "c1", NULL);
    json_t *items = json_object_get (reply, "items");
    assert_null (json_object_get (reply, "next"));
    const char *expected [][3] = {
        { "reservation.confirmed", "r1", "Your reservation r1 for res-7 on "
          "2026-12-01 is confirmed." },
        { "reservation.cancelled", "r1", "Your reservation r1 for res-7 on "
          "2026-12-01 is cancelled." },
        { "payment.refunded", "r1", "Your payment of 123.45 for reservation "
          "r1 was refunded." },
        { "reservation.declined", "r2", "Your reservation r2 for res-7 from "
          "2026-12-01 for 3 days was declined by the owner: closed for "
          "\"works\" \\ \xc3\xa9\t." },
        { "reservation.expired", "r3", "Your reservation r3 for res-7 on "
          "2026-12-01 expired: the owner did not decide in time." },
        { "reservation.declined", "r4", "Your reservation r4 for res-7 on "
          "2026-12-01 was declined by the owner." },
        { "reservation.declined", "r5", "Your reservation r5 for res-7 on "
          "2026-12-01 was declined by the owner." },
    };
    //  They are listed in the order they were recorded: the consumer takes
    //  each type on its own, so that may not be the order of the events.
    assert_int_equal (json_array_size (items), 7);
    for (size_t i = 0; i < 7; i++) {
        json_t *item = NULL;
        for (size_t index = 0; index < 7 && !item; index++) {
            json_t *candidate = json_array_get (items, index);
            if (streq (s_get (candidate, "kind"), expected [i][0])
            &&  streq (s_get (candidate, "reservation"), expected [i][1]))
                item = candidate;
        }
        if (!item)
            fail_msg ("no %s of %s", expected [i][0], expected [i][1]);
        assert_int_equal (json_object_size (item), 6);
        assert_string_equal (s_get (item, "text"), expected [i][2]);
        assert_string_equal (s_get (item, "customer"), "c1");
        assert_non_null (s_get (item, "id"));
        assert_int_equal (strlen (s_get (item, "at")), 24);
    }
    json_decref (reply);
}

static void
test_notification_sent_is_emitted (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_put (self, "reservation.confirmed", "r1", "c1", "CONFIRMED");
    s_put (self, "reservation.expired", "r2", "c2", "EXPIRED");
    s_sync (self);
    json_t *sent = s_sent (self, 2);
    assert_int_equal (json_array_size (sent), 2);
    json_t *reply = s_list (self, "c1", NULL);
    json_t *notification = json_array_get (json_object_get (reply, "items"), 0);
    //  The consumer takes its types each on its own (events_config_t
    //  .by_type): the two may be applied, and notified, in either order.
    json_t *event = json_array_get (sent, 0);
    if (!streq (s_get (event, "reservation"), "r1"))
        event = json_array_get (sent, 1);
    //  The event carries the notification as listed, about its reservation,
    //  with the cause's correlation, and an id derived from the cause's.
    assert_true (json_equal (json_object_get (json_object_get (event, "data"),
                                              "notification"), notification));
    assert_string_equal (s_get (event, "reservation"), "r1");
    assert_string_equal (s_get (event, "correlation_id"), "r1");
    char caused [STORE_CAUSED_ID_SIZE];
    assert_string_equal (s_get (event, "id"),
                         store_caused_id ("ev1", "notification.sent", caused));
    assert_string_equal (s_get (notification, "id"), "nev1");
    //  Its members in the order of spec section 5.
    const char *order [] = { "id", "customer", "reservation", "kind", "text",
                             "at" };
    size_t index = 0;
    const char *key;
    json_t *value;
    json_object_foreach (notification, key, value) {
        assert_true (index < 6);
        assert_string_equal (key, order [index++]);
    }
    assert_int_equal (index, 6);
    json_decref (reply);
    json_decref (sent);
}

static void
test_same_event_twice_notifies_once (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *event = s_event (self, "reservation.confirmed", "r1",
                             s_reservation_data ("r1", "c1", 1, "CONFIRMED"));
    s_publish_all (self, json_pack ("[O]", event));
    s_publish_all (self, json_pack ("[O]", event));
    s_publish_all (self, json_pack ("[O,O]", event, event));
    json_decref (event);
    s_put (self, "reservation.cancelled", "r1", "c1", "CANCELLED");
    s_sync (self);
    json_t *reply = s_list (self, "c1", NULL);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 2);
    json_decref (reply);
    json_t *sent = s_sent (self, 2);
    zclock_sleep (300);         //  Time for a wrong third to be relayed
    json_decref (sent);
    sent = s_sent (self, 2);
    assert_int_equal (json_array_size (sent), 2);
    json_decref (sent);
}

static void
test_two_processes_notify_once (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    void *second = svc_notification_new (testkit_cfg (self->kit), NULL);
    void *third = svc_notification_new (testkit_cfg (self->kit), NULL);
    assert_non_null (second);
    assert_non_null (third);
    for (int batch = 0; batch < 4; batch++) {
        json_t *events = json_array ();
        for (int i = 0; i < 50; i++) {
            char id [16];
            snprintf (id, sizeof id, "r%d-%d", batch, i);
            json_array_append_new (events, s_event (self,
                "reservation.confirmed", id,
                s_reservation_data (id, i % 2? "c1": "c2", 1, "CONFIRMED")));
        }
        s_publish_all (self, events);
    }
    s_sync (self);
    assert_int_equal (s_rows (self), 200);
    json_t *sent = s_sent (self, 200);
    zclock_sleep (300);
    json_decref (sent);
    sent = s_sent (self, 200);
    assert_int_equal (json_array_size (sent), 200);
    json_decref (sent);
    json_t *reply = s_list (self, "c1", NULL);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 100);
    json_decref (reply);
    svc_notification_destroy (&second);
    svc_notification_destroy (&third);
}

static void
test_applied_again_changes_nothing (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_put (self, "reservation.confirmed", "r1", "c1", "CONFIRMED");
    s_put (self, "reservation.cancelled", "r1", "c1", "CANCELLED");
    s_sync (self);
    json_t *sent = s_sent (self, 2);
    json_decref (sent);
    json_t *before = s_list (self, "c1", NULL);
    //  As if the cursor had been lost: every event is applied once more.
    svc_notification_destroy (&self->state);
    assert_int_equal (sqlite3_exec (store_db (self->store),
                      "UPDATE cursors SET seq = 0", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal (store_cursor (self->store,
                                    "notification/reservation.cancelled"), 0);
    self->state = svc_notification_new (testkit_cfg (self->kit), NULL);
    assert_non_null (self->state);
    s_sync (self);
    json_t *after = s_list (self, "c1", NULL);
    assert_true (json_equal (before, after));
    json_decref (before);
    json_decref (after);
    zclock_sleep (300);
    sent = s_sent (self, 2);
    assert_int_equal (json_array_size (sent), 2);
    json_decref (sent);
    //  Nothing was left in the outbox to send either.
    int64_t last;
    assert_null (store_outbox_peek (self->store, 10, &last));
}

static void
test_list_by_customer_and_pages (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *events = json_array ();
    for (int i = 0; i < 9; i++) {
        char id [16];
        snprintf (id, sizeof id, "r%d", i);
        json_array_append_new (events, s_event (self, "reservation.confirmed",
            id, s_reservation_data (id, i < 7? "alice": "bob", 1, "CONFIRMED")));
    }
    s_publish_all (self, events);
    s_sync (self);
    json_t *reply = s_list (self, "bob", NULL);
    json_t *items = json_object_get (reply, "items");
    assert_int_equal (json_array_size (items), 2);
    assert_string_equal (s_get (json_array_get (items, 0), "reservation"), "r7");
    assert_string_equal (s_get (json_array_get (items, 1), "reservation"), "r8");
    json_decref (reply);
    reply = s_list (self, "nobody", NULL);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 0);
    assert_null (json_object_get (reply, "next"));
    json_decref (reply);
    //  Pages of 3: 3, 3, 1, each in order, nothing lost or repeated.
    char more [64] = "\"limit\":3";
    int seen = 0;
    for (int page = 0; page < 3; page++) {
        reply = s_list (self, "alice", more);
        items = json_object_get (reply, "items");
        assert_int_equal (json_array_size (items), page < 2? 3: 1);
        for (size_t i = 0; i < json_array_size (items); i++) {
            char id [16];
            snprintf (id, sizeof id, "r%d", seen++);
            assert_string_equal (s_get (json_array_get (items, i),
                                        "reservation"), id);
        }
        json_t *next = json_object_get (reply, "next");
        if (page < 2)
            snprintf (more, sizeof more, "\"limit\":3,\"after\":\"%s\"",
                      json_string_value (next));
        else
            assert_null (next);
        json_decref (reply);
    }
    assert_int_equal (seen, 7);
}

//  Sets the cursor of consumer name in the store, as if it had applied
//  every event of its type up to seq. No state may run meanwhile.
static void
s_set_cursor (fixture_t *self, const char *name, int64_t seq)
{
    char *sql = zsys_sprintf ("INSERT INTO cursors (name, seq) VALUES "
                              "('%s', %" PRId64 ") ON CONFLICT (name) DO "
                              "UPDATE SET seq = excluded.seq", name, seq);
    assert_int_equal (sqlite3_exec (store_db (self->store), sql, NULL, NULL,
                                    NULL), SQLITE_OK);
    zstr_free (&sql);
}

//  Reads customer's pages of limit items from cursor *after_p (NULL: the
//  first page), at most pages of them, and appends each item's
//  reservation and a comma to seen. *after_p is then the last page's next
//  (freed and replaced; NULL once a page had none).
static void
s_read_pages (fixture_t *self, const char *customer, int limit, int pages,
              char **after_p, char *seen, size_t size)
{
    for (int page = 0; page < pages; page++) {
        char more [64];
        if (*after_p)
            snprintf (more, sizeof more, "\"limit\":%d,\"after\":\"%s\"",
                      limit, *after_p);
        else
            snprintf (more, sizeof more, "\"limit\":%d", limit);
        json_t *reply = s_list (self, customer, more);
        json_t *items = json_object_get (reply, "items");
        for (size_t index = 0; index < json_array_size (items); index++) {
            const char *id = s_get (json_array_get (items, index),
                                    "reservation");
            assert_true (strlen (seen) + strlen (id) + 2 <= size);
            strcat (seen, id);
            strcat (seen, ",");
        }
        zstr_free (after_p);
        const char *next = s_get (reply, "next");
        if (next)
            *after_p = strdup (next);
        json_decref (reply);
        if (!*after_p)
            break;
    }
}

//  c1's notification of a confirmation (r1) is recorded after those of
//  two later cancellations (r2, r3), as when the consumer of
//  reservation.confirmed catches up behind the others (after a lost
//  event, at a start, or in another process): a client reads pages of
//  one, the first before (ending at r2 after `before` pages), the rest
//  after it. Returns what the pages held, as s_read_pages writes it.
static char *
s_late_notice (fixture_t *self, int before)
{
    svc_notification_destroy (&self->state);
    int64_t first = s_put (self, "reservation.confirmed", "r1", "c1",
                           "CONFIRMED");
    s_put (self, "reservation.cancelled", "r2", "c1", "CANCELLED");
    s_put (self, "reservation.cancelled", "r3", "c1", "CANCELLED");
    //  The consumer of confirmations is held back before r1's.
    s_set_cursor (self, "notification/reservation.confirmed", first);
    self->state = svc_notification_new (testkit_cfg (self->kit), NULL);
    assert_non_null (self->state);
    s_sync (self);
    char seen [256] = "";
    char *after = NULL;
    s_read_pages (self, "c1", 1, before, &after, seen, sizeof seen);
    assert_non_null (after);
    //  Then it applies r1's, while the client is between two pages.
    svc_notification_destroy (&self->state);
    s_set_cursor (self, "notification/reservation.confirmed", first - 1);
    self->state = svc_notification_new (testkit_cfg (self->kit), NULL);
    assert_non_null (self->state);
    s_sync (self);
    assert_int_equal (s_rows (self), before + 2);
    s_read_pages (self, "c1", 1, 10, &after, seen, sizeof seen);
    assert_null (after);
    return strdup (seen);
}

static void
test_pages_take_a_late_notice (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  Pages follow the order notifications were recorded in: the late
    //  one comes last, and none is skipped or repeated.
    char *seen = s_late_notice (self, 1);
    assert_string_equal (seen, "r2,r3,r1,");
    free (seen);
}

//  The table of notifications as a build before the paging by position
//  made it.
static const char *s_old_schema =
    "CREATE TABLE notifications ("
    "    id          TEXT PRIMARY KEY,"
    "    seq         INTEGER NOT NULL,"
    "    customer    TEXT NOT NULL,"
    "    reservation TEXT NOT NULL,"
    "    kind        TEXT NOT NULL,"
    "    body        TEXT NOT NULL);"
    "CREATE INDEX notifications_customer ON notifications (customer, seq);"
    "INSERT INTO notifications VALUES ('nold1', 101, 'c1', 'o1', "
    "    'reservation.confirmed', '{\"id\":\"nold1\",\"customer\":\"c1\","
    "\"reservation\":\"o1\",\"kind\":\"reservation.confirmed\",\"text\":"
    "\"Your reservation o1 is confirmed.\",\"at\":"
    "\"2026-11-28T10:00:00.000Z\"}');"
    "INSERT INTO notifications VALUES ('nold2', 102, 'c1', 'o2', "
    "    'reservation.expired', '{\"id\":\"nold2\",\"customer\":\"c1\","
    "\"reservation\":\"o2\",\"kind\":\"reservation.expired\",\"text\":"
    "\"Your reservation o2 expired: the owner did not decide in time.\","
    "\"at\":\"2026-11-28T10:00:00.000Z\"}');";

static void
test_old_store_pages (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  A store of that build, with two notifications in it.
    svc_notification_destroy (&self->state);
    assert_int_equal (sqlite3_exec (store_db (self->store),
                      "DROP TABLE notifications", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_exec (store_db (self->store), s_old_schema,
                                    NULL, NULL, NULL), SQLITE_OK);
    self->state = svc_notification_new (testkit_cfg (self->kit), NULL);
    assert_non_null (self->state);
    //  It opens, and pages in the order of recording: the old ones first.
    char *seen = s_late_notice (self, 3);
    assert_string_equal (seen, "o1,o2,r2,r3,r1,");
    free (seen);
    json_t *reply = s_list (self, "c1", NULL);
    json_t *items = json_object_get (reply, "items");
    assert_int_equal (json_array_size (items), 5);
    assert_string_equal (s_get (json_array_get (items, 1), "text"),
        "Your reservation o2 expired: the owner did not decide in time.");
    json_decref (reply);
}

static void
test_through_a_worker (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  A real worker of the service, serving through the broker.
    testkit_start (self->kit, "notification");
    s_put (self, "reservation.confirmed", "r1", "c1", "CONFIRMED");
    s_sync (self);
    json_t *reply = NULL;
    assert_int_equal (resv_notifications (testkit_client (self->kit), "c1",
                                          &reply), 200);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 1);
    json_decref (reply);
    assert_int_equal (resv_call (testkit_client (self->kit), "notification",
                                 "list", NULL, 5000, &reply), 400);
    json_decref (reply);
    testkit_stop (self->kit, "notification");
}


//  --------------------------------------------------------------------------
//  Failures

static void
test_bad_list (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *bodies [] = {
        "{}", "{\"customer\":null}", "{\"customer\":5}", "{\"customer\":\"\"}",
        "{\"customer\":[\"c1\"]}", "{\"customer\":\"c\\u00011\"}",
        "{\"customer\":\"c1\",\"kind\":\"x\"}", "{\"Customer\":\"c1\"}",
        "{\"customer\":\"c1\",\"limit\":0}", "{\"customer\":\"c1\",\"limit\":1001}",
        "{\"customer\":\"c1\",\"limit\":\"3\"}",
        "{\"customer\":\"c1\",\"after\":\"\"}", "{\"customer\":\"c1\",\"after\":3}",
        "{\"customer\":\"c1\",\"after\":\"v3\"}",
        "{\"customer\":\"c1\",\"after\":\"n3x\"}",
        "{\"customer\":\"c1\",\"after\":\"n\"}",
        //  A cursor of a build that paged by the causes' seqs.
        "{\"customer\":\"c1\",\"after\":\"n3\"}",
        "{\"customer\":\"c1\",\"after\":\"k\"}",
        "{\"customer\":\"c1\",\"after\":\"k3x\"}",
        "{\"customer\":\"c1\",\"after\":\"k-3\"}",
        NULL
    };
    for (const char **body = bodies; *body; body++)
        s_refused (self, "list", *body, 400, "bad_request");
    char body [400] = "{\"customer\":\"";
    memset (body + 13, 'c', 257);
    strcpy (body + 13 + 257, "\"}");
    s_refused (self, "list", body, 400, "bad_request");
    s_refused (self, "list", "{\"customer\":", 400, "malformed");
    s_refused (self, "list", "[\"c1\"]", 400, "malformed");
    s_refused (self, "list", "", 400, "bad_request");      //  {}: no customer
    s_refused (self, "send", "{\"customer\":\"c1\"}", 400, "unknown_method");
    s_refused (self, "", "{}", 400, "unknown_method");
    //  Quotes and SQL are only text.
    json_t *reply = s_list (self, "c1\\\" OR 1=1 --", NULL);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 0);
    json_decref (reply);
}

static void
test_incomplete_events_are_skipped (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  Producers' bugs: logged and skipped; the events after them go on.
    json_t *events = json_array ();
    json_array_append_new (events, s_event (self, "reservation.confirmed",
                                            "r1", NULL));
    json_array_append_new (events, s_event (self, "reservation.cancelled",
        "r2", json_pack ("{s:{s:i}}", "reservation", "customer", 5)));
    json_array_append_new (events, s_event (self, "payment.refunded", "r3",
        json_pack ("{s:{s:s}}", "payment", "id", "p")));
    json_array_append_new (events, json_pack ("{s:s,s:s,s:{s:{s:s}}}",
        "id", "no-reservation", "type", "reservation.expired", "data",
        "reservation", "customer", "c1"));
    //  A refund without an amount still notifies, in fewer words.
    json_array_append_new (events, s_event (self, "payment.refunded", "r5",
        json_pack ("{s:{s:s},s:s}", "payment", "id", "p", "customer", "c1")));
    json_array_append_new (events, s_event (self, "reservation.confirmed",
        "r6", s_reservation_data ("r6", "c1", 1, "CONFIRMED")));
    s_publish_all (self, events);
    s_sync (self);
    json_t *reply = s_list (self, "c1", NULL);
    json_t *items = json_object_get (reply, "items");
    assert_int_equal (json_array_size (items), 2);
    //  The list is in the order the notices were recorded, which is not
    //  the events' order across types (the consumer takes each type on
    //  its own): r5's refund and r6's confirmation, either way round.
    int refund = streq (s_get (json_array_get (items, 0), "reservation"), "r5")? 0: 1;
    assert_string_equal (s_get (json_array_get (items, refund), "text"),
                         "Your payment for reservation r5 was refunded.");
    assert_string_equal (s_get (json_array_get (items, 1 - refund), "reservation"),
                         "r6");
    json_decref (reply);
}

static void
test_store_failure_answers_500 (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_decref (s_list (self, "c1", NULL));
    assert_int_equal (sqlite3_exec (store_db (self->store),
                      "DROP TABLE notifications", NULL, NULL, NULL), SQLITE_OK);
    s_refused (self, "list", "{\"customer\":\"c1\"}", 500, "internal");
    json_t *reply;
    assert_int_equal (s_call (self, "list", "{\"customer\":\"c1\"}", &reply), 500);
    const char *message = json_string_value (json_object_get (
        json_object_get (reply, "error"), "message"));
    assert_non_null (strstr (message, "list"));
    assert_non_null (strstr (message, "no such table"));
    json_decref (reply);
}

static void
test_failed_apply_is_retried (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    s_put (self, "reservation.confirmed", "r1", "c1", "CONFIRMED");
    s_sync (self);
    //  The table is gone: the apply fails, and is neither skipped nor
    //  half done; once the table is back, the event notifies once. (The
    //  cursor may pass the first notification.sent, which it ignores.)
    assert_int_equal (sqlite3_exec (store_db (self->store),
                      "ALTER TABLE notifications RENAME TO away", NULL, NULL,
                      NULL), SQLITE_OK);
    int64_t cancelled = s_put (self, "reservation.cancelled", "r1", "c1",
                               "CANCELLED");
    zclock_sleep (300);
    assert_true (store_cursor (self->store, "notification/reservation.cancelled")
                 < cancelled);
    assert_int_equal (sqlite3_exec (store_db (self->store),
                      "ALTER TABLE away RENAME TO notifications", NULL, NULL,
                      NULL), SQLITE_OK);
    s_sync (self);
    json_t *reply = s_list (self, "c1", NULL);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 2);
    json_decref (reply);
    json_t *sent = s_sent (self, 2);
    assert_int_equal (json_array_size (sent), 2);
    json_decref (sent);
}

static void
test_new_failures (void **state)
{
    (void) state;
    testkit_assert_no_state (svc_notification_new, svc_notification_destroy);
    setenv ("RESV_BROKER_FRONTEND", "not an endpoint", 1);
    resv_cfg_t *cfg = resv_cfg_load (NULL);
    assert_null (svc_notification_new (cfg, NULL));
    resv_cfg_destroy (&cfg);
}

int
main (void)
{
    testkit_init ();
    #define S_TEST(name) cmocka_unit_test_prestate_setup_teardown (name, \
        testkit_service_setup, testkit_service_teardown, "notification")
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_registered),
        S_TEST (test_one_notice_per_change),
        S_TEST (test_notification_sent_is_emitted),
        S_TEST (test_same_event_twice_notifies_once),
        S_TEST (test_two_processes_notify_once),
        S_TEST (test_applied_again_changes_nothing),
        S_TEST (test_list_by_customer_and_pages),
        S_TEST (test_pages_take_a_late_notice),
        S_TEST (test_old_store_pages),
        S_TEST (test_through_a_worker),
        S_TEST (test_bad_list),
        S_TEST (test_incomplete_events_are_skipped),
        S_TEST (test_store_failure_answers_500),
        S_TEST (test_failed_apply_is_retried),
        S_TEST (test_new_failures),
    };
    return cmocka_run_group_tests_name ("svc_notification", tests, NULL, NULL);
}
