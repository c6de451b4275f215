/*  resv.c: libresv, the C client of resv (API and contract in resv.h).

    One DEALER socket talks RESVC1 (doc/protocol.md) to the broker frontend.
    Every request lives in three places while it is in flight:
    -   a hash table keyed by its handle, which is also the counter part of
        its request id, so that a reply finds its request in O(1);
    -   a binary min-heap ordered by its next timer (a resend or its local
        expiry), so that timers cost O(log n) and no pass scans them all;
    -   nowhere else: the request carries its own copy of the service,
        method and body, from which a resend rebuilds the message.
    A completed request moves to a FIFO that resv_recv() drains, or, for a
    synchronous call, to the one slot that call waits on. The hot path
    (resv_send, resv_recv) does no JSON work and sends and receives frames
    straight through libzmq, without zmsg/zframe allocations.
*/

#include "resv.h"
#include "resv_poll.h"
#include "resv_util.h"
#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <unistd.h>

//  How long after its deadline a request is given up locally. The broker
//  answers 504 itself at the deadline; this head start lets that reply,
//  which says more than silence does, arrive first.
#define S_EXPIRE_GRACE      250
//  Send and receive high-water marks, in messages: room for the async form
//  to keep a benchmark's worth of requests in flight.
#define S_HWM               100000
//  Messages read in one pass before the timers are looked at again, beyond
//  one for each request in flight: a pass reads every reply that waits
//  for a request before it resends or expires that request, and a stream
//  of messages for none (late, duplicate, foreign) still cannot keep the
//  timers from running.
#define S_DRAIN_BATCH       256
//  A pass goes on reading, batch after batch, for at most this long (ms)
//  while batches come full: a reply behind more late ones than a batch
//  holds (a broker that answered 504 for everything it held through a
//  stall, say) is still read before its request's timers run.
#define S_DRAIN_TIME        50
//  When a request cannot even be queued (the send high-water mark is
//  reached: the broker is down or far behind), it is tried again this soon,
//  whatever the retry setting, since it has not been sent at all yet.
#define S_BLOCKED_RETRY     10
//  Request id: 8 hex digits of random prefix, '-', up to 16 hex digits of
//  counter; well under RESV_ID_MAX.
#define S_PREFIX_LEN        9
#define S_ID_SIZE           (S_PREFIX_LEN + 16 + 1)
//  First size of the hash table (a power of two) and of the heap.
#define S_TABLE_BITS        6
#define S_TABLE_MIN         (1 << S_TABLE_BITS)
//  An error message quotes at most this much of a bad reply body, and of
//  a bad name, in bytes.
#define S_QUOTE_MAX         200
#define S_NAME_QUOTE_MAX    40
//  A broker that sends malformed replies is logged once in this long (ms).
#define S_LOG_INTERVAL      10000

typedef struct _s_request_t s_request_t;

//  One request, from resv_send() until resv_recv() returns it.
struct _s_request_t {
    int64_t handle;             //  > 0; the counter part of the request id
    int64_t deadline;           //  Absolute deadline, zclock_mono() ms
    int64_t expire_at;          //  Given up locally at this time
    int64_t retry_at;           //  Next (re)send; INT64_MAX for none
    int timeout;                //  Deadline as asked, ms, for messages
    int retry;                  //  Retry interval when it was sent, ms
    bool sent;                  //  Queued on the socket at least once
    bool blocked;               //  Its last send was refused
    uint64_t rx_mark;           //  rx_count when it was created
    uint64_t bad_mark;          //  bad_count when it was created
    size_t heap_pos;            //  Index in the timer heap while pending
    int status;                 //  Completion: the status code
    char *reply;                //  Completion: body, malloc'd, NUL-ended
    size_t reply_size;          //  Completion: length of reply
    s_request_t *next;          //  Next in the completed FIFO
    size_t service_len;         //  Length of the service name in data
    size_t method_len;          //  Length of the method name in data
    size_t body_size;           //  Length of the body in data
    char data [];               //  Service, method and body, back to back
};

struct _resv_t {
    zsock_t *sock;              //  DEALER connected to the frontend
    void *zsock;                //  Its libzmq handle, for zmq_send and resv_poll
    char *endpoint;             //  Frontend endpoint, for error messages
    int timeout;                //  Default deadline, ms
    int retry;                  //  Retry interval, ms; 0: never resend
    char *key;                  //  Internal key sent with each request
    uint64_t rng;               //  splitmix64 state: ids, request keys
    char prefix [S_PREFIX_LEN + 1];  //  Request id prefix, "xxxxxxxx-"
    int64_t last_handle;        //  Handle of the newest request
    uint64_t rx_count;          //  RESVC1 replies received, any id
    uint64_t bad_count;         //  Malformed ones that named no request
    resv_log_limit_t bad_log;   //  Paces the log lines about those
    s_request_t **table;        //  Pending requests by handle (open hash)
    size_t table_bits;          //  log2 of the table's size
    size_t pending;             //  Requests in the table (and in the heap)
    s_request_t **heap;         //  Pending requests, earliest timer first
    size_t heap_max;            //  Allocated slots in heap
    s_request_t *done_head;     //  Completed, not yet returned: oldest
    s_request_t *done_tail;     //  ... and newest
    size_t done_count;          //  Length of that FIFO
    int64_t awaiting;           //  Handle a synchronous call waits for
    s_request_t *awaited;       //  Its completion, once it came
    bool blocked;               //  The socket refused a send: wait for it
                                //  to take one (ZMQ_POLLOUT) as well
    size_t nblocked;            //  Pending requests whose last send it
                                //  refused (s_schedule); none: not blocked
};


//  --------------------------------------------------------------------------
//  Small helpers

//  splitmix64: a fast, well-mixed generator; seeded per client.
static uint64_t
s_random (uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

//  A seed from /dev/urandom, mixed with the time and pid so that it still
//  differs between clients if the device cannot be read.
static uint64_t
s_seed (void)
{
    uint64_t seed = 0;
    int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read (fd, &seed, sizeof seed) != (ssize_t) sizeof seed)
            seed = 0;
        close (fd);
    }
    uint64_t mix = (uint64_t) zclock_usecs () ^ ((uint64_t) getpid () << 40);
    return seed ^ s_random (&mix);
}

//  Writes value as exactly digits lowercase hex digits.
static void
s_hex (char *dest, uint64_t value, int digits)
{
    static const char hex [] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) {
        dest [i] = hex [value & 15];
        value >>= 4;
    }
}

//  Writes the request id of handle into id; returns its length.
static size_t
s_format_id (resv_t *self, int64_t handle, char *id)
{
    memcpy (id, self->prefix, S_PREFIX_LEN);
    int digits = 1;
    while (digits < 16 && ((uint64_t) handle >> (4 * digits)) != 0)
        digits++;
    s_hex (id + S_PREFIX_LEN, (uint64_t) handle, digits);
    return S_PREFIX_LEN + (size_t) digits;
}

