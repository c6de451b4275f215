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

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "svc.h"
#include "store.h"
#include "broker.h"
#include "resv_util.h"

//  The services a fixture runs, by index.
enum { S_AVAILABILITY, S_PAYMENT, S_RESERVATION, S_APPROVAL, S_SERVICES };
static const char *s_service_names [S_SERVICES] = {
    "availability", "payment", "reservation", "approval"
};

//  Environment knobs the setups set; each setup clears them all first.
static const char *s_knobs [] = {
    "RESV_APPROVAL_TIMEOUT", "RESV_APPROVAL_TICK", NULL
};

typedef struct {
    char dir [64];              //  Temporary data directory
    resv_cfg_t *broker_cfg;     //  The broker's (ephemeral ports)
    resv_cfg_t *cfg;            //  Everyone else's (the real ports)
    zactor_t *broker;           //  The real broker
    resv_t *client;             //  The test's client
    zactor_t *services [S_SERVICES];    //  Workers in threads
    store_t *store;             //  The test's look into approval.db
    void *direct;               //  An approval state called directly
    char manual [64];           //  A manual resource, capacity 3
    char automatic [64];        //  An auto resource, capacity 3
} fixture_t;


//  --------------------------------------------------------------------------
//  Workers in threads

typedef struct {
    resv_cfg_t *cfg;            //  Borrowed
    const char *name;           //  Service
    worker_handler_fn *handler;
    svc_new_fn *state_new;      //  NULL: state is given
    svc_destroy_fn *state_destroy;
    void *state;                //  Given state (a stub's)
} runner_t;

//  Runs one worker until $TERM, as resv-worker does. Signals twice: once
//  started (zactor_new waits for it), then 0 when serving or 1 when its
//  state could not be made.
static void
s_runner (zsock_t *pipe, void *args)
{
    runner_t *self = (runner_t *) args;
    zsock_signal (pipe, 0);
    worker_t *worker = worker_new (self->cfg, self->name);
    void *state = self->state;
    if (worker && self->state_new)
        state = self->state_new (self->cfg, worker);
    bool ready = worker && (state || !self->state_new);
    zsock_signal (pipe, ready? 0: 1);
    bool terminated = false;
    while (!terminated) {
        if (ready)
            worker_serve (worker, 10, self->handler, state);
        else
            zsock_wait (pipe);      //  Anything: only $TERM comes
        while (zsock_events (pipe) & ZMQ_POLLIN) {
            char *command = zstr_recv (pipe);
            terminated |= !command || streq (command, "$TERM");
            zstr_free (&command);
        }
    }
    if (self->state_new && state)
        self->state_destroy (&state);
    worker_destroy (&worker);
    free (self);
}

static zactor_t *
s_runner_new (fixture_t *self, const char *name, worker_handler_fn *handler,
              void *state)
{
    runner_t *runner = (runner_t *) zmalloc (sizeof (runner_t));
    runner->cfg = self->cfg;
    runner->name = name;
    if (handler) {
        runner->handler = handler;
        runner->state = state;
    }
    else {
        const svc_t *svc = svc_lookup (name);
        assert_non_null (svc);
        runner->handler = svc->handler;
        runner->state_new = svc->state_new;
        runner->state_destroy = svc->state_destroy;
    }
    zactor_t *actor = zactor_new (s_runner, runner);
    assert_non_null (actor);
    assert_int_equal (zsock_wait (actor), 0);
    return actor;
}

static void
s_start (fixture_t *self, int service)
{
    assert_null (self->services [service]);
    self->services [service] = s_runner_new (self, s_service_names [service],
                                             NULL, NULL);
}

static void
s_stop (fixture_t *self, int service)
{
    zactor_destroy (&self->services [service]);
}


//  --------------------------------------------------------------------------
//  Fixture

