/*  events.c: the events actor: outbox relay and journal consumer
    (see events.h).  */

#include "events.h"
#include "checkpoint.h"
#include "worker.h"
#include "resv_util.h"
#include "jscan.h"
#include "fields.h"
#include "resv_poll.h"
#include <errno.h>

//  Outbox rows one publish carries.
#define RELAY_BATCH         200
//  How often the relay looks at the outbox without being poked, ms. This
//  is what sends, after a restart, what a crash left unsent.
#define RELAY_INTERVAL      200
//  How often acknowledged outbox rows are deleted at the latest, ms. Most
//  go sooner, with the next transaction of the events thread that writes
//  (an apply, a cursor save): see store_outbox_ack.
#define PRUNE_INTERVAL      500
//  How often an idle consumer asks the journal whether it missed the last
//  events, ms. A consumer that heard live events in the interval does not:
//  a lost event shows as a gap in the seqs of those that follow it, and
//  reading the journal under load would mostly bring events already on
//  their way (up to READ_BATCH, each parsed).
#define CHECK_INTERVAL      1000
//  Journal events one read returns during a catch-up.
#define READ_BATCH          500
//  Live events applied in one transaction at most.
#define APPLY_BATCH         500
//  Deadline of one call to the journal, ms.
#define CALL_TIMEOUT        5000
//  After a publish the journal refused (its disk full, the broker gone),
//  the relay waits this long before it tries again, doubling at each
//  refusal up to RELAY_BACKOFF_MAX, ms; and it logs the refusals once
//  every LOG_INTERVAL at most.
#define RELAY_BACKOFF_MIN   100
#define RELAY_BACKOFF_MAX   2000
#define LOG_INTERVAL        10000
//  How often the cursor is saved when it moved only over events the
//  consumer passes over, ms.
#define SAVE_INTERVAL       1000
//  Longest event type the journal takes.
#define TYPE_MAX            64
//  How often a call of the actor looks at its pipe (a stop) while it
//  waits for the broker, ms.
#define CALL_TICK           50

typedef struct _events_t events_t;

//  What a tick calls through (events_call).
struct _events_caller_t {
    events_t *actor;            //  The actor, whose stop ends the calls
    resv_t *client;             //  Its client
};

//  What applying needs, shared by the actor and events_replay.
typedef struct {
    resv_t *client;             //  Journal reads
    events_t *actor;            //  The actor, whose stop ends the reads;
                                //  NULL in events_replay
    store_t *store;             //  Where effects and the cursor go
    const char *name;           //  Cursor name
    events_apply_fn *apply;     //  The service's apply
    const char *const *types;   //  What apply needs; NULL: everything
    void *state;                //  Its state
    int64_t cursor;             //  Every event up to here is applied (by
                                //  some process) or not needed
    int64_t stored;             //  The stored cursor, as last seen or set
    bool applied;               //  Applied something since last asked
    bool emitted;               //  An apply since then wrote to the outbox
    events_page_fn *page;       //  Called after each page of a catch-up
    void *page_arg;             //  Its argument
    //  When every type the consumer applies is of one family
    //  (resv_type_family), that family: the consumer subscribes to it
    //  alone, reads only its events from the journal, and its cursor
    //  counts only them (every event of the family up to the cursor is
    //  applied). A gap shows in the fan-out's prev, the seq of the
    //  family's event before. Empty: the consumer takes every event, and
    //  a gap shows in the seqs themselves.
    char family [TYPE_MAX + 1];
    //  A consumer of one type (events_config_t.by_type): family holds
    //  the type itself, and a gap shows in the fan-out's prev of the type.
    bool exact;
    const char *one_type [2];   //  types, then: the type alone
    char *own_name;             //  name, then: "consumer/type" (freed)
    bool heard;                 //  A live event came since the last check
    resv_log_limit_t failures;  //  Failed applies and reads, logged
    resv_log_limit_t behind;    //  A journal behind the cursor, logged
} consumer_t;

struct _events_t {
    zsock_t *pipe;              //  Actor pipe
    events_config_t config;     //  Copy of the caller's configuration
    consumer_t *consumers;      //  With config.consumer: one, or with
    size_t nconsumers;          //  config.by_type one per type
    store_t *store;             //  This thread's connection
    zactor_t *checkpoint;       //  Checkpoints the store's WAL
    resv_t *client;             //  Publishes and reads
    events_caller_t caller;     //  The actor and its client, for the tick
    zsock_t *sub;               //  Live fan-out, with config.consumer
    int64_t relay_at;           //  Next unprompted relay
    int64_t relay_backoff;      //  Wait after the last refusal, 0 if none
    int64_t relay_retry_at;     //  No relay before this, after a refusal
    resv_log_limit_t relay_log; //  Refusals logged
    int64_t prune_at;           //  Next prune of the outbox
    int64_t check_at;           //  Next journal check
    int64_t save_at;            //  Next save of a cursor moved by skips
    int64_t tick_at;            //  Next tick
    bool tick_wanted;           //  Tick now: an apply queued work for it
    bool relay_wanted;          //  Poked since the last relay
    bool terminated;            //  Told to stop (STOP or $TERM)
    int stop_wait;              //  How long the stop waits for the broker
                                //  at most, ms (worker_stop_wait)
    int64_t stop_at;            //  When that time is over, once terminated
};


static void
    s_pipe (events_t *self);
static bool
    s_stopped (events_t *self);


