/*  events.h: the events actor of a worker process: outbox relay and
    journal consumer.

    A service that publishes or consumes events starts one events actor.
    It runs in its own thread with its own store connection and client
    (and starts the store's checkpointer, checkpoint.h):

    -   relay: sends the store's outbox to the broker's journal (events
        publish), in batches, and deletes each row once acknowledged
        (with the next write of its connection; store_outbox_ack). It
        runs when poked (events_flush, after a commit that emitted) and
        every RELAY_INTERVAL ms, so a crash between commit and send is
        made good at the next start.

    -   consumer (when apply is given): subscribes to the broker's event
        fan-out first, then reads the journal from its cursor (the Clone
        pattern), and applies each event exactly once: apply runs inside a
        transaction that also moves the cursor, so an effect and the record
        that it was applied commit together. Several processes of one
        service share the cursor in their shared store; whichever commits
        first applies an event and the others skip it. A gap in the live
        seqs (a slow subscriber past its high-water mark) is filled from
        the journal; a periodic check catches a lost last event.

    A consumer that reads its events with SQLite's JSON functions (the
    view) asks for them raw: live events then reach apply as their text,
    not parsed, which saves the building of a jansson object per event.

    A consumer whose types are all of one family (the type up to its first
    dot, resv_type_family) subscribes to that family alone; its cursor
    counts only that family's events, and a gap shows in the fan-out's
    prev frame (the seq of the family's event before) instead of the seqs.

    A consumer whose apply does not depend on the order of events of
    different types may take them by type (by_type): it subscribes to each
    of its types alone and keeps a cursor per type, and a gap shows in the
    fan-out's prev frame of the type. It then hears none of the events it
    does not apply: availability, for instance, only the reservations that
    end without being used.

    Otherwise events reach apply in seq order. A consumer names the types it
    applies (types); the others are passed over without a transaction or
    a JSON parse, and the cursor moves over them lazily, at least once a
    second, so that a restart does not read them all again. With no types
    apply sees every event and ignores those it does not need.
*/
#ifndef EVENTS_H_INCLUDED
#define EVENTS_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include "resv.h"
#include "resv_cfg.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Applies one journal event, inside the consumer's transaction on store.
//  type is the event's type, event the whole event (borrowed). Returns 0
//  when applied or ignored; -1 to roll the batch back and try again later
//  (a store failure): the event is not skipped.
typedef int (events_apply_fn) (void *state, store_t *store,
                               const char *type, json_t *event);

//  A tick's way to other services through the broker (events_call): the
//  actor's client, which hears the actor's stop while it waits. Owned by
//  the actor.
typedef struct _events_caller_t events_caller_t;

//  Called about every tick ms in the actor thread, for timed work such as
//  approval expiry; caller reaches other services through the broker,
//  with events_call. Returns true when more work is ready at once (it did
//  a whole batch): the actor then calls it again as soon as it has seen
//  to its sockets, not tick ms later. Return true only after progress, or
//  it spins.
typedef bool (events_tick_fn) (void *state, store_t *store,
                               events_caller_t *caller);

typedef struct {
    const char *store;          //  Store name: DATA_DIR/store.db
    const char *schema;         //  The service's schema SQL (may be NULL)
    const char *consumer;       //  Cursor name; NULL: relay only
    events_apply_fn *apply;     //  With consumer: applies one event
    const char *const *types;   //  Types apply needs, NULL-terminated; an
                                //  entry ending in '.' is a prefix
                                //  ("payment."). NULL: every type
    bool raw;                   //  Live events reach apply unparsed, as
                                //  {"seq", "type", "text"}: text is the
                                //  event's JSON as journaled. Events read
                                //  from the journal (a catch-up) come
                                //  parsed: apply must take both
    const char *const *fields;  //  Optional, NULL-terminated: the members
                                //  apply reads, as paths ("id",
                                //  "data.owner"). Live events then reach
                                //  apply with these alone (and "seq",
                                //  "type"): the rest is checked, not
                                //  built. Events read from the journal
                                //  come whole
    bool by_type;               //  With consumer and types (whole types,
                                //  no prefixes): one cursor per type, named
                                //  consumer/type. The consumer hears only
                                //  its types, not whole families; each
                                //  type's events reach apply in order, but
                                //  after a lost event those of different
                                //  types may reach it in another order
                                //  than the journal's. Only for an apply
                                //  whose effects of different types do not
                                //  depend on their order
    events_tick_fn *tick;       //  Optional timed work
    int tick_ms;                //  Interval of tick (default 1000)
    bool tick_on_apply;         //  Tick also right after each batch of
                                //  events applied: for work that apply
                                //  queues for the tick (payment's provider
                                //  calls, which must not run inside the
                                //  consumer's transaction)
    void *state;                //  Passed to apply and tick, borrowed
} events_config_t;