//  Returns the handle a request id names, or 0 if it is not one of ours.
static int64_t
s_parse_id (resv_t *self, const char *id, size_t size)
{
    if (size <= S_PREFIX_LEN || size > S_PREFIX_LEN + 16
    ||  memcmp (id, self->prefix, S_PREFIX_LEN) != 0)
        return 0;
    uint64_t value = 0;
    for (size_t i = S_PREFIX_LEN; i < size; i++) {
        char c = id [i];
        int digit = c >= '0' && c <= '9'? c - '0':
                    c >= 'a' && c <= 'f'? c - 'a' + 10: -1;
        if (digit < 0)
            return 0;
        value = (value << 4) | (uint64_t) digit;
    }
    return value > INT64_MAX? 0: (int64_t) value;
}

//  How many of the size bytes at text an error message quotes: at most
//  max, cut before a UTF-8 character that does not fit whole, so that the
//  message stays valid UTF-8 when text is. (jansson refuses a message that
//  is not, and s_safe_string then makes every character not ASCII a '?'.)
static int
s_quote_len (const char *text, size_t size, size_t max)
{
    if (size <= max)
        return (int) size;
    //  Back over the continuation bytes (10xxxxxx) of the character cut,
    //  three at most: text that is not UTF-8 is cut anywhere.
    size_t len = max;
    while (len > 0 && len + 3 > max
       &&  ((unsigned char) text [len] & 0xC0) == 0x80)
        len--;
    return (int) len;
}

//  The same for a NUL-ended name.
static int
s_name_quote_len (const char *name)
{
    return s_quote_len (name, strnlen (name, S_NAME_QUOTE_MAX + 1),
                        S_NAME_QUOTE_MAX);
}

//  True if name is min_len to RESV_NAME_MAX characters of [a-z0-9_.-].
static bool
s_name_ok (const char *name, size_t min_len)
{
    size_t len = 0;
    for (; name [len]; len++) {
        char c = name [len];
        if (len >= RESV_NAME_MAX
        ||  !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
              || c == '_' || c == '.' || c == '-'))
            return false;
    }
    return len >= min_len;
}

//  Checks the arguments of a request. Returns NULL if they are valid, else
//  a new error object saying what is wrong.
static json_t *
s_check_request (resv_t *self, const char *service, const char *method,
                 const void *data, size_t size)
{
    if (!self)
        return resv_error_new (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                               "no client");
    if (!service)
        return resv_error_new (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                               "no service named");
    if (!s_name_ok (service, 1))
        return resv_error_new (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                               "service '%.*s' is not 1 to %d characters"
                               " of [a-z0-9_.-]", s_name_quote_len (service),
                               service, RESV_NAME_MAX);
    if (method && !s_name_ok (method, 0))
        return resv_error_new (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                               "method '%.*s' is not 0 to %d characters"
                               " of [a-z0-9_.-]", s_name_quote_len (method),
                               method, RESV_NAME_MAX);
    if (!data && size > 0)
        return resv_error_new (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                               "no body data for a body of %zu bytes", size);
    if (size > RESV_FRAME_MAX)
        return resv_error_new (RESV_BAD_REQUEST, RESV_REASON_TOO_LARGE,
                               "a request body of %zu bytes is over "
                               "libresv's limit of %d", size, RESV_FRAME_MAX);
    return NULL;
}

//  The reason word a status code stands for when its reply does not say.
static const char *
s_default_reason (int status)
{
    switch (status) {
        case RESV_BAD_REQUEST:      return RESV_REASON_BAD_REQUEST;
        case RESV_PAYMENT_DECLINED: return RESV_REASON_PAYMENT_DECLINED;
        case RESV_FORBIDDEN:        return RESV_REASON_FORBIDDEN;
        case RESV_NOT_FOUND:        return RESV_REASON_NOT_FOUND;
        case RESV_CONFLICT:         return RESV_REASON_CONFLICT;
        case RESV_TOO_MANY:         return RESV_REASON_QUEUE_FULL;
        case RESV_NOT_IMPLEMENTED:  return RESV_REASON_NOT_IMPLEMENTED;
        case RESV_UNAVAILABLE:      return RESV_REASON_NO_WORKER;
        case RESV_TIMEOUT:          return RESV_REASON_DEADLINE;
        default:                    return RESV_REASON_INTERNAL;
    }
}


//  --------------------------------------------------------------------------
//  Pending requests by handle: open addressing with linear probing and
//  backward-shift deletion, so there are no tombstones to clean up.

static size_t
s_home (resv_t *self, int64_t handle)
{
    //  Fibonacci hashing spreads consecutive handles over the table.
    return (size_t) (((uint64_t) handle * 0x9E3779B97F4A7C15ULL)
                     >> (64 - self->table_bits));
}

static size_t
s_table_mask (resv_t *self)
{
    return ((size_t) 1 << self->table_bits) - 1;
}

//  Returns the slot holding handle, or -1.
static ssize_t
s_table_find (resv_t *self, int64_t handle)
{
    size_t mask = s_table_mask (self);
    for (size_t i = s_home (self, handle);; i = (i + 1) & mask) {
        if (!self->table [i])
            return -1;
        if (self->table [i]->handle == handle)
            return (ssize_t) i;
    }
}

static void
s_table_place (resv_t *self, s_request_t *request)
{
    size_t mask = s_table_mask (self);
    size_t i = s_home (self, request->handle);
    while (self->table [i])
        i = (i + 1) & mask;
    self->table [i] = request;
}

//  Adds request, growing the table to keep it at most half full. Returns
//  0, or -1 when out of memory (the table is then unchanged).
static int
s_table_insert (resv_t *self, s_request_t *request)
{
    if ((self->pending + 1) * 2 > ((size_t) 1 << self->table_bits)) {
        size_t old_size = (size_t) 1 << self->table_bits;
        s_request_t **old = self->table;
        s_request_t **grown = (s_request_t **) calloc (old_size * 2,
                                                        sizeof *grown);
        if (!grown)
            return -1;
        self->table = grown;
        self->table_bits++;
        for (size_t i = 0; i < old_size; i++)
            if (old [i])
                s_table_place (self, old [i]);
        free (old);
    }
    s_table_place (self, request);
    self->pending++;
    return 0;
}

static void
s_table_remove (resv_t *self, size_t slot)
{
    size_t mask = s_table_mask (self);
    size_t hole = slot;
    self->table [hole] = NULL;
    for (size_t i = (hole + 1) & mask; self->table [i]; i = (i + 1) & mask) {
        size_t home = s_home (self, self->table [i]->handle);
        //  An entry may fill the hole unless its home lies cyclically in
        //  (hole, i]: then it would become unreachable from its home.
        bool stays = hole <= i? (home > hole && home <= i)
                              : (home > hole || home <= i);
        if (!stays) {
            self->table [hole] = self->table [i];
            self->table [i] = NULL;
            hole = i;
        }
    }
    self->pending--;
}


//  --------------------------------------------------------------------------
//  Timer heap: pending requests ordered by their next timer.

