/*  svc_approval_test.c: the approval service (svc_approval.c), against a
    real broker (in-process actor) and real SQLite files in a temporary
    directory.

    Decisions are taken on reservations made by the real saga:
    availability, payment, reservation and approval each run as a worker
    in a thread of this process, with the services' own handlers and
    states (svc.h), as resv-worker runs them. Expiry runs with a short
    approval/timeout and tick, and across a restart of the approval
    worker. Validation goes straight to the handler.
*/

#include "testkit.h"
#include "resv_util.h"

//  A call of the reservation service a race holds: each flag is set by one
//  thread and read by another.
typedef struct {
    int came;                   //  The call came
    int run;                    //  It may run (the test says)
    int ran;                    //  The real handler has run
    int reply;                  //  Its reply may leave (the test says)
} s_gate_t;

//  The reservation raced on, and its calls held.
typedef struct {
    char id [64];               //  The reservation
    s_gate_t expire;            //  approval's tick asking to expire it
    s_gate_t decide;            //  The owner's decision taking effect
} s_race_t;

//  One worker of a reservation service in front of the real one.
typedef struct {
    void *reservation;          //  The real service's state
    s_race_t *race;             //  Borrowed
} s_gated_t;

typedef struct {
    testkit_t *kit;             //  Broker, journal, the saga's workers
    store_t *store;             //  The test's look into approval.db
    char *manual;               //  A manual resource, capacity 3
    char *automatic;            //  An auto resource, capacity 3
    s_race_t race;              //  A race with the expiry tick
    s_gated_t gated [2];        //  Its reservation workers, once started
} fixture_t;


//  --------------------------------------------------------------------------
//  Fixture

//  Starts a broker and the four services; env is NULL or a NULL-ended
//  list of name, value pairs set first.
static int
s_setup_with (void **state, const char **env)
{
    fixture_t *self = (fixture_t *) zmalloc (sizeof (fixture_t));
    self->kit = testkit_saga_new ("approval", env, NULL, NULL);
    self->store = store_new (testkit_cfg (self->kit), "approval", NULL);
    assert_non_null (self->store);
    self->manual = testkit_resource (self->kit, 3, 1200, "manual");
    self->automatic = testkit_resource (self->kit, 3, 1200, "auto");
    *state = self;
    return 0;
}

static int
s_setup (void **state)
{
    return s_setup_with (state, NULL);
}

static int
s_teardown (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    store_destroy (&self->store);
    testkit_destroy (&self->kit);
    zstr_free (&self->manual);
    zstr_free (&self->automatic);
    free (self);
    return 0;
}


//  --------------------------------------------------------------------------
//  Helpers

//  Waits until approval's cursors (one per type it takes) have every event
//  of their types journaled so far.
static bool
s_wait_caught_up (fixture_t *self)
{
    const char *types [] = {
        "reservation.requested", "reservation.cancelled", NULL
    };
    for (const char **type = types; *type; type++) {
        json_t *events = testkit_journal (self->kit, *type, NULL);
        size_t count = json_array_size (events);
        int64_t newest = count? json_integer_value (json_object_get (
            json_array_get (events, count - 1), "seq")): 0;
        json_decref (events);
        char name [64];
        snprintf (name, sizeof name, "approval/%s", *type);
        if (newest && !testkit_wait_cursor (self->kit, self->store, name,
                                            newest))
            return false;
    }
    return true;
}

//  Calls approval/method {id, owner, reason?} through the broker.
static int
s_decide (fixture_t *self, const char *method, const char *id,
          const char *owner, const char *reason, json_t **reply_p)
{
    json_t *request = json_pack ("{s:s,s:s}", "id", id, "owner", owner);
    if (reason)
        json_object_set_new (request, "reason", json_string (reason));
    return testkit_call (self->kit, "approval", method, request, 5000,
                         reply_p);
}

//  Asserts a decision's reply: {"reservation":id,"decision":decision}.
static void
s_assert_decided (json_t *reply, const char *id, const char *decision)
{
    assert_int_equal (json_object_size (reply), 2);
    assert_string_equal (json_string_value (json_object_get (reply, "reservation")), id);
    assert_string_equal (json_string_value (json_object_get (reply, "decision")),
                         decision);
}

//  --------------------------------------------------------------------------
//  Decisions: success

static void
test_auto_is_approved_at_once (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->automatic, "k-a1");
    assert_true (testkit_wait_status (self->kit, id, "CONFIRMED"));
    json_t *approved = testkit_event_of (self->kit, "approval.approved", id);
    assert_non_null (approved);
    json_t *data = json_object_get (approved, "data");
    assert_string_equal (json_string_value (json_object_get (data, "owner")), "olga");
    assert_true (json_is_true (json_object_get (data, "auto")));
    assert_string_equal (json_string_value (json_object_get (approved,
                         "correlation_id")), id);
    json_decref (approved);
    //  The owner approving too is a repeat of the same decision.
    json_t *reply = NULL;
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 200);
    s_assert_decided (reply, id, "approved");
    json_decref (reply);
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "approval.approved", id), 1);
    assert_int_equal (testkit_count (self->kit, "reservation.confirmed", id),
                      1);
    free (id);
}

static void
test_manual_approve (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-m1");
    assert_true (s_wait_caught_up (self));
    assert_string_equal (testkit_status (self->kit, id), "PENDING");
    json_t *reply = NULL;
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 200);
    s_assert_decided (reply, id, "approved");
    json_decref (reply);
    assert_true (testkit_wait_status (self->kit, id, "CONFIRMED"));
    //  Again: the same answer, nothing new.
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 200);
    s_assert_decided (reply, id, "approved");
    json_decref (reply);
    assert_true (testkit_wait_count (self->kit, "reservation.confirmed", id,
                                     1));
    zclock_sleep (300);
    json_t *approved = testkit_event_of (self->kit, "approval.approved", id);
    assert_true (json_is_false (json_object_get (json_object_get (approved, "data"),
                                                 "auto")));
    json_decref (approved);
    assert_int_equal (testkit_count (self->kit, "approval.approved", id), 1);
    assert_int_equal (testkit_count (self->kit, "reservation.confirmed", id),
                      1);
    free (id);
}

