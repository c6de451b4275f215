/*  svc_approval.c: approval, the owner's decision on each reservation
    (doc/saga.md, svc.h).

    The consumer records every reservation.requested: a resource with
    approval "auto" is approved at once (approval.approved, its id derived
    from the request's event); a "manual" one waits, with its deadline
    (the request's time plus approval/timeout) in the store. approve and
    decline record the owner's decision and emit it in one transaction,
    journal the event themselves, then have reservation decide move the
    reservation, whose 409 (a cancel or an expiry came first) is theirs.
    reservation.cancelled closes a row: whatever comes later is refused
    with 409. The reservation's other ends need nothing here: a
    confirmation or a decline follows this service's own decision, which
    refuses another already, and an expiry is closed by the tick that
    asked for it (or, when an owner decided while the tick was at it, by
    that decision, which alone learns whether it won). So the consumer
    takes its two types alone (by type) and hears one event of a
    reservation that is confirmed and kept, not two.

    The events actor's tick expires rows past their deadline through
    reservation expire. Deadlines live in the store, so a restart, or a
    time with no approval process at all, loses none: they expire late.
*/

#include "svc.h"
#include "store.h"
#include "events.h"
#include "fields.h"
#include "resv_util.h"

//  A store failure in a handler: logged, rolled back, answered 500.
#define S_FAIL(store, reply_p, operation, subject) \
    store_fail (store, reply_p, "approval", operation, subject)

//  Defaults of approval/timeout and approval/tick, ms.
#define S_TIMEOUT_DEFAULT   86400000
#define S_TICK_DEFAULT      1000
//  Rows one tick expires at most; the rest come in the next round, at once.
#define S_EXPIRE_BATCH      100
//  Deadline of one expire call, ms.
#define S_EXPIRE_TIMEOUT    5000
//  Longest a decision waits to take effect (its publish, then reservation
//  decide), ms, of what is left of its request's deadline.
#define S_DECIDE_TIMEOUT    5000
//  How long a decision on an unknown reservation waits for it to reach
//  the journal (ms): the first wait, doubled each time, up to the most,
//  and leaving at least the margin before the request's deadline.
#define S_CATCH_UP_FIRST    10
#define S_CATCH_UP_MAX      500
#define S_CATCH_UP_MARGIN   100
//  Longest status word kept in a row ("CANCELLED"), and its NUL.
#define S_WORD_SIZE         16


static const char s_schema [] =
    "CREATE TABLE IF NOT EXISTS approvals ("
    "    reservation TEXT PRIMARY KEY,"
    "    owner       TEXT NOT NULL,"
    "    mode        TEXT NOT NULL CHECK (mode IN ('auto', 'manual')),"
    //  Wall-clock ms after which an undecided row expires.
    "    deadline_ms INTEGER NOT NULL,"
    "    decision    TEXT CHECK (decision IN ('approved', 'declined')),"
    "    reason      TEXT,"
    //  The reservation's status once it left PENDING, as its events say.
    "    outcome     TEXT,"
    "    updated_at  TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS approvals_due ON approvals (deadline_ms)"
    "    WHERE decision IS NULL AND outcome IS NULL;";

static const char s_sql_insert [] =
    "INSERT INTO approvals (reservation, owner, mode, deadline_ms, decision,"
    "       updated_at)"
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (reservation) DO NOTHING";
//  A cancellation heard before its request (the two types come apart only
//  after a lost event) leaves a closed row with no owner, so that the
//  request, when it comes, opens nothing and approves nothing.
static const char s_sql_outcome [] =
    "INSERT INTO approvals (reservation, owner, mode, deadline_ms, outcome,"
    "       updated_at)"
    "VALUES (?1, '', 'manual', 0, ?2, ?3) ON CONFLICT (reservation)"
    "    DO UPDATE SET outcome = excluded.outcome,"
    "    updated_at = excluded.updated_at";
static const char s_sql_outcome_if_open [] =
    "UPDATE approvals SET outcome = ?2, updated_at = ?3"
    " WHERE reservation = ?1 AND outcome IS NULL";
//  The tick's close: a row an owner decided since the tick picked it is
//  the decision's to close (s_take_effect), which learns who won.
static const char s_sql_outcome_if_undecided [] =
    "UPDATE approvals SET outcome = ?2, updated_at = ?3"
    " WHERE reservation = ?1 AND outcome IS NULL AND decision IS NULL";
