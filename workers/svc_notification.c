/*  svc_notification.c: notification, one notice to the customer per
    customer-facing change of a reservation (svc.h, doc/saga.md).

    The service consumes reservation.confirmed|declined|expired|cancelled
    and payment.refunded. For each it records one notification
    {id, customer, reservation, kind, text, at} and emits notification.sent,
    both in the consumer's transaction, so that the notice and the record
    that the event was applied commit together.

    Exactly once: the notification id is derived from the id of the event
    that caused it, and is the table's primary key. A second application of
    the same event (a second process, a replay) inserts nothing and, since
    the insert changed no row, emits nothing either; had it emitted, the
    event id derived from the cause (store_emit_caused) would make the
    journal drop the copy.

    `at` is when the notification was made, not when its cause happened: a
    consumer catching up after a stop sends late, and says so.

    list answers a customer's notifications in the order they were
    recorded. That is the order of their causes, except that the consumer
    takes its types each on its own (by_type): a type catching up (at a
    start, after a lost event), the types of one live batch, or another
    process may record a later cause's notice before an earlier one's.
    list also takes limit and after, as view list does, so that a reply
    can never outgrow broker/max_message: past a page (RESV_PAGE_MAX) it
    says where the next one starts (`resv notifications --after`). The
    pages go by the row's position, which grows in the order of commits,
    not by the cause's seq: a notice recorded late for an early cause
    would sit behind a client's cursor, and a traversal would skip it.

    An event that lacks what a notice needs (no customer, no reservation)
    is a producer's bug: it is logged and skipped rather than retried,
    because retrying could never succeed and would stop every later event.
*/

#include "svc.h"
#include "events.h"
#include "fields.h"
#include "resv_util.h"

//  The store and the consumer's cursor name.
#define S_NAME          "notification"
//  Room for a notification id: "n" and an event id, which the journal keeps
//  to JOURNAL_ID_MAX (64) bytes.
#define S_ID_SIZE       80

