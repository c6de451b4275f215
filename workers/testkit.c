/*  testkit.c: the fixtures the workers' unit tests share (testkit.h).  */

#include "testkit.h"
#include "broker.h"

//  Workers a kit runs at once, at the most.
#define RUNNERS_MAX 16

//  The endpoint each of the broker's sockets binds: a random free port.
#define RANDOM_PORT "tcp://127.0.0.1:!"

//  The date testkit_reserve reserves from.
#define SAGA_DATE   "2027-03-01"

//  A worker in a thread.
typedef struct {
    const char *name;           //  Its service
    zactor_t *actor;            //  The runner
} s_runner_t;

struct _testkit_t {
    char dir [64];              //  Temporary data directory
    resv_cfg_t *broker_cfg;     //  The broker's, loaded before it bound
    resv_cfg_t *cfg;            //  Everyone else's, with the real endpoints
    zactor_t *broker;           //  The real broker
    resv_t *client;             //  The kit's client
    s_runner_t runners [RUNNERS_MAX];   //  Oldest first
    size_t nbr_runners;         //  Used entries in runners
    const svc_t *direct_svc;    //  The service of direct, or NULL
    void *direct;               //  testkit_direct's state
    int events;                 //  Fresh event ids made so far
    int64_t published;          //  Newest seq testkit_publish was given
    zhashx_t *published_types;  //  The same per type (int64_t *)
    char status [32];           //  testkit_status's answer
};


//  --------------------------------------------------------------------------
//  The world of one test

void
testkit_init (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    srandom ((unsigned) (getpid () ^ zclock_time ()));
}

//  Sets name to value, or unsets it when value is NULL.
static void
s_setenv (const char *name, const char *value)
{
    if (value)
        setenv (name, value, 1);
    else
        unsetenv (name);
}

static void
s_seq_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

//  client, once its socket would take a request (connected to the
//  broker); fails the test after 5 s.
static resv_t *
s_connected (resv_t *client)
{
    assert_non_null (client);
    zmq_pollitem_t item = { resv_socket (client), 0, ZMQ_POLLOUT, 0 };
    assert_int_equal (zmq_poll (&item, 1, 5000), 1);
    return client;
}

testkit_t *
testkit_new (const char *name, const char **env)
{
    testkit_t *self = (testkit_t *) zmalloc (sizeof (testkit_t));
    self->published_types = zhashx_new ();
    zhashx_set_destructor (self->published_types, s_seq_free);
    snprintf (self->dir, sizeof self->dir, "/tmp/resv-%s-test.XXXXXX", name);
    assert_non_null (mkdtemp (self->dir));
    s_setenv ("RESV_DATA_DIR", self->dir);
    s_setenv ("RESV_BROKER_FRONTEND", RANDOM_PORT);
    s_setenv ("RESV_BROKER_BACKEND", RANDOM_PORT);
    s_setenv ("RESV_BROKER_EVENTS", RANDOM_PORT);
    for (; env && *env; env += 2)
        s_setenv (env [0], env [1]);
    self->broker_cfg = resv_cfg_load (NULL);
    self->broker = broker_new (self->broker_cfg);
    assert_non_null (self->broker);
    char *frontend, *backend, *events;
    zstr_send (self->broker, "ENDPOINTS");
    assert_int_equal (zstr_recvx (self->broker, &frontend, &backend, &events,
                                  NULL), 3);
    s_setenv ("RESV_BROKER_FRONTEND", frontend);
    s_setenv ("RESV_BROKER_BACKEND", backend);
    s_setenv ("RESV_BROKER_EVENTS", events);
    self->client = s_connected (resv_new (frontend));
    zstr_free (&frontend);
    zstr_free (&backend);
    zstr_free (&events);
    self->cfg = resv_cfg_load (NULL);
    return self;
}

resv_t *
testkit_client_new (testkit_t *self)
{
    return s_connected (resv_new (resv_cfg_str (self->cfg, "broker/frontend",
                                                NULL)));
}