static const char s_sql_row [] =
    "SELECT owner, decision, outcome, deadline_ms FROM approvals"
    " WHERE reservation = ?1";
static const char s_sql_decide [] =
    "UPDATE approvals SET decision = ?2, reason = ?3, updated_at = ?4"
    " WHERE reservation = ?1 AND decision IS NULL AND outcome IS NULL";
static const char s_sql_due [] =
    "SELECT reservation FROM approvals"
    " WHERE decision IS NULL AND outcome IS NULL AND deadline_ms <= ?1"
    " ORDER BY deadline_ms LIMIT ?2";

//  The service's state, one per worker process.
typedef struct {
    store_t *store;             //  This (main) thread's connection
    zactor_t *events;           //  Relay, consumer and expiry tick
    worker_t *worker;           //  A decision's publish and reservation
                                //  decide, heartbeating while they wait
    resv_t *client;             //  Journal reads of the handler's catch-up
    int64_t timeout_ms;         //  approval/timeout
} s_self_t;

//  Which rows s_close closes.
typedef enum {
    S_CLOSE_ANY,                //  Any, and a missing one is made, closed
    S_CLOSE_OPEN,               //  One whose outcome is not set yet
    S_CLOSE_UNDECIDED           //  One open that no owner decided on
} s_close_t;

//  What a decision needs to know of a row.
typedef struct {
    bool owned;                 //  The owner asking is the row's
    char decision [S_WORD_SIZE];    //  "" while undecided
    char outcome [S_WORD_SIZE]; //  "" while the reservation is PENDING
    int64_t deadline_ms;        //  Wall clock
} s_row_t;


//  --------------------------------------------------------------------------
//  Helpers

//  Reads count decimal digits at text. Returns -1 if they are not digits.
static int
s_digits (const char *text, int count)
{
    int value = 0;
    for (int i = 0; i < count; i++) {
        if (text [i] < '0' || text [i] > '9')
            return -1;
        value = value * 10 + text [i] - '0';
    }
    return value;
}

//  Parses an RFC 3339 UTC time stamp as resv writes them,
//  "2026-11-28T23:40:00.123Z", into wall-clock ms. Returns true on success.
static bool
s_time_parse (const char *text, int64_t *ms_p)
{
    if (!text || strlen (text) != RESV_TIME_SIZE - 1 || text [10] != 'T'
    ||  text [13] != ':' || text [16] != ':' || text [19] != '.'
    ||  text [23] != 'Z')
        return false;
    char date [11];
    memcpy (date, text, 10);
    date [10] = 0;
    int64_t day;
    int hours = s_digits (text + 11, 2);
    int minutes = s_digits (text + 14, 2);
    int seconds = s_digits (text + 17, 2);
    int millis = s_digits (text + 20, 3);
    if (!resv_date_parse (date, &day) || hours < 0 || hours > 23
    ||  minutes < 0 || minutes > 59 || seconds < 0 || seconds > 60
    ||  millis < 0)
        return false;
    *ms_p = ((day * 24 + hours) * 60 + minutes) * 60000 + seconds * 1000
          + millis;
    return true;
}

//  Sets the outcome of reservation id, in the current transaction if any,
//  on the rows which says (a row it leaves alone is no failure). Returns 0
//  or -1.
static int
s_close (store_t *store, const char *id, const char *outcome, s_close_t which)
{
    char now [RESV_TIME_SIZE];
    sqlite3_stmt *stmt = store_stmt (store,
        which == S_CLOSE_ANY? s_sql_outcome:
        which == S_CLOSE_OPEN? s_sql_outcome_if_open:
                               s_sql_outcome_if_undecided);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, outcome, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, resv_time_now (now), -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        zsys_error ("approval: close %s as %s: %s", id, outcome,
                    store_error (store));
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  The consumer

//  Records a reservation.requested; approves an auto one at once.
static int
s_requested (s_self_t *self, store_t *store, const char *id,
             const char *cause, json_t *event)
{
    json_t *data = json_object_get (event, "data");
    const char *owner = json_string_value (json_object_get (data, "owner"));
    const char *mode = json_string_value (json_object_get (data, "approval"));
    if (!owner || !mode || !(streq (mode, "auto") || streq (mode, "manual"))) {
        //  Retrying cannot mend it, and it must not hold up what follows.
        zsys_warning ("approval: skipping the reservation.requested of %s: "
                      "no owner or approval mode", id);
        return 0;
    }
    bool automatic = streq (mode, "auto");
    int64_t requested_ms;
    if (!s_time_parse (json_string_value (json_object_get (event, "at")),
                       &requested_ms))
        requested_ms = resv_time_ms ();
    char now [RESV_TIME_SIZE];
    sqlite3_stmt *stmt = store_stmt (store, s_sql_insert);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, mode, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, requested_ms + self->timeout_ms);
    if (automatic)
        sqlite3_bind_text (stmt, 5, "approved", -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 6, resv_time_now (now), -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        zsys_error ("approval: insert %s: %s", id, store_error (store));
        return -1;
    }
    if (!automatic || sqlite3_changes (store_db (store)) == 0)
        return 0;
    return store_emit_caused (store, cause, "approval.approved", "reservation",
                              id, id, json_pack ("{s:s,s:b}", "owner", owner,
                                                 "auto", 1));
}

