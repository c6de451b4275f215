/*  svc_reservation.c: reservation, the reserve saga and the status machine
    of a reservation (doc/saga.md, svc.h).

    reserve validates, finds or gives the reservation id of (customer,
    request_id) (s_reservation_id), holds capacity (availability hold) and
    authorises payment (payment authorize) through the broker, then stores
    the reservation and its reservation.requested event in one
    transaction. A failure undoes what was done (payment void,
    availability release) before the reply.

    Every reserve that gets past validation first writes a saga row, and
    the transaction that stores the reservation deletes it; so does a
    failure whose compensation went through. A row left behind is a reserve
    that died half-way (its worker killed twice, or its compensation
    refused): the events actor's tick sweeps such rows once they are older
    than any request can live, and undoes what they may have left held.
    Attempts of one reserve at once (a retry, the same request sent twice)
    share its reservation id, hold and payment; only the last of them to
    fail undoes them (s_saga_settle, s_saga_fail).

    cancel, expire and the consumed approval.approved|declined move the
    status with a conditional UPDATE in the transaction of the event they
    emit; a trigger in the store refuses any other move as well. decide
    is approval's call that makes an owner's decision take effect at
    once; the decisions table remembers which decision moved a manual
    reservation, so that decide can tell a decision that took effect
    before a cancel from one the cancel beat.
*/

#include "svc.h"
#include "store.h"
#include "events.h"
#include "fields.h"
#include "resv_util.h"

//  A store failure in a handler: logged, rolled back, answered 500.
#define S_FAIL(store, reply_p, operation, subject) \
    store_fail (store, reply_p, "reservation", operation, subject)

//  The largest stay and quantity one reserve may ask for, and the longest
//  slot label, are the domain's: RESV_*_MAX in resv_proto.h.
//  A reservation id: "r" and 32 hex digits of a 128-bit hash, and a NUL.
#define S_ID_SIZE           34
//  Of what is left of a request's deadline, a downstream call leaves this
//  share (at most S_MARGIN_MAX ms) for compensating and replying.
#define S_MARGIN_SHARE      5
#define S_MARGIN_MAX        500
//  A downstream call with less time than this is not worth making.
#define S_CALL_MIN          10
//  Compensations get at least this long, even past the deadline: leaving
//  capacity held matters more than a reply that comes late.
#define S_UNDO_MIN          1000
//  Saga rows one sweep looks at.
#define S_SWEEP_BATCH       20
//  Defaults of reservation/sweep (ms between sweeps) and of the age past
//  broker/max_timeout at which a saga row counts as abandoned.
#define S_SWEEP_DEFAULT     5000
#define S_ABANDON_SLACK     10000
//  An attempt of a reserve may act until this long past its deadline (a
//  reply that came in time may wait a little in a busy worker); after
//  that an attempt that fails alone, or the sweep, may undo the
//  reservation's hold and payment, and once one has claimed the undo
//  (s_attempt_claim) the late one may no longer store it. Until then it
//  may: what it stores it holds and has authorised.
#define S_ATTEMPT_SLACK     1000
//  An undo's two calls get S_UNDO_MIN each at least; its claim on the
//  reservation id lasts them both and this much more.
#define S_UNDO_SLACK        2000


static const char s_schema [] =
    "CREATE TABLE IF NOT EXISTS reservations ("
    "    id             TEXT PRIMARY KEY,"
    "    request_id     TEXT NOT NULL,"
    "    customer       TEXT NOT NULL,"
    "    resource       TEXT NOT NULL,"
    "    date           TEXT NOT NULL,"
    "    days           INTEGER NOT NULL CHECK (days >= 1),"
    "    slot           TEXT NOT NULL,"
    "    units          INTEGER NOT NULL CHECK (units >= 1),"
    "    amount         INTEGER NOT NULL CHECK (amount >= 0),"
    //  Comparisons, not IN (...): SQLite checks an IN list of more than
    //  two constants by building a temporary index, at every write.
    "    status         TEXT NOT NULL CHECK (status = 'PENDING'"
    "                   OR status = 'CONFIRMED' OR status = 'DECLINED'"
    "                   OR status = 'EXPIRED' OR status = 'CANCELLED'),"
    "    reason         TEXT,"
    "    payment_id     TEXT NOT NULL,"
    "    payment_status TEXT NOT NULL,"
    "    owner          TEXT NOT NULL,"
    "    approval       TEXT NOT NULL,"
    "    created_at     TEXT NOT NULL,"
    "    updated_at     TEXT NOT NULL);"
    //  The status machine, enforced by the store as well as by the code.
    "CREATE TRIGGER IF NOT EXISTS reservations_moves"
    "    BEFORE UPDATE OF status ON reservations"
    "    WHEN NOT (NEW.status = OLD.status"
    "          OR (OLD.status = 'PENDING' AND (NEW.status = 'CONFIRMED'"
    "              OR NEW.status = 'DECLINED' OR NEW.status = 'EXPIRED'"
    "              OR NEW.status = 'CANCELLED'))"
    "          OR (OLD.status = 'CONFIRMED' AND NEW.status = 'CANCELLED'))"
    "BEGIN SELECT RAISE (ABORT, 'illegal status move'); END;"
    //  Reserves under way: started_ms is wall-clock ms of the last attempt.
    "CREATE TABLE IF NOT EXISTS sagas ("
    "    id         TEXT PRIMARY KEY,"
    "    started_ms INTEGER NOT NULL);"
    //  The attempts of each reserve under way (a retry, or the same
    //  reserve sent twice at once, is a second attempt of one reservation
    //  id): each has a random number above 0 (62 bits: the number of a
    //  row gone does not come back), with until_ms, the wall-clock ms it
    //  may act until, its deadline and a slack, or 0 once it has ended or
    //  was taken for gone. Attempt 0 is an undo under way, until
    //  until_ms. The rows go with their saga row.
    "CREATE TABLE IF NOT EXISTS attempts ("
    "    id       TEXT NOT NULL,"
    "    attempt  INTEGER NOT NULL,"
    "    until_ms INTEGER NOT NULL,"
    "    PRIMARY KEY (id, attempt)) WITHOUT ROWID;"
    //  The reservation id each (customer, request id) was given, kept for
    //  good: a retried reserve finds the id of its first attempt here.
    "CREATE TABLE IF NOT EXISTS requests ("
    "    customer   TEXT NOT NULL,"
    "    request_id TEXT NOT NULL,"
    "    id         TEXT NOT NULL,"
    "    PRIMARY KEY (customer, request_id)) WITHOUT ROWID;"
    //  A store made before that table existed: its reservations are
    //  entered once, so that their retries are still recognised.
    "INSERT OR IGNORE INTO requests (customer, request_id, id)"
    "    SELECT customer, request_id, id FROM reservations"
    "    WHERE NOT EXISTS (SELECT 1 FROM requests);"
    //  The owner's decision that moved a manual reservation out of
    //  PENDING, kept after a cancel moves it on: decide then still knows
    //  that the decision took effect (auto ones are never asked).
    "CREATE TABLE IF NOT EXISTS decisions ("
    "    id       TEXT PRIMARY KEY,"
    "    decision TEXT NOT NULL CHECK (decision = 'approved'"
    "             OR decision = 'declined')) WITHOUT ROWID;";

//  Statements, by name, so that each has one address (store_stmt caches
//  by address).
//  A reservation row as the JSON object of the API, written by SQLite from
//  the row: no path builds a jansson value for it to send it on.
#define S_ROW_JSON \
    "json_object ('id', id, 'request_id', request_id, 'customer', customer," \
    " 'resource', resource, 'date', date, 'days', days, 'slot', slot," \
    " 'units', units, 'amount', amount, 'status', status, 'reason', reason," \
    " 'payment', json_object ('id', payment_id, 'status', payment_status)," \
    " 'created_at', created_at, 'updated_at', updated_at)"
//  A new reservation, and what its reservation.requested adds to it. The
//  events' data is built around the row's text (store_object_text), so
//  that SQLite writes the object once.
static const char s_sql_requested [] =
    "SELECT " S_ROW_JSON ", owner, approval FROM reservations WHERE id = ?1";
static const char s_sql_load [] =
    "SELECT " S_ROW_JSON " FROM reservations WHERE id = ?1";
static const char s_sql_status [] =
    "SELECT status, customer, approval FROM reservations WHERE id = ?1";
static const char s_sql_decision_put [] =
    "INSERT OR IGNORE INTO decisions (id, decision) VALUES (?1, ?2)";
static const char s_sql_decision_get [] =
    "SELECT decision FROM decisions WHERE id = ?1";
static const char s_sql_insert [] =
    "INSERT INTO reservations (id, request_id, customer, resource, date,"
    "       days, slot, units, amount, status, reason, payment_id,"
    "       payment_status, owner, approval, created_at, updated_at)"
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'PENDING', NULL, ?10,"
    "       'authorized', ?11, ?12, ?13, ?13)"
    "ON CONFLICT (id) DO NOTHING";
static const char s_sql_move [] =
    "UPDATE reservations SET status = ?1, reason = coalesce (?2, reason),"
    "       updated_at = ?3"
    " WHERE id = ?4 AND status IN (?5, ?6)";
static const char s_sql_saga_open [] =
    "INSERT INTO sagas (id, started_ms) VALUES (?1, ?2)"
    "    ON CONFLICT (id) DO NOTHING";
static const char s_sql_saga_resume [] =
    "UPDATE sagas SET started_ms = ?2 WHERE id = ?1";
static const char s_sql_saga_close [] =
    "DELETE FROM sagas WHERE id = ?1";
static const char s_sql_saga_close_if [] =
    "DELETE FROM sagas WHERE id = ?1 AND started_ms = ?2";
static const char s_sql_saga_is [] =
    "SELECT 1 FROM sagas WHERE id = ?1 AND started_ms = ?2";
static const char s_sql_attempt_undoing [] =
    "SELECT 1 FROM attempts WHERE id = ?1 AND attempt = 0 AND until_ms > ?2";