void
testkit_destroy (testkit_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    testkit_t *self = *self_p;
    if (self->direct && self->direct_svc->state_destroy)
        self->direct_svc->state_destroy (&self->direct);
    while (self->nbr_runners)
        zactor_destroy (&self->runners [--self->nbr_runners].actor);
    resv_destroy (&self->client);
    zactor_destroy (&self->broker);
    resv_cfg_destroy (&self->cfg);
    resv_cfg_destroy (&self->broker_cfg);
    zhashx_destroy (&self->published_types);
    zdir_t *dir = zdir_new (self->dir, NULL);
    if (dir)
        zdir_remove (dir, true);
    zdir_destroy (&dir);
    bool removed = !zsys_file_exists (self->dir);
    free (self);
    *self_p = NULL;
    assert_true (removed);
}

int
testkit_setup (void **state)
{
    *state = testkit_new ((const char *) *state, NULL);
    return 0;
}

int
testkit_teardown (void **state)
{
    testkit_destroy ((testkit_t **) state);
    return 0;
}

const char *
testkit_dir (testkit_t *self)
{
    return self->dir;
}

resv_cfg_t *
testkit_cfg (testkit_t *self)
{
    return self->cfg;
}

resv_t *
testkit_client (testkit_t *self)
{
    return self->client;
}

void
testkit_broker_restart (testkit_t *self)
{
    zactor_destroy (&self->broker);
    //  The environment names the endpoints the old broker bound.
    for (int attempt = 0; attempt < 20 && !self->broker; attempt++) {
        zclock_sleep (100);
        self->broker = broker_new (self->broker_cfg);
    }
    assert_non_null (self->broker);
}


//  --------------------------------------------------------------------------
//  A service's state under test

testkit_service_t *
testkit_service_new (const char *name, const char **env)
{
    testkit_service_t *self = (testkit_service_t *) zmalloc (sizeof *self);
    self->svc = svc_lookup (name);
    assert_non_null (self->svc);
    assert_non_null (self->svc->state_new);
    self->kit = testkit_new (name, env);
    self->state = self->svc->state_new (testkit_cfg (self->kit), NULL);
    assert_non_null (self->state);
    self->store = store_new (testkit_cfg (self->kit), name, NULL);
    assert_non_null (self->store);
    return self;
}

void
testkit_service_destroy (testkit_service_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    testkit_service_t *self = *self_p;
    self->svc->state_destroy (&self->state);
    assert_null (self->state);
    self->svc->state_destroy (&self->state);    //  Idempotent
    store_destroy (&self->store);
    testkit_destroy (&self->kit);
    free (self);
    *self_p = NULL;
}

int
testkit_service_setup (void **state)
{
    *state = testkit_service_new ((const char *) *state, NULL);
    return 0;
}

int
testkit_service_teardown (void **state)
{
    testkit_service_destroy ((testkit_service_t **) state);
    return 0;
}

void
testkit_assert_service (const char *name, worker_handler_fn *handler,
                        svc_new_fn *state_new, svc_destroy_fn *state_destroy)
{
    const svc_t *svc = svc_lookup (name);
    assert_non_null (svc);
    assert_string_equal (svc->name, name);
    assert_ptr_equal (svc->handler, handler);
    assert_ptr_equal (svc->state_new, state_new);
    assert_ptr_equal (svc->state_destroy, state_destroy);
}

void
testkit_assert_stops_interrupted (testkit_service_t *self, int ms)
{
    zsys_interrupted = 1;
    zclock_sleep (ms);
    int64_t start = zclock_mono ();
    self->svc->state_destroy (&self->state);
    int64_t took = zclock_mono () - start;
    zsys_interrupted = 0;
    assert_null (self->state);
    assert_true (took < 3000);
}

void
testkit_assert_no_state (svc_new_fn *state_new, svc_destroy_fn *state_destroy)
{
    const char *dir = getenv ("RESV_DATA_DIR");
    char *saved = dir? strdup (dir): NULL;
    setenv ("RESV_DATA_DIR", "/proc/no-such-place", 1);
    resv_cfg_t *cfg = resv_cfg_load (NULL);
    void *state = state_new (cfg, NULL);
    resv_cfg_destroy (&cfg);
    s_setenv ("RESV_DATA_DIR", saved);
    free (saved);
    assert_null (state);
    state_destroy (&state);
    state_destroy (NULL);
}

int
testkit_direct (testkit_t *self, const char *name, const char *method,
                const char *body, size_t size, json_t **reply_p)
{
    if (!self->direct_svc) {
        self->direct_svc = svc_lookup (name);
        assert_non_null (self->direct_svc);
        assert_non_null (self->direct_svc->state_new);
        self->direct = self->direct_svc->state_new (self->cfg, NULL);
        assert_non_null (self->direct);
    }
    assert_string_equal (self->direct_svc->name, name);
    return testkit_handle (self->direct_svc->handler, self->direct, method,
                           body, size, 5000, reply_p);
}


