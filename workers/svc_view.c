/*  svc_view.c: view, the read store of reservations, fed only by events
    (svc.h, doc/saga.md).

    The service consumes every journal event that names a reservation:

    -   reservation.* carry the whole reservation object, which replaces
        the stored one when the event is newer (by seq) than the last one
        applied to it;
    -   payment.* carry the payment's {id, status}, kept in a table of
        their own and written into the stored reservation;
    -   every one of them, whatever its type, is kept for the history.

    Payment status: the payment service is the one authority on it, and
    each of its changes is a payment.* event, so the newest payment event
    always wins over the payment a reservation.* event carries (the
    reservation service's copy, which follows the payment events later).
    The payment is merged when written, not when read: a payment event
    that comes before its reservation waits in the payments table and is
    merged when the reservation arrives; one that comes after rewrites the
    stored reservation. Either order ends in the same row, so reads are a
    plain select of stored JSON text, and a rebuild ends where it started.

    Order and paging: list returns reservations in the order the journal
    first showed them (the seq of their first reservation.* event, the
    table's rowid), filtered by any of customer, resource and status, each
    with an index that gives that order. The cursor names the last
    position returned, so pages neither lose nor repeat a reservation,
    whatever is written between them.

    A malformed event (a reservation.* without its object, a payment.*
    without its payment) is a producer's bug: it is logged and kept in the
    history, and otherwise skipped rather than retried, since a retry could
    never succeed and would stop every later event.
*/

#include "svc.h"
#include "db.h"
#include "events.h"
#include "fields.h"
#include "jscan.h"

//  The store and the consumer's cursor name.
#define S_NAME          "view"

static const char *s_schema =
    //  pos is the seq of the reservation's first reservation.* event: the
    //  list order, and what a cursor names. seq is the last one applied.
    "CREATE TABLE IF NOT EXISTS reservations ("
    "    pos      INTEGER PRIMARY KEY,"
    "    id       TEXT NOT NULL UNIQUE,"
    "    customer TEXT NOT NULL,"
    "    resource TEXT NOT NULL,"
    "    status   TEXT NOT NULL,"
    "    seq      INTEGER NOT NULL,"
    "    body     TEXT NOT NULL);"      //  The reservation as JSON
    //  Each index holds the rowid, so it also gives the list order.
    "CREATE INDEX IF NOT EXISTS reservations_customer"
    "    ON reservations (customer);"
    "CREATE INDEX IF NOT EXISTS reservations_resource"
    "    ON reservations (resource);"
    "CREATE INDEX IF NOT EXISTS reservations_status"
    "    ON reservations (status);"
    //  The newest payment of each reservation, from payment.* events.
    "CREATE TABLE IF NOT EXISTS payments ("
    "    reservation TEXT PRIMARY KEY,"
    "    id          TEXT NOT NULL,"
    "    status      TEXT NOT NULL,"
    "    seq         INTEGER NOT NULL);"
    //  Every event naming a reservation, as JSON, for its history.
    "CREATE TABLE IF NOT EXISTS history ("
    "    reservation TEXT NOT NULL,"
    "    seq         INTEGER NOT NULL,"
    "    event       TEXT NOT NULL,"
    "    PRIMARY KEY (reservation, seq));"
    //  Rebuilds, in one row (none until the first): started numbers them,
    //  holder is the number of the one under way (0: none; one whose
    //  process died stays there, see s_rebuild_turn), and finished is the
    //  number of the last that completed. Whether one is under way is
    //  told by the rebuild lock (S_REBUILD_LOCK), not by this row.
    "CREATE TABLE IF NOT EXISTS rebuild ("
    "    one      INTEGER PRIMARY KEY CHECK (one = 1),"
    "    started  INTEGER NOT NULL,"
    "    holder   INTEGER NOT NULL,"
    "    finished INTEGER NOT NULL);";

//  The file beside the store whose lock (flock) a rebuild holds from
//  before it takes its turn in the row until after it has let go of it:
//  the system lets go of it when the process dies.
#define S_REBUILD_LOCK  ".rebuild.lock"
//  How often a rebuild that waits for another one looks again, ms.
#define S_REBUILD_POLL  20
//  A rebuild waiting for another gives up this long before its deadline,
//  ms, so that its 503 reaches the client before the broker's 504.
#define S_REBUILD_MARGIN 100