static const char s_sql_attempt_add [] =
    "INSERT OR IGNORE INTO attempts (id, attempt, until_ms) VALUES (?1, ?2, ?3)";
static const char s_sql_attempt_own [] =
    "SELECT until_ms FROM attempts WHERE id = ?1 AND attempt = ?2";
static const char s_sql_attempt_others [] =
    "SELECT count (*), coalesce (sum (until_ms > ?3), 0) FROM attempts"
    " WHERE id = ?1 AND attempt > 0 AND attempt <> ?2";
static const char s_sql_attempt_end [] =
    "UPDATE attempts SET until_ms = 0"
    " WHERE id = ?1 AND attempt > 0 AND (attempt = ?2 OR ?2 = 0)";
static const char s_sql_attempt_claim [] =
    "INSERT OR REPLACE INTO attempts (id, attempt, until_ms) VALUES (?1, 0, ?2)";
static const char s_sql_attempt_live [] =
    "SELECT 1 FROM attempts WHERE id = ?1 AND until_ms > ?2";
static const char s_sql_attempt_forget [] =
    "DELETE FROM attempts WHERE id = ?1";
static const char s_sql_attempt_unclaim [] =
    "DELETE FROM attempts WHERE id = ?1 AND attempt = 0";
//  Due: older than any request can live, or every attempt's time is over
//  and one of them did not end (its worker died, or was stopped past it):
//  the others left everything to that one.
static const char s_sql_saga_due [] =
    "SELECT id, started_ms FROM sagas s WHERE started_ms <= ?1"
    " OR (EXISTS (SELECT 1 FROM attempts a WHERE a.id = s.id"
    "             AND a.attempt > 0 AND a.until_ms BETWEEN 1 AND ?3)"
    "     AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.id = s.id"
    "                     AND a.until_ms > ?3))"
    " ORDER BY started_ms LIMIT ?2";
static const char s_sql_request_add [] =
    "INSERT INTO requests (customer, request_id, id) VALUES (?1, ?2, ?3)"
    "    ON CONFLICT DO NOTHING";
static const char s_sql_request_find [] =
    "SELECT id FROM requests WHERE customer = ?1 AND request_id = ?2";
static const char s_sql_exists [] =
    "SELECT 1 FROM reservations WHERE id = ?1";
//  A payment event's status, taken only forward (authorized, then
//  captured, then voided or refunded: an event applied late never takes a
//  reservation back), and only once the reservation is where that step
//  follows from: a capture once it is CONFIRMED (or CANCELLED since), a
//  refund once CANCELLED, a void once it has ended. A void before that is
//  a compensation's, of a reserve that failed and whose retry authorised
//  the same payment again: it says nothing of this reservation's payment.
#define S_PAYMENT_RANK(status) \
    "(CASE " status " WHEN 'authorized' THEN 0 WHEN 'captured' THEN 1" \
    " ELSE 2 END)"
static const char s_sql_payment [] =
    "UPDATE reservations SET payment_status = ?2"
    " WHERE id = ?1 AND " S_PAYMENT_RANK ("payment_status")
    " < " S_PAYMENT_RANK ("?2") " AND CASE ?2"
    "    WHEN 'captured' THEN status = 'CONFIRMED' OR status = 'CANCELLED'"
    "    WHEN 'refunded' THEN status = 'CANCELLED'"
    "    ELSE status = 'DECLINED' OR status = 'EXPIRED'"
    "         OR status = 'CANCELLED' END";

//  A status move: where it goes, where from, and what it emits.
typedef struct {
    const char *to;             //  Status reached
    const char *from [3];       //  Statuses it may leave, NULL-terminated
    const char *event;          //  Event type emitted when it happens
} s_move_t;

static const s_move_t s_cancel =
    { "CANCELLED", { "PENDING", "CONFIRMED", NULL }, "reservation.cancelled" };
static const s_move_t s_expire =
    { "EXPIRED", { "PENDING", NULL, NULL }, "reservation.expired" };
static const s_move_t s_confirm =
    { "CONFIRMED", { "PENDING", NULL, NULL }, "reservation.confirmed" };
static const s_move_t s_decline =
    { "DECLINED", { "PENDING", NULL, NULL }, "reservation.declined" };

//  The reason an expired reservation carries.
#define S_EXPIRED_REASON    "no decision within the approval timeout"

//  The service's state, one per worker process.
typedef struct {
    svc_call_fn *call;          //  Reserve's downstream calls: worker_call
    void *call_arg;             //  on the worker (borrowed), or what
                                //  svc_reservation_set_caller gave
    store_t *store;             //  This (main) thread's connection
    zactor_t *events;           //  Outbox relay, consumer, saga sweep
    events_batch_t batch;       //  Group commit of request bursts
    int64_t abandon_ms;         //  Age at which a saga row is abandoned
} s_self_t;

//  Who makes a downstream call: a handler through its worker (which keeps
//  heartbeating while it waits) or the caller the state was given, the
//  sweep through the events actor (events_call).
typedef struct {
    svc_call_fn *call;
    void *arg;
} s_caller_t;

//  The fields of one reserve.
typedef struct {
    const char *customer;       //  Borrowed from the request, like the rest
    const char *resource;
    const char *date;
    const char *slot;           //  NULL: availability picks the first
    const char *request_id;
    int64_t days;
    int64_t units;
    char random_id [33];        //  request_id when the caller gave none
    char id [S_ID_SIZE];        //  The reservation id
} s_order_t;

//  What reserve needs from availability's hold reply.
typedef struct {
    int64_t price;
    const char *owner;
    const char *approval;
    const char *slot;
} s_held_t;


//  --------------------------------------------------------------------------
//  Replies and errors

//  The error object of a downstream reply: its reason and message.
static const char *
s_error_field (json_t *reply, const char *key, const char *dflt)
{
    const char *value = json_string_value (
        json_object_get (json_object_get (reply, "error"), key));
    return value? value: dflt;
}


//  --------------------------------------------------------------------------
//  Reading reservations

//  Runs stmt (bound, returning one row of text columns) and copies its
//  first count columns into texts (malloc'd; NULL for a NULL). Returns 1,
//  0 when there is no row, -1 on a store failure.
static int
s_texts (sqlite3_stmt *stmt, char **texts, int count)
{
    for (int index = 0; index < count; index++)
        texts [index] = NULL;
    int rc = sqlite3_step (stmt);
    bool failed = false;
    if (rc == SQLITE_ROW)
        for (int index = 0; index < count; index++) {
            const char *text = (const char *) sqlite3_column_text (stmt, index);
            if (text && !(texts [index] = strdup (text)))
                failed = true;
        }
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    if (rc == SQLITE_ROW && !failed)
        return 1;
    for (int index = 0; index < count; index++)
        zstr_free (&texts [index]);
    return rc == SQLITE_DONE? 0: -1;
}


//  Reads reservation id from store as its JSON text. Returns 1 and sets
//  *text_p (caller frees) if found, 0 if not, -1 on a store failure (the
//  connection's error says which).
static int
s_load_text (store_t *store, const char *id, char **text_p)
{
    *text_p = NULL;
    sqlite3_stmt *stmt = store_stmt (store, s_sql_load);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    return s_texts (stmt, text_p, 1);
}

//  s_load_text, parsed (caller owns *object_p).
static int
s_load (store_t *store, const char *id, json_t **object_p)
{
    char *text;
    int found = s_load_text (store, id, &text);
    *object_p = found == 1? json_loads (text, 0, NULL): NULL;
    free (text);
    return found == 1 && !*object_p? -1: found;
}


//  --------------------------------------------------------------------------
//  The status machine

//  Records, in the caller's transaction, the owner's decision that moved
//  manual reservation id out of PENDING. Returns 0, or -1 on a store
//  failure.
static int
s_decision_put (store_t *store, const char *id, const char *decision)
{
    sqlite3_stmt *stmt = store_stmt (store, s_sql_decision_put);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, decision, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  Moves reservation id by move, inside the caller's transaction on store
//  (which it neither begins nor ends). customer, when not NULL, must be the
//  reservation's. reason, when not NULL, replaces the stored one. cause is
//  the id of the event that caused the move (a consumer) or NULL (a
//  handler). A move to where the reservation already is does nothing and
//  succeeds. Returns 200 with *result_p the reservation, or 403, 404, 409
//  or 500 with *error_p an error object (both owned by the caller).
//  *emitted_p tells whether an event was written.
static int
s_move (store_t *store, const s_move_t *move, const char *id,
        const char *customer, const char *reason, const char *cause,
        char **result_p, json_t **error_p, bool *emitted_p)
{
    *result_p = NULL;
    *error_p = NULL;
    *emitted_p = false;
    //  Its status and its customer, as they were.
    char *before [3];
    sqlite3_stmt *stmt = store_stmt (store, s_sql_status);
    int found = -1;
    if (stmt) {
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        found = s_texts (stmt, before, 3);
    }
    if (found < 0) {
        *error_p = resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
            "reservation: load %s: %s", id, store_error (store));
        return RESV_INTERNAL;
    }
    if (!found) {
        *error_p = resv_error_new (RESV_NOT_FOUND, RESV_REASON_NOT_FOUND,
                                   "no reservation '%s'", id);
        return RESV_NOT_FOUND;
    }
    const char *status = before [0]? before [0]: "";
    int code = RESV_OK;
    if (customer && !streq (customer, before [1]? before [1]: "")) {
        *error_p = resv_error_new (RESV_FORBIDDEN, RESV_REASON_FORBIDDEN,
            "reservation %s belongs to another customer", id);
        code = RESV_FORBIDDEN;
        goto done;
    }
    if (streq (status, move->to)) {
        //  Already there: a repeat, not an error
        if (s_load_text (store, id, result_p) != 1) {
            *error_p = resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
                "reservation: load %s: %s", id, store_error (store));
            code = RESV_INTERNAL;
        }
        goto done;
    }
    char now [RESV_TIME_SIZE];
    stmt = store_stmt (store, s_sql_move);
    int rc = SQLITE_ERROR;
    if (stmt) {
        sqlite3_bind_text (stmt, 1, move->to, -1, SQLITE_STATIC);
        if (reason)
            sqlite3_bind_text (stmt, 2, reason, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 3, resv_time_now (now), -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 4, id, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 5, move->from [0], -1, SQLITE_STATIC);
        if (move->from [1])
            sqlite3_bind_text (stmt, 6, move->from [1], -1, SQLITE_STATIC);
        rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        sqlite3_clear_bindings (stmt);
    }
    if (rc != SQLITE_DONE) {
        *error_p = resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
            "reservation: move %s to %s: %s", id, move->to,
            store_error (store));
        code = RESV_INTERNAL;
        goto done;
    }
    if (sqlite3_changes (store_db (store)) == 0) {
        *error_p = resv_error_new (RESV_CONFLICT, RESV_REASON_CONFLICT,
            "reservation %s is %s and cannot become %s", id, status, move->to);
        code = RESV_CONFLICT;
        goto done;
    }
    if ((move == &s_confirm || move == &s_decline)
    &&  streq (before [2]? before [2]: "", "manual")
    &&  s_decision_put (store, id, move == &s_confirm? "approved": "declined")) {
        *error_p = resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
            "reservation: record the decision on %s: %s", id,
            store_error (store));
        code = RESV_INTERNAL;
        goto done;
    }
    //  Itself as it is now, and the data of its event: that, the status
    //  it left and the reason given.
    char *after;
    if (s_load_text (store, id, &after) != 1) {
        *error_p = resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
            "reservation: reload %s: %s", id, store_error (store));
        code = RESV_INTERNAL;
        goto done;
    }
    const char *members [] = { "previous", status, "reason", reason, NULL };
    char *data = store_object_text ("reservation", after, members);
    if (!data || store_emit_text (store, cause, move->event, "reservation",
                                  id, id, data)) {
        *error_p = resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
            "reservation: emit %s for %s: %s", move->event, id,
            data? store_error (store): "out of memory");
        code = RESV_INTERNAL;
        zstr_free (&after);
    }
    else {
        *emitted_p = true;
        *result_p = after;
    }
    free (data);