//  --------------------------------------------------------------------------
//  Workers in threads

//  What a runner thread is given; the thread frees it.
typedef struct {
    resv_cfg_t *cfg;            //  The kit's, borrowed
    svc_t svc;                  //  The service it runs
    void *state;                //  Given state, when svc.state_new is NULL
} s_runner_args_t;

//  Runs one worker until $TERM. Signals twice: once started (zactor_new
//  waits for it), then 0 when serving or 1 when the worker or its state
//  could not be made. STOP calls worker_stop; once worker_serve has
//  returned -1 the runner sends STOPPED and only waits for $TERM.
static void
s_runner (zsock_t *pipe, void *args)
{
    s_runner_args_t *self = (s_runner_args_t *) args;
    zsock_signal (pipe, 0);
    worker_t *worker = worker_new (self->cfg, self->svc.name, self->svc.credit);
    void *state = self->state;
    if (worker && self->svc.state_new)
        state = self->svc.state_new (self->cfg, worker);
    bool serving = worker && (state || !self->svc.state_new);
    zsock_signal (pipe, serving? 0: 1);
    bool terminated = false;
    while (!terminated) {
        if (serving
        &&  worker_serve (worker, 10, self->svc.handler, state) == -1) {
            serving = false;
            zstr_send (pipe, "STOPPED");
        }
        //  Without a worker to serve, blocks until a command comes.
        while (!terminated
           && (!serving || (zsock_events (pipe) & ZMQ_POLLIN))) {
            char *command = zstr_recv (pipe);
            terminated = !command || streq (command, "$TERM");
            if (command && streq (command, "STOP"))
                worker_stop (worker);
            zstr_free (&command);
        }
    }
    if (self->svc.state_new && self->svc.state_destroy && state)
        self->svc.state_destroy (&state);
    worker_destroy (&worker);
    free (self);
}

zactor_t *
testkit_start (testkit_t *self, const char *name)
{
    const svc_t *svc = svc_lookup (name);
    assert_non_null (svc);
    return testkit_start_with (self, svc, NULL);
}

zactor_t *
testkit_start_with (testkit_t *self, const svc_t *svc, void *state)
{
    if (self->nbr_runners == RUNNERS_MAX)
        fail_msg ("testkit: more than %d workers", RUNNERS_MAX);
    s_runner_args_t *args = (s_runner_args_t *) zmalloc (sizeof *args);
    args->cfg = self->cfg;
    args->svc = *svc;
    args->state = state;
    zactor_t *actor = zactor_new (s_runner, args);
    if (!actor)
        free (args);            //  No thread took it
    assert_non_null (actor);
    //  The kit owns it before anything can fail the test.
    self->runners [self->nbr_runners++] = (s_runner_t) { svc->name, actor };
    assert_int_equal (zsock_wait (actor), 0);
    return actor;
}

void
testkit_stop (testkit_t *self, const char *name)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->nbr_runners; i++)
        if (streq (self->runners [i].name, name))
            zactor_destroy (&self->runners [i].actor);
        else
            self->runners [kept++] = self->runners [i];
    self->nbr_runners = kept;
}


//  --------------------------------------------------------------------------
//  The journal

json_t *
testkit_event (testkit_t *self, const char *id, const char *type,
               const char *reservation, json_t *data)
{
    char fresh [32];
    if (!id) {
        snprintf (fresh, sizeof fresh, "ev%d", ++self->events);
        id = fresh;
    }
    json_t *event = json_pack ("{s:s,s:s,s:o}", "id", id, "type", type,
                               "data", data? data: json_object ());
    assert_non_null (event);
    if (reservation) {
        json_object_set_new (event, "reservation", json_string (reservation));
        json_object_set_new (event, "correlation_id",
                             json_string (reservation));
    }
    return event;
}

