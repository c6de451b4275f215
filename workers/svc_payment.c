/*  svc_payment.c: payment, the service that authorises a reservation's
    payment and moves it on with the reservation (svc.h, doc/saga.md).

    State lives in DATA_DIR/payment.db, one row per reservation in
    payments. Its status moves authorized -> captured -> refunded, or
    authorized -> voided; a trigger refuses any other move, so a bug cannot
    capture a voided payment. voided -> authorized is allowed once more
    only while the reservation has not ended: a reserve whose later step
    failed voids its authorisation (the `void` request), and a retry of
    that reserve authorises the same reservation again.

    Money moves through a provider (svc_payment_provider_t), by default a
    simulator configured by payment/max_amount, payment/latency and
    payment/failure_rate. Provider calls may be slow, so none of them runs
    inside a transaction: a request calls the provider first and then
    records the result in one short transaction. The reservation events
    (confirmed, declined, expired, cancelled) are applied inside the
    consumer's transaction, so applying one only queues the step it asks
    for (capture, void or refund, in the steps table, with the event's id)
    and sets the payment's target status; the actor's tick then carries out
    queued steps in order: it calls the provider for each, up to the first
    one that must wait, then in one transaction takes those steps off the
    queue, moves their statuses and emits the payment.* events whose ids
    derive from the causes'. A step that fails at the provider stays
    queued, with those after it, and is tried again at the next tick.
    With several processes, two may call the provider for one step (it is
    keyed by reservation, so the provider sees one operation), but only
    the one that takes the step off the queue records it and emits.

    Requests run in the worker's thread on self->store; the consumer and
    the tick run in the events actor's thread on its own connection. The
    provider is called from both and must be thread-safe. The simulator
    has a copy of its settings for each thread: the request thread's names
    the worker, whose heartbeats its sleeps keep going.
*/

#include "svc.h"
#include "events.h"
#include "fields.h"
#include "resv_util.h"
#include <errno.h>
#include <time.h>
#include <sys/random.h>

//  A store failure in a handler: logged, rolled back, answered 500.
#define S_FAIL(store, reply_p, operation, subject) \
    store_fail (store, reply_p, "payment", operation, subject)

//  The store and the consumer's cursor name; the prefix of payment ids.
#define S_NAME          "payment"
#define S_ID_PREFIX     "pay-"
//  How often the actor retries queued steps that wait on the provider
//  (payment/tick, ms; the others run as soon as they are queued), and how
//  many steps one transaction records at most.
#define S_TICK_MS       50
#define S_STEPS_BATCH   64
//  Longest simulated latency, ms: the broker's longest deadline.
#define S_LATENCY_MAX   60000


//  Payment status words (spec, section 5).
#define S_AUTHORIZED    "authorized"
#define S_CAPTURED      "captured"
#define S_VOIDED        "voided"
#define S_REFUNDED      "refunded"

