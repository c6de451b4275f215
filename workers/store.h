/*  store.h: a service's SQLite store, with its transactional outbox.

    Each service keeps its state in DATA_DIR/SERVICE.db, shared by every
    process of the service (WAL mode; writers take turns under
    BEGIN IMMEDIATE). A store_t is one connection to it: one per thread.

    The outbox is what makes "nothing lost" hold: a state change and the
    events it causes are written in one transaction (store_emit inside
    store_begin/store_commit). The events actor (events.h) later sends the
    outbox to the broker's journal and deletes each row only once the
    journal has acknowledged it (with the connection's next write, not in
    a transaction of its own); a resend after a crash is harmless because
    the journal deduplicates by event id. Another process of the service
    may resend a row acknowledged and not yet deleted, harmlessly too.

    Every store also keeps consumer cursors: the seq of the last journal
    event a consumer has applied, updated in the transaction of the effect.
*/
#ifndef STORE_H_INCLUDED
#define STORE_H_INCLUDED

#include <czmq.h>
#include <jansson.h>
#include <sqlite3.h>
#include "resv_cfg.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _store_t store_t;

//  Opens (creating if needed) DATA_DIR/name.db, with data/dir from cfg
//  (borrowed), sets WAL and a busy timeout, and runs schema (SQL, may be
//  NULL) after creating the outbox and cursor tables. Returns NULL after a
//  log line naming the file and the SQLite error.
store_t *
    store_new (resv_cfg_t *cfg, const char *name, const char *schema);

//  Closes the connection, nulls the pointer. NULL-safe, idempotent.
void
    store_destroy (store_t **self_p);

//  A request thread's wait for another connection's lock (up to 10 s),
//  and a statement that runs long, keep worker alive meanwhile: its
//  heartbeats go on (worker_keepalive, from the busy handler, and from
//  SQLite's progress handler every STORE_PROGRESS_STEPS steps of a
//  statement), so the broker does not take a worker that waits or works
//  for dead and send its requests elsewhere. Only for a store used in the
//  worker's own thread. NULL worker: both are silent again. NULL-safe.
typedef struct _worker_t worker_t;
#define STORE_PROGRESS_STEPS    10000
void
    store_keep_alive (store_t *self, worker_t *worker);

//  The file of the store.
const char *
    store_path (store_t *self);

//  The SQLite connection, for the service's own statements.
sqlite3 *
    store_db (store_t *self);

//  Prepares sql once per store and returns the cached statement, reset and
//  with its bindings cleared. NULL, after a log line, if it does not
//  compile. The store owns the statement.
sqlite3_stmt *
    store_stmt (store_t *self, const char *sql);

//  BEGIN IMMEDIATE: takes the write lock now, waiting for other processes
//  up to the busy timeout. Returns 0, or -1 (database busy or broken,
//  logged) with no transaction open. Here and in store_batch_begin the
//  store looks, at most once a second (db_moved), whether its file was
//  deleted or moved: what it wrote would be lost at the next start, so
//  from then on SQLite refuses its every write (SQLITE_READONLY, which
//  store_error words "the database file was deleted or moved; refusing
//  writes"), logged at most every 10 s; reads go on.
int
    store_begin (store_t *self);

//  COMMIT. Returns 0, or -1 (logged; the transaction is rolled back, so
//  nothing is half-written) on failure such as a full disk.
int
    store_commit (store_t *self);

//  ROLLBACK, if a transaction is open.
void
    store_rollback (store_t *self);

//  BEGIN (deferred): a read transaction, for reads that must see one
//  moment; ended with store_rollback. Returns 0 or -1 (logged).
int
    store_begin_read (store_t *self);

//  Group commit. store_batch_begin opens one transaction (BEGIN IMMEDIATE)
//  that the transactions of a burst of requests then share: until
//  store_batch_end, store_begin and store_begin_read open a savepoint,
//  store_commit releases it into the batch and store_rollback undoes it
//  alone. store_batch_end commits the batch: 0, or -1 (logged; nothing
//  of the batch was written). Both return -1 if misused (a batch already
//  open, or none).
int
    store_batch_begin (store_t *self);
int
    store_batch_end (store_t *self);

//  Why the last commit failed (store_batch_end, or store_commit of a
//  transaction), as SQLite said it ("database or disk is full"); kept
//  until the next failure.
const char *
    store_batch_error (store_t *self);

//  Whether the last commit (store_commit of a transaction, or
//  store_batch_end) added events to the outbox: the relay has something
//  to send only then.
bool
    store_emitted (store_t *self);

//  Adds an event to the outbox, inside the current transaction. subject is
//  the key naming what the event is about ("reservation" or "resource"),
//  id its id, correlation the correlation id (NULL: id). data is taken
//  (json_decref'd here), NULL for {}. The event gets a unique id ("e", the
//  time in ms as 12 hex digits, 20 random ones: ids sort by time) and the
//  time now. Returns 0, or -1 (logged): also for an event longer than a
//  publish to the journal carries (store_publish_max), which store_error
//  then names; the caller rolls the change back.
int
    store_emit (store_t *self, const char *type, const char *subject,
                const char *id, const char *correlation, json_t *data);