static void
test_manual_decline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-d1");
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 2);
    json_t *reply = NULL;
    for (int round = 0; round < 2; round++) {
        assert_int_equal (s_decide (self, "decline", id, "olga", "closed in March",
                                    &reply), 200);
        s_assert_decided (reply, id, "declined");
        json_decref (reply);
    }
    assert_true (testkit_wait_status (self->kit, id, "DECLINED"));
    assert_int_equal (testkit_act (self->kit, "get", id, NULL, &reply), 200);
    assert_string_equal (json_string_value (json_object_get (reply, "reason")),
                         "closed in March");
    json_decref (reply);
    //  availability releases the declined reservation's hold.
    assert_true (testkit_wait_free (self->kit, self->manual, 3));
    assert_int_equal (testkit_count (self->kit, "approval.declined", id), 1);
    //  Without a reason, one is given.
    char *other = testkit_reserved (self->kit, self->manual, "k-d2");
    assert_int_equal (s_decide (self, "decline", other, "olga", NULL, &reply), 200);
    json_decref (reply);
    assert_true (testkit_wait_status (self->kit, other, "DECLINED"));
    assert_int_equal (testkit_act (self->kit, "get", other, NULL, &reply), 200);
    assert_non_null (json_string_value (json_object_get (reply, "reason")));
    json_decref (reply);
    free (id);
    free (other);
}

//  Reserves with request id key, approves at once (round names it in a
//  failure), and once CONFIRMED cancels, freeing the unit for the next.
static void
s_approve_at_once (fixture_t *self, const char *key, int round)
{
    char *id = testkit_reserved (self->kit, self->manual, key);
    json_t *reply = NULL;
    int status = s_decide (self, "approve", id, "olga", NULL, &reply);
    if (status != 200)
        fail_msg ("round %d: %d %s", round, status, testkit_message (reply));
    json_decref (reply);
    assert_true (testkit_wait_status (self->kit, id, "CONFIRMED"));
    assert_int_equal (testkit_act (self->kit, "cancel", id, "carla", &reply),
                      200);
    json_decref (reply);
    assert_true (testkit_wait_free (self->kit, self->manual, 3));
    free (id);
}

static void
test_decision_right_after_reserve (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  The approve may come before approval's consumer has the request:
    //  the handler catches up from the journal rather than answer 404.
    for (int round = 0; round < 5; round++) {
        char key [16];
        snprintf (key, sizeof key, "k-r%d", round);
        s_approve_at_once (self, key, round);
    }
}

static int
s_setup_short (void **state)
{
    static const char *env [] = {
        "RESV_APPROVAL_TIMEOUT", "300", "RESV_APPROVAL_TICK", "100", NULL
    };
    return s_setup_with (state, env);
}

static void
test_expiry (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-x1");
    assert_true (testkit_wait_status (self->kit, id, "EXPIRED"));
    json_t *reply = NULL;
    assert_int_equal (testkit_act (self->kit, "get", id, NULL, &reply), 200);
    assert_non_null (json_string_value (json_object_get (reply, "reason")));
    json_decref (reply);
    assert_true (testkit_wait_count (self->kit, "reservation.expired", id, 1));
    assert_true (testkit_wait_free (self->kit, self->manual, 3));
    //  Too late to decide.
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 409);
    testkit_assert_error (reply, 409, "conflict");
    json_decref (reply);
    //  An auto reservation never expires.
    char *automatic = testkit_reserved (self->kit, self->automatic, "k-x2");
    assert_true (testkit_wait_status (self->kit, automatic, "CONFIRMED"));
    zclock_sleep (600);
    assert_string_equal (testkit_status (self->kit, automatic), "CONFIRMED");
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "reservation.expired", id), 1);
    free (id);
    free (automatic);
}

static void
test_expiry_survives_restart (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  One request recorded before approval stops...
    char *recorded = testkit_reserved (self->kit, self->manual, "k-s1");
    assert_true (s_wait_caught_up (self));
    testkit_stop (self->kit, "approval");
    //  ...one made while it is down: it finds it in the journal.
    char *missed = testkit_reserved (self->kit, self->manual, "k-s2");
    zclock_sleep (700);
    //  Both deadlines passed, and no approval process saw them pass.
    assert_string_equal (testkit_status (self->kit, recorded), "PENDING");
    assert_string_equal (testkit_status (self->kit, missed), "PENDING");
    //  A new approval state: the deadlines come from its store.
    testkit_start (self->kit, "approval");
    assert_true (testkit_wait_status (self->kit, recorded, "EXPIRED"));
    assert_true (testkit_wait_status (self->kit, missed, "EXPIRED"));
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "reservation.expired",
                                     recorded), 1);
    assert_int_equal (testkit_count (self->kit, "reservation.expired", missed),
                      1);
    free (recorded);
    free (missed);
}


//  A tick that closes a whole batch of expiries (100) goes on at once
//  with the rest, rather than leaving them for the next tick.
static int
s_setup_slow_tick (void **state)
{
    static const char *env [] = {
        "RESV_APPROVAL_TIMEOUT", "300", "RESV_APPROVAL_TICK", "3000", NULL
    };
    return s_setup_with (state, env);
}

static void
test_expiry_of_more_than_a_batch (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  150 reservations made while approval is down: when it starts, every
    //  deadline has passed, and its first tick (3 s later) finds them all.
    char *resource = testkit_resource (self->kit, 150, 1200, "manual");
    testkit_stop (self->kit, "approval");
    char *ids [150];
    for (int index = 0; index < 150; index++) {
        char request_id [16];
        snprintf (request_id, sizeof request_id, "k-m%d", index);
        ids [index] = testkit_reserved (self->kit, resource, request_id);
    }
    zclock_sleep (400);
    testkit_start (self->kit, "approval");
    assert_true (TESTKIT_WAIT (10000,
        testkit_count (self->kit, "reservation.expired", NULL) >= 1));
    int64_t first = zclock_mono ();
    //  The second batch follows the first at once: all 150 long before
    //  the next tick would have come (3 s after the first one ended).
    assert_true (TESTKIT_WAIT (10000,
        testkit_count (self->kit, "reservation.expired", NULL) >= 150));
    int64_t all = zclock_mono ();
    assert_true (all - first < 2000);
    for (int index = 0; index < 150; index++) {
        assert_string_equal (testkit_status (self->kit, ids [index]), "EXPIRED");
        free (ids [index]);
    }
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "reservation.expired", NULL), 150);
    free (resource);
}