static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS payments ("
    "    reservation TEXT PRIMARY KEY,"
    "    id          TEXT NOT NULL UNIQUE,"
    "    customer    TEXT NOT NULL,"
    "    amount      INTEGER NOT NULL CHECK (amount >= 0),"
    //  Comparisons, not IN (...): SQLite checks an IN list of more than
    //  two constants by building a temporary index, at every write.
    "    status      TEXT NOT NULL CHECK (status = 'authorized'"
    "                OR status = 'captured' OR status = 'voided'"
    "                OR status = 'refunded'),"
    //  The status once the queued steps are done: what events decide on.
    "    target      TEXT NOT NULL CHECK (target = 'authorized'"
    "                OR target = 'captured' OR target = 'voided'"
    "                OR target = 'refunded'),"
    //  The reservation was declined, expired or cancelled: final.
    "    ended       INTEGER NOT NULL DEFAULT 0,"
    "    created_at  TEXT NOT NULL,"
    "    updated_at  TEXT NOT NULL);"
    "CREATE TRIGGER IF NOT EXISTS payments_moves"
    "    BEFORE UPDATE OF status ON payments"
    "    WHEN NEW.status <> OLD.status AND NOT ("
    "        (OLD.status = 'authorized' AND NEW.status IN ('captured', 'voided'))"
    "     OR (OLD.status = 'captured' AND NEW.status = 'refunded')"
    "     OR (OLD.status = 'voided' AND NEW.status = 'authorized' AND OLD.ended = 0))"
    "    BEGIN SELECT RAISE (ABORT, 'payment: status move not allowed'); END;"
    //  Steps asked for by events and not yet carried out, in order.
    "CREATE TABLE IF NOT EXISTS steps ("
    "    id          INTEGER PRIMARY KEY AUTOINCREMENT,"
    "    reservation TEXT NOT NULL,"
    "    action      TEXT NOT NULL CHECK (action = 'capture'"
    "                OR action = 'void' OR action = 'refund'),"
    "    cause       TEXT NOT NULL);";

//  The built-in provider's settings, read once from the configuration.
typedef struct {
    int64_t max_amount;         //  Declines any amount above, cents
    int latency;                //  Added to every call, ms
    int failure_rate;           //  Percent of calls that fail (503)
    worker_t *worker;           //  Whose heartbeats go on while it sleeps,
                                //  in the worker's thread only; or NULL
} s_simulator_t;

typedef struct {
    events_batch_t batch;       //  Group commit of request bursts
    store_t *store;             //  Connection of the request thread
    zactor_t *events;           //  Relay, consumer and tick (own thread
                                //  and connection)
    svc_payment_provider_t provider;    //  Who moves the money
    s_simulator_t simulator;    //  The default provider's state
    void *tick_provider;        //  provider.self for the events thread's
                                //  calls (the ticks' steps)
    s_simulator_t tick_simulator;   //  The simulator's, with no worker
    int tick_ms;                //  payment/tick
    int64_t authorize_us;       //  How long the provider takes to
                                //  authorise (s_authorize_took)
    int64_t authorize_ended;    //  When its last authorisation ended
                                //  (zclock_usecs)
    int64_t retry_at;           //  A step failed (provider, store): no tick
                                //  calls it again before this (mono ms)
} payment_t;

//  A payment as stored.
typedef struct {
    char id [32];
    char customer [FIELD_TEXT_MAX + 1];
    int64_t amount;
    char status [16];
    char target [16];
    bool ended;
} s_payment_t;


//  --------------------------------------------------------------------------
//  The simulator

//  A sleep of the simulator is cut into naps of at most this, us: within
//  the shortest heartbeat interval the broker takes (10 ms).
#define S_NAP_MAX           10000

//  Sleeps ms milliseconds in full, whatever signals come meanwhile: a
//  SIGTERM must not cut short the work a graceful stop waits for. The
//  worker's heartbeats go on between naps (worker, in its own thread; NULL
//  elsewhere): a latency above the broker's liveness had every payment
//  worker taken for dead in the middle of a call, and the payment circuit
//  open.
static void
s_sleep (int ms, worker_t *worker)
{
    int64_t until = zclock_usecs () + (int64_t) ms * 1000;
    for (int64_t left = (int64_t) ms * 1000; left > 0;
         left = until - zclock_usecs ()) {
        int64_t nap = left < S_NAP_MAX? left: S_NAP_MAX;
        struct timespec rest = { 0, (long) nap * 1000 };
        while (nanosleep (&rest, &rest) == -1 && errno == EINTR)
            ;
        worker_keepalive (worker);
    }
}

//  The latency and the failure rate, common to every call.
static int
s_simulate (s_simulator_t *self, char *message, size_t size)
{
    if (self->latency > 0)
        s_sleep (self->latency, self->worker);
    uint16_t dice = 0;
    if (self->failure_rate > 0
    &&  getrandom (&dice, sizeof dice, 0) == (ssize_t) sizeof dice
    &&  dice % 100 < self->failure_rate) {
        snprintf (message, size, "the simulated provider failed, as it does "
                  "in %d%% of calls (payment/failure_rate)", self->failure_rate);
        return RESV_UNAVAILABLE;
    }
    return RESV_OK;
}

static int
s_simulate_authorize (void *self, const char *reservation, const char *customer,
                      int64_t amount, char *message, size_t size)
{
    (void) reservation, (void) customer;
    s_simulator_t *simulator = (s_simulator_t *) self;
    int status = s_simulate (simulator, message, size);
    if (status == RESV_OK && amount > simulator->max_amount) {
        snprintf (message, size, "amount %" PRId64 " is above the limit of "
                  "%" PRId64 " (payment/max_amount)", amount,
                  simulator->max_amount);
        status = RESV_PAYMENT_DECLINED;
    }
    return status;
}

//  Capture, void and refund: only latency and failures.
static int
s_simulate_move (void *self, const char *reservation, const char *customer,
                 int64_t amount, char *message, size_t size)
{
    (void) reservation, (void) customer, (void) amount;
    return s_simulate ((s_simulator_t *) self, message, size);
}


//  --------------------------------------------------------------------------
//  Shared by requests and the actor

static const char *
s_text (sqlite3_stmt *stmt, int col)
{
    const char *text = (const char *) sqlite3_column_text (stmt, col);
    return text? text: "";
}

//  Copies column of stmt's row into out (size bytes), cut to fit.
static void
s_column_copy (sqlite3_stmt *stmt, int column, char *out, size_t size)
{
    const char *text = s_text (stmt, column);
    size_t length = strnlen (text, size - 1);
    memcpy (out, text, length);
    out [length] = 0;
}

//  Loads the payment of reservation. Returns 0, RESV_NOT_FOUND, or -1 on
//  a store failure.
static int
s_payment_load (store_t *store, const char *reservation, s_payment_t *payment)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "SELECT id, customer, amount, status, target, ended FROM payments "
        "WHERE reservation = ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, reservation, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        s_column_copy (stmt, 0, payment->id, sizeof payment->id);
        s_column_copy (stmt, 1, payment->customer, sizeof payment->customer);
        payment->amount = sqlite3_column_int64 (stmt, 2);
        s_column_copy (stmt, 3, payment->status, sizeof payment->status);
        s_column_copy (stmt, 4, payment->target, sizeof payment->target);
        payment->ended = sqlite3_column_int (stmt, 5) != 0;
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW? 0: rc == SQLITE_DONE? RESV_NOT_FOUND: -1;
}

//  Size of the text of a payment object, and its NUL.
#define S_PAYMENT_TEXT_SIZE 128

