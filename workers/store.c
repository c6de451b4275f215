/*  store.c: a service's SQLite store with its outbox (see store.h).  */

#include "store.h"
#include "checkpoint.h"
#include "db.h"
#include "worker.h"
#include "resv_util.h"
#include <time.h>
#include <ctype.h>
#include <inttypes.h>

//  Statements a store caches; services use a handful each.
#define STMTS_MAX   64
//  How long a transaction waits for another's lock (ms).
#define S_BUSY_TIMEOUT  10000
//  Time digits at the front of an event id (store_emit, store_caused_id).
#define S_ID_TIME_DIGITS 12
//  Why a store whose file was deleted or moved refuses to write.
#define S_MOVED "the database file was deleted or moved; refusing writes"
//  Bytes of a publish's frames besides its body (the protocol's header and
//  command, a request id, service, method and deadline; doc/protocol.md),
//  rounded up. The internal key, when there is one, comes on top. The
//  broker refuses a request over broker/max_message in all (400
//  too_large), and would refuse the same publish at every try.
#define S_PUBLISH_FRAMES    128
//  What a publish's body adds around the events: {"events":[...]}.
#define S_PUBLISH_WRAP      13

struct _store_t {
    sqlite3 *db;                //  The connection
    char *path;                 //  File, for messages
    const char *sql [STMTS_MAX];    //  Cached statements' text (by pointer)
    sqlite3_stmt *stmts [STMTS_MAX];    //  Cached statements
    size_t nstmts;              //  Used entries
    char error [256];           //  A kept copy of an error message
    bool batch;                 //  A group commit is open
    bool savepoint;             //  A request's savepoint is open in it
    bool emitting;              //  The open transaction or batch added
                                //  to the outbox
    bool emitted;               //  The last commit wrote outbox rows
    bool writing;               //  The open transaction may write
    int64_t acked;              //  Outbox rows up to here were acknowledged
    int64_t pruned;             //  and deleted up to here
    db_busy_t busy;             //  How a wait for a lock keeps a worker alive
    resv_log_limit_t disk_log;  //  Writes refused for a cause that lasts
                                //  (a full disk, a moved file), logged
    resv_log_limit_t cursor_log;    //  Cursor reads that failed, logged
    db_moved_t moved;           //  Whether the file was deleted or moved
    size_t publish_max;         //  Largest body of a publish, bytes
    bool emit_refused;          //  The last emit was refused: error says
                                //  why
};

static const char *s_base_schema =
    DB_PAGE_SIZE_SQL                    //  Before anything writes the file
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = NORMAL;"
    "PRAGMA foreign_keys = ON;"
    //  The events actor's checkpointer does the checkpoints.
    CHECKPOINT_SAFETY_SQL
    //  AUTOINCREMENT: an id is never reused, so "delete up to the last id
    //  I sent" can never take a newer row that reused an old id.
    "CREATE TABLE IF NOT EXISTS outbox ("
    "    id    INTEGER PRIMARY KEY AUTOINCREMENT,"
    "    event TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS cursors ("
    "    name TEXT PRIMARY KEY,"
    "    seq  INTEGER NOT NULL);";

store_t *
store_new (resv_cfg_t *cfg, const char *name, const char *schema)
{
    store_t *self = (store_t *) zmalloc (sizeof (store_t));
    const char *dir = resv_cfg_str (cfg, "data/dir", "./var");
    if (db_dir_create (dir)) {
        zsys_error ("store: create directory %s: %s", dir, strerror (errno));
        free (self);
        return NULL;
    }
    self->path = zsys_sprintf ("%s/%s.db", dir, name);
    int64_t max_message = resv_cfg_int (cfg, "broker/max_message",
                                        RESV_MESSAGE_MAX_DEFAULT, 1024, 1 << 30);
    const char *key = resv_cfg_str (cfg, "broker/internal_key", NULL);
    int64_t frames = S_PUBLISH_FRAMES + (key? (int64_t) strlen (key): 0);
    //  A key that leaves no room: every event is refused, and says why.
    self->publish_max = max_message > frames? (size_t) (max_message - frames)
                                            : 1;
    char *error = NULL;
    if (db_open (self->path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                 &self->db) != SQLITE_OK) {
        char why [256];
        zsys_error ("store: open %s: %s", self->path,
                    db_open_error (self->db, why, sizeof why));
        goto failed;
    }
    //  Writers of several processes queue on the lock; 10 s is far past
    //  any transaction of ours, so hitting it means something is stuck.
    self->busy.timeout_ms = S_BUSY_TIMEOUT;
    db_wait_busy (self->db, S_BUSY_TIMEOUT);
    if (db_exec_retry (self->db, s_base_schema, 10000, &error) != SQLITE_OK
    || (schema && db_exec_retry (self->db, schema, 10000, &error) != SQLITE_OK)) {
        zsys_error ("store: create schema in %s: %s", self->path, error);
        sqlite3_free (error);
        goto failed;
    }
    return self;
failed:
    store_destroy (&self);
    return NULL;
}