//  Adds a resource of owner olga; writes its id into id.
static void
s_resource (fixture_t *self, char *id, const char *approval)
{
    json_t *request = json_pack ("{s:s,s:s,s:i,s:i,s:s}", "name", "Room",
                                 "owner", "olga", "capacity", 3,
                                 "price", 1200, "approval", approval);
    json_t *reply = NULL;
    assert_int_equal (resv_call (self->client, "availability", "resource.add",
                                 request, 5000, &reply), 201);
    snprintf (id, 64, "%s", json_string_value (json_object_get (reply, "id")));
    assert_true (strlen (id) > 0);
    json_decref (request);
    json_decref (reply);
}

//  Starts a broker and the four services; env is NULL or a NULL-ended
//  list of name, value pairs set first.
static int
s_setup_with (void **state, const char **env)
{
    fixture_t *self = (fixture_t *) zmalloc (sizeof (fixture_t));
    strcpy (self->dir, "/tmp/resv-approval-test.XXXXXX");
    assert_non_null (mkdtemp (self->dir));
    //  Every variable is set before any thread starts: getenv is not safe
    //  against a concurrent setenv.
    for (const char **knob = s_knobs; *knob; knob++)
        unsetenv (*knob);
    for (; env && *env; env += 2)
        setenv (env [0], env [1], 1);
    setenv ("RESV_DATA_DIR", self->dir, 1);
    setenv ("RESV_BROKER_GRACE", "300", 1);
    setenv ("RESV_BROKER_FRONTEND", "tcp://127.0.0.1:*", 1);
    setenv ("RESV_BROKER_BACKEND", "tcp://127.0.0.1:*", 1);
    setenv ("RESV_BROKER_EVENTS", "tcp://127.0.0.1:*", 1);
    self->broker_cfg = resv_cfg_load (NULL);
    self->broker = broker_new (self->broker_cfg);
    assert_non_null (self->broker);
    char *frontend, *backend, *events;
    zstr_send (self->broker, "ENDPOINTS");
    zstr_recvx (self->broker, &frontend, &backend, &events, NULL);
    setenv ("RESV_BROKER_FRONTEND", frontend, 1);
    setenv ("RESV_BROKER_BACKEND", backend, 1);
    setenv ("RESV_BROKER_EVENTS", events, 1);
    self->client = resv_new (frontend);
    zstr_free (&frontend);
    zstr_free (&backend);
    zstr_free (&events);
    self->cfg = resv_cfg_load (NULL);
    for (int service = 0; service < S_SERVICES; service++)
        s_start (self, service);
    self->store = store_new (self->cfg, "approval", NULL);
    assert_non_null (self->store);
    s_resource (self, self->manual, "manual");
    s_resource (self, self->automatic, "auto");
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
    svc_approval_destroy (&self->direct);
    for (int service = S_SERVICES - 1; service >= 0; service--)
        s_stop (self, service);
    store_destroy (&self->store);
    resv_destroy (&self->client);
    zactor_destroy (&self->broker);
    resv_cfg_destroy (&self->cfg);
    resv_cfg_destroy (&self->broker_cfg);
    char *command = zsys_sprintf ("rm -rf '%s'", self->dir);
    assert_int_equal (system (command), 0);
    zstr_free (&command);
    free (self);
    return 0;
}


//  --------------------------------------------------------------------------
//  Helpers

//  Asserts that reply is an error object with code and reason.
static void
s_assert_error (json_t *reply, int code, const char *reason)
{
    json_t *error = json_object_get (reply, "error");
    assert_non_null (error);
    assert_int_equal (json_integer_value (json_object_get (error, "code")), code);
    const char *got = json_string_value (json_object_get (error, "reason"));
    assert_non_null (got);
    if (reason && !streq (got, reason))
        fail_msg ("reason '%s', expected '%s' (%s)", got, reason,
                  json_string_value (json_object_get (error, "message")));
    assert_non_null (json_string_value (json_object_get (error, "message")));
}

static const char *
s_message (json_t *reply)
{
    const char *message = json_string_value (json_object_get (
                          json_object_get (reply, "error"), "message"));
    return message? message: "";
}