//  Writes the text of {"id","status","amount"}, as replied and as carried
//  by events, into text (S_PAYMENT_TEXT_SIZE bytes). The id and status need
//  no quoting: the id is S_ID_PREFIX and hex digits, made here, and the
//  status one of the words the table's CHECK allows. Returns text.
static char *
s_payment_text (s_payment_t *payment, char *text)
{
    snprintf (text, S_PAYMENT_TEXT_SIZE,
              "{\"id\":\"%s\",\"status\":\"%s\",\"amount\":%" PRId64 "}",
              payment->id, payment->status, payment->amount);
    return text;
}

//  Emits the payment.STATUS event of payment, inside the current
//  transaction; with cause, as the effect of that event. Its data, with
//  the customer (free text, quoted by store_object_text), is written as
//  text. Returns 0 or -1.
static int
s_emit (store_t *store, const char *cause, const char *reservation,
        s_payment_t *payment)
{
    char type [32];
    snprintf (type, sizeof type, "payment.%s", payment->status);
    char text [S_PAYMENT_TEXT_SIZE];
    const char *const strings [] = { "customer", payment->customer, NULL };
    char *data = store_object_text ("payment", s_payment_text (payment, text),
                                    strings);
    if (!data) {
        zsys_error ("payment: emit %s of %s: out of memory", type, reservation);
        return -1;
    }
    int rc = store_emit_text (store, cause, type, "reservation", reservation,
                              reservation, data);
    free (data);
    return rc;
}

//  Moves the payment of reservation from status from to status to, and
//  its target with it when set_target. Returns 1 if it moved, 0 if it was
//  not in status from, -1 on a store failure.
static int
s_move (store_t *store, const char *reservation, const char *from,
        const char *to, bool set_target)
{
    char now [RESV_TIME_SIZE];
    sqlite3_stmt *stmt = store_stmt (store,
        "UPDATE payments SET status = ?3, "
        "target = CASE WHEN ?4 THEN ?3 ELSE target END, updated_at = ?5 "
        "WHERE reservation = ?1 AND status = ?2 AND (NOT ?4 OR target = ?2)");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, reservation, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, from, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, to, -1, SQLITE_STATIC);
    sqlite3_bind_int (stmt, 4, set_target);
    sqlite3_bind_text (stmt, 5, resv_time_now (now), -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    return sqlite3_changes (store_db (store)) > 0? 1: 0;
}


//  --------------------------------------------------------------------------
//  Consumer: reservation events queue steps

//  The event types the consumer applies: a confirmation captures, an end voids or refunds.
static const char *s_types [] = {
    "reservation.confirmed", "reservation.declined",
    "reservation.expired", "reservation.cancelled", NULL
};

//  What s_apply reads of an event.
static const char *s_fields [] = {
    "id", "reservation", "data.reservation.id", NULL
};

static int
s_apply (void *state, store_t *store, const char *type, json_t *event)
{
    (void) state;
    bool confirmed = streq (type, "reservation.confirmed");
    bool cancelled = streq (type, "reservation.cancelled");
    bool ends = cancelled || streq (type, "reservation.declined")
                          || streq (type, "reservation.expired");
    if (!confirmed && !ends)
        return 0;
    const char *cause = json_string_value (json_object_get (event, "id"));
    const char *id = json_string_value (json_object_get (event, "reservation"));
    if (!id)
        id = json_string_value (json_object_get (json_object_get (
             json_object_get (event, "data"), "reservation"), "id"));
    if (!id || !cause) {
        //  A producer's bug; a retry could never succeed and would stop
        //  every later event, so it is logged and skipped.
        zsys_warning ("payment: event %s (%s) names no reservation; skipped",
                      cause? cause: "without id", type);
        return 0;
    }
    s_payment_t payment;
    int rc = s_payment_load (store, id, &payment);
    if (rc == RESV_NOT_FOUND) {
        zsys_warning ("payment: %s for %s, which has no payment; nothing to do",
                      type, id);
        return 0;
    }
    if (rc)
        goto failed;
    //  Decided on the target, not the status: a capture still queued
    //  counts as done, so a cancel after it asks for a refund.
    const char *action = NULL, *target = NULL;
    bool authorized = streq (payment.target, S_AUTHORIZED);
    if (confirmed && authorized)
        action = "capture", target = S_CAPTURED;
    else
    if (ends && authorized)
        action = "void", target = S_VOIDED;
    else
    if (cancelled && streq (payment.target, S_CAPTURED))
        action = "refund", target = S_REFUNDED;
    if (action) {
        sqlite3_stmt *stmt = store_stmt (store,
            "INSERT INTO steps (reservation, action, cause) VALUES (?1, ?2, ?3)");
        if (!stmt)
            goto failed;
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 2, action, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 3, cause, -1, SQLITE_STATIC);
        rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE)
            goto failed;
    }
    if (action || (ends && !payment.ended)) {
        sqlite3_stmt *stmt = store_stmt (store,
            "UPDATE payments SET target = coalesce (?2, target), "
            "ended = ended OR ?3 WHERE reservation = ?1");
        if (!stmt)
            goto failed;
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 2, target, -1, SQLITE_STATIC);
        sqlite3_bind_int (stmt, 3, ends);
        rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE)
            goto failed;
    }
    return 0;
failed:
    zsys_error ("payment: apply %s to %s: %s", type, id, store_error (store));
    return -1;
}


