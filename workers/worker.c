/*  worker.c: the resv worker runtime, RESVW1 on a DEALER (protocol.md, 3).

    The hot path, a REQUEST in and its REPLY out, allocates one frame: the
    body, which the handler gets and may hand back as the reply. Every other
    part of the request is read into a zmq_msg_t on the stack, and the
    ticket goes back to the broker as the very message that brought it.
    After resv_poll says the socket is readable the runtime drains it without
    blocking, so a burst of requests costs one wake-up.
*/

#include "worker.h"
#include "jscan.h"
#include "fields.h"
#include "resv_poll.h"
#include "resv_util.h"
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>

//  Reconnection backoff, from the protocol: 100 ms doubling up to 5 s.
#define S_BACKOFF_MIN       100
#define S_BACKOFF_MAX       5000

//  Messages handled in one pass before timers are looked at again. Under a
//  steady stream the socket never runs dry; this bounds how long a heartbeat
//  or a stop can wait behind it.
#define S_BATCH_MAX         1024

//  How long after its deadline worker_call gives up on libresv, which
//  completes every request by then (it waits 250 ms for the broker's 504).
#define S_CALL_GRACE        1000

//  The parts of a REQUEST, by position; the body is the one after these.
enum { S_HEADER, S_COMMAND, S_TICKET, S_METHOD, S_TIMEOUT, S_PARTS };

typedef enum {
    S_WAITING,                  //  No socket; reconnecting at reconnect_at
    S_CONNECTED,                //  READY sent; serving
    S_STOPPING,                 //  BYE sent; serving until the broker's BYE
    S_STOPPED                   //  Done; held requests may still be served
} s_state_t;

//  One request, received and not yet answered. A request taken aside by
//  worker_defer is one of these too (worker_later_t).
typedef struct _worker_later_t {
    zmq_msg_t ticket;           //  The broker's name for it, sent back as is
    char method [RESV_NAME_MAX + 1];
    int64_t deadline;           //  Absolute, on zclock_mono()
    zframe_t *body;             //  Request body, handed to the handler
    uint32_t epoch;             //  Connection it came on
} s_request_t;

//  A reply held back until its batch commits.
typedef struct {
    s_request_t *request;       //  Ticket and connection; owned
    int status;
    zframe_t *reply;            //  Owned; NULL: an empty body
} s_held_reply_t;

//  Requests one batch takes at most: enough to share most of a commit's
//  cost, few enough that the batch's lock and its first reply are not
//  held long.
#define S_BATCH_REQUESTS    16

//  A completion of an asynchronous call, and its argument.
typedef struct {
    worker_done_fn *done;
    void *arg;
    const char *const *fields;  //  What done reads of a success, or NULL
} s_completion_t;

//  An asynchronous call under way: one call, or a batch of them sent as
//  one request (RESV_BATCH_PREFIX), completed each in turn.
typedef struct {
    int64_t handle;             //  libresv's handle of the request
    s_completion_t completion;  //  Its completion
    s_completion_t *batch;      //  Or, for a batch, theirs (owned)
    size_t nbatch;              //  Calls in the batch
} s_call_t;

//  Calls one batch request carries at most (RESV_BATCH_PREFIX): a burst
//  of more goes as several, which the broker can spread over several
//  workers of the service, as it would the calls one by one. (A worker
//  takes batches of up to RESV_BATCH_MAX.)
#define S_BATCH_CALLS       16

//  An asynchronous call made in a batch, sent once the batch commits.
typedef struct {
    char *service;              //  All owned
    char *method;
    char *body;                 //  NULL: an empty body
    int timeout;
    s_completion_t completion;
} s_held_call_t;

struct _worker_t {
    char *service;              //  Service announced in READY
    char *backend;              //  Broker backend endpoint (workers)
    char *frontend;             //  Broker frontend endpoint, for worker_call
    char *key;                  //  broker/internal_key, for worker_call
    int heartbeat;              //  Heartbeat interval, ms
    int liveness;               //  Silent intervals before the broker is dead
    int64_t reply_max;          //  Largest reply the broker reads, bytes
    bool announced;             //  READY sent on this connection
    int credit;                 //  Requests the broker may hand us at once
    int call_timeout;           //  Deadline of worker_call when given none
    s_state_t state;            //  Where the connection is
    zsock_t *sock;              //  DEALER to the backend; NULL while waiting
    void *handle;               //  Its libzmq socket, for resv_poll and sends
    int64_t sent_at;            //  When we last sent the broker anything
    int64_t expires_at;         //  Broker taken for dead after this
    int64_t reconnect_at;       //  When to reconnect, in S_WAITING
    int64_t stop_by;            //  Stop without the broker's BYE after this
    int stop_wait;              //  A stop waits this long for a silent
                                //  broker, twice for one that answers, ms
                                //  (worker_stop_wait)
    int64_t stop_from;          //  When the stop began; 0 before a stop
    int64_t heard_at;           //  When the broker was last heard from: a
                                //  message on the backend, a call's reply
    bool given_up;              //  The stop gave up on the broker (logged)
    int backoff;                //  Next reconnection delay, ms
    int64_t bye_at;             //  When the broker last said BYE out of turn
    uint32_t epoch;             //  Counts connections; tickets die with theirs
    resv_clock_t clock;         //  The broker's clock against ours, for
                                //  the requests' deadlines
    zlist_t *held;              //  s_request_t * that came during worker_call
    resv_t *client;             //  Frontend client of worker_call, made lazily
    resv_t *async;              //  Client of worker_call_async, made lazily
    s_call_t *calls;            //  Asynchronous calls under way
    size_t ncalls;              //  Used entries of calls
    size_t max_calls;           //  Allocated entries of calls
    s_request_t *current;       //  The request a handler is running on
    bool deferred;              //  The handler took it aside
    size_t later;               //  Requests taken aside, not yet answered
    worker_batch_fn *batch_begin;   //  Group commit hooks, and their arg
    worker_batch_end_fn *batch_end;
    void *batch_arg;
    bool batching;              //  A batch is open: replies are held
    s_held_reply_t *held_replies;   //  Replies of the batch
    size_t nheld_replies;       //  Used entries of held_replies
    size_t max_held_replies;    //  Allocated entries of held_replies
    s_held_call_t *held_calls;  //  Calls made in the batch
    size_t nheld_calls;         //  Used entries of held_calls
    size_t max_held_calls;      //  Allocated entries of held_calls
};


static json_t *
    s_call_reply (int *status, const char *body, size_t size,
                  const char *const *fields);
static json_t *
    s_call_result (int *status, json_t *reply);
static void *
    s_grow (void *array, size_t *max_p, size_t used, size_t size);
static void
    s_held_calls_flush (worker_t *self, const char *refused);
static void
    s_batch_end (worker_t *self);
static void
    s_batch_done (worker_t *self, s_call_t *call, int status,
                  const char *body, size_t size);


//  --------------------------------------------------------------------------
//  Sockets

//  Sends a control message: the header, cmd and up to three more text
//  parts (NULL-terminated). Returns 0, or -1 if the socket could not take
//  it.
static int
s_send_ctl (worker_t *self, const char *cmd, const char *arg1,
            const char *arg2, const char *arg3)
{
    const char *part [] = { RESV_PROTO_WORKER, cmd, arg1, arg2, arg3, NULL };
    if (!self->handle)
        return -1;
    for (size_t i = 0; part [i]; i++) {
        int flags = ZMQ_DONTWAIT | (part [i + 1]? ZMQ_SNDMORE: 0);
        if (zmq_send (self->handle, part [i], strlen (part [i]), flags) == -1) {
            //  Only the first part can fail: the rest of a message always
            //  follows it into the pipe.
            zsys_warning ("worker: %s: cannot send %s: %s", self->service,
                          cmd, zmq_strerror (errno));
            return -1;
        }
    }
    self->sent_at = zclock_mono ();
    return 0;
}

//  Opens a fresh DEALER to the backend and announces the service. Returns
//  0, or -1 if the endpoint is invalid.
static int
s_connect (worker_t *self)
{
    assert (!self->sock);
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock) {
        zsys_error ("worker: %s: cannot create a socket", self->service);
        return -1;
    }
    //  Replies in flight are bounded by the credit; leave room for them and
    //  a few heartbeats so that a send never fails on a healthy broker.
    zsock_set_sndhwm (self->sock, 1000 + 2 * self->credit);
    zsock_set_ipv6 (self->sock, resv_endpoint_ipv6 (self->backend));
    if (resv_sock_connect (self->sock, self->backend) == -1) {
        zsys_error ("worker: %s: cannot connect to '%s': %s", self->service,
                    self->backend, zmq_strerror (errno));
        zsock_destroy (&self->sock);
        return -1;
    }
    self->handle = zsock_resolve (self->sock);
    self->state = S_CONNECTED;
    self->epoch++;
    self->clock.known = false;      //  Another broker may keep another clock
    self->announced = false;
    return 0;
}