//  --------------------------------------------------------------------------
//  Races with the expiry tick

static void
s_flag_set (int *flag)
{
    __atomic_store_n (flag, 1, __ATOMIC_SEQ_CST);
}

//  Waits up to 5 s for the flag; true when it is set.
static bool
s_flag_wait (int *flag)
{
    return TESTKIT_WAIT (5000, __atomic_load_n (flag, __ATOMIC_SEQ_CST));
}

//  The reservation service, but expire and decide of the race's
//  reservation each wait for the test before they run and before they
//  answer.
static int
s_gated_reservation (void *state, const char *method, zframe_t **body_p,
                     int64_t deadline, zframe_t **reply_p)
{
    s_gated_t *self = (s_gated_t *) state;
    json_t *request = worker_parse (*body_p, reply_p);
    if (!request)
        return RESV_BAD_REQUEST;
    const char *id = json_string_value (json_object_get (request, "id"));
    s_gate_t *gate = NULL;
    if (id && streq (id, self->race->id))
        gate = streq (method, "expire")? &self->race->expire:
               streq (method, "decide")? &self->race->decide: NULL;
    json_decref (request);
    if (gate) {
        s_flag_set (&gate->came);
        s_flag_wait (&gate->run);
    }
    int status = svc_reservation (self->reservation, method, body_p, deadline,
                                  reply_p);
    if (gate) {
        s_flag_set (&gate->ran);
        s_flag_wait (&gate->reply);
    }
    return status;
}

//  Two gated reservation workers in place of the real one, each taking one
//  request at a time (credit 1: s_setup_ticking): while one holds a call,
//  the other serves.
static void
s_gates_start (fixture_t *self)
{
    testkit_stop (self->kit, "reservation");
    const svc_t svc = { .name = "reservation",
                        .handler = s_gated_reservation };
    for (int index = 0; index < 2; index++) {
        self->gated [index].race = &self->race;
        self->gated [index].reservation =
            svc_reservation_new (testkit_cfg (self->kit), NULL);
        assert_non_null (self->gated [index].reservation);
        testkit_start_with (self->kit, &svc, &self->gated [index]);
    }
}

//  Opens every gate and stops the gated workers, if they run.
static void
s_gates_stop (fixture_t *self)
{
    s_flag_set (&self->race.expire.run);
    s_flag_set (&self->race.expire.reply);
    s_flag_set (&self->race.decide.run);
    s_flag_set (&self->race.decide.reply);
    testkit_stop (self->kit, "reservation");
    for (int index = 0; index < 2; index++)
        svc_reservation_destroy (&self->gated [index].reservation);
}

//  The outcome approval's row of id has, "" while it has none (caller
//  frees). Not through testkit_sql_text: store_stmt keeps statements by
//  the address of their text, which a text built here does not keep.
static char *
s_outcome (fixture_t *self, const char *id)
{
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (store_db (self->store),
        "SELECT outcome FROM approvals WHERE reservation = ?1", -1, &stmt,
        NULL), SQLITE_OK);
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    const char *outcome = sqlite3_step (stmt) == SQLITE_ROW?
                          (const char *) sqlite3_column_text (stmt, 0): NULL;
    char *text = strdup (outcome? outcome: "");
    sqlite3_finalize (stmt);
    return text;
}

//  True once approval's row of id has outcome.
static bool
s_outcome_is (fixture_t *self, const char *id, const char *outcome)
{
    char *actual = s_outcome (self, id);
    bool equal = streq (actual, outcome);
    zstr_free (&actual);
    return equal;
}

//  Sets the deadline of approval's row of id (wall-clock ms).
static void
s_deadline_set (fixture_t *self, const char *id, int64_t deadline_ms)
{
    char *sql = zsys_sprintf ("UPDATE approvals SET deadline_ms = %" PRId64
                              " WHERE reservation = '%s'", deadline_ms, id);
    assert_int_equal (sqlite3_exec (store_db (self->store), sql, NULL, NULL,
                                    NULL), SQLITE_OK);
    zstr_free (&sql);
}