//  --------------------------------------------------------------------------
//  Tick: queued steps are carried out

//  Reads up to S_STEPS_BATCH queued steps, oldest first, as an array of
//  [id, reservation, action, cause]. NULL when there are none or on error
//  (then *failed_p is set, and the error logged).
static json_t *
s_steps_peek (store_t *store, bool *failed_p)
{
    *failed_p = false;
    sqlite3_stmt *stmt = store_stmt (store,
        "SELECT id, reservation, action, cause FROM steps ORDER BY id LIMIT ?1");
    if (!stmt) {
        zsys_error ("payment: read queued steps: %s", store_error (store));
        *failed_p = true;
        return NULL;
    }
    sqlite3_bind_int (stmt, 1, S_STEPS_BATCH);
    json_t *steps = json_array ();
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
        json_array_append_new (steps, json_pack ("[I,s,s,s]",
            (json_int_t) sqlite3_column_int64 (stmt, 0), s_text (stmt, 1),
            s_text (stmt, 2), s_text (stmt, 3)));
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        zsys_error ("payment: read queued steps: %s", store_error (store));
        *failed_p = true;
    }
    if (json_array_size (steps) == 0) {
        json_decref (steps);
        return NULL;
    }
    return steps;
}

//  A queued step, read by the tick: [id, reservation, action, cause].
typedef struct {
    int64_t id;
    const char *reservation;
    const char *action;
    const char *cause;
    bool due;                   //  The provider was called and agreed
    const char *from, *to;      //  The move it makes when due
    s_payment_t payment;        //  As loaded before the call
} s_step_t;

//  Loads the payment of one queued step and decides whether the step is
//  due (the payment is in the status it moves from). Runs inside the
//  tick's read transaction. Returns 0 when the step can go on (due, done
//  or moot), -1 when it must wait (an earlier step is not done, or the
//  store failed); the tick then stops at it until the next tick.
static int
s_step_load (payment_t *self, store_t *store, s_step_t *step)
{
    bool capture = streq (step->action, "capture");
    bool void_ = streq (step->action, "void");
    step->from = capture || void_? S_AUTHORIZED: S_CAPTURED;
    step->to = capture? S_CAPTURED: void_? S_VOIDED: S_REFUNDED;
    int rc = s_payment_load (store, step->reservation, &step->payment);
    if (rc < 0) {
        zsys_error ("payment: %s %s: %s; will retry in %d ms", step->action,
                    step->reservation, store_error (store), self->tick_ms);
        self->retry_at = zclock_mono () + self->tick_ms;
        return -1;
    }
    //  Due when in status from; not yet when an earlier step (a capture
    //  before a refund) is still to come; otherwise done or moot.
    step->due = rc == 0 && streq (step->payment.status, step->from);
    if (rc == 0 && !step->due && streq (step->payment.status, S_AUTHORIZED))
        return -1;
    return 0;
}

//  Calls the provider for a loaded step that is due (never inside a
//  transaction: it may be slow). Returns 0, or -1 when the provider
//  failed: the step must wait.
static int
s_step_call (payment_t *self, s_step_t *step)
{
    if (!step->due)
        return 0;
    svc_payment_call_fn *call = streq (step->action, "capture")?
                                self->provider.capture:
                                streq (step->action, "void")?
                                self->provider.void_: self->provider.refund;
    char message [256] = "";
    int status = call (self->tick_provider, step->reservation,
                       step->payment.customer, step->payment.amount,
                       message, sizeof message);
    if (status != RESV_OK) {
        zsys_warning ("payment: %s %s: provider answered %d: %s; will "
                      "retry in %d ms", step->action, step->reservation,
                      status, message, self->tick_ms);
        //  The steps after it wait for it: ticks that events bring do
        //  not call the provider again before the interval (nor, below,
        //  after a store failure).
        self->retry_at = zclock_mono () + self->tick_ms;
        return -1;
    }
    return 0;
}