//  Calls reservation/method with request (taken) through the broker.
static int
s_call (fixture_t *self, const char *method, json_t *request, int timeout,
        json_t **reply_p)
{
    int status = resv_call (self->client, "reservation", method, request,
                            timeout, reply_p);
    json_decref (request);
    return status;
}

//  A reserve of units of resource on 2027-03-01 for days, by customer,
//  with request_id (NULL: none).
static int
s_reserve (fixture_t *self, const char *customer, const char *resource,
           int days, int units, const char *request_id, json_t **reply_p)
{
    json_t *request = json_pack ("{s:s,s:s,s:s,s:i,s:i}", "customer", customer,
                                 "resource", resource, "date", "2027-03-01",
                                 "days", days, "units", units);
    if (request_id)
        json_object_set_new (request, "request_id", json_string (request_id));
    return s_call (self, "reserve", request, 5000, reply_p);
}

//  Reserves and asserts 201; returns the id (a copy, caller frees).
static char *
s_reserved (fixture_t *self, const char *resource, const char *request_id)
{
    json_t *reply = NULL;
    int status = s_reserve (self, "carla", resource, 1, 1, request_id, &reply);
    if (status != 201)
        fail_msg ("reserve: %d %s", status, s_message (reply));
    char *id = strdup (json_string_value (json_object_get (reply, "id")));
    json_decref (reply);
    return id;
}

//  Calls reservation/method {id} (with customer when not NULL).
static int
s_on (fixture_t *self, const char *method, const char *id,
      const char *customer, json_t **reply_p)
{
    json_t *request = json_pack ("{s:s}", "id", id);
    if (customer)
        json_object_set_new (request, "customer", json_string (customer));
    return s_call (self, method, request, 5000, reply_p);
}

//  The status of reservation id, "" when unknown.
static char *
s_status (fixture_t *self, const char *id)
{
    json_t *reply = NULL;
    static char status [32];
    status [0] = 0;
    if (s_on (self, "get", id, NULL, &reply) == 200)
        snprintf (status, sizeof status, "%s",
                  json_string_value (json_object_get (reply, "status")));
    json_decref (reply);
    return status;
}

static bool
s_wait_status (fixture_t *self, const char *id, const char *status)
{
    for (int i = 0; i < 250; i++) {
        if (streq (s_status (self, id), status))
            return true;
        zclock_sleep (20);
    }
    return false;
}

//  Free units of resource on date.
static int64_t
s_free (fixture_t *self, const char *resource, const char *date)
{
    json_t *request = json_pack ("{s:s,s:s}", "resource", resource, "date", date);
    json_t *reply = NULL;
    assert_int_equal (resv_call (self->client, "availability", "availability",
                                 request, 5000, &reply), 200);
    int64_t free_units = json_integer_value (json_object_get (json_array_get (
        json_object_get (reply, "days"), 0), "free"));
    json_decref (request);
    json_decref (reply);
    return free_units;
}

static bool
s_wait_free (fixture_t *self, const char *resource, int64_t units)
{
    for (int i = 0; i < 250; i++) {
        if (s_free (self, resource, "2027-03-01") == units)
            return true;
        zclock_sleep (20);
    }
    return false;
}

//  The journal's events about reservation id, in order (caller owns).
static json_t *
s_journal (fixture_t *self, const char *id)
{
    json_t *events = json_array ();
    int64_t from = 1;
    while (true) {
        json_t *request = json_pack ("{s:I,s:i}", "from", (json_int_t) from,
                                     "limit", 1000);
        json_t *page = NULL;
        assert_int_equal (resv_call (self->client, "events", "read", request,
                                     5000, &page), 200);
        json_decref (request);
        json_t *items = json_object_get (page, "items");
        size_t index;
        json_t *event;
        json_array_foreach (items, index, event) {
            const char *about = json_string_value (json_object_get (event, "reservation"));
            if (!id || (about && streq (about, id)))
                json_array_append (events, event);
        }
        from = json_integer_value (json_object_get (page, "next"));
        bool more = json_array_size (items) > 0
                 && from <= json_integer_value (json_object_get (page, "last"));
        json_decref (page);
        if (!more)
            return events;
    }
}