//  Stages one round of a race on raced: the tick picks it, with next, the
//  row due after it, that tells when the tick is done with raced; then the
//  owner's method (approve or decline) comes, as one whose deadline check
//  came just before the deadline passed (its deadline is put back for it).
//  expiry_wins tells whether the tick's expire runs before the decision
//  comes (the expiry wins) or after its decide (the decision wins). Either
//  way the tick takes its reply, and closes what it closes, before the
//  decision takes its own. Returns the decision's status; *reply_p its
//  reply (caller owns).
static int
s_race_round (fixture_t *self, const char *method, const char *raced,
              const char *next, bool expiry_wins, json_t **reply_p)
{
    s_race_t *race = &self->race;
    memset (race, 0, sizeof *race);
    snprintf (race->id, sizeof race->id, "%s", raced);
    race->expire.run = expiry_wins;
    race->decide.run = !expiry_wins;
    //  Both due at once, raced first: one tick picks both.
    char *sql = zsys_sprintf ("UPDATE approvals SET deadline_ms ="
                              " CASE reservation WHEN '%s' THEN 1 ELSE 2 END"
                              " WHERE reservation IN ('%s', '%s')",
                              raced, raced, next);
    assert_int_equal (sqlite3_exec (store_db (self->store), sql, NULL, NULL,
                                    NULL), SQLITE_OK);
    zstr_free (&sql);
    //  The tick picked raced (still undecided) and asks to expire it; its
    //  expire has run (EXPIRED) or waits to.
    assert_true (s_flag_wait (expiry_wins? &race->expire.ran:
                                           &race->expire.came));
    //  The owner's decision, checked against a deadline not yet passed.
    s_deadline_set (self, raced, resv_time_ms () + 60000);
    resv_t *client = testkit_client_new (self->kit);
    resv_set_retry (client, 0);
    char *body = zsys_sprintf ("{\"id\":\"%s\",\"owner\":\"olga\"}", raced);
    assert_true (resv_send (client, "approval", method, body, strlen (body),
                            10000) > 0);
    zstr_free (&body);
    if (expiry_wins)
        //  Recorded and journaled; its decide waits.
        assert_true (s_flag_wait (&race->decide.came));
    else {
        //  Its decide moved the reservation; the reply waits. Then the
        //  tick's expire runs, and finds it moved.
        assert_true (s_flag_wait (&race->decide.ran));
        s_flag_set (&race->expire.run);
    }
    //  The tick takes its reply, and closes raced or leaves it to the
    //  decision; once next is closed, it is done with raced.
    s_flag_set (&race->expire.reply);
    assert_true (TESTKIT_WAIT (5000, s_outcome_is (self, next, "EXPIRED")));
    //  Only now does the decision learn what became of it.
    s_flag_set (&race->decide.run);
    s_flag_set (&race->decide.reply);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, 10000, &reply), 0);
    *reply_p = json_loads (reply.body, 0, NULL);
    assert_non_null (*reply_p);
    free (reply.body);
    resv_destroy (&client);
    return reply.status;
}

//  A quick tick; reservation workers of credit 1, so that a call one of
//  them holds leaves the next call to the other.
static int
s_setup_ticking (void **state)
{
    static const char *env [] = {
        "RESV_APPROVAL_TICK", "50", "RESV_WORKERS_RESERVATION_CREDIT", "1",
        NULL
    };
    return s_setup_with (state, env);
}

//  Stops the gated workers (a test that failed left them), then the rest;
//  unsets the credit once no worker runs, for the tests after.
static int
s_teardown_ticking (void **state)
{
    s_gates_stop ((fixture_t *) *state);
    s_teardown (state);
    unsetenv ("RESV_WORKERS_RESERVATION_CREDIT");
    return 0;
}

//  Reserves two manual reservations of resource per method: raced [i],
//  the one a round races, and next [i], due just after it, which shows
//  when the tick is done with the first. tag keeps the tests' keys apart.
static void
s_race_pairs (fixture_t *self, const char *resource, const char **methods,
              const char *tag, char **raced, char **next)
{
    for (int i = 0; methods [i]; i++) {
        char key [32];
        snprintf (key, sizeof key, "k-%s-%s", tag, methods [i]);
        raced [i] = testkit_reserved (self->kit, resource, key);
        snprintf (key, sizeof key, "k-%s-%s-next", tag, methods [i]);
        next [i] = testkit_reserved (self->kit, resource, key);
    }
}

//  The tick picks a row whose approve (or decline) has checked the
//  deadline and not yet committed; that decision's decide moves the
//  reservation, and then the tick's expire gets 409 and takes its reply
//  before the decision does. The decision took effect: it answers 200, and
//  so does a repeat of it, as the first did (spec, section 4). The tick
//  closed the row as "CLOSED" before, and the repeat got 409.
static void
test_decision_wins_over_expiry (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *resource = testkit_resource (self->kit, 10, 1200, "manual");
    const char *methods [] = { "approve", "decline", NULL };
    const char *decisions [] = { "approved", "declined" };
    const char *outcomes [] = { "CONFIRMED", "DECLINED" };
    const char *effects [] = { "reservation.confirmed",
                               "reservation.declined" };
    const char *causes [] = { "approval.approved", "approval.declined" };
    char *raced [2], *next [2];
    s_race_pairs (self, resource, methods, "w", raced, next);
    assert_true (s_wait_caught_up (self));
    s_gates_start (self);
    for (int i = 0; methods [i]; i++) {
        json_t *reply = NULL;
        int status = s_race_round (self, methods [i], raced [i], next [i],
                                   false, &reply);
        if (status != 200)
            fail_msg ("%s: %d %s", methods [i], status,
                      testkit_message (reply));
        s_assert_decided (reply, raced [i], decisions [i]);
        json_decref (reply);
        assert_string_equal (testkit_status (self->kit, raced [i]),
                             outcomes [i]);
        //  The repeat answers as the first did.
        status = s_decide (self, methods [i], raced [i], "olga", NULL, &reply);
        if (status != 200)
            fail_msg ("%s again: %d %s", methods [i], status,
                      testkit_message (reply));
        s_assert_decided (reply, raced [i], decisions [i]);
        json_decref (reply);
        //  The row says what the decision did; the tick wrote nothing.
        char *outcome = s_outcome (self, raced [i]);
        assert_string_equal (outcome, outcomes [i]);
        zstr_free (&outcome);
        //  One decision, one move, the decision first, no expiry.
        assert_true (testkit_wait_count (self->kit, effects [i], raced [i],
                                         1));
        assert_true (testkit_wait_count (self->kit, "reservation.expired",
                                         next [i], 1));
        zclock_sleep (300);
        assert_int_equal (testkit_count (self->kit, causes [i], raced [i]),
                          1);
        assert_int_equal (testkit_count (self->kit, effects [i], raced [i]),
                          1);
        assert_int_equal (testkit_count (self->kit, "reservation.expired",
                                         raced [i]), 0);
        assert_int_equal (testkit_count (self->kit, "reservation.expired",
                                         next [i]), 1);
        json_t *cause = testkit_event_of (self->kit, causes [i], raced [i]);
        json_t *effect = testkit_event_of (self->kit, effects [i], raced [i]);
        assert_true (json_integer_value (json_object_get (cause, "seq"))
                   < json_integer_value (json_object_get (effect, "seq")));
        json_decref (cause);
        json_decref (effect);
    }
    for (int i = 0; methods [i]; i++) {
        free (raced [i]);
        free (next [i]);
    }
    free (resource);
}