//  The statuses a list may filter on (spec, section 2).
static const char *s_statuses [] = {
    "PENDING", "CONFIRMED", "DECLINED", "EXPIRED", "CANCELLED", NULL
};

//  One list statement per combination of filters, so that each uses its
//  index: bit 0 customer (?1), bit 1 resource (?2), bit 2 status (?3). The
//  statements are literals, so store_stmt caches each one once.
#define S_LIST_SQL(filter) \
    "SELECT pos, body FROM reservations WHERE pos > ?4" filter \
    " ORDER BY pos LIMIT ?5"
static const char *s_list_sql [8] = {
    S_LIST_SQL (""),
    S_LIST_SQL (" AND customer = ?1"),
    S_LIST_SQL (" AND resource = ?2"),
    S_LIST_SQL (" AND customer = ?1 AND resource = ?2"),
    S_LIST_SQL (" AND status = ?3"),
    S_LIST_SQL (" AND customer = ?1 AND status = ?3"),
    S_LIST_SQL (" AND resource = ?2 AND status = ?3"),
    S_LIST_SQL (" AND customer = ?1 AND resource = ?2 AND status = ?3"),
};

typedef struct {
    store_t *store;             //  Connection of the request thread
    zactor_t *events;           //  The consumer
    resv_t *client;             //  Journal reads of a rebuild
    worker_t *worker;           //  Kept alive through a long rebuild
    char *lock_path;            //  The store's path and S_REBUILD_LOCK
} view_t;


//  --------------------------------------------------------------------------
//  Applying events (in the events actor's thread on its connection, or in
//  the request thread during a rebuild: apply keeps no state of its own)

//  Logs a failed statement; returns -1 so that the batch is retried.
static int
s_failed (store_t *store, const char *operation, const char *id)
{
    zsys_error ("view: %s %s: %s", operation, id, store_error (store));
    return -1;
}

//  Steps a bound statement that writes, and resets it. Returns 0 or -1.
static int
s_write (store_t *store, sqlite3_stmt *stmt, const char *operation,
         const char *id)
{
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: s_failed (store, operation, id);
}

//  What an event says, read from its text in place by jscan (one pass over
//  the text, no objects built, and no JSON parse by SQLite, which parses
//  the whole text again for each member it is asked for): the reservation
//  it names, then from data.reservation the object's text, id, customer,
//  resource and status, then from data.payment its id and status.
enum { F_RESERVATION, F_OBJECT, F_ID, F_CUSTOMER, F_RESOURCE, F_STATUS,
       F_PAYMENT_ID, F_PAYMENT_STATUS, F_COUNT };

//  The fields of an event, each a copy, or NULL when absent or not a
//  string (F_OBJECT: not an object).
typedef struct {
    char *field [F_COUNT];
    bool failed;                //  Out of memory
} s_fields_t;

static void
s_fields_free (s_fields_t *self)
{
    for (int index = 0; index < F_COUNT; index++)
        free (self->field [index]);
}

//  A member wanted at one level of the event: its key, and the field it
//  fills (a string), or the table of the object it leads to.
typedef struct s_wanted_t s_wanted_t;
struct s_wanted_t {
    const char *key;
    int field;                  //  -1: none
    const s_wanted_t *inner;    //  Members wanted inside, if an object
};

//  What a member callback needs: the fields and the level's table.
typedef struct {
    s_fields_t *fields;
    const s_wanted_t *wanted;
} s_level_t;

static const s_wanted_t s_wanted_reservation [] = {
    { "id", F_ID, NULL }, { "customer", F_CUSTOMER, NULL },
    { "resource", F_RESOURCE, NULL }, { "status", F_STATUS, NULL },
    { NULL, -1, NULL }
};
static const s_wanted_t s_wanted_payment [] = {
    { "id", F_PAYMENT_ID, NULL }, { "status", F_PAYMENT_STATUS, NULL },
    { NULL, -1, NULL }
};
static const s_wanted_t s_wanted_data [] = {
    { "reservation", F_OBJECT, s_wanted_reservation },
    { "payment", -1, s_wanted_payment },
    { NULL, -1, NULL }
};
static const s_wanted_t s_wanted_event [] = {
    { "reservation", F_RESERVATION, NULL }, { "data", -1, s_wanted_data },
    { NULL, -1, NULL }
};