//  Records one readied step inside the tick's transaction: takes it off
//  the queue and, when it was due, moves the status and emits. A step
//  another process took off first is left to that process. Returns 0 or
//  -1 on a store failure.
static int
s_step_record (store_t *store, s_step_t *step)
{
    sqlite3_stmt *stmt = store_stmt (store, "DELETE FROM steps WHERE id = ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, step->id);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    if (sqlite3_changes (store_db (store)) == 0 || !step->due)
        return 0;
    rc = s_move (store, step->reservation, step->from, step->to, false);
    if (rc < 0)
        return -1;
    snprintf (step->payment.status, sizeof step->payment.status, "%s", step->to);
    return rc == 1? s_emit (store, step->cause, step->reservation, &step->payment): 0;
}

//  Carries out the queued steps in order, up to the first that must wait:
//  first one read of the queue and of the payments, then each due step's
//  provider call, then one transaction that records them all. If that
//  transaction fails, the steps stay queued and the next tick calls the
//  provider again, which sees the same operation (it is keyed by
//  reservation). A store failure or a provider's makes the ticks wait
//  payment/tick ms before they try again. The events actor calls it right after each batch of
//  events applied, and again at once while it records whole batches, so
//  that the steps keep up with the confirmations; the interval is for
//  the steps that wait on the provider. Returns true after a whole batch.
static bool
s_tick (void *state, store_t *store, events_caller_t *caller)
{
    (void) caller;
    payment_t *self = (payment_t *) state;
    //  After SIGTERM (zsys_interrupted) no provider call starts: one may
    //  take payment/latency, and a run of S_STEPS_BATCH of them held the
    //  stop far past resvd/stop_timeout. The steps wait in the queue for
    //  another process of the service, or for the restart.
    if (zsys_interrupted || zclock_mono () < self->retry_at)
        return false;
    //  The queue and the payments its steps move are read in one
    //  transaction: a statement outside one would be a transaction (and
    //  two file locks) each.
    if (store_begin_read (store)) {
        self->retry_at = zclock_mono () + self->tick_ms;
        return false;
    }
    bool failed;
    json_t *steps = s_steps_peek (store, &failed);
    if (failed)
        self->retry_at = zclock_mono () + self->tick_ms;
    s_step_t ready [S_STEPS_BATCH];
    size_t loaded = 0;
    size_t index;
    json_t *entry;
    json_array_foreach (steps, index, entry) {
        if (loaded == S_STEPS_BATCH)
            break;
        s_step_t *step = &ready [loaded];
        step->id = json_integer_value (json_array_get (entry, 0));
        step->reservation = json_string_value (json_array_get (entry, 1));
        step->action = json_string_value (json_array_get (entry, 2));
        step->cause = json_string_value (json_array_get (entry, 3));
        if (s_step_load (self, store, step))
            break;
        loaded++;
    }
    store_rollback (store);     //  Only read: nothing to keep
    //  The calls made before a SIGTERM are recorded; none starts after it.
    size_t count = 0;
    while (count < loaded && !zsys_interrupted
       &&  s_step_call (self, &ready [count]) == 0)
        count++;
    bool recorded = false;
    if (count) {
        size_t done = 0;
        if (store_begin (store) == 0)
            while (done < count && s_step_record (store, &ready [done]) == 0)
                done++;
        if (done < count || store_commit (store)) {
            zsys_error ("payment: record %zu steps (%s %s first): %s; will "
                        "retry in %d ms", count, ready [0].action,
                        ready [0].reservation, store_error (store),
                        self->tick_ms);
            store_rollback (store);
            self->retry_at = zclock_mono () + self->tick_ms;
        }
        else
            recorded = true;
    }
    json_decref (steps);
    //  The actor relays what the steps emitted once this returns.
    return recorded && count == S_STEPS_BATCH;
}


//  --------------------------------------------------------------------------
//  Requests

//  A refusal of the provider: 402 payment_declined or 503
//  payment_unavailable, with the provider's message.
static int
s_provider_refused (zframe_t **reply_p, int status, const char *operation,
                    const char *reservation, const char *message)
{
    if (status != RESV_PAYMENT_DECLINED)
        status = RESV_UNAVAILABLE;
    *reply_p = worker_error (status, status == RESV_PAYMENT_DECLINED?
                             RESV_REASON_PAYMENT_DECLINED:
                             RESV_REASON_PAYMENT_UNAVAILABLE,
                             "payment: %s %s: %s", operation, reservation,
                             *message? message: "the provider refused");
    return status;
}

//  Sets the reply to {"payment":{...}}; returns RESV_OK, or 500 (with
//  its error) out of memory.
static int
s_reply_payment (zframe_t **reply_p, s_payment_t *payment)
{
    char text [S_PAYMENT_TEXT_SIZE];
    *reply_p = worker_text (store_object_text ("payment",
                                               s_payment_text (payment, text),
                                               NULL));
    if (!*reply_p)
        return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                            "payment: out of memory");
    return RESV_OK;
}

//  What an authorize finds already stored for its reservation: RESV_OK
//  with the reply set (a repeat: the same payment), RESV_CONFLICT with
//  the reply set, or 0 when it must authorise again (voided by a
//  compensation, and the reservation has not ended). An authorisation
//  again may be of another amount: the retry of a reserve whose first try
//  was undone prices the stay anew, and the owner may have changed the
//  resource's price meanwhile (refused with 409, every retry of that
//  request id failed for good).
static int
s_authorize_known (s_payment_t *payment, const char *reservation,
                   const char *customer, int64_t amount, zframe_t **reply_p)
{
    const char *trouble = NULL;
    bool again = streq (payment->status, S_VOIDED)
              && streq (payment->target, S_VOIDED) && !payment->ended;
    if (!streq (payment->customer, customer)
    ||  (payment->amount != amount && !again))
        trouble = "was authorised for another customer or amount";
    else
    if (streq (payment->target, S_VOIDED) && payment->ended)
        trouble = "was voided: the reservation has ended";
    else
    if (again)
        return 0;
    if (trouble) {
        *reply_p = worker_error (RESV_CONFLICT, RESV_REASON_CONFLICT,
                                 "payment of %s %s", reservation, trouble);
        return RESV_CONFLICT;
    }
    return s_reply_payment (reply_p, payment);
}

//  An estimate of the provider's authorisations whose last call ended
//  longer ago than this no longer refuses one (s_authorize_hopeless), us.
#define S_ESTIMATE_FRESH    1000000