//  --------------------------------------------------------------------------
//  Calls

//  Calls method of service with body (size bytes) and timeout_ms, as
//  resv_call_raw does; *reply_p is the malloc'd reply body the caller
//  frees (NULL when empty), and *reply_size its size. In the actor (actor
//  not NULL) the call also hears the pipe while it waits: once the actor
//  is told to stop, it waits for the broker only until the stop's time is
//  over (then 503 deadline_exceeded), and a call made after that fails at
//  once, 503 not_sent. The reply of a call given up so, should it come,
//  is dropped by the next call. Returns the status.
static int
s_call (events_t *actor, resv_t *client, const char *service,
        const char *method, const char *body, size_t size, int timeout_ms,
        char **reply_p, size_t *reply_size)
{
    *reply_p = NULL;
    *reply_size = 0;
    if (!actor)
        return resv_call_raw (client, service, method, body, size,
                              timeout_ms, reply_p, reply_size);
    int status = RESV_UNAVAILABLE;
    const char *reason = RESV_REASON_NOT_SENT;
    const char *why = "not sent: the worker is stopping and gave up on the "
                      "broker";
    int64_t handle = -1;
    if (!actor->terminated || zclock_mono () < actor->stop_at) {
        handle = resv_send (client, service, method, body, size, timeout_ms);
        if (handle < 0) {
            status = RESV_INTERNAL;
            reason = RESV_REASON_INTERNAL;
            why = "cannot send the call";
        }
    }
    while (handle >= 0) {
        int64_t now = zclock_mono ();
        int wait = CALL_TICK;
        if (actor->terminated) {
            if (now >= actor->stop_at) {
                reason = RESV_REASON_DEADLINE;
                why = "no reply: the worker is stopping and gave up on the "
                      "broker";
                break;
            }
            if (actor->stop_at - now < wait)
                wait = (int) (actor->stop_at - now);
        }
        //  libresv completes the call by its deadline at the latest.
        resv_reply_t reply;
        if (resv_recv (client, wait, &reply) == 0) {
            if (reply.handle == handle) {
                *reply_p = reply.body;
                *reply_size = reply.size;
                return reply.status;
            }
            free (reply.body);  //  Of a call given up before
        }
        else
        if (resv_inflight (client) == 0) {
            status = RESV_INTERNAL;     //  Cannot be: it completes first
            reason = RESV_REASON_INTERNAL;
            why = "the call was lost in the client";
            break;
        }
        else
        //  The pipe is read only on a tick with no reply: under load the
        //  worker's pokes come all the time, and each would wake the
        //  call for nothing (they wait for the relay after it). A stop
        //  is heard within CALL_TICK of the broker going quiet; once told
        //  to stop, the pipe has nothing more to say.
        if (!actor->terminated)
            s_pipe (actor);
    }
    json_t *error = resv_error_new (status, reason, "%s", why);
    *reply_p = json_dumps (error, JSON_COMPACT);
    *reply_size = *reply_p? strlen (*reply_p): 0;
    json_decref (error);
    return status;
}

int
events_call (events_caller_t *caller, const char *service,
             const char *method, json_t *request, int timeout_ms,
             json_t **reply_p)
{
    char *text = request? json_dumps (request, JSON_COMPACT | JSON_ENCODE_ANY)
                        : NULL;
    int status;
    json_t *reply;
    if (request && !text) {
        status = RESV_BAD_REQUEST;
        reply = resv_error_new (status, RESV_REASON_BAD_REQUEST,
                                "the request cannot be encoded as JSON");
    }
    else {
        char *body;
        size_t size;
        status = s_call (caller->actor, caller->client, service, method, text,
                         text? strlen (text): 0, timeout_ms, &body, &size);
        reply = resv_reply_json (&status, body, size);
        free (body);
    }
    free (text);
    if (reply_p)
        *reply_p = reply;
    else
        json_decref (reply);
    return status;
}

bool
events_stopping (events_caller_t *caller)
{
    return s_stopped (caller->actor);
}


//  --------------------------------------------------------------------------
//  Consumer

//  Whether the consumer applies events of type.
static bool
s_wanted (consumer_t *self, const char *type)
{
    if (!type)
        return false;
    if (!self->types)
        return true;
    for (const char *const *entry = self->types; *entry; entry++) {
        size_t size = strlen (*entry);
        if (size && (*entry) [size - 1] == '.'?
                    strncmp (type, *entry, size) == 0: streq (type, *entry))
            return true;
    }
    return false;
}

//  The stored cursor, inside a transaction. One lower than any this
//  process has seen means the store was reset (a view rebuild): then the
//  stored one is the truth and the consumer starts again from there.
//  Returns -1 (logged) if the store fails.
static int64_t
s_stored (consumer_t *self)
{
    int64_t stored = store_cursor (self->store, self->name);
    if (stored < 0)
        return -1;
    if (stored < self->stored)
        self->cursor = stored;
    self->stored = stored;
    return stored > self->cursor? stored: self->cursor;
}

//  Saves a cursor that moved over events passed over. Returns 0 or -1.
static int
s_save (consumer_t *self)
{
    if (store_begin (self->store))
        return -1;
    int64_t cursor = s_stored (self);
    if (cursor < 0) {
        store_rollback (self->store);
        return -1;
    }
    if (cursor > self->stored
    &&  (store_cursor_set (self->store, self->name, cursor)
         || store_commit (self->store))) {
        store_rollback (self->store);
        return -1;
    }
    store_rollback (self->store);       //  Nothing written, or committed
    self->stored = self->cursor = cursor;
    return 0;
}