//  The other way round: the tick's expire moves the reservation after the
//  decision checked its deadline, and before its decide. The expiry won:
//  the decision is answered 409, and so is a repeat of it; the reservation
//  expired once, and its decision, journaled, moved nothing.
static void
test_expiry_wins_over_decision (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *resource = testkit_resource (self->kit, 10, 1200, "manual");
    const char *methods [] = { "approve", "decline", NULL };
    const char *effects [] = { "reservation.confirmed",
                               "reservation.declined" };
    const char *causes [] = { "approval.approved", "approval.declined" };
    char *raced [2], *next [2];
    s_race_pairs (self, resource, methods, "x", raced, next);
    assert_true (s_wait_caught_up (self));
    s_gates_start (self);
    for (int i = 0; methods [i]; i++) {
        json_t *reply = NULL;
        int status = s_race_round (self, methods [i], raced [i], next [i],
                                   true, &reply);
        if (status != 409)
            fail_msg ("%s: %d %s", methods [i], status,
                      testkit_message (reply));
        testkit_assert_error (reply, 409, "conflict");
        assert_non_null (strstr (testkit_message (reply), "EXPIRED"));
        json_decref (reply);
        assert_string_equal (testkit_status (self->kit, raced [i]), "EXPIRED");
        status = s_decide (self, methods [i], raced [i], "olga", NULL, &reply);
        if (status != 409)
            fail_msg ("%s again: %d %s", methods [i], status,
                      testkit_message (reply));
        testkit_assert_error (reply, 409, "conflict");
        json_decref (reply);
        assert_true (testkit_wait_count (self->kit, "reservation.expired",
                                         raced [i], 1));
        assert_true (testkit_wait_count (self->kit, causes [i], raced [i], 1));
        assert_true (testkit_wait_count (self->kit, "payment.voided",
                                         raced [i], 1));
        zclock_sleep (300);
        assert_int_equal (testkit_count (self->kit, "reservation.expired",
                                         raced [i]), 1);
        assert_int_equal (testkit_count (self->kit, "payment.voided",
                                         raced [i]), 1);
        assert_int_equal (testkit_count (self->kit, effects [i], raced [i]),
                          0);
        assert_string_equal (testkit_status (self->kit, raced [i]), "EXPIRED");
    }
    for (int i = 0; methods [i]; i++) {
        free (raced [i]);
        free (next [i]);
    }
    free (resource);
}

//  Reservation workers that answer as s_setup_ticking's do, and a stop
//  that waits 500 ms for the broker (worker_stop_wait of a stop_timeout of
//  2 s).
static int
s_setup_stopping (void **state)
{
    static const char *env [] = {
        "RESV_APPROVAL_TICK", "50", "RESV_WORKERS_RESERVATION_CREDIT", "1",
        "RESV_RESVD_STOP_TIMEOUT", "2000", NULL
    };
    return s_setup_with (state, env);
}

static int
s_teardown_stopping (void **state)
{
    s_teardown_ticking (state);
    unsetenv ("RESV_RESVD_STOP_TIMEOUT");
    return 0;
}

//  A stop while the tick's expire waits for a reservation service that
//  does not answer gives up on it once the stop's time for the broker is
//  over (500 ms here), and leaves the row open: the next start asks again,
//  and a repeated expire answers as the first did. The tick's call waited
//  its whole deadline (S_EXPIRE_TIMEOUT, 5 s), the stop with it, and with
//  a stop_timeout under 6 s resvd killed the process.
static void
test_stop_gives_up_on_an_unanswered_expire (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-stop");
    assert_true (s_wait_caught_up (self));
    s_gates_start (self);
    s_race_t *race = &self->race;
    memset (race, 0, sizeof *race);
    snprintf (race->id, sizeof race->id, "%s", id);
    s_deadline_set (self, id, 1);
    //  The tick asks to expire it; the expire waits for the test.
    assert_true (s_flag_wait (&race->expire.came));
    int64_t start = zclock_mono ();
    testkit_stop (self->kit, "approval");
    int64_t took = zclock_mono () - start;
    if (took >= 3000)
        fail_msg ("the stop took %" PRId64 " ms", took);
    //  Nothing was closed: the row waits for the next start.
    char *outcome = s_outcome (self, id);
    assert_string_equal (outcome, "");
    zstr_free (&outcome);
    //  The expire given up on runs after all; the next start's repeat of
    //  it is answered as the first was, and closes the row.
    s_flag_set (&race->expire.run);
    s_flag_set (&race->expire.reply);
    testkit_start (self->kit, "approval");
    assert_true (TESTKIT_WAIT (5000, s_outcome_is (self, id, "EXPIRED")));
    assert_string_equal (testkit_status (self->kit, id), "EXPIRED");
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "reservation.expired", id), 1);
    free (id);
}

//  --------------------------------------------------------------------------
//  Decisions: failures

static void
test_not_the_owner (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-o1");
    const char *methods [] = { "approve", "decline", NULL };
    for (const char **method = methods; *method; method++) {
        json_t *reply = NULL;
        assert_int_equal (s_decide (self, *method, id, "mallory", NULL, &reply), 403);
        testkit_assert_error (reply, 403, "forbidden");
        json_decref (reply);
        //  Not even the customer.
        assert_int_equal (s_decide (self, *method, id, "carla", NULL, &reply), 403);
        testkit_assert_error (reply, 403, "forbidden");
        json_decref (reply);
    }
    zclock_sleep (200);
    assert_string_equal (testkit_status (self->kit, id), "PENDING");
    assert_int_equal (testkit_count (self->kit, "approval.approved", id), 0);
    assert_int_equal (testkit_count (self->kit, "approval.declined", id), 0);
    free (id);
}