//  Takes the time one authorisation took at the provider into the
//  estimate: a moving average that follows a faster call half way at once,
//  and a slower one by an eighth, so that one slow call (a provider's
//  hiccup) does not have the next ones refused.
static void
s_authorize_took (payment_t *self, int64_t began, int64_t ended)
{
    int64_t took = ended - began;
    if (self->authorize_us == 0 || took <= 0)
        self->authorize_us = took > 0? took: 0;
    else
    if (took < self->authorize_us)
        self->authorize_us -= (self->authorize_us - took) / 2;
    else
        self->authorize_us += (took - self->authorize_us) / 8;
    self->authorize_ended = ended;
}

//  Whether an authorisation with left_us of its deadline to go cannot
//  end in time, so is better not begun: none whose deadline passed, and
//  none with less left than the provider takes and a quarter more (its
//  jitter). An estimate no authorisation has checked for a while does not
//  refuse: what is refused never updates it, and a provider slow for a
//  moment would be taken for slow for good.
static bool
s_authorize_hopeless (payment_t *self, int64_t left_us, int64_t now)
{
    if (left_us <= 0)
        return true;
    if (now - self->authorize_ended > S_ESTIMATE_FRESH)
        return false;
    return left_us <= self->authorize_us + self->authorize_us / 4;
}

//  Voids at the provider an authorisation that an authorize made and then
//  did not record (why says when). Nothing is recorded of it, so a void
//  that fails is not tried again: the log says what a real provider may
//  still hold.
static void
s_void_unrecorded (payment_t *self, const char *reservation,
                   const char *customer, int64_t amount, const char *why)
{
    char message [256] = "";
    int status = self->provider.void_ (self->provider.self, reservation,
                                       customer, amount, message,
                                       sizeof message);
    if (status != RESV_OK)
        zsys_error ("payment: authorize %s: %s, and the provider's void of "
                    "%" PRId64 " for %s failed (%d %s); the provider may "
                    "still hold it", reservation, why, amount, customer,
                    status, *message? message: "no message");
}