//  Applies the events of array (objects with "seq" and "type") that follow
//  the cursor, in one transaction, stopping at the first gap (a consumer
//  of one family is given only events with none before them). An event
//  without a type, or of one the consumer does not need, only moves the
//  cursor; a batch of nothing else takes no transaction. Returns the
//  number applied, or -1 if the transaction failed (nothing applied).
static int
s_apply (consumer_t *self, json_t *events)
{
    size_t index;
    json_t *event;
    bool needed = false;
    json_array_foreach (events, index, event) {
        int64_t seq = json_integer_value (json_object_get (event, "seq"));
        if (seq > self->cursor && s_wanted (self, json_string_value (
                                            json_object_get (event, "type")))) {
            needed = true;
            break;
        }
    }
    if (!needed) {
        json_array_foreach (events, index, event) {
            int64_t seq = json_integer_value (json_object_get (event, "seq"));
            if (seq == self->cursor + 1 || (*self->family && seq > self->cursor))
                self->cursor = seq;
            else
            if (seq > self->cursor)
                break;          //  A gap: the caller reads the journal
        }
        return 0;
    }
    if (store_begin (self->store))
        return -1;
    //  Inside the transaction the stored cursor is the truth: another
    //  process of this service may have applied some of these already.
    int64_t cursor = s_stored (self);
    if (cursor < 0) {
        store_rollback (self->store);
        return -1;
    }
    int applied = 0;
    json_array_foreach (events, index, event) {
        int64_t seq = json_integer_value (json_object_get (event, "seq"));
        if (seq <= cursor)
            continue;
        if (seq != cursor + 1 && !*self->family)
            break;              //  A gap: the caller reads the journal
        const char *type = json_string_value (json_object_get (event, "type"));
        if (s_wanted (self, type)) {
            if (self->apply (self->state, self->store, type, event)) {
                //  A cause that lasts (a full disk) fails every retry.
                unsigned skipped;
                if (resv_log_due (&self->failures, LOG_INTERVAL, &skipped))
                    zsys_warning ("events: %s: apply seq %" PRId64 " (%s) "
                                  "failed; will retry (%u more failures "
                                  "since the last line)", self->name, seq,
                                  type, skipped);
                store_rollback (self->store);
                return -1;
            }
            applied++;
        }
        cursor = seq;
    }
    if (applied == 0) {
        //  Another process applied them: nothing to write.
        store_rollback (self->store);
        self->cursor = cursor;
        return 0;
    }
    if (store_cursor_set (self->store, self->name, cursor) || store_commit (self->store)) {
        store_rollback (self->store);
        return -1;
    }
    self->cursor = self->stored = cursor;
    if (self->failures.total)
        zsys_info ("events: %s: applies again, after %u failures", self->name,
                   resv_log_clear (&self->failures));
    self->applied = true;
    self->emitted |= store_emitted (self->store);
    return applied;
}

//  Reads the journal from the cursor on and applies it, page by page,
//  until it is at the end. Returns 0, or -1 on failure (logged).
static int
s_catch_up (consumer_t *self)
{
    //  A stored cursor lower than the last this process saw: the store was
    //  reset (a view rebuild) since, and its replay may have stopped half
    //  way (a journal read that failed). Only an apply looked (s_stored),
    //  and this reads from the cursor it holds: a quiet system kept the
    //  view half built until the next event came.
    int64_t stored = store_cursor (self->store, self->name);
    if (stored < 0)
        return -1;
    if (stored < self->stored)
        self->cursor = self->stored = stored;
    while (true) {
        int64_t before = self->cursor;
        json_t *request = json_pack ("{s:I,s:i}", "from",
                                     (json_int_t) self->cursor + 1, "limit", READ_BATCH);
        if (*self->family)
            json_object_set_new (request, "type", json_string (self->family));
        char *text = json_dumps (request, JSON_COMPACT);
        json_decref (request);
        char *reply = NULL;
        size_t size = 0;
        int status = text? s_call (self->actor, self->client,
                                   RESV_SERVICE_EVENTS, RESV_METHOD_READ,
                                   text, strlen (text), CALL_TIMEOUT,
                                   &reply, &size)
                         : RESV_INTERNAL;
        free (text);
        json_t *page = status == RESV_OK
                     ? json_loadb (reply, size, JSON_ALLOW_NUL, NULL): NULL;
        free (reply);
        if (status == RESV_OK && !json_is_object (page))
            status = RESV_INTERNAL;     //  Not a page: read it again later
        if (status != RESV_OK) {
            unsigned skipped;
            if (resv_log_due (&self->failures, LOG_INTERVAL, &skipped))
                zsys_warning ("events: %s: read journal from %" PRId64 ": "
                              "status %d (%u more failures since the last "
                              "line)", self->name, self->cursor + 1, status,
                              skipped);
            json_decref (page);
            return -1;
        }
        json_t *items = json_object_get (page, "items");
        int64_t last = json_integer_value (json_object_get (page, "last"));
        unsigned skipped;
        if (self->cursor > last
        &&  resv_log_due (&self->behind, LOG_INTERVAL, &skipped))
            zsys_error ("events: %s: the journal ends at seq %" PRId64
                        ", before this consumer's cursor, %" PRId64 ": it "
                        "was replaced, or lost commits it had acknowledged "
                        "(a power loss); what it numbers up to %" PRId64
                        " again is taken as applied (%u more lines since "
                        "the last)", self->name, last, self->cursor,
                        self->cursor, skipped);
        int rc = json_array_size (items)? s_apply (self, items): 0;
        //  The family's events up to next are all in the page: the cursor
        //  moves over the others read past.
        int64_t next = json_integer_value (json_object_get (page, "next"));
        json_decref (page);
        if (rc < 0)
            return -1;
        if (*self->family && next - 1 > self->cursor)
            self->cursor = next - 1;
        //  At the end of the journal the replay is done, whatever the page
        //  callback says: a stop it asks for holds only with pages left.
        bool done = self->cursor >= last || self->cursor == before;
        if (self->page && self->page (self->page_arg) && !done)
            return -1;
        //  A stopping actor reads no further page: the rest is read at
        //  the next start, and the stop's time is for the outbox. The
        //  pipe is read here, between pages: s_call reads it only when a
        //  call has waited CALL_TICK for nothing, which a journal that
        //  answers at once never does.
        if (self->actor && !self->actor->terminated)
            s_pipe (self->actor);
        if (done || (self->actor && self->actor->terminated))
            return 0;
    }
}

