/*  testkit.h: the fixtures the workers' unit tests share.

    A testkit_t is the world of one cmocka test: a temporary data directory,
    a real broker running as an actor in this process, a client of it, and
    the workers the test runs in threads of this process, each with its
    service's own handler and state, as resv-worker runs them. Around it
    are the helpers those tests all need: events published into the
    broker's journal and read back, a handler called directly with a body,
    error replies checked, waits for what other threads do, and the calls
    of the reservation saga.

        testkit_t *kit = testkit_new ("view", NULL);
        void *view = svc_view_new (testkit_cfg (kit), NULL);
        store_t *store = store_new (testkit_cfg (kit), "view", NULL);
        testkit_publish (kit, testkit_event (kit, NULL,
                         "reservation.requested", "r1", NULL));
        testkit_sync (kit, store, "view");
        testkit_refused (svc_view, view, "status", "{}", 400, "bad_request");
        store_destroy (&store);
        svc_view_destroy (&view);
        testkit_destroy (&kit);

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

//  The kit's client of the broker (owned by the kit).
resv_t *
    testkit_client (testkit_t *self);

//  Destroys the broker and starts another on the same endpoints, which the
//  old one may take a moment to release (up to 2 s). The journal stays.
void
    testkit_broker_restart (testkit_t *self);


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
//  seq; true if it does.
bool
    testkit_wait_cursor (testkit_t *self, store_t *store,
                         const char *consumer, int64_t seq);

//  Waits until consumer's cursor in store has every event testkit_publish
//  published; fails the test after 5 s.
void
    testkit_sync (testkit_t *self, store_t *store, const char *consumer);


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

//  The first column of the first row sql gives on store (borrowed), as an
//  integer; -1 when there is no row.
int64_t
    testkit_sql_int (store_t *store, const char *sql);


//  --------------------------------------------------------------------------
//  The reservation saga, through the broker; needs the workers of
//  availability, payment, reservation and approval running

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
