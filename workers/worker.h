/*  worker.h: the runtime every resv worker process is built on.

    A worker_t is one worker of one service. It connects a DEALER to the
    broker backend, announces its service and credit (READY), exchanges
    heartbeats, and hands each request to the service's handler. When the
    broker goes silent for `liveness` heartbeats, or says BYE, the worker
    reconnects with a backoff and announces itself again, so a broker
    restart needs nothing from the worker's owner.

    On SIGTERM or SIGINT (zsys_interrupted) the worker stops taking work:
    it tells the broker BYE, keeps serving the requests the broker sent
    before acknowledging, replies to them, and then worker_serve() returns
    -1. It waits for a broker that says nothing (stopped, hung, a
    listener that never answers) no longer than worker_stop_wait, and for
    one that answers (its heartbeats, its replies) twice that from the
    stop at most: then the calls still out fail, so that what waits on
    them is answered, and the worker stops. A worker can also call other
    services through the broker frontend, synchronously and with a
    deadline (worker_call); while it waits it keeps answering heartbeats
    and holds back new requests for later.

    A handler that needs other services need not block the worker: it
    takes its request aside (worker_defer), starts its calls with
    worker_call_async, and returns WORKER_DEFERRED. Each call's completion
    runs later, in worker_serve, and the last one answers the request
    (worker_answer). Meanwhile the worker serves further requests, up to
    its credit, so one process carries many such requests at once. A
    deferred request holds its credit until it is answered, and a stopping
    worker finishes its deferred requests before worker_serve returns -1
    (their calls fail 503 once it gives up on the broker, as above).

    Ownership: a handler's *body_p belongs to the handler, which may take it
    (nulling the pointer) or leave it to the runtime; *reply_p, when the
    handler sets it, passes to the runtime, which sends and frees it.
*/
#ifndef WORKER_H_INCLUDED
#define WORKER_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include "resv.h"
#include "resv_cfg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _worker_t worker_t;

//  Handles one request. A batch of requests (RESV_BATCH_PREFIX) reaches
//  the handler as each of its requests in turn, which then cannot be
//  taken aside (worker_defer says NULL). method is NUL-terminated; *body_p is the request
//  body (never NULL, possibly empty). deadline is the request's absolute
//  deadline on zclock_mono(). Returns the status code and sets *reply_p to
//  the reply body (NULL for an empty body).
typedef int (worker_handler_fn) (void *state, const char *method,
                                 zframe_t **body_p, int64_t deadline,
                                 zframe_t **reply_p);

//  Creates a worker of service, configured from cfg (borrowed; keys
//  broker/backend, broker/frontend, broker/heartbeat, broker/liveness,
//  workers/SERVICE/credit, resvd/stop_timeout), and connects it. It
//  announces itself to the broker (READY) at its first worker_serve or
//  worker_call, so that the service's state can be opened in between and
//  no request waits for it.
//  credit is the service's own default credit, taken when
//  workers/SERVICE/credit is not set; 0 for none, and then workers/credit.
//  Returns NULL, after a log line, on an invalid endpoint or name.
worker_t *
    worker_new (resv_cfg_t *cfg, const char *service, int credit);

//  Sends BYE if still connected and announced (it served), closes sockets
//  (one never announced at once, without waiting for a broker), frees the
//  worker and nulls the pointer. NULL-safe and idempotent.
void
    worker_destroy (worker_t **self_p);

//  Waits up to timeout_ms (-1: forever) for traffic, handles heartbeats,
//  reconnection and every request that arrives, calling handler for each.
//  Returns 0 while the worker runs, -1 once it has stopped (interrupted and
//  drained, or worker_stop() and drained).
int
    worker_serve (worker_t *self, int timeout_ms,
                  worker_handler_fn *handler, void *state);

//  Runs worker_serve() until it returns -1. Returns 0.
int
    worker_run (worker_t *self, worker_handler_fn *handler, void *state);

//  Starts a graceful stop, as SIGTERM does.
void
    worker_stop (worker_t *self);

//  resvd/stop_timeout: how long a stopping process may take before resvd
//  kills it (and then exits 1), ms; its default and its largest value.
#define WORKER_STOP_TIMEOUT         10000
#define WORKER_STOP_TIMEOUT_MAX     3600000

