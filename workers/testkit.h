/*  testkit.h: the fixtures the workers' unit tests share.

    A testkit_t is the world of one cmocka test: a temporary data directory,
    a real broker running as an actor in this process, a client of it, and
    the workers the test runs in threads of this process, each with its
    service's own handler and state, as resv-worker runs them. A
    testkit_service_t adds a state of one service, called directly, and a
    look into its store. Around them are the helpers those tests all need:
    events published into the broker's journal and read back, a handler
    called with a body, error replies checked, waits for what other
    threads do, and the calls of the reservation saga.

    A test of the view service's state, in a kit of its own:

        static void
        test_bad_status (void **state)
        {
            testkit_service_t *self = (testkit_service_t *) *state;
            testkit_publish (self->kit, testkit_event (self->kit, NULL,
                             "reservation.requested", "r1", NULL));
            testkit_sync (self->kit, self->store, "view");
            testkit_refused (svc_view, self->state, "status", "{}", 400,
                             "bad_request");
        }

        int
        main (void)
        {
            testkit_init ();
            const struct CMUnitTest tests [] = {
                cmocka_unit_test_prestate_setup_teardown (test_bad_status,
                    testkit_service_setup, testkit_service_teardown, "view")
            };
            return cmocka_run_group_tests (tests, NULL, NULL);
        }

    The broker binds "tcp://127.0.0.1:!", a random free port each, so that
    test programs running at the same time, or a stale peer of an earlier
    test, do not meet it. Once testkit_new returns, the environment names
    the broker's real endpoints and the directory: every resv_cfg_t loaded
    then, and every state or worker built from one, finds them.

    Every check is a cmocka assertion: a kit function that cannot do its
    work fails the running test, as the same lines in the test would. The
    file is linked into the workers' unit tests only, never a program.

    The services read their settings from the environment, and setenv is
    not safe against a getenv in another thread: set variables before
    testkit_new (or through its env argument), or while no worker runs.
*/
#ifndef TESTKIT_H_INCLUDED
#define TESTKIT_H_INCLUDED

//  cmocka's own header needs these before it.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include "svc.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _testkit_t testkit_t;

//  Evaluates condition every 20 ms, up to timeout_ms / 20 times, until it
//  is true; gives true if it became true. A macro so that any expression
//  can be waited for: condition is evaluated many times.
#define TESTKIT_WAIT(timeout_ms, condition) __extension__ ({ \
    bool testkit_done_ = (condition); \
    for (int testkit_try_ = 0; \
         !testkit_done_ && testkit_try_ < (timeout_ms) / 20; testkit_try_++) { \
        zclock_sleep (20); \
        testkit_done_ = (condition); \
    } \
    testkit_done_; })


//  --------------------------------------------------------------------------
//  The world of one test

//  Starts CZMQ for a test program, logging to stderr, and seeds the random
//  numbers that pick the brokers' ports with the process id and the time
//  in ms (CZMQ seeds them with the second, the same for every test program
//  started with this one). Call it once, first in main().
void
    testkit_init (void);

//  Makes a directory /tmp/resv-NAME-test.XXXXXX; sets RESV_DATA_DIR to it
//  and RESV_BROKER_FRONTEND, _BACKEND and _EVENTS to "tcp://127.0.0.1:!";
//  then sets env, NULL or a NULL-ended list of name, value pairs (a NULL
//  value unsets the name), which may override those. Starts the broker
//  on them, sets the three endpoints to what it bound, connects the
//  client, and loads the configuration everyone else uses. Fails the test
//  if any of it fails. The caller owns the kit and destroys it with
//  testkit_destroy.
testkit_t *
    testkit_new (const char *name, const char **env);

//  Stops the workers, last started first, then the client and the broker;
//  removes the directory and all in it, and nulls the pointer. Destroy
//  the stores and states the test opened in the directory before. NULL-safe
//  and idempotent.
void
    testkit_destroy (testkit_t **self_p);