//  Like store_emit, but a consumer emitting because of an event passes the
//  cause's event id: the new event's id is derived from it and type, so
//  that applying the cause twice could never emit two different events.
int
    store_emit_caused (store_t *self, const char *cause, const char *type,
                       const char *subject, const char *id,
                       const char *correlation, json_t *data);

//  store_emit (cause NULL) or store_emit_caused with data given as the
//  text of a JSON object (borrowed; NULL for {}), which goes into the
//  event as it is: the caller vouches that it is valid JSON (SQLite's
//  json_object, say).
int
    store_emit_text (store_t *self, const char *cause, const char *type,
                     const char *subject, const char *id,
                     const char *correlation, const char *data);

//  Builds the text of a JSON object for store_emit_text: member name
//  with value, the text of a JSON value taken as it is (both NULL: no
//  such member), then the string members of strings, a NULL-terminated
//  list of names each followed by its value (a value NULL leaves its
//  member out). Strings are quoted and escaped here. Returns the text
//  (caller frees), or NULL out of memory or with a name without a value
//  or a value without a name.
char *
    store_object_text (const char *name, const char *value,
                       const char *const *strings);

//  Size of a derived event id, and its NUL.
#define STORE_CAUSED_ID_SIZE 34

//  Writes into id the event id store_emit_caused gives the effect of type
//  caused by event cause: "c" and 32 hex digits, the first 12 those of
//  the cause's time when the cause is an id of store_emit's or of this
//  function's (so that it sorts near its cause), else all 32 from a hash.
//  Returns id.
char *
    store_caused_id (const char *cause, const char *type, char *id);

//  Reads up to limit outbox rows not acknowledged through this store_t,
//  oldest first, as a JSON array of event objects (caller owns). *last_p
//  gets the row id of the last one. Returns NULL when the outbox is empty
//  or on error.
json_t *
    store_outbox_peek (store_t *self, int limit, int64_t *last_p);

//  The same rows as the body of a journal publish, built as text around
//  the stored JSON (no parse): {"events":[...]}, of at most limit rows
//  and, when max_size is not 0, at most max_size bytes (a first row
//  longer than that comes alone). Returns the number of events (0: the
//  outbox is empty) with *text_p a malloc'd text the caller frees,
//  *size_p its length and *last_p the last row id; -1 on error (logged).
int
    store_outbox_text (store_t *self, int limit, size_t max_size,
                       int64_t *last_p, char **text_p, size_t *size_p);

//  The largest body of a publish to the journal, in bytes: what
//  broker/max_message leaves once the request's other frames and the
//  internal key are counted. The relay's publishes fit it, and an event
//  that would not fit alone is refused by the emit functions (-1, and
//  store_error says why), so that it never blocks the outbox.
size_t
    store_publish_max (store_t *self);

//  Records that the journal has acknowledged outbox rows up to and
//  including row id last: this store_t does not read them again, and
//  deletes them in its next write transaction's commit (or
//  store_outbox_prune), which spares the relay a transaction per batch.
void
    store_outbox_ack (store_t *self, int64_t last);

//  How many outbox rows are not acknowledged through this store_t: those
//  a relay has yet to send, or sent without an answer. Returns -1 on
//  error (logged).
int64_t
    store_outbox_unacked (store_t *self);

//  Deletes the acknowledged outbox rows not deleted yet, in a transaction
//  of its own if there are any. Returns 0, or -1 if they could not be
//  (logged; they are tried again).
int
    store_outbox_prune (store_t *self);

//  The seq of the last event applied by consumer name, 0 if none; -1
//  (logged) if the store fails. Inside a transaction this is the value to
//  trust.
int64_t
    store_cursor (store_t *self, const char *name);

//  Sets the cursor of consumer name, inside the current transaction.
int
    store_cursor_set (store_t *self, const char *name, int64_t seq);

//  Runs stmt, whose rows are (position, JSON text), and builds a page of
//  at most limit of them: {"items":[texts...]}, and, when a row more
//  exists, "next":"<mark><position of the last item>". The texts are JSON
//  already, so the page is built as text around them. On success returns
//  0 with *text_p a malloc'd text the caller frees, *size_p its length and
//  *count_p the number of items; on failure -1 with *error_p saying why
//  (owned by the store, valid until its next store_page or static). The statement is reset either way, so
//  that it holds no read transaction.
int
    store_page (store_t *self, sqlite3_stmt *stmt, int64_t limit, char mark,
                char **text_p, size_t *size_p, int64_t *count_p,
                const char **error_p);

//  Parses a "next" cursor made by store_page with mark. Returns 0 and sets
//  *position_p, or -1 if text is not such a cursor.
int
    store_page_after (const char *text, char mark, int64_t *position_p);

//  A store failure in a request handler, in one call: logs "SERVICE:
//  OPERATION SUBJECT: the SQLite error" (at most every 10 s for a file
//  deleted or moved, see store_begin), rolls the transaction back (so
//  nothing is half-written), sets *reply_p (destroying what it held) to a
//  500 saying the same, and returns 500.
int
    store_fail (store_t *self, zframe_t **reply_p, const char *service,
                const char *operation, const char *subject);

//  The last SQLite error message of this connection (for a write refused
//  because the file was deleted or moved, see store_begin, that).
const char *
    store_error (store_t *self);

#ifdef __cplusplus
}
#endif

#endif
