/*  resv.h: libresv, the C client of resv.

    A resv_t is one connection to a resv broker's frontend. It sends
    requests to services (availability, reservation, ..., or the broker's own
    ping and stats) and returns their replies, as jansson objects. Every
    request carries a deadline; a request that gets no answer before its
    deadline returns RESV_TIMEOUT, so no call hangs.

    Two forms:
    -   synchronous: resv_call() and the per-command helpers (resv_ping(),
        resv_reserve(), ...) send one request and wait for its reply;
    -   asynchronous: resv_send() queues a request and returns at once,
        resv_recv() returns the next completed reply. Any number of requests
        may be in flight; resv-bench uses this form.

    Request ids are made by the library: a random per-client prefix plus a
    counter. A request that gets no reply within the retry interval is sent
    again with the same id until its deadline: the broker drops a copy of a
    request it is still working on (or has just answered). A broker that
    was restarted meanwhile, or whose reply was lost with the client's
    connection, runs the copy as a new request (each copy after the first
    says it is a retry, so that such a broker never answers that nothing
    was begun: doc/protocol.md, "Unknown retry"), so what makes a retry safe
    is the request itself: the per-command helpers send each command that
    changes state in a form that is safe to run twice (resv_reserve and
    resv_resource_add add a request_id of their own when the caller gives
    none; the other commands are idempotent). resv_call and resv_send send
    the body as it is given: a reserve or a resource add sent through them
    without a request_id can be done twice (two reservations, two holds)
    when a resend meets a restarted broker. Give one.

    Status codes are HTTP-like: 2xx success; 400, 402, 403, 404, 409, 429
    refusals; 500, 501, 503, 504 failures. A reply body with a status >= 400
    is {"error":{"code":N,"reason":"word","message":"text"}}. The codes
    (RESV_OK, ...) and reason words (RESV_REASON_...) are constants in
    resv_proto.h; doc/protocol.md, section 5, says which reasons go with
    which code.

    Ownership: objects returned through a `json_t **` argument belong to the
    caller, who releases them with json_decref(), on success and failure
    alike; they are NULL when there is nothing to return. Objects passed in
    as `json_t *` are borrowed, never stolen: the caller still releases
    them. Strings passed in are copied as needed, never kept. Buffers
    returned (resv_call_raw's reply, resv_reply_t's body) are malloc'd and
    the caller's to free(). Only resv_destroy frees a resv_t.

    Threads: a resv_t is not thread-safe. Different clients may be used
    from different threads at the same time (resv_new may be called from
    several threads at once); one client must be used by one thread at a
    time, and may move to another thread only with a hand-over that
    synchronises the two (a mutex, pthread_join). resv_error_new and
    resv_strstatus may be called from any thread.

    libresv runs on CZMQ, whose first use in a process would catch SIGINT
    and SIGTERM (to set zsys_interrupted). libresv leaves the program's
    signal handling as it found it: a program that wants CZMQ's handling
    calls zsys_init() before its first resv_new().
*/
#ifndef RESV_H_INCLUDED
#define RESV_H_INCLUDED

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include "resv_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _resv_t resv_t;

//  Default frontend endpoint, used when the caller gives none and the
//  environment variable RESV_BROKER_FRONTEND is not set.
#define RESV_DEFAULT_ENDPOINT   "tcp://127.0.0.1:5570"
//  Default deadline of one request, in milliseconds.
#define RESV_DEFAULT_TIMEOUT    5000
//  Default interval after which an unanswered request is sent again.
#define RESV_DEFAULT_RETRY      1000

//  Creates a client connected to endpoint (NULL: RESV_BROKER_FRONTEND from
//  the environment, else RESV_DEFAULT_ENDPOINT). Connecting does not wait
//  for the broker: a broker that is down shows as RESV_TIMEOUT on the first
//  call. Returns NULL if the endpoint is invalid or out of memory.
resv_t *
    resv_new (const char *endpoint);

//  Closes the connection, drops unanswered requests, frees the client and
//  nulls the pointer. NULL-safe and idempotent.
void
    resv_destroy (resv_t **self_p);

//  Sets the deadline used by calls that pass timeout_ms <= 0; a value <= 0
//  restores RESV_DEFAULT_TIMEOUT.
void
    resv_set_timeout (resv_t *self, int timeout_ms);

