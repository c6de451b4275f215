/*  journal.h: the event journal, an append-only SQLite log of domain events.

    Every domain event that any worker publishes is stored here before it is
    fanned out, under a sequence number that is gap-free and gives the one
    total order of the system. An event's id is unique: appending an event
    whose id is already journaled stores nothing and returns the sequence
    number it already has, which makes publishers' resends harmless.

    The file is in WAL mode with synchronous=NORMAL: a commit survives the
    crash (kill -9) of the process; only a power loss can take the last few.
    The journal is used by one thread, the broker's.
*/
#ifndef JOURNAL_H_INCLUDED
#define JOURNAL_H_INCLUDED

#include <jansson.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _journal_t journal_t;

//  Longest event id and type.
#define JOURNAL_ID_MAX      64
#define JOURNAL_TYPE_MAX    64

//  Opens or creates the journal at path. Returns NULL, after one log line
//  naming the file and the SQLite error, if it cannot.
journal_t *
    journal_new (const char *path);

//  Closes the journal, nulls the pointer. NULL-safe, idempotent.
void
    journal_destroy (journal_t **self_p);

//  An event's text as its publisher sent it, when the caller has it
//  (size bytes at text, a JSON object that parses to the event).
typedef struct {
    const char *text;
    size_t size;
} journal_text_t;

//  Appends a batch of events in one transaction. events is a JSON array of
//  objects, borrowed, each with "id" and "type" strings and optionally
//  "data" (an object), "at", "correlation_id", "reservation", "resource"
//  (strings); any other key is refused. "at" is filled in when missing,
//  and "data" as {}. texts, when not NULL, has one entry per event: an
//  event whose text is given is journaled as that text with its seq (and
//  any missing "at" or "data") put in front, instead of being written
//  anew from the object, which saves the broker a JSON encoding per event.
//  On success returns 0, sets *seqs_p to a new array of the batch's
//  sequence numbers in order, and *fresh_p to a new array of the events
//  stored by this call (duplicates excluded), each as [seq, type, text]
//  where text is the event as journaled, with its "seq". On failure
//  returns -1, stores nothing, and sets *error_p to a malloc'd message;
//  the return is -2 when the batch itself is invalid (the caller's fault)
//  rather than the store.
int
    journal_append (journal_t *self, json_t *events,
                    const journal_text_t *texts, json_t **seqs_p,
                    json_t **fresh_p, char **error_p);

//  Checks a batch as journal_append does, without touching the journal.
//  Returns 0, or -2 with *error_p a malloc'd message saying what is wrong.
int
    journal_check (json_t *events, char **error_p);

//  Reads up to limit events with seq >= from whose type starts with prefix
//  (NULL or "" for all), in order. Returns a malloc'd JSON text
//  {"items":[...],"next":N,"last":N} where next is the seq to read from
//  next and last the journal's newest seq; NULL, after a log line, on a
//  store failure. The caller frees the text.
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