int
events_replay (resv_t *client, store_t *store, const char *consumer,
               const char *type, events_apply_fn *apply, void *state,
               events_page_fn *page, void *page_arg)
{
    consumer_t self = { .client = client, .store = store, .name = consumer,
                        .apply = apply, .state = state, .page = page,
                        .page_arg = page_arg };
    if (type) {
        if (strlen (type) > TYPE_MAX) {
            zsys_error ("events: %s: no replay of type '%s'", consumer, type);
            return -1;
        }
        self.exact = true;
        self.one_type [0] = type;
        self.types = self.one_type;
        snprintf (self.family, sizeof self.family, "%s", type);
    }
    self.cursor = self.stored = store_cursor (store, consumer);
    if (self.cursor < 0)
        return -1;
    return s_catch_up (&self);
}

//  A live event for a raw consumer: {"seq", "type", "text"}, text as it
//  was journaled. The broker checked it (jscan) before it journaled it,
//  and the consumer reads it with jscan again: its UTF-8 is not checked a
//  third time here. NULL out of memory.
static json_t *
s_raw_event (int64_t seq, const char *type, const char *text, size_t size)
{
    json_t *event = json_object ();
    if (event
    &&  json_object_set_new_nocheck (event, "seq", json_integer (seq)) == 0
    &&  json_object_set_new_nocheck (event, "type", json_string (type)) == 0
    &&  json_object_set_new_nocheck (event, "text",
                                     json_stringn_nocheck (text, size)) == 0)
        return event;
    json_decref (event);
    return NULL;
}

//  What a consumer with fields gets of each live event besides them.
static const char *const s_envelope [] = { "seq", "type", NULL };

//  Reads the seqs frame of a fan-out message: seq, prev of the family and
//  prev of the type, each of 1 to 18 digits, one space between. Returns 0,
//  or -1 if the frame is anything else.
static int
s_fan_out_seqs (zmq_msg_t *frame, int64_t seqs [3])
{
    const char *text = (const char *) zmq_msg_data (frame);
    const char *end = text + zmq_msg_size (frame);
    for (int index = 0; index < 3; index++) {
        if (index > 0 && (text == end || *text++ != ' '))
            return -1;
        const char *start = text;
        int64_t value = 0;
        while (text < end && text - start < 18 && *text >= '0' && *text <= '9')
            value = value * 10 + (*text++ - '0');
        if (text == start)
            return -1;
        seqs [index] = value;
    }
    return text == end? 0: -1;
}

//  The consumer of self that takes events of type: one of one type takes
//  that type, one of one family the family's, one of neither everything.
//  NULL when none does.
static consumer_t *
s_consumer_of (events_t *self, const char *type)
{
    for (size_t index = 0; index < self->nconsumers; index++) {
        consumer_t *consumer = &self->consumers [index];
        const char *key = consumer->family;
        if (consumer->exact? streq (type, key):
            !*key || (resv_type_family (type) == strlen (key)
                      && strncmp (type, key, strlen (key)) == 0))
            return consumer;
    }
    return NULL;
}

//  Frames of a fan-out message: type; seq, prev of the family and prev of
//  the type; the event.
#define FAN_OUT_FRAMES      3