//  How long each part of a worker process's stop may wait for a broker
//  that says nothing, ms: a quarter of resvd/stop_timeout in cfg. The
//  worker gives up on the broker's BYE and on the calls of the requests
//  in hand once it has heard nothing from the broker that long since the
//  stop (a broker that is there heartbeats every broker/heartbeat), and
//  in any case at twice that from the stop (half of stop_timeout); its
//  events actor gives its last publish of the outbox a quarter more,
//  counted from events_destroy. So a broker that does not answer leaves
//  the stop within half of stop_timeout, and one that answers slowly (a
//  busy service behind it) gets the requests in hand finished if they
//  take half of stop_timeout at most.
int
    worker_stop_wait (resv_cfg_t *cfg);

//  A worker in a handler sends no heartbeat, and the broker takes a worker
//  silent for broker/liveness intervals for dead. A handler that may work
//  longer than one heartbeat interval calls this every so often (a few
//  hundred ms at most): it sends a heartbeat when one is due. NULL-safe.
void
    worker_keepalive (worker_t *self);

//  What a handler returns when it took its request aside with worker_defer.
#define WORKER_DEFERRED     1

//  A request taken aside, to be answered later with worker_answer.
typedef struct _worker_later_t worker_later_t;

//  Called by a handler: takes the request being handled aside, to be
//  answered later; the handler then returns WORKER_DEFERRED, and any
//  reply it sets is dropped. Returns NULL outside a handler (or if the
//  request was taken already), and then the handler answers as usual.
worker_later_t *
    worker_defer (worker_t *self);

//  Whether worker_defer would take the request being handled aside: false
//  outside a handler, once it was taken, and for each item of a batch
//  ("batch.METHOD", answered together). A handler whose work must not run
//  in the batch's shared transaction asks this first. NULL-safe.
bool
    worker_can_defer (worker_t *self);

//  Answers a request taken aside: status and *reply_p (taken and nulled;
//  NULL for an empty body), as a handler would return them. Nulls
//  *later_p. A request whose connection to the broker is gone meanwhile
//  is dropped: the broker gave it to another worker.
void
    worker_answer (worker_t *self, worker_later_t **later_p, int status,
                   zframe_t **reply_p);

//  The completion of worker_call_async: status and reply as worker_call
//  returns them; the function takes reply (json_decref it).
typedef void (worker_done_fn) (void *arg, int status, json_t *reply);

//  Sends request (borrowed) to service/method through the broker frontend
//  and returns at once (in a batch: once the batch has committed). done
//  runs exactly once, with arg, from within worker_serve (never from
//  inside this call), when the reply comes or the deadline (timeout_ms;
//  <= 0: client/timeout) has passed. Returns 0, or -1 when nothing could
//  be sent (no client, invalid names, or a stopping worker whose time
//  for the broker is over): done will not run then. Calls still out when
//  that time is over complete with 503. The calls
//  a batch makes to one service and method leave as one request, 16 at
//  most to a request (RESV_BATCH_PREFIX, with the shortest of their
//  deadlines); each still completes with its own status and reply.
//  fields, if not NULL, names the members of a success's reply that done
//  reads (a NULL-terminated list of paths, as field_sparse takes them,
//  borrowed until done has run): the reply reaches done with those alone,
//  built from its text without parsing the rest. A failure's reply comes
//  whole. A call held for its batch that then never left (the batch's
//  commit failed, the worker closed, the send failed) completes with 500
//  and reason RESV_REASON_NOT_SENT.
int
    worker_call_async (worker_t *self, const char *service, const char *method,
                       json_t *request, const char *const *fields,
                       int timeout_ms, worker_done_fn *done, void *arg);

//  Group commit for a service whose handlers are quick. begin runs before
//  the worker handles a burst of requests (those waiting on its socket, up
//  to a bound) or of asynchronous completions, end after the last, both
//  with arg: begin opens one transaction that the handlers' own then share
//  (store_batch_begin), end commits it. The replies of the burst, and the
//  asynchronous calls it makes, leave only once end has returned 0; when
//  it returns -1 (nothing of the burst was written) every success among
//  the replies becomes a 500 and every such call completes with a 500
//  unsent, each saying why when end set *why_p (a text it keeps until its
//  next call: "database or disk is full", say). A begin that fails (-1)
//  leaves the burst to run without a batch. NULL begin turns batching off.
//  A synchronous worker_call in a batch goes out at once, and holds the
//  batch's lock while it waits.
typedef int (worker_batch_fn) (void *arg);
typedef int (worker_batch_end_fn) (void *arg, const char **why_p);