//  When a request is given up locally: S_EXPIRE_GRACE after its deadline
//  once it went out, for the broker's 504 to come first; at the deadline
//  when the socket never took it, since then no broker has it to answer.
static int64_t
s_expiry (s_request_t *request)
{
    return request->sent? request->expire_at: request->deadline;
}

static int64_t
s_wake (s_request_t *request)
{
    int64_t expiry = s_expiry (request);
    return request->retry_at < expiry? request->retry_at: expiry;
}

static void
s_heap_set (resv_t *self, size_t pos, s_request_t *request)
{
    self->heap [pos] = request;
    request->heap_pos = pos;
}

static void
s_heap_up (resv_t *self, size_t pos)
{
    s_request_t *request = self->heap [pos];
    int64_t wake = s_wake (request);
    while (pos > 0) {
        size_t parent = (pos - 1) / 2;
        if (s_wake (self->heap [parent]) <= wake)
            break;
        s_heap_set (self, pos, self->heap [parent]);
        pos = parent;
    }
    s_heap_set (self, pos, request);
}

static void
s_heap_down (resv_t *self, size_t pos)
{
    size_t size = self->pending;
    s_request_t *request = self->heap [pos];
    int64_t wake = s_wake (request);
    while (true) {
        size_t child = 2 * pos + 1;
        if (child >= size)
            break;
        if (child + 1 < size
        &&  s_wake (self->heap [child + 1]) < s_wake (self->heap [child]))
            child++;
        if (s_wake (self->heap [child]) >= wake)
            break;
        s_heap_set (self, pos, self->heap [child]);
        pos = child;
    }
    s_heap_set (self, pos, request);
}

//  The heap holds exactly the requests in the table, so its size is
//  self->pending; s_pending_add grows it before the table counts the new
//  request.
static void
s_heap_remove (resv_t *self, s_request_t *request)
{
    //  Called after the table dropped request: the heap's last used slot
    //  is at self->pending.
    size_t pos = request->heap_pos;
    size_t last = self->pending;
    if (pos != last) {
        s_heap_set (self, pos, self->heap [last]);
        if (pos > 0 && s_wake (self->heap [pos])
                       < s_wake (self->heap [(pos - 1) / 2]))
            s_heap_up (self, pos);
        else
            s_heap_down (self, pos);
    }
    self->heap [last] = NULL;
}


//  --------------------------------------------------------------------------
//  Request life cycle

//  Registers a new request in the table and the heap. Returns 0, or -1
//  when out of memory (nothing is registered then).
static int
s_pending_add (resv_t *self, s_request_t *request)
{
    if (self->pending + 1 > self->heap_max) {
        size_t max = self->heap_max * 2;
        s_request_t **heap = (s_request_t **) realloc (self->heap,
                                                        max * sizeof *heap);
        if (!heap)
            return -1;
        self->heap = heap;
        self->heap_max = max;
    }
    if (s_table_insert (self, request))
        return -1;
    //  The table counted it: its heap slot is the last one.
    s_heap_set (self, self->pending - 1, request);
    s_heap_up (self, self->pending - 1);
    return 0;
}

//  Takes request out of the table and the heap. Once no request waits for
//  the socket any more, nothing does: resv_send_waits says 0 again, and a
//  loop of its own stops waiting for ZMQ_POLLOUT (it kept saying 1 for a
//  request that had ended, and a loop that waited for a writable socket
//  then woke at once, for ever).
static void
s_pending_remove (resv_t *self, s_request_t *request)
{
    ssize_t slot = s_table_find (self, request->handle);
    if (slot >= 0) {
        s_table_remove (self, (size_t) slot);
        s_heap_remove (self, request);
        if (request->blocked) {
            request->blocked = false;
            if (--self->nblocked == 0)
                self->blocked = false;
        }
    }
}

//  Queues request's message on the socket without blocking. Returns 0, or
//  -1 when the socket cannot take it now (send high-water mark reached).
static int
s_transmit (resv_t *self, s_request_t *request, int64_t now)
{
    char id [S_ID_SIZE];
    size_t id_len = s_format_id (self, request->handle, id);
    //  TIMEOUT@SENT: what is left of the deadline, and our clock, by which
    //  the broker counts it from this send, not from when it reads the
    //  request (it may have been stopped meanwhile: protocol section 2).
    char timeout [2 * RESV_DECIMAL_SIZE];
    int64_t left = request->deadline - now;
    size_t timeout_len = resv_decimal (left > 0? left: 1, timeout);
    timeout [timeout_len++] = '@';
    timeout_len += resv_decimal (now, timeout + timeout_len);
    const char *service = request->data;
    const char *method = service + request->service_len;
    const char *body = method + request->method_len;
    void *sock = self->zsock;
    int flags = ZMQ_SNDMORE | ZMQ_DONTWAIT;
    //  Only the first frame can be refused for a full pipe: libzmq takes
    //  the rest of a message once it took its first frame.
    if (zmq_send (sock, RESV_PROTO_CLIENT, strlen (RESV_PROTO_CLIENT),
                  flags) == -1)
        return -1;
    //  A send after one that left is a retry: a broker that does not know
    //  it (restarted since, or its reply lost with our connection) must
    //  not say of it that nothing was begun (protocol section 2).
    const char *command = request->sent? RESV_CMD_RETRY: RESV_CMD_REQUEST;
    if (zmq_send (sock, command, strlen (command), flags) == -1
    ||  zmq_send (sock, id, id_len, flags) == -1
    ||  zmq_send (sock, service, request->service_len, flags) == -1
    ||  zmq_send (sock, method, request->method_len, flags) == -1
    ||  zmq_send (sock, timeout, timeout_len, flags) == -1
    ||  zmq_send (sock, body, request->body_size,
                  self->key? flags: ZMQ_DONTWAIT) == -1
    ||  (self->key && zmq_send (sock, self->key, strlen (self->key),
                                ZMQ_DONTWAIT) == -1))
        return -1;
    return 0;
}

//  Sets when request, pending, is next sent, after a send attempt at now
//  (queued: the socket took it; else it waits for the socket).
static void
s_schedule (resv_t *self, s_request_t *request, int64_t now, bool queued)
{
    self->nblocked += (size_t) !queued - (size_t) request->blocked;
    request->blocked = !queued;
    if (!queued)
        self->blocked = true;
    if (queued) {
        request->sent = true;
        request->retry_at = request->retry > 0? now + request->retry
                                              : INT64_MAX;
    }
    else
        request->retry_at = now + S_BLOCKED_RETRY;
    //  Resending at or after the deadline is pointless: the broker would
    //  answer 504 at once, and the local expiry follows anyway.
    if (request->retry_at >= request->deadline && request->sent)
        request->retry_at = INT64_MAX;
}

//  Hands a finished request to whoever waits for it: the synchronous call
//  that sent it, else the FIFO resv_recv() drains. Takes body (malloc'd).
static void
s_complete (resv_t *self, s_request_t *request, int status, char *body,
            size_t size)
{
    s_pending_remove (self, request);
    request->status = status;
    request->reply = body;
    request->reply_size = size;
    request->next = NULL;
    if (request->handle == self->awaiting)
        self->awaited = request;
    else {
        if (self->done_tail)
            self->done_tail->next = request;
        else
            self->done_head = request;
        self->done_tail = request;
        self->done_count++;
    }
}