//  Reads one fan-out message without waiting. Returns 0 when there is
//  none; 2 for a message no consumer takes (one it subscribed to only as
//  a prefix of its own); 1 with *consumer_p, *seq_p and *prev_p (the prev
//  that consumer goes by) set and, when it follows that consumer's cursor
//  and it needs the type, *event_p (the parsed event, or for a raw
//  consumer {seq, type, text}; else NULL); -1 for a malformed message
//  (logged and dropped: the seq it leaves out sends the consumer to the
//  journal).
static int
s_recv_live (events_t *self, consumer_t **consumer_p, int64_t *seq_p,
             int64_t *prev_p, json_t **event_p)
{
    void *handle = zsock_resolve (self->sub);
    zmq_msg_t parts [FAN_OUT_FRAMES];
    int count = 0;              //  Frames kept
    int frames = 0;             //  Frames received
    bool more = true;
    while (more) {
        zmq_msg_t part;
        zmq_msg_init (&part);
        if (zmq_msg_recv (&part, handle, ZMQ_DONTWAIT) == -1) {
            zmq_msg_close (&part);
            break;              //  None waiting (never half a message)
        }
        more = zmq_msg_more (&part);
        frames++;
        if (count < FAN_OUT_FRAMES)
            parts [count++] = part;
        else
            zmq_msg_close (&part);
    }
    int rc = count? 1: 0;
    *event_p = NULL;
    int64_t seqs [3];
    if (count && (frames != FAN_OUT_FRAMES || more
              ||  s_fan_out_seqs (&parts [1], seqs))) {
        zsys_warning ("events: %s: malformed fan-out message",
                      self->consumers [0].name);
        rc = -1;
    }
    if (rc == 1) {
        char type [TYPE_MAX + 1];
        size_t size = zmq_msg_size (&parts [0]);
        if (size > TYPE_MAX)
            size = TYPE_MAX;
        memcpy (type, zmq_msg_data (&parts [0]), size);
        type [size] = 0;
        consumer_t *consumer = s_consumer_of (self, type);
        *consumer_p = consumer;
        *seq_p = seqs [0];
        if (!consumer)
            rc = 2;
        else {
            *prev_p = seqs [consumer->exact? 2: 1];
            if (*seq_p > consumer->cursor && s_wanted (consumer, type)) {
                const char *text = (const char *) zmq_msg_data (&parts [2]);
                size = zmq_msg_size (&parts [2]);
                *event_p = self->config.raw
                    ? s_raw_event (*seq_p, type, text, size)
                    : self->config.fields
                    ? field_sparse (text, size, self->config.fields, s_envelope)
                    : json_loadb (text, size, 0, NULL);
                if (!*event_p) {
                    zsys_warning ("events: %s: fan-out event %" PRId64 " does "
                                  "not parse", consumer->name, *seq_p);
                    rc = -1;
                }
            }
        }
    }
    for (int index = 0; index < count; index++)
        zmq_msg_close (&parts [index]);
    return rc;
}

//  Takes every live event waiting on the SUB socket (up to a batch) and
//  applies, for each consumer, those that follow its cursor; a gap sends
//  that consumer to the journal. An event the consumer does not need goes
//  in its batch as its seq alone, so that the cursor moves over it.
static void
s_consume_live (events_t *self)
{
    size_t count = self->nconsumers;
    json_t *batches [count];
    int64_t newest [count];
    bool gaps [count];
    for (size_t index = 0; index < count; index++) {
        batches [index] = json_array ();
        newest [index] = 0;
        gaps [index] = false;
    }
    size_t taken = 0;
    while (taken < APPLY_BATCH) {
        consumer_t *consumer = NULL;
        int64_t seq = 0, prev = 0;
        json_t *event;
        int rc = s_recv_live (self, &consumer, &seq, &prev, &event);
        if (rc == 0)
            break;
        if (rc != 1) {
            json_decref (event);
            continue;
        }
        consumer->heard = true;
        size_t index = (size_t) (consumer - self->consumers);
        if (gaps [index] || seq <= consumer->cursor || seq <= newest [index]) {
            json_decref (event);
            continue;
        }
        //  Of one family or type: its event before this one must be
        //  applied, or be in the batch already. What follows comes from
        //  the journal.
        if (*consumer->family
        &&  prev > (newest [index] > consumer->cursor? newest [index]:
                                                       consumer->cursor)) {
            json_decref (event);
            gaps [index] = true;
            continue;
        }
        json_array_append_new (batches [index], event? event:
                               json_pack ("{s:I}", "seq", (json_int_t) seq));
        newest [index] = seq;
        taken++;
    }
    for (size_t index = 0; index < count; index++) {
        consumer_t *consumer = &self->consumers [index];
        if (json_array_size (batches [index])) {
            int rc = s_apply (consumer, batches [index]);
            //  Still behind what we saw: events were lost on the way (or
            //  the apply failed); the journal has them all.
            if (rc < 0 || consumer->cursor < newest [index])
                gaps [index] = true;
        }
        if (gaps [index])
            s_catch_up (consumer);
        json_decref (batches [index]);
    }
}


//  --------------------------------------------------------------------------
//  Relay

//  A publish the journal refused: the relay waits before the next try,
//  longer at each refusal, and logs what the journal said, now and then.
static void
s_relay_refused (events_t *self, int status, const char *reply)
{
    self->relay_backoff = self->relay_backoff? 2 * self->relay_backoff
                                             : RELAY_BACKOFF_MIN;
    if (self->relay_backoff > RELAY_BACKOFF_MAX)
        self->relay_backoff = RELAY_BACKOFF_MAX;
    self->relay_retry_at = zclock_mono () + self->relay_backoff;
    unsigned skipped;
    if (!resv_log_due (&self->relay_log, LOG_INTERVAL, &skipped))
        return;
    json_t *error = reply? json_loads (reply, 0, NULL): NULL;
    const char *message = json_string_value (json_object_get (
        json_object_get (error, "error"), "message"));
    zsys_warning ("events: %s: publish to the journal refused (%d: %.200s); "
                  "will resend, again after %d ms at most (%u more refusals "
                  "since the last line)", self->config.store, status,
                  message? message: resv_strstatus (status), RELAY_BACKOFF_MAX,
                  skipped);
    json_decref (error);
}