void
store_destroy (store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_t *self = *self_p;
    for (size_t i = 0; i < self->nstmts; i++)
        sqlite3_finalize (self->stmts [i]);
    sqlite3_close (self->db);
    zstr_free (&self->path);
    free (self);
    *self_p = NULL;
}

//  worker_keepalive, as the busy handler calls it.
static void
s_keepalive (void *worker)
{
    worker_keepalive ((worker_t *) worker);
}

//  The progress handler of a request thread's connection: a statement
//  that runs long (a rebuild's emptying of the view, a list that scans
//  many rows) keeps its worker's heartbeats going. Never interrupts.
static int
s_progress (void *worker)
{
    s_keepalive (worker);
    return 0;
}

void
store_keep_alive (store_t *self, worker_t *worker)
{
    if (!self)
        return;
    self->busy.waiting = worker? s_keepalive: NULL;
    self->busy.arg = worker;
    db_wait_busy_calling (self->db, &self->busy);
    sqlite3_progress_handler (self->db, STORE_PROGRESS_STEPS,
                              worker? s_progress: NULL, worker);
}

const char *
store_path (store_t *self)
{
    return self->path;
}

sqlite3 *
store_db (store_t *self)
{
    return self->db;
}

//  Whether the last failure is a write refused because the file was
//  deleted or moved (see s_check_file).
static bool
s_moved_error (store_t *self)
{
    return self->moved.moved
        && (sqlite3_errcode (self->db) & 0xff) == SQLITE_READONLY;
}

int
store_fail (store_t *self, zframe_t **reply_p, const char *service,
            const char *operation, const char *subject)
{
    //  A copy first: the rollback may replace the message.
    char error [256];
    snprintf (error, sizeof error, "%s", store_error (self));
    bool moved = s_moved_error (self);
    store_rollback (self);
    //  A moved file refuses every request's writes: one line every 10 s.
    unsigned skipped;
    if (!moved)
        zsys_error ("%s: %s %.64s: %s", service, operation, subject, error);
    else
    if (resv_log_due (&self->disk_log, 10000, &skipped))
        zsys_error ("%s: %s %.64s: %s: %s (%u more such since the last line)",
                    service, operation, subject, self->path, error, skipped);
    return worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                        "%s: %s %.64s: %s", service, operation, subject, error);
}

const char *
store_error (store_t *self)
{
    if (self->emit_refused)
        return self->error;
    return s_moved_error (self)? S_MOVED: sqlite3_errmsg (self->db);
}

size_t
store_publish_max (store_t *self)
{
    return self->publish_max;
}

sqlite3_stmt *
store_stmt (store_t *self, const char *sql)
{
    //  Statements are cached by the address of their text: callers pass
    //  string literals, so the same call site finds the same entry.
    for (size_t i = 0; i < self->nstmts; i++)
        if (self->sql [i] == sql) {
            sqlite3_reset (self->stmts [i]);
            sqlite3_clear_bindings (self->stmts [i]);
            return self->stmts [i];
        }
    sqlite3_stmt *stmt;
    if (sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL) != SQLITE_OK) {
        zsys_error ("store: %s: prepare '%s': %s", self->path, sql,
                    sqlite3_errmsg (self->db));
        return NULL;
    }
    if (self->nstmts == STMTS_MAX) {
        //  A service with more distinct statements than this needs a
        //  bigger cache: say so rather than evict one that may be in use.
        zsys_error ("store: %s: more than %d statements", self->path, STMTS_MAX);
        sqlite3_finalize (stmt);
        return NULL;
    }
    self->sql [self->nstmts] = sql;
    self->stmts [self->nstmts++] = stmt;
    return stmt;
}