done:
    for (int index = 0; index < 3; index++)
        zstr_free (&before [index]);
    return code;
}

//  A move asked for by a request: one transaction around s_move.
static int
s_move_request (s_self_t *self, const s_move_t *move, const char *id,
                const char *customer, const char *reason, zframe_t **reply_p)
{
    if (store_begin (self->store))
        return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                       "reservation: begin %s of %s: %s", move->to, id,
                       store_error (self->store));
    char *result;
    json_t *error;
    bool emitted;
    int status = s_move (self->store, move, id, customer, reason, NULL,
                         &result, &error, &emitted);
    if (status == RESV_INTERNAL) {
        zsys_error ("%s", s_error_field (error, "message", "store failure"));
        store_rollback (self->store);
        *reply_p = worker_json (error);
        return status;
    }
    if (status != RESV_OK) {
        store_rollback (self->store);
        *reply_p = worker_json (error);
        return status;
    }
    if (!emitted)
        store_rollback (self->store);   //  Nothing written: a repeat
    else
    if (store_commit (self->store)) {
        zstr_free (&result);
        return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                       "reservation: commit %s of %s failed; nothing changed",
                       move->to, id);
    }
    else
        events_flush (self->events);
    *reply_p = worker_text (result);
    return RESV_OK;
}


//  --------------------------------------------------------------------------
//  The reservation id

//  Gives order its reservation id: the one its (customer, request id)
//  was given before, else a new one, recorded in the caller's transaction
//  (outside one, the first process to record an id wins and the others
//  read it back).
//  A new id is "r", the time in ms as 12 hex digits, and 20 hex digits of
//  a hash of the customer and the request id: ids made together sort
//  together, so every store keyed by reservation (holds, payments,
//  approvals, the view) adds at the end of its indexes instead of in a
//  random page each time. Reserve compares the stored customer and request
//  id with the request's, so that even a collision refuses a request,
//  never mixes two. Returns 0, or -1 on a store failure.
static int
s_reservation_id (store_t *store, s_order_t *order)
{
    const char *parts [] = { order->customer, order->request_id };
    char hex [RESV_HASH_SIZE];
    resv_hash128 (parts, 2, hex);
    snprintf (order->id, S_ID_SIZE, "r%012" PRIx64 "%.20s",
              (uint64_t) (resv_time_ms () & 0xffffffffffff), hex);
    sqlite3_stmt *stmt = store_stmt (store, s_sql_request_add);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, order->customer, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, order->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, order->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    if (sqlite3_changes (store_db (store)) == 1)
        return 0;               //  A new request: the new id
    stmt = store_stmt (store, s_sql_request_find);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, order->customer, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, order->request_id, -1, SQLITE_STATIC);
    rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW)
        snprintf (order->id, S_ID_SIZE, "%s", (const char *) sqlite3_column_text (stmt, 0));
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW? 0: -1;
}


//  --------------------------------------------------------------------------
//  reserve

//  Reads and checks a reserve request into order. Returns 0, or the status
//  code (400, or 500 without a random source) with the reply set.
static int
s_order_read (json_t *request, s_order_t *order, zframe_t **reply_p)
{
    const char *keys [] = {
        "customer", "resource", "date", "days", "slot", "units", "request_id",
        NULL
    };
    memset (order, 0, sizeof *order);
    order->days = 1;
    order->units = 1;
    int64_t first;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "customer", true, &order->customer, reply_p)
    ||  field_token (request, "resource", true, &order->resource, reply_p)
    ||  field_date (request, "date", true, &order->date, &first, reply_p)
    ||  field_int (request, "days", false, 1, RESV_DAYS_MAX, &order->days,
                   reply_p)
    ||  field_string (request, "slot", false, RESV_SLOT_MAX, &order->slot,
                      reply_p)
    ||  field_int (request, "units", false, 1, RESV_UNITS_MAX, &order->units,
                   reply_p)
    ||  field_token (request, "request_id", false, &order->request_id,
                       reply_p))
        return RESV_BAD_REQUEST;
    //  Day numbers past the year 9999 have no YYYY-MM-DD to name them.
    int64_t last_day;
    resv_date_parse ("9999-12-31", &last_day);
    if (first + order->days - 1 > last_day)
        return worker_fail (reply_p, RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                       "date: the stay must end by 9999-12-31");
    if (!order->request_id) {
        if (resv_random_hex (order->random_id, 16))
            return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                           "reservation: no random source for a request id");
        order->request_id = order->random_id;
    }
    return 0;
}

//  A reserve whose reservation exists: the same request again gets it
//  (201, as the first time); the same request id for another request, or
//  a hash collision, gets 409.
static int
s_reserve_again (s_order_t *order, json_t *existing, zframe_t **reply_p)
{
    #define S_FIELD(key) json_object_get (existing, key)
    bool same = streq (order->customer, json_string_value (S_FIELD ("customer")))
        && streq (order->request_id, json_string_value (S_FIELD ("request_id")))
        && streq (order->resource, json_string_value (S_FIELD ("resource")))
        && streq (order->date, json_string_value (S_FIELD ("date")))
        && order->days == json_integer_value (S_FIELD ("days"))
        && order->units == json_integer_value (S_FIELD ("units"))
        && (!order->slot
            || streq (order->slot, json_string_value (S_FIELD ("slot"))));
    #undef S_FIELD
    if (!same) {
        json_decref (existing);
        return worker_fail (reply_p, RESV_CONFLICT, RESV_REASON_CONFLICT,
                       "request_id %s was used for another reserve",
                       order->request_id);
    }
    *reply_p = worker_json (existing);
    return RESV_CREATED;
}

//  Records that a reserve of id is under way. *resumed_p tells whether an
//  earlier attempt left its row (it may have left a hold or a payment).
//  Returns 0, or -1 (the store's error says why).
static int
s_saga_open (store_t *store, const char *id, bool *resumed_p)
{
    int64_t now = resv_time_ms ();
    sqlite3_stmt *stmt = store_stmt (store, s_sql_saga_open);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, now);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    *resumed_p = sqlite3_changes (store_db (store)) == 0;
    if (!*resumed_p)
        return 0;
    //  Restart the clock, so that the sweep leaves this attempt alone.
    stmt = store_stmt (store, s_sql_saga_resume);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, now);
    rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  Forgets saga id, in the current transaction if any. started_ms, when >
//  0, must match: a sweep does not delete the row of a newer attempt.
static int
s_saga_close (store_t *store, const char *id, int64_t started_ms)
{
    sqlite3_stmt *stmt = store_stmt (store, started_ms > 0?
                                     s_sql_saga_close_if: s_sql_saga_close);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    if (started_ms > 0)
        sqlite3_bind_int64 (stmt, 2, started_ms);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    if (sqlite3_changes (store_db (store)) == 0)
        return 0;               //  A newer attempt's row: it keeps its own
    stmt = store_stmt (store, s_sql_attempt_forget);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  Runs stmt (bound) for its one integer row or none: returns 1 with
//  *value_p (and *second_p when not NULL, the second column), 0 without
//  a row, -1 on a store failure.
static int
s_int_row (sqlite3_stmt *stmt, int64_t *value_p, int64_t *second_p)
{
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        *value_p = sqlite3_column_int64 (stmt, 0);
        if (second_p)
            *second_p = sqlite3_column_int64 (stmt, 1);
    }
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return rc == SQLITE_ROW? 1: rc == SQLITE_DONE? 0: -1;
}