static bool
s_field_member (void *arg, const char *key, size_t key_size,
                const char *value, size_t value_size, jscan_kind_t kind)
{
    s_level_t *level = (s_level_t *) arg;
    (void) key_size;
    const s_wanted_t *wanted = level->wanted;
    while (wanted->key && !streq (wanted->key, key))
        wanted++;
    if (!wanted->key)
        return true;            //  Not one we read
    char **field = wanted->field >= 0? &level->fields->field [wanted->field]: NULL;
    if (wanted->inner) {
        if (kind != JSCAN_OBJECT)
            return true;
        if (field && !(*field = strndup (value, value_size))) {
            level->fields->failed = true;
            return false;
        }
        s_level_t inner = { level->fields, wanted->inner };
        return jscan_object (value, value_size, s_field_member, &inner) == value_size;
    }
    if (kind != JSCAN_STRING)
        return true;
    size_t size = jscan_string (value, value_size, NULL, 0);
    if (!(*field = (char *) malloc (size + 1))) {
        level->fields->failed = true;
        return false;
    }
    jscan_string (value, value_size, *field, size + 1);
    return true;
}

//  Reads the fields of the event text. Returns 0, or -1 if the text is not
//  an object (it is the journal's, so never) or memory runs out: a field
//  must never look absent because it could not be copied.
static int
s_fields (const char *text, s_fields_t *fields)
{
    memset (fields, 0, sizeof *fields);
    s_level_t top = { fields, s_wanted_event };
    size_t size = strlen (text);
    if (jscan_object (text, size, s_field_member, &top) == 0
    ||  fields->failed) {
        s_fields_free (fields);
        memset (fields, 0, sizeof *fields);
        return -1;
    }
    return 0;
}

static int
s_history_add (store_t *store, const char *id, int64_t seq, const char *text)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "INSERT INTO history (reservation, seq, event) VALUES (?1, ?2, ?3) "
        "ON CONFLICT DO NOTHING");
    if (!stmt)
        return s_failed (store, "add to the history of", id);
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, seq);
    sqlite3_bind_text (stmt, 3, text, -1, SQLITE_STATIC);
    return s_write (store, stmt, "add to the history of", id);
}

//  reservation.*: stores the reservation object, with its id, and the
//  payment from the payments table when it has one; unless a newer event
//  has already been applied to it.
static int
s_reservation_put (store_t *store, const char *id, int64_t seq,
                   const char *type, s_fields_t *fields)
{
    char **field = fields->field;
    if (!field [F_OBJECT] || !field [F_CUSTOMER] || !field [F_RESOURCE]
    ||  !field [F_STATUS] || (field [F_ID] && !streq (field [F_ID], id))) {
        zsys_warning ("view: event seq %" PRId64 " (%s) has no valid "
                      "reservation object for %s; kept in the history only",
                      seq, type, id);
        return 0;
    }
    sqlite3_stmt *stmt = store_stmt (store,
        "INSERT INTO reservations "
        "(pos, id, customer, resource, status, seq, body) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?1, coalesce ("
        "    (SELECT json_set (?6, '$.id', ?2, '$.payment', "
        "         json_object ('id', id, 'status', status)) "
        "     FROM payments WHERE reservation = ?2), "
        "    json_set (?6, '$.id', ?2))) "
        "ON CONFLICT (id) DO UPDATE SET customer = excluded.customer, "
        "resource = excluded.resource, status = excluded.status, "
        "seq = excluded.seq, body = excluded.body "
        "WHERE excluded.seq > reservations.seq");
    if (!stmt)
        return s_failed (store, "store reservation", id);
    sqlite3_bind_int64 (stmt, 1, seq);
    sqlite3_bind_text (stmt, 2, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, field [F_CUSTOMER], -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 4, field [F_RESOURCE], -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 5, field [F_STATUS], -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 6, field [F_OBJECT], -1, SQLITE_STATIC);
    return s_write (store, stmt, "store reservation", id);
}