//  The event types the consumer applies, one by one (by type):
//  reservation.requested opens a decision, reservation.cancelled closes
//  one. Their order does not matter (s_sql_outcome).
static const char *s_types [] = {
    "reservation.requested", "reservation.cancelled", NULL
};

//  What s_apply and s_requested read of an event.
static const char *s_fields [] = {
    "id", "reservation", "at", "data.owner", "data.approval", NULL
};

//  Applies reservation.requested (a new row) and reservation.cancelled
//  (the row's outcome).
static int
s_apply (void *state, store_t *store, const char *type, json_t *event)
{
    s_self_t *self = (s_self_t *) state;
    const char *id = json_string_value (json_object_get (event, "reservation"));
    const char *cause = json_string_value (json_object_get (event, "id"));
    if (!id || !cause) {
        zsys_warning ("approval: skipping a %s without reservation or id", type);
        return 0;
    }
    if (streq (type, "reservation.requested"))
        return s_requested (self, store, id, cause, event);
    if (streq (type, "reservation.cancelled"))
        return s_close (store, id, "CANCELLED", S_CLOSE_ANY);
    return 0;
}


//  --------------------------------------------------------------------------
//  The tick: expiry

//  Expires, through reservation expire, the undecided rows past their
//  deadline. A reservation service that does not answer stops the round;
//  the next tick tries again. After SIGTERM (zsys_interrupted) no expire
//  starts, and one under way waits for a broker that does not answer only
//  until the stop's time for it is over (worker_stop_wait; events_call),
//  not its whole S_EXPIRE_TIMEOUT: it then fails 503, and its row stays
//  open, for the next start or another approval process to ask again.
//  Asking again is safe: an expire that was done after all is answered
//  200 again, and one beaten by a decision or a cancel 409, which closes
//  the row as below. Returns true when it closed a whole batch: the rest
//  comes at once.
static bool
s_expire_due (void *state, store_t *store, events_caller_t *caller)
{
    (void) state;
    sqlite3_stmt *stmt = store_stmt (store, s_sql_due);
    if (!stmt)
        return false;
    sqlite3_bind_int64 (stmt, 1, resv_time_ms ());
    sqlite3_bind_int (stmt, 2, S_EXPIRE_BATCH);
    //  Collect first: no statement stays open across the calls below.
    zlist_t *due = zlist_new ();
    zlist_autofree (due);
    size_t closed = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        zlist_append (due, (void *) sqlite3_column_text (stmt, 0));
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        zsys_error ("approval: read due decisions: %s", store_error (store));
    for (const char *id = (const char *) zlist_first (due);
         id && !zsys_interrupted; id = (const char *) zlist_next (due)) {
        json_t *request = json_pack ("{s:s}", "id", id);
        json_t *reply = NULL;
        int status = events_call (caller, RESV_SERVICE_RESERVATION,
                                  RESV_METHOD_EXPIRE, request,
                                  S_EXPIRE_TIMEOUT, &reply);
        json_decref (request);
        //  The row is closed now rather than when reservation.expired
        //  comes, so that the next tick does not ask again; unless an
        //  owner decided on it since it was picked (the decision checked
        //  the deadline just before it passed). The reservation is then
        //  the decision's (this 409) or the expiry's, and the decision's
        //  decide, which says which, closes the row: closed "CLOSED" here
        //  first, it refused a repeat of a decision that had won (409).
        const char *outcome =
            status == RESV_OK? json_string_value (json_object_get (reply, "status")):
            status == RESV_CONFLICT? "CLOSED":
            status == RESV_NOT_FOUND? "UNKNOWN": NULL;
        if (status != RESV_OK)
            zsys_warning ("approval: expire %s: %d %s", id, status,
                          json_string_value (json_object_get (json_object_get (
                              reply, "error"), "message")));
        if (outcome && s_close (store, id, outcome, S_CLOSE_UNDECIDED) == 0)
            closed++;
        json_decref (reply);
        if (!outcome)
            break;
    }
    bool more = closed == S_EXPIRE_BATCH;
    zlist_destroy (&due);
    return more;
}