//  Serialises error (taken), whose code is status, into a malloc'd,
//  NUL-ended body; when memory is short, into a shorter text that keeps
//  the status. NULL (size 0) only when even that fails.
static char *
s_error_text (json_t *error, int status, size_t *size)
{
    char *text = error? json_dumps (error, JSON_COMPACT): NULL;
    json_decref (error);
    if (!text)
        text = zsys_sprintf ("{\"error\":{\"code\":%d,\"reason\":\"%s\","
                             "\"message\":\"libresv: out of memory\"}}",
                             status, s_default_reason (status));
    *size = text? strlen (text): 0;
    return text;
}

//  Gives up on a request whose deadline (and grace) passed unanswered.
static void
s_expire (resv_t *self, s_request_t *request)
{
    json_t *error;
    if (self->rx_count == request->rx_mark)
        error = resv_error_new (RESV_TIMEOUT, RESV_REASON_UNREACHABLE,
                                "no reply within %d ms and nothing heard"
                                " from the broker at %s%s", request->timeout,
                                self->endpoint, request->sent? ""
                                : " (the request could not even be queued)");
    else
        error = resv_error_new (RESV_TIMEOUT, RESV_REASON_DEADLINE,
                                "no reply within %d ms from the broker at %s%s",
                                request->timeout, self->endpoint,
                                self->bad_count == request->bad_mark? ""
                                : " (it sent a malformed reply meanwhile,"
                                  " which named no request in flight)");
    size_t size;
    char *body = s_error_text (error, RESV_TIMEOUT, &size);
    s_complete (self, request, RESV_TIMEOUT, body, size);
}

//  Runs every timer that is due: resends and local expiries.
static void
s_timers (resv_t *self, int64_t now)
{
    bool blocked = false;       //  The socket refused a send in this pass
    while (self->pending > 0 && s_wake (self->heap [0]) <= now) {
        s_request_t *request = self->heap [0];
        if (now >= s_expiry (request))
            s_expire (self, request);
        else {
            bool queued = !blocked && s_transmit (self, request, now) == 0;
            blocked = !queued;
            s_schedule (self, request, now, queued);
            s_heap_down (self, 0);
        }
    }
}

//  The socket takes messages again (connected, or room in its pipe): every
//  request whose send it refused is due now, not S_BLOCKED_RETRY after.
static void
s_unblock (resv_t *self, int64_t now)
{
    self->blocked = false;
    for (size_t pos = 0; pos < self->pending; pos++) {
        s_request_t *request = self->heap [pos];
        //  Not one whose deadline passed, nor a resend given up at it.
        if (request->blocked && request->retry_at > now
        &&  request->retry_at != INT64_MAX && now < request->deadline)
            request->retry_at = now;
        //  Keys only went down: sifting each up in order keeps a heap.
        s_heap_up (self, pos);
    }
}

//  True if frame holds exactly the text string.
static bool
s_frame_is (zmq_msg_t *frame, const char *string)
{
    size_t len = strlen (string);
    return zmq_msg_size (frame) == len
        && memcmp (zmq_msg_data (frame), string, len) == 0;
}

//  The status of a reply: its 3 digits as a number (which may be of a
//  class resv never answers with: RESV_STATUS_VALID), or -1 when frame
//  is not 3 digits.
static int
s_status (zmq_msg_t *frame)
{
    if (zmq_msg_size (frame) != 3)
        return -1;
    const char *digits = (const char *) zmq_msg_data (frame);
    int status = 0;
    for (int i = 0; i < 3; i++) {
        if (digits [i] < '0' || digits [i] > '9')
            return -1;
        status = status * 10 + digits [i] - '0';
    }
    return status;
}

//  A RESVC1 reply this client cannot read, why saying what is wrong with
//  it. As the broker answers a malformed request 400, the request it names
//  fails at once, 500 "malformed", rather than wait for its deadline and
//  say that nothing came; one that names no request in flight is counted,
//  so that a request that times out says one came. Either way, a line is
//  logged (one in S_LOG_INTERVAL while they go on).
static void
s_malformed (resv_t *self, ssize_t slot, const char *why)
{
    unsigned skipped;
    if (resv_log_due (&self->bad_log, S_LOG_INTERVAL, &skipped))
        zsys_warning ("libresv: malformed reply from the broker at %s: %s%s"
                      " (%u more since the last line)", self->endpoint, why,
                      slot < 0? "; it names no request in flight": "",
                      skipped);
    if (slot < 0) {
        self->bad_count++;
        return;
    }
    json_t *error = resv_error_new (RESV_INTERNAL, RESV_REASON_MALFORMED,
                                    "malformed reply from the broker at %s:"
                                    " %s", self->endpoint, why);
    size_t size;
    char *body = s_error_text (error, RESV_INTERNAL, &size);
    s_complete (self, self->table [slot], RESV_INTERNAL, body, size);
}

//  Handles one message of parts frames (frames holds the first
//  RESV_CLIENT_REP_FRAMES of them). What is not a RESVC1 reply, or is a
//  well-formed one to a request id we do not know (late, duplicate), is
//  dropped silently; see s_malformed for the rest.
static void
s_handle_reply (resv_t *self, zmq_msg_t *frames, int parts)
{
    if (parts < 2
    ||  !s_frame_is (&frames [0], RESV_PROTO_CLIENT)
    ||  !s_frame_is (&frames [1], RESV_CMD_REPLY))
        return;
    //  Only a RESVC1 reply proves a broker frontend is there: whatever
    //  else might reach this socket (a worker backend's BYE, our own
    //  request on a TCP self-connection) does not.
    self->rx_count++;
    int64_t handle = parts < 3? 0: s_parse_id (
        self, (const char *) zmq_msg_data (&frames [2]),
        zmq_msg_size (&frames [2]));
    ssize_t slot = handle > 0? s_table_find (self, handle): -1;
    if (parts != RESV_CLIENT_REP_FRAMES) {
        char why [64];
        snprintf (why, sizeof why, "%d frames where a reply has %d",
                  parts, RESV_CLIENT_REP_FRAMES);
        s_malformed (self, slot, why);
        return;
    }
    int status = s_status (&frames [3]);
    if (status == -1) {
        s_malformed (self, slot, "its status is not 3 digits");
        return;
    }
    if (!RESV_STATUS_VALID (status)) {
        char why [64];
        snprintf (why, sizeof why, "its status, %03d, is not 2xx, 4xx or 5xx",
                  status);
        s_malformed (self, slot, why);
        return;
    }
    if (slot < 0)
        return;
    size_t size = zmq_msg_size (&frames [4]);
    char *body = (char *) malloc (size + 1);
    if (!body)
        return;                 //  The request times out rather than lies
    memcpy (body, zmq_msg_data (&frames [4]), size);
    body [size] = 0;
    s_complete (self, self->table [slot], status, body, size);
}