//  Sends the outbox to the journal until it is empty or a call fails.
//  After a refusal it does nothing until its wait is over, unless the
//  actor is stopping (its last try). Between one publish and the next it
//  reads the pipe: a broker that answers never leaves s_call a quiet
//  tick to hear a stop in, and a backlog of a million rows would hold
//  the stop until all were sent. Heard, the stop bounds the rest
//  (s_call): what is left waits in the outbox for the next start.
static void
s_relay (events_t *self)
{
    self->relay_wanted = false;
    if (self->relay_backoff && !self->terminated
    &&  zclock_mono () < self->relay_retry_at)
        return;
    for (int sent = 0; true; sent++) {
        //  The rows are JSON already: the request is built around them.
        int64_t last = 0;
        char *request;
        size_t size;
        //  The broker refuses a publish over broker/max_message (400
        //  too_large), and would refuse it at every try: none is sent.
        if (store_outbox_text (self->store, RELAY_BATCH,
                               store_publish_max (self->store), &last,
                               &request, &size) <= 0)
            return;
        if (sent > 0 && !self->terminated)
            s_pipe (self);
        char *reply = NULL;
        size_t reply_size;
        int status = s_call (self, self->client, RESV_SERVICE_EVENTS,
                             RESV_METHOD_PUBLISH, request, size,
                             CALL_TIMEOUT, &reply, &reply_size);
        free (request);
        if (status != RESV_OK) {
            s_relay_refused (self, status, reply);
            free (reply);
            return;
        }
        free (reply);
        store_outbox_ack (self->store, last);
        if (self->relay_backoff) {
            self->relay_backoff = 0;
            zsys_info ("events: %s: the journal takes publishes again, "
                       "after %u refusals", self->config.store,
                       resv_log_clear (&self->relay_log));
        }
    }
}


//  --------------------------------------------------------------------------
//  The actor

static int
s_next_wait (events_t *self)
{
    int64_t next = self->relay_at;
    if (self->prune_at < next)
        next = self->prune_at;
    if (self->sub && self->check_at < next)
        next = self->check_at;
    if (self->sub && self->save_at < next)
        next = self->save_at;
    if (self->config.tick && self->tick_at < next)
        next = self->tick_at;
    int64_t wait = next - zclock_mono ();
    return wait < 0? 0: (int) wait;
}

//  Told to stop at since (on zclock_mono): from then on, the stop waits
//  for the broker stop_wait ms at most.
static void
s_terminate (events_t *self, int64_t since)
{
    self->terminated = true;
    self->stop_at = since + self->stop_wait;
}

static void
s_pipe (events_t *self)
{
    //  Pokes come in bursts: take them all, relay once. The receive that
    //  finds nothing left ends it. Commands are short words ("FLUSH",
    //  "$TERM", "STOP" and the time it was sent, from events_destroy); a
    //  longer one is cut, and matches none.
    char command [32];
    int size;
    while (!self->terminated
       && (size = zmq_recv (zsock_resolve (self->pipe), command,
                            sizeof command - 1, ZMQ_DONTWAIT)) >= 0) {
        command [size < (int) sizeof command - 1? size: (int) sizeof command - 1] = 0;
        int64_t since;
        if (streq (command, "$TERM"))
            s_terminate (self, zclock_mono ());
        else
        if (strncmp (command, "STOP ", 5) == 0
        &&  resv_parse_int (command + 5, 0, INT64_MAX, &since) == 0)
            s_terminate (self, since);
        else
        if (streq (command, "FLUSH"))
            self->relay_wanted = true;
    }
}

//  Takes the commands waiting on the pipe, without waiting; true once
//  $TERM came. Asked between one consumer's catch-up and the next: each
//  is a call that waits up to CALL_TIMEOUT when the broker is gone, and
//  a process with five consumers was then 25 s deaf to its stop.
static bool
s_stopped (events_t *self)
{
    s_pipe (self);
    return self->terminated;
}

//  The one family of types into family (TYPE_MAX + 1 bytes), or "" when
//  there is none: no types, or types of several families.
static void
s_family (const char *const *types, char *family)
{
    *family = 0;
    for (const char *const *entry = types; entry && *entry; entry++) {
        size_t size = resv_type_family (*entry);
        if (size == 0 || size > TYPE_MAX
        || (entry != types && (size != strlen (family)
                               || strncmp (*entry, family, size)))) {
            *family = 0;
            return;
        }
        memcpy (family, *entry, size);
        family [size] = 0;
    }
}

//  The cursor of a consumer of one type that has none yet starts at its
//  service's cursor (of before by_type, or of before the type was added):
//  every event of the type up to there was applied, or passed over as not
//  needed then. Returns 0, or -1 (logged) if the store fails.
static int
s_cursor_inherit (consumer_t *self, const char *service_cursor)
{
    if (store_begin (self->store))
        return -1;
    int64_t cursor = store_cursor (self->store, self->name);
    int64_t inherited = cursor? 0: store_cursor (self->store, service_cursor);
    if (cursor < 0 || inherited < 0) {
        store_rollback (self->store);
        return -1;
    }
    if (inherited > 0
    &&  (store_cursor_set (self->store, self->name, inherited)
         || store_commit (self->store))) {
        store_rollback (self->store);
        zsys_error ("events: %s: cannot set its first cursor", self->name);
        return -1;
    }
    if (inherited <= 0)
        store_rollback (self->store);
    self->cursor = self->stored = inherited > 0? inherited: cursor;
    return 0;
}

