/*  broker.c: the resv broker actor: routes client requests to workers.

    One thread owns everything: the frontend and backend ROUTER sockets, the
    services with their workers and queues, and every request in flight. The
    loop polls the actor pipe and both sockets, drains what is readable, then
    fires what is due: request deadlines and grace periods (a min-heap keyed
    by due time) and heartbeats. The connections the sockets cannot
    accept are watched by accept_log.c, in a thread of its own, so that
    the loop polls nothing more. doc/protocol.md is the contract; the
    numbered rules there are implemented here in the functions named after
    them.
*/

//  memmem, to look for a word in a reply without parsing it.
#define _GNU_SOURCE
#include "broker.h"
#include "accept_log.h"
#include "resv.h"             //  RESV_DEFAULT_ENDPOINT
#include "resv_proto.h"
#include "journal.h"
#include "jscan.h"
#include "checkpoint.h"
#include "db.h"
#include "resv_poll.h"
#include "resv_util.h"
#include <errno.h>
#include <jansson.h>

//  How many messages one socket may deliver per loop turn before the other
//  socket, the pipe and the timers get their turn.
#define BATCH_MAX           256
//  Longest well-formed message, in frames, after the routing id; more is
//  malformed. Ten leaves room for future optional frames.
#define FRAMES_MAX          10
//  Services the broker keeps at once. Each costs little, but a client that
//  names random services must not grow the broker without bound.
#define SERVICES_MAX        256
//  Malformed-message log lines per second; the rest are only counted.
#define LOG_BURST           10
//  How many times a request is sent to a worker: once, and once more if
//  its worker died holding it.
#define ATTEMPTS_MAX        2
//  Answered requests that a retry may still follow, remembered so that a
//  retry that crossed the answer is dropped (protocol section 2, request-id):
//  at most this many at once, each until its deadline and this long more.
//  They are those the client retried while they were in flight, and those
//  answered at this age or older, in ms: libresv's first retry comes at 1
//  s (RESV_DEFAULT_RETRY), and could cross the answer of one that took
//  that long. Faster requests, nearly all, cost nothing.
#define ANSWERED_MAX        65536
#define ANSWERED_MARGIN     1000
#define ANSWERED_AGE        500
//  Clients whose clocks the broker keeps (s_client_clock), at most: a
//  full table is emptied, and each estimate learnt again from the
//  client's next request.
#define CLIENTS_MAX         16384
//  Replies held to their deadlines (s_request_hold) at most: each is a
//  request and its reply, a kilobyte or two (a worker's failure is kept
//  whole), for up to max_timeout, and a client that sends retries faster
//  than they expire must not grow the broker without bound. One that
//  finds no room is forgotten unanswered, and its client answers it 504
//  itself at its deadline: a failure that says it may have been done,
//  when the held reply would have come.
#define HELD_MAX            65536
//  Most journal reads handed to the journal's thread and not yet done.
//  Jobs and their results cross one pipe each way, each blocking when
//  full (some 2 000 messages): with thousands of reads sent at once while
//  the thread was busy (a commit waiting for the disk), the loop blocked
//  handing over reads, stopped routing, and the thread then blocked
//  handing back results the loop no longer took. A read past this is
//  answered 429 queue_full at once, as a request past a full queue is.
#define READS_MAX           256
//  Lines about the connections one socket cannot accept (out of files),
//  at most two in this many ms (accept_log.h).
#define ACCEPT_LOG_EVERY    5000
#define STRINGIFY_(x)       #x
#define STRINGIFY(x)        STRINGIFY_(x)

typedef enum { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN } breaker_state_t;
static const char *s_breaker_names [] = { "closed", "open", "half-open" };

typedef struct _service_t service_t;
typedef struct _worker_t worker_t;
typedef struct _request_t request_t;

struct _service_t {
    char name [RESV_NAME_MAX + 1];  //  Service name, the key in broker->services
    zlistx_t *queue;            //  Requests waiting for a worker, FIFO
    worker_t **workers;         //  Live workers of this service
    size_t nworkers;            //  Used entries of workers
    size_t workers_max;         //  Allocated entries of workers
    size_t inflight;            //  Requests held by its workers
    breaker_state_t breaker;    //  Circuit breaker state
    int failures;               //  Consecutive failures
    int64_t reopen_at;          //  When an open breaker half-opens
    bool probing;               //  A half-open probe is in flight
    uint64_t served;            //  Replies from workers passed to clients
    uint64_t failed;            //  Timeouts, lost requests and 500s
};

struct _worker_t {
    char key [2 * 255 + 1];     //  Routing id in hex, key in broker->workers
    zmq_msg_t identity;         //  Routing id, to address the worker
    service_t *service;         //  The service it announced
    size_t credit;              //  Requests it may hold at once
    size_t inflight;            //  Requests it holds now, late ones too
    zhashx_t *late;             //  Tickets of those answered 504 meanwhile
                                //  -> when to stop waiting (or NULL)
    int64_t expires;            //  Dead if silent until then
    uint64_t last_dispatch;     //  Dispatch counter at its last request
    bool draining;              //  Said BYE, or is being removed; takes
                                //  no new request
    bool gone;                  //  A send to it failed: its connection is
                                //  gone (s_gone_remove removes it)
};

//  The parts a request keeps are the very messages received, moved in:
//  no copy of a body is made, and sending one to a worker only adds a
//  reference (zmq_msg_copy).
struct _request_t {
    zmq_msg_t client;           //  Client routing id
    zmq_msg_t id;               //  Client's request id
    zmq_msg_t method;           //  Method, passed through
    zmq_msg_t body;             //  Body, kept for a re-dispatch
    service_t *service;         //  Target service
    worker_t *worker;           //  Worker holding it, NULL while queued
    void *queued;               //  Handle in service->queue while queued
    int64_t deadline;           //  Absolute, zclock_mono ms
    int64_t due;                //  Heap key: deadline or end of grace
    bool grace;                 //  due is the end of a no-worker grace
    bool probe;                 //  The half-open breaker's probe
    bool retried;               //  Its client sent it again meanwhile, or
                                //  it is forgotten unanswered (HELD_MAX)
    bool resent;                //  Came as a retry (RTRY) we did not know:
                                //  an earlier send may have been done
    bool after_stop;            //  Taken while the broker was stopping
    bool unsent;                //  Its reply could not leave
    zmq_msg_t held;             //  Its reply, held to its deadline
    int held_status;            //  (s_request_hold), and its status; 0:
                                //  none held
    int64_t arrived;            //  zclock_mono ms, when its client sent
                                //  it (its read, for an older client)
    int attempts;               //  Times sent to a worker
    size_t slot;                //  Index in the timer heap
    char ticket [];             //  Client id hex ":" request id; the key
};                              //  in broker->requests

//  A publish waiting for a group commit, then part of one.
typedef struct {
    zmq_msg_t client;           //  Who sent it, to reply to
    zmq_msg_t id;               //  Its request id
    zmq_msg_t body;             //  The body as received
    char *owned;                //  Or the body written anew, or NULL
    journal_event_t *events;    //  Its batch, checked, pointing into one
    size_t count;               //  of those
} publish_t;

typedef struct {
    zsock_t *pipe;              //  Actor pipe
    resv_cfg_t *cfg;            //  Configuration, borrowed
    zsock_t *frontend;          //  ROUTER for clients
    zsock_t *backend;           //  ROUTER for workers
    zsock_t *events;            //  PUB of journaled events
    accept_log_t *accepts;      //  Logs what those three cannot accept
    void *front;                //  libzmq handle of frontend
    void *back;                 //  libzmq handle of backend
    zactor_t *journal;          //  The journal's thread (owns the journal)
    int64_t last;               //  Newest journaled seq, as last heard
    size_t jobs;                //  Jobs given to the journal's thread
    size_t reads;               //  Of them reads, up to READS_MAX
    bool committing;            //  A group commit is one of them
    resv_log_limit_t commit_log;    //  Refused commits logged
    resv_log_limit_t retry_log;     //  Unknown retries left unanswered
    resv_log_limit_t held_log;      //  Replies not held for want of room
    resv_log_limit_t unsent_log;    //  Replies that could not leave
    size_t held;                //  Requests whose reply is held (HELD_MAX)
    zactor_t *checkpoint;       //  Checkpoints the journal's WAL
    publish_t *publishes;       //  Publishes waiting for the next commit
    size_t npublishes;          //  Used entries of publishes
    size_t max_publishes;       //  Allocated entries of publishes
    zhashx_t *services;         //  name -> service_t, owned
    zhashx_t *workers;          //  routing id hex -> worker_t, owned
    zhashx_t *requests;         //  ticket -> request_t, owned
    zhashx_t *answered;         //  ticket -> until when (ANSWERED_MAX)
    zhashx_t *clocks;           //  Client's hex id -> resv_clock_t *, its
                                //  clock against ours (CLIENTS_MAX)
    request_t **heap;           //  Pending requests by due time
    size_t heap_size;           //  Used entries of heap
    size_t heap_max;            //  Allocated entries of heap
    int64_t heartbeat_at;       //  Next heartbeat round
    int64_t timers_at;          //  When the timers last ran
    int64_t started;            //  Start time, for uptime
    uint64_t dispatches;        //  Dispatch counter, for least-recently-used
    uint64_t malformed;         //  Malformed messages seen
    int64_t log_second;         //  Second of the malformed log budget
    int log_count;              //  Malformed lines logged that second
    bool stopping;              //  STOP received: no new requests
    bool gone;                  //  Some worker is gone (s_gone_remove)
    bool stopped;               //  STOP acknowledged on the pipe
    size_t unfinished;          //  Requests taken before STOP, in flight
    bool terminated;            //  $TERM received
    //  Settings, from the configuration
    int64_t heartbeat;          //  broker/heartbeat, ms
    int64_t liveness;           //  broker/liveness, intervals
    int64_t queue_max;          //  broker/queue_max, per service
    int64_t grace;              //  broker/grace, ms
    int64_t max_timeout;        //  broker/max_timeout, ms
    int64_t breaker_failures;   //  broker/breaker_failures
    int64_t breaker_cooldown;   //  broker/breaker_cooldown, ms
    int64_t breaker_min_time;   //  broker/breaker_min_time, ms
    const char *internal_key;   //  broker/internal_key; NULL: open
    int64_t max_message;        //  broker/max_message, bytes
} broker_t;

//  The methods only workers may call (resv_proto.h).
static const char *s_internal_methods [] = { RESV_INTERNAL_METHODS, NULL };

static void s_request_destroy (broker_t *self, request_t **self_p);
static void s_service_dispatch (broker_t *self, service_t *service);
static void s_worker_remove (broker_t *self, worker_t *worker,
                             const char *why);
static void s_worker_gone (broker_t *self, worker_t *worker);


//  --------------------------------------------------------------------------
//  Timer heap: pending requests ordered by due time. Each request knows its
//  slot, so it can be moved or removed in O(log n).

static void
s_heap_swap (broker_t *self, size_t a, size_t b)
{
    request_t *tmp = self->heap [a];
    self->heap [a] = self->heap [b];
    self->heap [b] = tmp;
    self->heap [a]->slot = a;
    self->heap [b]->slot = b;
}

static void
s_heap_sift (broker_t *self, size_t slot)
{
    while (slot > 0) {
        size_t parent = (slot - 1) / 2;
        if (self->heap [parent]->due <= self->heap [slot]->due)
            break;
        s_heap_swap (self, slot, parent);
        slot = parent;
    }
    while (true) {
        size_t left = 2 * slot + 1, least = slot;
        if (left < self->heap_size
        &&  self->heap [left]->due < self->heap [least]->due)
            least = left;
        if (left + 1 < self->heap_size
        &&  self->heap [left + 1]->due < self->heap [least]->due)
            least = left + 1;
        if (least == slot)
            break;
        s_heap_swap (self, slot, least);
        slot = least;
    }
}

static int
s_heap_push (broker_t *self, request_t *request)
{
    if (self->heap_size == self->heap_max) {
        size_t max = self->heap_max? self->heap_max * 2: 1024;
        request_t **heap = (request_t **) realloc (self->heap, max * sizeof (request_t *));
        if (!heap)
            return -1;
        self->heap = heap;
        self->heap_max = max;
    }
    request->slot = self->heap_size++;
    self->heap [request->slot] = request;
    s_heap_sift (self, request->slot);
    return 0;
}

static void
s_heap_remove (broker_t *self, request_t *request)
{
    size_t slot = request->slot;
    assert (slot < self->heap_size && self->heap [slot] == request);
    self->heap_size--;
    if (slot != self->heap_size) {
        self->heap [slot] = self->heap [self->heap_size];
        self->heap [slot]->slot = slot;
        s_heap_sift (self, slot);
    }
}

static void
s_heap_update (broker_t *self, request_t *request, int64_t due, bool grace)
{
    request->due = due;
    request->grace = grace;
    s_heap_sift (self, request->slot);
}


//  --------------------------------------------------------------------------
//  Logging of bad input: one line each, at most LOG_BURST a second, so a
//  flood of garbage cannot flood the log as well.

static void
s_malformed (broker_t *self, const char *side, const char *why)
{
    self->malformed++;
    int64_t second = zclock_mono () / 1000;
    if (second != self->log_second) {
        if (self->log_count > LOG_BURST)
            zsys_warning ("broker: %d more malformed messages not logged",
                          self->log_count - LOG_BURST);
        self->log_second = second;
        self->log_count = 0;
    }
    if (++self->log_count <= LOG_BURST)
        zsys_warning ("broker: malformed message on %s: %s", side, why);
}