//  payment.*: records the payment's newest status, and writes it into the
//  stored reservation, if the view has it yet (if not, it is merged when
//  the reservation comes).
static int
s_payment_put (store_t *store, const char *id, int64_t seq, const char *type,
               s_fields_t *fields)
{
    const char *payment_id = fields->field [F_PAYMENT_ID];
    const char *status = fields->field [F_PAYMENT_STATUS];
    if (!payment_id || !status) {
        zsys_warning ("view: event seq %" PRId64 " (%s) has no valid payment "
                      "for %s; kept in the history only", seq, type, id);
        return 0;
    }
    sqlite3_stmt *stmt = store_stmt (store,
        "INSERT INTO payments (reservation, id, status, seq) "
        "VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (reservation) DO UPDATE SET id = excluded.id, "
        "status = excluded.status, seq = excluded.seq "
        "WHERE excluded.seq > payments.seq");
    if (!stmt)
        return s_failed (store, "store the payment of", id);
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, payment_id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, seq);
    if (s_write (store, stmt, "store the payment of", id))
        return -1;
    if (sqlite3_changes (store_db (store)) == 0)
        return 0;               //  An older payment event: nothing changes
    stmt = store_stmt (store,
        "UPDATE reservations SET body = json_set (body, '$.payment', "
        "json_object ('id', ?2, 'status', ?3)) WHERE id = ?1");
    if (!stmt)
        return s_failed (store, "store the payment of", id);
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, payment_id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, status, -1, SQLITE_STATIC);
    return s_write (store, stmt, "store the payment of", id);
}

//  Applies one event. Every event about a reservation goes into its
//  history, whatever its type, so the view's consumer takes every type.
//  Live events come as their text (the consumer is raw); those read from
//  the journal come parsed, and are written back to text here, which
//  gives the same text: the journal's is jansson's own compact form.
static int
s_apply (void *state, store_t *store, const char *type, json_t *event)
{
    (void) state;
    int64_t seq = json_integer_value (json_object_get (event, "seq"));
    const char *text = json_string_value (json_object_get (event, "text"));
    char *written = text? NULL: json_dumps (event, JSON_COMPACT);
    if (!text && !written)
        return s_failed (store, "read event", type);
    s_fields_t fields;
    int rc = s_fields (text? text: written, &fields);
    const char *id = fields.field [F_RESERVATION];
    if (rc)
        rc = s_failed (store, "read event", type);
    else
    if (id) {                   //  resource.* and others: not ours
        rc = s_history_add (store, id, seq, text? text: written);
        if (rc == 0 && strncmp (type, "reservation.", 12) == 0)
            rc = s_reservation_put (store, id, seq, type, &fields);
        else
        if (rc == 0 && strncmp (type, "payment.", 8) == 0)
            rc = s_payment_put (store, id, seq, type, &fields);
    }
    s_fields_free (&fields);
    free (written);
    return rc;
}


//  --------------------------------------------------------------------------
//  Requests (in the worker's thread)

static int
s_internal (zframe_t **reply_p, const char *operation, const char *error)
{
    zsys_error ("view: %s: %s", operation, error);
    *reply_p = worker_error (RESV_INTERNAL, RESV_REASON_INTERNAL,
                             "view %s: %s", operation, error);
    return RESV_INTERNAL;
}

static int
s_not_found (zframe_t **reply_p, const char *id)
{
    *reply_p = worker_error (RESV_NOT_FOUND, RESV_REASON_NOT_FOUND,
                             "no reservation '%.256s'", id);
    return RESV_NOT_FOUND;
}

//  Runs stmt and replies {"items":[...]} with the JSON text of its column
//  1, in up to limit rows; a row more adds "next", the cursor after column
//  0 of the last row returned. *count_p gets the number of items.
static int
s_items (view_t *self, sqlite3_stmt *stmt, int64_t limit,
         const char *operation, zframe_t **reply_p, int64_t *count_p)
{
    char *text;
    size_t size;
    const char *error;
    if (store_page (self->store, stmt, limit, 'v', &text, &size, count_p, &error))
        return s_internal (reply_p, operation, error);
    *reply_p = zframe_new (text, size);
    free (text);
    return RESV_OK;
}

//  Reads the {id} of a request and prepares sql (a literal: store_stmt
//  keeps it by address) with the id bound as ?1. Returns 0 with *id_p and
//  *stmt_p set, or the status code with the reply set.
static int
s_by_id (view_t *self, json_t *request, const char *sql,
         const char *operation, const char **id_p, sqlite3_stmt **stmt_p,
         zframe_t **reply_p)
{
    static const char *keys [] = { "id", NULL };
    if (field_only (request, keys, reply_p)
    ||  field_string (request, "id", true, 0, id_p, reply_p))
        return RESV_BAD_REQUEST;
    *stmt_p = store_stmt (self->store, sql);
    if (!*stmt_p)
        return s_internal (reply_p, operation, store_error (self->store));
    sqlite3_bind_text (*stmt_p, 1, *id_p, -1, SQLITE_STATIC);
    return 0;
}