//  Reads and handles what has arrived, without waiting, at most max
//  messages. Returns how many were read.
static size_t
s_drain (resv_t *self, size_t max)
{
    size_t count = 0;
    while (count < max) {
        zmq_msg_t frames [RESV_CLIENT_REP_FRAMES];
        zmq_msg_init (&frames [0]);
        if (zmq_msg_recv (&frames [0], self->zsock, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&frames [0]);
            break;
        }
        //  The rest of a multipart message is already here: libzmq
        //  delivers messages whole.
        int parts = 1;
        bool more = zmq_msg_more (&frames [0]);
        while (more) {
            zmq_msg_t extra;
            zmq_msg_t *frame = parts < RESV_CLIENT_REP_FRAMES?
                               &frames [parts]: &extra;
            zmq_msg_init (frame);
            if (zmq_msg_recv (frame, self->zsock, 0) == -1) {
                zmq_msg_close (frame);
                break;
            }
            more = zmq_msg_more (frame);
            if (frame == &extra)
                zmq_msg_close (frame);
            parts++;
        }
        count++;
        s_handle_reply (self, frames, parts);
        for (int i = 0; i < parts && i < RESV_CLIENT_REP_FRAMES; i++)
            zmq_msg_close (&frames [i]);
    }
    return count;
}

//  Does one round of work: reads what has arrived (every reply that waits
//  for a request in flight, before that request's timers), resends and
//  expires what is due, and when there was nothing to do, waits for input
//  until the next timer or until (absolute, zclock_mono), whichever is
//  first.
//  Returns -1 once until has passed (the work of this round is done even
//  so: the caller looks at what completed), else 0.
static int
s_pump (resv_t *self, int64_t until)
{
    size_t pending = self->pending;
    //  Every reply already here is read before any timer runs: a caller
    //  that comes back late (busy elsewhere past the retry interval or a
    //  deadline) must not resend a request whose reply waits unread, nor
    //  expire it as unanswered.
    size_t read = 0, batch = pending + S_DRAIN_BATCH, got;
    int64_t drain_until = zclock_mono () + S_DRAIN_TIME;
    do {
        got = s_drain (self, batch);
        read += got;
    } while (got == batch && zclock_mono () < drain_until);
    int64_t now = zclock_mono ();
    //  The socket may take what it refused (a caller's own loop saw
    //  ZMQ_POLLOUT: resv_send_waits): sent now, not S_BLOCKED_RETRY after.
    if (self->blocked) {
        int events = 0;
        size_t size = sizeof events;
        if (zmq_getsockopt (self->zsock, ZMQ_EVENTS, &events, &size) == 0
        &&  (events & ZMQ_POLLOUT))
            s_unblock (self, now);
    }
    s_timers (self, now);
    //  Checked first so that a stream of replies nobody waits for (late,
    //  duplicate, foreign) cannot hold a caller past its wait.
    if (now >= until)
        return -1;
    if (read > 0 || self->pending != pending)
        return 0;
    int64_t next = until;
    if (self->pending > 0 && s_wake (self->heap [0]) < next)
        next = s_wake (self->heap [0]);
    long wait = next == INT64_MAX? -1: (long) (next - now);
    zmq_pollitem_t item = { self->zsock, 0, ZMQ_POLLIN, 0 };
    if (self->blocked)
        item.events |= ZMQ_POLLOUT;
    //  An interrupted poll (EINTR) is simply one round with nothing read:
    //  the deadlines still bound every call.
    if (resv_poll (&item, 1, wait) > 0 && (item.revents & ZMQ_POLLOUT))
        s_unblock (self, zclock_mono ());
    return 0;
}


//  --------------------------------------------------------------------------
//  Public API

//  CZMQ's set-up for the process, done once whatever the threads: CZMQ's
//  own first set-up (zsys_init, which the first socket runs) is not safe
//  to run from two threads at once, and one thread could abort the process
//  while another made its own first client.
static pthread_once_t s_czmq_once = PTHREAD_ONCE_INIT;

//  zsys_init also catches SIGINT and SIGTERM, in place of whatever the
//  program had, only to set zsys_interrupted, which libresv never reads:
//  the program would no longer stop on Ctrl-C or kill, and its own
//  handlers would never run. The program's handling is put back. One that
//  wants CZMQ's sets CZMQ up itself first (resv.h): this then changes
//  nothing.
static void
s_czmq_setup (void)
{
    struct sigaction sigint, sigterm;
    sigaction (SIGINT, NULL, &sigint);
    sigaction (SIGTERM, NULL, &sigterm);
    zsys_init ();
    sigaction (SIGINT, &sigint, NULL);
    sigaction (SIGTERM, &sigterm, NULL);
}

resv_t *
resv_new (const char *endpoint)
{
    if (!endpoint) {
        endpoint = getenv ("RESV_BROKER_FRONTEND");
        if (!endpoint || !*endpoint)
            endpoint = RESV_DEFAULT_ENDPOINT;
    }
    resv_t *self = (resv_t *) zmalloc (sizeof (resv_t));
    if (!self)
        return NULL;
    self->timeout = RESV_DEFAULT_TIMEOUT;
    self->retry = RESV_DEFAULT_RETRY;
    self->rng = s_seed ();
    self->table_bits = S_TABLE_BITS;
    self->table = (s_request_t **) calloc (S_TABLE_MIN, sizeof *self->table);
    self->heap_max = S_TABLE_MIN;
    self->heap = (s_request_t **) calloc (S_TABLE_MIN, sizeof *self->heap);
    self->endpoint = strdup (endpoint);
    s_hex (self->prefix, s_random (&self->rng), 8);
    self->prefix [8] = '-';
    self->prefix [S_PREFIX_LEN] = 0;
    //  A routing id of our own keeps our identity across reconnects, so
    //  that the broker still knows a retry for what it is.
    char identity [17];
    s_hex (identity, s_random (&self->rng), 16);
    identity [16] = 0;
    pthread_once (&s_czmq_once, s_czmq_setup);
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->table || !self->heap || !self->endpoint || !self->sock) {
        resv_destroy (&self);
        return NULL;
    }
    zsock_set_linger (self->sock, 0);
    //  A send while the broker is not connected is refused, not kept in
    //  the socket: kept, it went out once a broker came, with the time
    //  left and the clock reading of when it was made, and a broker that
    //  had just started (and knew nothing of our clock) counted that time
    //  from when it read it: a deadline later than ours, and work handed
    //  on after we had given up (protocol section 2). Refused, it is sent
    //  again with fresh ones (s_unblock, S_BLOCKED_RETRY); a connection
    //  lost drops what it held, for our retries to resend (with retries
    //  off, those end at their deadlines: resv_set_retry).
    zsock_set_immediate (self->sock, 1);
    zsock_set_sndhwm (self->sock, S_HWM);
    zsock_set_rcvhwm (self->sock, S_HWM);
    zsock_set_identity (self->sock, identity);
    zsock_set_ipv6 (self->sock, resv_endpoint_ipv6 (endpoint));
    if (resv_sock_connect (self->sock, endpoint) == -1) {
        resv_destroy (&self);
        return NULL;
    }
    self->zsock = zsock_resolve (self->sock);
    return self;
}