//  Runs sql, one statement, prepared once and kept like the services'
//  own: transactions begin and end several times per request, and
//  sqlite3_exec would compile the text anew each time. Returns 0, or -1
//  after a log line naming what (when what is not NULL).
static int
s_exec (store_t *self, const char *sql, const char *what)
{
    sqlite3_stmt *stmt = store_stmt (self, sql);
    int rc = stmt? sqlite3_step (stmt): SQLITE_ERROR;
    //  A full or failing disk, or a file deleted or moved (s_check_file),
    //  refuses every write until it is fixed, and the callers retry: one
    //  line every 10 s says so.
    unsigned skipped;
    bool disk = (rc & 0xff) == SQLITE_FULL || (rc & 0xff) == SQLITE_IOERR
             || s_moved_error (self);
    if (rc == SQLITE_DONE || !what)
        ;
    else
    if (!disk)
        zsys_error ("store: %s: %s: %s", self->path, what,
                    sqlite3_errmsg (self->db));
    else
    if (resv_log_due (&self->disk_log, 10000, &skipped))
        zsys_error ("store: %s: %s: %s (%u more such since the last line)",
                    self->path, what, store_error (self), skipped);
    if (stmt)
        sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  Inside a batch, a request's transaction is a savepoint.
static int
s_savepoint (store_t *self)
{
    if (self->savepoint) {
        zsys_error ("store: %s: begin inside a transaction", self->path);
        return -1;
    }
    if (s_exec (self, "SAVEPOINT request", "begin"))
        return -1;
    self->savepoint = true;
    return 0;
}

//  Before a write transaction or batch begins, looks (at most once a
//  second, see db_moved) whether the file was deleted or moved: all that
//  is written to it from then on would be lost at the next start. For as
//  long as it is, the connection is read-only (PRAGMA query_only), so
//  that SQLite refuses every write, in a transaction or not, and reads
//  go on.
static void
s_check_file (store_t *self)
{
    bool was = self->moved.moved;
    if (db_moved (self->db, &self->moved) == was)
        return;
    sqlite3_exec (self->db, was? "PRAGMA query_only = 0": "PRAGMA query_only = 1",
                  NULL, NULL, NULL);
    if (was)
        zsys_info ("store: %s: the database file is back; writes go on",
                   self->path);
}

int
store_begin (store_t *self)
{
    self->emit_refused = false;
    if (self->batch)
        return s_savepoint (self);
    s_check_file (self);
    int rc = s_exec (self, "BEGIN IMMEDIATE", "begin");
    self->writing = rc == 0;
    self->emitting = false;
    return rc;
}

int
store_begin_read (store_t *self)
{
    if (self->batch)
        return s_savepoint (self);
    self->writing = false;
    self->emitting = false;
    return s_exec (self, "BEGIN", "begin");
}

//  Inside a write transaction about to commit: deletes the outbox rows
//  acknowledged since the last prune, so that the relay needs no
//  transaction of its own for them. Returns the row id they go up to once
//  committed, or 0 when there are none (or the delete failed: the next
//  commit tries again).
static int64_t
s_prune_in (store_t *self)
{
    if (!self->writing || self->acked <= self->pruned)
        return 0;
    sqlite3_stmt *stmt = store_stmt (self, "DELETE FROM outbox WHERE id <= ?1");
    if (!stmt)
        return 0;
    sqlite3_bind_int64 (stmt, 1, self->acked);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        zsys_warning ("store: %s: prune outbox: %s", self->path,
                      sqlite3_errmsg (self->db));
        return 0;
    }
    return self->acked;
}

//  Commits the open transaction (what names it in the log), the
//  acknowledged outbox rows pruned in it. Returns 0, or -1 rolled back,
//  SQLite's message kept for store_batch_error.
static int
s_commit (store_t *self, const char *what)
{
    self->emitted = false;
    int64_t pruned = s_prune_in (self);
    if (s_exec (self, "COMMIT", what)) {
        //  A copy first: the rollback replaces SQLite's message.
        snprintf (self->error, sizeof self->error, "%s", store_error (self));
        store_rollback (self);
        return -1;
    }
    self->emitted = self->emitting;
    self->writing = false;
    if (pruned > self->pruned)
        self->pruned = pruned;
    return 0;
}