//  How many events of type the journal has about id.
static int
s_count (fixture_t *self, const char *id, const char *type)
{
    json_t *events = s_journal (self, id);
    int count = 0;
    size_t index;
    json_t *event;
    json_array_foreach (events, index, event)
        if (streq (json_string_value (json_object_get (event, "type")), type))
            count++;
    json_decref (events);
    return count;
}

//  The first event of type about id (caller owns), or NULL.
static json_t *
s_event_of (fixture_t *self, const char *id, const char *type)
{
    json_t *events = s_journal (self, id);
    json_t *found = NULL;
    size_t index;
    json_t *event;
    json_array_foreach (events, index, event)
        if (!found && streq (json_string_value (json_object_get (event, "type")), type))
            found = json_incref (event);
    json_decref (events);
    return found;
}

static bool
s_wait_count (fixture_t *self, const char *id, const char *type, int count)
{
    for (int i = 0; i < 250; i++) {
        if (s_count (self, id, type) >= count)
            return true;
        zclock_sleep (20);
    }
    return false;
}

//  The journal's newest seq.
static int64_t
s_journal_last (fixture_t *self)
{
    json_t *request = json_pack ("{s:i,s:i}", "from", 1, "limit", 1);
    json_t *page = NULL;
    assert_int_equal (resv_call (self->client, "events", "read", request,
                                 5000, &page), 200);
    int64_t last = json_integer_value (json_object_get (page, "last"));
    json_decref (request);
    json_decref (page);
    return last;
}

//  Waits until approval's cursor has every event journaled so far.
static bool
s_wait_caught_up (fixture_t *self)
{
    int64_t last = s_journal_last (self);
    for (int i = 0; i < 250; i++) {
        if (store_cursor (self->store, "approval") >= last)
            return true;
        zclock_sleep (20);
    }
    return false;
}

//  Calls approval/method {id, owner, reason?} through the broker.
static int
s_decide (fixture_t *self, const char *method, const char *id,
          const char *owner, const char *reason, json_t **reply_p)
{
    json_t *request = json_pack ("{s:s,s:s}", "id", id, "owner", owner);
    if (reason)
        json_object_set_new (request, "reason", json_string (reason));
    int status = resv_call (self->client, "approval", method, request, 5000,
                            reply_p);
    json_decref (request);
    return status;
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

//  Calls the handler of the direct state with a raw body.
static int
s_direct (fixture_t *self, const char *method, const char *body,
          size_t size, json_t **reply_p)
{
    if (!self->direct) {
        self->direct = svc_approval_new (self->cfg, NULL);
        assert_non_null (self->direct);
    }
    zframe_t *frame = zframe_new (body, size);
    zframe_t *reply = NULL;
    int status = svc_approval (self->direct, method, &frame,
                               zclock_mono () + 5000, &reply);
    zframe_destroy (&frame);
    *reply_p = reply? json_loadb ((const char *) zframe_data (reply),
                                  zframe_size (reply), 0, NULL): NULL;
    assert_true (!reply || *reply_p);   //  Every reply is JSON
    zframe_destroy (&reply);
    return status;
}


//  --------------------------------------------------------------------------
//  Decisions: success

static void
test_auto_is_approved_at_once (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_reserved (self, self->automatic, "k-a1");
    assert_true (s_wait_status (self, id, "CONFIRMED"));
    json_t *approved = s_event_of (self, id, "approval.approved");
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
    assert_int_equal (s_count (self, id, "approval.approved"), 1);
    assert_int_equal (s_count (self, id, "reservation.confirmed"), 1);
    free (id);
}

static void
test_manual_approve (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_reserved (self, self->manual, "k-m1");
    assert_true (s_wait_caught_up (self));
    assert_string_equal (s_status (self, id), "PENDING");
    json_t *reply = NULL;
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 200);
    s_assert_decided (reply, id, "approved");
    json_decref (reply);
    assert_true (s_wait_status (self, id, "CONFIRMED"));
    //  Again: the same answer, nothing new.
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 200);
    s_assert_decided (reply, id, "approved");
    json_decref (reply);
    assert_true (s_wait_count (self, id, "reservation.confirmed", 1));
    zclock_sleep (300);
    json_t *approved = s_event_of (self, id, "approval.approved");
    assert_true (json_is_false (json_object_get (json_object_get (approved, "data"),
                                                 "auto")));
    json_decref (approved);
    assert_int_equal (s_count (self, id, "approval.approved"), 1);
    assert_int_equal (s_count (self, id, "reservation.confirmed"), 1);
    free (id);
}