//  Sets the retry interval: a request unanswered for this long is sent
//  again, with the same id, until its deadline. 0 (or less) turns retries
//  off. Requests already in flight keep the schedule they had: the
//  interval in force when they were sent. Without retries, a request the
//  socket took but had not yet written when the connection to the broker
//  was lost is lost with it (nothing is kept for a broker that comes
//  later: resv_send), and ends at its deadline with 504.
void
    resv_set_retry (resv_t *self, int retry_ms);

//  Sets the internal key this client sends with every request (the key is
//  copied; NULL or "" sends none). Only workers have it: it lets them call
//  the internal methods (resv_proto.h, RESV_INTERNAL_METHODS).
void
    resv_set_key (resv_t *self, const char *key);

//  Sends a request to service/method with a JSON body (NULL for {}) and
//  waits for its reply, for at most timeout_ms (<= 0: the client's default).
//  Returns the status code. *reply_p, if reply_p is not NULL, receives the
//  reply body: the result on success, the error object on failure. When no
//  reply comes before the deadline, returns RESV_TIMEOUT with a local error
//  object whose reason is "broker_unreachable" (broker down or too slow)
//  or "deadline_exceeded". Returns RESV_BAD_REQUEST, with an error object,
//  for invalid arguments (NULL self or service, a service that is not 1 to
//  32 characters of [a-z0-9_.-], a method that is not 0 to 32 of them, a
//  request jansson cannot encode, a body over RESV_FRAME_MAX, 16 MiB, with
//  reason "too_large"); nothing is sent then.
//  The reply body is parsed as JSON (any JSON value); an empty body is {}.
//  A success whose body is not JSON returns RESV_INTERNAL instead, with an
//  "internal" error object quoting the body. With a status >= 400, *reply_p
//  is always an error object: one the reply did not carry is made up from
//  the status and the body. A reply libresv cannot read (the wrong number
//  of frames, a status that is not 3 digits of 2xx, 4xx or 5xx) fails the
//  request it names at once with RESV_INTERNAL and reason "malformed", and
//  is logged (a line every 10 s at most); one that names no request in
//  flight is dropped with the log line, and a request that then times out
//  says one was heard.
//  While the call waits, replies to requests made with resv_send() are kept
//  for resv_recv(). Local expiry comes a little (250 ms) after the deadline,
//  so that a live broker's own 504 comes first; at the deadline for a
//  request the socket never took (no broker connected), which no broker
//  will answer. The broker cuts a deadline
//  to its broker/max_timeout (60 s by default) and answers 504 then.
int
    resv_call (resv_t *self, const char *service, const char *method,
               json_t *request, int timeout_ms, json_t **reply_p);

//  The same with a raw body: size bytes at data (data may be NULL when size
//  is 0), not parsed. The reply body, as the broker sent it or the local
//  error object as text, is returned as a malloc'd buffer in *reply_p
//  (NUL-terminated, caller frees with free(); NULL only when out of memory)
//  and its length in *reply_size; either pointer may be NULL. Used for
//  benchmarks and for services whose bodies are not JSON.
int
    resv_call_raw (resv_t *self, const char *service, const char *method,
                   const void *data, size_t size, int timeout_ms,
                   char **reply_p, size_t *reply_size);

//  Asynchronous send: queues a request and returns at once. Returns a
//  handle > 0, unique for the life of the client, that the matching
//  resv_reply_t carries; or -1 on invalid arguments (as for resv_call) or
//  out of memory, and then nothing is sent. The body is copied; the caller
//  keeps data. The request goes out at once while the client is connected
//  to the broker; until it is (just after resv_new, or while the broker
//  is down), nothing waits in the socket: the request goes out from the
//  next resv_recv() or call once the connection is made, with the time
//  then left of its deadline. Resends and local expiry happen there too,
//  so a caller that sends must also receive.
int64_t
    resv_send (resv_t *self, const char *service, const char *method,
               const void *data, size_t size, int timeout_ms);

//  One completed asynchronous request.
typedef struct {
    int64_t handle;             //  As returned by resv_send()
    int status;                 //  Status code; RESV_TIMEOUT if no reply came
    char *body;                 //  Reply body, NUL-terminated, malloc'd
    size_t size;                //  Length of body
} resv_reply_t;