//  authorize {reservation, customer, amount} -> 200 {"payment":{...}};
//  402 payment_declined; 503 payment_unavailable; 409 if the reservation
//  was authorised otherwise or has ended. Idempotent by reservation.
static int
s_authorize (void *state, json_t *request, int64_t deadline,
             zframe_t **reply_p)
{
    payment_t *self = (payment_t *) state;
    static const char *keys [] = { "reservation", "customer", "amount", NULL };
    const char *reservation = NULL, *customer = NULL;
    int64_t amount = 0;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "reservation", true, &reservation, reply_p)
    ||  field_string (request, "customer", true, 0, &customer, reply_p)
    ||  field_int (request, "amount", true, 0, INT64_MAX, &amount, reply_p))
        return RESV_BAD_REQUEST;
    store_t *store = self->store;
    s_payment_t payment;
    int rc = s_payment_load (store, reservation, &payment);
    if (rc < 0)
        return S_FAIL (store, reply_p, "authorize", reservation);
    if (rc == 0 && (rc = s_authorize_known (&payment, reservation, customer,
                                            amount, reply_p)))
        return rc;
    //  A call that cannot end before the deadline is not begun: its
    //  caller would void it. Behind a slow provider, the items of a batch
    //  whose time ran out while the ones before were at the provider are
    //  answered at once, so that the batch's reply comes in time and its
    //  caller need not void them (not_started).
    int64_t began = zclock_usecs ();
    int64_t left_us = (deadline - zclock_mono ()) * 1000;
    if (s_authorize_hopeless (self, left_us, began)) {
        *reply_p = worker_error (RESV_TIMEOUT, RESV_REASON_NOT_STARTED,
                                 "payment: authorize %s: %" PRId64 " ms of the "
                                 "deadline left, and the provider takes about "
                                 "%" PRId64 " ms; not begun", reservation,
                                 left_us > 0? left_us / 1000: 0,
                                 self->authorize_us / 1000);
        return RESV_TIMEOUT;
    }
    //  The provider first, outside any transaction: it may be slow.
    char message [256] = "";
    int status = self->provider.authorize (self->provider.self, reservation,
                                           customer, amount, message,
                                           sizeof message);
    s_authorize_took (self, began, zclock_usecs ());
    if (status != RESV_OK)
        return s_provider_refused (reply_p, status, "authorize", reservation,
                                   message);
    if (store_begin (store))
        return S_FAIL (store, reply_p, "authorize", reservation);
    //  Another process may have recorded it meanwhile.
    rc = s_payment_load (store, reservation, &payment);
    if (rc < 0)
        return S_FAIL (store, reply_p, "authorize", reservation);
    if (rc == 0 && (rc = s_authorize_known (&payment, reservation, customer,
                                            amount, reply_p))) {
        store_rollback (store);
        //  Refused now (409): another process recorded the payment
        //  meanwhile. The provider keys its calls by reservation (svc.h),
        //  so what this call authorised is that payment's authorisation,
        //  and stays, when it is live (another process authorised it again
        //  at another amount: two tries of one reserve, priced either side
        //  of a price change). When it ended (voided for good), nothing
        //  recorded holds it any more, and this call held it again: voided.
        if (rc == RESV_CONFLICT && streq (payment.target, S_VOIDED))
            s_void_unrecorded (self, reservation, customer, amount,
                               "refused after the provider's authorisation");
        return rc;
    }
    //  The caller gave up at its deadline and may already have voided:
    //  recording the authorisation now would leave it for nobody. At the
    //  deadline's very millisecond too: the broker answers the caller 504
    //  in it. (The deadline is the broker's, counted from when it sent the
    //  request: worker.c, s_clock_offset.)
    if (zclock_mono () >= deadline) {
        store_rollback (store);
        s_void_unrecorded (self, reservation, customer, amount,
                           "past its deadline");
        *reply_p = worker_error (RESV_TIMEOUT, RESV_REASON_DEADLINE,
                                 "payment: authorize %s: the deadline passed",
                                 reservation);
        return RESV_TIMEOUT;
    }
    if (rc == 0) {
        //  Voided by a compensation: authorised again, for what it costs
        //  now.
        if (s_move (store, reservation, S_VOIDED, S_AUTHORIZED, true) != 1)
            return S_FAIL (store, reply_p, "authorize again", reservation);
        if (payment.amount != amount) {
            sqlite3_stmt *stmt = store_stmt (store,
                "UPDATE payments SET amount = ?2 WHERE reservation = ?1");
            if (!stmt)
                return S_FAIL (store, reply_p, "authorize again", reservation);
            sqlite3_bind_text (stmt, 1, reservation, -1, SQLITE_STATIC);
            sqlite3_bind_int64 (stmt, 2, amount);
            rc = sqlite3_step (stmt);
            sqlite3_reset (stmt);
            if (rc != SQLITE_DONE)
                return S_FAIL (store, reply_p, "authorize again", reservation);
            payment.amount = amount;
        }
    }
    else {
        char now [RESV_TIME_SIZE];
        //  S_ID_PREFIX, the time in ms as 12 hex digits, then 12 random
        //  ones: payments made together sort together, so the index of
        //  their ids grows at its end instead of in a random page each.
        snprintf (payment.id, sizeof payment.id, S_ID_PREFIX "%012" PRIx64,
                  (uint64_t) (resv_time_ms () & 0xffffffffffff));
        if (resv_random_hex (payment.id + strlen (S_ID_PREFIX) + 12, 6)) {
            store_rollback (store);
            zsys_error ("payment: authorize %s: no random source", reservation);
            *reply_p = worker_error (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                     "payment: authorize %s: no random source",
                                     reservation);
            return RESV_INTERNAL;
        }
        snprintf (payment.customer, sizeof payment.customer, "%s", customer);
        payment.amount = amount;
        sqlite3_stmt *stmt = store_stmt (store,
            "INSERT INTO payments (reservation, id, customer, amount, status, "
            "target, created_at, updated_at) "
            "VALUES (?1, ?2, ?3, ?4, 'authorized', 'authorized', ?5, ?5)");
        if (!stmt)
            return S_FAIL (store, reply_p, "authorize", reservation);
        sqlite3_bind_text (stmt, 1, reservation, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 2, payment.id, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 3, customer, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 4, amount);
        sqlite3_bind_text (stmt, 5, resv_time_now (now), -1, SQLITE_STATIC);
        rc = sqlite3_step (stmt);
        sqlite3_reset (stmt);
        if (rc != SQLITE_DONE)
            return S_FAIL (store, reply_p, "authorize", reservation);
    }
    snprintf (payment.status, sizeof payment.status, S_AUTHORIZED);
    if (s_emit (store, NULL, reservation, &payment) || store_commit (store))
        return S_FAIL (store, reply_p, "authorize", reservation);
    events_flush (self->events);
    return s_reply_payment (reply_p, &payment);
}

//  void {reservation} -> 200 {"payment":{...}} voided, or {"payment":null}
//  when the reservation has none; 409 once captured; 503 if the provider
//  failed. Idempotent: the compensation of a failed reserve.
static int
s_void (void *state, json_t *request, int64_t deadline,
        zframe_t **reply_p)
{
    payment_t *self = (payment_t *) state;
    (void) deadline;
    static const char *keys [] = { "reservation", NULL };
    const char *reservation = NULL;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "reservation", true, &reservation, reply_p))
        return RESV_BAD_REQUEST;
    store_t *store = self->store;
    s_payment_t payment;
    bool called = false;        //  The provider has voided it
    bool writing = false;       //  Looked inside a write transaction
    while (true) {
        int rc = s_payment_load (store, reservation, &payment);
        if (rc < 0)
            return S_FAIL (store, reply_p, "void", reservation);
        bool voided = rc == 0 && streq (payment.target, S_VOIDED);
        if ((rc == RESV_NOT_FOUND || voided) && !writing) {
            //  Look again holding the store's write lock: an authorize
            //  that began its transaction before its deadline may not
            //  have committed yet, and one that begins after this is
            //  past its deadline and records nothing (s_authorize). So
            //  may one that authorises a voided payment again (a retried
            //  reserve's, s_authorize_known). This void came after the
            //  caller's deadline, or after its own authorize's reply.
            //  (Inside a batch, the lock is held already.)
            if (store_begin (store))
                return S_FAIL (store, reply_p, "void", reservation);
            writing = true;
            continue;
        }
        if (rc == RESV_NOT_FOUND) {
            store_rollback (store);
            *reply_p = worker_json (json_pack ("{s:n}", "payment"));
            return RESV_OK;
        }
        if (voided) {
            store_rollback (store);
            return s_reply_payment (reply_p, &payment);
        }
        if (!streq (payment.status, S_AUTHORIZED)
        ||  !streq (payment.target, S_AUTHORIZED)) {
            store_rollback (store);
            *reply_p = worker_error (RESV_CONFLICT, RESV_REASON_CONFLICT,
                                     "payment of %s is %s and cannot be "
                                     "voided", reservation, payment.target);
            return RESV_CONFLICT;
        }
        if (called)
            break;
        //  The provider first, outside any transaction; then look again
        //  inside one, where the answer holds.
        store_rollback (store);
        writing = false;
        char message [256] = "";
        int status = self->provider.void_ (self->provider.self, reservation,
                                           payment.customer, payment.amount,
                                           message, sizeof message);
        if (status != RESV_OK)
            return s_provider_refused (reply_p, status, "void", reservation,
                                       message);
        called = true;
        if (store_begin (store))
            return S_FAIL (store, reply_p, "void", reservation);
        writing = true;
    }
    snprintf (payment.status, sizeof payment.status, S_VOIDED);
    if (s_move (store, reservation, S_AUTHORIZED, S_VOIDED, true) != 1
    ||  s_emit (store, NULL, reservation, &payment) || store_commit (store))
        return S_FAIL (store, reply_p, "void", reservation);
    events_flush (self->events);
    return s_reply_payment (reply_p, &payment);
}