static void
s_request_free (s_request_t *request)
{
    free (request->reply);
    free (request);
}

void
resv_destroy (resv_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    resv_t *self = *self_p;
    if (self->table) {
        size_t size = (size_t) 1 << self->table_bits;
        for (size_t i = 0; i < size; i++)
            if (self->table [i])
                s_request_free (self->table [i]);
        free (self->table);
    }
    while (self->done_head) {
        s_request_t *next = self->done_head->next;
        s_request_free (self->done_head);
        self->done_head = next;
    }
    if (self->awaited)
        s_request_free (self->awaited);
    free (self->heap);
    free (self->endpoint);
    free (self->key);
    zsock_destroy (&self->sock);
    free (self);
    *self_p = NULL;
}

void
resv_set_timeout (resv_t *self, int timeout_ms)
{
    if (self)
        self->timeout = timeout_ms > 0? timeout_ms: RESV_DEFAULT_TIMEOUT;
}

void
resv_set_key (resv_t *self, const char *key)
{
    if (!self)
        return;
    free (self->key);
    self->key = key && *key? strdup (key): NULL;
}

void
resv_set_retry (resv_t *self, int retry_ms)
{
    if (self)
        self->retry = retry_ms > 0? retry_ms: 0;
}

int64_t
resv_send (resv_t *self, const char *service, const char *method,
           const void *data, size_t size, int timeout_ms)
{
    json_t *error = s_check_request (self, service, method, data, size);
    if (error) {
        json_decref (error);
        return -1;
    }
    if (!method)
        method = "";
    size_t service_len = strlen (service);
    size_t method_len = strlen (method);
    s_request_t *request = (s_request_t *) malloc (sizeof (s_request_t)
                                                   + service_len + method_len
                                                   + size);
    if (!request)
        return -1;
    int64_t now = zclock_mono ();
    int timeout = timeout_ms > 0? timeout_ms: self->timeout;
    //  Handles are never reused, even after a failure below: a message
    //  that went out must not find a later request under its id.
    request->handle = ++self->last_handle;
    request->deadline = now + timeout;
    request->expire_at = request->deadline + S_EXPIRE_GRACE;
    request->timeout = timeout;
    request->retry = self->retry;
    request->sent = false;
    request->rx_mark = self->rx_count;
    request->bad_mark = self->bad_count;
    request->status = 0;
    request->reply = NULL;
    request->reply_size = 0;
    request->next = NULL;
    request->service_len = service_len;
    request->method_len = method_len;
    request->body_size = size;
    memcpy (request->data, service, service_len);
    memcpy (request->data + service_len, method, method_len);
    if (size)
        memcpy (request->data + service_len + method_len, data, size);

    //  Registered before it goes: a request that went out and could not be
    //  registered was said not to have been sent, and was done all the
    //  same (its reply then dropped as a late one).
    request->blocked = false;
    request->retry_at = now;
    if (s_pending_add (self, request)) {
        free (request);         //  Out of memory: nothing was sent
        return -1;
    }
    s_schedule (self, request, now, s_transmit (self, request, now) == 0);
    s_heap_down (self, request->heap_pos);  //  Its wake only went up
    return request->handle;
}

int
resv_recv (resv_t *self, int wait_ms, resv_reply_t *reply)
{
    if (!self || !reply)
        return -1;
    int64_t until = wait_ms < 0? INT64_MAX: zclock_mono () + wait_ms;
    while (!self->done_head) {
        if (self->pending == 0)
            return -1;          //  Nothing in flight
        if (s_pump (self, until) == -1 && !self->done_head)
            return -1;          //  Nothing completed in time
    }
    s_request_t *request = self->done_head;
    self->done_head = request->next;
    if (!self->done_head)
        self->done_tail = NULL;
    self->done_count--;
    reply->handle = request->handle;
    reply->status = request->status;
    reply->body = request->reply;
    reply->size = request->reply_size;
    free (request);
    return 0;
}

size_t
resv_inflight (resv_t *self)
{
    return self? self->pending + self->done_count: 0;
}

int
resv_send_waits (resv_t *self)
{
    return self && self->blocked;
}

void *
resv_socket (resv_t *self)
{
    return self? self->zsock: NULL;
}

int
resv_call_raw (resv_t *self, const char *service, const char *method,
               const void *data, size_t size, int timeout_ms,
               char **reply_p, size_t *reply_size)
{
    if (reply_p)
        *reply_p = NULL;
    if (reply_size)
        *reply_size = 0;
    int status = RESV_BAD_REQUEST;
    char *body;
    size_t body_size;
    json_t *error = s_check_request (self, service, method, data, size);
    int64_t handle = error? -1
                   : resv_send (self, service, method, data, size, timeout_ms);
    if (error || handle < 0) {
        if (!error) {
            status = RESV_INTERNAL;
            error = resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                    "libresv: out of memory");
        }
        body = s_error_text (error, status, &body_size);
    }
    else {
        self->awaiting = handle;
        //  The request's local expiry ends this loop at the latest.
        while (!self->awaited)
            s_pump (self, INT64_MAX);
        s_request_t *request = self->awaited;
        self->awaited = NULL;
        self->awaiting = 0;
        status = request->status;
        body = request->reply;
        body_size = request->reply_size;
        free (request);
    }
    if (reply_p)
        *reply_p = body;
    else
        free (body);
    if (reply_size)
        *reply_size = body_size;
    return status;
}