int64_t
testkit_publish (testkit_t *self, json_t *events)
{
    assert_non_null (events);
    if (!json_is_array (events))
        events = json_pack ("[o]", events);
    json_t *types = json_array ();
    size_t index;
    json_t *event;
    json_array_foreach (events, index, event)
        json_array_append (types, json_object_get (event, "type"));
    json_t *request = json_pack ("{s:o}", "events", events);
    json_t *reply = NULL;
    assert_int_equal (testkit_call (self, "events", "publish", request, 5000,
                                    &reply), 200);
    json_t *seqs = json_object_get (reply, "seqs");
    json_t *type;
    json_array_foreach (types, index, type) {
        const char *name = json_string_value (type);
        int64_t type_seq = json_integer_value (json_array_get (seqs, index));
        int64_t *newest = name? (int64_t *) zhashx_lookup (self->published_types,
                                                          name): NULL;
        if (name && !newest) {
            newest = (int64_t *) zmalloc (sizeof (int64_t));
            zhashx_insert (self->published_types, name, newest);
        }
        if (newest && type_seq > *newest)
            *newest = type_seq;
    }
    json_decref (types);
    int64_t seq = json_integer_value (json_array_get (seqs,
                                      json_array_size (seqs) - 1));
    json_decref (reply);
    if (seq > self->published)
        self->published = seq;
    return seq;
}

int64_t
testkit_published (testkit_t *self)
{
    return self->published;
}

int64_t
testkit_journal_last (testkit_t *self)
{
    json_t *request = json_pack ("{s:i,s:i}", "from", 1, "limit", 1);
    json_t *page = NULL;
    assert_int_equal (testkit_call (self, "events", "read", request, 5000,
                                    &page), 200);
    int64_t last = json_integer_value (json_object_get (page, "last"));
    json_decref (page);
    return last;
}

json_t *
testkit_journal (testkit_t *self, const char *type, const char *reservation)
{
    json_t *events = json_array ();
    int64_t from = 1;
    bool more = true;
    while (more) {
        json_t *request = json_pack ("{s:I,s:i}", "from", (json_int_t) from,
                                     "limit", 1000);
        if (type)
            json_object_set_new (request, "type", json_string (type));
        json_t *page = NULL;
        assert_int_equal (testkit_call (self, "events", "read", request, 5000,
                                        &page), 200);
        json_t *items = json_object_get (page, "items");
        size_t index;
        json_t *event;
        json_array_foreach (items, index, event) {
            const char *about = json_string_value (json_object_get (event,
                                                   "reservation"));
            if (!reservation || (about && streq (about, reservation)))
                json_array_append (events, event);
        }
        from = json_integer_value (json_object_get (page, "next"));
        more = json_array_size (items) > 0
            && from <= json_integer_value (json_object_get (page, "last"));
        json_decref (page);
    }
    return events;
}

size_t
testkit_count (testkit_t *self, const char *type, const char *reservation)
{
    json_t *events = testkit_journal (self, type, reservation);
    size_t count = json_array_size (events);
    json_decref (events);
    return count;
}

json_t *
testkit_event_of (testkit_t *self, const char *type, const char *reservation)
{
    json_t *events = testkit_journal (self, type, reservation);
    json_t *first = json_incref (json_array_get (events, 0));
    json_decref (events);
    return first;
}

bool
testkit_wait_count (testkit_t *self, const char *type,
                    const char *reservation, size_t count)
{
    return TESTKIT_WAIT (5000,
                         testkit_count (self, type, reservation) >= count);
}

bool
testkit_wait_cursor (testkit_t *self, store_t *store, const char *consumer,
                     int64_t seq)
{
    (void) self;
    return TESTKIT_WAIT (5000, store_cursor (store, consumer) >= seq);
}

void
testkit_sync_types (testkit_t *self, store_t *store, const char *consumer,
                    const char *const *types)
{
    for (const char *const *type = types; *type; type++) {
        int64_t *newest = (int64_t *) zhashx_lookup (self->published_types, *type);
        char *name = zsys_sprintf ("%s/%s", consumer, *type);
        if (newest && !testkit_wait_cursor (self, store, name, *newest))
            fail_msg ("%s did not reach seq %" PRId64, name, *newest);
        zstr_free (&name);
    }
}

void
testkit_sync (testkit_t *self, store_t *store, const char *consumer)
{
    if (!testkit_wait_cursor (self, store, consumer, self->published))
        fail_msg ("%s did not reach seq %" PRId64, consumer, self->published);
}


//  --------------------------------------------------------------------------
//  Requests and replies