//  Starts an attempt of the reserve of id, in the caller's transaction:
//  *attempt_p gets its number, or 0 when an undo of the reservation is
//  under way (the attempt must not begin: the undo would take back what
//  it holds). It may act until its deadline (on zclock_mono) and
//  S_ATTEMPT_SLACK. Returns 0, or -1 on a store failure.
static int
s_attempt_open (store_t *store, const char *id, int64_t deadline,
                int64_t *attempt_p)
{
    int64_t now = resv_time_ms (), found;
    *attempt_p = 0;
    sqlite3_stmt *stmt = store_stmt (store, s_sql_attempt_undoing);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64 (stmt, 2, now);
    int rc = s_int_row (stmt, &found, NULL);
    if (rc)
        return rc < 0? -1: 0;
    //  A number of its own, not 1 + the largest left: the rows go once an
    //  undo is done, and an attempt taken for gone meanwhile (its worker
    //  stopped) would take a retry's row of the same number for its own,
    //  then store the reservation on the hold undone, or undo the retry.
    int64_t attempt = 0;
    for (int tries = 0; tries < 8 && !attempt; tries++) {
        uint64_t random;
        sqlite3_randomness (sizeof random, &random);
        attempt = (int64_t) (random >> 2) + 1;
        if (!(stmt = store_stmt (store, s_sql_attempt_add)))
            return -1;
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, attempt);
        sqlite3_bind_int64 (stmt, 3, now + (deadline - zclock_mono ())
                                          + S_ATTEMPT_SLACK);
        rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE)
            return -1;
        if (sqlite3_changes (store_db (store)) == 0)
            attempt = 0;        //  Taken: another number
    }
    if (!attempt)
        return -1;
    *attempt_p = attempt;
    return 0;
}

//  Whether attempt of the reserve of id may still act: its row is there
//  and no undo has taken it for gone. Returns 1, 0, or -1 on a store
//  failure.
static int
s_attempt_current (store_t *store, const char *id, int64_t attempt)
{
    sqlite3_stmt *stmt = store_stmt (store, s_sql_attempt_own);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64 (stmt, 2, attempt);
    int64_t until = 0;
    int rc = s_int_row (stmt, &until, NULL);
    return rc < 0? -1: rc == 1 && until != 0;
}

//  Ends attempt of the reserve of id (0: every attempt), in the caller's
//  transaction. Returns 0 or -1.
static int
s_attempt_end (store_t *store, const char *id, int64_t attempt)
{
    sqlite3_stmt *stmt = store_stmt (store, s_sql_attempt_end);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64 (stmt, 2, attempt);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  Claims the undo of the reservation id for undo_ms, in the caller's
//  transaction: every attempt counts as ended, and none begins until the
//  claim lapses or the saga row goes. Returns 0 or -1.
static int
s_attempt_claim (store_t *store, const char *id, int64_t undo_ms)
{
    sqlite3_stmt *stmt = store_stmt (store, s_sql_attempt_claim);
    if (s_attempt_end (store, id, 0) || !stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, resv_time_ms () + undo_ms);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  The default caller of a handler: worker_call on the worker (arg).
static int
s_worker_call (void *arg, const char *service, const char *method,
               json_t *request, int timeout_ms, json_t **reply_p)
{
    return worker_call ((worker_t *) arg, service, method, request,
                        timeout_ms, reply_p);
}

//  The sweep's caller: events_call on the events actor's caller (arg),
//  which a stop cuts short.
static int
s_events_call (void *arg, const char *service, const char *method,
               json_t *request, int timeout_ms, json_t **reply_p)
{
    return events_call ((events_caller_t *) arg, service, method, request,
                        timeout_ms, reply_p);
}

//  Calls service/method with request (taken, json_decref'd here) and
//  timeout_ms, as the caller can.
static int
s_invoke (s_caller_t *caller, const char *service, const char *method,
          json_t *request, int timeout_ms, json_t **reply_p)
{
    if (!request) {
        *reply_p = resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                   "reservation: cannot build the %s request",
                                   method);
        return RESV_INTERNAL;
    }
    int status = caller->call (caller->arg, service, method, request,
                               timeout_ms, reply_p);
    json_decref (request);
    return status;
}

//  A reserve under way, from its hold to its answer. The request is kept:
//  order borrows from it, held from availability's reply.
typedef struct _s_saga_t s_saga_t;

//  A step of the saga: what follows a downstream call. Takes reply.
typedef void (s_step_fn) (s_saga_t *saga, int status, json_t *reply);

//  How a failed reserve's message ends (s_saga_failure): as it is, or
//  followed by what became of the reserve (its undo may take calls
//  first), and then also with 504 deadline in place of its status once
//  the deadline passed meanwhile.
typedef enum {
    S_TELL_AS_IS,
    S_TELL_OUTCOME,
    S_TELL_UNAVAILABLE
} s_tell_t;

struct _s_saga_t {
    s_self_t *self;             //  The service
    json_t *request;            //  The reserve request
    s_order_t order;            //  Its fields
    int64_t deadline;           //  Its deadline, on zclock_mono()
    bool resumed;               //  An earlier attempt left its saga row
    int64_t attempt;            //  This attempt's number (table attempts)
    json_t *hold;               //  availability's hold reply
    s_held_t held;              //  What reserve needs of it
    int64_t amount;             //  price x units x days
    worker_later_t *later;      //  The request, taken aside; NULL: the
                                //  handler answers, when the saga is done
    s_step_fn *next;            //  Step after the call under way
    bool done;                  //  Without later: ended, with
    int status;                 //  this status
    zframe_t *reply;            //  and this reply
    //  A failure's answer, given once its undo is over (s_saga_fail)
    int fail_status;
    char *fail_reason;          //  NULL: none
    char *fail_text;
    s_tell_t fail_tell;
    zframe_t *fail_answer;      //  An answer made already, given as it is
    //  The undo under way (s_saga_undo_next)
    int undo_step;              //  Of s_undo_steps
    bool undo_failed;           //  A step failed
    int64_t undo_ms;            //  Each step's timeout
};

static void
s_saga_free (s_saga_t **saga_p)
{
    s_saga_t *saga = *saga_p;
    json_decref (saga->request);
    json_decref (saga->hold);
    zframe_destroy (&saga->reply);
    zstr_free (&saga->fail_reason);
    zstr_free (&saga->fail_text);
    zframe_destroy (&saga->fail_answer);
    free (saga);
    *saga_p = NULL;
}

//  Ends a reserve with status and *reply_p (taken): answers the request
//  taken aside and frees the saga, or leaves both for the handler.
static void
s_saga_end (s_saga_t *saga, int status, zframe_t **reply_p)
{
    if (saga->later) {
        worker_answer ((worker_t *) saga->self->call_arg, &saga->later,
                       status, reply_p);
        s_saga_free (&saga);
        return;
    }
    saga->done = true;
    saga->status = status;
    saga->reply = *reply_p;
    *reply_p = NULL;
}

//  worker_call_async's completion: the saga's next step.
static void
s_saga_resume (void *arg, int status, json_t *reply)
{
    s_saga_t *saga = (s_saga_t *) arg;
    saga->next (saga, status, reply);
}

//  A downstream call of reserve, with what is left of the request's
//  deadline less a margin for undoing and replying; request is taken.
//  next runs with the outcome: later, from the worker's loop, when the
//  request was taken aside; at once otherwise.
static void
s_saga_call (s_saga_t *saga, const char *service, const char *method,
             json_t *request, const char *const *fields, s_step_fn *next)
{
    s_self_t *self = saga->self;
    int64_t left = saga->deadline - zclock_mono ();
    int64_t margin = left / S_MARGIN_SHARE;
    int64_t budget = left - (margin > S_MARGIN_MAX? S_MARGIN_MAX: margin);
    if (!request) {
        next (saga, RESV_INTERNAL, resv_error_new (RESV_INTERNAL,
              RESV_REASON_INTERNAL, "reservation: cannot build the %s request",
              method));
        return;
    }
    if (budget < S_CALL_MIN) {
        json_decref (request);
        next (saga, RESV_TIMEOUT, resv_error_new (RESV_TIMEOUT,
              RESV_REASON_DEADLINE, "no time left to call %s %s", service,
              method));
        return;
    }
    if (saga->later) {
        saga->next = next;
        int rc = worker_call_async ((worker_t *) self->call_arg, service,
                                    method, request, fields, (int) budget,
                                    s_saga_resume, saga);
        json_decref (request);
        if (rc)
            next (saga, RESV_INTERNAL, resv_error_new (RESV_INTERNAL,
                  RESV_REASON_INTERNAL, "reservation: cannot send %s %s",
                  service, method));
        return;
    }
    json_t *reply = NULL;
    int status = self->call (self->call_arg, service, method, request,
                             (int) budget, &reply);
    json_decref (request);
    next (saga, status, reply);
}

//  The calls that undo what a reserve may have done, in their order: its
//  payment voided, then its hold released. Both are idempotent.
static const char *s_undo_steps [2][2] = {
    { RESV_SERVICE_PAYMENT, RESV_METHOD_VOID },
    { RESV_SERVICE_AVAILABILITY, RESV_METHOD_RELEASE }
};

//  Whether undo step (s_undo_steps) of id went through; logs one that did
//  not. Takes reply.
static bool
s_undo_step_done (const char *id, int step, int status, json_t *reply)
{
    if (status != RESV_OK)
        zsys_warning ("reservation: undo %s: %s %s: %d %s", id,
                      s_undo_steps [step][0], s_undo_steps [step][1], status,
                      s_error_field (reply, "message", ""));
    json_decref (reply);
    return status == RESV_OK;
}

//  Undoes what a reserve of id may have done, waiting for each call: voids
//  its payment (when voiding) and releases its hold. Returns 0 when both
//  succeeded, -1 otherwise (logged; the saga row stays for the sweep).
static int
s_undo (s_caller_t *caller, const char *id, bool voiding, int timeout_ms)
{
    if (timeout_ms < S_UNDO_MIN)
        timeout_ms = S_UNDO_MIN;
    int failed = 0;
    for (int step = voiding? 0: 1; step < 2; step++) {
        json_t *reply = NULL;
        int status = s_invoke (caller, s_undo_steps [step][0],
                               s_undo_steps [step][1],
                               json_pack ("{s:s}", "reservation", id),
                               timeout_ms, &reply);
        if (!s_undo_step_done (id, step, status, reply))
            failed = -1;
    }
    return failed;
}

//  Drops the claim of an undo of id that failed: its calls are over (each
//  answered, or past its deadline, after which no worker runs it), and the
//  saga row stays for the sweep, or for a new attempt, which resumes it.
//  Kept, the claim refused every retry 503 until it lapsed.
static void
s_attempt_unclaim (store_t *store, const char *id)
{
    sqlite3_stmt *stmt = store_stmt (store, s_sql_attempt_unclaim);
    int rc = SQLITE_ERROR;
    if (stmt) {
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
    }
    if (rc != SQLITE_DONE)
        zsys_warning ("reservation: drop the claim on %s: %s; it lapses",
                      id, store_error (store));
}

//  What s_saga_settle leaves to its caller: an undo whose claim is
//  committed and whose calls are to be made.
#define S_SETTLE_UNDO       (-1)

//  Settles a failed attempt of a reserve in one transaction. The hold and
//  the payment belong to the reservation id, which every attempt of the
//  reserve shares (a retry, or the same reserve sent twice at once): an
//  attempt must not take them back while another may still store the
//  reservation on them. So: if another attempt stored the reservation,
//  this one answers with it (returns 201, or 409 when it asked for
//  something else, with *reply_p set); if another is still under way, or
//  an undo took this one for gone, it leaves everything to that one
//  (returns 0). Only the last attempt undoes, and then everything any
//  attempt may have done (when undo, or another attempt had begun; the
//  payment too when voiding, which *voiding_p says), under a claim that
//  keeps new attempts out until it is done (s_attempt_open): returns
//  S_SETTLE_UNDO, the claim committed, and saga->undo_ms is how long each
//  call of the undo may take. *outcome_p says what became of it, for the
//  answer's message.
static int
s_saga_settle (s_saga_t *saga, bool undo, bool *voiding_p,
               const char **outcome_p, zframe_t **reply_p)
{
    s_self_t *self = saga->self;
    store_t *store = self->store;
    const char *id = saga->order.id;
    int64_t left = saga->deadline - zclock_mono ();
    if (left < S_UNDO_MIN)
        left = S_UNDO_MIN;
    *outcome_p = "nothing was reserved";
    if (store_begin (store))
        goto failed;
    json_t *existing = NULL;
    int found = s_load (store, id, &existing);
    if (found < 0)
        goto failed;
    if (found) {
        store_rollback (store);
        return s_reserve_again (&saga->order, existing, reply_p);
    }
    found = s_attempt_current (store, id, saga->attempt);
    if (found < 0)
        goto failed;
    if (!found) {
        //  Never recorded (the commit that opened it failed), or an undo
        //  took it for gone and undoes what it may have done.
        store_rollback (store);
        return 0;
    }
    int64_t others = 0, live = 0;
    sqlite3_stmt *stmt = store_stmt (store, s_sql_attempt_others);
    if (!stmt)
        goto failed;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, saga->attempt);
    sqlite3_bind_int64 (stmt, 3, resv_time_ms ());
    if (s_int_row (stmt, &others, &live) != 1)
        goto failed;
    if (live) {
        //  Not the last: that one stores the reservation or undoes it.
        if (s_attempt_end (store, id, saga->attempt) || store_commit (store))
            goto failed;
        *outcome_p = "another attempt of this reserve goes on";
        return 0;
    }
    if (saga->resumed || others) {
        undo = true;            //  What the others did, this one undoes
        *voiding_p = true;
    }
    if (!undo) {
        if (s_saga_close (store, id, 0) || store_commit (store))
            goto failed;
        return 0;
    }
    if (s_attempt_claim (store, id, 2 * left + S_UNDO_SLACK)
    ||  store_commit (store))
        goto failed;
    saga->undo_ms = left;
    return S_SETTLE_UNDO;
failed:
    //  Undoing without knowing that no other attempt goes on could take
    //  its hold back: the sweep undoes it once every attempt is over.
    zsys_error ("reservation: end attempt %" PRId64 " of %s: %s; the sweep "
                "will undo it", saga->attempt, id, store_error (store));
    store_rollback (store);
    *outcome_p = "undoing it is left to the sweep";
    return 0;
}