//  status {id} -> the reservation, or 404.
static int
s_status (void *state, json_t *request, int64_t deadline,
          zframe_t **reply_p)
{
    (void) deadline;
    view_t *self = (view_t *) state;
    const char *id = NULL;
    sqlite3_stmt *stmt;
    int status = s_by_id (self, request,
                          "SELECT body FROM reservations WHERE id = ?1",
                          "status", &id, &stmt, reply_p);
    if (status)
        return status;
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        //  The text first, then its length, as SQLite asks.
        const unsigned char *body = sqlite3_column_text (stmt, 0);
        *reply_p = zframe_new (body, (size_t) sqlite3_column_bytes (stmt, 0));
    }
    sqlite3_reset (stmt);
    if (rc == SQLITE_ROW)
        return RESV_OK;
    if (rc == SQLITE_DONE)
        return s_not_found (reply_p, id);
    return s_internal (reply_p, "status", store_error (self->store));
}

//  list {customer?, resource?, status?, limit?, after?} ->
//  {"items":[...],"next":CURSOR}, next only when cut by the limit.
static int
s_list (void *state, json_t *request, int64_t deadline,
        zframe_t **reply_p)
{
    (void) deadline;
    view_t *self = (view_t *) state;
    static const char *keys [] = {
        "customer", "resource", "status", "limit", "after", NULL
    };
    const char *customer = NULL, *resource = NULL, *status = NULL;
    const char *after = NULL;
    int64_t limit = RESV_PAGE_DEFAULT, from = 0;
    if (field_only (request, keys, reply_p)
    ||  field_string (request, "customer", false, 0, &customer, reply_p)
    ||  field_string (request, "resource", false, 0, &resource, reply_p)
    ||  field_choice (request, "status", false, s_statuses, &status, reply_p)
    ||  field_int (request, "limit", false, 1, RESV_PAGE_MAX, &limit, reply_p)
    ||  field_string (request, "after", false, 32, &after, reply_p))
        return RESV_BAD_REQUEST;
    if (after && store_page_after (after, 'v', &from)) {
        *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                 "after must be the next cursor of a "
                                 "previous list");
        return RESV_BAD_REQUEST;
    }
    int which = (customer? 1: 0) | (resource? 2: 0) | (status? 4: 0);
    sqlite3_stmt *stmt = store_stmt (self->store, s_list_sql [which]);
    if (!stmt)
        return s_internal (reply_p, "list", store_error (self->store));
    sqlite3_bind_text (stmt, 1, customer, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, resource, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, from);
    sqlite3_bind_int64 (stmt, 5, limit + 1);
    int64_t count;
    return s_items (self, stmt, limit, "list", reply_p, &count);
}

//  history {id} -> {"items":[events in seq order]}, or 404 when the view
//  has no event of it.
static int
s_history (void *state, json_t *request, int64_t deadline,
           zframe_t **reply_p)
{
    (void) deadline;
    view_t *self = (view_t *) state;
    const char *id = NULL;
    sqlite3_stmt *stmt;
    int status = s_by_id (self, request,
        "SELECT seq, event FROM history WHERE reservation = ?1 ORDER BY seq",
        "history", &id, &stmt, reply_p);
    if (status)
        return status;
    int64_t count = 0;
    status = s_items (self, stmt, INT64_MAX, "history", reply_p, &count);
    if (status == RESV_OK && count == 0) {
        zframe_destroy (reply_p);
        return s_not_found (reply_p, id);
    }
    return status;
}

//  The rebuild row (zeros when there is none yet), read in the current
//  transaction, or alone. Returns 0 or -1.
typedef struct {
    int64_t started;            //  Rebuilds begun, the number of the last
    int64_t holder;             //  The one under way, 0 if none
    int64_t finished;           //  The last one that completed
} s_rebuild_row_t;

static int
s_rebuild_row (view_t *self, s_rebuild_row_t *row)
{
    memset (row, 0, sizeof *row);
    sqlite3_stmt *stmt = store_stmt (self->store,
        "SELECT started, holder, finished FROM rebuild");
    if (!stmt)
        return -1;
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        row->started = sqlite3_column_int64 (stmt, 0);
        row->holder = sqlite3_column_int64 (stmt, 1);
        row->finished = sqlite3_column_int64 (stmt, 2);
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE? 0: -1;
}