//  --------------------------------------------------------------------------
//  Messages and their parts. The broker reads each message into an array
//  of zmq_msg_t on its stack: no allocation per part.

//  Parts of one message the broker looks at: the routing id and up to
//  FRAMES_MAX protocol frames. Longer messages are read to the end and
//  marked, so that the next message starts clean.
#define PARTS_MAX           (FRAMES_MAX + 1)

typedef struct {
    zmq_msg_t part [PARTS_MAX];     //  Parts, initialised up to count
    int count;                  //  Parts kept
    bool too_many;              //  More parts came and were dropped
} s_msg_t;

//  Reads one message from handle without blocking. Returns true if one
//  was read; the caller then closes it with s_msg_close.
static bool
s_msg_recv (void *handle, s_msg_t *msg)
{
    msg->count = 0;
    msg->too_many = false;
    int flags = ZMQ_DONTWAIT;
    while (true) {
        zmq_msg_t *part = &msg->part [msg->count < PARTS_MAX? msg->count: PARTS_MAX - 1];
        zmq_msg_t spare;
        if (msg->count >= PARTS_MAX) {
            part = &spare;
            msg->too_many = true;
        }
        zmq_msg_init (part);
        if (zmq_msg_recv (part, handle, flags) == -1) {
            zmq_msg_close (part);
            return msg->count > 0;      //  EAGAIN on the first part: none
        }
        bool more = zmq_msg_more (part);
        if (part == &spare)
            zmq_msg_close (&spare);
        else
            msg->count++;
        if (!more)
            return true;
        flags = 0;              //  The rest of a message is always there
    }
}

static void
s_msg_close (s_msg_t *msg)
{
    for (int i = 0; i < msg->count; i++)
        zmq_msg_close (&msg->part [i]);
    msg->count = 0;
}

static bool
s_part_is (zmq_msg_t *part, const char *text)
{
    size_t len = strlen (text);
    return part && zmq_msg_size (part) == len
        && memcmp (zmq_msg_data (part), text, len) == 0;
}

//  A name: 1 (or 0 when empty_ok) to RESV_NAME_MAX of [a-z0-9_.-].
static bool
s_part_is_name (zmq_msg_t *part, bool empty_ok)
{
    size_t size = zmq_msg_size (part);
    if (size > RESV_NAME_MAX || (size == 0 && !empty_ok))
        return false;
    const byte *data = (const byte *) zmq_msg_data (part);
    for (size_t i = 0; i < size; i++)
        if (!(islower (data [i]) || isdigit (data [i])
            || data [i] == '_' || data [i] == '.' || data [i] == '-'))
            return false;
    return true;
}

//  A request id: 1 to RESV_ID_MAX printable ASCII characters.
static bool
s_part_is_id (zmq_msg_t *part)
{
    size_t size = zmq_msg_size (part);
    if (size == 0 || size > RESV_ID_MAX)
        return false;
    const byte *data = (const byte *) zmq_msg_data (part);
    for (size_t i = 0; i < size; i++)
        if (data [i] < 0x21 || data [i] > 0x7e)
            return false;
    return true;
}

//  Parses a decimal part of 1 to max_size digits into *value. A number
//  too large for int64_t counts as INT64_MAX.
static bool
s_part_number (zmq_msg_t *part, size_t max_size, int64_t *value)
{
    size_t size = zmq_msg_size (part);
    if (size == 0 || size > max_size)
        return false;
    const byte *data = (const byte *) zmq_msg_data (part);
    int64_t result = 0;
    for (size_t i = 0; i < size; i++) {
        if (!isdigit (data [i]))
            return false;
        int digit = data [i] - '0';
        result = result > (INT64_MAX - digit) / 10? INT64_MAX
                                                   : result * 10 + digit;
    }
    *value = result;
    return true;
}

//  Writes the hex form of a routing id into buf (2 * 255 + 1 bytes).
static char *
s_hex (zmq_msg_t *part, char *buf)
{
    static const char digits [] = "0123456789ABCDEF";
    size_t size = zmq_msg_size (part);
    if (size > 255)
        size = 255;
    const byte *data = (const byte *) zmq_msg_data (part);
    for (size_t i = 0; i < size; i++) {
        buf [2 * i] = digits [data [i] >> 4];
        buf [2 * i + 1] = digits [data [i] & 15];
    }
    buf [2 * size] = 0;
    return buf;
}

//  Sends a copy of part (a new reference to the same data).
static void
s_send_part (void *handle, zmq_msg_t *part, int flags)
{
    zmq_msg_t copy;
    zmq_msg_init (&copy);
    zmq_msg_copy (&copy, part);
    if (zmq_msg_send (&copy, handle, flags) == -1)
        zmq_msg_close (&copy);
}

//  Sends size bytes of data as one part.
static void
s_send_data (void *handle, const void *data, size_t size, int flags)
{
    zmq_send (handle, data, size, flags);
}

static void
s_send_text (void *handle, const char *text, int flags)
{
    zmq_send (handle, text, strlen (text), flags);
}

//  Starts a message to the worker at identity with its routing id. The
//  backend is ROUTER_MANDATORY, so this fails when the worker's connection
//  is gone, where ZeroMQ would drop the message and the broker wait for
//  the worker until it expired: one that took a stalled broker for dead
//  (s_stalled_since) came back on a new connection and left its old one
//  for good. (Or when its pipe is full, which broker/max_message and the
//  credit make all but impossible: the worker does not read.) Returns
//  false then, and the caller sends nothing more of the message.
static bool
s_send_identity (broker_t *self, zmq_msg_t *identity)
{
    zmq_msg_t copy;
    zmq_msg_init (&copy);
    zmq_msg_copy (&copy, identity);
    if (zmq_msg_send (&copy, self->back, ZMQ_SNDMORE | ZMQ_DONTWAIT) == -1) {
        zmq_msg_close (&copy);
        return false;
    }
    return true;
}


//  --------------------------------------------------------------------------
//  Replies to clients

//  Sends a reply to a client. client and id are borrowed. The body is
//  *body_p when given (moved: the caller's part is left empty), else
//  size bytes of text. Returns false if the reply could not leave: the
//  frontend is ROUTER_MANDATORY, so a client that is gone, or whose pipe
//  is full because it stopped reading, refuses the first part, and then
//  nothing more is sent.
static bool
s_send_reply (broker_t *self, zmq_msg_t *client, zmq_msg_t *id, int status,
              zmq_msg_t *body_p, const char *text, size_t size)
{
    char code [4] = {
        (char) ('0' + status / 100 % 10), (char) ('0' + status / 10 % 10),
        (char) ('0' + status % 10), 0
    };
    void *front = self->front;
    int more = ZMQ_SNDMORE | ZMQ_DONTWAIT;
    zmq_msg_t copy;
    zmq_msg_init (&copy);
    zmq_msg_copy (&copy, client);
    if (zmq_msg_send (&copy, front, more) == -1) {
        int error = errno;
        unsigned skipped;
        if (resv_log_due (&self->unsent_log, 10000, &skipped))
            zsys_warning ("broker: a reply could not leave: %s (its client "
                          "is gone, or does not read); %u more since the "
                          "last line", zmq_strerror (error), skipped);
        zmq_msg_close (&copy);
        if (body_p) {
            zmq_msg_close (body_p);
            zmq_msg_init (body_p);
        }
        return false;
    }
    //  The rest of a message always follows its first part.
    s_send_text (front, RESV_PROTO_CLIENT, more);
    s_send_text (front, RESV_CMD_REPLY, more);
    s_send_part (front, id, more);
    s_send_data (front, code, 3, more);
    if (body_p) {
        if (zmq_msg_send (body_p, front, ZMQ_DONTWAIT) == -1)
            zmq_msg_close (body_p);
        zmq_msg_init (body_p);
    }
    else
        s_send_data (front, text, size, ZMQ_DONTWAIT);
    return true;
}

//  Sends json, which it takes, as the reply's body: "{}" if it cannot be
//  dumped (no memory), so that the client still hears the status.
static bool
s_send_json (broker_t *self, zmq_msg_t *client, zmq_msg_t *id, int status,
             json_t *json)
{
    char *text = json_dumps (json, JSON_COMPACT);
    json_decref (json);
    bool sent = s_send_reply (self, client, id, status, NULL, text? text: "{}",
                              text? strlen (text): 2);
    free (text);
    return sent;
}

static bool
s_send_error (broker_t *self, zmq_msg_t *client, zmq_msg_t *id, int status,
              const char *reason, const char *message);

//  A request body as a JSON object (empty: {}), parsed with jansson's
//  flags, or NULL after answering 400 malformed with why, in jansson's
//  words where it is not JSON.
static json_t *
s_body_object (broker_t *self, zmq_msg_t *client, zmq_msg_t *id,
               const char *text, size_t size, size_t flags)
{
    json_error_t error;
    json_t *object = size? json_loadb (text, size, flags, &error)
                         : json_object ();
    if (json_is_object (object))
        return object;
    char message [JSON_ERROR_TEXT_LENGTH + 64];
    if (object)
        snprintf (message, sizeof message, "the body is not a JSON object");
    else
        snprintf (message, sizeof message, "the body is not valid JSON: %s "
                  "at position %d", error.text, error.position);
    json_decref (object);
    s_send_error (self, client, id, RESV_BAD_REQUEST, RESV_REASON_MALFORMED,
                  message);
    return NULL;
}

static bool
s_send_error (broker_t *self, zmq_msg_t *client, zmq_msg_t *id, int status,
              const char *reason, const char *message)
{
    return s_send_json (self, client, id, status,
                        json_pack ("{s:{s:i,s:s,s:s}}", "error", "code", status,
                                   "reason", reason, "message", message));
}

//  Answers a pending request with an error and forgets it.
static void
s_request_fail (broker_t *self, request_t *request, int status,
                const char *reason, const char *message)
{
    if (!s_send_error (self, &request->client, &request->id, status, reason,
                       message))
        request->unsent = true;         //  A retry gets it done again
    s_request_destroy (self, &request);
}

//  The largest part ZeroMQ keeps inside its zmq_msg_t (libzmq's
//  max_vsm_size on 64-bit machines), bytes.
#define S_PART_INLINE       33

//  Gives part data of its own, a copy, when it is too large to be kept in
//  the message itself: one read from a connection may point into the 8 KB
//  buffer ZeroMQ read it with (with the buffer's share counters, some
//  16 KB), and keeps all of it while it lives. Left as it is if the copy
//  cannot be made.
static void
s_part_own (zmq_msg_t *part)
{
    size_t size = zmq_msg_size (part);
    zmq_msg_t copy;
    if (size <= S_PART_INLINE || zmq_msg_init_size (&copy, size))
        return;
    memcpy (zmq_msg_data (&copy), zmq_msg_data (part), size);
    if (zmq_msg_move (part, &copy))     //  Closes what part was first
        zmq_msg_close (&copy);
}

//  Keeps status and a reply for the request's deadline, when s_timers
//  sends them: a copy of text (size bytes), or "{}" if it is NULL or
//  cannot be copied, as s_send_json (the status still says it). A copy,
//  not the message received: that one may point into the 8 KB buffer
//  ZeroMQ read it with, which it would keep for up to max_timeout. The
//  request is then no longer the breaker's probe: its outcome has been
//  counted (or, held at its grace's end, is not to be), the next request
//  may probe, and at its deadline it must not end another probe's turn.
//  The parts kept with it are copies too (s_part_own).
//
//  Returns false, holding nothing, if HELD_MAX replies are held already:
//  the caller then forgets the request unanswered (s_request_destroy),
//  and it is remembered as answered (ANSWERED_MAX), so that its client's
//  retries until the deadline do not run it again.
static bool
s_request_hold (broker_t *self, request_t *request, int status,
                const char *text, size_t size)
{
    if (!request->held_status && self->held >= HELD_MAX) {
        unsigned skipped;
        if (resv_log_due (&self->held_log, 10000, &skipped))
            zsys_warning ("broker: %zu replies held to their deadlines "
                          "already; one more, for %s, left unanswered, for "
                          "its client to answer at its deadline (and %u "
                          "more since the last line)", self->held,
                          request->service->name, skipped);
        request->retried = true;
        return false;
    }
    if (!request->held_status)
        self->held++;
    s_part_own (&request->client);
    s_part_own (&request->id);
    s_part_own (&request->method);
    zmq_msg_close (&request->held);
    if (!text || zmq_msg_init_size (&request->held, size)) {
        text = "{}";
        size = 2;
        //  Small enough for ZeroMQ to keep in the message itself.
        zmq_msg_init_size (&request->held, size);
    }
    memcpy (zmq_msg_data (&request->held), text, size);
    request->held_status = status;
    //  It goes to no worker again: its body is not kept for that.
    zmq_msg_close (&request->body);
    zmq_msg_init (&request->body);
    if (request->probe)
        request->service->probing = false;
    request->probe = false;
    return true;
}

//  Holds an error of the broker's own until the request's deadline, as
//  s_send_error would send it. Returns false as s_request_hold does.
static bool
s_request_hold_error (broker_t *self, request_t *request, int status,
                      const char *reason, const char *message)
{
    json_t *json = json_pack ("{s:{s:i,s:s,s:s}}", "error", "code", status,
                              "reason", reason, "message", message);
    char *text = json_dumps (json, JSON_COMPACT);
    json_decref (json);
    bool held = s_request_hold (self, request, status, text,
                                text? strlen (text): 0);
    free (text);
    return held;
}


//  --------------------------------------------------------------------------
//  Circuit breaker, one per service (protocol section 4)