//  Announces the worker on its connection (READY), once it is ready to
//  serve: the broker hands it requests from then on.
static void
s_announce (worker_t *self)
{
    if (self->state != S_CONNECTED || self->announced)
        return;
    self->announced = true;
    self->expires_at = zclock_mono () + (int64_t) self->heartbeat * self->liveness;
    char credit [16];
    snprintf (credit, sizeof credit, "%d", self->credit);
    //  The internal key, when the deployment has one, shows the broker
    //  that this process is one of its own: it takes no worker without.
    s_send_ctl (self, RESV_CMD_READY, self->service, credit, self->key);
}

//  How long a stopping worker hears nothing from its broker before it
//  takes it for silent (stopped, hung): stop_wait, or two heartbeat
//  intervals if that is longer, since a broker that is there says
//  nothing between its heartbeats. With broker/heartbeat at a quarter of
//  stop_timeout or more, a live broker was taken for silent between two.
static int64_t
s_silence (worker_t *self)
{
    int64_t beats = 2 * (int64_t) self->heartbeat;
    return beats > self->stop_wait? beats: self->stop_wait;
}

//  When a stopping worker gives up on its broker (INT64_MAX before a
//  stop): once it has heard nothing from it for s_silence, counted from
//  the stop at the earliest, or at twice stop_wait from the stop however
//  the broker answers. A broker that is there heartbeats to a worker
//  with requests in hand, every broker/heartbeat, so that only a silent
//  one (stopped, hung) is given up on early: one that answers slowly (a
//  busy service behind it) gets the requests' calls done.
static int64_t
s_give_up_at (worker_t *self)
{
    if (!self->stop_from)
        return INT64_MAX;
    int64_t heard = self->heard_at > self->stop_from? self->heard_at
                                                     : self->stop_from;
    int64_t silent = heard + s_silence (self);
    int64_t bound = self->stop_from + 2 * (int64_t) self->stop_wait;
    return silent < bound? silent: bound;
}

//  Whether a stopping worker has given up on its broker, or should now.
static bool
s_stop_over (worker_t *self)
{
    return self->stop_from
        && (self->given_up || zclock_mono () >= s_give_up_at (self));
}

//  Closes the socket. linger says whether queued messages may still leave
//  (a graceful stop) or are for a peer we gave up on. The last replies
//  and BYE get heartbeat x liveness to leave, but, stopping, no more than
//  stop_wait from a broker heard from lately (it reads them at once), and
//  from a silent one no more than what is left of the time for it: the
//  process's exit waits for them (the context's end), and a broker that
//  accepted the connection but never reads it would hold that exit as
//  long.
static void
s_close (worker_t *self, bool linger)
{
    if (!self->sock)
        return;
    int64_t wait = (int64_t) self->heartbeat * self->liveness;
    if (self->stop_from) {
        int64_t now = zclock_mono ();
        int64_t left = now - self->heard_at < s_silence (self)
                     ? self->stop_wait
                     : s_stop_over (self)? 0: s_give_up_at (self) - now;
        if (left < wait)
            wait = left > 0? left: 0;
    }
    zsock_set_linger (self->sock, linger? (int) wait: 0);
    zsock_destroy (&self->sock);
    self->handle = NULL;
}

static void
s_request_destroy (s_request_t **self_p)
{
    if (*self_p) {
        zmq_msg_close (&(*self_p)->ticket);
        zframe_destroy (&(*self_p)->body);
        free (*self_p);
        *self_p = NULL;
    }
}

//  Drops the requests held back during worker_call: their tickets belong
//  to a connection the broker no longer knows, and it re-dispatches them.
static void
s_drop_held (worker_t *self)
{
    size_t dropped = zlist_size (self->held);
    s_request_t *request;
    while ((request = (s_request_t *) zlist_pop (self->held)))
        s_request_destroy (&request);
    if (dropped)
        zsys_warning ("worker: %s: dropped %zu held requests with the "
                      "connection", self->service, dropped);
}

//  Whether we have been silent towards the broker, on a connection it knows,
//  for its whole liveness: it has taken us for dead, or will at its next
//  look.
static bool
s_silent (worker_t *self, int64_t now)
{
    return self->handle
        && (self->state == S_CONNECTED || self->state == S_STOPPING)
        && now - self->sent_at >= (int64_t) self->heartbeat * self->liveness;
}

//  The broker is gone (silent, or it said BYE out of turn): close (letting
//  what was sent last go out first when linger), then reconnect after the
//  backoff, or finish stopping.
static void
s_lost_broker (worker_t *self, int64_t now, bool linger, const char *why)
{
    s_close (self, linger);
    s_drop_held (self);
    if (self->state == S_STOPPING || self->state == S_STOPPED) {
        zsys_warning ("worker: %s: %s while stopping; stopped", self->service,
                      why);
        self->state = S_STOPPED;
        return;
    }
    zsys_warning ("worker: %s: %s; reconnecting in %d ms", self->service,
                  why, self->backoff);
    self->state = S_WAITING;
    self->reconnect_at = now + self->backoff;
    self->backoff = self->backoff * 2 > S_BACKOFF_MAX?
                    S_BACKOFF_MAX: self->backoff * 2;
}

//  How long a stopping worker waits for the broker's BYE from now: for
//  heartbeat x liveness, within the stop's longest time for the broker
//  (and s_give_up's shorter one for a silent broker).
static int64_t
s_stop_by (worker_t *self, int64_t now)
{
    int64_t by = now + (int64_t) self->heartbeat * self->liveness;
    int64_t bound = self->stop_from + 2 * (int64_t) self->stop_wait;
    return by < bound? by: bound;
}

//  Starts a graceful stop: tell the broker and wait for its BYE. The
//  stop's time for the broker starts now, the first time.
static void
s_begin_stop (worker_t *self, int64_t now)
{
    if (!self->stop_from)
        self->stop_from = now;
    if (self->state == S_CONNECTED) {
        zsys_info ("worker: %s: stopping", self->service);
        s_send_ctl (self, RESV_CMD_DISCONNECT, NULL, NULL, NULL);
        self->state = S_STOPPING;
        self->stop_by = s_stop_by (self, now);
    }
    else
    if (self->state == S_WAITING)
        self->state = S_STOPPED;
}


//  --------------------------------------------------------------------------
//  Requests

//  Sends the REPLY of request: the ticket message itself goes back, and
//  the reply frame (NULL: an empty body) is sent and destroyed.
static void
s_send_reply (worker_t *self, s_request_t *request, int status,
              zframe_t **reply_p)
{
    if (!self->handle || request->epoch != self->epoch) {
        zframe_destroy (reply_p);
        return;                 //  Its connection is gone, and the broker
    }                           //  gave the request to another worker
    if (*reply_p && (int64_t) zframe_size (*reply_p) > self->reply_max) {
        //  The broker would drop this connection unread, and the client
        //  wait for its deadline: a clear 500 instead.
        zsys_error ("worker: %s: a reply of %zu bytes is over the %" PRId64
                    " the broker reads (broker/max_message); answered 500",
                    self->service, zframe_size (*reply_p), self->reply_max);
        zframe_destroy (reply_p);
        *reply_p = worker_error (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                 "%s: the reply is too large to send",
                                 self->service);
        status = RESV_INTERNAL;
    }
    char code [4] = {
        (char) ('0' + status / 100), (char) ('0' + status / 10 % 10),
        (char) ('0' + status % 10), 0
    };
    if (self->batching) {
        //  Sent once the batch has committed (s_batch_end). Only if there
        //  is no memory left for it does it go now, as without a batch.
        s_request_t *copy = NULL;
        s_held_reply_t *held = (s_held_reply_t *) s_grow (self->held_replies,
            &self->max_held_replies, self->nheld_replies, sizeof *held);
        if (held) {
            self->held_replies = held;
            copy = (s_request_t *) zmalloc (sizeof (s_request_t));
        }
        if (copy) {
            zmq_msg_init (&copy->ticket);
            zmq_msg_copy (&copy->ticket, &request->ticket);
            copy->epoch = request->epoch;
            self->held_replies [self->nheld_replies++] =
                (s_held_reply_t) { copy, status, *reply_p };
            *reply_p = NULL;
            return;
        }
    }
    int more = ZMQ_SNDMORE | ZMQ_DONTWAIT;
    if (zmq_send (self->handle, RESV_PROTO_WORKER, strlen (RESV_PROTO_WORKER),
                  more) == -1) {
        zsys_warning ("worker: %s: cannot send a reply: %s", self->service,
                      zmq_strerror (errno));
        zframe_destroy (reply_p);
        return;
    }
    zmq_send (self->handle, RESV_CMD_REPLY, strlen (RESV_CMD_REPLY), more);
    zmq_msg_send (&request->ticket, self->handle, more);
    zmq_send (self->handle, code, 3, more);
    if (*reply_p)
        zframe_send (reply_p, self->handle, ZFRAME_DONTWAIT);
    else
        zmq_send (self->handle, "", 0, ZMQ_DONTWAIT);
    zframe_destroy (reply_p);   //  Left to us only if the send failed
    //  Only what went out counts as heard from us: an answer dropped for
    //  its old connection, or held for its batch, put off the next
    //  heartbeat, and a run of them had the broker take us for dead.
    self->sent_at = zclock_mono ();
}