static void
test_manual_decline (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_reserved (self, self->manual, "k-d1");
    assert_int_equal (s_free (self, self->manual, "2027-03-01"), 2);
    json_t *reply = NULL;
    for (int round = 0; round < 2; round++) {
        assert_int_equal (s_decide (self, "decline", id, "olga", "closed in March",
                                    &reply), 200);
        s_assert_decided (reply, id, "declined");
        json_decref (reply);
    }
    assert_true (s_wait_status (self, id, "DECLINED"));
    assert_int_equal (s_on (self, "get", id, NULL, &reply), 200);
    assert_string_equal (json_string_value (json_object_get (reply, "reason")),
                         "closed in March");
    json_decref (reply);
    //  availability releases the declined reservation's hold.
    assert_true (s_wait_free (self, self->manual, 3));
    assert_int_equal (s_count (self, id, "approval.declined"), 1);
    //  Without a reason, one is given.
    char *other = s_reserved (self, self->manual, "k-d2");
    assert_int_equal (s_decide (self, "decline", other, "olga", NULL, &reply), 200);
    json_decref (reply);
    assert_true (s_wait_status (self, other, "DECLINED"));
    assert_int_equal (s_on (self, "get", other, NULL, &reply), 200);
    assert_non_null (json_string_value (json_object_get (reply, "reason")));
    json_decref (reply);
    free (id);
    free (other);
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
        char *id = s_reserved (self, self->manual, key);
        json_t *reply = NULL;
        int status = s_decide (self, "approve", id, "olga", NULL, &reply);
        if (status != 200)
            fail_msg ("round %d: %d %s", round, status, s_message (reply));
        json_decref (reply);
        assert_true (s_wait_status (self, id, "CONFIRMED"));
        //  Frees the unit for the next round.
        assert_int_equal (s_on (self, "cancel", id, "carla", &reply), 200);
        json_decref (reply);
        assert_true (s_wait_free (self, self->manual, 3));
        free (id);
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
    char *id = s_reserved (self, self->manual, "k-x1");
    assert_true (s_wait_status (self, id, "EXPIRED"));
    json_t *reply = NULL;
    assert_int_equal (s_on (self, "get", id, NULL, &reply), 200);
    assert_non_null (json_string_value (json_object_get (reply, "reason")));
    json_decref (reply);
    assert_true (s_wait_count (self, id, "reservation.expired", 1));
    assert_true (s_wait_free (self, self->manual, 3));
    //  Too late to decide.
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 409);
    s_assert_error (reply, 409, "conflict");
    json_decref (reply);
    //  An auto reservation never expires.
    char *automatic = s_reserved (self, self->automatic, "k-x2");
    assert_true (s_wait_status (self, automatic, "CONFIRMED"));
    zclock_sleep (600);
    assert_string_equal (s_status (self, automatic), "CONFIRMED");
    zclock_sleep (300);
    assert_int_equal (s_count (self, id, "reservation.expired"), 1);
    free (id);
    free (automatic);
}