//  Makes the consumers of config->consumer: one, or with by_type one per
//  type. Returns 0, or -1 (logged) on a type that cannot be taken alone
//  or a store failure.
static int
s_consumers_new (events_t *self, events_config_t *config)
{
    size_t count = 1;
    if (config->by_type) {
        for (count = 0; config->types && config->types [count]; count++) {
            const char *type = config->types [count];
            size_t size = strlen (type);
            if (size == 0 || size > TYPE_MAX || type [size - 1] == '.') {
                zsys_error ("events: %s: by type needs whole types, not '%s'",
                            config->consumer, type);
                return -1;
            }
        }
        if (count == 0) {
            zsys_error ("events: %s: by type needs types", config->consumer);
            return -1;
        }
    }
    self->consumers = (consumer_t *) zmalloc (count * sizeof (consumer_t));
    self->nconsumers = count;
    for (size_t index = 0; index < count; index++) {
        consumer_t *consumer = &self->consumers [index];
        consumer->client = self->client;
        consumer->actor = self;
        consumer->store = self->store;
        consumer->apply = config->apply;
        consumer->state = config->state;
        if (config->by_type) {
            const char *type = config->types [index];
            consumer->exact = true;
            consumer->one_type [0] = type;
            consumer->types = consumer->one_type;
            snprintf (consumer->family, sizeof consumer->family, "%s", type);
            consumer->own_name = zsys_sprintf ("%s/%s", config->consumer, type);
            consumer->name = consumer->own_name;
            if (s_cursor_inherit (consumer, config->consumer))
                return -1;
        }
        else {
            consumer->name = config->consumer;
            consumer->types = config->types;
            s_family (config->types, consumer->family);
            consumer->cursor = consumer->stored =
                store_cursor (self->store, config->consumer);
            if (consumer->cursor < 0)
                return -1;
        }
    }
    return 0;
}

//  Frees what events_new made; nulls the pointer.
static void
s_destroy (events_t **self_p)
{
    events_t *self = *self_p;
    checkpoint_destroy (&self->checkpoint);
    zsock_destroy (&self->sub);
    resv_destroy (&self->client);
    store_destroy (&self->store);
    for (size_t index = 0; index < self->nconsumers; index++)
        zstr_free (&self->consumers [index].own_name);
    free (self->consumers);
    free (self);
    *self_p = NULL;
}

static void
s_events_actor (zsock_t *pipe, void *args)
{
    events_t *self = (events_t *) args;
    self->pipe = pipe;
    zsock_signal (pipe, 0);
    for (size_t index = 0; index < self->nconsumers && !s_stopped (self);
         index++)
        s_catch_up (&self->consumers [index]);

    zmq_pollitem_t items [] = {
        { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 },
        { self->sub? zsock_resolve (self->sub): NULL, 0, ZMQ_POLLIN, 0 },
    };
    //  SIGTERM interrupts the wait (EINTR); this thread still runs until
    //  its owner says $TERM.
    while (!self->terminated) {
        int rc = resv_poll (items, self->sub? 2: 1, s_next_wait (self));
        if (rc == -1 && errno == ETERM)
            break;              //  The context is gone: nothing can be sent
        if (rc == -1 && errno != EINTR) {
            zsys_error ("events: poll: %s", zmq_strerror (errno));
            zclock_sleep (10);
        }
        if (rc > 0 && items [0].revents)
            s_pipe (self);
        if (self->terminated)
            break;
        if (self->sub && rc > 0 && items [1].revents)
            s_consume_live (self);
        //  What an apply emitted goes out now, not at the next interval:
        //  each step of the saga would otherwise wait for the timer. (An
        //  apply that emitted nothing, as all of the view's, gives the
        //  relay nothing to read.)
        for (size_t index = 0; index < self->nconsumers; index++) {
            consumer_t *consumer = &self->consumers [index];
            if (consumer->applied) {
                consumer->applied = false;
                self->tick_wanted = self->config.tick_on_apply;
            }
            if (consumer->emitted) {
                consumer->emitted = false;
                self->relay_wanted = true;
            }
        }
        int64_t now = zclock_mono ();
        if (self->relay_wanted || now >= self->relay_at) {
            s_relay (self);
            self->relay_at = zclock_mono () + RELAY_INTERVAL;
        }
        if (self->sub && now >= self->check_at) {
            bool applied = false, emitted = false;
            for (size_t index = 0; index < self->nconsumers; index++) {
                consumer_t *consumer = &self->consumers [index];
                if (!consumer->heard && !s_stopped (self))
                    s_catch_up (consumer);
                consumer->heard = false;
                applied |= consumer->applied;
                consumer->applied = false;
                emitted |= consumer->emitted;
                consumer->emitted = false;
            }
            self->check_at = zclock_mono () + CHECK_INTERVAL;
            if (emitted)
                s_relay (self);
            if (applied)
                self->tick_wanted = self->config.tick_on_apply;
        }
        if (self->sub && now >= self->save_at) {
            for (size_t index = 0; index < self->nconsumers; index++)
                if (self->consumers [index].cursor > self->consumers [index].stored)
                    s_save (&self->consumers [index]);
            self->save_at = zclock_mono () + SAVE_INTERVAL;
        }
        if (now >= self->prune_at) {
            store_outbox_prune (self->store);
            self->prune_at = zclock_mono () + PRUNE_INTERVAL;
        }
        if (self->config.tick && !self->terminated
        &&  (now >= self->tick_at || self->tick_wanted)) {
            self->tick_wanted = false;
            bool more = self->config.tick (self->config.state, self->store,
                                           &self->caller);
            self->tick_at = zclock_mono () + (more? 0: self->config.tick_ms);
            //  What the tick emitted goes out now.
            s_relay (self);
            self->relay_at = zclock_mono () + RELAY_INTERVAL;
        }
    }
    //  Last chance for what was committed just before the stop, within
    //  the stop's time for the broker. What the journal has not
    //  acknowledged stays in the outbox, and is sent at the next start.
    s_relay (self);
    int64_t left = store_outbox_unacked (self->store);
    if (left > 0)
        zsys_warning ("events: %s: stop: %" PRId64 " outbox events not "
                      "acknowledged by the broker, left to be resent at the "
                      "next start", self->config.store, left);
    store_outbox_prune (self->store);
    for (size_t index = 0; index < self->nconsumers; index++)
        if (self->consumers [index].cursor > self->consumers [index].stored)
            s_save (&self->consumers [index]);
    s_destroy (&self);
}