static void
s_breaker_success (broker_t *self, service_t *service, request_t *request)
{
    (void) self;
    service->failures = 0;
    if (request && request->probe) {
        service->probing = false;
        if (service->breaker != BREAKER_CLOSED)
            zsys_info ("broker: service %s: circuit closed", service->name);
        service->breaker = BREAKER_CLOSED;
    }
}

static void
s_breaker_failure (broker_t *self, service_t *service, request_t *request)
{
    service->failed++;
    service->failures++;
    bool probe_failed = request && request->probe;
    if (probe_failed)
        service->probing = false;
    if (probe_failed
    || (service->breaker == BREAKER_CLOSED
        && service->failures >= self->breaker_failures)) {
        if (service->breaker != BREAKER_OPEN)
            zsys_warning ("broker: service %s: circuit open after %d "
                          "failures", service->name, service->failures);
        service->breaker = BREAKER_OPEN;
        service->reopen_at = zclock_mono () + self->breaker_cooldown;
    }
}

//  Returns true if the breaker lets this request through; marks the probe.
static bool
s_breaker_admits (broker_t *self, service_t *service, request_t *request)
{
    (void) self;
    if (service->breaker == BREAKER_OPEN
    &&  zclock_mono () >= service->reopen_at) {
        service->breaker = BREAKER_HALF_OPEN;
        zsys_info ("broker: service %s: circuit half-open", service->name);
    }
    if (service->breaker == BREAKER_CLOSED)
        return true;
    if (service->breaker == BREAKER_HALF_OPEN && !service->probing) {
        service->probing = true;
        request->probe = true;
        return true;
    }
    return false;
}


//  --------------------------------------------------------------------------
//  Services

static void
s_service_destroy (service_t **self_p)
{
    service_t *self = *self_p;
    if (!self)
        return;
    zlistx_destroy (&self->queue);
    free (self->workers);
    free (self);
    *self_p = NULL;
}

static void
s_service_free (void **item)
{
    s_service_destroy ((service_t **) item);
}

//  With the table full, forgets one service that nothing uses: no worker,
//  nothing queued or in flight (one that clients named and no worker ever
//  served, a typo, say). Returns true if one went. The table would
//  otherwise keep every name a client ever sent, and refuse real
//  services once SERVICES_MAX of them had come.
static bool
s_service_evict (broker_t *self)
{
    service_t *service = (service_t *) zhashx_first (self->services);
    while (service) {
        if (service->nworkers == 0 && service->inflight == 0
        &&  zlistx_size (service->queue) == 0) {
            zhashx_delete (self->services, service->name);
            return true;
        }
        service = (service_t *) zhashx_next (self->services);
    }
    return false;
}

//  Returns the service, creating it if new (making room, see above); NULL
//  if the table is full of services in use.
static service_t *
s_service_require (broker_t *self, zmq_msg_t *name_part)
{
    char name [RESV_NAME_MAX + 1];
    size_t size = zmq_msg_size (name_part);
    memcpy (name, zmq_msg_data (name_part), size);
    name [size] = 0;
    service_t *service = (service_t *) zhashx_lookup (self->services, name);
    if (service)
        return service;
    if (zhashx_size (self->services) >= SERVICES_MAX && !s_service_evict (self))
        return NULL;
    service = (service_t *) zmalloc (sizeof (service_t));
    strcpy (service->name, name);
    service->queue = zlistx_new ();
    zhashx_insert (self->services, name, service);
    return service;
}


//  --------------------------------------------------------------------------
//  Requests

static void
s_request_destroy (broker_t *self, request_t **self_p)
{
    request_t *request = *self_p;
    if (!request)
        return;
    if (request->queued)
        zlistx_delete (request->service->queue, request->queued);
    if (request->worker) {
        request->worker->inflight--;
        request->service->inflight--;
    }
    if (request->probe)
        request->service->probing = false;
    if (request->held_status)
        self->held--;
    if (self->stopping && !request->after_stop && self->unfinished)
        self->unfinished--;
    //  A retry may be on its way still: that one must not run the request
    //  again. But one that comes after a reply that could not leave must.
    if (!request->unsent
    &&  (request->retried || zclock_mono () - request->arrived >= ANSWERED_AGE)
    &&  zhashx_size (self->answered) < ANSWERED_MAX)
        zhashx_insert (self->answered, request->ticket, (void *) (intptr_t)
                       (request->deadline + ANSWERED_MARGIN));
    s_heap_remove (self, request);
    zhashx_delete (self->requests, request->ticket);
    zmq_msg_close (&request->client);
    zmq_msg_close (&request->id);
    zmq_msg_close (&request->method);
    zmq_msg_close (&request->body);
    zmq_msg_close (&request->held);
    free (request);
    *self_p = NULL;
}

//  Sends the request to the worker.
static bool
s_request_send (broker_t *self, request_t *request, worker_t *worker)
{
    if (!s_send_identity (self, &worker->identity))
        return false;
    //  TIMEOUT@SENT: what is left of the deadline, and our clock now, by
    //  which the worker counts the deadline from when we sent it, however
    //  long the request then waits in its socket (protocol section 3).
    int64_t now = zclock_mono ();
    char timeout [2 * RESV_DECIMAL_SIZE];
    size_t timeout_size = resv_decimal (request->deadline > now?
                                        request->deadline - now: 1, timeout);
    timeout [timeout_size++] = '@';
    timeout_size += resv_decimal (now, timeout + timeout_size);
    request->worker = worker;
    request->attempts++;
    worker->inflight++;
    worker->last_dispatch = ++self->dispatches;
    request->service->inflight++;
    if (request->due != request->deadline || request->grace)
        s_heap_update (self, request, request->deadline, false);

    void *back = self->back;
    s_send_text (back, RESV_PROTO_WORKER, ZMQ_SNDMORE);
    s_send_text (back, RESV_CMD_REQUEST, ZMQ_SNDMORE);
    s_send_text (back, request->ticket, ZMQ_SNDMORE);
    s_send_part (back, &request->method, ZMQ_SNDMORE);
    s_send_data (back, timeout, timeout_size, ZMQ_SNDMORE);
    s_send_part (back, &request->body, 0);
    return true;
}

//  Picks the worker with spare credit that holds fewest requests, and among
//  those the least recently given one. NULL if none has credit.
static worker_t *
s_service_pick (service_t *service)
{
    worker_t *best = NULL;
    for (size_t i = 0; i < service->nworkers; i++) {
        worker_t *worker = service->workers [i];
        if (worker->draining || worker->gone
        ||  worker->inflight >= worker->credit)
            continue;
        if (!best || worker->inflight < best->inflight
        || (worker->inflight == best->inflight
            && worker->last_dispatch < best->last_dispatch))
            best = worker;
    }
    return best;
}

//  Gives the queued requests of service to its workers while they have
//  credit. A worker whose connection is gone (the send failed) takes no
//  more, the request goes to another, and the gone one is removed at the
//  end of the loop's turn (s_gone_remove), with what it held.
static void
s_service_dispatch (broker_t *self, service_t *service)
{
    while (zlistx_size (service->queue)) {
        worker_t *worker = s_service_pick (service);
        if (!worker)
            break;
        request_t *request = (request_t *) zlistx_first (service->queue);
        if (!s_request_send (self, request, worker)) {
            s_worker_gone (self, worker);
            continue;
        }
        zlistx_delete (service->queue, request->queued);
        request->queued = NULL;
    }
}

//  Queues a request that found no free worker. Without any live worker it
//  waits only for the grace period. A queue may hold broker/queue_max
//  requests for a while: each keeps copies of its id and body, not the
//  buffer they were read into (s_part_own).
static void
s_request_queue (broker_t *self, request_t *request, bool front)
{
    service_t *service = request->service;
    s_part_own (&request->id);
    s_part_own (&request->body);
    request->queued = front? zlistx_add_start (service->queue, request)
                           : zlistx_add_end (service->queue, request);
    if (service->nworkers == 0) {
        int64_t until = zclock_mono () + self->grace;
        if (until < request->deadline)
            s_heap_update (self, request, until, true);
    }
}


//  --------------------------------------------------------------------------
//  Workers

static void
s_worker_destroy (worker_t **self_p)
{
    worker_t *self = *self_p;
    if (!self)
        return;
    zmq_msg_close (&self->identity);
    zhashx_destroy (&self->late);
    free (self);
    *self_p = NULL;
}

static void
s_worker_free (void **item)
{
    s_worker_destroy ((worker_t **) item);
}

//  Sends a command to the worker at identity. Returns false if it could
//  not leave (s_send_identity).
static bool
s_send_control (broker_t *self, zmq_msg_t *identity, const char *command)
{
    if (!s_send_identity (self, identity))
        return false;
    s_send_text (self->back, RESV_PROTO_WORKER, ZMQ_SNDMORE);
    s_send_text (self->back, command, 0);
    return true;
}

//  Sends a worker a HEARTBEAT with our clock (SENT, ms) in it, so that one
//  with no request for a while keeps its estimate of our clock fresh and
//  still counts the wait of a request that then waits in its socket
//  (protocol section 3). Returns false if it could not leave.
static bool
s_send_heartbeat (broker_t *self, zmq_msg_t *identity)
{
    if (!s_send_identity (self, identity))
        return false;
    //  Our clock as it is sent, not as the loop's turn began: a request
    //  sent before it in this turn must not have a later SENT, which
    //  would restart the worker's estimate (resv_clock_t).
    char sent [24];
    size_t size = resv_decimal (zclock_mono (), sent);
    s_send_text (self->back, RESV_PROTO_WORKER, ZMQ_SNDMORE);
    s_send_text (self->back, RESV_CMD_HEARTBEAT, ZMQ_SNDMORE);
    s_send_data (self->back, sent, size, 0);
    return true;
}

//  The request's deadline passed while worker held it: the client gets
//  its 504, but the worker is still at it (or will answer it 504 when it
//  comes to it), so the request keeps its credit until the worker replies
//  (s_worker_late_reply) or is lost. Without this the worker was given
//  its next requests at once, behind the slow one, where they passed
//  their deadlines too while another worker stood idle. A reply that never
//  comes (a worker out of memory) must not take the credit for good: it
//  is waited for broker/max_timeout more (s_worker_late_purge).
static void
s_worker_late (broker_t *self, worker_t *worker, request_t *request)
{
    if (!worker->late)
        worker->late = zhashx_new ();
    if (worker->late
    &&  zhashx_insert (worker->late, request->ticket, (void *) (intptr_t)
                       (request->deadline + self->max_timeout)) == 0)
        request->worker = NULL;     //  Its counts stay with the worker
}

//  A reply for ticket that is not a request the worker holds: if it is one
//  it held past its deadline, its credit is free again.
static void
s_worker_late_reply (worker_t *worker, const char *ticket)
{
    if (worker->late && zhashx_lookup (worker->late, ticket)) {
        zhashx_delete (worker->late, ticket);
        worker->inflight--;
        worker->service->inflight--;
    }
}

//  Stops waiting for the late replies that should have come long ago.
//  Returns true if some credit came free.
static bool
s_worker_late_purge (worker_t *worker, int64_t now)
{
    if (!worker->late || zhashx_size (worker->late) == 0)
        return false;
    zlist_t *old = zlist_new ();        //  Copies of their tickets
    zlist_autofree (old);
    void *until = zhashx_first (worker->late);
    while (until) {
        if ((int64_t) (intptr_t) until <= now)
            zlist_append (old, (void *) zhashx_cursor (worker->late));
        until = zhashx_next (worker->late);
    }
    const char *ticket = (const char *) zlist_first (old);
    while (ticket) {
        s_worker_late_reply (worker, ticket);
        ticket = (const char *) zlist_next (old);
    }
    bool freed = zlist_size (old) > 0;
    zlist_destroy (&old);
    return freed;
}

//  Forgets a worker. Requests it held go once more to another worker
//  (section 4, lost worker), else are answered 503.
static void
s_worker_remove (broker_t *self, worker_t *worker, const char *why)
{
    service_t *service = worker->service;
    if (worker->inflight)
        zsys_warning ("broker: worker %s of %s %s holding %zu requests",
                      worker->key, service->name, why, worker->inflight);
    else
        zsys_info ("broker: worker %s of %s %s", worker->key,
                   service->name, why);
    for (size_t i = 0; i < service->nworkers; i++)
        if (service->workers [i] == worker) {
            service->workers [i] = service->workers [--service->nworkers];
            break;
        }
    //  Collect first: failing a request changes the table we walk.
    zlistx_t *lost = zlistx_new ();
    request_t *request = (request_t *) zhashx_first (self->requests);
    while (request) {
        if (request->worker == worker)
            zlistx_add_end (lost, request);
        request = (request_t *) zhashx_next (self->requests);
    }
    request = (request_t *) zlistx_first (lost);
    while (request) {
        request->worker = NULL;
        worker->inflight--;
        service->inflight--;
        if (request->attempts < ATTEMPTS_MAX)
            s_request_queue (self, request, true);
        else {
            //  Either worker may still do it until the deadline: answered
            //  then, as a reply to a request sent again (s_reply_held).
            s_breaker_failure (self, service, request);
            if (!s_request_hold_error (self, request, RESV_UNAVAILABLE,
                                       RESV_REASON_WORKER_LOST,
                                       "the worker died holding the "
                                       "request, twice; it may have been "
                                       "done"))
                s_request_destroy (self, &request);
        }
        request = (request_t *) zlistx_next (lost);
    }
    zlistx_destroy (&lost);
    //  What it held past their deadlines was answered then.
    if (worker->late)
        service->inflight -= zhashx_size (worker->late);
    //  With no worker left, queued requests wait only for the grace.
    if (service->nworkers == 0) {
        request = (request_t *) zlistx_first (service->queue);
        while (request) {
            int64_t until = zclock_mono () + self->grace;
            if (until < request->due)
                s_heap_update (self, request, until, true);
            request = (request_t *) zlistx_next (service->queue);
        }
    }
    zhashx_delete (self->workers, worker->key);
    s_service_dispatch (self, service);
}