//  Ends the undo of a failed reserve once its calls are over (failed: one
//  of them failed); returns what became of the reserve.
static const char *
s_saga_undone (s_saga_t *saga, bool failed)
{
    s_self_t *self = saga->self;
    const char *id = saga->order.id;
    if (failed) {
        //  A call the worker's stop gave up on may still be done, its
        //  deadline not over: the claim then stays until it lapses, as
        //  the sweep's does, or a retry let in meanwhile (in another
        //  process) could have the hold it makes released by that call.
        //  Else this attempt ends first, as the claim ended it: the
        //  claim may have been lost with the batch it was made in, and a
        //  retry then takes the undo on at once, not once this attempt's
        //  time is over.
        if (!(self->call == s_worker_call
              && worker_stopping ((worker_t *) self->call_arg))) {
            if (s_attempt_end (self->store, id, saga->attempt))
                zsys_warning ("reservation: end attempt %" PRId64 " of %s: "
                              "%s", saga->attempt, id,
                              store_error (self->store));
            s_attempt_unclaim (self->store, id);
        }
        return "undoing it failed too and will be retried";
    }
    if (s_saga_close (self->store, id, 0))
        zsys_warning ("reservation: close saga %s: %s; the sweep will",
                      id, store_error (self->store));
    return "nothing was reserved";
}

//  Sets what a failed reserve answers once its undo is over: status,
//  reason (NULL: none) and the message of format, followed by what
//  became of the reserve as tell says.
static void
s_saga_failure (s_saga_t *saga, int status, const char *reason,
                s_tell_t tell, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    saga->fail_text = zsys_vprintf (format, args);
    va_end (args);
    saga->fail_status = status;
    saga->fail_reason = reason? strdup (reason): NULL;
    saga->fail_tell = tell;
}

//  Answers a failed reserve as s_saga_failure said, now that outcome is
//  known, and ends it.
static void
s_saga_tell (s_saga_t *saga, const char *outcome)
{
    zframe_t *answer = saga->fail_answer;
    saga->fail_answer = NULL;
    int status = saga->fail_status;
    if (!answer) {
        const char *reason = saga->fail_reason;
        const char *text = saga->fail_text? saga->fail_text: resv_strstatus (status);
        if (saga->fail_tell == S_TELL_UNAVAILABLE
        &&  zclock_mono () >= saga->deadline) {
            status = RESV_TIMEOUT;
            reason = RESV_REASON_DEADLINE;
        }
        if (saga->fail_tell == S_TELL_AS_IS)
            status = worker_fail (&answer, status, reason, "%s", text);
        else
            status = worker_fail (&answer, status, reason, "%s; %s", text,
                                  outcome);
    }
    s_saga_end (saga, status, &answer);
}

static void
    s_saga_undo_next (s_saga_t *saga);

//  worker_call_async's completion of an undo's call: on to the next.
static void
s_saga_undo_resume (void *arg, int status, json_t *reply)
{
    s_saga_t *saga = (s_saga_t *) arg;
    //  A call that never left (the commit of the batch it waited for
    //  failed, and with it the undo's claim) ends the undo: a call made
    //  now, without the claim, could undo what a retry let in meanwhile
    //  holds. The sweep, or a retry, undoes it all later.
    bool unsent = status == RESV_INTERNAL
               && streq (s_error_field (reply, "reason", ""),
                         RESV_REASON_NOT_SENT);
    if (!s_undo_step_done (saga->order.id, saga->undo_step, status, reply))
        saga->undo_failed = true;
    saga->undo_step = unsent? 2: saga->undo_step + 1;
    s_saga_undo_next (saga);
}

//  Makes the undo's next call without waiting for it, or ends the reserve
//  once there is none left.
static void
s_saga_undo_next (s_saga_t *saga)
{
    while (saga->undo_step < 2) {
        int step = saga->undo_step;
        json_t *request = json_pack ("{s:s}", "reservation", saga->order.id);
        int rc = request? worker_call_async ((worker_t *) saga->self->call_arg,
                                             s_undo_steps [step][0],
                                             s_undo_steps [step][1], request,
                                             NULL, (int) saga->undo_ms,
                                             s_saga_undo_resume, saga): -1;
        json_decref (request);
        if (rc == 0)
            return;             //  s_saga_undo_resume goes on
        zsys_warning ("reservation: undo %s: cannot send %s %s",
                      saga->order.id, s_undo_steps [step][0],
                      s_undo_steps [step][1]);
        saga->undo_failed = true;
        saga->undo_step++;
    }
    s_saga_tell (saga, s_saga_undone (saga, saga->undo_failed));
}

//  Ends a failed attempt of a reserve, answered as s_saga_failure said:
//  settles it (s_saga_settle), makes the undo's calls if it must, and
//  answers. When the request was taken aside the calls go without waiting
//  and the answer comes once they are over: the worker serves meanwhile,
//  and the transaction of a batch of completions this one ran in (which
//  holds the store's write lock) is not held open through them.
static void
s_saga_fail (s_saga_t *saga, bool undo, bool voiding)
{
    const char *outcome;
    zframe_t *answer = NULL;
    int stored = s_saga_settle (saga, undo, &voiding, &outcome, &answer);
    if (stored > 0) {
        s_saga_end (saga, stored, &answer);
        return;
    }
    if (stored == S_SETTLE_UNDO) {
        saga->undo_step = voiding? 0: 1;
        saga->undo_failed = false;
        if (saga->later) {
            s_saga_undo_next (saga);
            return;
        }
        s_caller_t caller = { saga->self->call, saga->self->call_arg };
        outcome = s_saga_undone (saga, s_undo (&caller, saga->order.id,
                                               voiding, (int) saga->undo_ms)
                                       != 0);
    }
    s_saga_tell (saga, outcome);
}