//  The benchmark baseline's switch (events/relay = 0, tests/saga_baseline.c):
//  an actor that neither relays nor consumes, and only takes the pokes
//  sent to it until $TERM. The baseline runs the services' handlers with
//  no broker, and moves the outboxes to a journal itself.
static void
s_idle_actor (zsock_t *pipe, void *args)
{
    (void) args;
    zsock_signal (pipe, 0);
    while (true) {
        char *command = zstr_recv (pipe);
        bool term = !command || streq (command, "$TERM");
        zstr_free (&command);
        if (term)
            break;
    }
}

zactor_t *
events_new (resv_cfg_t *cfg, events_config_t *config)
{
    if (resv_cfg_int (cfg, "events/relay", 1, 0, 1) == 0) {
        zactor_t *idle = zactor_new (s_idle_actor, NULL);
        if (idle)
            zsock_set_sndtimeo (zactor_sock (idle), 0);
        return idle;
    }
    events_t *self = (events_t *) zmalloc (sizeof (events_t));
    self->config = *config;
    self->stop_wait = worker_stop_wait (cfg);
    if (self->config.tick_ms <= 0)
        self->config.tick_ms = 1000;
    self->store = store_new (cfg, config->store, config->schema);
    const char *frontend = resv_cfg_str (cfg, "broker/frontend", RESV_DEFAULT_ENDPOINT);
    self->client = resv_new (frontend);
    self->caller = (events_caller_t) { self, self->client };
    //  The relay publishes and approval's tick expires: internal methods.
    resv_set_key (self->client, resv_cfg_str (cfg, "broker/internal_key", NULL));
    if (!self->store || !self->client)
        goto failed;
    self->checkpoint = checkpoint_new (store_path (self->store));
    if (config->consumer) {
        //  Subscribe before the first read of the journal (Clone pattern):
        //  whatever is published after the read is already queued here.
        const char *events = resv_cfg_str (cfg, "broker/events", RESV_DEFAULT_EVENTS);
        self->sub = zsock_new (ZMQ_SUB);
        zsock_set_rcvhwm (self->sub, 100000);
        zsock_set_rcvtimeo (self->sub, 0);
        if (s_consumers_new (self, config))
            goto failed;
        for (size_t index = 0; index < self->nconsumers; index++)
            zsock_set_subscribe (self->sub, self->consumers [index].family);
        zsock_set_ipv6 (self->sub, resv_endpoint_ipv6 (events));
        if (resv_sock_connect (self->sub, events)) {
            zsys_error ("events: connect %s (broker/events): %s", events,
                        zmq_strerror (zmq_errno ()));
            goto failed;
        }
    }
    int64_t now = zclock_mono ();
    self->relay_at = now;
    self->prune_at = now + PRUNE_INTERVAL;
    self->check_at = now + CHECK_INTERVAL;
    self->save_at = now + SAVE_INTERVAL;
    self->tick_at = now + self->config.tick_ms;
    zactor_t *actor = zactor_new (s_events_actor, self);
    if (actor) {
        //  Pokes must never block the caller: a full pipe means a poke is
        //  pending anyway.
        zsock_set_sndtimeo (zactor_sock (actor), 0);
        return actor;
    }
failed:
    s_destroy (&self);
    return NULL;
}

int
events_batch_begin (void *batch)
{
    return store_batch_begin (((events_batch_t *) batch)->store);
}

int
events_batch_end (void *batch, const char **why_p)
{
    events_batch_t *self = (events_batch_t *) batch;
    int rc = store_batch_end (self->store);
    if (rc == 0 && store_emitted (self->store))
        events_flush (self->events);
    if (rc && why_p)
        *why_p = store_batch_error (self->store);
    return rc;
}

void
events_flush (zactor_t *self)
{
    if (self)
        zstr_send (self, "FLUSH");
}

void
events_destroy (zactor_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    //  The pipe was made non-blocking for pokes; the stop must get through.
    //  The actor may hear it late (a tick's call under way): the time of
    //  the stop comes with it, which the stop's time for the broker counts
    //  from.
    zsock_set_sndtimeo (zactor_sock (*self_p), -1);
    zstr_sendf (*self_p, "STOP %" PRId64, zclock_mono ());
    zactor_destroy (self_p);
}