//  Removes the workers of list, and destroys the list. None of them is
//  given what another held (s_service_pick): it would be lost once more,
//  and fail as lost twice. Nor is one whose connection is gone, which
//  goes at the end of the loop's turn (s_gone_remove).
static void
s_workers_remove (broker_t *self, zlistx_t **list_p, const char *why)
{
    worker_t *worker = (worker_t *) zlistx_first (*list_p);
    for (; worker; worker = (worker_t *) zlistx_next (*list_p))
        worker->draining = true;
    worker = (worker_t *) zlistx_first (*list_p);
    for (; worker; worker = (worker_t *) zlistx_next (*list_p))
        s_worker_remove (self, worker, why);
    zlistx_destroy (list_p);
}

//  A send to worker failed: its connection is gone. It takes nothing
//  more, and goes at the end of the loop's turn (s_gone_remove).
static void
s_worker_gone (broker_t *self, worker_t *worker)
{
    worker->gone = true;
    self->gone = true;
}

//  Whether part holds the broker's internal key.
static bool
s_part_is_key (broker_t *self, zmq_msg_t *part)
{
    size_t size = strlen (self->internal_key);
    return zmq_msg_size (part) == size
        && memcmp (zmq_msg_data (part), self->internal_key, size) == 0;
}

//  READY: identity, header, command, service, credit [, internal key].
//  A broker with an internal key takes only workers that show it: the
//  backend is for resv's own processes, and a worker gets its service's
//  requests, with what they carry.
static void
s_worker_ready (broker_t *self, s_msg_t *msg, const char *key)
{
    zmq_msg_t *identity = &msg->part [0];
    zmq_msg_t *name = &msg->part [3];
    int64_t credit;
    if ((msg->count != RESV_WORKER_READY_FRAMES + 1
      && msg->count != RESV_WORKER_READY_FRAMES + 2)
    ||  !s_part_is_name (name, false)
    ||  !s_part_number (&msg->part [4], 9, &credit) || credit < 1 || credit > 1000) {
        s_malformed (self, "backend", "READY with a bad service or credit");
        s_send_control (self, identity, RESV_CMD_DISCONNECT);
        return;
    }
    if (self->internal_key
    && (msg->count != RESV_WORKER_READY_FRAMES + 2
        || !s_part_is_key (self, &msg->part [5]))) {
        //  The name is a short word (s_part_is_name): the line says which
        //  service's worker to look at.
        char why [64 + RESV_NAME_MAX];
        snprintf (why, sizeof why, "READY of a worker of %.*s %s",
                  (int) zmq_msg_size (name), (const char *) zmq_msg_data (name),
                  msg->count == RESV_WORKER_READY_FRAMES + 2?
                  "with a wrong internal key": "without the internal key");
        s_malformed (self, "backend", why);
        s_send_control (self, identity, RESV_CMD_DISCONNECT);
        return;
    }
    //  A worker sends READY once per connection, so a READY from a routing
    //  id we know is a new connection (a worker that sets its own id came
    //  back before its old connection was taken for dead): the old one is
    //  gone with what it held, which goes out again as a lost worker's.
    worker_t *known = (worker_t *) zhashx_lookup (self->workers, key);
    if (known)
        s_worker_remove (self, known, "announced itself again");
    if (s_part_is (name, RESV_SERVICE_PING) || s_part_is (name, RESV_SERVICE_STATS)
    ||  s_part_is (name, RESV_SERVICE_EVENTS)) {
        s_malformed (self, "backend", "READY for a reserved service name");
        s_send_control (self, identity, RESV_CMD_DISCONNECT);
        return;
    }
    service_t *service = s_service_require (self, name);
    if (!service) {
        zsys_error ("broker: READY refused: %d services already",
                    SERVICES_MAX);
        s_send_control (self, identity, RESV_CMD_DISCONNECT);
        return;
    }
    if (service->nworkers == service->workers_max) {
        size_t max = service->workers_max? service->workers_max * 2: 8;
        worker_t **grown = (worker_t **) realloc (service->workers,
                                                  max * sizeof (worker_t *));
        if (!grown) {
            zsys_error ("broker: READY refused: out of memory");
            s_send_control (self, identity, RESV_CMD_DISCONNECT);
            return;
        }
        service->workers = grown;
        service->workers_max = max;
    }
    worker_t *worker = (worker_t *) zmalloc (sizeof (worker_t));
    strcpy (worker->key, key);
    zmq_msg_init (&worker->identity);
    zmq_msg_copy (&worker->identity, identity);
    worker->service = service;
    worker->credit = (size_t) credit;
    worker->expires = zclock_mono () + self->heartbeat * self->liveness;
    zhashx_insert (self->workers, key, worker);
    service->workers [service->nworkers++] = worker;
    zsys_info ("broker: worker %s of %s ready, credit %zu", key,
               service->name, worker->credit);
    //  Requests waiting out a grace now wait for their deadline instead.
    request_t *request = (request_t *) zlistx_first (service->queue);
    while (request) {
        if (request->grace)
            s_heap_update (self, request, request->deadline, false);
        request = (request_t *) zlistx_next (service->queue);
    }
    s_service_dispatch (self, service);
}

//  What the broker says instead of not_started (s_reply_held).
#define S_NOT_BEGUN_AGAIN   "the request may have been done by a worker " \
                            "before this one (lost since, or serving a " \
                            "broker before a restart); this one did not " \
                            "begin it before the deadline"
//  What the broker says of a retry it did not know (request->resent) and
//  could not take, at its deadline: an earlier send may have been done.
#define S_RETRY_MAYBE_DONE  "the request came again, unknown here (the broker " \
                            "restarted, or its reply was lost with the " \
                            "client's connection), so an earlier send may " \
                            "have been done; "
#define S_RETRY_QUEUE_FULL  S_RETRY_MAYBE_DONE "the service's queue was full"
#define S_RETRY_CIRCUIT_OPEN S_RETRY_MAYBE_DONE "the service's circuit was open"
#define S_RETRY_NOT_BEGUN   S_RETRY_MAYBE_DONE "no worker of the service " \
                            "was free to begin it again before the deadline"

//  Whether the request is a batch (RESV_BATCH_PREFIX), and if so how many
//  bodies it carries ({"batch":[BODY,...]}, as the worker read it to
//  answer 200) in *count, or -1 there if that cannot be read.
static bool
s_batch_count (request_t *request, int *count)
{
    size_t prefix = strlen (RESV_BATCH_PREFIX);
    *count = -1;
    if (zmq_msg_size (&request->method) <= prefix
    ||  memcmp (zmq_msg_data (&request->method), RESV_BATCH_PREFIX, prefix))
        return false;
    json_t *body = json_loadb ((const char *) zmq_msg_data (&request->body),
                               zmq_msg_size (&request->body), JSON_ALLOW_NUL,
                               NULL);
    json_t *items = json_object_get (body, "batch");
    if (json_is_array (items))
        *count = (int) json_array_size (items);
    json_decref (body);
    return true;
}

//  Whether reply, a 200 to a batch of count bodies (-1: not known), is
//  one its caller reads item by item (workers/worker.c, s_batch_done):
//  as many items as bodies, each an object with a valid status and, if a
//  success, a body that is an object or null (the caller reads a
//  success's fields from it). Any other reply fails all of the batch's
//  calls, or the item's own, with 500. Where the caller would read an item
//  this does not (a key given twice: the caller takes the last), the
//  reply is only held for nothing, the safe side.
static bool
s_batch_reply_sound (json_t *reply, int count)
{
    json_t *items = json_object_get (reply, "batch");
    if (!json_is_array (items)
    ||  (count >= 0 && json_array_size (items) != (size_t) count))
        return false;
    for (size_t index = 0; index < json_array_size (items); index++) {
        json_t *item = json_array_get (items, index);
        json_t *status = json_object_get (item, "status");
        json_t *body = json_object_get (item, "body");
        if (!json_is_integer (status)
        ||  !RESV_STATUS_VALID (json_integer_value (status))
        ||  (json_integer_value (status) < 400 && body
             && !json_is_object (body) && !json_is_null (body)))
            return false;
    }
    return true;
}

//  A reply to a request sent again after its first worker was lost: that
//  one may have done it, or may still until the deadline (payment records
//  an authorisation only before it). A success or a refusal (4xx) says
//  what the lost one did, or would have: the same. But a failure (5xx, or
//  an item of a batch's: 503 payment_unavailable, 504 not_started, 500,
//  or a success its caller cannot read, which fails its calls with 500)
//  says nothing of it, and a caller told at once undoes what it
//  finds then, before the lost worker is done: a saga's void that found
//  no payment yet, and the authorisation, recorded a moment later, kept
//  for good. Such a reply is held until the deadline (s_timers), each
//  not_started in it said deadline_exceeded: the next worker did not
//  begin it, but the lost one may have. Returns true if it is held (the
//  body copied into request->held, or written anew there), false to send
//  the body as it is. A reply that must wait but finds no room to
//  (HELD_MAX) is not sent either: request->held_status is then 0, and the
//  caller forgets the request unanswered.
//
//  Parsed when it may name not_started, answers a batch or is a success
//  (its caller must be able to read it), and rarely at all: a lost
//  worker's requests and unknown retries alone.
static bool
s_reply_held (broker_t *self, request_t *request, int status,
              zmq_msg_t *body)
{
    const char *text = (const char *) zmq_msg_data (body);
    size_t size = zmq_msg_size (body);
    bool failed = status >= 500;
    bool named = memmem (text, size, RESV_REASON_NOT_STARTED,
                         strlen (RESV_REASON_NOT_STARTED)) != NULL;
    //  A batch's caller reads its items only from a 200; any other
    //  status goes to each of its calls as it is.
    int count;
    bool batch = status == RESV_OK && s_batch_count (request, &count);
    //  A success is read as strictly as its caller does (no NUL in a
    //  string), a batch's more so (no key twice).
    bool success = status < 400;
    json_t *reply = NULL;
    if (named || batch || (success && size))
        reply = json_loadb (text, size, JSON_DECODE_ANY
                            | (success? 0: JSON_ALLOW_NUL)
                            | (batch? JSON_REJECT_DUPLICATES: 0), NULL);
    if (named && !reply) {
        //  Not JSON that jansson reads (a number out of its range, say):
        //  its not_started cannot be put right, so the whole of it is
        //  said deadline_exceeded, by the broker.
        s_request_hold_error (self, request, RESV_TIMEOUT,
                              RESV_REASON_DEADLINE, S_NOT_BEGUN_AGAIN);
        return true;
    }
    if (batch && !s_batch_reply_sound (reply, count))
        failed = true;
    else
    if (!batch && success && size
    &&  (!json_is_object (reply)
         || jscan_object (text, size, NULL, NULL) != size))
        //  Not JSON, not an object, or not one that jscan reads whole (a
        //  key twice, white space after it): its caller, which reads a
        //  success's fields from it with jscan (field_sparse), fails the
        //  call with 500.
        failed = true;
    json_t *items = json_object_get (reply, "batch");
    size_t changed = 0;
    for (size_t index = 0; index <= json_array_size (items); index++) {
        json_t *entry = index? json_array_get (items, index - 1): NULL;
        json_t *item = index? json_object_get (entry, "body"): reply;
        if (index
        &&  json_integer_value (json_object_get (entry, "status")) >= 500)
            failed = true;
        json_t *error = json_object_get (item, "error");
        const char *reason = json_string_value (json_object_get (error,
                                                                 "reason"));
        if (reason && streq (reason, RESV_REASON_NOT_STARTED)) {
            json_object_set_new (error, "reason",
                                 json_string (RESV_REASON_DEADLINE));
            json_object_set_new (error, "message",
                                 json_string (S_NOT_BEGUN_AGAIN));
            changed++;
        }
    }
    if (!failed && !changed) {
        json_decref (reply);
        return false;
    }
    char *written = changed? json_dumps (reply, JSON_COMPACT): NULL;
    json_decref (reply);
    if (changed)                        //  "{}" if it could not be written
        s_request_hold (self, request, status, written,
                        written? strlen (written): 0);
    else
        s_request_hold (self, request, status, text, size);
    free (written);
    return true;
}