//  Notifications in the order they were recorded: pos, the rowid, is what
//  list orders and pages by. SQLite gives a new row the largest rowid plus
//  one, and only one connection of any process writes at a time (BEGIN
//  IMMEDIATE), so positions grow in the order of commits: a row committed
//  after a list's read has a larger one than every row that read saw, and
//  comes after its cursor. AUTOINCREMENT keeps that if rows are ever
//  deleted (no rowid is given twice), and an explicit key keeps positions
//  through a VACUUM. A store of a build before positions keeps its table,
//  with id its primary key and an implicit rowid (list says rowid, which
//  both have): those rowids were given the same way, and no row is ever
//  deleted, so it pages the same. Its index by (customer, seq), that
//  build's list order, gives way to the one by customer, which holds the
//  rowid and so serves the list as it is.
static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS notifications ("
    "    pos         INTEGER PRIMARY KEY AUTOINCREMENT,"
    "    id          TEXT NOT NULL UNIQUE," //  Derived from the cause's id
    "    seq         INTEGER NOT NULL,"     //  Journal seq of the cause
    "    customer    TEXT NOT NULL,"
    "    reservation TEXT NOT NULL,"
    "    kind        TEXT NOT NULL,"        //  The cause's event type
    "    body        TEXT NOT NULL);"       //  The notification, as JSON
    "CREATE INDEX IF NOT EXISTS notifications_order"
    "    ON notifications (customer);"
    "DROP INDEX IF EXISTS notifications_customer;";

//  The mark of list's cursors. Builds before positions marked the cause's
//  seq with 'n': such a cursor names a place in another order, and is
//  refused (400) rather than taken for a position.
#define S_CURSOR_MARK   'k'

typedef struct {
    store_t *store;             //  Connection of the request thread
    zactor_t *events;           //  Consumer, and relay of notification.sent
} notification_t;


//  --------------------------------------------------------------------------
//  Applying events (in the events actor's thread, on its own connection)

//  The string member key of object, or NULL.
static const char *
s_str (json_t *object, const char *key)
{
    return json_string_value (json_object_get (object, key));
}

//  "r-1 for res-9 on 2026-12-01", or as much of it as the reservation
//  object has. Returns a new string (caller frees).
static char *
s_describe (const char *id, json_t *reservation)
{
    const char *resource = s_str (reservation, "resource");
    const char *date = s_str (reservation, "date");
    json_int_t days = json_integer_value (json_object_get (reservation,
                                                           "days"));
    if (resource && date && days > 1)
        return zsys_sprintf ("%s for %s from %s for %" JSON_INTEGER_FORMAT
                             " days", id, resource, date, days);
    if (resource && date)
        return zsys_sprintf ("%s for %s on %s", id, resource, date);
    return zsys_sprintf ("%s", id);
}

//  The notice for an event of type, in plain English. Returns a new
//  string (caller frees), or NULL for a type that notifies nobody.
static char *
s_text (const char *type, const char *id, json_t *data)
{
    json_t *reservation = json_object_get (data, "reservation");
    if (streq (type, "payment.refunded")) {
        json_t *amount = json_object_get (json_object_get (data, "payment"),
                                          "amount");
        if (!json_is_integer (amount) || json_integer_value (amount) < 0)
            return zsys_sprintf ("Your payment for reservation %s was "
                                 "refunded.", id);
        json_int_t cents = json_integer_value (amount);
        return zsys_sprintf ("Your payment of %" JSON_INTEGER_FORMAT ".%02d "
                             "for reservation %s was refunded.",
                             cents / 100, (int) (cents % 100), id);
    }
    char *what = s_describe (id, reservation);
    char *text = NULL;
    if (streq (type, "reservation.confirmed"))
        text = zsys_sprintf ("Your reservation %s is confirmed.", what);
    else
    if (streq (type, "reservation.declined")) {
        const char *reason = s_str (data, "reason");
        if (!reason || !*reason)
            reason = s_str (reservation, "reason");
        //  The default reason would only say again what the notice says.
        if (reason && streq (reason, SVC_DECLINED_REASON))
            reason = NULL;
        text = reason && *reason?
            zsys_sprintf ("Your reservation %s was declined by the owner: "
                          "%s", what, reason):
            zsys_sprintf ("Your reservation %s was declined by the owner.",
                          what);
    }
    else
    if (streq (type, "reservation.expired"))
        text = zsys_sprintf ("Your reservation %s expired: the owner did not "
                             "decide in time.", what);
    else
    if (streq (type, "reservation.cancelled"))
        text = zsys_sprintf ("Your reservation %s is cancelled.", what);
    zstr_free (&what);
    return text;
}

//  The event types the consumer applies: the customer-facing changes.
static const char *s_types [] = {
    "reservation.confirmed", "reservation.declined",
    "reservation.expired", "reservation.cancelled", "payment.refunded", NULL
};

//  What s_apply, s_text and s_describe read of an event.
static const char *s_fields [] = {
    "id", "reservation", "correlation_id", "data.customer", "data.reason",
    "data.payment.amount", "data.reservation.customer",
    "data.reservation.resource", "data.reservation.date",
    "data.reservation.days", "data.reservation.reason", NULL
};

//  Records the notification for one event and emits notification.sent.
//  Returns 0 (done, or nothing to do), or -1 on a store failure.
static int
s_apply (void *state, store_t *store, const char *type, json_t *event)
{
    (void) state;
    const char *event_id = s_str (event, "id");
    const char *id = s_str (event, "reservation");
    json_t *data = json_object_get (event, "data");
    int64_t seq = json_integer_value (json_object_get (event, "seq"));
    char *text = s_text (type, id? id: "", data);
    if (!text)
        return 0;               //  Not a customer-facing change
    const char *customer = streq (type, "payment.refunded")?
        s_str (data, "customer"):
        s_str (json_object_get (data, "reservation"), "customer");
    if (!event_id || !id || !customer) {
        zsys_warning ("notification: event seq %" PRId64 " (%s) has no %s; "
                      "skipped", seq, type, !event_id? "id":
                      !id? "reservation": "customer");
        zstr_free (&text);
        return 0;
    }
    char notification_id [S_ID_SIZE];
    snprintf (notification_id, sizeof notification_id, "n%s", event_id);
    //  Written as text once, for the row and the event: spec section 5's
    //  members, in its order.
    char now [RESV_TIME_SIZE];
    const char *const members [] = {
        "id", notification_id, "customer", customer, "reservation", id,
        "kind", type, "text", text, "at", resv_time_now (now), NULL
    };
    char *body = store_object_text (NULL, NULL, members);
    zstr_free (&text);
    char *sent = body? store_object_text ("notification", body, NULL): NULL;
    if (!sent) {
        zsys_error ("notification: seq %" PRId64 ": cannot build the "
                    "notification: out of memory", seq);
        free (body);
        return -1;
    }
    sqlite3_stmt *stmt = store_stmt (store,
        "INSERT INTO notifications "
        "(id, seq, customer, reservation, kind, body) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (id) DO NOTHING");
    int rc = SQLITE_ERROR;
    if (stmt) {
        sqlite3_bind_text (stmt, 1, notification_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, seq);
        sqlite3_bind_text (stmt, 3, customer, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 4, id, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 5, type, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 6, body, -1, SQLITE_STATIC);
        rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
    }
    free (body);
    if (rc != SQLITE_DONE) {
        zsys_error ("notification: insert %s: %s", notification_id,
                    store_error (store));
        free (sent);
        return -1;
    }
    if (sqlite3_changes (store_db (store)) == 0) {
        free (sent);
        return 0;               //  Notified before: nothing more to send
    }
    const char *correlation = s_str (event, "correlation_id");
    rc = store_emit_text (store, event_id, "notification.sent", "reservation",
                          id, correlation? correlation: id, sent);
    free (sent);
    return rc;
}


//  --------------------------------------------------------------------------
//  Requests (in the worker's thread)

static int
s_internal (zframe_t **reply_p, const char *operation, const char *error)
{
    zsys_error ("notification: %s: %s", operation, error);
    *reply_p = worker_error (RESV_INTERNAL, RESV_REASON_INTERNAL,
                             "notification %s: %s", operation, error);
    return RESV_INTERNAL;
}

//  list {customer, limit?, after?} -> {"items":[...],"next":CURSOR}, in
//  the order they were recorded; next only when cut by limit. A page is
//  one read; the rows up to its cursor were all committed before it
//  (s_schema), so that pages read one after the other, with notices
//  recorded in between, give each notification once.
static int
s_list (void *state, json_t *request, int64_t deadline,
        zframe_t **reply_p)
{
    (void) deadline;
    notification_t *self = (notification_t *) state;
    static const char *keys [] = { "customer", "limit", "after", NULL };
    const char *customer = NULL, *after = NULL;
    int64_t limit = RESV_PAGE_MAX, from = 0;
    if (field_only (request, keys, reply_p)
    ||  field_string (request, "customer", true, 0, &customer, reply_p)
    ||  field_int (request, "limit", false, 1, RESV_PAGE_MAX, &limit, reply_p)
    ||  field_string (request, "after", false, 32, &after, reply_p))
        return RESV_BAD_REQUEST;
    if (after && store_page_after (after, S_CURSOR_MARK, &from)) {
        *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                 "after must be the next cursor of a "
                                 "previous list");
        return RESV_BAD_REQUEST;
    }
    sqlite3_stmt *stmt = store_stmt (self->store,
        "SELECT rowid, body FROM notifications "
        "WHERE customer = ?1 AND rowid > ?2 ORDER BY rowid LIMIT ?3");
    if (!stmt)
        return s_internal (reply_p, "list", store_error (self->store));
    sqlite3_bind_text (stmt, 1, customer, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, from);
    sqlite3_bind_int64 (stmt, 3, limit + 1);
    char *text;
    size_t size;
    int64_t count;
    const char *error;
    if (store_page (self->store, stmt, limit, S_CURSOR_MARK, &text, &size,
                    &count, &error))
        return s_internal (reply_p, "list", error);
    *reply_p = zframe_new (text, size);
    free (text);
    return RESV_OK;
}