//  The temporary data directory (owned by the kit).
const char *
    testkit_dir (testkit_t *self);

//  The configuration loaded once the broker's endpoints were known; owned
//  by the kit, it lives as long as the kit does.
resv_cfg_t *
    testkit_cfg (testkit_t *self);

//  The kit's client of the broker (owned by the kit), connected.
resv_t *
    testkit_client (testkit_t *self);

//  A new client of the kit's broker (the caller destroys it), once it is
//  connected: a request sent before is refused by the socket and goes out
//  only at the client's next resv_recv or call (client/resv.c), which
//  would serialise requests a test sends from several clients at once.
resv_t *
    testkit_client_new (testkit_t *self);

//  cmocka setup and teardown of a test whose fixture is a kit: *state is
//  the kit's name on the way in (cmocka_unit_test_prestate_setup_teardown
//  gives it), the kit on the way out; the teardown destroys it.
int
    testkit_setup (void **state);
int
    testkit_teardown (void **state);

//  Destroys the broker and starts another on the same endpoints, which the
//  old one may take a moment to release (up to 2 s). The journal stays.
void
    testkit_broker_restart (testkit_t *self);


//  --------------------------------------------------------------------------
//  A service's state under test

//  The fixture of a test of one service's state, with no worker: the kit,
//  a state of the service as its constructor makes it, and the test's own
//  connection to the service's store. Not opaque, because the tests work
//  on the state itself: they destroy it, or put another in its place.
typedef struct {
    testkit_t *kit;             //  The world of the test
    const svc_t *svc;           //  The service, from svc.h's table
    void *state;                //  Its state under test; NULL allowed
    store_t *store;             //  The test's look into svc->name's store
} testkit_service_t;

//  Makes a kit (testkit_new (name, env)), a state of the service called
//  name (with no worker) and a store connection; fails the test unless
//  all are made. The caller destroys the result with
//  testkit_service_destroy.
testkit_service_t *
    testkit_service_new (const char *name, const char **env);

//  Destroys the state with the service's destructor, asserting that it
//  nulls the pointer and may be called again; then the store and the kit.
//  Nulls the pointer. NULL-safe and idempotent.
void
    testkit_service_destroy (testkit_service_t **self_p);

//  cmocka setup and teardown of a test whose fixture is a
//  testkit_service_t: *state is the service's name on the way in
//  (cmocka_unit_test_prestate_setup_teardown gives it), the fixture on
//  the way out; the teardown destroys it.
int
    testkit_service_setup (void **state);
int
    testkit_service_teardown (void **state);

//  Asserts that svc.h's table has the service called name, with these
//  functions.
void
    testkit_assert_service (const char *name, worker_handler_fn *handler,
                            svc_new_fn *state_new,
                            svc_destroy_fn *state_destroy);

//  Raises zsys_interrupted, as SIGTERM does in resv-worker, waits ms for
//  the state's threads to meet it, then destroys the state as resv-worker
//  does next: asserts that this takes less than 3 s. Lowers the flag.
void
    testkit_assert_stops_interrupted (testkit_service_t *self, int ms);

//  Asserts that state_new gives no state where RESV_DATA_DIR names a
//  directory that cannot exist, and that state_destroy takes NULL and a
//  pointer to NULL. RESV_DATA_DIR is as before once it returns; no worker
//  may run meanwhile.
void
    testkit_assert_no_state (svc_new_fn *state_new,
                             svc_destroy_fn *state_destroy);

//  Calls the handler of service name with a raw body, as testkit_handle
//  does, on a state of the kit's own, made at the first call (with no
//  worker) and destroyed with the kit. Every call must name the same
//  service.
int
    testkit_direct (testkit_t *self, const char *name, const char *method,
                    const char *body, size_t size, json_t **reply_p);


//  --------------------------------------------------------------------------
//  Workers in threads