static void
test_expiry_survives_restart (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  One request recorded before approval stops...
    char *recorded = s_reserved (self, self->manual, "k-s1");
    assert_true (s_wait_caught_up (self));
    s_stop (self, S_APPROVAL);
    //  ...one made while it is down: it finds it in the journal.
    char *missed = s_reserved (self, self->manual, "k-s2");
    zclock_sleep (700);
    //  Both deadlines passed, and no approval process saw them pass.
    assert_string_equal (s_status (self, recorded), "PENDING");
    assert_string_equal (s_status (self, missed), "PENDING");
    //  A new approval state: the deadlines come from its store.
    s_start (self, S_APPROVAL);
    assert_true (s_wait_status (self, recorded, "EXPIRED"));
    assert_true (s_wait_status (self, missed, "EXPIRED"));
    zclock_sleep (300);
    assert_int_equal (s_count (self, recorded, "reservation.expired"), 1);
    assert_int_equal (s_count (self, missed, "reservation.expired"), 1);
    free (recorded);
    free (missed);
}


//  --------------------------------------------------------------------------
//  Decisions: failures

static void
test_not_the_owner (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_reserved (self, self->manual, "k-o1");
    const char *methods [] = { "approve", "decline", NULL };
    for (const char **method = methods; *method; method++) {
        json_t *reply = NULL;
        assert_int_equal (s_decide (self, *method, id, "mallory", NULL, &reply), 403);
        s_assert_error (reply, 403, "forbidden");
        json_decref (reply);
        //  Not even the customer.
        assert_int_equal (s_decide (self, *method, id, "carla", NULL, &reply), 403);
        s_assert_error (reply, 403, "forbidden");
        json_decref (reply);
    }
    zclock_sleep (200);
    assert_string_equal (s_status (self, id), "PENDING");
    assert_int_equal (s_count (self, id, "approval.approved"), 0);
    assert_int_equal (s_count (self, id, "approval.declined"), 0);
    free (id);
}

static void
test_unknown_reservation (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    assert_int_equal (s_decide (self, "approve", "r-none", "olga", NULL, &reply), 404);
    s_assert_error (reply, 404, "not_found");
    json_decref (reply);
    assert_int_equal (s_decide (self, "decline", "r-none", "olga", "no", &reply), 404);
    s_assert_error (reply, 404, "not_found");
    json_decref (reply);
}

static void
test_conflicting_decisions (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    char *approved = s_reserved (self, self->manual, "k-c1");
    assert_int_equal (s_decide (self, "approve", approved, "olga", NULL, &reply), 200);
    json_decref (reply);
    assert_int_equal (s_decide (self, "decline", approved, "olga", NULL, &reply), 409);
    s_assert_error (reply, 409, "conflict");
    assert_non_null (strstr (s_message (reply), "approved"));
    json_decref (reply);

    char *declined = s_reserved (self, self->manual, "k-c2");
    assert_int_equal (s_decide (self, "decline", declined, "olga", NULL, &reply), 200);
    json_decref (reply);
    assert_int_equal (s_decide (self, "approve", declined, "olga", NULL, &reply), 409);
    s_assert_error (reply, 409, "conflict");
    assert_non_null (strstr (s_message (reply), "declined"));
    json_decref (reply);

    char *automatic = s_reserved (self, self->automatic, "k-c3");
    assert_int_equal (s_decide (self, "decline", automatic, "olga", NULL, &reply), 409);
    s_assert_error (reply, 409, "conflict");
    json_decref (reply);

    assert_true (s_wait_status (self, approved, "CONFIRMED"));
    assert_true (s_wait_status (self, declined, "DECLINED"));
    assert_true (s_wait_status (self, automatic, "CONFIRMED"));
    free (approved);
    free (declined);
    free (automatic);
}

