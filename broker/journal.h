/*  journal.h: the event journal, an append-only SQLite log of domain events.

    Every domain event that any worker publishes is stored here before it is
    fanned out, under a sequence number that is gap-free and gives the one
    total order of the system. An event's id is unique: appending an event
    whose id is already journaled stores nothing and returns the sequence
    number it already has, which makes publishers' resends harmless.

    The file is in WAL mode with synchronous=NORMAL: a commit survives the
    crash (kill -9) of the process; only a power loss can take the last few.
    Consumers' cursors are then ahead of the journal, and the events it
    numbers again up to them would be taken as applied: each consumer
    logs an error when it finds the journal ending before its cursor
    (workers/events.c), as it does for a journal replaced by hand.
    The journal is used by one thread, the broker's.
*/
#ifndef JOURNAL_H_INCLUDED
#define JOURNAL_H_INCLUDED

#include <jansson.h>
#include "resv_proto.h"
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _journal_t journal_t;

//  Longest event id and type (a type, and a type prefix of a read, as the
//  protocol says: resv_proto.h).
#define JOURNAL_ID_MAX      64
#define JOURNAL_TYPE_MAX    RESV_TYPE_MAX
//  Deepest nesting of an event, the event itself level 1 (resv's own
//  reach 5: event, data, reservation, payment, a value). Readers parse
//  events inside other documents, each container around them a level
//  more (a page of the journal {"items":[E]}, a relay's publish, a
//  view's history answered in a batch: 5 levels), and jansson parses no
//  document deeper than 2048 levels: an event deeper than that less its
//  carrier's levels would be journaled, then break every read of it.
#define JOURNAL_DEPTH_MAX   64

//  Opens or creates the journal at path, and holds an exclusive lock on
//  path.lock (flock) until it is destroyed: a journal has one writer, so
//  a second broker on the same data directory must not open it. Returns
//  NULL, after one log line naming the file and the error, if it cannot
//  (also when another journal, in any process, holds the lock).
journal_t *
    journal_new (const char *path);

//  Closes the journal, nulls the pointer. NULL-safe, idempotent.
void
    journal_destroy (journal_t **self_p);

//  An event to journal: its text as its publisher sent it (size bytes at
//  text, a JSON object), and what journal_scan read from it.
typedef struct {
    const char *text;
    size_t size;
    char id [JOURNAL_ID_MAX + 1];
    char type [JOURNAL_TYPE_MAX + 1];
    bool has_at;                //  It has an "at"
    bool has_data;              //  It has a "data"
} journal_event_t;

//  Reads the event at the start of text (at most size bytes). An event is
//  a JSON object that every consumer's parser (jansson) takes, with no
//  key twice, with "id" and "type" strings (1 to 64 bytes; the type of
//  lowercase words, dots and underscores) and optionally "data" (an
//  object), "at", "correlation_id", "reservation", "resource" (strings of
//  1 to 128 bytes); any other key is refused; and it nests at most
//  JOURNAL_DEPTH_MAX levels. Returns the bytes the event
//  takes and fills *event; 0 with *why_p saying what is wrong if it is
//  not an event.
size_t
    journal_scan (const char *text, size_t size, journal_event_t *event,
                  const char **why_p);

//  Reads a publish in the relays' form, {"events":[E,E,...]} with nothing
//  between the tokens outside the events. Returns 0 with *events_p a new
//  array (free it) of *count_p events that point into body; or -2 with
//  *error_p a malloc'd message saying what is wrong.
int
    journal_split (const char *body, size_t size, journal_event_t **events_p,
                   size_t *count_p, char **error_p);

//  journal_split for events held as a jansson array (borrowed): writes
//  them in the relays' form and reads that. On success *text_p is the
//  text (malloc'd; free it after the events, which point into it).
int
    journal_split_json (json_t *events, char **text_p,
                        journal_event_t **events_p, size_t *count_p,
                        char **error_p);

//  An event stored by journal_append: its seq, the seq of the event before
//  it of its type family (resv_type_family; 0 if it is the first) and of
//  its type (0 if it is the first), its type (the event's in the batch
//  given), its text as journaled (malloc'd, NUL-terminated).
typedef struct {
    int64_t seq;
    int64_t prev;
    int64_t prev_type;
    const char *type;
    char *text;
    size_t size;
} journal_fresh_t;

//  Appends count events (checked by journal_scan) in one transaction. An
//  event is journaled as its text with its seq, and "at" (now) and
//  "data" ({}) when it has none, put in front of its members. On success
//  returns 0, sets seqs [i] to the seq of events [i] (one that was
//  journaled before keeps its first seq), and *fresh_p to a new array of
//  the *nfresh_p events stored by this call, in order; free it with
//  journal_fresh_destroy. On failure returns -1, stores nothing, and sets
//  *error_p to a malloc'd message; -2 if the batch is empty. Once the
//  file was deleted or moved (db_moved), every append fails so.
int
    journal_append (journal_t *self, const journal_event_t *events,
                    size_t count, int64_t *seqs, journal_fresh_t **fresh_p,
                    size_t *nfresh_p, char **error_p);

//  Frees what journal_append returned in *fresh_p; nulls the pointer.
void
    journal_fresh_destroy (journal_fresh_t **fresh_p, size_t count);

//  journal_append for a JSON array of event objects (borrowed), for
//  callers that hold events as jansson values. On success *seqs_p is a new
//  array of the batch's seqs, and *fresh_p a new array of the events
//  stored, each [seq, type, text, prev, prev_type]. Returns as journal_append, and -2 with
//  a message when the batch is not valid.
int
    journal_append_json (journal_t *self, json_t *events, json_t **seqs_p,
                         json_t **fresh_p, char **error_p);

//  Reads up to limit events with seq >= from whose type starts with prefix
//  (NULL or "" for all), in order. Returns a malloc'd JSON text
//  {"items":[...],"next":N,"last":N} where next is the seq to read from
//  next and last the journal's newest seq. next is last + 1, past the end,
//  whenever no event of the prefix follows the page, also when the page
//  holds limit events: next <= last says that the page was cut. NULL,
//  after a log line, on a store failure. The caller frees the text.
char *
    journal_read (journal_t *self, int64_t from, const char *prefix,
                  int limit);

//  The newest sequence number, 0 for an empty journal.
int64_t
    journal_last (journal_t *self);

#ifdef __cplusplus
}
#endif

#endif