static void
test_unknown_reservation (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    assert_int_equal (s_decide (self, "approve", "r-none", "olga", NULL, &reply), 404);
    testkit_assert_error (reply, 404, "not_found");
    assert_string_equal (testkit_message (reply),
                         "no reservation 'r-none' awaits approval");
    json_decref (reply);
    assert_int_equal (s_decide (self, "decline", "r-none", "olga", "no", &reply), 404);
    testkit_assert_error (reply, 404, "not_found");
    json_decref (reply);
}

//  Decisions on made-up ids, which never were reservations, cost the one
//  approval worker one catch-up each, not the waits a reservation made a
//  moment ago may need: a run of them must not hold up a real decision
//  behind them past its deadline (each took some 350 ms of the worker).
static void
test_unknown_ids_do_not_hold_up_decisions (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-u1");
    assert_true (s_wait_caught_up (self));
    resv_t *client = testkit_client (self->kit);
    //  Of the reservation service's form and made just now (r, 12 hex
    //  digits of ms, 20 of a hash), as a reservation that is on its way
    //  would be, but ids it does not have.
    int64_t made_up [10];
    for (int i = 0; i < 10; i++) {
        char body [128];
        snprintf (body, sizeof body,
                  "{\"id\":\"r%012" PRIx64 "0123456789abcdef%04d\","
                  "\"owner\":\"olga\"}",
                  (uint64_t) resv_time_ms () & 0xffffffffffff, i);
        made_up [i] = resv_send (client, "approval", "approve", body,
                                 strlen (body), 10000);
        assert_true (made_up [i] > 0);
    }
    json_t *request = json_pack ("{s:s,s:s}", "id", id, "owner", "olga");
    json_t *reply = NULL;
    //  A deadline of 2 s: ten made-up ids at 350 ms each took 3.5 s.
    int status = testkit_call (self->kit, "approval", "approve", request,
                               2000, &reply);
    if (status != 200)
        fail_msg ("the real decision: %d %s", status, testkit_message (reply));
    s_assert_decided (reply, id, "approved");
    json_decref (reply);
    for (int i = 0; i < 10; i++) {
        resv_reply_t answer;
        assert_int_equal (resv_recv (client, 10000, &answer), 0);
        assert_int_equal (answer.status, 404);
        free (answer.body);
    }
    free (id);
}

static int
s_setup_fast_heartbeat (void **state)
{
    static const char *env [] = {
        "RESV_BROKER_HEARTBEAT", "100", "RESV_BROKER_LIVENESS", "3", NULL
    };
    return s_setup_with (state, env);
}