int
store_commit (store_t *self)
{
    if (self->batch) {
        if (!self->savepoint)
            return 0;
        self->savepoint = false;
        //  A release cannot fail on disk: it only merges into the batch.
        return s_exec (self, "RELEASE request", "commit");
    }
    return s_commit (self, "commit");
}

void
store_rollback (store_t *self)
{
    self->emit_refused = false;
    if (self->batch) {
        if (self->savepoint) {
            self->savepoint = false;
            if (s_exec (self, "ROLLBACK TO request", "roll back") == 0)
                s_exec (self, "RELEASE request", "roll back");
        }
        return;
    }
    self->writing = false;
    self->emitting = false;
    if (!sqlite3_get_autocommit (self->db))
        s_exec (self, "ROLLBACK", NULL);
}

int
store_batch_begin (store_t *self)
{
    if (self->batch || !sqlite3_get_autocommit (self->db))
        return -1;
    s_check_file (self);
    if (s_exec (self, "BEGIN IMMEDIATE", "begin a batch"))
        return -1;
    self->batch = true;
    self->savepoint = false;
    self->writing = true;
    self->emitting = false;
    return 0;
}

int
store_batch_end (store_t *self)
{
    if (!self->batch) {
        snprintf (self->error, sizeof self->error, "no batch is open");
        return -1;
    }
    if (self->savepoint)
        store_rollback (self);  //  A request left it open: not committed
    self->batch = false;
    return s_commit (self, "commit a batch");
}

const char *
store_batch_error (store_t *self)
{
    return self->error;
}

bool
store_emitted (store_t *self)
{
    return self->emitted;
}

//  A text being built, for an event's envelope.
typedef struct {
    char *data;
    size_t used;
    size_t size;
    bool failed;                //  Out of memory: data is gone
} s_text_t;

static void
s_text_add (s_text_t *self, const char *bytes, size_t count)
{
    if (self->failed)
        return;
    if (self->used + count + 1 > self->size) {
        size_t size = (self->used + count + 1) * 2;
        char *data = (char *) realloc (self->data, size);
        if (!data) {
            free (self->data);
            self->data = NULL;
            self->failed = true;
            return;
        }
        self->data = data;
        self->size = size;
    }
    memcpy (self->data + self->used, bytes, count);
    self->used += count;
    self->data [self->used] = 0;
}

//  Adds string (UTF-8) as a JSON string, quoted and escaped.
static void
s_text_quote (s_text_t *self, const char *string)
{
    s_text_add (self, "\"", 1);
    const char *run = string;
    for (const char *at = string; *at; at++) {
        unsigned char c = (unsigned char) *at;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        s_text_add (self, run, (size_t) (at - run));
        char escape [8];
        if (c == '"' || c == '\\')
            snprintf (escape, sizeof escape, "\\%c", c);
        else
            snprintf (escape, sizeof escape, "\\u%04x", c);
        s_text_add (self, escape, strlen (escape));
        run = at + 1;
    }
    s_text_add (self, run, strlen (run));
    s_text_add (self, "\"", 1);
}

char *
store_object_text (const char *name, const char *value,
                    const char *const *strings)
{
    if (!name != !value)
        return NULL;
    s_text_t text = { NULL, 0, 0, false };
    s_text_add (&text, "{", 1);
    bool first = true;
    if (name) {
        s_text_quote (&text, name);
        s_text_add (&text, ":", 1);
        s_text_add (&text, value, strlen (value));
        first = false;
    }
    for (size_t index = 0; strings && strings [index]; index += 2) {
        if (!strings [index + 1])
            continue;
        if (!first)
            s_text_add (&text, ",", 1);
        first = false;
        s_text_quote (&text, strings [index]);
        s_text_add (&text, ":", 1);
        s_text_quote (&text, strings [index + 1]);
    }
    s_text_add (&text, "}", 1);
    return text.data;
}