//  Whether a failed downstream call may have done its work: not when it
//  never left this worker (the commit before it failed), nor when the
//  broker never handed it to a worker (no worker, open circuit, full
//  queue, its deadline passed in the queue). Under a slow payment
//  provider the last spares the undo a void that would queue behind the
//  same authorisations and take the reserve past its own deadline.
static bool
s_dispatched (int status, json_t *reply)
{
    const char *reason = s_error_field (reply, "reason", "");
    return status != RESV_TOO_MANY && !streq (reason, RESV_REASON_NOT_SENT)
        && !(status == RESV_UNAVAILABLE && (streq (reason, RESV_REASON_NO_WORKER)
                                      ||  streq (reason, RESV_REASON_CIRCUIT_OPEN)))
        && !(status == RESV_TIMEOUT && streq (reason, RESV_REASON_NOT_STARTED));
}

//  A downstream call of reserve that failed for want of a service (5xx,
//  no reply): undoes what may have been done (when undo; the payment too
//  when voiding) and replies 503, or 504 once the deadline passed. A call
//  that never left this worker (its store refused the commit before it)
//  is answered in the runtime's words, which say so: still a 503, not a
//  500, so that the broker's breaker does not take a full disk as the
//  service failing and shut its reads off too. Takes reply.
static void
s_reserve_unavailable (s_saga_t *saga, const char *what, int status,
                       json_t *reply, bool undo, bool voiding)
{
    const char *message = s_error_field (reply, "message", resv_strstatus (status));
    if (streq (s_error_field (reply, "reason", ""), RESV_REASON_NOT_SENT))
        s_saga_failure (saga, RESV_UNAVAILABLE, RESV_REASON_INTERNAL,
                        S_TELL_OUTCOME, "%s", message);
    else
    if (status == RESV_TIMEOUT)
        s_saga_failure (saga, RESV_TIMEOUT, RESV_REASON_DEADLINE,
                        S_TELL_OUTCOME, "%s failed (%d: %s)", what, status,
                        message);
    else
        s_saga_failure (saga, RESV_UNAVAILABLE,
                        s_error_field (reply, "reason", RESV_REASON_INTERNAL),
                        S_TELL_UNAVAILABLE, "%s failed (%d: %s)", what, status,
                        message);
    json_decref (reply);
    s_saga_fail (saga, undo, voiding);
}

//  What the saga reads of a hold's and an authorisation's success: the
//  replies come with these members alone (worker_call_async's fields), as
//  s_held_read and s_reserve_authorized read them.
static const char *const s_hold_fields [] = {
    "resource.price", "resource.owner", "resource.approval", "slot", NULL
};
static const char *const s_authorize_fields [] = { "payment.id", NULL };

static bool
s_held_read (json_t *reply, s_held_t *held)
{
    json_t *resource = json_object_get (reply, "resource");
    json_t *price = json_object_get (resource, "price");
    held->price = json_is_integer (price)? json_integer_value (price): -1;
    held->owner = json_string_value (json_object_get (resource, "owner"));
    held->approval = json_string_value (json_object_get (resource, "approval"));
    held->slot = json_string_value (json_object_get (reply, "slot"));
    return held->price >= 0 && held->owner && held->slot && held->approval
        && (streq (held->approval, "auto") || streq (held->approval, "manual"));
}

//  Stores the reservation of saga and its reservation.requested in one
//  transaction. Returns 201 with the reply set, or 500 (nothing stored,
//  the caller undoes). A concurrent twin that stored it first wins: its
//  reservation is the reply. An attempt that an undo took for gone (it
//  outlived its deadline) stores nothing: the hold it would store on may
//  be released; 503, and the undo is that one's.
static int
s_reserve_store (s_saga_t *saga, const char *payment_id, zframe_t **reply_p)
{
    s_self_t *self = saga->self;
    s_order_t *order = &saga->order;
    s_held_t *held = &saga->held;
    int64_t amount = saga->amount;
    store_t *store = self->store;
    if (store_begin (store))
        return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                       "reservation: begin insert %s: %s", order->id,
                       store_error (store));
    sqlite3_stmt *stmt = store_stmt (store, s_sql_insert);
    if (!stmt)
        return S_FAIL (store, reply_p, "insert", order->id);
    char now [RESV_TIME_SIZE];
    sqlite3_bind_text (stmt, 1, order->id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, order->request_id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, order->customer, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 4, order->resource, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 5, order->date, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 6, order->days);
    sqlite3_bind_text (stmt, 7, held->slot, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 8, order->units);
    sqlite3_bind_int64 (stmt, 9, amount);
    sqlite3_bind_text (stmt, 10, payment_id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 11, held->owner, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 12, held->approval, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 13, resv_time_now (now), -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return S_FAIL (store, reply_p, "insert", order->id);
    bool twin = sqlite3_changes (store_db (store)) == 0;
    //  Itself, and what its reservation.requested adds: owner, approval.
    char *texts [3];
    stmt = store_stmt (store, s_sql_requested);
    if (!stmt)
        return S_FAIL (store, reply_p, "load", order->id);
    sqlite3_bind_text (stmt, 1, order->id, -1, SQLITE_STATIC);
    if (s_texts (stmt, texts, 3) != 1)
        return S_FAIL (store, reply_p, "load", order->id);
    const char *members [] = { "owner", texts [1], "approval", texts [2],
                               NULL };
    char *data = twin? NULL: store_object_text ("reservation", texts [0],
                                                members);
    zstr_free (&texts [1]);
    zstr_free (&texts [2]);
    if (twin) {
        store_rollback (store);
        *reply_p = worker_text (texts [0]);
        return RESV_CREATED;
    }
    int current = s_attempt_current (store, order->id, saga->attempt);
    if (current < 0) {
        zstr_free (&texts [0]);
        free (data);
        return S_FAIL (store, reply_p, "check the attempt of", order->id);
    }
    if (!current) {
        zstr_free (&texts [0]);
        free (data);
        store_rollback (store);
        return worker_fail (reply_p, RESV_UNAVAILABLE, RESV_REASON_IN_PROGRESS,
                            "reservation: this attempt of reserve %s "
                            "outlived its deadline and another undoes it; "
                            "nothing was reserved, a retry may be",
                            order->id);
    }
    int rc_emit = !data || store_emit_text (store, NULL, "reservation.requested",
                                            "reservation", order->id,
                                            order->id, data);
    free (data);
    if (rc_emit || s_saga_close (store, order->id, 0)) {
        zstr_free (&texts [0]);
        return S_FAIL (store, reply_p, "emit reservation.requested for",
                          order->id);
    }
    if (store_commit (store)) {
        zstr_free (&texts [0]);
        return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                       "reservation: commit insert %s failed", order->id);
    }
    events_flush (self->events);
    *reply_p = worker_text (texts [0]);
    return RESV_CREATED;
}

static void
    s_reserve_held (s_saga_t *saga, int status, json_t *reply);
static void
    s_reserve_authorized (s_saga_t *saga, int status, json_t *payment);

//  reserve: checks the request, then holds, authorises and stores, as
//  steps of a saga (s_saga_t). In a worker the request is taken aside and
//  each step runs when its call's reply comes, so that the worker goes on
//  serving meanwhile; with another caller (svc_reservation_set_caller)
//  the steps run one after the other before the handler returns.
static int
s_reserve_method (void *state, json_t *request, int64_t deadline,
                  zframe_t **reply_p)
{
    s_self_t *self = (s_self_t *) state;
    //  In a worker the request is taken aside after its saga row is
    //  committed, and its calls leave after that commit. The items of a
    //  "batch.reserve" cannot be: each ran in the batch's one transaction
    //  and sent its hold and authorisation at once, before its saga row
    //  was stored, so that a crash lost the row and kept the hold and the
    //  payment for good, with nothing left to undo them.
    worker_t *worker = self->call == s_worker_call
                     ? (worker_t *) self->call_arg: NULL;
    if (worker && !worker_can_defer (worker))
        return worker_fail (reply_p, RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                            "reservation: reserve is not taken in a batch; "
                            "send each one alone");
    s_saga_t *saga = (s_saga_t *) zmalloc (sizeof (s_saga_t));
    saga->self = self;
    saga->request = json_incref (request);
    saga->deadline = deadline;
    s_order_t *order = &saga->order;
    int status = s_order_read (request, order, reply_p);
    if (status) {
        s_saga_free (&saga);
        return status;
    }
    json_t *existing = NULL;
    int found = 0;
    if (s_reservation_id (self->store, order))
        status = S_FAIL (self->store, reply_p, "record request",
                         order->request_id);
    else
    if ((found = s_load (self->store, order->id, &existing)) < 0)
        status = S_FAIL (self->store, reply_p, "load", order->id);
    else
    if (found)
        status = s_reserve_again (order, existing, reply_p);
    else
    if (store_begin (self->store)
    ||  s_saga_open (self->store, order->id, &saga->resumed)
    ||  s_attempt_open (self->store, order->id, deadline, &saga->attempt))
        status = S_FAIL (self->store, reply_p, "open saga", order->id);
    else
    if (!saga->attempt) {
        store_rollback (self->store);
        status = worker_fail (reply_p, RESV_UNAVAILABLE,
                              RESV_REASON_IN_PROGRESS, "reservation: an "
                              "earlier attempt of reserve %s is being "
                              "undone; a retry in a moment may reserve",
                              order->id);
    }
    else
    if (store_commit (self->store))
        status = worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                              "reservation: open saga %s: the commit failed",
                              order->id);
    if (status) {
        s_saga_free (&saga);
        return status;
    }
    //  From here on the answer may come later.
    if (worker) {
        saga->later = worker_defer (worker);
        if (!saga->later) {
            //  Out of memory: nothing was sent; the sweep closes the row.
            zsys_error ("reservation: reserve %s: out of memory", order->id);
            s_saga_free (&saga);
            return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                                "reservation: reserve %s cannot be taken "
                                "aside", order->id);
        }
    }
    bool deferred = saga->later != NULL;

    //  Hold capacity on every day of the stay.
    json_t *hold = json_pack ("{s:s,s:s,s:s,s:I,s:I}", "reservation", order->id,
                              "resource", order->resource, "date", order->date,
                              "days", (json_int_t) order->days,
                              "units", (json_int_t) order->units);
    if (hold && order->slot)
        json_object_set_new (hold, "slot", json_string (order->slot));
    s_saga_call (saga, RESV_SERVICE_AVAILABILITY, RESV_METHOD_HOLD, hold,
                 s_hold_fields, s_reserve_held);
    if (deferred)
        return WORKER_DEFERRED; //  The saga answers, and frees itself
    assert (saga->done);
    status = saga->status;
    *reply_p = saga->reply;
    saga->reply = NULL;
    s_saga_free (&saga);
    return status;
}