//  --------------------------------------------------------------------------
//  approve, decline

//  Reads the row of reservation id. Returns 1 (found, *row set), 0 (not
//  found) or -1 (store failure).
static int
s_row_read (store_t *store, const char *id, const char *owner, s_row_t *row)
{
    sqlite3_stmt *stmt = store_stmt (store, s_sql_row);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        const char *decision = (const char *) sqlite3_column_text (stmt, 1);
        const char *outcome = (const char *) sqlite3_column_text (stmt, 2);
        const char *stored = (const char *) sqlite3_column_text (stmt, 0);
        //  A row closed before its request came has no owner: its outcome
        //  refuses every decision (409), whoever asks.
        row->owned = !*stored || streq (owner, stored);
        snprintf (row->decision, sizeof row->decision, "%s",
                  decision? decision: "");
        snprintf (row->outcome, sizeof row->outcome, "%s", outcome? outcome: "");
        row->deadline_ms = sqlite3_column_int64 (stmt, 3);
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW? 1: rc == SQLITE_DONE? 0: -1;
}

//  Whether the reservation service has reservation id: it stores a
//  reservation and its reservation.requested in one transaction, so a
//  reservation it has is on its way to the journal. 1, 0 when it has none
//  (404, or 400 for an id it could never have given), -1 when it cannot
//  tell (then the decision waits as for one it has).
static int
s_reservation_has (s_self_t *self, const char *id, int timeout)
{
    json_t *request = json_pack ("{s:s}", "id", id);
    int status = request? worker_call (self->worker, RESV_SERVICE_RESERVATION,
                                       RESV_METHOD_GET, request, timeout, NULL)
                        : RESV_INTERNAL;
    json_decref (request);
    return status == RESV_OK? 1:
           status == RESV_NOT_FOUND || status == RESV_BAD_REQUEST? 0: -1;
}

//  Page callback of the catch-up's replay: heartbeats go on. A catch-up
//  is short (one reservation's type), and runs to its end in a stop too.
static int
s_keepalive (void *worker)
{
    worker_keepalive ((worker_t *) worker);
    return 0;
}

//  Begins a transaction and reads the row of id into row. A reservation
//  this process has not heard of yet may be on its way still: a decision
//  can come right after the reserve's reply, before reservation's relay
//  has journaled reservation.requested (a few ms). So it catches up from
//  the journal; then, if the reservation service has the reservation
//  (s_reservation_has), again after short waits, for at most
//  S_CATCH_UP_MAX ms (and never past deadline), before it answers 404.
//  An id the reservation service does not have costs one catch-up and
//  that question, not the waits: the worker serves one request at a
//  time, and a run of decisions on made-up ids would stop every real one
//  behind it. (Asked of the id's time instead, a reserve retried after a
//  minute, stored under the id its first try was given, got 404.)
//  Returns 0 with the transaction open, or the status code with the reply
//  set and no transaction.
static int
s_row_begin (s_self_t *self, const char *id, const char *owner,
             int64_t deadline, s_row_t *row, zframe_t **reply_p)
{
    int64_t give_up = zclock_mono () + S_CATCH_UP_MAX;
    if (give_up > deadline - S_CATCH_UP_MARGIN)
        give_up = deadline - S_CATCH_UP_MARGIN;
    int wait = S_CATCH_UP_FIRST;
    int has = -1;               //  s_reservation_has, once asked
    for (int attempt = 0; ; attempt++) {
        if (store_begin (self->store))
            return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                           "approval: begin decision on %s: %s", id,
                           store_error (self->store));
        int found = s_row_read (self->store, id, owner, row);
        if (found < 0)
            return S_FAIL (self->store, reply_p, "read", id);
        if (found)
            return 0;
        store_rollback (self->store);
        if (attempt > 0) {
            //  The question takes half of what is left at most, and is
            //  followed by one catch-up at least: the event had its time
            //  to come meanwhile.
            int64_t left = give_up - zclock_mono ();
            if (attempt == 1)
                has = s_reservation_has (self, id,
                                         left / 2 > 20? (int) (left / 2): 20);
            if (has == 0 || (attempt > 1 && zclock_mono () + wait > give_up))
                break;
            zclock_sleep (wait);
            worker_keepalive (self->worker);
            wait *= 2;
        }
        //  The cursors are checked again in each of their transactions,
        //  so this races safely with the events actor.
        for (const char **type = s_types; *type; type++) {
            char consumer [64];
            snprintf (consumer, sizeof consumer, "approval/%s", *type);
            if (events_replay (self->client, self->store, consumer, *type,
                               s_apply, self, s_keepalive, self->worker))
                zsys_warning ("approval: catch-up of %s for %s failed",
                              *type, id);
        }
        events_flush (self->events);
    }
    return worker_fail (reply_p, RESV_NOT_FOUND, RESV_REASON_NOT_FOUND,
                   "no reservation '%s' awaits approval", id);
}