//  REP: identity, header, command, ticket, status, body.
static void
s_worker_reply (broker_t *self, worker_t *worker, s_msg_t *msg)
{
    zmq_msg_t *ticket = &msg->part [3];
    int64_t status;
    char key [RESV_TICKET_MAX + 1];
    if (msg->count != RESV_WORKER_REP_FRAMES + 1
    ||  zmq_msg_size (ticket) > RESV_TICKET_MAX) {
        s_malformed (self, "backend", "REP with bad frames");
        return;
    }
    memcpy (key, zmq_msg_data (ticket), zmq_msg_size (ticket));
    key [zmq_msg_size (ticket)] = 0;
    request_t *request = (request_t *) zhashx_lookup (self->requests, key);
    if (!s_part_number (&msg->part [4], 9, &status) || !RESV_STATUS_VALID (status)) {
        s_malformed (self, "backend", "REP with a bad status");
        //  Its client need not wait for the deadline: the worker failed.
        //  Unless an earlier send may have been done, and may still be
        //  until then (sent again after a lost worker, or a retry we did
        //  not know): a failure is held as s_reply_held holds one, the
        //  worker free meanwhile.
        if (request && request->worker == worker) {
            s_breaker_failure (self, request->service, request);
            if (request->attempts > 1 || request->resent) {
                worker->inflight--;
                request->service->inflight--;
                request->worker = NULL;
                if (!s_request_hold_error (self, request, RESV_INTERNAL,
                                           RESV_REASON_INTERNAL, "the worker "
                                           "sent a malformed reply"))
                    s_request_destroy (self, &request);
            }
            else
                s_request_fail (self, request, RESV_INTERNAL,
                                RESV_REASON_INTERNAL,
                                "the worker sent a malformed reply");
        }
        else
            s_worker_late_reply (worker, key);
        return;
    }
    if (!request || request->worker != worker) {
        //  Late (answered 504 already) or not its own: dropped.
        s_worker_late_reply (worker, key);
        return;
    }
    service_t *service = request->service;
    service->served++;
    if (status == RESV_INTERNAL)
        s_breaker_failure (self, service, request);
    else
        s_breaker_success (self, service, request);
    //  Failed, or not begun, by the worker it went to after its first was
    //  lost, which may still do it: the reply waits for the deadline, so
    //  that an undo made on it finds what the lost worker did
    //  (s_reply_held). The worker is free meanwhile.
    if ((request->attempts > 1 || request->resent)
    &&  s_reply_held (self, request, (int) status, &msg->part [5])) {
        worker->inflight--;
        service->inflight--;
        request->worker = NULL;
        if (!request->held_status)      //  No room to hold it (HELD_MAX)
            s_request_destroy (self, &request);
        return;
    }
    if (!s_send_reply (self, &request->client, &request->id, (int) status,
                       &msg->part [5], NULL, 0))
        request->unsent = true;         //  A retry gets it done again
    s_request_destroy (self, &request);
}

//  Handles one message from the backend.
static void
s_backend_message (broker_t *self, s_msg_t *msg)
{
    char key [sizeof ((worker_t *) 0)->key];
    if (msg->count < 3 || msg->too_many) {
        s_malformed (self, "backend", "too few or too many frames");
        return;
    }
    zmq_msg_t *identity = &msg->part [0];
    zmq_msg_t *command = &msg->part [2];
    if (!s_part_is (&msg->part [1], RESV_PROTO_WORKER)) {
        s_malformed (self, "backend", "not RESVW1");
        return;
    }
    s_hex (identity, key);
    if (s_part_is (command, RESV_CMD_READY)) {
        s_worker_ready (self, msg, key);
        return;
    }
    worker_t *worker = (worker_t *) zhashx_lookup (self->workers, key);
    if (!worker) {
        //  A worker we do not know (we restarted, or it expired): it must
        //  reconnect and announce itself again.
        if (!s_part_is (command, RESV_CMD_DISCONNECT))
            s_send_control (self, identity, RESV_CMD_DISCONNECT);
        return;
    }
    worker->expires = zclock_mono () + self->heartbeat * self->liveness;
    if (s_part_is (command, RESV_CMD_REPLY)) {
        service_t *service = worker->service;
        s_worker_reply (self, worker, msg);
        if (worker->draining && worker->inflight == 0)
            s_worker_remove (self, worker, "stopped");
        else
            s_service_dispatch (self, service);
    }
    else
    if (s_part_is (command, RESV_CMD_HEARTBEAT))
        ;                       //  Liveness refreshed above
    else
    if (s_part_is (command, RESV_CMD_DISCONNECT)) {
        //  The worker stops: nothing more goes to it, and our BYE tells it
        //  that every request before it is all it has to answer.
        worker->draining = true;
        s_send_control (self, identity, RESV_CMD_DISCONNECT);
        if (worker->inflight == 0)
            s_worker_remove (self, worker, "stopped");
    }
    else
        s_malformed (self, "backend", "unknown command");
}


//  --------------------------------------------------------------------------
//  Internal services

static json_t *
s_stats (broker_t *self)
{
    json_t *services = json_object ();
    service_t *service = (service_t *) zhashx_first (self->services);
    while (service) {
        size_t idle = 0;
        for (size_t i = 0; i < service->nworkers; i++)
            if (service->workers [i]->inflight == 0)
                idle++;
        if (service->breaker == BREAKER_OPEN
        &&  zclock_mono () >= service->reopen_at)
            service->breaker = BREAKER_HALF_OPEN;
        json_object_set_new (services, service->name, json_pack (
            "{s:I,s:I,s:I,s:I,s:s,s:I,s:I}",
            "workers", (json_int_t) service->nworkers,
            "idle", (json_int_t) idle,
            "queued", (json_int_t) zlistx_size (service->queue),
            "inflight", (json_int_t) service->inflight,
            "breaker", s_breaker_names [service->breaker],
            "served", (json_int_t) service->served,
            "failed", (json_int_t) service->failed));
        service = (service_t *) zhashx_next (self->services);
    }
    return json_pack ("{s:o,s:I,s:I,s:I,s:I,s:I}",
        "services", services,
        "journal", (json_int_t) self->last,
        "uptime_ms", (json_int_t) (zclock_mono () - self->started),
        "requests", (json_int_t) zhashx_size (self->requests),
        "held", (json_int_t) self->held,
        "malformed", (json_int_t) self->malformed);
}

static json_t *
s_ping (broker_t *self)
{
    return json_pack ("{s:b,s:s,s:I}", "pong", 1, "version", RESV_VERSION,
        "uptime_ms", (json_int_t) (zclock_mono () - self->started));
}


//  --------------------------------------------------------------------------
//  The events service: the journal's front door. "publish" appends a batch
//  and, once it is committed, fans the new events out on the PUB socket;
//  "read" returns a page of the journal for replay.
//
//  Publishes are group-committed: each one is checked as it comes and put
//  aside, and at the end of the loop turn every publish waiting goes to
//  the journal's thread as one transaction (or, while one is under way,
//  waits for it and goes with the next). Under load the relays of all
//  services publish at once, and one commit (one WAL write, one lock)
//  serves them all. Each publisher is answered only after the commit. The
//  loop never waits for the journal: a commit held back by a WAL restart
//  holds back the publishers alone.

static void
s_publish_free (publish_t *publish)
{
    zmq_msg_close (&publish->client);
    zmq_msg_close (&publish->id);
    zmq_msg_close (&publish->body);
    free (publish->events);
    free (publish->owned);
}

//  A publish in the relays' form, {"events":[E,...]}, is read in place,
//  an event at a time, and each event is journaled as its text with its
//  seq put in front: no parse into objects, no encoding anew. A body in
//  any other form is parsed whole (which says what is wrong with one that
//  is not JSON), written anew in that form, and read the same way.
static void
s_events_publish (broker_t *self, zmq_msg_t *client, zmq_msg_t *id,
                  zmq_msg_t *body)
{
    const char *text = (const char *) zmq_msg_data (body);
    size_t size = zmq_msg_size (body);
    journal_event_t *events = NULL;
    size_t count = 0;
    char *owned = NULL;
    char *error = NULL;
    if (journal_split (text, size, &events, &count, &error)) {
        free (error);
        error = NULL;
        //  Not the relays' form: parsed whole, a key given twice taking
        //  its last value, as every consumer would read it.
        json_t *request = s_body_object (self, client, id, text, size, 0);
        if (!request)
            return;
        int rc = journal_split_json (json_object_get (request, "events"),
                                     &owned, &events, &count, &error);
        json_decref (request);
        if (rc) {
            s_send_error (self, client, id, RESV_BAD_REQUEST,
                          RESV_REASON_BAD_REQUEST, error);
            free (error);
            return;
        }
    }
    if (self->npublishes == self->max_publishes) {
        size_t max = self->max_publishes? self->max_publishes * 2: 64;
        publish_t *grown = (publish_t *) realloc (self->publishes,
                                                  max * sizeof (publish_t));
        if (!grown) {
            s_send_error (self, client, id, RESV_INTERNAL, RESV_REASON_INTERNAL,
                          "the broker is out of memory");
            free (events);
            free (owned);
            return;
        }
        self->publishes = grown;
        self->max_publishes = max;
    }
    publish_t *publish = &self->publishes [self->npublishes++];
    zmq_msg_init (&publish->client);
    zmq_msg_copy (&publish->client, client);
    zmq_msg_init (&publish->id);
    zmq_msg_copy (&publish->id, id);
    publish->owned = owned;
    publish->events = events;
    publish->count = count;
    //  The events point into the body, which is kept until the commit: a
    //  reference to the same bytes, except for a body of a few bytes,
    //  which the copy holds in itself, so the events follow it there.
    zmq_msg_init (&publish->body);
    if (!owned) {
        zmq_msg_copy (&publish->body, body);
        const char *to = (const char *) zmq_msg_data (&publish->body);
        for (size_t index = 0; index < count; index++)
            events [index].text = to + (events [index].text - text);
    }
}

//  Answers a publish with the seqs of its events, {"seqs":[N,...]}.
static void
s_send_seqs (broker_t *self, publish_t *publish, const int64_t *seqs)
{
    size_t max = 16 + publish->count * 21;
    char *text = (char *) malloc (max);
    if (!text) {
        s_send_error (self, &publish->client, &publish->id, RESV_INTERNAL,
                      RESV_REASON_INTERNAL, "the broker is out of memory");
        return;
    }
    memcpy (text, "{\"seqs\":[", 9);
    size_t used = 9;
    for (size_t index = 0; index < publish->count; index++) {
        if (index)
            text [used++] = ',';
        used += resv_decimal (seqs [index], text + used);
    }
    memcpy (text + used, "]}", 3);
    used += 2;
    s_send_reply (self, &publish->client, &publish->id, RESV_OK, NULL, text,
                  used);
    free (text);
}

//  The journal's thread. It owns the journal, and does each job the
//  broker's loop gives it, in order: a group commit of publishes, or a
//  read. A WAL restart (checkpoint.h) holds the journal's writers back
//  for two syncs of the disk; with the journal here, the loop meanwhile
//  goes on routing requests, and only the publishers wait.

//  A group commit: the publishes given, and what the append made of them.
typedef struct {
    publish_t *publishes;       //  Owned; their messages are the events'
    size_t count;
    journal_event_t *all;       //  Every event, in order
    size_t total;
    int64_t *seqs;              //  Out: the seq of each
    journal_fresh_t *fresh;     //  Out: the events new to the journal
    size_t nfresh;
    int rc;                     //  Out: journal_append's
    char *error;                //  Out
    int64_t last;               //  Out: newest seq after it
} s_commit_t;

//  A read: who asked, what, and the page.
typedef struct {
    zmq_msg_t client;
    zmq_msg_t id;
    int64_t from;
    char *type;                 //  Or NULL
    int limit;
    char *text;                 //  Out: the page, or NULL on failure
} s_read_t;

static void
s_journal_actor (zsock_t *pipe, void *args)
{
    journal_t *journal = (journal_t *) args;
    zsock_signal (pipe, 0);
    while (true) {
        char *command = NULL;
        void *job = NULL;
        if (zsock_recv (pipe, "sp", &command, &job) == -1 && !command) {
            if (zmq_errno () == ETERM)
                break;          //  The context is gone: nobody to answer
            continue;           //  Interrupted: only $TERM ends it
        }
        bool term = !command || streq (command, "$TERM");
        if (!term && streq (command, "COMMIT")) {
            s_commit_t *commit = (s_commit_t *) job;
            commit->rc = journal_append (journal, commit->all, commit->total,
                                         commit->seqs, &commit->fresh,
                                         &commit->nfresh, &commit->error);
            commit->last = journal_last (journal);
        }
        else
        if (!term && streq (command, "READ")) {
            s_read_t *read = (s_read_t *) job;
            read->text = journal_read (journal, read->from, read->type,
                                       read->limit);
        }
        if (!term)
            zsock_send (pipe, "sp", command, job);
        zstr_free (&command);
        if (term)
            break;
    }
    journal_destroy (&journal);
}

static void
s_commit_free (s_commit_t **commit_p)
{
    s_commit_t *commit = *commit_p;
    if (!commit)
        return;
    for (size_t index = 0; index < commit->count; index++)
        s_publish_free (&commit->publishes [index]);
    free (commit->publishes);
    journal_fresh_destroy (&commit->fresh, commit->nfresh);
    free (commit->all);
    free (commit->seqs);
    free (commit->error);
    free (commit);
    *commit_p = NULL;
}

//  Gives the publishes waiting to the journal's thread as one group commit,
//  unless one is under way: they then wait for it, and go as the next.
static void
s_events_commit (broker_t *self)
{
    if (self->npublishes == 0 || self->committing)
        return;
    s_commit_t *commit = (s_commit_t *) calloc (1, sizeof (s_commit_t));
    size_t total = 0;
    for (size_t index = 0; index < self->npublishes; index++)
        total += self->publishes [index].count;
    if (commit) {
        commit->all = (journal_event_t *) malloc (total * sizeof (journal_event_t));
        commit->seqs = (int64_t *) malloc (total * sizeof (int64_t));
    }
    if (!commit || !commit->all || !commit->seqs) {
        zsys_error ("broker: out of memory (%zu publishes refused)",
                    self->npublishes);
        for (size_t index = 0; index < self->npublishes; index++) {
            publish_t *publish = &self->publishes [index];
            s_send_error (self, &publish->client, &publish->id, RESV_INTERNAL,
                          RESV_REASON_INTERNAL, "the broker is out of memory");
            s_publish_free (publish);
        }
        self->npublishes = 0;
        if (commit) {
            free (commit->all);
            free (commit->seqs);
            free (commit);
        }
        return;
    }
    size_t at = 0;
    for (size_t index = 0; index < self->npublishes; index++) {
        memcpy (commit->all + at, self->publishes [index].events,
                self->publishes [index].count * sizeof (journal_event_t));
        at += self->publishes [index].count;
    }
    commit->total = total;
    //  The publishes go with it; the loop starts a new list.
    commit->publishes = self->publishes;
    commit->count = self->npublishes;
    self->publishes = NULL;
    self->npublishes = 0;
    self->max_publishes = 0;
    zsock_send (self->journal, "sp", "COMMIT", commit);
    self->jobs++;
    self->committing = true;
}