void
    worker_set_batch (worker_t *self, worker_batch_fn *begin,
                      worker_batch_end_fn *end, void *arg);

//  Sets the credit READY announces (how many requests the broker may hand
//  this worker at once) in place of the one worker_new took from the
//  configuration; from 1 to 1000, else ignored. A service whose handler
//  blocks for long (a slow payment provider) takes one at a time: its
//  requests then wait at the broker, which knows their deadlines and
//  hands each to whichever worker is free, not in this worker's socket,
//  where a request's deadline counts only from when the worker reads it.
//  Takes effect at the next READY: call it before the worker first serves.
void
    worker_set_credit (worker_t *self, int credit);

//  Whether the worker was told to stop (worker_stop, SIGTERM or SIGINT):
//  its calls then fail 503 once the stop's time for the broker is over,
//  before their deadlines, and one that failed so may still be done.
bool
    worker_stopping (worker_t *self);

//  Calls service/method through the broker frontend and waits for the
//  reply until timeout_ms (<= 0: client/timeout from config). Heartbeats go
//  on meanwhile. Returns the status code and *reply_p as resv_call() does.
//  A stopping worker waits no longer than its stop gives it (see
//  worker_stop_wait): one under way then fails with 503, and a call made
//  after that fails at once with 503 and reason RESV_REASON_NOT_SENT.
int
    worker_call (worker_t *self, const char *service, const char *method,
                 json_t *request, int timeout_ms, json_t **reply_p);

//  The same with a body given as text, size bytes at body (NULL when size
//  is 0), sent as it is: for a body kept as text, such as an outbox's
//  event. The reply is parsed as worker_call's.
int
    worker_call_raw (worker_t *self, const char *service, const char *method,
                     const char *body, size_t size, int timeout_ms,
                     json_t **reply_p);

//  The service this worker serves.
const char *
    worker_service (worker_t *self);

//  One method of a JSON service: request is the body parsed as a JSON
//  object (borrowed). Returns the status and sets *reply_p.
typedef int (worker_method_fn) (void *state, json_t *request,
                                int64_t deadline, zframe_t **reply_p);

typedef struct {
    const char *name;           //  Method name; NULL ends a table
    worker_method_fn *fn;       //  Its function
} worker_method_t;

//  A handler's whole job for a JSON service: finds method in methods (a
//  table ended by a NULL name), parses the body as a JSON object and calls
//  the method's function. An unknown method or a body that is not a JSON
//  object gets 400, and a NULL state (a service whose state could not be
//  made) 500. service names the service in error messages.
int
    worker_dispatch (const worker_method_t *methods, const char *service,
                     void *state, const char *method, zframe_t **body_p,
                     int64_t deadline, zframe_t **reply_p);

//  Reply helpers for handlers. Each returns a new frame the caller owns.
//  worker_json takes the reference to json (json_decref'd here);
//  worker_text takes the text of a reply already written (a malloc'd
//  string, freed here). Both return NULL for NULL or out of memory.
zframe_t *
    worker_json (json_t *json);
zframe_t *
    worker_text (char *text);
zframe_t *
    worker_error (int code, const char *reason, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Sets *reply_p (destroying what it held) to the error frame of code,
//  reason (NULL: the code's default) and a message, and returns code: a
//  handler's one-line refusal.
int
    worker_fail (zframe_t **reply_p, int code, const char *reason,
                 const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

//  Parses a request body as a JSON object. Returns the object (caller
//  owns) or NULL, after setting *reply_p to a 400 error frame, when the
//  body is not a JSON object or gives a key twice (which of the two was
//  meant cannot be known). An empty body is an empty object.
json_t *
    worker_parse (zframe_t *body, zframe_t **reply_p);

#ifdef __cplusplus
}
#endif

#endif