//  Records an owner's decision on the row of id and emits it, inside the
//  transaction s_row_begin opened, and commits; *event_p gets the event's
//  text as the outbox holds it (caller frees). Returns 0, or 500 with the
//  reply set and the transaction gone.
static int
s_record (s_self_t *self, const char *id, const char *owner,
          const char *decision, const char *reason, char **event_p,
          zframe_t **reply_p)
{
    bool approved = streq (decision, "approved");
    if (!approved && !reason)
        reason = SVC_DECLINED_REASON;
    char now [RESV_TIME_SIZE];
    sqlite3_stmt *stmt = store_stmt (self->store, s_sql_decide);
    if (!stmt)
        return S_FAIL (self->store, reply_p, "record decision on", id);
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, decision, -1, SQLITE_STATIC);
    if (reason)
        sqlite3_bind_text (stmt, 3, reason, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 4, resv_time_now (now), -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return S_FAIL (self->store, reply_p, "record decision on", id);
    json_t *data = approved?
        json_pack ("{s:s,s:b}", "owner", owner, "auto", 0):
        json_pack ("{s:s,s:s}", "owner", owner, "reason", reason);
    if (store_emit (self->store, approved? "approval.approved":
                                           "approval.declined",
                    "reservation", id, id, data))
        return S_FAIL (self->store, reply_p, "emit decision on", id);
    stmt = store_stmt (self->store, "SELECT event FROM outbox WHERE id = ?1");
    if (!stmt)
        return S_FAIL (self->store, reply_p, "read decision on", id);
    sqlite3_bind_int64 (stmt, 1,
                        sqlite3_last_insert_rowid (store_db (self->store)));
    rc = sqlite3_step (stmt);
    *event_p = rc == SQLITE_ROW
             ? strdup ((const char *) sqlite3_column_text (stmt, 0)): NULL;
    sqlite3_reset (stmt);
    if (!*event_p)
        return S_FAIL (self->store, reply_p, "read decision on", id);
    if (store_commit (self->store)) {
        zstr_free (event_p);
        return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                       "approval: commit decision on %s failed", id);
    }
    events_flush (self->events);
    return 0;
}