//  A handler's status, or 500 (logged) when it is out of range.
static int
s_checked_status (worker_t *self, const char *method, int status,
                  zframe_t **reply_p)
{
    if (RESV_STATUS_VALID (status))
        return status;
    zsys_error ("worker: %s: handler of '%s' returned status %d",
                self->service, method, status);
    zframe_destroy (reply_p);
    *reply_p = worker_error (RESV_INTERNAL, RESV_REASON_INTERNAL,
                             "%s: handler failed", self->service);
    return RESV_INTERNAL;
}

//  Reads the text of a JSON object (size bytes, white space around it
//  allowed) with jscan_object, calling member for each member. Returns
//  whether the text is that and nothing else.
static bool
s_scan_object (const char *text, size_t size, jscan_member_fn *member,
               void *arg)
{
    size_t used = jscan_object (text, size, member, arg);
    while (used && used < size && isspace ((unsigned char) text [used]))
        used++;
    return used && used == size;
}

//  A batch request or reply as it is read (s_batch_read): its items'
//  texts, in place in the body.
typedef struct {
    const char *batch;          //  The "batch" member's value
    size_t batch_size;
    jscan_kind_t kind;
    struct {
        const char *text;
        size_t size;
    } *items;
    size_t nitems;
    size_t max_items;
    bool failed;                //  Out of memory
} s_batch_t;

static bool
s_batch_member (void *arg, const char *key, size_t key_size,
                const char *value, size_t value_size, jscan_kind_t kind)
{
    s_batch_t *batch = (s_batch_t *) arg;
    if (key_size == 5 && streq (key, "batch")) {
        batch->batch = value;
        batch->batch_size = value_size;
        batch->kind = kind;
    }
    return true;
}

static bool
s_batch_item (void *arg, const char *value, size_t value_size,
              jscan_kind_t kind)
{
    (void) kind;
    s_batch_t *batch = (s_batch_t *) arg;
    void *items = s_grow (batch->items, &batch->max_items, batch->nitems,
                          sizeof *batch->items);
    if (!items) {
        batch->failed = true;
        return false;
    }
    batch->items = items;
    batch->items [batch->nitems].text = value;
    batch->items [batch->nitems].size = value_size;
    batch->nitems++;
    return true;
}

//  Reads text (size bytes) as {"batch":[ITEM,...]} (other members let be,
//  white space around allowed) into batch, whose items then point into
//  text; the caller frees batch->items. Returns whether it is that; if
//  not, batch->failed says whether for want of memory.
static bool
s_batch_read (const char *text, size_t size, s_batch_t *batch)
{
    *batch = (s_batch_t) { .batch = NULL };
    return s_scan_object (text, size, s_batch_member, batch)
        && batch->batch && batch->kind == JSCAN_ARRAY
        && jscan_array (batch->batch, batch->batch_size, s_batch_item, batch)
           == batch->batch_size;
}

//  Runs a batch request ("batch.METHOD", body {"batch":[BODY,...]}; see
//  RESV_BATCH_PREFIX): the handler of METHOD on each body in turn, as if
//  it had come alone, except that none may be taken aside (worker_defer
//  says NULL). Each body goes to it as it is in the request's text, read
//  in place with jscan, not parsed and printed again. Answers 200 with
//  each one's status and reply, in order.
static int
s_run_batch (worker_t *self, s_request_t *request, worker_handler_fn *handler,
             void *state, zframe_t **reply_p)
{
    const char *method = request->method + strlen (RESV_BATCH_PREFIX);
    s_batch_t batch;
    const char *text = request->body? (const char *) zframe_data (request->body): "";
    size_t size = request->body? zframe_size (request->body): 0;
    bool read = s_batch_read (text, size, &batch);
    if (read && batch.nitems > RESV_BATCH_MAX) {
        free (batch.items);
        *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                 "%s: a batch carries at most %d requests",
                                 self->service, RESV_BATCH_MAX);
        return RESV_BAD_REQUEST;
    }
    if (!read || batch.nitems == 0) {
        free (batch.items);
        if (batch.failed) {
            zsys_error ("worker: %s: %s: out of memory", self->service,
                        request->method);
            *reply_p = worker_error (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                     "%s: out of memory", self->service);
            return RESV_INTERNAL;
        }
        zsys_warning ("worker: %s: %s with a malformed body refused",
                      self->service, request->method);
        *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_MALFORMED,
                                 "%s: a batch is {\"batch\":[BODY,...]}",
                                 self->service);
        return RESV_BAD_REQUEST;
    }
    zchunk_t *reply = zchunk_new (NULL, 256);
    zchunk_extend (reply, "{\"batch\":[", 10);
    for (size_t index = 0; index < batch.nitems; index++) {
        //  A batch of slow requests (a payment provider's latency each)
        //  may take longer than the broker's liveness: heartbeat between.
        worker_keepalive (self);
        zframe_t *item_body = zframe_new (batch.items [index].text,
                                          batch.items [index].size);
        zframe_t *item_reply = NULL;
        int status = handler (state, method, &item_body, request->deadline,
                              &item_reply);
        zframe_destroy (&item_body);
        status = s_checked_status (self, method, status, &item_reply);
        //  Our handlers reply JSON; anything else is a failure.
        const char *data = item_reply? (const char *) zframe_data (item_reply): NULL;
        size_t data_size = item_reply? zframe_size (item_reply): 0;
        if (data_size && jscan_value (data, data_size) != data_size) {
            zsys_error ("worker: %s: handler of '%s' replied with no JSON",
                        self->service, method);
            zframe_destroy (&item_reply);
            status = s_checked_status (self, method, 0, &item_reply);
            data = (const char *) zframe_data (item_reply);
            data_size = zframe_size (item_reply);
        }
        char head [40];
        int head_size = snprintf (head, sizeof head, "%s{\"status\":%d,\"body\":",
                                  index? ",": "", status);
        zchunk_extend (reply, head, (size_t) head_size);
        zchunk_extend (reply, data_size? data: "null", data_size? data_size: 4);
        zchunk_extend (reply, "}", 1);
        zframe_destroy (&item_reply);
    }
    zchunk_extend (reply, "]}", 2);
    free (batch.items);
    *reply_p = zframe_new (zchunk_data (reply), zchunk_size (reply));
    zchunk_destroy (&reply);
    return RESV_OK;
}

//  Runs the handler on one request and replies. A request whose deadline
//  passed while it waited is answered 504 without running it: the broker
//  answered the client already.
static void
s_dispatch (worker_t *self, s_request_t *request,
            worker_handler_fn *handler, void *state)
{
    zframe_t *reply = NULL;
    int status;
    if (zclock_mono () >= request->deadline) {
        status = RESV_TIMEOUT;
        reply = worker_error (status, RESV_REASON_NOT_STARTED,
                              "%s: deadline passed before the request began",
                              self->service);
    }
    else
    if (strncmp (request->method, RESV_BATCH_PREFIX,
                 strlen (RESV_BATCH_PREFIX)) == 0)
        status = s_run_batch (self, request, handler, state, &reply);
    else {
        self->current = request;
        self->deferred = false;
        status = handler (state, request->method, &request->body,
                          request->deadline, &reply);
        self->current = NULL;
        if (self->deferred) {
            //  Taken aside: worker_answer replies, now or later.
            if (status != WORKER_DEFERRED)
                zsys_warning ("worker: %s: handler of '%s' deferred its "
                              "request and returned %d", self->service,
                              request->method, status);
            self->deferred = false;
            zframe_destroy (&reply);
            zframe_destroy (&request->body);
            return;
        }
        status = s_checked_status (self, request->method, status, &reply);
    }
    zframe_destroy (&request->body);
    //  The handler kept us silent towards the broker for its whole
    //  liveness (blocked, or this process stopped meanwhile): the broker
    //  took us for dead, or is about to (it looks once a heartbeat), and
    //  handed on what waits on the socket behind this request, which
    //  s_drain would go on serving. The reply goes, for a broker that has
    //  not looked yet (else the work it stands for was done twice), and
    //  then nothing more on this connection, as at the start of a drain.
    int64_t now = zclock_mono ();
    bool silent = request->epoch == self->epoch && s_silent (self, now);
    s_send_reply (self, request, status, &reply);
    if (silent) {
        //  In a batch the reply waits for the commit: the batch ends now
        //  (if one is open), so that its replies, this one's too, go
        //  before the close.
        s_batch_end (self);
        s_lost_broker (self, now, true, "silent towards the broker for its "
                       "whole liveness in a handler");
    }
}

//  Serves the requests held back during worker_call, oldest first. A
//  handler may call worker_call again and hold more; they are served too.
static void
s_serve_held (worker_t *self, worker_handler_fn *handler, void *state)
{
    s_request_t *request;
    while ((request = (s_request_t *) zlist_pop (self->held))) {
        s_dispatch (self, request, handler, state);
        s_request_destroy (&request);
    }
}