//  After availability hold: refused, failed, or on to the payment.
static void
s_reserve_held (s_saga_t *saga, int status, json_t *reply)
{
    s_order_t *order = &saga->order;
    if (status == RESV_BAD_REQUEST || status == RESV_NOT_FOUND
    ||  status == RESV_CONFLICT || status == RESV_TOO_MANY) {
        //  Refused: this call held nothing. Another attempt may have.
        s_saga_failure (saga, status, s_error_field (reply, "reason", NULL),
                        S_TELL_AS_IS, "%s", s_error_field (reply, "message",
                                                      resv_strstatus (status)));
        json_decref (reply);
        s_saga_fail (saga, false, false);
        return;
    }
    if (status != RESV_OK) {
        bool undo = saga->resumed || s_dispatched (status, reply);
        s_reserve_unavailable (saga, "availability hold", status, reply, undo,
                               saga->resumed);
        return;
    }
    saga->hold = reply;         //  held points into it from now on
    s_held_t *held = &saga->held;
    if (!s_held_read (reply, held)) {
        s_saga_failure (saga, RESV_INTERNAL, RESV_REASON_INTERNAL,
                        S_TELL_OUTCOME, "availability hold of %s: reply "
                        "without resource price, owner, approval or slot",
                        order->id);
        s_saga_fail (saga, true, saga->resumed);
        return;
    }
    int64_t *amount = &saga->amount;
    if (__builtin_mul_overflow (held->price, order->units, amount)
    ||  __builtin_mul_overflow (*amount, order->days, amount)) {
        s_saga_failure (saga, RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                        S_TELL_OUTCOME, "amount too large: price %" PRId64
                        " x units %" PRId64 " x days %" PRId64, held->price,
                        order->units, order->days);
        s_saga_fail (saga, true, saga->resumed);
        return;
    }
    //  Authorise the payment.
    s_saga_call (saga, RESV_SERVICE_PAYMENT, RESV_METHOD_AUTHORIZE,
                 json_pack ("{s:s,s:s,s:I}", "reservation", order->id,
                            "customer", order->customer,
                            "amount", (json_int_t) *amount),
                 s_authorize_fields, s_reserve_authorized);
}

//  After payment authorize: store the reservation, or undo the hold.
static void
s_reserve_authorized (s_saga_t *saga, int status, json_t *payment)
{
    s_order_t *order = &saga->order;
    const char *payment_id = json_string_value (json_object_get (
        json_object_get (payment, "payment"), "id"));
    if (status == RESV_OK && payment_id) {
        zframe_t *answer = NULL;
        status = s_reserve_store (saga, payment_id, &answer);
        json_decref (payment);
        if (status == RESV_INTERNAL) {
            //  Nothing stored: its answer, once the undo is over.
            saga->fail_status = status;
            saga->fail_answer = answer;
            s_saga_fail (saga, true, true);
        }
        else
            s_saga_end (saga, status, &answer);
        return;
    }
    if (status == RESV_PAYMENT_DECLINED || status == RESV_CONFLICT
    ||  status == RESV_TOO_MANY) {
        //  Refused (declined; authorised before for another amount; queue
        //  full): nothing authorised by this call.
        s_saga_failure (saga, status,
                        s_error_field (payment, "reason",
                                       status == RESV_PAYMENT_DECLINED?
                                       RESV_REASON_PAYMENT_DECLINED: NULL),
                        S_TELL_AS_IS, "%s", s_error_field (payment, "message",
                                                      resv_strstatus (status)));
        json_decref (payment);
        s_saga_fail (saga, true, saga->resumed);
    }
    else
    if (status >= 500)
        s_reserve_unavailable (saga, "payment authorize", status, payment,
                               true, saga->resumed
                                     || s_dispatched (status, payment));
    else {
        //  A success without a payment id, or a refusal of our own
        //  request: payment and reservation disagree on the protocol.
        s_saga_failure (saga, RESV_INTERNAL, RESV_REASON_INTERNAL,
                        S_TELL_OUTCOME, "payment authorize of %s: unexpected "
                        "reply (%d: %s)", order->id, status,
                        s_error_field (payment, "message", "no payment id"));
        json_decref (payment);
        s_saga_fail (saga, true, true);
    }
}


//  --------------------------------------------------------------------------
//  cancel, expire, get

static int
s_read_id (json_t *request, const char **keys, const char **id_p,
           const char **customer_p, zframe_t **reply_p)
{
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "id", true, id_p, reply_p)
    ||  (customer_p
         && field_token (request, "customer", true, customer_p, reply_p)))
        return -1;
    return 0;
}

static int
s_cancel_method (void *state, json_t *request, int64_t deadline,
                 zframe_t **reply_p)
{
    s_self_t *self = (s_self_t *) state;
    (void) deadline;
    const char *keys [] = { "id", "customer", NULL };
    const char *id, *customer;
    if (s_read_id (request, keys, &id, &customer, reply_p))
        return RESV_BAD_REQUEST;
    return s_move_request (self, &s_cancel, id, customer, NULL, reply_p);
}

static int
s_expire_method (void *state, json_t *request, int64_t deadline,
                 zframe_t **reply_p)
{
    s_self_t *self = (s_self_t *) state;
    (void) deadline;
    const char *keys [] = { "id", NULL };
    const char *id;
    if (s_read_id (request, keys, &id, NULL, reply_p))
        return RESV_BAD_REQUEST;
    return s_move_request (self, &s_expire, id, NULL, S_EXPIRED_REASON, reply_p);
}

//  decide {id, decision, reason?}: the owner's decision, made to take
//  effect by approval's handler once its event is journaled, rather than
//  only when the event comes back through the journal: so that a decision
//  that a cancel or an expiry beat is answered 409, not 200. The event,
//  applied later, finds the move done and does nothing more. A decision
//  that did move the reservation (table decisions) is answered 200 with
//  the reservation as it is now, even when a cancel has moved it on.
static int
s_decide_method (void *state, json_t *request, int64_t deadline,
                 zframe_t **reply_p)
{
    s_self_t *self = (s_self_t *) state;
    (void) deadline;
    const char *keys [] = { "id", "decision", "reason", NULL };
    const char *decisions [] = { "approved", "declined", NULL };
    const char *id, *decision, *reason = NULL;
    if (s_read_id (request, keys, &id, NULL, reply_p)
    ||  field_choice (request, "decision", true, decisions, &decision,
                      reply_p)
    ||  field_string (request, "reason", false, 0, &reason, reply_p))
        return RESV_BAD_REQUEST;
    bool approved = streq (decision, "approved");
    if (!approved && (!reason || !*reason))
        reason = SVC_DECLINED_REASON;
    int status = s_move_request (self, approved? &s_confirm: &s_decline, id,
                                 NULL, approved? NULL: reason, reply_p);
    if (status != RESV_CONFLICT)
        return status;
    //  Not PENDING: this decision may still be what moved it, through the
    //  consumer, before a cancel moved it on (all between approval's
    //  publish of the decision and this call). Then it took effect.
    char *taken = NULL, *text = NULL;
    sqlite3_stmt *stmt = store_stmt (self->store, s_sql_decision_get);
    int found = -1;
    if (stmt) {
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        found = s_texts (stmt, &taken, 1);
    }
    if (found == 1 && streq (taken, decision))
        found = s_load_text (self->store, id, &text) == 1? 1: -1;
    bool took_effect = found == 1 && text;
    free (taken);
    if (found < 0 || took_effect)
        zframe_destroy (reply_p);
    if (found < 0)
        return S_FAIL (self->store, reply_p, "read the decision on", id);
    if (took_effect) {
        *reply_p = worker_text (text);
        return RESV_OK;
    }
    return status;
}

static int
s_get_method (void *state, json_t *request, int64_t deadline,
              zframe_t **reply_p)
{
    s_self_t *self = (s_self_t *) state;
    (void) deadline;
    const char *keys [] = { "id", NULL };
    const char *id;
    if (s_read_id (request, keys, &id, NULL, reply_p))
        return RESV_BAD_REQUEST;
    char *text;
    int found = s_load_text (self->store, id, &text);
    if (found < 0)
        return S_FAIL (self->store, reply_p, "load", id);
    if (!found)
        return worker_fail (reply_p, RESV_NOT_FOUND, RESV_REASON_NOT_FOUND,
                       "no reservation '%s'", id);
    *reply_p = worker_text (text);
    return RESV_OK;
}

static const worker_method_t s_methods [] = {
    { RESV_METHOD_RESERVE, s_reserve_method },
    { RESV_METHOD_CANCEL, s_cancel_method },
    { RESV_METHOD_EXPIRE, s_expire_method },
    { RESV_METHOD_DECIDE, s_decide_method },
    { RESV_METHOD_GET, s_get_method },
    { NULL, NULL }
};

int
svc_reservation (void *state, const char *method, zframe_t **body_p,
                 int64_t deadline, zframe_t **reply_p)
{
    return worker_dispatch (s_methods, "reservation", state, method, body_p,
                            deadline, reply_p);
}


//  --------------------------------------------------------------------------
//  The events actor's work: the consumer and the saga sweep

//  The event types the consumer applies: the owner's (or auto) decisions,
//  and what became of the payment, so that the reservation the service
//  answers with (a cancel's reply, its events) says it. It takes them one
//  type at a time (by_type): a reservation gets one decision, and its
//  payment status only moves forward, so their order does not matter.
static const char *s_types [] = {
    "approval.approved", "approval.declined",
    "payment.captured", "payment.voided", "payment.refunded", NULL
};

//  What s_apply reads of an event.
static const char *s_fields [] = {
    "id", "reservation", "data.reason", NULL
};