//  Makes the decision take effect now, so that its reply says whether it
//  won: the decision's event, journaled first (a publish of the outbox's
//  text; the relay's own send of it later is the same id, which the
//  journal keeps once), so that the journal still has approval.approved
//  before reservation.confirmed; then reservation decide, which moves the
//  reservation at once, or answers 409 when a cancel or an expiry came
//  first. The event, applied later, finds the move done. Returns 200, or
//  an error with *reply_p set: 409, or 503 when the outcome cannot be
//  known yet (the decision stands; a repeat asks again).
static int
s_take_effect (s_self_t *self, const char *id, const char *decision,
               const char *reason, const char *event, int64_t deadline,
               zframe_t **reply_p)
{
    int64_t left = deadline - zclock_mono ();
    int timeout = left < S_DECIDE_TIMEOUT? (int) left: S_DECIDE_TIMEOUT;
    if (timeout <= 0)
        return worker_fail (reply_p, RESV_TIMEOUT, RESV_REASON_DEADLINE,
                       "approval: the decision on %s is recorded; its "
                       "deadline passed before it took effect", id);
    int status = RESV_OK;
    if (event) {
        char *body = zsys_sprintf ("{\"events\":[%s]}", event);
        status = body? worker_call_raw (self->worker, RESV_SERVICE_EVENTS,
                                        RESV_METHOD_PUBLISH, body,
                                        strlen (body), timeout, NULL)
                     : RESV_INTERNAL;
        zstr_free (&body);
    }
    json_t *reply = NULL;
    if (status == RESV_OK) {
        json_t *request = json_pack ("{s:s,s:s,s:s?}", "id", id,
                                     "decision", decision, "reason", reason);
        status = request? worker_call (self->worker, RESV_SERVICE_RESERVATION,
                                       RESV_METHOD_DECIDE, request, timeout,
                                       &reply)
                        : RESV_INTERNAL;
        json_decref (request);
    }
    const char *message = json_string_value (json_object_get (
        json_object_get (reply, "error"), "message"));
    if (status == RESV_CONFLICT) {
        //  A cancel or an expiry won: the row closes, and a repeat of the
        //  decision gets 409 from the row alone.
        s_close (self->store, id, "CLOSED", S_CLOSE_OPEN);
        worker_fail (reply_p, RESV_CONFLICT, RESV_REASON_CONFLICT, "%s",
                     message? message: "no longer PENDING");
    }
    else
    if (status != RESV_OK) {
        zsys_warning ("approval: decision on %s not applied yet: %d %s", id,
                      status, message? message: "");
        worker_fail (reply_p, RESV_UNAVAILABLE, RESV_REASON_INTERNAL,
                     "approval: the decision on %s is recorded, but what "
                     "became of it is not known yet (%d: %s); ask again",
                     id, status, message? message: resv_strstatus (status));
        status = RESV_UNAVAILABLE;
    }
    json_decref (reply);
    return status;
}

//  The reply to a decision taken (or taken before, the same).
static int
s_decided (const char *id, const char *decision, zframe_t **reply_p)
{
    *reply_p = worker_json (json_pack ("{s:s,s:s}", "reservation", id,
                                       "decision", decision));
    return RESV_OK;
}

//  The decision event of id still in the outbox (not yet acknowledged by
//  the journal, or not yet pruned), as text into *event_p, or NULL when
//  it is gone, and so journaled: a repeat publishes it again before
//  reservation decide, as the first try did. Returns 0, or -1 when the
//  store cannot tell (the decide would then risk coming first).
static int
s_unsent_event (s_self_t *self, const char *id, const char *decision,
                char **event_p)
{
    *event_p = NULL;
    sqlite3_stmt *stmt = store_stmt (self->store,
        "SELECT event FROM outbox WHERE event ->> '$.reservation' = ?1"
        " AND event ->> '$.type' = ?2");
    if (!stmt)
        return -1;
    char type [32];
    snprintf (type, sizeof type, "approval.%s", decision);
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, type, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW)
        *event_p = strdup ((const char *) sqlite3_column_text (stmt, 0));
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE || (rc == SQLITE_ROW && *event_p)? 0: -1;
}