//  Waits up to wait_ms (-1: until one is ready or none is in flight) for
//  the next completed request, in any order. Returns 0 and fills *reply
//  (the caller frees reply->body with free()), or -1, leaving *reply as it
//  was, when nothing completed in time or nothing is in flight. A reply
//  that arrived while the caller was busy elsewhere completes its request,
//  however late resv_recv is called: every reply that is there is read
//  before a request is resent or given up (as many as come within 50 ms,
//  so that a flood of replies nobody waits for cannot hold the timers off
//  for good). Requests that pass their
//  deadline unanswered complete with RESV_TIMEOUT and a local error object
//  as body; one whose reply libresv cannot read, at once with
//  RESV_INTERNAL and a local "malformed" error object (see resv_call).
//  Each request sent completes exactly once.
int
    resv_recv (resv_t *self, int wait_ms, resv_reply_t *reply);

//  Turns the status and body of a reply (resv_reply_t's, or resv_call_raw's)
//  into the object resv_call() returns: for a success the body parsed (any
//  JSON value), or {} when it has none; for a failure the body when it is
//  an error object ({"error":{...}}), else one made for it that says
//  there was no body or quotes what came. A body that is not JSON gives an
//  error object that quotes its start, and makes *status 500 if it was a
//  success. body is borrowed (size bytes, NUL not needed). Returns a new
//  reference, the caller's to json_decref (NULL only when out of memory).
json_t *
    resv_reply_json (int *status, const char *body, size_t size);

//  Number of requests sent and not yet returned by resv_recv().
size_t
    resv_inflight (resv_t *self);

//  The client's libzmq socket, for an event loop that waits on it with
//  other sockets (zmq_poll, ZMQ_POLLIN: then resv_recv with wait_ms 0 takes
//  what came). Resends and local expiry happen only inside resv_recv and
//  the calls, so such a loop calls resv_recv at least every retry interval
//  while requests are in flight; and while resv_send_waits says so, it
//  waits for ZMQ_POLLOUT too, and calls resv_recv when that comes, so
//  that the requests the socket refused go out as soon as it takes them.
//  Valid for the client's life; NULL-safe.
void *
    resv_socket (resv_t *self);

//  1 while a request waits for the socket to take it (no broker connected
//  yet, or its pipe full), else 0: 0 again once that request has ended,
//  taken by the socket or given up at its deadline. NULL-safe.
int
    resv_send_waits (resv_t *self);

//  Per-command helpers, one per resv command (spec section 5). Each sends
//  one request with the client's default deadline (resv_set_timeout: set
//  it before a call to give that call its own), returns the status code
//  and gives the reply body in *reply_p as resv_call() does. Service and
//  method names and the request bodies are listed in resv_proto.h. A
//  missing required argument (NULL or empty string), or a json_t argument
//  that should be a JSON object and is not, returns RESV_BAD_REQUEST with
//  an error object saying which, and nothing is sent. String arguments
//  marked optional are left out of the request when NULL or empty. json_t
//  arguments are borrowed.

//  Asks the broker itself to answer: {"pong":true,...}.
int
    resv_ping (resv_t *self, json_t **reply_p);

//  Broker statistics: {"services":{"NAME":{"workers":N,"idle":N,
//  "queued":N,"breaker":"closed|open|half-open","served":N},...},...}.
int
    resv_stats (resv_t *self, json_t **reply_p);

//  Asks the supervisor (resvd) to run count (>= 0) processes of service:
//  {"service":"NAME","count":N,"previous":N}.
int
    resv_scale (resv_t *self, const char *service, int count, json_t **reply_p);

//  Registers a resource. resource is a JSON object with the keys the caller
//  wants to set: name and owner (required by the service), kind, capacity,
//  price, approval ("auto" | "manual"), slots (array of labels), and
//  request_id, which makes a repeat of the add (the same owner and key)
//  answer the resource it made, and the key used for another add a 409;
//  without one, libresv sends a random key, so that its own resends and
//  the broker's re-dispatch add it once. Replies 201 with the resource,
//  its id included.
int
    resv_resource_add (resv_t *self, json_t *resource, json_t **reply_p);

//  Lists resources, optionally only those of owner and/or of kind:
//  {"items":[...]}, the first RESV_PAGE_MAX of them, with "next" when
//  there are more (resv_resource_query reads the next page).
int
    resv_resource_list (resv_t *self, const char *owner, const char *kind,
                        json_t **reply_p);

//  Lists resources by filter, which may be NULL: a JSON object with any of
//  owner, kind, limit (1 to RESV_PAGE_MAX, the default) and after (the
//  "next" cursor of a previous page): {"items":[...]}, with "next" when
//  the page was cut.
int
    resv_resource_query (resv_t *self, json_t *filter, json_t **reply_p);

//  One resource by id (required).
int
    resv_resource_show (resv_t *self, const char *id, json_t **reply_p);