//  Runs sql, an update of the rebuild row, in the current transaction,
//  with first bound as ?1 and second as ?2 (when sql has one). Returns 0
//  or -1.
static int
s_rebuild_set (view_t *self, const char *sql, int64_t first, int64_t second)
{
    sqlite3_stmt *stmt = store_stmt (self->store, sql);
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, first);
    sqlite3_bind_int64 (stmt, 2, second);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  The answer of a rebuild, {"events":N,"reservations":N}, read in the
//  current transaction: the cursor and the count of one moment, which the
//  live consumer may move on from, but never apart.
static int
s_rebuild_counts (view_t *self, zframe_t **reply_p)
{
    sqlite3_stmt *stmt = store_stmt (self->store,
        "SELECT count (*) FROM reservations");
    if (!stmt || sqlite3_step (stmt) != SQLITE_ROW) {
        if (stmt)
            sqlite3_reset (stmt);
        return s_internal (reply_p, "rebuild: count",
                           store_error (self->store));
    }
    int64_t reservations = sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    //  Every journal event up to the cursor went through the new view.
    int64_t events = store_cursor (self->store, S_NAME);
    if (events < 0)
        return s_internal (reply_p, "rebuild: read the cursor",
                           store_error (self->store));
    *reply_p = worker_json (json_pack ("{s:I,s:I}",
                                       "events", (json_int_t) events,
                                       "reservations",
                                       (json_int_t) reservations));
    return RESV_OK;
}

//  A failed step of a rebuild: rolls back and answers 500, with the
//  store's message taken first (a rollback would replace it).
static int
s_rebuild_failed (view_t *self, const char *operation, zframe_t **reply_p)
{
    char *error = strdup (store_error (self->store));
    store_rollback (self->store);
    int status = s_internal (reply_p, operation, error? error: "out of memory");
    free (error);
    return status;
}

//  Waits until no other rebuild is under way, then either answers (a
//  rebuild that was under way when this one came, or began since, has
//  completed: *awaited_p is its number) or takes the view for a rebuild of
//  its own: empties it and moves its cursor back to 0 in the transaction
//  that takes it. Returns 0 with *number_p, the new rebuild's number, or
//  the status with *reply_p set: the counts, or 503 once the deadline is
//  near (or the worker stops) with another one still under way.
//
//  A rebuild is under way while its process holds the rebuild lock
//  (*lock_p is this one's, -1 until taken), not while the row names it:
//  a process killed half way leaves its number in the row, and its
//  successor (or any other) would otherwise wait for one that no longer
//  runs, serving nothing else meanwhile. Nor does a clock that moves
//  change which one runs.
static int
s_rebuild_turn (view_t *self, int64_t deadline, int64_t *awaited_p,
                int *lock_p, int64_t *number_p, zframe_t **reply_p)
{
    while (true) {
        if (*lock_p == -1) {
            *lock_p = db_lock (self->lock_path);
            if (*lock_p == -1 && errno != EWOULDBLOCK)
                return s_internal (reply_p, "rebuild: lock",
                                   strerror (errno));
        }
        if (*lock_p == -1) {
            //  Another one is under way, about to begin or just ended.
            //  The one under way serves this request too: it emptied the
            //  view before, and replays every event after; with none in
            //  the row, the next to begin does.
            s_rebuild_row_t row;
            if (s_rebuild_row (self, &row))
                return s_internal (reply_p, "rebuild: read",
                                   store_error (self->store));
            if (!*awaited_p)
                *awaited_p = row.holder? row.holder: row.started + 1;
            if (zsys_interrupted) {
                *reply_p = worker_error (RESV_UNAVAILABLE, RESV_REASON_STOPPING,
                                         "view rebuild: the worker stops");
                return RESV_UNAVAILABLE;
            }
            if (zclock_mono () + S_REBUILD_POLL >= deadline - S_REBUILD_MARGIN) {
                *reply_p = worker_error (RESV_UNAVAILABLE,
                    RESV_REASON_IN_PROGRESS, "view rebuild: another rebuild "
                    "is still under way; the view is whole once it ends");
                return RESV_UNAVAILABLE;
            }
            worker_keepalive (self->worker);
            zclock_sleep (S_REBUILD_POLL);
            continue;
        }
        //  None is under way: a holder in the row is one whose process
        //  died, or one that could not clear it.
        s_rebuild_row_t row;
        if (store_begin (self->store))
            return s_internal (reply_p, "rebuild: begin",
                               store_error (self->store));
        if (s_rebuild_row (self, &row))
            return s_rebuild_failed (self, "rebuild: read", reply_p);
        if (*awaited_p && row.finished >= *awaited_p) {
            int status = s_rebuild_counts (self, reply_p);
            store_rollback (self->store);
            return status;
        }
        //  None completed since this one came (none was under way, or the
        //  one awaited failed, or its process died): this one runs.
        //  The rows go one by one ("WHERE true"): SQLite empties a table
        //  deleted from whole in one step of its program, which on a large
        //  view took most of a second with no progress handler called and
        //  so no heartbeat (store_keep_alive); a row at a time it calls it.
        *number_p = row.started + 1;
        if (s_rebuild_set (self,
                "INSERT INTO rebuild (one, started, holder, finished) "
                "VALUES (1, ?1, ?1, 0) ON CONFLICT (one) DO UPDATE SET "
                "started = ?1, holder = ?1", *number_p, 0)
        ||  sqlite3_exec (store_db (self->store),
                          "DELETE FROM reservations WHERE true;"
                          "DELETE FROM payments WHERE true;"
                          "DELETE FROM history WHERE true;",
                          NULL, NULL, NULL) != SQLITE_OK
        ||  store_cursor_set (self->store, S_NAME, 0))
            return s_rebuild_failed (self, "rebuild: empty the view", reply_p);
        if (store_commit (self->store))
            return s_internal (reply_p, "rebuild: commit",
                               store_error (self->store));
        return 0;
    }
}