static int
s_decide (s_self_t *self, json_t *request, const char *decision,
          int64_t deadline, zframe_t **reply_p)
{
    const char *keys [] = { "id", "owner", "reason", NULL };
    const char *id, *owner, *reason = NULL;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "id", true, &id, reply_p)
    ||  field_token (request, "owner", true, &owner, reply_p)
    ||  field_string (request, "reason", false, 0, &reason, reply_p))
        return RESV_BAD_REQUEST;
    s_row_t row;
    int status = s_row_begin (self, id, owner, deadline, &row, reply_p);
    if (status)
        return status;
    const char *own = streq (decision, "approved")? "CONFIRMED": "DECLINED";
    //  A repeat of the decision taken, whose outcome is not known yet (the
    //  first try could not learn it), goes on to take effect as the first.
    bool unsettled = streq (row.decision, decision) && !*row.outcome;
    if (!row.owned || (*row.decision && !unsettled) || *row.outcome
    ||  (!unsettled && resv_time_ms () >= row.deadline_ms)) {
        store_rollback (self->store);
        if (!row.owned)
            return worker_fail (reply_p, RESV_FORBIDDEN, RESV_REASON_FORBIDDEN,
                           "only the owner of the resource may decide on "
                           "reservation %s", id);
        //  A repeat is answered as the first time only while the outcome
        //  is still the decision's own: approving a reservation that was
        //  confirmed and then cancelled is a conflict, not a repeat.
        if (streq (row.decision, decision) && streq (row.outcome, own))
            return s_decided (id, decision, reply_p);
        if (*row.decision && !streq (row.decision, decision))
            return worker_fail (reply_p, RESV_CONFLICT, RESV_REASON_CONFLICT,
                           "reservation %s was %s already", id, row.decision);
        if (*row.outcome)
            return worker_fail (reply_p, RESV_CONFLICT, RESV_REASON_CONFLICT,
                           "reservation %s is %s, no longer PENDING", id,
                           row.outcome);
        return worker_fail (reply_p, RESV_CONFLICT, RESV_REASON_CONFLICT,
                       "reservation %s is past its approval deadline", id);
    }
    char *event = NULL;
    if (unsettled) {
        store_rollback (self->store);
        if (s_unsent_event (self, id, decision, &event))
            return S_FAIL (self->store, reply_p, "read decision on", id);
    }
    else
    if ((status = s_record (self, id, owner, decision, reason, &event,
                            reply_p)))
        return status;
    status = s_take_effect (self, id, decision, reason, event, deadline,
                            reply_p);
    free (event);
    if (status != RESV_OK)
        return status;
    //  Settled: a repeat is answered from the row from now on (and gets
    //  409 once a cancel of the confirmed reservation closes it).
    s_close (self->store, id, own, S_CLOSE_OPEN);
    return s_decided (id, decision, reply_p);
}

static int
s_approve (void *state, json_t *request, int64_t deadline, zframe_t **reply_p)
{
    return s_decide ((s_self_t *) state, request, "approved", deadline,
                     reply_p);
}

static int
s_decline (void *state, json_t *request, int64_t deadline, zframe_t **reply_p)
{
    return s_decide ((s_self_t *) state, request, "declined", deadline,
                     reply_p);
}

static const worker_method_t s_methods [] = {
    { RESV_METHOD_APPROVE, s_approve },
    { RESV_METHOD_DECLINE, s_decline },
    { NULL, NULL }
};

int
svc_approval (void *state, const char *method, zframe_t **body_p,
              int64_t deadline, zframe_t **reply_p)
{
    return worker_dispatch (s_methods, "approval", state, method, body_p,
                            deadline, reply_p);
}


//  --------------------------------------------------------------------------
//  State

void *
svc_approval_new (resv_cfg_t *cfg, worker_t *worker)
{
    s_self_t *self = (s_self_t *) zmalloc (sizeof (s_self_t));
    self->worker = worker;
    self->timeout_ms = resv_cfg_int (cfg, "approval/timeout", S_TIMEOUT_DEFAULT,
                                     0, INT64_MAX / 4);
    self->store = store_new (cfg, "approval", s_schema);
    store_keep_alive (self->store, worker);
    self->client = resv_new (resv_cfg_str (cfg, "broker/frontend",
                                           RESV_DEFAULT_ENDPOINT));
    //  The journal's reads, like a decision's publish and reservation
    //  decide (through the worker), are internal methods.
    if (self->client)
        resv_set_key (self->client, resv_cfg_str (cfg, "broker/internal_key",
                                                  NULL));
    if (self->store && self->client) {
        events_config_t config = {
            .store = "approval", .schema = s_schema,
            .consumer = "approval", .apply = s_apply, .types = s_types,
            .fields = s_fields, .by_type = true, .tick = s_expire_due,
            .tick_ms = (int) resv_cfg_int (cfg, "approval/tick", S_TICK_DEFAULT,
                                           10, INT32_MAX),
            .state = self
        };
        self->events = events_new (cfg, &config);
    }
    if (!self->events) {
        zsys_error ("approval: cannot start the service");
        void *state = self;
        svc_approval_destroy (&state);
        return NULL;
    }
    return self;
}

void
svc_approval_destroy (void **state_p)
{
    if (!state_p || !*state_p)
        return;
    s_self_t *self = (s_self_t *) *state_p;
    //  The actor first: its thread uses self.
    events_destroy (&self->events);
    resv_destroy (&self->client);
    store_destroy (&self->store);
    free (self);
    *state_p = NULL;
}