//  A decision waits for reservation decide, here for a second behind a
//  lock on the reservation store, three times the broker's liveness (three
//  heartbeats of 100 ms): the approval worker's heartbeats go on
//  meanwhile, so the broker keeps it and hands it the request once. Its
//  calls went through a client of their own, the worker silent: the
//  broker took it for dead in the middle of them, and every other
//  decision then got 503 no_worker until it came back.
static void
test_slow_decide_keeps_its_worker_alive (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-s1");
    assert_true (s_wait_caught_up (self));
    int64_t served = testkit_served (self->kit, "approval");
    FILE *log = testkit_log_start ();
    char *path = zsys_sprintf ("%s/reservation.db", testkit_dir (self->kit));
    sqlite3 *lock = NULL;
    assert_int_equal (sqlite3_open (path, &lock), SQLITE_OK);
    zstr_free (&path);
    assert_int_equal (sqlite3_exec (lock, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                      SQLITE_OK);
    char body [128];
    snprintf (body, sizeof body, "{\"id\":\"%s\",\"owner\":\"olga\"}", id);
    resv_t *client = testkit_client (self->kit);
    assert_true (resv_send (client, "approval", "approve", body, strlen (body),
                            10000) > 0);
    zclock_sleep (1000);
    assert_int_equal (sqlite3_exec (lock, "ROLLBACK", NULL, NULL, NULL),
                      SQLITE_OK);
    sqlite3_close (lock);
    resv_reply_t answer;
    assert_int_equal (resv_recv (client, 10000, &answer), 0);
    bool expired = testkit_log_end (log, "expired");
    if (answer.status != 200)
        fail_msg ("%d %.200s", answer.status, answer.body);
    free (answer.body);
    assert_int_equal (testkit_served (self->kit, "approval"), served + 1);
    assert_false (expired);
    assert_true (testkit_wait_status (self->kit, id, "CONFIRMED"));
    free (id);
}

static void
test_conflicting_decisions (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    char *approved = testkit_reserved (self->kit, self->manual, "k-c1");
    assert_int_equal (s_decide (self, "approve", approved, "olga", NULL, &reply), 200);
    json_decref (reply);
    assert_int_equal (s_decide (self, "decline", approved, "olga", NULL, &reply), 409);
    testkit_assert_error (reply, 409, "conflict");
    assert_non_null (strstr (testkit_message (reply), "approved"));
    json_decref (reply);

    char *declined = testkit_reserved (self->kit, self->manual, "k-c2");
    assert_int_equal (s_decide (self, "decline", declined, "olga", NULL, &reply), 200);
    json_decref (reply);
    assert_int_equal (s_decide (self, "approve", declined, "olga", NULL, &reply), 409);
    testkit_assert_error (reply, 409, "conflict");
    assert_non_null (strstr (testkit_message (reply), "declined"));
    json_decref (reply);

    char *automatic = testkit_reserved (self->kit, self->automatic, "k-c3");
    assert_int_equal (s_decide (self, "decline", automatic, "olga", NULL, &reply), 409);
    testkit_assert_error (reply, 409, "conflict");
    json_decref (reply);

    assert_true (testkit_wait_status (self->kit, approved, "CONFIRMED"));
    assert_true (testkit_wait_status (self->kit, declined, "DECLINED"));
    assert_true (testkit_wait_status (self->kit, automatic, "CONFIRMED"));
    free (approved);
    free (declined);
    free (automatic);
}

static void
test_no_longer_pending (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-p1");
    json_t *reply = NULL;
    assert_int_equal (testkit_act (self->kit, "cancel", id, "carla", &reply),
                      200);
    json_decref (reply);
    assert_true (testkit_wait_count (self->kit, "reservation.cancelled", id,
                                     1));
    assert_true (s_wait_caught_up (self));
    const char *methods [] = { "approve", "decline", NULL };
    for (const char **method = methods; *method; method++) {
        assert_int_equal (s_decide (self, *method, id, "olga", NULL, &reply), 409);
        testkit_assert_error (reply, 409, "conflict");
        assert_non_null (strstr (testkit_message (reply), "CANCELLED"));
        json_decref (reply);
    }
    assert_string_equal (testkit_status (self->kit, id), "CANCELLED");
    free (id);
}

//  A cancel that approval has not heard of yet (its reservation.cancelled
//  still on its way: the row is reopened here to stand for that moment)
//  does not let a decision answer 200 for a reservation that will never
//  be CONFIRMED or DECLINED: the cancel won, so the decision gets 409, and
//  so does a repeat of it. The decision's event is journaled, and the
//  reservation service ignores it.
static void
test_decision_after_unheard_cancel (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *methods [] = { "approve", "decline", NULL };
    for (const char **method = methods; *method; method++) {
        char key [16];
        snprintf (key, sizeof key, "k-u-%s", *method);
        char *id = testkit_reserved (self->kit, self->manual, key);
        assert_true (s_wait_caught_up (self));
        json_t *reply = NULL;
        assert_int_equal (testkit_act (self->kit, "cancel", id, "carla",
                                       &reply), 200);
        json_decref (reply);
        assert_true (testkit_wait_count (self->kit, "reservation.cancelled",
                                         id, 1));
        assert_true (s_wait_caught_up (self));
        char *sql = zsys_sprintf ("UPDATE approvals SET outcome = NULL"
                                  " WHERE reservation = '%s'", id);
        assert_int_equal (sqlite3_exec (store_db (self->store), sql, NULL,
                                        NULL, NULL), SQLITE_OK);
        zstr_free (&sql);
        assert_int_equal (s_decide (self, *method, id, "olga", NULL, &reply),
                          409);
        testkit_assert_error (reply, 409, "conflict");
        assert_non_null (strstr (testkit_message (reply), "CANCELLED"));
        json_decref (reply);
        assert_int_equal (s_decide (self, *method, id, "olga", NULL, &reply),
                          409);
        json_decref (reply);
        assert_string_equal (testkit_status (self->kit, id), "CANCELLED");
        free (id);
    }
}

//  A decision takes effect before its reply: the reservation is CONFIRMED
//  (or DECLINED) when approve (or decline) answers 200, and the journal
//  has the decision's event before the reservation's.
static void
test_decision_takes_effect_before_reply (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *methods [] = { "approve", "decline", NULL };
    const char *outcomes [] = { "CONFIRMED", "DECLINED", NULL };
    const char *effects [] = { "reservation.confirmed",
                               "reservation.declined", NULL };
    const char *causes [] = { "approval.approved", "approval.declined",
                              NULL };
    for (int i = 0; methods [i]; i++) {
        char key [16];
        snprintf (key, sizeof key, "k-e-%s", methods [i]);
        char *id = testkit_reserved (self->kit, self->manual, key);
        assert_true (s_wait_caught_up (self));
        json_t *reply = NULL;
        assert_int_equal (s_decide (self, methods [i], id, "olga", NULL,
                                    &reply), 200);
        json_decref (reply);
        assert_string_equal (testkit_status (self->kit, id), outcomes [i]);
        assert_true (testkit_wait_count (self->kit, effects [i], id, 1));
        json_t *cause = testkit_event_of (self->kit, causes [i], id);
        json_t *effect = testkit_event_of (self->kit, effects [i], id);
        assert_non_null (cause);
        assert_non_null (effect);
        assert_true (json_integer_value (json_object_get (cause, "seq"))
                   < json_integer_value (json_object_get (effect, "seq")));
        json_decref (cause);
        json_decref (effect);
        //  Applied later, the event moves nothing again.
        zclock_sleep (300);
        assert_int_equal (testkit_count (self->kit, effects [i], id), 1);
        assert_int_equal (testkit_count (self->kit, causes [i], id), 1);
        free (id);
    }
}

//  The consumer takes its two types apart (by type), so after a lost event
//  a cancellation may be applied before its request (the request read back
//  from the journal later): the request then opens nothing and approves
//  nothing, and a decision is refused. Published one after the other here,
//  each applied before the next comes.
static void
test_cancelled_before_requested (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    testkit_publish (self->kit, testkit_event (self->kit, NULL,
        "reservation.cancelled", "r-t1",
        json_pack ("{s:s}", "previous", "PENDING")));
    assert_true (s_wait_caught_up (self));
    testkit_publish (self->kit, testkit_event (self->kit, NULL,
        "reservation.requested", "r-t1",
        json_pack ("{s:s,s:s}", "owner", "olga", "approval", "auto")));
    assert_true (s_wait_caught_up (self));
    assert_int_equal (testkit_count (self->kit, "approval.", "r-t1"), 0);
    json_t *reply = NULL;
    assert_int_equal (s_decide (self, "approve", "r-t1", "olga", NULL, &reply),
                      409);
    assert_string_equal (testkit_message (reply),
                         "reservation r-t1 is CANCELLED, no longer PENDING");
    json_decref (reply);
    //  Nothing waits to expire.
    assert_int_equal (testkit_sql_int (self->store,
        "SELECT count (*) FROM approvals WHERE outcome IS NULL"
        " AND reservation = 'r-t1'"), 0);
}

static int
s_setup_no_tick (void **state)
{
    static const char *env [] = {
        "RESV_APPROVAL_TIMEOUT", "300", "RESV_APPROVAL_TICK", "600000", NULL
    };
    return s_setup_with (state, env);
}

static void
test_past_deadline_before_expiry (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-l1");
    assert_true (s_wait_caught_up (self));
    zclock_sleep (400);
    //  The deadline passed; no tick has expired it yet. The owner is too
    //  late all the same.
    json_t *reply = NULL;
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 409);
    testkit_assert_error (reply, 409, "conflict");
    assert_non_null (strstr (testkit_message (reply), "deadline"));
    json_decref (reply);
    assert_string_equal (testkit_status (self->kit, id), "PENDING");
    assert_int_equal (testkit_count (self->kit, "approval.approved", id), 0);
    free (id);
}