//  Between pages of a rebuild: heartbeats, so the broker keeps the
//  worker; and a worker told to stop stops the replay there, since a
//  replay may outlast resvd/stop_timeout (the live consumer finishes the
//  view from the cursor, after the restart).
static int
s_rebuild_page (void *worker)
{
    worker_keepalive ((worker_t *) worker);
    return worker_stopping ((worker_t *) worker)? -1: 0;
}

//  Replays the journal into the view the rebuild number emptied, then
//  records it as completed and answers its counts in the same
//  transaction. Returns the status with *reply_p set. A failed replay
//  lets go of the view, for the next rebuild, and the live consumer
//  finishes it from the cursor meanwhile. A long journal outlasts the
//  broker's liveness: the heartbeats go on between pages.
static int
s_rebuild_run (view_t *self, int64_t number, zframe_t **reply_p)
{
    if (events_replay (self->client, self->store, S_NAME, NULL, s_apply, NULL,
                       s_rebuild_page, self->worker)) {
        int64_t cursor = store_cursor (self->store, S_NAME);
        if (store_begin (self->store) == 0) {
            if (s_rebuild_set (self, "UPDATE rebuild SET holder = 0 "
                               "WHERE holder = ?1", number, 0) == 0)
                store_commit (self->store);
            else
                store_rollback (self->store);
        }
        if (worker_stopping (self->worker)) {
            zsys_info ("view: rebuild %" PRId64 " stopped after seq %" PRId64
                       ": the worker stops", number, cursor);
            *reply_p = worker_error (RESV_UNAVAILABLE, RESV_REASON_STOPPING,
                "view rebuild: the worker stops; the view is rebuilt up to "
                "seq %" PRId64 ", and a view worker goes on from there "
                "once one runs", cursor);
            return RESV_UNAVAILABLE;
        }
        char error [64];
        snprintf (error, sizeof error, "the replay stopped after seq %" PRId64,
                  cursor);
        return s_internal (reply_p, "rebuild", error);
    }
    if (store_begin (self->store))
        return s_internal (reply_p, "rebuild: begin", store_error (self->store));
    int status = s_rebuild_counts (self, reply_p);
    if (status != RESV_OK) {
        store_rollback (self->store);
        return status;
    }
    if (s_rebuild_set (self, "UPDATE rebuild SET holder = 0, finished = ?1 "
                       "WHERE holder = ?1", number, 0)) {
        zframe_destroy (reply_p);
        return s_rebuild_failed (self, "rebuild: end", reply_p);
    }
    if (store_commit (self->store)) {
        zframe_destroy (reply_p);
        return s_internal (reply_p, "rebuild: commit",
                           store_error (self->store));
    }
    return RESV_OK;
}