//  True if size bytes at text are at most RESV_NAME_MAX characters of
//  [a-z0-9_.-]: a service or method name (doc/protocol.md, section 2).
static bool
s_is_word (const char *text, size_t size)
{
    if (size > RESV_NAME_MAX)
        return false;
    for (size_t i = 0; i < size; i++) {
        char c = text [i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}

//  Checks the method and timeout parts of a REQUEST and fills request.
//  The timeout is TIMEOUT or TIMEOUT@SENT, SENT the broker's clock when it
//  sent the request (protocol section 3). Returns 0, or -1 with a reason
//  in *why.
static int
s_parse_request (worker_t *self, s_request_t *request, zmq_msg_t *method,
                 zmq_msg_t *timeout, int64_t now, const char **why)
{
    size_t size = zmq_msg_size (method);
    const char *text = (const char *) zmq_msg_data (method);
    if (!s_is_word (text, size)) {
        *why = "method is not 0 to 32 characters of [a-z0-9_.-]";
        return -1;
    }
    memcpy (request->method, text, size);
    request->method [size] = 0;

    //  Counted from when the broker sent it, however long it then waited
    //  in our socket (we were busy, or stopped): counted from now, we
    //  could act on it after the broker answered its caller 504, and the
    //  caller's undo would find nothing yet.
    int64_t ms, sent;
    if (resv_timeout_parse ((const char *) zmq_msg_data (timeout),
                            zmq_msg_size (timeout), 9, &ms, &sent)) {
        *why = "timeout is not a number of milliseconds";
        return -1;
    }
    request->deadline = resv_clock_deadline (&self->clock, now, ms, sent);
    return 0;
}

//  Receives one message without waiting. Its first S_PARTS parts land in
//  part [] (initialised here; the caller closes the first min(n, S_PARTS)),
//  the part after them in *body_p, and any further part is dropped.
//  Returns the number of parts, or 0 when nothing was waiting.
static int
s_recv (worker_t *self, zmq_msg_t part [S_PARTS], zframe_t **body_p)
{
    *body_p = NULL;
    zmq_msg_init (&part [0]);
    if (zmq_msg_recv (&part [0], self->handle, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close (&part [0]);
        return 0;
    }
    int count = 1;
    bool more = zmq_msg_more (&part [0]);
    while (more && count < S_PARTS) {
        zmq_msg_init (&part [count]);
        zmq_msg_recv (&part [count], self->handle, 0);
        more = zmq_msg_more (&part [count++]);
    }
    if (more) {
        //  The body, as a frame that the handler can keep or send back.
        *body_p = zframe_recv (self->handle);
        count++;
        more = *body_p && zframe_more (*body_p);
    }
    while (more) {
        zmq_msg_t extra;
        zmq_msg_init (&extra);
        zmq_msg_recv (&extra, self->handle, 0);
        more = zmq_msg_more (&extra);
        zmq_msg_close (&extra);
        count++;
    }
    return count;
}

static bool
s_is (zmq_msg_t *part, const char *text)
{
    size_t size = strlen (text);
    return zmq_msg_size (part) == size
        && memcmp (zmq_msg_data (part), text, size) == 0;
}

//  Takes one well-formed REQUEST: serves it at once, or, with handler NULL
//  (inside worker_call), holds it for later. A malformed one is answered
//  400 at once.
static void
s_on_request (worker_t *self, zmq_msg_t part [S_PARTS], zframe_t **body_p,
              int64_t now, worker_handler_fn *handler, void *state)
{
    s_request_t local;
    s_request_t *request = handler? &local:
                           (s_request_t *) zmalloc (sizeof (s_request_t));
    if (!request) {
        zsys_error ("worker: %s: out of memory; request dropped",
                    self->service);
        return;
    }
    zmq_msg_init (&request->ticket);
    zmq_msg_move (&request->ticket, &part [S_TICKET]);
    request->body = *body_p;
    request->epoch = self->epoch;
    *body_p = NULL;
    const char *why;
    if (s_parse_request (self, request, &part [S_METHOD], &part [S_TIMEOUT],
                         now, &why) == -1) {
        zsys_warning ("worker: %s: malformed REQ from the broker: %s",
                      self->service, why);
        zframe_t *reply = worker_error (RESV_BAD_REQUEST, RESV_REASON_MALFORMED,
                                        "%s: %s", self->service, why);
        s_send_reply (self, request, RESV_BAD_REQUEST, &reply);
    }
    else
    if (!handler) {
        zlist_append (self->held, request);
        return;
    }
    else {
        s_dispatch (self, request, handler, state);
        //  A handler that called worker_call held what came meanwhile, and
        //  that came before anything still in the socket.
        s_serve_held (self, handler, state);
    }
    if (request == &local) {
        zmq_msg_close (&local.ticket);
        zframe_destroy (&local.body);
    }
    else
        s_request_destroy (&request);
}

//  Commits the batch, then sends the replies held back for it: as they
//  are, or, when the commit failed, every success as a 500.
static void
s_batch_end (worker_t *self)
{
    if (!self->batching)
        return;                 //  Ended already (s_dispatch)
    const char *why = NULL;
    int rc = self->batch_end (self->batch_arg, &why);
    self->batching = false;
    //  Copies: the completions below may use the store that said why.
    char reason [160] = "", refused [200] = "";
    if (rc) {
        snprintf (reason, sizeof reason, "%s", why && *why? why: "no reason given");
        snprintf (refused, sizeof refused, "the commit before it failed (%s)",
                  reason);
    }
    for (size_t index = 0; index < self->nheld_replies; index++) {
        s_held_reply_t *held = &self->held_replies [index];
        if (rc && held->status < 400) {
            zframe_destroy (&held->reply);
            held->status = RESV_INTERNAL;
            held->reply = worker_error (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                        "%s: the commit failed (%s); nothing "
                                        "was changed", self->service, reason);
        }
        s_send_reply (self, held->request, held->status, &held->reply);
        s_request_destroy (&held->request);
    }
    self->nheld_replies = 0;
    //  The calls the batch made go out only now that what they depend on
    //  is committed; with the commit failed, they fail too.
    s_held_calls_flush (self, rc? refused: NULL);
}

//  Handles every message waiting on the socket, up to S_BATCH_MAX. With
//  handler NULL (inside worker_call) requests are held for later rather
//  than served. Returns the number of requests received.
static int
s_drain (worker_t *self, worker_handler_fn *handler, void *state)
{
    //  Silent towards the broker for its whole liveness (this process was
    //  stopped, by SIGSTOP or a paused machine, or a handler blocked that
    //  long): the broker has taken this worker for dead and answered or
    //  handed on what it held, so what waits on the socket is stale. Serve
    //  none of it (a hold or a payment made now would be nobody's): drop
    //  the connection and announce ourselves again.
    int64_t start = zclock_mono ();
    if (s_silent (self, start)) {
        s_lost_broker (self, start, false, "silent towards the broker for "
                       "its whole liveness (was this process stopped?)");
        return 0;
    }
    int requests = 0;
    bool batch = false;         //  This drain opened the batch
    for (int round = 0; round < S_BATCH_MAX && self->handle; round++) {
        zmq_msg_t part [S_PARTS];
        zframe_t *body;
        int count = s_recv (self, part, &body);
        if (count == 0)
            break;
        int64_t now = zclock_mono ();
        self->expires_at = now + (int64_t) self->heartbeat * self->liveness;
        self->heard_at = now;
        const char *why = NULL;
        if (count < 2 || !s_is (&part [S_HEADER], RESV_PROTO_WORKER))
            why = "not RESVW1";
        else
        if (s_is (&part [S_COMMAND], RESV_CMD_REQUEST)) {
            if (count != S_PARTS + 1)
                why = "REQ with the wrong number of frames";
            else {
                if (self->state == S_STOPPING)
                    self->stop_by = s_stop_by (self, now);
                self->backoff = S_BACKOFF_MIN;
                //  Requests of one burst share a batch, when the service
                //  asked for group commit (never inside worker_call).
                if (handler && self->batch_begin && !self->batching
                &&  self->batch_begin (self->batch_arg) == 0)
                    self->batching = batch = true;
                s_on_request (self, part, &body, now, handler, state);
                requests++;
                //  Its reply may wait for the batch: heard from us meanwhile.
                worker_keepalive (self);
                if (batch && self->nheld_replies >= S_BATCH_REQUESTS) {
                    s_batch_end (self);
                    batch = false;
                }
            }
        }
        else
        if (s_is (&part [S_COMMAND], RESV_CMD_HEARTBEAT)) {
            //  The broker's clock when it sent it, if it says (protocol
            //  section 3): an idle worker's estimate of it stays fresh.
            int64_t sent = count == 3
                ? resv_sent_parse ((const char *) zmq_msg_data (&part [2]),
                                   zmq_msg_size (&part [2]))
                : -1;
            if (count != 2 && count != 3)
                why = "HB with the wrong number of frames";
            else
            if (count == 3 && sent < 0)
                why = "HB whose SENT is not 1 to 18 digits";
            else {
                self->backoff = S_BACKOFF_MIN;
                if (sent >= 0)
                    resv_clock_seen (&self->clock, now, sent);
            }
        }
        else
        if (s_is (&part [S_COMMAND], RESV_CMD_DISCONNECT)) {
            if (count != 2)
                why = "BYE with the wrong number of frames";
            else
            if (self->state == S_STOPPING) {
                zsys_info ("worker: %s: broker acknowledged the stop",
                           self->service);
                self->state = S_STOPPED;
            }
            else {
                //  A live broker that does not know us (it restarted):
                //  announce ourselves again at once, unless it keeps
                //  refusing us, when the backoff applies.
                bool again = self->bye_at && now - self->bye_at < S_BACKOFF_MAX;
                self->bye_at = now;
                if (!again)
                    self->backoff = 0;
                //  Refused again: most likely our READY (a broker with
                //  an internal key takes no worker without the same).
                s_lost_broker (self, now, false, again?
                    "broker said BYE again, refusing this worker (is "
                    "broker/internal_key the broker's?)": "broker said BYE");
                if (!again)
                    self->backoff = S_BACKOFF_MIN;
            }
        }
        else
            why = "unknown command";
        if (why)
            zsys_warning ("worker: %s: dropped a message from the broker: %s",
                          self->service, why);
        for (int i = 0; i < count && i < S_PARTS; i++)
            zmq_msg_close (&part [i]);
        zframe_destroy (&body);
    }
    if (batch)
        s_batch_end (self);
    return requests;
}

//  Stopped (the broker said BYE), with requests still in hand: deferred
//  ones, or ones waiting on calls. The broker keeps such a worker while
//  it hears from it, so it goes on with its heartbeats until they are
//  answered; silent, it would be taken for dead and its requests failed.
static bool
s_finishing (worker_t *self)
{
    return self->state == S_STOPPED && self->handle
        && (self->later || self->ncalls);
}

//  The next time a timer needs the worker, on zclock_mono().
static int64_t
s_next_timer (worker_t *self)
{
    int64_t next = INT64_MAX;
    if (s_finishing (self))
        next = self->sent_at + self->heartbeat;
    else
    if (self->state == S_CONNECTED || self->state == S_STOPPING) {
        next = self->sent_at + self->heartbeat;
        if (self->expires_at < next)
            next = self->expires_at;
        if (self->state == S_STOPPING && self->stop_by < next)
            next = self->stop_by;
    }
    else
    if (self->state == S_WAITING)
        next = self->reconnect_at;
    if (!self->given_up) {
        int64_t give_up = s_give_up_at (self);  //  INT64_MAX before a stop
        if (give_up < next)
            next = give_up;
    }
    return next;
}

//  Runs the timers that are due: heartbeat, broker expiry, reconnection
//  and the limit on a stop.
static void
s_run_timers (worker_t *self, int64_t now)
{
    if (s_finishing (self)) {
        if (now >= self->sent_at + self->heartbeat)
            s_send_ctl (self, RESV_CMD_HEARTBEAT, NULL, NULL, NULL);
    }
    else
    if (self->state == S_CONNECTED || self->state == S_STOPPING) {
        if (now >= self->expires_at)
            s_lost_broker (self, now, false, "broker silent");
        else
        if (self->state == S_STOPPING && now >= self->stop_by
        &&  (s_stop_over (self)
             || !(zsock_events (self->sock) & ZMQ_POLLIN))) {
            zsys_warning ("worker: %s: no BYE from the broker; stopped",
                          self->service);
            self->state = S_STOPPED;
        }
        else
        if (now >= self->sent_at + self->heartbeat)
            s_send_ctl (self, RESV_CMD_HEARTBEAT, NULL, NULL, NULL);
    }
    else
    if (self->state == S_WAITING && now >= self->reconnect_at) {
        zsys_info ("worker: %s: reconnecting to %s", self->service,
                   self->backend);
        if (s_connect (self) == -1)
            s_lost_broker (self, now, false, "cannot reconnect");
        else
            s_announce (self);
    }
}

//  While asynchronous calls are out, the wait is at most this long, ms:
//  libresv resends and expires them only when it is called.
#define S_CALLS_TICK        50

//  Waits for traffic until the next timer or until, whichever is first.
//  Returns true if the broker socket became readable.
static bool
s_wait (worker_t *self, int64_t until)
{
    int64_t next = s_next_timer (self);
    if (until < next)
        next = until;
    int64_t wait = next - zclock_mono ();
    if (wait < 0)
        wait = 0;
    if (wait > 3600000)
        wait = 3600000;
    if (self->ncalls && wait > S_CALLS_TICK)
        wait = S_CALLS_TICK;
    zmq_pollitem_t items [2];
    int count = 0;
    if (self->handle)
        items [count++] = (zmq_pollitem_t) { self->handle, 0, ZMQ_POLLIN, 0 };
    if (self->ncalls) {
        //  And for a call the socket refused (no broker yet): out as soon
        //  as it would take it, not at the next tick.
        short events = ZMQ_POLLIN;
        if (resv_send_waits (self->async))
            events |= ZMQ_POLLOUT;
        items [count++] = (zmq_pollitem_t) { resv_socket (self->async), 0,
                                             events, 0 };
    }
    if (count == 0) {
        if (wait)
            zclock_sleep ((int) wait);
        return false;
    }
    if (resv_poll (items, count, (long) wait) <= 0)
        return false;
    return self->handle && (items [0].revents & ZMQ_POLLIN);
}

//  Runs the completions of the asynchronous calls that are done. Returns
//  how many ran.
static int
s_run_calls (worker_t *self)
{
    int ran = 0;
    bool batch = false;         //  The completions share a batch
    resv_reply_t reply;
    while (self->ncalls && resv_recv (self->async, 0, &reply) == 0) {
        if (reply.status != RESV_TIMEOUT)
            self->heard_at = zclock_mono ();    //  Not libresv's own expiry
        size_t index = 0;
        while (index < self->ncalls && self->calls [index].handle != reply.handle)
            index++;
        if (index == self->ncalls) {
            free (reply.body);  //  Not ours: cannot happen, but harmless
            continue;
        }
        //  Out of the table first: the completion may start new calls.
        s_call_t call = self->calls [index];
        self->calls [index] = self->calls [--self->ncalls];
        if (self->batch_begin && !self->batching
        &&  self->batch_begin (self->batch_arg) == 0)
            self->batching = batch = true;
        if (call.batch)
            s_batch_done (self, &call, reply.status, reply.body, reply.size);
        else {
            int status = reply.status;
            json_t *json = s_call_reply (&status, reply.body, reply.size,
                                         call.completion.fields);
            call.completion.done (call.completion.arg, status, json);
        }
        free (reply.body);
        ran++;
        worker_keepalive (self);    //  Its replies may wait for the batch
        if (batch && self->nheld_replies >= S_BATCH_REQUESTS) {
            s_batch_end (self);
            batch = false;
        }
    }
    if (batch)
        s_batch_end (self);
    return ran;
}

//  Completes every call still out as failed, 503 with why, so that what
//  waits on them can let go of what it holds: a deferred request is then
//  answered, or dropped with its connection (the client's retry finds
//  another worker). A completion may make new calls: they go out.
static void
s_calls_fail (worker_t *self, const char *why)
{
    size_t count = self->ncalls;
    while (count-- && self->ncalls) {
        s_call_t call = self->calls [--self->ncalls];
        json_t *error = resv_error_new (RESV_UNAVAILABLE, RESV_REASON_INTERNAL,
                                        "%s: %s", self->service, why);
        if (call.batch) {
            char *text = json_dumps (error, JSON_COMPACT);
            json_decref (error);
            s_batch_done (self, &call, RESV_UNAVAILABLE, text,
                          text? strlen (text): 0);
            free (text);
        }
        else
            call.completion.done (call.completion.arg, RESV_UNAVAILABLE,
                                  error);
    }
}

//  Once a stopping worker's time for the broker is over (s_give_up_at),
//  gives up on what still waits on it: the broker's BYE, and the calls
//  out (and with them the requests that wait on them). Calls made from
//  then on fail at once (worker_call, worker_call_async). Says once what
//  it gave up on, and why: a broker silent for s_silence, or requests
//  not done within twice stop_wait of the stop, and when the broker was
//  last heard from then.
static void
s_give_up (worker_t *self)
{
    if (!s_stop_over (self))
        return;
    size_t calls = self->ncalls, later = self->later;
    bool bye = self->state == S_STOPPING;
    if (bye)
        self->state = S_STOPPED;
    //  At the bound the broker may be silent too: with broker/heartbeat
    //  over a quarter of stop_timeout, s_silence is past the bound, and
    //  a stopped broker and a live one between two heartbeats look alike.
    //  The line says when it was last heard from, not that it answered.
    int64_t quiet = zclock_mono () - self->heard_at;
    if (!self->given_up && (calls || later || bye)) {
        if (quiet >= s_silence (self))
            zsys_warning ("worker: %s: stop: no answer from the broker "
                          "within %" PRId64 " ms; gave up on %s%zu calls "
                          "out and %zu requests in hand (answered 503, or "
                          "left to their clients' retries)", self->service,
                          s_silence (self), bye? "its BYE, ": "", calls,
                          later);
        else
            zsys_warning ("worker: %s: stop: not done within %d ms of the "
                          "stop, the broker last heard from %" PRId64 " ms "
                          "ago; gave up on %s%zu calls out and %zu requests "
                          "in hand (answered 503, or left to their clients' "
                          "retries)", self->service, 2 * self->stop_wait,
                          quiet, bye? "its BYE, ": "", calls, later);
    }
    self->given_up = true;
    if (self->ncalls)
        s_calls_fail (self, "the worker is stopping and gave up on the "
                      "broker");
}


//  --------------------------------------------------------------------------
//  Public API

worker_t *
worker_new (resv_cfg_t *cfg, const char *service, int credit)
{
    if (!service || !*service || !s_is_word (service, strlen (service))) {
        zsys_error ("worker: invalid service name '%s': 1 to %d characters "
                    "of [a-z0-9_.-]", service? service: "(null)",
                    RESV_NAME_MAX);
        return NULL;
    }
    worker_t *self = (worker_t *) zmalloc (sizeof (worker_t));
    if (!self)
        return NULL;
    self->service = strdup (service);
    self->backend = strdup (resv_cfg_str (cfg, "broker/backend",
                                          RESV_DEFAULT_BACKEND));
    const char *key = resv_cfg_str (cfg, "broker/internal_key", NULL);
    self->key = key? strdup (key): NULL;
    self->frontend = strdup (resv_cfg_str (cfg, "broker/frontend",
                                           RESV_DEFAULT_ENDPOINT));
    self->heartbeat = (int) resv_cfg_int (cfg, "broker/heartbeat", 1000,
                                          10, 600000);
    self->liveness = (int) resv_cfg_int (cfg, "broker/liveness", 3, 1, 100);
    self->reply_max = resv_frame_limit (resv_cfg_int (cfg, "broker/max_message",
                                        RESV_MESSAGE_MAX_DEFAULT, 1024, 1 << 30));
    //  workers/SERVICE/credit, else the service's own, else workers/credit.
    char credit_key [RESV_NAME_MAX + 32];
    snprintf (credit_key, sizeof credit_key, "workers/%s/credit", service);
    if (credit <= 0)
        credit = (int) resv_cfg_int (cfg, "workers/credit", 16, 1, 1000);
    self->credit = (int) resv_cfg_int (cfg, credit_key, credit, 1, 1000);
    self->call_timeout = (int) resv_cfg_int (cfg, "client/timeout",
                                             RESV_DEFAULT_TIMEOUT, 1,
                                             3600000);
    self->stop_wait = worker_stop_wait (cfg);
    self->backoff = S_BACKOFF_MIN;
    self->held = zlist_new ();
    if (!self->service || !self->backend || !self->frontend || !self->held
    ||  s_connect (self) == -1) {
        worker_destroy (&self);
        return NULL;
    }
    return self;
}

void
worker_destroy (worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    worker_t *self = *self_p;
    //  Calls still out complete now, as failed, so that what waits on them
    //  can let go of what it holds (a deferred request is then dropped:
    //  the broker gives it to another worker). The new calls their
    //  completions make fail in turn.
    s_held_calls_flush (self, "the worker is closing");
    while (self->ncalls)
        s_calls_fail (self, "the worker is closing");
    //  A worker that never announced itself (given up before it served,
    //  as resvd's own is when a configuration value is bad) has told the
    //  broker nothing and owes it nothing: its socket closes at once. A
    //  DISCONNECT, lingering for heartbeat x liveness where no broker is
    //  listening yet, held the process's exit that long.
    if (self->state == S_CONNECTED && self->announced)
        s_send_ctl (self, RESV_CMD_DISCONNECT, NULL, NULL, NULL);
    s_close (self, self->announced);
    if (self->held)
        s_drop_held (self);
    zlist_destroy (&self->held);
    resv_destroy (&self->client);
    resv_destroy (&self->async);
    free (self->calls);
    free (self->held_replies);
    free (self->service);
    free (self->backend);
    free (self->frontend);
    free (self->key);
    free (self);
    *self_p = NULL;
}

int
worker_serve (worker_t *self, int timeout_ms, worker_handler_fn *handler,
              void *state)
{
    if (!self || !handler)
        return -1;
    //  The first serve announces the worker: its service's state is open
    //  by now (a store that another process holds locked can take seconds
    //  to open, and requests must not wait at a worker meanwhile).
    s_announce (self);
    int64_t until = timeout_ms < 0? INT64_MAX: zclock_mono () + timeout_ms;
    while (true) {
        if (zsys_interrupted)
            s_begin_stop (self, zclock_mono ());
        s_serve_held (self, handler, state);
        int served = s_run_calls (self);
        s_give_up (self);
        //  Stopped, with every request answered, deferred ones included,
        //  or given up on: one taken aside that waits on no call is
        //  left to its client's retry once the stop's time is over.
        if (self->state == S_STOPPED && self->ncalls == 0
        &&  (self->later == 0 || self->given_up)) {
            s_close (self, true);
            return -1;
        }
        if (s_wait (self, until))
            served += s_drain (self, handler, state);
        served += s_run_calls (self);
        int64_t now = zclock_mono ();
        s_run_timers (self, now);
        //  Stopped, it goes on until what it holds is answered, but still
        //  gives its caller a turn once the time asked for is up.
        if ((self->state != S_STOPPED && served) || now >= until)
            return 0;
    }
}

int
worker_run (worker_t *self, worker_handler_fn *handler, void *state)
{
    while (worker_serve (self, -1, handler, state) == 0)
        ;
    return 0;
}

void
worker_stop (worker_t *self)
{
    if (self)
        s_begin_stop (self, zclock_mono ());
}

int
worker_stop_wait (resv_cfg_t *cfg)
{
    //  A quarter each for the worker and its events actor, which wait one
    //  after the other, with a broker that says nothing: half of
    //  stop_timeout is left for the rest of the stop (closing stores, a
    //  checkpoint), and for a busy machine. (A quarter of it only, with
    //  broker/heartbeat over an eighth of it: the worker then waits for
    //  two heartbeat intervals, up to half of stop_timeout, s_silence.) A broker that answers is
    //  waited for twice as long (s_give_up_at): its publishes take
    //  milliseconds, which leaves a quarter for the rest.
    return (int) (resv_cfg_int (cfg, "resvd/stop_timeout", WORKER_STOP_TIMEOUT,
                                0, WORKER_STOP_TIMEOUT_MAX) / 4);
}

void
worker_keepalive (worker_t *self)
{
    if (!self || !self->announced
    ||  !(self->state == S_CONNECTED || self->state == S_STOPPING
          || s_finishing (self)))
        return;
    int64_t now = zclock_mono ();
    if (now >= self->sent_at + self->heartbeat)
        s_send_ctl (self, RESV_CMD_HEARTBEAT, NULL, NULL, NULL);
}

void
worker_set_batch (worker_t *self, worker_batch_fn *begin,
                  worker_batch_end_fn *end, void *arg)
{
    if (!self)
        return;
    self->batch_begin = begin && end? begin: NULL;
    self->batch_end = end;
    self->batch_arg = arg;
}

bool
worker_stopping (worker_t *self)
{
    return self && (self->stop_from || zsys_interrupted);
}

void
worker_set_credit (worker_t *self, int credit)
{
    if (self && credit >= 1 && credit <= 1000)
        self->credit = credit;
}

worker_later_t *
worker_defer (worker_t *self)
{
    if (!self || !self->current || self->deferred)
        return NULL;
    s_request_t *later = (s_request_t *) zmalloc (sizeof (s_request_t));
    if (!later)
        return NULL;
    s_request_t *request = self->current;
    zmq_msg_init (&later->ticket);
    zmq_msg_move (&later->ticket, &request->ticket);
    memcpy (later->method, request->method, sizeof later->method);
    later->deadline = request->deadline;
    later->epoch = request->epoch;
    self->deferred = true;
    self->later++;
    return later;
}

bool
worker_can_defer (worker_t *self)
{
    return self && self->current && !self->deferred;
}

void
worker_answer (worker_t *self, worker_later_t **later_p, int status,
               zframe_t **reply_p)
{
    if (!self || !later_p || !*later_p) {
        if (reply_p)
            zframe_destroy (reply_p);
        return;
    }
    zframe_t *none = NULL;
    if (!reply_p)
        reply_p = &none;
    if (!RESV_STATUS_VALID (status)) {
        zsys_error ("worker: %s: answer of '%s' with status %d",
                    self->service, (*later_p)->method, status);
        zframe_destroy (reply_p);
        status = RESV_INTERNAL;
        *reply_p = worker_error (status, RESV_REASON_INTERNAL,
                                 "%s: handler failed", self->service);
    }
    s_send_reply (self, *later_p, status, reply_p);
    s_request_destroy (later_p);
    self->later--;
}

//  Makes room for one more entry of size bytes in array, of which used of
//  *max_p are taken, doubling it when full. Returns the array, moved or
//  not, or NULL when there is no memory (array is then left as it was).
static void *
s_grow (void *array, size_t *max_p, size_t used, size_t size)
{
    if (used < *max_p)
        return array;
    size_t max = *max_p? *max_p * 2: 32;
    void *grown = realloc (array, max * size);
    if (grown)
        *max_p = max;
    return grown;
}

//  Sends an asynchronous call now and records its completion (done, or
//  for a batch request the nbatch completions of batch, which it takes).
//  body may be NULL. Returns 0, or -1 when it could not be sent (batch is
//  then the caller's still).
static int
s_call_send (worker_t *self, const char *service, const char *method,
             const char *body, int timeout_ms, s_completion_t completion,
             s_completion_t *batch, size_t nbatch)
{
    if (!self->async) {
        self->async = resv_new (self->frontend);
        if (!self->async) {
            zsys_error ("worker: %s: cannot open a client to '%s'",
                        self->service, self->frontend);
            return -1;
        }
        resv_set_key (self->async, self->key);
    }
    s_call_t *calls = (s_call_t *) s_grow (self->calls, &self->max_calls,
                                           self->ncalls, sizeof *calls);
    if (!calls)
        return -1;
    self->calls = calls;
    int64_t handle = resv_send (self->async, service, method, body,
                                body? strlen (body): 0, timeout_ms);
    if (handle < 0)
        return -1;
    self->calls [self->ncalls++] = (s_call_t) { handle, completion, batch,
                                                nbatch };
    return 0;
}

//  Sends the held calls of indexes (count of them, all to one service and
//  method) as one batch request. Returns 0, or -1 when it could not be
//  sent (their completions have not run).
static int
s_call_send_batch (worker_t *self, s_held_call_t *calls, size_t *indexes,
                   size_t count)
{
    s_held_call_t *first = &calls [indexes [0]];
    char method [RESV_NAME_MAX + 1];        //  Fits: see s_held_calls_flush
    snprintf (method, sizeof method, "%s%s", RESV_BATCH_PREFIX, first->method);
    s_completion_t *batch = (s_completion_t *) malloc (count * sizeof *batch);
    zchunk_t *body = zchunk_new (NULL, 256);
    if (!batch || !body) {
        free (batch);
        zchunk_destroy (&body);
        return -1;
    }
    zchunk_extend (body, "{\"batch\":[", 10);
    int timeout = first->timeout;
    for (size_t index = 0; index < count; index++) {
        s_held_call_t *call = &calls [indexes [index]];
        if (index)
            zchunk_extend (body, ",", 1);
        const char *text = call->body? call->body: "{}";
        zchunk_extend (body, text, strlen (text));
        if (call->timeout < timeout)
            timeout = call->timeout;
        batch [index] = call->completion;
    }
    zchunk_extend (body, "]}", 3);     //  With the NUL s_call_send reads to
    int rc = s_call_send (self, first->service, method,
                          (const char *) zchunk_data (body), timeout,
                          (s_completion_t) { NULL, NULL, NULL }, batch, count);
    zchunk_destroy (&body);
    if (rc)
        free (batch);
    return rc;
}

//  A span of JSON text: a member's value as written.
typedef struct {
    const char *text;
    size_t size;
    jscan_kind_t kind;
} s_span_t;

//  An item of a batch reply: its status and body, as written.
typedef struct {
    s_span_t status;
    s_span_t body;
} s_reply_item_t;

static bool
s_reply_member (void *arg, const char *key, size_t key_size, const char *value,
                size_t value_size, jscan_kind_t kind)
{
    s_reply_item_t *item = (s_reply_item_t *) arg;
    (void) key_size;
    if (streq (key, "status"))
        item->status = (s_span_t) { value, value_size, kind };
    else
    if (streq (key, "body"))
        item->body = (s_span_t) { value, value_size, kind };
    return true;
}

//  The status of a batch item: a JSON integer of 3 digits that
//  RESV_STATUS_VALID takes, else 0.
static int
s_item_code (s_span_t *status)
{
    if (status->kind != JSCAN_NUMBER || status->size != 3)
        return 0;
    int code = 0;
    for (size_t index = 0; index < 3; index++) {
        if (status->text [index] < '0' || status->text [index] > '9')
            return 0;
        code = code * 10 + (status->text [index] - '0');
    }
    return RESV_STATUS_VALID (code)? code: 0;
}

//  The result of one item of a batch reply, as s_call_result makes it;
//  its body is read from the reply's text (with the completion's fields
//  alone, when it names some and the item succeeded). A malformed item
//  is logged and fails its call alone.
static json_t *
s_item_result (worker_t *self, const char *text, size_t size, int *code_p,
               const char *const *fields)
{
    s_reply_item_t item = { { NULL, 0, JSCAN_LITERAL },
                            { NULL, 0, JSCAN_LITERAL } };
    if (jscan_object (text, size, s_reply_member, &item) != size
    ||  (*code_p = s_item_code (&item.status)) == 0) {
        zsys_warning ("worker: %s: an item of a batch reply has no valid "
                      "status (2xx, 4xx or 5xx); its call fails with 500",
                      self->service);
        *code_p = RESV_INTERNAL;
        return resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
                               "the reply to a batch has an item without a "
                               "valid status (2xx, 4xx or 5xx)");
    }
    s_span_t *body = &item.body;
    json_t *result = NULL;
    if (body->text && !(body->kind == JSCAN_LITERAL && *body->text == 'n')) {
        result = fields && *code_p < 400
               ? field_sparse (body->text, body->size, fields, NULL)
               : json_loadb (body->text, body->size, JSON_DECODE_ANY, NULL);
        if (!result) {
            zsys_warning ("worker: %s: an item of a batch reply has a body "
                          "that cannot be read; its call fails with 500",
                          self->service);
            *code_p = RESV_INTERNAL;
            return resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                   "the reply to a batch has an item whose "
                                   "body cannot be read");
        }
    }
    return s_call_result (code_p, result);
}

//  Completes each call of a batch request with its own status and reply,
//  or all of them with the request's when it failed as a whole. The reply
//  is split with jscan, and each body parsed on its own (not the whole
//  list, then each body taken from it).
static void
s_batch_done (worker_t *self, s_call_t *call, int status, const char *body,
              size_t size)
{
    s_batch_t batch = { .batch = NULL };
    bool whole = status == RESV_OK && s_batch_read (body, size, &batch)
              && batch.nitems == call->nbatch;
    if (status == RESV_OK && !whole)
        zsys_warning ("worker: %s: the reply to a batch of %zu calls is not "
                      "a list of %zu replies; each call fails with 500",
                      self->service, call->nbatch, call->nbatch);
    for (size_t index = 0; index < call->nbatch; index++) {
        s_completion_t *completion = &call->batch [index];
        int item_code;
        json_t *result;
        if (whole)
            result = s_item_result (self, batch.items [index].text,
                                    batch.items [index].size, &item_code,
                                    completion->fields);
        else {
            //  The request failed, or its reply is not a batch's: each
            //  call gets the failure.
            item_code = status == RESV_OK? RESV_INTERNAL: status;
            result = status == RESV_OK
                   ? resv_error_new (item_code, RESV_REASON_INTERNAL,
                                     "the reply to a batch is malformed")
                   : s_call_reply (&item_code, body, size, NULL);
        }
        completion->done (completion->arg, item_code, result);
    }
    free (batch.items);
    free (call->batch);
}

//  Sends the calls held back by a batch, or, when refused says why they
//  may not go (the batch's commit failed, the worker is closing), fails
//  them through their completions.
static void
s_held_calls_flush (worker_t *self, const char *refused)
{
    //  A completion may make new calls: they go out at once, not here.
    s_held_call_t *calls = self->held_calls;
    size_t count = self->nheld_calls;
    self->held_calls = NULL;
    self->nheld_calls = self->max_held_calls = 0;
    //  Calls to one service and method go as one batch request (each
    //  alone should there be no memory to group them).
    size_t *group = (size_t *) malloc ((count? count: 1) * sizeof (size_t));
    bool *taken = (bool *) calloc (count? count: 1, sizeof (bool));
    bool grouping = group && taken;
    for (size_t index = 0; index < count; index++) {
        if (grouping && taken [index])
            continue;
        s_held_call_t *call = &calls [index];
        size_t size = 1;
        //  A method too long to take the prefix goes call by call.
        if (grouping && strlen (RESV_BATCH_PREFIX) + strlen (call->method)
                        <= RESV_NAME_MAX) {
            group [0] = index;
            for (size_t other = index + 1; other < count && size < S_BATCH_CALLS;
                 other++)
                if (!taken [other] && streq (calls [other].service, call->service)
                &&  streq (calls [other].method, call->method)) {
                    group [size++] = other;
                    taken [other] = true;
                }
        }
        bool failed = refused != NULL;
        if (!failed)
            failed = size > 1
                   ? s_call_send_batch (self, calls, group, size) != 0
                   : s_call_send (self, call->service, call->method, call->body,
                                  call->timeout, call->completion, NULL, 0) != 0;
        for (size_t member = 0; failed && member < size; member++) {
            s_held_call_t *each = &calls [size > 1? group [member]: index];
            each->completion.done (each->completion.arg, RESV_INTERNAL,
                resv_error_new (RESV_INTERNAL, RESV_REASON_NOT_SENT,
                                "%s: %s %s not sent: %s", self->service,
                                each->service, each->method,
                                refused? refused: "no client"));
        }
    }
    for (size_t index = 0; index < count; index++) {
        free (calls [index].service);
        free (calls [index].method);
        free (calls [index].body);
    }
    free (group);
    free (taken);
    free (calls);
}

int
worker_call_async (worker_t *self, const char *service, const char *method,
                   json_t *request, const char *const *fields, int timeout_ms,
                   worker_done_fn *done, void *arg)
{
    if (!self || !done || !service || !*service || !method
    ||  !s_is_word (service, strlen (service))
    ||  !s_is_word (method, strlen (method)))
        return -1;
    if (timeout_ms <= 0)
        timeout_ms = self->call_timeout;
    if (s_stop_over (self))
        return -1;              //  Nothing may wait on the broker now
    char *body = request? json_dumps (request, JSON_COMPACT): NULL;
    s_completion_t completion = { done, arg, fields };
    if (!self->batching) {
        int rc = s_call_send (self, service, method, body, timeout_ms,
                              completion, NULL, 0);
        free (body);
        return rc;
    }
    //  In a batch: sent after the commit, so that nothing the call relies
    //  on (a saga's row) can be lost while its effect is not.
    s_held_call_t *held = (s_held_call_t *) s_grow (self->held_calls,
        &self->max_held_calls, self->nheld_calls, sizeof *held);
    if (!held) {
        free (body);
        return -1;
    }
    self->held_calls = held;
    char *service_copy = strdup (service), *method_copy = strdup (method);
    if (!service_copy || !method_copy) {
        free (service_copy);
        free (method_copy);
        free (body);
        return -1;
    }
    self->held_calls [self->nheld_calls++] = (s_held_call_t) {
        service_copy, method_copy, body, timeout_ms, completion
    };
    return 0;
}

const char *
worker_service (worker_t *self)
{
    return self? self->service: NULL;
}

//  Makes the local error object of a failed worker_call.
static int
s_call_error (json_t **reply_p, int code, const char *reason,
              const char *message)
{
    if (reply_p)
        *reply_p = resv_error_new (code, reason, "%s", message);
    return code;
}

//  Turns a reply body into what worker_call returns, the way resv_call()
//  does: {} for an empty success, an error object for any failure. A
//  success's body is built with the members fields names alone, if any.
static json_t *
s_call_reply (int *status, const char *body, size_t size,
              const char *const *fields)
{
    json_t *reply = NULL;
    if (size) {
        json_error_t error;
        if (fields && *status < 400) {
            reply = field_sparse (body, size, fields, NULL);
            snprintf (error.text, sizeof error.text, "%s",
                      "not a valid JSON object");
        }
        else
            reply = json_loadb (body, size, JSON_DECODE_ANY, &error);
        if (!reply) {
            if (*status < 400)
                *status = RESV_INTERNAL;
            return resv_error_new (*status, RESV_REASON_INTERNAL,
                                   "the reply is not JSON: %s", error.text);
        }
    }
    return s_call_result (status, reply);
}

//  The same for a reply parsed already (taken; NULL for an empty body).
static json_t *
s_call_result (int *status, json_t *reply)
{
    if (*status < 400)
        return reply? reply: json_object ();
    if (json_is_object (json_object_get (reply, "error")))
        return reply;
    json_decref (reply);
    return resv_error_new (*status, RESV_REASON_INTERNAL, "%s",
                           resv_strstatus (*status));
}

int
worker_call (worker_t *self, const char *service, const char *method,
             json_t *request, int timeout_ms, json_t **reply_p)
{
    char *body = request? json_dumps (request, JSON_COMPACT): NULL;
    if (request && !body)
        return s_call_error (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                             "worker_call: cannot encode the request");
    int status = worker_call_raw (self, service, method, body,
                                  body? strlen (body): 0, timeout_ms, reply_p);
    free (body);
    return status;
}

int
worker_call_raw (worker_t *self, const char *service, const char *method,
                 const char *body, size_t size, int timeout_ms,
                 json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (!self)
        return s_call_error (reply_p, RESV_BAD_REQUEST,
                             RESV_REASON_BAD_REQUEST, "worker_call: no worker");
    if (timeout_ms <= 0)
        timeout_ms = self->call_timeout;
    //  Stopping, it waits for the broker only as long as the stop gives
    //  it (s_give_up_at; an undo left undone is the sweep's).
    if (self->stop_from) {
        if (s_stop_over (self))
            return s_call_error (reply_p, RESV_UNAVAILABLE,
                                 RESV_REASON_NOT_SENT, "worker_call: not "
                                 "sent: the worker is stopping and gave up "
                                 "on the broker");
        int64_t left = self->stop_from + 2 * (int64_t) self->stop_wait
                     - zclock_mono ();
        if (left < timeout_ms)
            timeout_ms = (int) left;
    }
    s_announce (self);          //  It serves, holding requests, meanwhile
    if (!self->client) {
        self->client = resv_new (self->frontend);
        if (!self->client) {
            zsys_error ("worker: %s: cannot open a client to '%s'",
                        self->service, self->frontend);
            return s_call_error (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                                 "worker_call: cannot open a client");
        }
        resv_set_key (self->client, self->key);
    }
    int64_t handle = resv_send (self->client, service, method, body, size,
                                timeout_ms);
    if (handle < 0)
        return s_call_error (reply_p, RESV_BAD_REQUEST,
                             RESV_REASON_BAD_REQUEST,
                             "worker_call: invalid service or method");

    //  libresv completes the request shortly after its deadline; ours is a
    //  backstop, should it not.
    int64_t deadline = zclock_mono () + timeout_ms + S_CALL_GRACE;
    while (true) {
        //  Wait on the client until its reply or the next worker timer,
        //  then look after the broker connection without blocking.
        int64_t now = zclock_mono ();
        int64_t next = s_next_timer (self);
        if (deadline < next)
            next = deadline;
        int wait = next > now? (int) (next - now): 0;
        resv_reply_t reply;
        if (resv_recv (self->client, wait, &reply) == 0) {
            if (reply.status != RESV_TIMEOUT)
                self->heard_at = zclock_mono ();
            if (reply.handle != handle) {
                free (reply.body);  //  From an earlier call we gave up on
                continue;
            }
            int status = reply.status;
            json_t *json = s_call_reply (&status, reply.body, reply.size,
                                         NULL);
            free (reply.body);
            if (reply_p)
                *reply_p = json;
            else
                json_decref (json);
            return status;
        }
        if (self->handle)
            s_drain (self, NULL, NULL);
        now = zclock_mono ();
        s_run_timers (self, now);
        if (now >= deadline)
            return s_call_error (reply_p, RESV_TIMEOUT, RESV_REASON_DEADLINE,
                                 "worker_call: no reply before the deadline");
        //  Sent, so it may have been done: not "not_sent".
        if (s_stop_over (self))
            return s_call_error (reply_p, RESV_UNAVAILABLE,
                                 RESV_REASON_INTERNAL, "worker_call: no "
                                 "reply: the worker is stopping and gave "
                                 "up on the broker");
    }
}


//  --------------------------------------------------------------------------
//  Reply helpers

int
worker_dispatch (const worker_method_t *methods, const char *service,
                 void *state, const char *method, zframe_t **body_p,
                 int64_t deadline, zframe_t **reply_p)
{
    if (!state)
        return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                            "%s: the service has no state", service);
    for (const worker_method_t *entry = methods; entry->name; entry++)
        if (streq (method, entry->name)) {
            json_t *request = worker_parse (*body_p, reply_p);
            if (!request)
                return RESV_BAD_REQUEST;
            int status = entry->fn (state, request, deadline, reply_p);
            json_decref (request);
            return status;
        }
    *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_UNKNOWN_METHOD,
                             "%s has no method '%.32s'", service, method);
    return RESV_BAD_REQUEST;
}