//  Runs a worker of the service called name (svc.h) in a thread, with the
//  service's handler and its state, as resv-worker does; fails the test
//  unless the worker and its state could be made. Returns the runner, which
//  the kit owns: a test may send it "STOP" (worker_stop), after which the
//  runner sends "STOPPED" once worker_serve has returned -1.
zactor_t *
    testkit_start (testkit_t *self, const char *name);

//  The same for svc, which need not be in svc.h's table (a stub). svc is
//  copied; svc->name must outlive the runner. When svc->state_new is NULL
//  the handler is given state, borrowed: it must outlive the runner.
zactor_t *
    testkit_start_with (testkit_t *self, const svc_t *svc, void *state);

//  Stops and destroys every runner of the service called name; each
//  worker says BYE to the broker, and its state is destroyed.
void
    testkit_stop (testkit_t *self, const char *name);


//  --------------------------------------------------------------------------
//  The journal

//  A new event of type, with data (taken; NULL for {}). When reservation
//  is not NULL the event is about it, and it is also the correlation id.
//  Its id is id, or with id NULL a fresh one: ev1, ev2 and so on, in the
//  order this kit makes them. The caller owns the event.
json_t *
    testkit_event (testkit_t *self, const char *id, const char *type,
                   const char *reservation, json_t *data);

//  Publishes events into the journal, as a service's relay does: one event
//  or an array of them, taken. Fails the test unless the broker takes them.
//  Returns the seq of the last.
int64_t
    testkit_publish (testkit_t *self, json_t *events);

//  The newest seq testkit_publish was given (0 before the first).
int64_t
    testkit_published (testkit_t *self);

//  The journal's newest seq, whoever published it.
int64_t
    testkit_journal_last (testkit_t *self);

//  The journal's events, in order, whose type starts with type (NULL: any)
//  and, unless reservation is NULL, that are about reservation. The
//  caller owns the array.
json_t *
    testkit_journal (testkit_t *self, const char *type,
                     const char *reservation);

//  How many events testkit_journal would give.
size_t
    testkit_count (testkit_t *self, const char *type, const char *reservation);

//  The first event testkit_journal would give (caller owns), or NULL.
json_t *
    testkit_event_of (testkit_t *self, const char *type,
                      const char *reservation);

//  Waits up to 5 s until the journal has count such events; true if it has.
bool
    testkit_wait_count (testkit_t *self, const char *type,
                        const char *reservation, size_t count);

//  Waits up to 5 s until consumer's cursor in store (borrowed) reaches
//  seq; true if it does. The cursor of a consumer of one type family
//  counts that family's events only (events.h): seq must be one of them.
//  A consumer by type has a cursor per type, named consumer/type.
bool
    testkit_wait_cursor (testkit_t *self, store_t *store,
                         const char *consumer, int64_t seq);

//  Waits until consumer's cursor in store has every event testkit_publish
//  published (the last of which must be of the consumer's family, for a
//  consumer of one family); fails the test after 5 s.
void
    testkit_sync (testkit_t *self, store_t *store, const char *consumer);

//  testkit_sync for a consumer of its types one by one (events_config_t
//  by_type): waits until the cursor of each of types (NULL-terminated)
//  has the newest event of that type testkit_publish published.
void
    testkit_sync_types (testkit_t *self, store_t *store, const char *consumer,
                        const char *const *types);


//  --------------------------------------------------------------------------
//  Requests and replies

//  Calls handler (state, method) with a body of size bytes and a deadline
//  timeout ms from now (negative: passed already), as a worker does.
//  Asserts that it replies, in JSON, and that a status of 400 or more
//  comes with an error object (testkit_assert_error). Returns the status;
//  the reply goes to *reply_p (caller owns), or is freed when reply_p is
//  NULL.
int
    testkit_handle (worker_handler_fn *handler, void *state,
                    const char *method, const char *body, size_t size,
                    int timeout, json_t **reply_p);

//  The same with request (taken) as the body, and 5 s to answer.
int
    testkit_handle_json (worker_handler_fn *handler, void *state,
                         const char *method, json_t *request,
                         json_t **reply_p);