int
testkit_handle (worker_handler_fn *handler, void *state, const char *method,
                const char *body, size_t size, int timeout, json_t **reply_p)
{
    zframe_t *frame = zframe_new (body, size);
    zframe_t *reply = NULL;
    int status = handler (state, method, &frame, zclock_mono () + timeout,
                          &reply);
    zframe_destroy (&frame);
    assert_non_null (reply);
    json_t *json = json_loadb ((const char *) zframe_data (reply),
                               zframe_size (reply), 0, NULL);
    if (!json)
        fail_msg ("%s: %d, a reply that is not JSON: %.*s", method, status,
                  (int) zframe_size (reply),
                  (const char *) zframe_data (reply));
    zframe_destroy (&reply);
    if (status >= 400)
        testkit_assert_error (json, status, NULL);
    if (reply_p)
        *reply_p = json;
    else
        json_decref (json);
    return status;
}

int
testkit_handle_json (worker_handler_fn *handler, void *state,
                     const char *method, json_t *request, json_t **reply_p)
{
    assert_non_null (request);
    char *body = json_dumps (request, JSON_COMPACT);
    json_decref (request);
    int status = testkit_handle (handler, state, method, body, strlen (body),
                                 5000, reply_p);
    free (body);
    return status;
}

void
testkit_refused (worker_handler_fn *handler, void *state, const char *method,
                 const char *body, int code, const char *reason)
{
    json_t *reply = NULL;
    int status = testkit_handle (handler, state, method, body, strlen (body),
                                 5000, &reply);
    if (status != code)
        fail_msg ("%s %s: expected %d, got %d", method, body, code, status);
    testkit_assert_error (reply, code, reason);
    json_decref (reply);
}

int
testkit_call (testkit_t *self, const char *service, const char *method,
              json_t *request, int timeout, json_t **reply_p)
{
    int status = resv_call (self->client, service, method, request, timeout,
                            reply_p);
    json_decref (request);
    return status;
}

void
testkit_assert_error (json_t *reply, int code, const char *reason)
{
    json_t *error = json_object_get (reply, "error");
    assert_true (json_is_object (error));
    assert_int_equal (json_integer_value (json_object_get (error, "code")),
                      code);
    const char *got = testkit_reason (reply);
    assert_non_null (got);
    if (reason && !streq (got, reason))
        fail_msg ("reason '%s', expected '%s' (%s)", got, reason,
                  testkit_message (reply));
    assert_true (json_string_length (json_object_get (error, "message")) > 0);
}

const char *
testkit_reason (json_t *reply)
{
    return json_string_value (json_object_get (json_object_get (reply,
                              "error"), "reason"));
}

const char *
testkit_message (json_t *reply)
{
    const char *message = json_string_value (json_object_get (
                          json_object_get (reply, "error"), "message"));
    return message? message: "";
}

int64_t
testkit_served (testkit_t *self, const char *service)
{
    json_t *stats = NULL;
    assert_int_equal (resv_stats (testkit_client (self), &stats), RESV_OK);
    int64_t served = json_integer_value (json_object_get (json_object_get (
        json_object_get (stats, "services"), service), "served"));
    json_decref (stats);
    return served;
}

FILE *
testkit_log_start (void)
{
    FILE *log = tmpfile ();
    assert_non_null (log);
    zsys_set_logstream (log);
    return log;
}

bool
testkit_log_end (FILE *log, const char *text)
{
    zsys_set_logstream (stderr);
    size_t max = 64 * 1024;
    char *logged = (char *) malloc (max + 1);
    assert_non_null (logged);
    size_t size = fseek (log, 0, SEEK_SET) == 0? fread (logged, 1, max, log): 0;
    logged [size] = 0;
    fclose (log);
    bool found = strstr (logged, text) != NULL;
    free (logged);
    return found;
}

int64_t
testkit_sql_int (store_t *store, const char *sql)
{
    sqlite3_stmt *stmt = store_stmt (store, sql);
    assert_non_null (stmt);
    int64_t value = sqlite3_step (stmt) == SQLITE_ROW?
                    sqlite3_column_int64 (stmt, 0): -1;
    sqlite3_reset (stmt);
    return value;
}

char *
testkit_sql_text (store_t *store, const char *sql)
{
    sqlite3_stmt *stmt = store_stmt (store, sql);
    assert_non_null (stmt);
    const char *value = sqlite3_step (stmt) == SQLITE_ROW?
                        (const char *) sqlite3_column_text (stmt, 0): NULL;
    char *text = strdup (value? value: "");
    sqlite3_reset (stmt);
    return text;
}