//  Changes resource id as owner (both required); changes, which may be
//  NULL, is a JSON object with the keys to change (name, kind, capacity,
//  price, approval, slots). Its own id and owner keys, if any, are
//  overridden by the arguments.
int
    resv_resource_update (resv_t *self, const char *id, const char *owner,
                          json_t *changes, json_t **reply_p);

//  Removes resource id as owner (both required).
int
    resv_resource_remove (resv_t *self, const char *id, const char *owner,
                          json_t **reply_p);

//  Capacity of resource from date (YYYY-MM-DD) for days days (<= 0: the
//  service's default, one day); resource and date required:
//  {"resource":ID,"days":[{"date":D,"slot":S,"capacity":N,"held":N,
//  "free":N}]}.
int
    resv_availability (resv_t *self, const char *resource, const char *date,
                       int days, json_t **reply_p);

//  Reserves. request is a JSON object: customer, resource, date (required
//  by the service), days, slot, units, request_id. Without a request_id
//  (absent or null) the library adds one of its own, 32 hex digits, so
//  that its resends are safe; to repeat a reserve safely across calls or
//  processes, give one. Replies 201 with the reservation.
int
    resv_reserve (resv_t *self, json_t *request, json_t **reply_p);

//  Cancels reservation id as customer (both required).
int
    resv_cancel (resv_t *self, const char *id, const char *customer,
                 json_t **reply_p);

//  Approves reservation id as the resource's owner (both required).
int
    resv_approve (resv_t *self, const char *id, const char *owner,
                  json_t **reply_p);

//  Declines reservation id as the resource's owner (both required), with
//  an optional reason.
int
    resv_decline (resv_t *self, const char *id, const char *owner,
                  const char *reason, json_t **reply_p);

//  Reservation id (required) as the view store has it.
int
    resv_status (resv_t *self, const char *id, json_t **reply_p);

//  Lists reservations from the view store. filter, which may be NULL, is a
//  JSON object with any of customer, resource, status, limit (1 to
//  RESV_PAGE_MAX; RESV_PAGE_DEFAULT when absent) and after (the "next"
//  cursor of a previous page): {"items":[...]}, with "next" when the page
//  was cut.
int
    resv_list (resv_t *self, json_t *filter, json_t **reply_p);

//  The events of reservation id (required), in order: {"items":[...]}.
int
    resv_history (resv_t *self, const char *id, json_t **reply_p);

//  Replays the journal into a fresh view store: {"events":N,
//  "reservations":N}, the counts of the view it leaves. Rebuilds take
//  turns: one asked while another is under way waits for it and answers
//  the counts of the view that one left (or runs itself if that one
//  failed), or gives up with 503 in_progress at the deadline.
int
    resv_view_rebuild (resv_t *self, json_t **reply_p);

//  The notifications of customer (required), in the order they were
//  recorded (that of their causes, except that a notice recorded late,
//  by a consumer catching up, comes after those recorded before it):
//  {"items":[...]}, the first RESV_PAGE_MAX of them, with "next" when
//  there are more (resv_notifications_query reads the next page).
int
    resv_notifications (resv_t *self, const char *customer, json_t **reply_p);

//  The notifications of filter's customer (required), a JSON object that
//  may also hold limit (1 to RESV_PAGE_MAX, the default) and after (the
//  "next" cursor of a previous page): {"items":[...]}, with "next" when
//  the page was cut. Pages read one after the other give every
//  notification once, also those recorded meanwhile (they come later).
int
    resv_notifications_query (resv_t *self, json_t *filter, json_t **reply_p);

//  Reads the broker's journal: events with seq >= from (<= 0: from the
//  start), of types starting with type (NULL or empty: all), at most
//  limit of them (<= 0: the service's default, RESV_PAGE_DEFAULT):
//  {"items":[...],"next":N,"last":N}, next where to read on (past the end,
//  last + 1), last the newest seq.
int
    resv_events (resv_t *self, int64_t from, const char *type, int limit,
                 json_t **reply_p);

//  Builds the error object {"error":{"code":..,"reason":..,"message":..}}.
//  reason NULL stands for the usual reason of code; fmt NULL for
//  resv_strstatus (code). Bytes of the message that jansson refuses (not
//  UTF-8) become '?'. The caller owns the result; NULL when out of memory.
json_t *
    resv_error_new (int code, const char *reason, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

//  A short English phrase for a status code ("conflict"); never NULL.
const char *
    resv_strstatus (int status);

#ifdef __cplusplus
}
#endif

#endif