static void
test_bad_requests (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *big = (char *) malloc (200 * 1024 + 1);
    memset (big, 'o', 200 * 1024);
    big [200 * 1024] = 0;
    char *huge = zsys_sprintf ("{\"id\":\"r1\",\"owner\":\"%s\"}", big);
    char *long_reason = zsys_sprintf ("{\"id\":\"r1\",\"owner\":\"olga\","
                                      "\"reason\":\"%.300s\"}", big);
    free (big);
    json_t *reply = NULL;
    assert_int_equal (testkit_direct (self->kit, "approval", "grant", "{}", 2,
                                      &reply), 400);
    testkit_assert_error (reply, 400, "unknown_method");
    json_decref (reply);
    const struct {
        const char *method, *body, *reason;
    } cases [] = {
        { "approve", "", "bad_request" },
        { "approve", "{}", "bad_request" },
        { "approve", "{\"id\":\"r1\"}", "bad_request" },
        { "approve", "{\"owner\":\"olga\"}", "bad_request" },
        { "approve", "{\"id\":\"r1\",\"owner\":\"olga\",\"force\":true}", "bad_request" },
        { "approve", "{\"id\":17,\"owner\":\"olga\"}", "bad_request" },
        { "approve", "{\"id\":\"r1\",\"owner\":\"\"}", "bad_request" },
        { "approve", "{\"id\":\"r1' OR 1=1 --\",\"owner\":\"olga\"}", "bad_request" },
        { "approve", "{\"id\":\"r1\",\"owner\":\"olga\\\"\"}", "bad_request" },
        { "decline", "{\"id\":\"r1\",\"owner\":\"olga\",\"reason\":\"a\\nb\"}", "bad_request" },
        { "decline", "{\"id\":\"r1\",\"owner\":\"olga\",\"reason\":7}", "bad_request" },
        { "decline", "{\"id\":\"r1\",\"owner\":\"olga\",\"reason\":\"\"}", "bad_request" },
        { "decline", "{\"id\":\"r1\",\"owner\":\"olga\"", "malformed" },
        { "decline", "[\"r1\"]", "malformed" },
        { "approve", huge, "bad_request" },
        { "decline", long_reason, "bad_request" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int status = testkit_direct (self->kit, "approval", cases [i].method,
                                     cases [i].body, strlen (cases [i].body),
                                     &reply);
        if (status != 400)
            fail_msg ("%s %.60s: %d", cases [i].method, cases [i].body, status);
        testkit_assert_error (reply, 400, cases [i].reason);
        json_decref (reply);
    }
    zstr_free (&huge);
    zstr_free (&long_reason);
    assert_int_equal (testkit_count (self->kit, "approval.approved", NULL), 0);
    assert_int_equal (testkit_count (self->kit, "approval.declined", NULL), 0);
}

static void
test_store_failure (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-f1");
    assert_true (s_wait_caught_up (self));
    assert_int_equal (sqlite3_exec (store_db (self->store),
        "DROP TABLE approvals", NULL, NULL, NULL), SQLITE_OK);
    json_t *reply = NULL;
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 500);
    testkit_assert_error (reply, 500, "internal");
    assert_non_null (strstr (testkit_message (reply), id));
    assert_non_null (strstr (testkit_message (reply), "no such table"));
    json_decref (reply);
    assert_string_equal (testkit_status (self->kit, id), "PENDING");
    free (id);
}

//  Without a fixture: it sets the environment, which no thread may read
//  meanwhile.
static void
test_state_lifecycle (void **state)
{
    (void) state;
    testkit_assert_no_state (svc_approval_new, svc_approval_destroy);
    assert_int_equal (testkit_handle (svc_approval, NULL, "approve", "{}", 2,
                                      1000, NULL), 500);
}

int
main (void)
{
    testkit_init ();
    #define S_TEST(name) cmocka_unit_test_setup_teardown (name, s_setup, s_teardown)
    #define S_TEST_WITH(name, setup) \
        cmocka_unit_test_setup_teardown (name, setup, s_teardown)
    const struct CMUnitTest tests [] = {
        S_TEST (test_auto_is_approved_at_once),
        S_TEST (test_manual_approve),
        S_TEST (test_manual_decline),
        S_TEST (test_decision_right_after_reserve),
        S_TEST_WITH (test_expiry, s_setup_short),
        S_TEST_WITH (test_expiry_survives_restart, s_setup_short),
        S_TEST_WITH (test_expiry_of_more_than_a_batch, s_setup_slow_tick),
        cmocka_unit_test_setup_teardown (test_decision_wins_over_expiry,
                                         s_setup_ticking, s_teardown_ticking),
        cmocka_unit_test_setup_teardown (test_expiry_wins_over_decision,
                                         s_setup_ticking, s_teardown_ticking),
        cmocka_unit_test_setup_teardown (
            test_stop_gives_up_on_an_unanswered_expire, s_setup_stopping,
            s_teardown_stopping),
        S_TEST (test_not_the_owner),
        S_TEST (test_unknown_reservation),
        S_TEST (test_unknown_ids_do_not_hold_up_decisions),
        S_TEST_WITH (test_slow_decide_keeps_its_worker_alive,
                     s_setup_fast_heartbeat),
        S_TEST (test_conflicting_decisions),
        S_TEST (test_no_longer_pending),
        S_TEST (test_decision_after_unheard_cancel),
        S_TEST (test_decision_takes_effect_before_reply),
        S_TEST (test_cancelled_before_requested),
        S_TEST_WITH (test_past_deadline_before_expiry, s_setup_no_tick),
        S_TEST (test_bad_requests),
        S_TEST (test_store_failure),
        cmocka_unit_test (test_state_lifecycle),
    };
    return cmocka_run_group_tests_name ("svc_approval", tests, NULL, NULL);
}