//  --------------------------------------------------------------------------
//  The service

static const worker_method_t s_methods [] = {
    { RESV_METHOD_AUTHORIZE, s_authorize },
    { RESV_METHOD_VOID, s_void },
    { NULL, NULL }
};

int
svc_payment (void *state, const char *method, zframe_t **body_p,
             int64_t deadline, zframe_t **reply_p)
{
    return worker_dispatch (s_methods, "payment", state, method, body_p,
                            deadline, reply_p);
}

void *
svc_payment_new_with (resv_cfg_t *cfg, const svc_payment_provider_t *provider)
{
    payment_t *self = (payment_t *) zmalloc (sizeof (payment_t));
    self->simulator.max_amount = resv_cfg_int (cfg, "payment/max_amount",
                                               10000000, 0, INT64_MAX);
    self->simulator.latency = (int) resv_cfg_int (cfg, "payment/latency", 0,
                                                  0, S_LATENCY_MAX);
    self->simulator.failure_rate = (int) resv_cfg_int (cfg,
                                                       "payment/failure_rate",
                                                       0, 0, 100);
    if (provider) {
        self->provider = *provider;
        self->tick_provider = provider->self;
    }
    else {
        self->provider.self = &self->simulator;
        self->provider.authorize = s_simulate_authorize;
        self->provider.capture = s_simulate_move;
        self->provider.void_ = s_simulate_move;
        self->provider.refund = s_simulate_move;
        //  Before svc_payment_new names the worker: this copy has none.
        self->tick_simulator = self->simulator;
        self->tick_provider = &self->tick_simulator;
    }
    self->tick_ms = (int) resv_cfg_int (cfg, "payment/tick", S_TICK_MS, 1,
                                        3600000);
    self->store = store_new (cfg, S_NAME, s_schema);
    if (self->store) {
        events_config_t config = {
            .store = S_NAME, .schema = s_schema, .consumer = S_NAME,
            .apply = s_apply, .types = s_types, .fields = s_fields,
            .tick = s_tick, .tick_on_apply = true, .tick_ms = self->tick_ms,
            .state = self
        };
        self->events = events_new (cfg, &config);
    }
    if (!self->events) {
        void *state = self;
        svc_payment_destroy (&state);
        return NULL;
    }
    return self;
}

void *
svc_payment_new (resv_cfg_t *cfg, worker_t *worker)
{
    payment_t *self = (payment_t *) svc_payment_new_with (cfg, NULL);
    if (self) {
        store_keep_alive (self->store, worker);
        self->simulator.worker = worker;
    }
    //  Authorisations come in bursts and each is a short transaction: a
    //  burst shares one commit. Not with a slow provider (the simulator's
    //  latency): its calls would hold the store's lock, and every reply of
    //  the burst would wait for the slowest.
    if (self && self->simulator.latency == 0) {
        self->batch = (events_batch_t) { self->store, self->events };
        worker_set_batch (worker, events_batch_begin, events_batch_end,
                          &self->batch);
    }
    //  Each call of a slow provider holds the handler: one request at a
    //  time, unless workers/payment/credit says otherwise. With the
    //  credit of 16, the requests queued behind in the worker's socket
    //  were run after their callers had given up (a deadline counts from
    //  when the worker reads the request): authorised with no reservation
    //  to own them, until a sweep voided them. At 15 reserves a second
    //  against a provider of 100 ms (10 a second), 44 in 15 s; none since.
    if (self && self->simulator.latency > 0
    &&  !resv_cfg_str (cfg, "workers/payment/credit", NULL))
        worker_set_credit (worker, 1);
    return self;
}

void
svc_payment_destroy (void **state_p)
{
    if (!state_p || !*state_p)
        return;
    payment_t *self = (payment_t *) *state_p;
    events_destroy (&self->events);
    store_destroy (&self->store);
    free (self);
    *state_p = NULL;
}