//  Asserts that body (text) sent to method is refused with exactly code
//  and reason.
void
    testkit_refused (worker_handler_fn *handler, void *state,
                     const char *method, const char *body, int code,
                     const char *reason);

//  Calls service/method through the broker with request (taken, may be
//  NULL) and timeout ms. Returns the status; the reply as resv_call gives
//  it.
int
    testkit_call (testkit_t *self, const char *service, const char *method,
                  json_t *request, int timeout, json_t **reply_p);

//  Asserts that reply is an error object with code, a reason (reason
//  itself unless that is NULL) and a message.
void
    testkit_assert_error (json_t *reply, int code, const char *reason);

//  The reason of an error reply, or NULL. Owned by reply.
const char *
    testkit_reason (json_t *reply);

//  The message of an error reply, or "". Owned by reply.
const char *
    testkit_message (json_t *reply);

//  The requests the broker has handed to workers of service so far (its
//  stats' "served").
int64_t
    testkit_served (testkit_t *self, const char *service);

//  Sends CZMQ's log to a temporary file from now on; returns it.
FILE *
    testkit_log_start (void);

//  Sends the log back to stderr and closes log (from testkit_log_start);
//  returns whether text was in what was logged meanwhile (the first 64 KB).
bool
    testkit_log_end (FILE *log, const char *text);

//  The first column of the first row sql gives on store (borrowed), as an
//  integer; -1 when there is no row. sql is prepared through store_stmt,
//  which keeps statements by the address of their text: pass a string
//  literal (a text built at run time, freed, may come back at an address
//  that names another, and get its statement).
int64_t
    testkit_sql_int (store_t *store, const char *sql);

//  The first column of the first row sql gives on store, as text (caller
//  frees); "" when there is no row or it is NULL.
char *
    testkit_sql_text (store_t *store, const char *sql);


//  --------------------------------------------------------------------------
//  The reservation saga: its workers, and calls through the broker

//  Makes a kit for a test of the reservation saga, as testkit_new (name,
//  env) does, and runs its workers: availability (or, when availability
//  is not NULL, that stub, with state as testkit_start_with takes it),
//  payment, reservation and approval. First unsets the settings the saga's
//  tests vary (payment's max_amount, failure_rate and latency,
//  reservation's sweep and abandon, approval's timeout and tick), which
//  only env sets then, and sets the broker's grace to 300 ms, so that a
//  request for a stopped service fails fast.
testkit_t *
    testkit_saga_new (const char *name, const char **env,
                      const svc_t *availability, void *state);

//  Adds a resource "Room" of owner olga. Returns its id (caller frees).
char *
    testkit_resource (testkit_t *self, int capacity, int price,
                      const char *approval);

//  A reserve of units of resource from 2027-03-01 for days, by customer,
//  with request_id (NULL: none). Returns the status and the reply.
int
    testkit_reserve (testkit_t *self, const char *customer,
                     const char *resource, int days, int units,
                     const char *request_id, json_t **reply_p);

//  A reserve of one unit for a day by carla; fails the test unless it is
//  made (201). Returns the reservation's id (caller frees).
char *
    testkit_reserved (testkit_t *self, const char *resource,
                      const char *request_id);

//  Calls reservation/method {id} (with customer unless it is NULL).
int
    testkit_act (testkit_t *self, const char *method, const char *id,
                 const char *customer, json_t **reply_p);

//  The status of reservation id, "" when get does not find it. Owned by
//  the kit, valid until the next call.
const char *
    testkit_status (testkit_t *self, const char *id);

//  Free units of resource on date.
int64_t
    testkit_free (testkit_t *self, const char *resource, const char *date);

//  Waits up to 5 s until reservation id has status; true if it has.
bool
    testkit_wait_status (testkit_t *self, const char *id, const char *status);

//  Waits up to 5 s until resource has units free on 2027-03-01; true if
//  it has.
bool
    testkit_wait_free (testkit_t *self, const char *resource, int64_t units);

#ifdef __cplusplus
}
#endif

#endif