zframe_t *
worker_json (json_t *json)
{
    if (!json)
        return NULL;
    char *text = json_dumps (json, JSON_COMPACT);
    json_decref (json);
    if (!text) {
        zsys_error ("worker: cannot encode a reply: out of memory");
        return NULL;
    }
    return worker_text (text);
}

zframe_t *
worker_text (char *text)
{
    zframe_t *frame = text? zframe_new (text, strlen (text)): NULL;
    free (text);
    return frame;
}

zframe_t *
worker_error (int code, const char *reason, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    char *message = zsys_vprintf (fmt, args);
    va_end (args);
    //  resv_error_new makes any text valid (bytes that are not UTF-8
    //  become '?'), so the error body is never lost.
    zframe_t *frame = worker_json (resv_error_new (code, reason, "%s",
                                   message? message: resv_strstatus (code)));
    free (message);
    return frame;
}

int
worker_fail (zframe_t **reply_p, int code, const char *reason,
             const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    char *message = zsys_vprintf (fmt, args);
    va_end (args);
    zframe_destroy (reply_p);
    *reply_p = worker_json (resv_error_new (code, reason, "%s",
                            message? message: resv_strstatus (code)));
    free (message);
    return code;
}

json_t *
worker_parse (zframe_t *body, zframe_t **reply_p)
{
    size_t size = body? zframe_size (body): 0;
    if (size == 0)
        return json_object ();
    json_error_t error;
    json_t *json = json_loadb ((const char *) zframe_data (body), size,
                               JSON_REJECT_DUPLICATES, &error);
    if (json && json_is_object (json))
        return json;
    if (reply_p) {
        zframe_destroy (reply_p);
        if (json)
            *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_MALFORMED,
                                     "body is not a JSON object");
        else
            *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_MALFORMED,
                                     "body is not valid JSON: %s at "
                                     "position %d", error.text,
                                     error.position);
    }
    json_decref (json);
    return NULL;
}