//  Writes the event into the outbox: its envelope around data, the text
//  of a JSON object (NULL: {}).
static int
s_emit (store_t *self, const char *event_id, const char *type,
        const char *subject, const char *id, const char *correlation,
        const char *data)
{
    char now [RESV_TIME_SIZE];
    s_text_t text = { NULL, 0, 0, false };
    s_text_add (&text, "{\"id\":", 6);
    s_text_quote (&text, event_id);
    s_text_add (&text, ",\"type\":", 8);
    s_text_quote (&text, type);
    s_text_add (&text, ",\"at\":", 6);
    s_text_quote (&text, resv_time_now (now));
    s_text_add (&text, ",", 1);
    s_text_quote (&text, subject);
    s_text_add (&text, ":", 1);
    s_text_quote (&text, id);
    s_text_add (&text, ",\"correlation_id\":", 18);
    s_text_quote (&text, correlation? correlation: id);
    s_text_add (&text, ",\"data\":", 8);
    s_text_add (&text, data? data: "{}", data? strlen (data): 2);
    s_text_add (&text, "}", 1);
    if (text.failed) {
        zsys_error ("store: emit %s: cannot build the event: out of memory", type);
        return -1;
    }
    //  One the journal could never take would stay first in the outbox
    //  for good, and hold every event after it: the change is refused.
    if (text.used + S_PUBLISH_WRAP > self->publish_max) {
        snprintf (self->error, sizeof self->error, "the event %s is %zu "
                  "bytes, more than a publish to the journal carries (%zu, "
                  "from broker/max_message)", type, text.used,
                  self->publish_max - S_PUBLISH_WRAP);
        self->emit_refused = true;
        zsys_error ("store: %s: emit %s for %s: %s", self->path, type, id,
                    self->error);
        free (text.data);
        return -1;
    }
    sqlite3_stmt *stmt = store_stmt (self, "INSERT INTO outbox (event) VALUES (?1)");
    if (!stmt) {
        free (text.data);
        return -1;
    }
    sqlite3_bind_text (stmt, 1, text.data, (int) text.used, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    free (text.data);
    if (rc != SQLITE_DONE) {
        zsys_error ("store: %s: emit %s for %s: %s", self->path, type, id,
                    sqlite3_errmsg (self->db));
        return -1;
    }
    self->emitting = true;
    return 0;
}

//  A fresh event id: "e", the time in ms as 12 hex digits, then 20 random
//  ones: ids of events emitted together sort together, so the journal's
//  index of ids grows at its end instead of in a random page per event.
//  Returns 0, or -1 (logged).
static int
s_fresh_id (char *event_id, size_t size, const char *type)
{
    snprintf (event_id, size, "e%012" PRIx64,
              (uint64_t) (resv_time_ms () & 0xffffffffffff));
    if (resv_random_hex (event_id + 1 + S_ID_TIME_DIGITS, 10)) {
        zsys_error ("store: emit %s: no random source", type);
        return -1;
    }
    return 0;
}

int
store_emit_text (store_t *self, const char *cause, const char *type,
                 const char *subject, const char *id,
                 const char *correlation, const char *data)
{
    char event_id [STORE_CAUSED_ID_SIZE > 40? STORE_CAUSED_ID_SIZE: 40];
    if (cause)
        store_caused_id (cause, type, event_id);
    else
    if (s_fresh_id (event_id, sizeof event_id, type))
        return -1;
    return s_emit (self, event_id, type, subject, id, correlation, data);
}

//  store_emit_text of data (taken) encoded, NULL for {}.
static int
s_emit_json (store_t *self, const char *cause, const char *type,
             const char *subject, const char *id, const char *correlation,
             json_t *data)
{
    char *text = NULL;
    if (data) {
        text = json_dumps (data, JSON_COMPACT);
        json_decref (data);
        if (!text) {
            zsys_error ("store: emit %s: cannot encode its data", type);
            return -1;
        }
    }
    int rc = store_emit_text (self, cause, type, subject, id, correlation,
                              text);
    free (text);
    return rc;
}

int
store_emit (store_t *self, const char *type, const char *subject,
            const char *id, const char *correlation, json_t *data)
{
    return s_emit_json (self, NULL, type, subject, id, correlation, data);
}

char *
store_caused_id (const char *cause, const char *type, char *id)
{
    //  "c" and a hash of the cause and the type: a fixed length however
    //  long the chain of causes, and never equal to an "e" id. When the
    //  cause is an id of store_emit's or of this function's, the new id
    //  keeps its time digits in front of 20 digits of the hash, so that
    //  a chain of events sorts near its first one (see store_emit).
    const char *parts [] = { cause, type };
    char hash [RESV_HASH_SIZE];
    resv_hash128 (parts, 2, hash);
    size_t digits = 0;
    if (cause [0] == 'e' || cause [0] == 'c')
        while (digits < S_ID_TIME_DIGITS && isxdigit ((unsigned char) cause [1 + digits]))
            digits++;
    id [0] = 'c';
    if (digits == S_ID_TIME_DIGITS && strlen (cause) == STORE_CAUSED_ID_SIZE - 1) {
        memcpy (id + 1, cause + 1, S_ID_TIME_DIGITS);
        memcpy (id + 1 + S_ID_TIME_DIGITS, hash, 32 - S_ID_TIME_DIGITS);
        id [STORE_CAUSED_ID_SIZE - 1] = 0;
    }
    else
        memcpy (id + 1, hash, 33);
    return id;
}

int
store_emit_caused (store_t *self, const char *cause, const char *type,
                   const char *subject, const char *id,
                   const char *correlation, json_t *data)
{
    return s_emit_json (self, cause, type, subject, id, correlation, data);
}

json_t *
store_outbox_peek (store_t *self, int limit, int64_t *last_p)
{
    sqlite3_stmt *stmt = store_stmt (self,
        "SELECT id, event FROM outbox WHERE id > ?2 ORDER BY id LIMIT ?1");
    if (!stmt)
        return NULL;
    sqlite3_bind_int (stmt, 1, limit);
    sqlite3_bind_int64 (stmt, 2, self->acked);
    json_t *events = json_array ();
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        json_t *event = json_loads ((const char *) sqlite3_column_text (stmt, 1), 0, NULL);
        if (event)
            json_array_append_new (events, event);
        *last_p = sqlite3_column_int64 (stmt, 0);
    }
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        zsys_error ("store: %s: read outbox: %s", self->path, sqlite3_errmsg (self->db));
    if (json_array_size (events) == 0) {
        json_decref (events);
        return NULL;
    }
    return events;
}