//  A group commit is done: answers each publish with the seqs of its own
//  events, then fans the new events out.
static void
s_commit_done (broker_t *self, s_commit_t *commit)
{
    self->committing = false;
    unsigned skipped;
    if (commit->rc == 0) {
        self->last = commit->last;
        if (self->commit_log.total)
            zsys_info ("broker: the journal commits again, after %u refused",
                       resv_log_clear (&self->commit_log));
    }
    else
    if (commit->rc == -2)       //  An event refused: the publisher's fault
        zsys_error ("broker: %s (%zu publishes refused)",
                    commit->error? commit->error: "an event refused",
                    commit->count);
    else
    //  A commit refused for a cause that lasts (a full disk) is refused
    //  again at each publish: one line every 10 s says so.
    if (resv_log_due (&self->commit_log, 10000, &skipped))
        zsys_error ("broker: %s (%zu publishes refused; %u more refused "
                    "commits since the last line)",
                    commit->error? commit->error: "out of memory", commit->count,
                    skipped);
    size_t offset = 0;
    for (size_t index = 0; index < commit->count; index++) {
        publish_t *publish = &commit->publishes [index];
        if (commit->rc == 0)
            s_send_seqs (self, publish, commit->seqs + offset);
        else
            s_send_error (self, &publish->client, &publish->id,
                          commit->rc == -2? RESV_BAD_REQUEST: RESV_INTERNAL,
                          commit->rc == -2? RESV_REASON_BAD_REQUEST
                                          : RESV_REASON_INTERNAL,
                          commit->error? commit->error
                                       : "the broker is out of memory");
        offset += publish->count;
    }
    //  Committed and acknowledged: now subscribers may see them, as three
    //  frames: type; seq, and the seqs of the event before it of its type
    //  family and of its type, in decimal with a space between; the event.
    //  A subscriber that misses one finds the gap by the seqs (of every
    //  event, or of the family or types it subscribes to alone) and reads
    //  it back. (One frame for the three numbers, not three: each frame
    //  costs every subscriber's libzmq as much as a short message.)
    void *events = zsock_resolve (self->events);
    journal_fresh_t *fresh = commit->fresh;
    for (size_t index = 0; index < commit->nfresh; index++) {
        char seqs [3 * RESV_DECIMAL_SIZE];
        size_t size = resv_decimal (fresh [index].seq, seqs);
        seqs [size++] = ' ';
        size += resv_decimal (fresh [index].prev, seqs + size);
        seqs [size++] = ' ';
        size += resv_decimal (fresh [index].prev_type, seqs + size);
        zmq_send (events, fresh [index].type, strlen (fresh [index].type),
                  ZMQ_SNDMORE);
        zmq_send (events, seqs, size, ZMQ_SNDMORE);
        zmq_send (events, fresh [index].text, fresh [index].size, 0);
    }
    s_commit_free (&commit);
}

static void
s_read_free (s_read_t **read_p)
{
    s_read_t *read = *read_p;
    if (!read)
        return;
    zmq_msg_close (&read->client);
    zmq_msg_close (&read->id);
    free (read->type);
    free (read->text);
    free (read);
    *read_p = NULL;
}

static void
s_read_done (broker_t *self, s_read_t *read)
{
    self->reads--;
    if (read->text)
        s_send_reply (self, &read->client, &read->id, RESV_OK, NULL,
                      read->text, strlen (read->text));
    else
        s_send_error (self, &read->client, &read->id, RESV_INTERNAL,
                      RESV_REASON_INTERNAL, "the journal could not be read");
    s_read_free (&read);
}

//  Takes what the journal's thread has done. With wait, blocks for one
//  job (at most wait ms): for the stop, which must not lose any.
static void
s_journal_done (broker_t *self, int wait)
{
    zsock_set_rcvtimeo (self->journal, wait);
    while (self->jobs) {
        char *command = NULL;
        void *job = NULL;
        if (!wait && !(zsock_events (self->journal) & ZMQ_POLLIN))
            break;
        if (zsock_recv (self->journal, "sp", &command, &job) == -1 || !job) {
            zstr_free (&command);
            break;
        }
        self->jobs--;
        if (streq (command, "COMMIT"))
            s_commit_done (self, (s_commit_t *) job);
        else
            s_read_done (self, (s_read_t *) job);
        zstr_free (&command);
        if (wait)
            break;
    }
    zsock_set_rcvtimeo (self->journal, -1);
}

static void
s_events (broker_t *self, zmq_msg_t *client, zmq_msg_t *id, zmq_msg_t *method,
          zmq_msg_t *body)
{
    if (!self->journal) {
        s_send_error (self, client, id, RESV_UNAVAILABLE, RESV_REASON_NO_WORKER,
                      "the journal is not open");
        return;
    }
    if (s_part_is (method, RESV_METHOD_PUBLISH)) {
        s_events_publish (self, client, id, body);
        return;
    }
    json_t *request = s_body_object (self, client, id,
                                     (const char *) zmq_msg_data (body),
                                     zmq_msg_size (body),
                                     JSON_REJECT_DUPLICATES);
    if (!request)
        return;
    if (s_part_is (method, RESV_METHOD_READ)) {
        json_t *from = json_object_get (request, "from");
        json_t *type = json_object_get (request, "type");
        json_t *limit = json_object_get (request, "limit");
        if ((from && (!json_is_integer (from) || json_integer_value (from) < 0))
        ||  (type && (!json_is_string (type) || json_string_length (type) > JOURNAL_TYPE_MAX))
        ||  (limit && (!json_is_integer (limit) || json_integer_value (limit) < 1
                       || json_integer_value (limit) > RESV_PAGE_MAX)))
            s_send_error (self, client, id, RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                          "read takes from (>= 0), type (a prefix of at most "
                          STRINGIFY (JOURNAL_TYPE_MAX) " bytes) and limit "
                          "(1 to " STRINGIFY (RESV_PAGE_MAX) ")");
        else
        if (self->reads >= READS_MAX)
            s_send_error (self, client, id, RESV_TOO_MANY,
                          RESV_REASON_QUEUE_FULL, "the journal has "
                          STRINGIFY (READS_MAX) " reads in hand; "
                          "read again in a moment");
        else {
            //  In the journal's thread, in order after the commits given
            //  before it: a reader sees every publish it was answered.
            s_read_t *read = (s_read_t *) calloc (1, sizeof (s_read_t));
            char *prefix = type? strdup (json_string_value (type)): NULL;
            if (!read || (type && !prefix)) {
                free (read);
                free (prefix);
                s_send_error (self, client, id, RESV_INTERNAL, RESV_REASON_INTERNAL,
                              "the broker is out of memory");
            }
            else {
                zmq_msg_init (&read->client);
                zmq_msg_copy (&read->client, client);
                zmq_msg_init (&read->id);
                zmq_msg_copy (&read->id, id);
                read->from = from? json_integer_value (from): 1;
                read->type = prefix;
                read->limit = limit? (int) json_integer_value (limit)
                                   : RESV_PAGE_DEFAULT;
                zsock_send (self->journal, "sp", "READ", read);
                self->jobs++;
                self->reads++;
            }
        }
    }
    else
        s_send_error (self, client, id, RESV_BAD_REQUEST, RESV_REASON_UNKNOWN_METHOD,
                      "the events service knows publish and read");
    json_decref (request);
}


//  --------------------------------------------------------------------------
//  Client requests

//  Whether service/method names one of the internal methods, the calls
//  resv's workers make of each other.
static bool
s_method_internal (zmq_msg_t *service, zmq_msg_t *method)
{
    //  A batch of a method's requests is that method.
    const char *method_text = (const char *) zmq_msg_data (method);
    size_t method_size = zmq_msg_size (method);
    size_t prefix = strlen (RESV_BATCH_PREFIX);
    if (method_size > prefix && memcmp (method_text, RESV_BATCH_PREFIX, prefix) == 0) {
        method_text += prefix;
        method_size -= prefix;
    }
    //  SERVICE/METHOD.
    char name [2 * RESV_NAME_MAX + 2];
    size_t service_size = zmq_msg_size (service);
    if (service_size > RESV_NAME_MAX || method_size > RESV_NAME_MAX)
        return false;           //  No internal method is that long
    memcpy (name, zmq_msg_data (service), service_size);
    name [service_size] = '/';
    memcpy (name + service_size + 1, method_text, method_size);
    name [service_size + 1 + method_size] = 0;
    for (const char **internal = s_internal_methods; *internal; internal++)
        if (streq (name, *internal))
            return true;
    return false;
}

//  Whether a request for service/method may pass: every request may but
//  those for internal methods, which must carry the internal key when the
//  broker has one. A wrong key is refused whatever the method; a broker
//  without a key takes any.
static bool
s_key_admits (broker_t *self, zmq_msg_t *service, zmq_msg_t *method,
              zmq_msg_t *key)
{
    if (key && self->internal_key && !s_part_is_key (self, key))
        return false;
    if (key || !self->internal_key)
        return true;
    return !s_method_internal (service, method);
}

static void
s_clock_free (void **item)
{
    free (*item);
    *item = NULL;
}

//  The clock of the client whose routing id's hex form is hex, made when
//  first heard of; NULL when out of memory.
static resv_clock_t *
s_client_clock (broker_t *self, const char *hex)
{
    resv_clock_t *clock = (resv_clock_t *) zhashx_lookup (self->clocks, hex);
    if (clock)
        return clock;
    if (zhashx_size (self->clocks) >= CLIENTS_MAX)
        zhashx_purge (self->clocks);
    clock = (resv_clock_t *) zmalloc (sizeof (resv_clock_t));
    if (clock && zhashx_insert (self->clocks, hex, clock)) {
        free (clock);
        clock = NULL;
    }
    return clock;
}