static const worker_method_t s_methods [] = {
    { RESV_METHOD_LIST, s_list },
    { NULL, NULL }
};

int
svc_notification (void *state, const char *method, zframe_t **body_p,
                  int64_t deadline, zframe_t **reply_p)
{
    return worker_dispatch (s_methods, "notification", state, method, body_p,
                            deadline, reply_p);
}

void *
svc_notification_new (resv_cfg_t *cfg, worker_t *worker)
{
    notification_t *self = (notification_t *) zmalloc (sizeof (notification_t));
    self->store = store_new (cfg, S_NAME, s_schema);
    store_keep_alive (self->store, worker);
    //  apply keeps no state: it runs in the actor's thread. Each
    //  notification stands alone (its id is its event's), so the types
    //  may come in any order between them: by type, the consumer hears
    //  only them, not every reservation.* event.
    events_config_t config = { .store = S_NAME, .schema = s_schema,
                               .consumer = S_NAME, .apply = s_apply,
                               .types = s_types, .fields = s_fields,
                               .by_type = true };
    if (self->store)
        self->events = events_new (cfg, &config);
    if (!self->events) {
        void *state = self;
        svc_notification_destroy (&state);
        return NULL;
    }
    return self;
}

void
svc_notification_destroy (void **state_p)
{
    if (!state_p || !*state_p)
        return;
    notification_t *self = (notification_t *) *state_p;
    //  The actor first: it sends what is left in the outbox, then stops.
    events_destroy (&self->events);
    store_destroy (&self->store);
    free (self);
    *state_p = NULL;
}