//  Runs stmt, whose rows are (position, JSON text), into the text
//  {"KEY":[texts...]} of at most limit of them and, when max_size is not
//  0, of at most max_size bytes unless the first item alone is longer
//  (it then goes alone), and with mark (not 0), when a row more exists,
//  "next":"<mark><position of the last item>".
//  The texts are JSON already, so the text is built around them. Returns
//  0 with *text_p (malloc'd), *size_p, *count_p and *last_p (the position
//  of the last item); or -1 with *error_p saying why (owned by the store
//  or static). The statement is reset either way.
static int
s_page (store_t *self, sqlite3_stmt *stmt, const char *key, int64_t limit,
        size_t max_size, char mark, char **text_p, size_t *size_p,
        int64_t *count_p, int64_t *last_p, const char **error_p)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out) {
        sqlite3_reset (stmt);
        *error_p = "out of memory";
        return -1;
    }
    fprintf (out, "{\"%s\":[", key);
    //  Bytes of the text so far, and of its end ("]}") still to come.
    size_t used = strlen (key) + 7;
    int64_t count = 0, last = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW && count < limit) {
        const char *item = (const char *) sqlite3_column_text (stmt, 1);
        if (!item) {
            rc = SQLITE_NOMEM;  //  The only way a NOT NULL text is NULL
            break;
        }
        size_t item_size = (size_t) sqlite3_column_bytes (stmt, 1);
        if (max_size && count && used + 1 + item_size > max_size)
            break;              //  rc is SQLITE_ROW: there is more
        used += item_size + (count? 1: 0);
        fputs (count++? ",": "", out);
        fputs (item, out);
        last = sqlite3_column_int64 (stmt, 0);
    }
    //  A row past the limit means there is more: say where to go on.
    if (rc == SQLITE_ROW && mark)
        fprintf (out, "],\"next\":\"%c%" PRId64 "\"}", mark, last);
    else
        fputs ("]}", out);
    bool failed = rc != SQLITE_ROW && rc != SQLITE_DONE;
    //  A copy of the message first: the reset frees SQLite's own.
    if (failed) {
        snprintf (self->error, sizeof self->error, "%s",
                  rc == SQLITE_NOMEM? "out of memory": store_error (self));
        *error_p = self->error;
    }
    sqlite3_reset (stmt);
    if (fclose (out) || failed) {
        if (!failed)
            *error_p = "out of memory";
        free (text);
        return -1;
    }
    *text_p = text;
    *size_p = size;
    *count_p = count;
    *last_p = last;
    return 0;
}