//  --------------------------------------------------------------------------
//  The reservation saga

testkit_t *
testkit_saga_new (const char *name, const char **env,
                  const svc_t *availability, void *state)
{
    const char *knobs [] = {
        "RESV_PAYMENT_MAX_AMOUNT", "RESV_PAYMENT_FAILURE_RATE",
        "RESV_PAYMENT_LATENCY", "RESV_RESERVATION_SWEEP",
        "RESV_RESERVATION_ABANDON", "RESV_APPROVAL_TIMEOUT",
        "RESV_APPROVAL_TICK", NULL
    };
    for (const char **knob = knobs; *knob; knob++)
        unsetenv (*knob);
    setenv ("RESV_BROKER_GRACE", "300", 1);
    testkit_t *self = testkit_new (name, env);
    if (availability)
        testkit_start_with (self, availability, state);
    else
        testkit_start (self, "availability");
    testkit_start (self, "payment");
    testkit_start (self, "reservation");
    testkit_start (self, "approval");
    return self;
}

char *
testkit_resource (testkit_t *self, int capacity, int price,
                  const char *approval)
{
    json_t *request = json_pack ("{s:s,s:s,s:i,s:i,s:s}", "name", "Room",
                                 "owner", "olga", "capacity", capacity,
                                 "price", price, "approval", approval);
    json_t *reply = NULL;
    assert_int_equal (testkit_call (self, "availability", "resource.add",
                                    request, 5000, &reply), 201);
    const char *id = json_string_value (json_object_get (reply, "id"));
    assert_true (id && *id);
    char *copy = strdup (id);
    json_decref (reply);
    return copy;
}

int
testkit_reserve (testkit_t *self, const char *customer, const char *resource,
                 int days, int units, const char *request_id,
                 json_t **reply_p)
{
    json_t *request = json_pack ("{s:s,s:s,s:s,s:i,s:i}", "customer", customer,
                                 "resource", resource, "date", SAGA_DATE,
                                 "days", days, "units", units);
    if (request_id)
        json_object_set_new (request, "request_id", json_string (request_id));
    return testkit_call (self, "reservation", "reserve", request, 5000,
                         reply_p);
}

char *
testkit_reserved (testkit_t *self, const char *resource,
                  const char *request_id)
{
    json_t *reply = NULL;
    int status = testkit_reserve (self, "carla", resource, 1, 1, request_id,
                                  &reply);
    if (status != 201)
        fail_msg ("reserve: %d %s", status, testkit_message (reply));
    char *id = strdup (json_string_value (json_object_get (reply, "id")));
    json_decref (reply);
    return id;
}

int
testkit_act (testkit_t *self, const char *method, const char *id,
             const char *customer, json_t **reply_p)
{
    json_t *request = json_pack ("{s:s}", "id", id);
    if (customer)
        json_object_set_new (request, "customer", json_string (customer));
    return testkit_call (self, "reservation", method, request, 5000, reply_p);
}

const char *
testkit_status (testkit_t *self, const char *id)
{
    json_t *reply = NULL;
    self->status [0] = 0;
    if (testkit_act (self, "get", id, NULL, &reply) == 200)
        snprintf (self->status, sizeof self->status, "%s",
                  json_string_value (json_object_get (reply, "status")));
    json_decref (reply);
    return self->status;
}

int64_t
testkit_free (testkit_t *self, const char *resource, const char *date)
{
    json_t *request = json_pack ("{s:s,s:s}", "resource", resource,
                                 "date", date);
    json_t *reply = NULL;
    assert_int_equal (testkit_call (self, "availability", "availability",
                                    request, 5000, &reply), 200);
    int64_t units = json_integer_value (json_object_get (json_array_get (
                    json_object_get (reply, "days"), 0), "free"));
    json_decref (reply);
    return units;
}

bool
testkit_wait_status (testkit_t *self, const char *id, const char *status)
{
    return TESTKIT_WAIT (5000, streq (testkit_status (self, id), status));
}

bool
testkit_wait_free (testkit_t *self, const char *resource, int64_t units)
{
    return TESTKIT_WAIT (5000,
                         testkit_free (self, resource, SAGA_DATE) == units);
}