//  Starts the events actor. cfg and config->state are borrowed and must
//  outlive the actor. Returns NULL, after a log line, if the store cannot
//  be opened. With events/relay = 0 in cfg (the benchmark baseline's
//  switch; default 1) the actor neither relays nor consumes: it only
//  takes pokes until it is destroyed.
zactor_t *
    events_new (resv_cfg_t *cfg, events_config_t *config);

//  Stops the actor, which first sends the outbox once more, and nulls the
//  pointer. NULL-safe. The actor waits for the broker worker_stop_wait ms
//  at most from this call (a quarter of resvd/stop_timeout), the journal
//  read or publish or the tick's call (events_call) under way included,
//  and reads no further page of a catch-up: what the journal has not
//  acknowledged by then stays in the outbox, for the next start, and the
//  log says how many events.
void
    events_destroy (zactor_t **self_p);

//  Pokes the relay after a commit that emitted events. Never blocks.
void
    events_flush (zactor_t *self);

//  Calls method of service through the broker, from a tick, as resv_call
//  does: request is borrowed (NULL: no body), timeout_ms <= 0 is the
//  client's default, and *reply_p (unless reply_p is NULL) is the
//  caller's to json_decref: the result, or an error object on failure.
//  Unlike resv_call it hears the actor's stop while it waits, as the
//  actor's own calls do: once the actor is told to stop (events_destroy),
//  it waits for the broker worker_stop_wait ms at most from the stop,
//  then fails 503 deadline_exceeded (the call may still be done, or its
//  reply come, and be dropped); a call made after that fails at once, 503
//  not_sent. So a stop is not held up by a silent broker for the call's
//  whole timeout. A tick given 503 leaves its work for a later tick, in
//  this process or another. Returns the status.
int
    events_call (events_caller_t *caller, const char *service,
                 const char *method, json_t *request, int timeout_ms,
                 json_t **reply_p);

//  Whether the actor was told to stop (events_destroy), read from its pipe
//  now if it was not yet heard: a tick then ends its round, since its
//  calls fail once the stop's time for the broker is over, and must take a
//  call that failed so as one that may still be done (events_call).
bool
    events_stopping (events_caller_t *caller);

//  Group commit of a service's requests on its store: the functions to
//  give worker_set_batch, with a pointer to one of these (kept in the
//  service's state; store and events borrowed). The end commits the batch
//  (store_batch_end) and, when it wrote, pokes the relay: the handlers'
//  own pokes came before the commit made their events visible. When the
//  commit fails, *why_p is SQLite's reason (store_batch_error).
typedef struct {
    store_t *store;
    zactor_t *events;
} events_batch_t;

int
    events_batch_begin (void *batch);
int
    events_batch_end (void *batch, const char **why_p);

//  Called between two pages of a replay, e.g. to keep a worker's
//  heartbeats going (worker_keepalive) during a long rebuild. Returns 0
//  to go on, or -1 to stop the replay there (a worker told to stop):
//  events_replay then returns -1, the cursor where the pages applied
//  left it, unless that page was the journal's last (the replay is done,
//  and returns 0).
typedef int (events_page_fn) (void *arg);

//  Replays the journal from the consumer's cursor on into store with
//  apply, in the calling thread: for a rebuild (the caller has reset its
//  tables and the cursor to 0 in one transaction first) or to catch up
//  before answering. type NULL: every event, in seq order; else the
//  events of that type alone, for a consumer by type (whose cursor of
//  the type, "consumer/type", consumer names). Uses client for the
//  journal reads; calls page (may be NULL) with page_arg after each page.
//  Returns 0, or -1 (logged; or page stopped it).
int
    events_replay (resv_t *client, store_t *store, const char *consumer,
                   const char *type, events_apply_fn *apply, void *state,
                   events_page_fn *page, void *page_arg);

#ifdef __cplusplus
}
#endif

#endif