int
store_outbox_text (store_t *self, int limit, size_t max_size,
                   int64_t *last_p, char **text_p, size_t *size_p)
{
    *text_p = NULL;
    *size_p = 0;
    sqlite3_stmt *stmt = store_stmt (self,
        "SELECT id, event FROM outbox WHERE id > ?2 ORDER BY id LIMIT ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_int (stmt, 1, limit);
    sqlite3_bind_int64 (stmt, 2, self->acked);
    char *text;
    size_t size;
    int64_t count, last = 0;
    const char *error;
    if (s_page (self, stmt, "events", limit, max_size, 0, &text, &size,
                &count, &last, &error)) {
        zsys_error ("store: %s: read outbox: %s", self->path, error);
        return -1;
    }
    if (count == 0) {
        free (text);
        return 0;
    }
    *text_p = text;
    *size_p = size;
    *last_p = last;
    return (int) count;
}

void
store_outbox_ack (store_t *self, int64_t last)
{
    if (last > self->acked)
        self->acked = last;
}

int64_t
store_outbox_unacked (store_t *self)
{
    sqlite3_stmt *stmt = store_stmt (self,
        "SELECT count(*) FROM outbox WHERE id > ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_int64 (stmt, 1, self->acked);
    int64_t count = -1;
    if (sqlite3_step (stmt) == SQLITE_ROW)
        count = sqlite3_column_int64 (stmt, 0);
    else
        zsys_error ("store: %s: count the outbox: %s", self->path,
                    sqlite3_errmsg (self->db));
    sqlite3_reset (stmt);
    return count;
}

int
store_outbox_prune (store_t *self)
{
    if (self->acked <= self->pruned)
        return 0;
    //  The commit prunes (s_prune_in).
    if (store_begin (self) || store_commit (self))
        return -1;
    return self->acked <= self->pruned? 0: -1;
}

int64_t
store_cursor (store_t *self, const char *name)
{
    sqlite3_stmt *stmt = store_stmt (self, "SELECT seq FROM cursors WHERE name = ?1");
    int rc = SQLITE_ERROR;
    int64_t seq = 0;
    if (stmt) {
        sqlite3_bind_text (stmt, 1, name, -1, SQLITE_STATIC);
        rc = sqlite3_step (stmt);
        if (rc == SQLITE_ROW)
            seq = sqlite3_column_int64 (stmt, 0);
        sqlite3_reset (stmt);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        //  Every apply reads it: a cause that lasts would flood the log.
        unsigned skipped;
        if (resv_log_due (&self->cursor_log, 10000, &skipped))
            zsys_error ("store: %s: read the cursor %s: %s (%u more "
                        "failures since the last line)", self->path, name,
                        store_error (self), skipped);
        return -1;
    }
    return seq;
}

int
store_cursor_set (store_t *self, const char *name, int64_t seq)
{
    sqlite3_stmt *stmt = store_stmt (self,
        "INSERT INTO cursors (name, seq) VALUES (?1, ?2) "
        "ON CONFLICT (name) DO UPDATE SET seq = excluded.seq");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 2, seq);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        zsys_error ("store: %s: move cursor %s: %s", self->path, name,
                    sqlite3_errmsg (self->db));
        return -1;
    }
    return 0;
}

int
store_page (store_t *self, sqlite3_stmt *stmt, int64_t limit, char mark,
            char **text_p, size_t *size_p, int64_t *count_p,
            const char **error_p)
{
    int64_t last;
    return s_page (self, stmt, "items", limit, 0, mark, text_p, size_p, count_p,
                   &last, error_p);
}

int
store_page_after (const char *text, char mark, int64_t *position_p)
{
    if (text [0] != mark || !text [1] || strlen (text) > 19)
        return -1;
    int64_t position = 0;
    for (const char *c = text + 1; *c; c++) {
        if (*c < '0' || *c > '9')
            return -1;
        position = position * 10 + (*c - '0');
    }
    *position_p = position;
    return 0;
}