//  REQ: client, header, command, id, service, method, timeout, body
//  [, internal key].
static void
s_frontend_message (broker_t *self, s_msg_t *msg)
{
    if (msg->count < 2) {
        s_malformed (self, "frontend", "wrong number of frames");
        return;
    }
    zmq_msg_t *client = &msg->part [0];
    zmq_msg_t *header = &msg->part [1];
    zmq_msg_t *command = msg->count > 2? &msg->part [2]: NULL;
    zmq_msg_t *id = msg->count > 3? &msg->part [3]: NULL;
    //  A message that names a request id gets its 400; others are dropped.
    bool retry = command && s_part_is (command, RESV_CMD_RETRY);
    bool answerable = id && (retry || s_part_is (command, RESV_CMD_REQUEST))
                   && s_part_is_id (id);
    const char *why = NULL;
    //  Seven frames, or eight with a worker's internal key.
    if ((msg->count != RESV_CLIENT_REQ_FRAMES + 1
      && msg->count != RESV_CLIENT_REQ_FRAMES + 2) || msg->too_many)
        why = "wrong number of frames";
    else
    if (!s_part_is (header, RESV_PROTO_CLIENT))
        why = "not RESVC1";
    else
    if (!retry && !s_part_is (command, RESV_CMD_REQUEST))
        why = "unknown command";
    else
    if (!s_part_is_id (id))
        why = "bad request id";
    zmq_msg_t *service_part = &msg->part [4];
    zmq_msg_t *method = &msg->part [5];
    zmq_msg_t *body = &msg->part [7];
    int64_t timeout = 0;
    int64_t sent = -1;
    if (!why && !s_part_is_name (service_part, false))
        why = "bad service name";
    if (!why && !s_part_is_name (method, true))
        why = "bad method name";
    if (!why && (resv_timeout_parse ((const char *) zmq_msg_data (&msg->part [6]),
                                     zmq_msg_size (&msg->part [6]), SIZE_MAX,
                                     &timeout, &sent)
             ||  timeout < 1))
        why = "bad timeout";
    size_t total = 0;
    for (int i = 1; i < msg->count; i++)
        total += zmq_msg_size (&msg->part [i]);
    if (!why && total > (size_t) self->max_message) {
        char text [120];
        snprintf (text, sizeof text, "the request is %zu bytes; the limit "
                  "(broker/max_message) is %" PRId64, total, self->max_message);
        s_malformed (self, "frontend", "message too large");
        s_send_error (self, client, id, RESV_BAD_REQUEST,
                      RESV_REASON_TOO_LARGE, text);
        return;
    }
    if (why) {
        s_malformed (self, "frontend", why);
        if (answerable)
            s_send_error (self, client, id, RESV_BAD_REQUEST,
                          RESV_REASON_MALFORMED, why);
        return;
    }
    zmq_msg_t *key = msg->count > RESV_CLIENT_REQ_FRAMES + 1? &msg->part [8]: NULL;
    if (!s_key_admits (self, service_part, method, key)) {
        s_send_error (self, client, id, RESV_FORBIDDEN, RESV_REASON_INTERNAL_ONLY,
                      "this method is for resv's own workers only");
        return;
    }
    if (s_part_is (service_part, RESV_SERVICE_PING)
    ||  s_part_is (service_part, RESV_SERVICE_STATS)) {
        s_send_json (self, client, id, RESV_OK,
                     s_part_is (service_part, RESV_SERVICE_PING)
                     ? s_ping (self): s_stats (self));
        return;
    }
    if (s_part_is (service_part, RESV_SERVICE_EVENTS)) {
        s_events (self, client, id, method, body);
        return;
    }
    //  The ticket names the request to workers and makes retries of a
    //  request still in flight harmless: they find it here and are dropped.
    char ticket [RESV_TICKET_MAX + 1];
    size_t id_size = zmq_msg_size (id);
    s_hex (client, ticket);
    //  The deadline counts from when the client sent the request (its
    //  clock comes with it: protocol section 2), not from when we read
    //  it: we may have been stopped meanwhile, and the client's undo of
    //  what it gave up on would come before the work we then hand out.
    int64_t now = zclock_mono ();
    int64_t asked = timeout < self->max_timeout? timeout: self->max_timeout;
    resv_clock_t *clock = sent >= 0? s_client_clock (self, ticket): NULL;
    int64_t deadline = clock? resv_clock_deadline (clock, now, asked, sent)
                            : now + asked;
    size_t hex_size = strlen (ticket);
    ticket [hex_size] = ':';
    memcpy (ticket + hex_size + 1, zmq_msg_data (id), id_size);
    size_t ticket_size = hex_size + 1 + id_size;
    ticket [ticket_size] = 0;
    request_t *pending = (request_t *) zhashx_lookup (self->requests, ticket);
    if (pending) {
        pending->retried = true;
        return;
    }
    if (zhashx_size (self->answered) && zhashx_lookup (self->answered, ticket))
        return;                 //  A retry that crossed the answer
    //  Its deadline passed before we read it (we did not run for a while).
    if (deadline <= now) {
        if (retry)
            s_send_error (self, client, id, RESV_TIMEOUT, RESV_REASON_DEADLINE,
                          S_RETRY_MAYBE_DONE "its deadline passed before "
                          "the broker read it");
        else
            s_send_error (self, client, id, RESV_TIMEOUT,
                          RESV_REASON_NOT_STARTED, "the deadline passed "
                          "before the broker read the request; it was not "
                          "begun");
        return;
    }
    //  A stopping broker takes no new work, but it still takes a worker's
    //  call while requests it took before the stop are in flight: it may
    //  be a step of one of them (a reserve's hold or authorisation),
    //  which would otherwise be undone and answered 503. A worker's call
    //  carries the key, or, on a broker without one, names an internal
    //  method. Not while only calls taken during the stop are: workers'
    //  calls that each came while the one before was in flight (two
    //  ticks taking turns) would keep the broker from ever stopping.
    //  A retry we did not know, which we cannot take (stopping, or no
    //  room for its service), is left unanswered, not refused: it may have
    //  been done through the broker before us, and a caller told 503 at
    //  once undoes it before the worker that had it is done. Its client
    //  sends it again to the broker after us, or answers it 504 itself
    //  at its deadline.
    bool taken = !self->stopping
              || (self->unfinished
                  && (key || (!self->internal_key
                              && s_method_internal (service_part, method))));
    service_t *service = taken? s_service_require (self, service_part): NULL;
    if (!service && retry) {
        unsigned skipped;
        if (resv_log_due (&self->retry_log, 10000, &skipped))
            zsys_warning ("broker: a retry it does not know, for %.*s, left "
                          "unanswered: %s (and %u more since the last line)",
                          (int) zmq_msg_size (service_part),
                          (const char *) zmq_msg_data (service_part),
                          taken? "no room for another service"
                               : "the broker is stopping", skipped);
        return;
    }
    if (!taken) {
        s_send_error (self, client, id, RESV_UNAVAILABLE,
                      RESV_REASON_STOPPING, "the broker is stopping");
        return;
    }
    if (!service) {
        s_send_error (self, client, id, RESV_UNAVAILABLE,
                      RESV_REASON_NO_WORKER, "no such service");
        return;
    }
    //  The bound is on requests that wait: one that finds a worker with
    //  credit goes (so a queue_max of 0 means that none waits).
    worker_t *worker = zlistx_size (service->queue)? NULL: s_service_pick (service);
    request_t *request = (request_t *) zmalloc (sizeof (request_t) + ticket_size + 1);
    const char *refused = NULL;
    if (!worker && zlistx_size (service->queue) >= (size_t) self->queue_max)
        refused = RESV_REASON_QUEUE_FULL;
    else
    if (!s_breaker_admits (self, service, request))
        refused = RESV_REASON_CIRCUIT_OPEN;
    //  A retry we did not know may have been done through the broker
    //  before us, or before its reply was lost with the client's
    //  connection: held to its deadline below, not refused now as never
    //  begun.
    if (refused && !retry) {
        free (request);
        bool full = streq (refused, RESV_REASON_QUEUE_FULL);
        s_send_error (self, client, id, full? RESV_TOO_MANY: RESV_UNAVAILABLE,
                      refused, full? "the service's queue is full"
                      : "the service keeps failing; its circuit is open");
        return;
    }
    memcpy (request->ticket, ticket, ticket_size + 1);
    request->service = service;
    request->resent = retry;
    request->after_stop = self->stopping;
    //  When the client sent it, by our clock.
    request->arrived = deadline - asked;
    request->deadline = deadline;
    request->due = request->deadline;
    //  Keep the parts we need, moved out of the message.
    zmq_msg_init (&request->client);
    zmq_msg_init (&request->id);
    zmq_msg_init (&request->method);
    zmq_msg_init (&request->body);
    zmq_msg_init (&request->held);
    zmq_msg_move (&request->client, client);
    zmq_msg_move (&request->id, id);
    zmq_msg_move (&request->method, method);
    zmq_msg_move (&request->body, body);
    zhashx_insert (self->requests, request->ticket, request);
    s_heap_push (self, request);
    if (refused) {
        if (!s_request_hold_error (self, request, RESV_TIMEOUT,
                                   RESV_REASON_DEADLINE,
                                   streq (refused, RESV_REASON_QUEUE_FULL)
                                   ? S_RETRY_QUEUE_FULL: S_RETRY_CIRCUIT_OPEN))
            s_request_destroy (self, &request);
        return;
    }
    if (worker && s_request_send (self, request, worker))
        return;
    s_request_queue (self, request, false);
    //  Its connection is gone: the request goes to another, and it at the
    //  end of the turn (s_gone_remove).
    if (worker) {
        s_worker_gone (self, worker);
        s_service_dispatch (self, service);
    }
}


//  --------------------------------------------------------------------------
//  Timers

//  Forgets the answered requests whose retries can no longer come.
static void
s_answered_purge (broker_t *self, int64_t now)
{
    zlist_t *old = NULL;        //  Copies of their tickets
    void *until = zhashx_first (self->answered);
    while (until) {
        if ((int64_t) (intptr_t) until <= now) {
            if (!old) {
                old = zlist_new ();
                zlist_autofree (old);
            }
            zlist_append (old, (void *) zhashx_cursor (self->answered));
        }
        until = zhashx_next (self->answered);
    }
    const char *ticket = old? (const char *) zlist_first (old): NULL;
    while (ticket) {
        zhashx_delete (self->answered, ticket);
        ticket = (const char *) zlist_next (old);
    }
    zlist_destroy (&old);
}

//  When the broker itself stopped running, if it did before now, else 0:
//  its loop runs the timers once a heartbeat interval at least, so a gap
//  of two or more means the process was stopped (SIGSTOP, a debugger) or
//  the machine paused. Says so once per gap.
//
//  Its workers were silent only to a broker that did not listen: what
//  they sent meanwhile is still on its way in (ZeroMQ's I/O thread woke
//  up with this one), so each gets two heartbeat intervals from now to be
//  heard from before it is taken for dead. Before, a pause longer than
//  the liveness expired every worker at once, live ones too. One that
//  did take the broker for dead, and came back on a new connection, has
//  left its old one for good: the first send there fails, the heartbeat
//  of this round or the next (s_send_identity), and that one goes then.
static int64_t
s_stalled_since (broker_t *self, int64_t now)
{
    int64_t last = self->timers_at;
    self->timers_at = now;
    if (!last || now - last < 2 * self->heartbeat)
        return 0;
    zsys_warning ("broker: did not run for %" PRId64 " ms (the process was "
                  "stopped, or the machine paused); the deadlines that "
                  "passed meanwhile do not count against the services' "
                  "circuits, and the workers get %" PRId64 " ms to be heard "
                  "from", now - last, 2 * self->heartbeat);
    worker_t *worker = (worker_t *) zhashx_first (self->workers);
    while (worker) {
        if (worker->expires < now + 2 * self->heartbeat)
            worker->expires = now + 2 * self->heartbeat;
        worker = (worker_t *) zhashx_next (self->workers);
    }
    return last;
}

static void
s_timers (broker_t *self)
{
    int64_t now = zclock_mono ();
    //  What fell due while the broker did not run says nothing of the
    //  services: their workers' replies may be waiting, unread, on the
    //  backend. Counted, a pause longer than the deadlines opened the
    //  circuit of every busy service, which then refused every request
    //  for broker/breaker_cooldown after the broker ran again.
    int64_t stalled_since = s_stalled_since (self, now);
    while (self->heap_size && self->heap [0]->due <= now) {
        request_t *request = self->heap [0];
        service_t *service = request->service;
        if (request->held_status) {
            //  Its reply waited for this (s_reply_held); counted then.
            if (!s_send_reply (self, &request->client, &request->id,
                               request->held_status, &request->held, NULL, 0))
                request->unsent = true;
            s_request_destroy (self, &request);
            continue;
        }
        //  A request a worker took and was lost with (it was queued again),
        //  or a retry we did not know, may have been done: it is not
        //  answered no_worker at the grace's end, which says nothing was,
        //  nor anything before its deadline, as with s_reply_held, since
        //  the worker that had it may do it until then. It waits on in the
        //  queue for a worker that comes, and at its deadline gets 503
        //  worker_lost or 504 deadline_exceeded (below).
        if (request->grace && (request->attempts || request->resent))
            s_heap_update (self, request, request->deadline, false);
        else
        if (request->grace)
            s_request_fail (self, request, RESV_UNAVAILABLE,
                            RESV_REASON_NO_WORKER,
                            "no worker of the service came in time");
        else {
            //  Only a request a worker took tells how the service's
            //  workers fare: one that waited in the queue all along (for
            //  a service with no worker, a deadline shorter than the
            //  grace) would open the circuit of a service that has not
            //  failed, and refuse the worker that comes back.
            //  Nor does one whose client asked for less than
            //  broker/breaker_min_time: a client asking for 30 ms under
            //  load would open the circuit for every client of a service
            //  that answers everyone else in time. What the client asked
            //  for, not what was left when a worker took it: a service
            //  that hangs once its queue is long is given each request
            //  with little of its deadline left, and would never open.
            //  Nor one sent again after its worker was lost that then
            //  found no worker at all.
            if (request->attempts
            && !(stalled_since && request->due > stalled_since)
            && (request->worker? request->deadline - request->arrived
                                 >= self->breaker_min_time
                               : service->nworkers > 0))
                s_breaker_failure (self, service, request);
            bool taken = request->worker != NULL;
            if (taken)
                s_worker_late (self, request->worker, request);
            //  Never handed to a worker: its caller may know that nothing
            //  was done (a saga need not undo it), and retry it as it is.
            if (!taken && !request->attempts && request->resent)
                s_request_fail (self, request, RESV_TIMEOUT,
                                RESV_REASON_DEADLINE, S_RETRY_NOT_BEGUN);
            else
            if (!taken && !request->attempts)
                s_request_fail (self, request, RESV_TIMEOUT,
                                RESV_REASON_NOT_STARTED,
                                "no worker of the service was free before "
                                "the deadline; the request was not begun");
            else
            if (!taken)
                s_request_fail (self, request, RESV_UNAVAILABLE,
                                RESV_REASON_WORKER_LOST,
                                "the worker holding the request was lost and "
                                "no other took it before the deadline; it "
                                "may have been done");
            else
                s_request_fail (self, request, RESV_TIMEOUT,
                                RESV_REASON_DEADLINE,
                                "no reply before the deadline");
        }
    }
    if (now >= self->heartbeat_at) {
        zlistx_t *dead = zlistx_new ();
        worker_t *worker = (worker_t *) zhashx_first (self->workers);
        zlistx_t *freed = NULL;         //  Services with credit come free
        while (worker) {
            if (worker->expires <= now)
                zlistx_add_end (dead, worker);
            else
            if (!s_send_heartbeat (self, &worker->identity))
                s_worker_gone (self, worker);
            else {
                if (s_worker_late_purge (worker, now)) {
                    if (!freed)
                        freed = zlistx_new ();
                    zlistx_add_end (freed, worker->service);
                }
            }
            worker = (worker_t *) zhashx_next (self->workers);
        }
        s_workers_remove (self, &dead, "expired");
        //  After the dead are gone, so that none of them is given work.
        service_t *service = freed? (service_t *) zlistx_first (freed): NULL;
        while (service) {
            s_service_dispatch (self, service);
            service = (service_t *) zlistx_next (freed);
        }
        zlistx_destroy (&freed);
        s_answered_purge (self, now);
        self->heartbeat_at = now + self->heartbeat;
    }
}