//  rebuild {} -> empties the view and moves its cursor back to 0 in one
//  transaction, replays the whole journal into it, and answers
//  {"events":N,"reservations":N}. Meanwhile the live consumer goes on:
//  the shared cursor makes each event apply once, by whichever of the two
//  gets it first; and should the replay fail half way (500), the consumer
//  finishes it from the cursor by itself. The replay runs at some 15 000
//  events a second, so on a long journal it outlasts the broker's
//  liveness: it keeps the worker's heartbeats going between pages. The
//  client's deadline still bounds the wait for the answer.
//
//  Rebuilds take turns, also between the processes of the service: one
//  emptying the view while another replays would leave the other's
//  answer counting a view half built again (or empty: {"events":0,
//  "reservations":0}). A rebuild that finds another under way waits for
//  it, up to its deadline, and when it has completed answers the counts
//  of the view it left: that view was emptied before this request came,
//  and replayed whole after. If that one failed or its process died, the
//  waiting rebuild runs itself. At the deadline it answers 503
//  in_progress, and the one under way goes on. The one under way is the
//  one whose process holds the rebuild lock (s_rebuild_turn).
static int
s_rebuild (void *state, json_t *request, int64_t deadline,
           zframe_t **reply_p)
{
    view_t *self = (view_t *) state;
    static const char *keys [] = { NULL };
    if (field_only (request, keys, reply_p))
        return RESV_BAD_REQUEST;
    int64_t awaited = 0;        //  A rebuild whose completion answers this
    int64_t number = 0;
    int lock = -1;              //  The rebuild lock, once this one has it
    int status = s_rebuild_turn (self, deadline, &awaited, &lock, &number,
                                 reply_p);
    if (status == 0)
        status = s_rebuild_run (self, number, reply_p);
    //  Let go only now, the row cleared: none begins before.
    if (lock != -1)
        close (lock);
    return status;
}

static const worker_method_t s_methods [] = {
    { RESV_METHOD_STATUS, s_status },
    { RESV_METHOD_LIST, s_list },
    { RESV_METHOD_HISTORY, s_history },
    { RESV_METHOD_REBUILD, s_rebuild },
    { NULL, NULL }
};

int
svc_view (void *state, const char *method, zframe_t **body_p,
          int64_t deadline, zframe_t **reply_p)
{
    return worker_dispatch (s_methods, "view", state, method, body_p,
                            deadline, reply_p);
}

void *
svc_view_new (resv_cfg_t *cfg, worker_t *worker)
{
    view_t *self = (view_t *) zmalloc (sizeof (view_t));
    self->worker = worker;
    self->store = store_new (cfg, S_NAME, s_schema);
    if (self->store)
        self->lock_path = zsys_sprintf ("%s%s", store_path (self->store),
                                        S_REBUILD_LOCK);
    store_keep_alive (self->store, worker);
    //  A rebuild empties the view in one transaction. SQLite's secure
    //  delete (Debian builds it on) zeroes every page that frees, and so
    //  writes each to the WAL: on a view of 60 000 reservations that commit
    //  took a second, with no heartbeat, and the broker gave the rebuild to
    //  a worker again. The view is a copy of the journal; its freed pages
    //  are left as they are. Only this connection empties tables.
    if (self->store
    &&  sqlite3_exec (store_db (self->store), "PRAGMA secure_delete = OFF",
                      NULL, NULL, NULL) != SQLITE_OK)
        zsys_warning ("view: cannot turn secure_delete off: %s",
                      store_error (self->store));
    self->client = resv_new (resv_cfg_str (cfg, "broker/frontend",
                                           RESV_DEFAULT_ENDPOINT));
    events_config_t config = { .store = S_NAME, .schema = s_schema,
                               .consumer = S_NAME, .apply = s_apply,
                               .raw = true };
    if (self->store && self->lock_path && self->client)
        self->events = events_new (cfg, &config);
    if (!self->events) {
        if (!self->client)
            zsys_error ("view: cannot make a client of broker/frontend");
        void *state = self;
        svc_view_destroy (&state);
        return NULL;
    }
    return self;
}

void
svc_view_destroy (void **state_p)
{
    if (!state_p || !*state_p)
        return;
    view_t *self = (view_t *) *state_p;
    events_destroy (&self->events);
    resv_destroy (&self->client);
    store_destroy (&self->store);
    zstr_free (&self->lock_path);
    free (self);
    *state_p = NULL;
}