static void
test_no_longer_pending (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_reserved (self, self->manual, "k-p1");
    json_t *reply = NULL;
    assert_int_equal (s_on (self, "cancel", id, "carla", &reply), 200);
    json_decref (reply);
    assert_true (s_wait_count (self, id, "reservation.cancelled", 1));
    assert_true (s_wait_caught_up (self));
    const char *methods [] = { "approve", "decline", NULL };
    for (const char **method = methods; *method; method++) {
        assert_int_equal (s_decide (self, *method, id, "olga", NULL, &reply), 409);
        s_assert_error (reply, 409, "conflict");
        assert_non_null (strstr (s_message (reply), "CANCELLED"));
        json_decref (reply);
    }
    assert_string_equal (s_status (self, id), "CANCELLED");
    free (id);
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
    char *id = s_reserved (self, self->manual, "k-l1");
    assert_true (s_wait_caught_up (self));
    zclock_sleep (400);
    //  The deadline passed; no tick has expired it yet. The owner is too
    //  late all the same.
    json_t *reply = NULL;
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 409);
    s_assert_error (reply, 409, "conflict");
    assert_non_null (strstr (s_message (reply), "deadline"));
    json_decref (reply);
    assert_string_equal (s_status (self, id), "PENDING");
    assert_int_equal (s_count (self, id, "approval.approved"), 0);
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
    assert_int_equal (s_direct (self, "grant", "{}", 2, &reply), 400);
    s_assert_error (reply, 400, "unknown_method");
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
        int status = s_direct (self, cases [i].method, cases [i].body,
                               strlen (cases [i].body), &reply);
        if (status != 400)
            fail_msg ("%s %.60s: %d", cases [i].method, cases [i].body, status);
        s_assert_error (reply, 400, cases [i].reason);
        json_decref (reply);
    }
    zstr_free (&huge);
    zstr_free (&long_reason);
    assert_int_equal (s_count (self, NULL, "approval.approved"), 0);
    assert_int_equal (s_count (self, NULL, "approval.declined"), 0);
}

static void
test_store_failure (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_reserved (self, self->manual, "k-f1");
    assert_true (s_wait_caught_up (self));
    assert_int_equal (sqlite3_exec (store_db (self->store),
        "DROP TABLE approvals", NULL, NULL, NULL), SQLITE_OK);
    json_t *reply = NULL;
    assert_int_equal (s_decide (self, "approve", id, "olga", NULL, &reply), 500);
    s_assert_error (reply, 500, "internal");
    assert_non_null (strstr (s_message (reply), id));
    assert_non_null (strstr (s_message (reply), "no such table"));
    json_decref (reply);
    assert_string_equal (s_status (self, id), "PENDING");
    free (id);
}

//  Without a fixture: it sets the environment, which no thread may read
//  meanwhile.
static void
test_state_lifecycle (void **state)
{
    (void) state;
    setenv ("RESV_DATA_DIR", "/proc/no-such-place", 1);
    resv_cfg_t *cfg = resv_cfg_load (NULL);
    assert_null (svc_approval_new (cfg, NULL));
    resv_cfg_destroy (&cfg);
    void *nothing = NULL;
    svc_approval_destroy (&nothing);
    svc_approval_destroy (NULL);
    zframe_t *body = zframe_new ("{}", 2);
    zframe_t *reply = NULL;
    assert_int_equal (svc_approval (NULL, "approve", &body, zclock_mono () + 1000,
                                    &reply), 500);
    zframe_destroy (&body);
    zframe_destroy (&reply);
}

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
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
        S_TEST (test_not_the_owner),
        S_TEST (test_unknown_reservation),
        S_TEST (test_conflicting_decisions),
        S_TEST (test_no_longer_pending),
        S_TEST_WITH (test_past_deadline_before_expiry, s_setup_no_tick),
        S_TEST (test_bad_requests),
        S_TEST (test_store_failure),
        cmocka_unit_test (test_state_lifecycle),
    };
    return cmocka_run_group_tests_name ("svc_approval", tests, NULL, NULL);
}