//  payment.captured|voided|refunded: the reservation's payment status,
//  when it moves it forward. A payment of a reserve that was never stored
//  (voided by its compensation) names no reservation here: nothing to do.
static int
s_apply_payment (store_t *store, const char *type, const char *id)
{
    sqlite3_stmt *stmt = store_stmt (store, s_sql_payment);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, type + strlen ("payment."), -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        zsys_error ("reservation: %s %s: %s", type, id, store_error (store));
        return -1;
    }
    return 0;
}

//  Applies approval.approved (PENDING -> CONFIRMED), approval.declined
//  (PENDING -> DECLINED) and the payment events. A decision on a
//  reservation that left PENDING meanwhile (a cancel came first) is
//  ignored.
static int
s_apply (void *state, store_t *store, const char *type, json_t *event)
{
    (void) state;
    const char *id = json_string_value (json_object_get (event, "reservation"));
    const char *cause = json_string_value (json_object_get (event, "id"));
    if (!id || !cause) {
        //  Retrying cannot mend it; holding up every later event would
        //  not either.
        zsys_warning ("reservation: skipping a %s without reservation or id",
                      type);
        return 0;
    }
    if (strncmp (type, "payment.", strlen ("payment.")) == 0)
        return s_apply_payment (store, type, id);
    bool approved = streq (type, "approval.approved");
    if (!approved && !streq (type, "approval.declined"))
        return 0;
    const char *reason = NULL;
    if (!approved) {
        reason = json_string_value (json_object_get (
                                    json_object_get (event, "data"), "reason"));
        if (!reason || !*reason)
            reason = SVC_DECLINED_REASON;
    }
    char *result;
    json_t *error;
    bool emitted;
    int status = s_move (store, approved? &s_confirm: &s_decline, id, NULL,
                         reason, cause, &result, &error, &emitted);
    if (status == RESV_INTERNAL)
        zsys_error ("reservation: %s %s: %s", type, id,
                    s_error_field (error, "message", ""));
    else
    if (status != RESV_OK)      //  No longer PENDING (or unknown): ignored
        zsys_info ("reservation: %s %s ignored: %s", type, id,
                   s_error_field (error, "message", ""));
    zstr_free (&result);
    json_decref (error);
    return status == RESV_INTERNAL? -1: 0;
}

//  What s_sweep_claim found.
typedef enum {
    S_SWEEP_CLAIMED,            //  The undo is the sweep's
    S_SWEEP_UNDER_WAY,          //  An attempt or an undo still runs
    S_SWEEP_STORED,             //  The reservation is stored: keep all
    S_SWEEP_GONE,               //  The row went, or a retry began anew
    S_SWEEP_FAILED = -1         //  A store failure (logged)
} s_sweep_claim_t;

//  Claims the undo of abandoned reserve id, whose saga row the sweep read
//  with started_ms, unless that is over: everything is looked at again in
//  the claim's own transaction, since an attempt may have stored the
//  reservation (and deleted the row) since the sweep read it; the undo of
//  a reservation stored so released its hold and voided its payment.
static s_sweep_claim_t
s_sweep_claim (store_t *store, const char *id, int64_t started_ms)
{
    if (store_begin (store))
        return S_SWEEP_FAILED;
    int stored = -1, row = -1, live = -1;
    int64_t ignored;
    sqlite3_stmt *stmt = store_stmt (store, s_sql_exists);
    if (stmt) {
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        stored = s_int_row (stmt, &ignored, NULL);
    }
    if (stored == 0 && (stmt = store_stmt (store, s_sql_saga_is))) {
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, started_ms);
        row = s_int_row (stmt, &ignored, NULL);
    }
    if (row == 1 && (stmt = store_stmt (store, s_sql_attempt_live))) {
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, resv_time_ms ());
        live = s_int_row (stmt, &ignored, NULL);
    }
    s_sweep_claim_t found =
        stored == 1? S_SWEEP_STORED:
        stored == 0 && row == 0? S_SWEEP_GONE:
        row == 1 && live == 1? S_SWEEP_UNDER_WAY:
        row == 1 && live == 0? S_SWEEP_CLAIMED: S_SWEEP_FAILED;
    if (found == S_SWEEP_CLAIMED
    &&  (s_attempt_claim (store, id, 2 * S_UNDO_MIN + S_UNDO_SLACK)
         || store_commit (store)))
        found = S_SWEEP_FAILED;
    if (found == S_SWEEP_FAILED)
        zsys_error ("reservation: claim the undo of %s: %s", id,
                    store_error (store));
    if (found != S_SWEEP_CLAIMED)
        store_rollback (store);
    return found;
}

//  Undoes reserves that died half-way: saga rows older than any request
//  can live, or whose attempts' times are over with one of them not ended
//  (s_sql_saga_due), whose reservation was never stored. They are rare:
//  the rest of a full batch waits for the next sweep (returns false).
static bool
s_sweep (void *state, store_t *store, events_caller_t *events)
{
    s_self_t *self = (s_self_t *) state;
    sqlite3_stmt *stmt = store_stmt (store, s_sql_saga_due);
    if (!stmt)
        return false;
    int64_t now = resv_time_ms ();
    sqlite3_bind_int64 (stmt, 1, now - self->abandon_ms);
    sqlite3_bind_int (stmt, 2, S_SWEEP_BATCH);
    sqlite3_bind_int64 (stmt, 3, now);
    //  Collect first: no statement stays open across the calls below.
    zlist_t *due = zlist_new ();
    zlist_autofree (due);
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        char *entry = zsys_sprintf ("%" PRId64 " %s",
            (int64_t) sqlite3_column_int64 (stmt, 1),
            (const char *) sqlite3_column_text (stmt, 0));
        zlist_append (due, entry);
        zstr_free (&entry);
    }
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        zsys_error ("reservation: read sagas: %s", store_error (store));
    s_caller_t caller = { s_events_call, events };
    //  Once told to stop (SIGTERM, zsys_interrupted, or the actor's stop)
    //  no undo starts: its calls may wait for a broker that does not
    //  answer, and one after the other held the stop past its time for the
    //  broker (worker_stop_wait). An undo under way when the stop comes
    //  waits only until that time is over (events_call): its calls then
    //  fail 503, at once for those made after it. Its row, like those not
    //  begun, waits for the next sweep, here or in another process; void
    //  and release are idempotent, so one that was done after all is done
    //  again harmlessly.
    for (char *entry = (char *) zlist_first (due);
         entry && !zsys_interrupted && !events_stopping (events);
         entry = (char *) zlist_next (due)) {
        char *id = strchr (entry, ' ') + 1;
        int64_t started_ms = atoll (entry);
        //  A stored reservation owns its hold and payment: keep them.
        //  An attempt that is still under way (its worker slow, not
        //  dead), or an undo, keeps the rest; a claim keeps new attempts
        //  out while this undoes.
        s_sweep_claim_t found = s_sweep_claim (store, id, started_ms);
        if (found == S_SWEEP_UNDER_WAY || found == S_SWEEP_GONE
        ||  found == S_SWEEP_FAILED)
            continue;           //  The next sweep looks again, if it must
        if (found == S_SWEEP_CLAIMED) {
            zsys_info ("reservation: undoing the abandoned reserve %s", id);
            if (s_undo (&caller, id, true, S_UNDO_MIN)) {
                //  A call the stop gave up on may still be done, its
                //  deadline not over: the claim then stays until it
                //  lapses, or a new attempt let in meanwhile could have
                //  the hold it makes released by that call, and store a
                //  reservation on nothing. Else the calls are over.
                if (!events_stopping (events))
                    s_attempt_unclaim (store, id);
                continue;       //  The next sweep tries again
            }
        }
        if (s_saga_close (store, id, started_ms))
            zsys_error ("reservation: close saga %s: %s", id,
                        store_error (store));
    }
    zlist_destroy (&due);
    return false;
}


//  --------------------------------------------------------------------------
//  State

void *
svc_reservation_new (resv_cfg_t *cfg, worker_t *worker)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    self->call = s_worker_call;
    self->call_arg = worker;
    int64_t max_timeout = resv_cfg_int (cfg, "broker/max_timeout", 60000,
                                        1, INT32_MAX);
    self->abandon_ms = resv_cfg_int (cfg, "reservation/abandon",
                                     max_timeout + S_ABANDON_SLACK, 0,
                                     INT32_MAX);
    self->store = store_new (cfg, "reservation", s_schema);
    store_keep_alive (self->store, worker);
    if (self->store) {
        events_config_t config = {
            .store = "reservation", .schema = s_schema,
            .consumer = "reservation", .apply = s_apply, .types = s_types,
            .fields = s_fields, .by_type = true, .tick = s_sweep,
            .tick_ms = (int) resv_cfg_int (cfg, "reservation/sweep",
                                           S_SWEEP_DEFAULT, 10, INT32_MAX),
            .state = self
        };
        self->events = events_new (cfg, &config);
    }
    if (!self->store || !self->events) {
        zsys_error ("reservation: cannot start the service");
        void *state = self;
        svc_reservation_destroy (&state);
        return NULL;
    }
    //  Reserves come in bursts, and so do the replies they wait on: the
    //  saga rows of a burst, and then its reservations, share one commit.
    //  The holds of a burst leave once its saga rows are committed.
    self->batch = (events_batch_t) { self->store, self->events };
    worker_set_batch (worker, events_batch_begin, events_batch_end, &self->batch);
    return self;
}

void
svc_reservation_set_caller (void *state, svc_call_fn *call, void *arg)
{
    s_self_t *self = (s_self_t *) state;
    if (!self)
        return;
    self->call = call? call: s_worker_call;
    self->call_arg = arg;
}

void
svc_reservation_destroy (void **state_p)
{
    if (!state_p || !*state_p)
        return;
    s_self_t *self = (s_self_t *) *state_p;
    //  The actor first: its thread uses self.
    events_destroy (&self->events);
    store_destroy (&self->store);
    free (self);
    *state_p = NULL;
}