static int
s_next_timeout (broker_t *self)
{
    int64_t next = self->heartbeat_at;
    if (self->heap_size && self->heap [0]->due < next)
        next = self->heap [0]->due;
    int64_t wait = next - zclock_mono ();
    return wait < 0? 0: (int) wait;
}


//  --------------------------------------------------------------------------
//  The actor

static void
s_pipe_command (broker_t *self)
{
    char *command = zstr_recv (self->pipe);
    if (!command) {
        self->terminated = true;    //  Interrupted: treat as $TERM
        return;
    }
    if (streq (command, "$TERM"))
        self->terminated = true;
    else
    if (streq (command, "ENDPOINTS"))
        zstr_sendx (self->pipe, zsock_endpoint (self->frontend),
                    zsock_endpoint (self->backend),
                    zsock_endpoint (self->events), NULL);
    else
    if (streq (command, "STOP")) {
        if (!self->stopping) {
            zsys_info ("broker: stopping, %zu requests in flight",
                       zhashx_size (self->requests));
            self->unfinished = zhashx_size (self->requests);
            self->stopping = true;
        }
    }
    else
        zsys_error ("broker: unknown actor command '%s'", command);
    free (command);
}

//  Reads up to BATCH_MAX messages from a socket without blocking, until
//  it is empty.
static void
s_drain (broker_t *self, void *handle,
         void (*handler) (broker_t *, s_msg_t *))
{
    s_msg_t msg;
    for (int count = 0; count < BATCH_MAX; count++) {
        if (!s_msg_recv (handle, &msg))
            break;
        handler (self, &msg);
        s_msg_close (&msg);
    }
}

//  Removes the workers whose connection is gone (s_worker_gone), with
//  what they held, once everything they sent before it closed is read:
//  ZeroMQ fails a send to a connection that is closing while its last
//  messages still wait to be read, and a reply there (a worker that
//  answered and exited, or took a stalled broker for dead) would have been
//  taken for lost, its request run again by another worker or failed 503.
//  Read until the backend has nothing, they are all in: they came before
//  the close that failed the send.
static void
s_gone_remove (broker_t *self)
{
    while (self->gone) {
        s_msg_t msg;
        while (s_msg_recv (self->back, &msg)) {
            s_backend_message (self, &msg);
            s_msg_close (&msg);
        }
        //  Removing one dispatches its requests, which may find another
        //  gone: then round again.
        self->gone = false;
        zlistx_t *gone = zlistx_new ();
        worker_t *worker = (worker_t *) zhashx_first (self->workers);
        for (; worker; worker = (worker_t *) zhashx_next (self->workers))
            if (worker->gone)
                zlistx_add_end (gone, worker);
        s_workers_remove (self, &gone, "gone (its connection closed)");
    }
}

//  Logs a failed bind of endpoint (key) and, when no restart can mend it
//  (not an endpoint, an unknown transport, an address not of this host),
//  counts it as a bad configuration value: the broker then exits
//  RESV_CFG_EXIT and resvd stops, where it would restart it for ever. An
//  address in use may be free a moment later, and is not counted.
static void
s_bind_failed (resv_cfg_t *cfg, const char *endpoint, const char *key)
{
    int error = zmq_errno ();
    zsys_error ("broker: bind %s (%s): %s", endpoint, key,
                zmq_strerror (error));
    if (error == EINVAL || error == EPROTONOSUPPORT || error == ENOCOMPATPROTO
    ||  error == EADDRNOTAVAIL || error == ENODEV)
        resv_cfg_refuse (cfg);
}

static zsock_t *
s_bind (resv_cfg_t *cfg, const char *key, const char *dflt, int64_t maxmsg)
{
    const char *endpoint = resv_cfg_str (cfg, key, dflt);
    zsock_t *sock = zsock_new (ZMQ_ROUTER);
    if (!sock)
        return NULL;
    //  A request over max_message is read and answered 400; ZeroMQ itself
    //  drops a peer that sends a frame over four times that, or over
    //  RESV_FRAME_MAX if that is more (libresv sends nothing larger), so
    //  that no one can make the broker buffer gigabytes.
    int64_t frame_max = resv_frame_limit (maxmsg);
    zmq_setsockopt (zsock_resolve (sock), ZMQ_MAXMSGSIZE, &frame_max,
                    sizeof frame_max);
    zsock_set_sndhwm (sock, 100000);
    zsock_set_rcvhwm (sock, 100000);
    //  Replies sent just before a graceful stop must still leave.
    zsock_set_linger (sock, 1000);
    zsock_set_ipv6 (sock, resv_endpoint_ipv6 (endpoint));
    if (resv_sock_bind (sock, endpoint) == -1) {
        s_bind_failed (cfg, endpoint, key);
        zsock_destroy (&sock);
    }
    return sock;
}

static broker_t *
s_broker_new (resv_cfg_t *cfg)
{
    broker_t *self = (broker_t *) zmalloc (sizeof (broker_t));
    self->cfg = cfg;
    self->heartbeat = resv_cfg_int (cfg, "broker/heartbeat", 1000, 10, 600000);
    self->liveness = resv_cfg_int (cfg, "broker/liveness", 3, 1, 100);
    self->queue_max = resv_cfg_int (cfg, "broker/queue_max", 10000, 0, 10000000);
    self->grace = resv_cfg_int (cfg, "broker/grace", 1000, 0, 600000);
    self->max_timeout = resv_cfg_int (cfg, "broker/max_timeout", 60000, 1, 86400000);
    self->breaker_failures = resv_cfg_int (cfg, "broker/breaker_failures", 5, 1, 1000000);
    self->breaker_cooldown = resv_cfg_int (cfg, "broker/breaker_cooldown", 5000, 0, 86400000);
    self->breaker_min_time = resv_cfg_int (cfg, "broker/breaker_min_time", 1000, 0, 86400000);
    int64_t maxmsg = resv_cfg_int (cfg, "broker/max_message",
                                   RESV_MESSAGE_MAX_DEFAULT, 1024, 1 << 30);
    self->internal_key = resv_cfg_str (cfg, "broker/internal_key", NULL);
    self->max_message = maxmsg;
    self->frontend = s_bind (cfg, "broker/frontend", RESV_DEFAULT_ENDPOINT, maxmsg);
    self->backend = s_bind (cfg, "broker/backend", RESV_DEFAULT_BACKEND, maxmsg);
    //  A reply that cannot leave must be known (s_send_reply).
    if (self->frontend)
        zsock_set_router_mandatory (self->frontend, 1);
    //  And one to a worker whose connection is gone (s_send_identity).
    if (self->backend)
        zsock_set_router_mandatory (self->backend, 1);
    const char *events = resv_cfg_str (cfg, "broker/events", RESV_DEFAULT_EVENTS);
    self->events = zsock_new (ZMQ_PUB);
    zsock_set_sndhwm (self->events, 100000);
    zsock_set_linger (self->events, 0);
    //  All a PUB receives is subscriptions: a type prefix behind a flag
    //  byte, or behind the name of ZMTP 3.1's SUBSCRIBE command. libzmq
    //  files each under one node per byte, built in this thread when it
    //  next publishes, so a subscription of megabytes would stall the
    //  broker and take gigabytes. ZeroMQ drops a peer that sends more.
    zsock_set_maxmsgsize (self->events, 16 + JOURNAL_TYPE_MAX);
    zsock_set_ipv6 (self->events, resv_endpoint_ipv6 (events));
    if (resv_sock_bind (self->events, events) == -1) {
        s_bind_failed (cfg, events, "broker/events");
        zsock_destroy (&self->events);
    }
    //  Past the limit of open files ZeroMQ accepts no connection, and
    //  tells only a socket monitor: a thread of its own reads the three
    //  monitors and logs it, so that the broker's loop polls nothing more.
    //  Without it the broker runs, unable to say.
    if (self->frontend && self->backend && self->events) {
        self->accepts = accept_log_new (ACCEPT_LOG_EVERY);
        if (self->accepts) {
            accept_log_watch (self->accepts, self->frontend, "frontend");
            accept_log_watch (self->accepts, self->backend, "backend");
            accept_log_watch (self->accepts, self->events, "events");
        }
    }
    const char *dir = resv_cfg_str (cfg, "data/dir", "./var");
    if (db_dir_create (dir))
        zsys_error ("broker: create data directory %s: %s", dir, strerror (errno));
    else {
        char *path = zsys_sprintf ("%s/journal.db", dir);
        journal_t *journal = journal_new (path);
        if (journal) {
            self->last = journal_last (journal);
            self->journal = zactor_new (s_journal_actor, journal);
            if (self->journal)
                self->checkpoint = checkpoint_new (path);
            else {
                zsys_error ("broker: cannot start the journal's thread");
                journal_destroy (&journal);
            }
        }
        zstr_free (&path);
    }
    self->front = self->frontend? zsock_resolve (self->frontend): NULL;
    self->back = self->backend? zsock_resolve (self->backend): NULL;
    self->services = zhashx_new ();
    zhashx_set_destructor (self->services, s_service_free);
    self->workers = zhashx_new ();
    zhashx_set_destructor (self->workers, s_worker_free);
    //  Requests are keyed by their own ticket: no copy of the key.
    self->requests = zhashx_new ();
    zhashx_set_key_duplicator (self->requests, NULL);
    zhashx_set_key_destructor (self->requests, NULL);
    self->answered = zhashx_new ();
    self->clocks = zhashx_new ();
    zhashx_set_destructor (self->clocks, s_clock_free);
    self->started = zclock_mono ();
    self->heartbeat_at = self->started + self->heartbeat;
    return self;
}

static void
s_broker_destroy (broker_t **self_p)
{
    broker_t *self = *self_p;
    if (!self)
        return;
    //  The journal's work first: what it has is answered and fanned out,
    //  and the publishes still waiting are committed and answered too.
    for (int round = 0; self->journal && round < 2; round++) {
        while (self->jobs) {
            size_t jobs = self->jobs;
            s_journal_done (self, 5000);
            if (self->jobs == jobs) {
                zsys_error ("broker: the journal's thread did not answer");
                break;
            }
        }
        s_events_commit (self);
    }
    //  Requests first: destroying one updates its service and worker.
    while (self->heap_size) {
        request_t *request = self->heap [0];
        s_request_destroy (self, &request);
    }
    zhashx_destroy (&self->requests);
    zhashx_destroy (&self->answered);
    zhashx_destroy (&self->clocks);
    zhashx_destroy (&self->workers);
    zhashx_destroy (&self->services);
    //  Its monitors stop before their sockets close (accept_log.h).
    accept_log_destroy (&self->accepts);
    zsock_destroy (&self->frontend);
    zsock_destroy (&self->backend);
    zsock_destroy (&self->events);
    for (size_t index = 0; index < self->npublishes; index++) {
        s_publish_free (&self->publishes [index]);
    }
    free (self->publishes);
    checkpoint_destroy (&self->checkpoint);
    zactor_destroy (&self->journal);
    free (self->heap);
    free (self);
    *self_p = NULL;
}

//  The actor thread. The sockets were made and bound by broker_new in the
//  caller's thread; starting a thread is a full memory barrier, so handing
//  them over is safe, and from here on only this thread touches them.
static void
s_broker_actor (zsock_t *pipe, void *args)
{
    broker_t *self = (broker_t *) args;
    self->pipe = pipe;
    zsys_info ("broker: frontend %s, backend %s, events %s, journal at %"
               PRId64, zsock_endpoint (self->frontend),
               zsock_endpoint (self->backend), zsock_endpoint (self->events),
               self->last);
    if (!self->internal_key)
        zsys_warning ("broker: no broker/internal_key: every client may call "
                      "the internal methods (resvd sets one for what it runs)");
    zsock_signal (pipe, 0);

    zmq_pollitem_t items [] = {
        { zsock_resolve (self->pipe), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->backend), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->frontend), 0, ZMQ_POLLIN, 0 },
        { zsock_resolve (self->journal), 0, ZMQ_POLLIN, 0 },
    };
    while (!self->terminated) {
        int rc = resv_poll (items, 4, s_next_timeout (self));
        if (rc == -1 && errno != EINTR) {
            zsys_error ("broker: poll: %s", zmq_strerror (errno));
            break;
        }
        if (items [0].revents & ZMQ_POLLIN)
            s_pipe_command (self);
        //  Replies first: each frees credit for the requests behind it.
        //  A socket that had nothing is not asked again here (a receive
        //  that finds nothing costs two system calls): what came since
        //  shows at the next wait, which asks every socket.
        if (items [1].revents & ZMQ_POLLIN)
            s_drain (self, self->back, s_backend_message);
        if (items [2].revents & ZMQ_POLLIN)
            s_drain (self, self->front, s_frontend_message);
        //  A commit done lets the publishes that waited for it go next.
        if (items [3].revents & ZMQ_POLLIN)
            s_journal_done (self, 0);
        s_events_commit (self);
        s_timers (self);
        s_gone_remove (self);
        if (self->stopping && !self->stopped && zhashx_size (self->requests) == 0) {
            zsys_info ("broker: every request answered; stopped");
            self->stopped = true;
            zsock_signal (pipe, 0);
        }
    }
    s_broker_destroy (&self);
}

zactor_t *
broker_new (resv_cfg_t *cfg)
{
    broker_t *self = s_broker_new (cfg);
    if (!self->frontend || !self->backend || !self->events || !self->journal) {
        s_broker_destroy (&self);
        return NULL;
    }
    zactor_t *actor = zactor_new (s_broker_actor, self);
    if (!actor)
        s_broker_destroy (&self);
    return actor;
}