json_t *
resv_reply_json (int *status, const char *body, size_t size)
{
    if (size == 0)
        return *status < 400? json_object ()
             : resv_error_new (*status, s_default_reason (*status),
                               "%s (the reply had no body)",
                               resv_strstatus (*status));
    json_error_t parse_error;
    //  Any JSON: a string may hold \u0000 (a caller that reads it as a C
    //  string sees it end there).
    json_t *reply = json_loadb (body, size, JSON_DECODE_ANY | JSON_ALLOW_NUL,
                                &parse_error);
    if (!reply) {
        int code = *status < 400? RESV_INTERNAL: *status;
        json_t *error = resv_error_new (
            code, s_default_reason (code),
            "status %d reply is not JSON (%s at byte %d): %.*s%s", *status,
            parse_error.text, parse_error.position,
            s_quote_len (body, size, S_QUOTE_MAX), body,
            size > S_QUOTE_MAX? "...": "");
        *status = code;
        return error;
    }
    if (*status >= 400 && !json_is_object (
            json_object_get (reply, "error"))) {
        //  An error must come as an error object; wrap whatever came.
        char *text = json_dumps (reply, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref (reply);
        size_t length = text? strlen (text): 0;
        reply = resv_error_new (*status, s_default_reason (*status),
                                "%s: %.*s%s", resv_strstatus (*status),
                                s_quote_len (text, length, S_QUOTE_MAX),
                                text? text: "",
                                length > S_QUOTE_MAX? "...": "");
        free (text);
    }
    return reply;
}

int
resv_call (resv_t *self, const char *service, const char *method,
           json_t *request, int timeout_ms, json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    char *text = NULL;
    if (request) {
        text = json_dumps (request, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text) {
            if (reply_p)
                *reply_p = resv_error_new (RESV_BAD_REQUEST,
                                           RESV_REASON_BAD_REQUEST,
                                           "the request cannot be encoded"
                                           " as JSON");
            return RESV_BAD_REQUEST;
        }
    }
    char *body;
    size_t size;
    int status = resv_call_raw (self, service, method, text,
                                text? strlen (text): 0, timeout_ms,
                                &body, &size);
    free (text);
    json_t *reply = resv_reply_json (&status, body, size);
    free (body);
    if (reply_p)
        *reply_p = reply;
    else
        json_decref (reply);
    return status;
}


//  --------------------------------------------------------------------------
//  Per-command helpers

//  Sends body (taken: it is released here) and returns the status.
static int
s_command (resv_t *self, const char *service, const char *method,
           json_t *body, json_t **reply_p)
{
    if (!body) {
        if (reply_p)
            *reply_p = resv_error_new (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                       "libresv: out of memory");
        return RESV_INTERNAL;
    }
    int status = resv_call (self, service, method, body, 0, reply_p);
    json_decref (body);
    return status;
}

//  Refuses a call locally with 400 and a message.
static int
s_refuse (json_t **reply_p, const char *message)
{
    if (reply_p)
        *reply_p = resv_error_new (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                   "%s", message);
    return RESV_BAD_REQUEST;
}

static bool
s_given (const char *string)
{
    return string && *string;
}

//  Sets key to a copy of string in object, unless string is NULL or empty.
static void
s_set_str (json_t *object, const char *key, const char *string)
{
    if (object && s_given (string))
        json_object_set_new (object, key, json_string (string));
}

//  Returns a shallow copy of an object argument, or a new empty object
//  when it is NULL; NULL when it is not an object (or out of memory).
static json_t *
s_object_arg (json_t *arg)
{
    if (!arg)
        return json_object ();
    return json_is_object (arg)? json_copy (arg): NULL;
}

//  A command whose body is a copy of filter (NULL: {}), which must be a
//  JSON object and, when required is not NULL, hold a string of that name
//  that is not empty; what names the command in the refusal.
static int
s_filter_command (resv_t *self, const char *service, const char *method,
                  const char *what, const char *required, json_t *filter,
                  json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (filter && !json_is_object (filter)) {
        if (reply_p)
            *reply_p = resv_error_new (RESV_BAD_REQUEST,
                                       RESV_REASON_BAD_REQUEST,
                                       "%s: the filter must be a JSON object",
                                       what);
        return RESV_BAD_REQUEST;
    }
    if (required
    &&  !s_given (json_string_value (json_object_get (filter, required)))) {
        if (reply_p)
            *reply_p = resv_error_new (RESV_BAD_REQUEST,
                                       RESV_REASON_BAD_REQUEST,
                                       "%s is required", required);
        return RESV_BAD_REQUEST;
    }
    return s_command (self, service, method, s_object_arg (filter), reply_p);
}

//  A command on one id: {"id": id} plus, if given, key2: value2.
static int
s_id_command (resv_t *self, const char *service, const char *method,
              const char *id, const char *key2, const char *value2,
              json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (!s_given (id))
        return s_refuse (reply_p, "an id is required");
    if (key2 && !s_given (value2)) {
        char message [64];
        snprintf (message, sizeof message, "%s is required", key2);
        return s_refuse (reply_p, message);
    }
    json_t *body = json_object ();
    s_set_str (body, "id", id);
    if (key2)
        s_set_str (body, key2, value2);
    return s_command (self, service, method, body, reply_p);
}

int
resv_ping (resv_t *self, json_t **reply_p)
{
    return resv_call (self, RESV_SERVICE_PING, "", NULL, 0, reply_p);
}

int
resv_stats (resv_t *self, json_t **reply_p)
{
    return resv_call (self, RESV_SERVICE_STATS, "", NULL, 0, reply_p);
}

int
resv_scale (resv_t *self, const char *service, int count, json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (!service || !s_name_ok (service, 1))
        return s_refuse (reply_p, "scale: the service must be 1 to 32"
                                  " characters of [a-z0-9_.-]");
    if (count < 0)
        return s_refuse (reply_p, "scale: the count must be 0 or more");
    return s_command (self, RESV_SERVICE_RESVD, RESV_METHOD_SCALE,
                      json_pack ("{s:s, s:i}", "service", service,
                                 "count", count), reply_p);
}

//  A copy of request (a JSON object) with a request_id: the caller's, or
//  a random one of our own, which makes the library's resends, the
//  broker's re-dispatch after a lost worker and the service's dedup safe
//  for a caller who gave none. NULL if memory ran out.
static json_t *
s_with_key (resv_t *self, json_t *request)
{
    json_t *body = json_copy (request);
    json_t *key_given = body? json_object_get (body, "request_id"): NULL;
    if (body && (!key_given || json_is_null (key_given))) {
        char key [33];
        s_hex (key, s_random (&self->rng), 16);
        s_hex (key + 16, s_random (&self->rng), 16);
        key [32] = 0;
        json_object_set_new (body, "request_id", json_string (key));
    }
    return body;
}

int
resv_resource_add (resv_t *self, json_t *resource, json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (!self)
        return s_refuse (reply_p, "no client");
    if (!json_is_object (resource))
        return s_refuse (reply_p, "resource add: the resource must be a"
                                  " JSON object");
    return s_command (self, RESV_SERVICE_AVAILABILITY, RESV_METHOD_RESOURCE_ADD,
                      s_with_key (self, resource), reply_p);
}

int
resv_resource_list (resv_t *self, const char *owner, const char *kind,
                    json_t **reply_p)
{
    json_t *body = json_object ();
    s_set_str (body, "owner", owner);
    s_set_str (body, "kind", kind);
    return s_command (self, RESV_SERVICE_AVAILABILITY,
                      RESV_METHOD_RESOURCE_LIST, body, reply_p);
}

int
resv_resource_query (resv_t *self, json_t *filter, json_t **reply_p)
{
    return s_filter_command (self, RESV_SERVICE_AVAILABILITY,
                             RESV_METHOD_RESOURCE_LIST, "resource list",
                             NULL, filter, reply_p);
}

int
resv_resource_show (resv_t *self, const char *id, json_t **reply_p)
{
    return s_id_command (self, RESV_SERVICE_AVAILABILITY,
                         RESV_METHOD_RESOURCE_SHOW, id, NULL, NULL, reply_p);
}

int
resv_resource_update (resv_t *self, const char *id, const char *owner,
                      json_t *changes, json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (!s_given (id))
        return s_refuse (reply_p, "an id is required");
    if (!s_given (owner))
        return s_refuse (reply_p, "owner is required");
    json_t *body = s_object_arg (changes);
    if (!body && changes)
        return s_refuse (reply_p, "resource update: the changes must be a"
                                  " JSON object");
    s_set_str (body, "id", id);
    s_set_str (body, "owner", owner);
    return s_command (self, RESV_SERVICE_AVAILABILITY,
                      RESV_METHOD_RESOURCE_UPDATE, body, reply_p);
}

int
resv_resource_remove (resv_t *self, const char *id, const char *owner,
                      json_t **reply_p)
{
    return s_id_command (self, RESV_SERVICE_AVAILABILITY,
                         RESV_METHOD_RESOURCE_REMOVE, id, "owner", owner,
                         reply_p);
}

int
resv_availability (resv_t *self, const char *resource, const char *date,
                   int days, json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (!s_given (resource))
        return s_refuse (reply_p, "resource is required");
    if (!s_given (date))
        return s_refuse (reply_p, "date is required");
    json_t *body = json_object ();
    s_set_str (body, "resource", resource);
    s_set_str (body, "date", date);
    if (body && days > 0)
        json_object_set_new (body, "days", json_integer (days));
    return s_command (self, RESV_SERVICE_AVAILABILITY,
                      RESV_METHOD_AVAILABILITY, body, reply_p);
}

int
resv_reserve (resv_t *self, json_t *request, json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (!self)
        return s_refuse (reply_p, "no client");
    if (!json_is_object (request))
        return s_refuse (reply_p, "reserve: the request must be a JSON"
                                  " object");
    return s_command (self, RESV_SERVICE_RESERVATION, RESV_METHOD_RESERVE,
                      s_with_key (self, request), reply_p);
}

int
resv_cancel (resv_t *self, const char *id, const char *customer,
             json_t **reply_p)
{
    return s_id_command (self, RESV_SERVICE_RESERVATION, RESV_METHOD_CANCEL,
                         id, "customer", customer, reply_p);
}

int
resv_approve (resv_t *self, const char *id, const char *owner,
              json_t **reply_p)
{
    return s_id_command (self, RESV_SERVICE_APPROVAL, RESV_METHOD_APPROVE,
                         id, "owner", owner, reply_p);
}

int
resv_decline (resv_t *self, const char *id, const char *owner,
              const char *reason, json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (!s_given (id))
        return s_refuse (reply_p, "an id is required");
    if (!s_given (owner))
        return s_refuse (reply_p, "owner is required");
    json_t *body = json_object ();
    s_set_str (body, "id", id);
    s_set_str (body, "owner", owner);
    s_set_str (body, "reason", reason);
    return s_command (self, RESV_SERVICE_APPROVAL, RESV_METHOD_DECLINE, body,
                      reply_p);
}

int
resv_status (resv_t *self, const char *id, json_t **reply_p)
{
    return s_id_command (self, RESV_SERVICE_VIEW, RESV_METHOD_STATUS, id,
                         NULL, NULL, reply_p);
}

int
resv_list (resv_t *self, json_t *filter, json_t **reply_p)
{
    return s_filter_command (self, RESV_SERVICE_VIEW, RESV_METHOD_LIST,
                             "list", NULL, filter, reply_p);
}

int
resv_history (resv_t *self, const char *id, json_t **reply_p)
{
    return s_id_command (self, RESV_SERVICE_VIEW, RESV_METHOD_HISTORY, id,
                         NULL, NULL, reply_p);
}

int
resv_view_rebuild (resv_t *self, json_t **reply_p)
{
    return s_command (self, RESV_SERVICE_VIEW, RESV_METHOD_REBUILD,
                      json_object (), reply_p);
}

int
resv_notifications (resv_t *self, const char *customer, json_t **reply_p)
{
    if (reply_p)
        *reply_p = NULL;
    if (!s_given (customer))
        return s_refuse (reply_p, "customer is required");
    json_t *body = json_object ();
    s_set_str (body, "customer", customer);
    return s_command (self, RESV_SERVICE_NOTIFICATION, RESV_METHOD_LIST,
                      body, reply_p);
}

int
resv_notifications_query (resv_t *self, json_t *filter, json_t **reply_p)
{
    return s_filter_command (self, RESV_SERVICE_NOTIFICATION,
                             RESV_METHOD_LIST, "notifications", "customer",
                             filter, reply_p);
}

int
resv_events (resv_t *self, int64_t from, const char *type, int limit,
             json_t **reply_p)
{
    json_t *body = json_object ();
    if (body && from > 0)
        json_object_set_new (body, "from", json_integer (from));
    s_set_str (body, "type", type);
    if (body && limit > 0)
        json_object_set_new (body, "limit", json_integer (limit));
    return s_command (self, RESV_SERVICE_EVENTS, RESV_METHOD_READ, body,
                      reply_p);
}


//  --------------------------------------------------------------------------
//  Errors and status words

//  A copy of text that jansson accepts: bytes that are not ASCII become
//  '?' (an error message may quote a reply body that is not UTF-8).
static json_t *
s_safe_string (const char *text)
{
    json_t *string = json_string (text);
    if (string)
        return string;
    char *copy = strdup (text);
    if (!copy)
        return NULL;
    for (char *c = copy; *c; c++)
        if ((unsigned char) *c >= 0x80)
            *c = '?';
    string = json_string (copy);
    free (copy);
    return string;
}

json_t *
resv_error_new (int code, const char *reason, const char *fmt, ...)
{
    char *message = NULL;
    if (fmt) {
        va_list args;
        va_start (args, fmt);
        message = zsys_vprintf (fmt, args);
        va_end (args);
    }
    json_t *error = json_object ();
    json_t *inner = json_object ();
    if (!error || !inner) {
        json_decref (error);
        json_decref (inner);
        free (message);
        return NULL;
    }
    json_object_set_new (inner, "code", json_integer (code));
    json_object_set_new (inner, "reason", s_safe_string (
        reason? reason: s_default_reason (code)));
    json_object_set_new (inner, "message", s_safe_string (
        message? message: resv_strstatus (code)));
    json_object_set_new (error, "error", inner);
    free (message);
    return error;
}

const char *
resv_strstatus (int status)
{
    switch (status) {
        case RESV_OK:               return "ok";
        case RESV_CREATED:          return "created";
        case RESV_BAD_REQUEST:      return "bad request";
        case RESV_PAYMENT_DECLINED: return "payment declined";
        case RESV_FORBIDDEN:        return "forbidden";
        case RESV_NOT_FOUND:        return "not found";
        case RESV_CONFLICT:         return "conflict";
        case RESV_TOO_MANY:         return "too many requests";
        case RESV_INTERNAL:         return "internal error";
        case RESV_NOT_IMPLEMENTED:  return "not implemented";
        case RESV_UNAVAILABLE:      return "service unavailable";
        case RESV_TIMEOUT:          return "timeout";
        default:                    return "unknown status";
    }
}
