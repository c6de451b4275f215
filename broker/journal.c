/*  journal.c: the event journal on SQLite (see journal.h).  */

#include "journal.h"
#include "jscan.h"
#include "checkpoint.h"
#include "db.h"
#include "resv_util.h"
#include <czmq.h>
#include <sqlite3.h>
#include <errno.h>

#define S_TEXT_(x)          #x
#define S_TEXT(x)           S_TEXT_ (x)

struct _journal_t {
    sqlite3 *db;                //  The open journal file
    sqlite3_stmt *insert;       //  INSERT OR IGNORE of one event
    sqlite3_stmt *find;         //  seq of an event id
    sqlite3_stmt *read_all;     //  Events from a seq
    sqlite3_stmt *read_type;    //  Events from a seq with a type prefix,
                                //  through the type index
    sqlite3_stmt *read_recent;  //  The same, walking the seqs
    sqlite3_stmt *read_exact;   //  Events from a seq of one type
    sqlite3_stmt *begin;        //  BEGIN IMMEDIATE
    sqlite3_stmt *commit;       //  COMMIT
    int64_t last;               //  Newest seq
    db_moved_t moved;           //  Whether the file was deleted or moved
    zhashx_t *families;         //  Newest seq of each type family
    zhashx_t *types;            //  Newest seq of each type
    int lock;                   //  PATH.lock, held with flock; -1 if none
};

//  A read by type prefix from fewer than this many events before the end
//  walks the seqs rather than the type index.
#define JOURNAL_WALK_MAX    20000

static const char *s_schema =
    DB_PAGE_SIZE_SQL                    //  Before anything writes the file
    "PRAGMA journal_mode = WAL;"
    "PRAGMA synchronous = NORMAL;"
    //  The broker's checkpointer does the checkpoints.
    CHECKPOINT_SAFETY_SQL
    "CREATE TABLE IF NOT EXISTS events ("
    "    seq  INTEGER PRIMARY KEY,"         //  Gap-free: max + 1, no deletes
    "    id   TEXT NOT NULL UNIQUE,"
    "    type TEXT NOT NULL,"
    "    body TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS events_type ON events (type, seq);";

static int
s_prepare (journal_t *self, const char *sql, sqlite3_stmt **stmt_p)
{
    if (sqlite3_prepare_v2 (self->db, sql, -1, stmt_p, NULL) != SQLITE_OK) {
        zsys_error ("journal: prepare '%s': %s", sql, sqlite3_errmsg (self->db));
        return -1;
    }
    return 0;
}

//  Sets the newest seq of key in newest (a family or a type) to seq, if
//  newer; returns the one it had, 0 if none.
static int64_t
s_newest_set (zhashx_t *newest, const char *key, size_t size, int64_t seq)
{
    char name [JOURNAL_TYPE_MAX + 1];
    if (size > JOURNAL_TYPE_MAX)
        size = JOURNAL_TYPE_MAX;
    memcpy (name, key, size);
    name [size] = 0;
    int64_t *value = (int64_t *) zhashx_lookup (newest, name);
    if (!value) {
        value = (int64_t *) zmalloc (sizeof (int64_t));
        zhashx_insert (newest, name, value);
    }
    int64_t previous = *value;
    if (seq > *value)
        *value = seq;
    return previous;
}

//  Records seq as the newest of its type and of its type's family; sets
//  *prev_p and *prev_type_p (if not NULL) to the ones before, 0 if none.
static void
s_newest (journal_t *self, const char *type, int64_t seq, int64_t *prev_p,
          int64_t *prev_type_p)
{
    int64_t prev = s_newest_set (self->families, type,
                                 resv_type_family (type), seq);
    int64_t prev_type = s_newest_set (self->types, type, strlen (type), seq);
    if (prev_p)
        *prev_p = prev;
    if (prev_type_p)
        *prev_type_p = prev_type;
}

static void
s_family_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

//  Finds the newest seq of every type and family: a walk over the distinct types
//  (one index seek each, through events_type), and the newest seq of each
//  (another). A few seeks per type, however long the journal.
static int
s_families_load (journal_t *self)
{
    self->families = zhashx_new ();
    zhashx_set_destructor (self->families, s_family_free);
    self->types = zhashx_new ();
    zhashx_set_destructor (self->types, s_family_free);
    sqlite3_stmt *next_type, *newest;
    if (s_prepare (self, "SELECT type FROM events WHERE type > ?1 "
                         "ORDER BY type LIMIT 1", &next_type))
        return -1;
    if (s_prepare (self, "SELECT max (seq) FROM events WHERE type = ?1",
                   &newest)) {
        sqlite3_finalize (next_type);
        return -1;
    }
    char type [JOURNAL_TYPE_MAX + 1] = "";
    int rc;
    while (true) {
        sqlite3_bind_text (next_type, 1, type, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step (next_type);
        if (rc != SQLITE_ROW)
            break;
        snprintf (type, sizeof type, "%s", sqlite3_column_text (next_type, 0));
        sqlite3_reset (next_type);
        sqlite3_bind_text (newest, 1, type, -1, SQLITE_STATIC);
        rc = sqlite3_step (newest);
        if (rc != SQLITE_ROW)
            break;
        s_newest (self, type, sqlite3_column_int64 (newest, 0), NULL, NULL);
        sqlite3_reset (newest);
    }
    sqlite3_finalize (next_type);
    sqlite3_finalize (newest);
    if (rc != SQLITE_DONE) {
        zsys_error ("journal: read the types: %s", sqlite3_errmsg (self->db));
        return -1;
    }
    return 0;
}

//  Takes the journal's lock, a file beside it, for as long as the journal
//  is open. The journal has one writer: it numbers events from the newest
//  seq it read when it opened, so a second broker on the same data
//  directory would journal events under seqs the first one gives too, and
//  consumers would skip them. A lock of its own (flock), not SQLite's,
//  which lets any number of connections write in turn. Returns 0, or -1
//  after a log line.
static int
s_lock (journal_t *self, const char *path)
{
    char *name = zsys_sprintf ("%s.lock", path);
    if (!name) {
        zsys_error ("journal: lock %s: out of memory", path);
        return -1;
    }
    self->lock = db_lock (name);
    if (self->lock == -1 && errno == EWOULDBLOCK)
        zsys_error ("journal: %s is in use by another broker (%s is "
                    "locked); one broker per data directory", path, name);
    else
    if (self->lock == -1)
        zsys_error ("journal: lock %s: %s", name, strerror (errno));
    zstr_free (&name);
    return self->lock == -1? -1: 0;
}

journal_t *
journal_new (const char *path)
{
    journal_t *self = (journal_t *) zmalloc (sizeof (journal_t));
    char *error = NULL;
    self->lock = -1;
    if (s_lock (self, path))
        goto failed;
    if (db_open (path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &self->db)
        != SQLITE_OK) {
        char why [256];
        zsys_error ("journal: open %s: %s", path,
                    db_open_error (self->db, why, sizeof why));
        goto failed;
    }
    db_wait_busy (self->db, 5000);
    if (db_exec_retry (self->db, s_schema, 5000, &error) != SQLITE_OK) {
        zsys_error ("journal: create schema in %s: %s", path, error);
        sqlite3_free (error);
        goto failed;
    }
    if (s_prepare (self, "INSERT OR IGNORE INTO events (id, type, body) "
                         "VALUES (?1, ?2, ?3)", &self->insert)
    ||  s_prepare (self, "SELECT seq FROM events WHERE id = ?1", &self->find)
    ||  s_prepare (self, "SELECT seq, body FROM events WHERE seq >= ?1 "
                         "ORDER BY seq LIMIT ?2", &self->read_all)
    ||  s_prepare (self, "SELECT seq, body FROM events WHERE seq >= ?1 "
                         "AND type >= ?2 AND type < ?3 ORDER BY seq LIMIT ?4",
                   &self->read_type)
    ||  s_prepare (self, "SELECT seq, body FROM events WHERE seq >= ?1 "
                         "AND +type >= ?2 AND +type < ?3 ORDER BY seq LIMIT ?4",
                   &self->read_recent)
    ||  s_prepare (self, "SELECT seq, body FROM events WHERE type = ?2 "
                         "AND seq >= ?1 ORDER BY seq LIMIT ?3", &self->read_exact)
    ||  s_prepare (self, "BEGIN IMMEDIATE", &self->begin)
    ||  s_prepare (self, "COMMIT", &self->commit))
        goto failed;
    sqlite3_stmt *last;
    if (s_prepare (self, "SELECT coalesce (max (seq), 0) FROM events", &last))
        goto failed;
    if (sqlite3_step (last) == SQLITE_ROW)
        self->last = sqlite3_column_int64 (last, 0);
    sqlite3_finalize (last);
    if (s_families_load (self))
        goto failed;
    return self;
failed:
    journal_destroy (&self);
    return NULL;
}

void
journal_destroy (journal_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    journal_t *self = *self_p;
    sqlite3_finalize (self->insert);
    sqlite3_finalize (self->find);
    sqlite3_finalize (self->read_all);
    sqlite3_finalize (self->read_type);
    sqlite3_finalize (self->read_recent);
    sqlite3_finalize (self->read_exact);
    sqlite3_finalize (self->begin);
    sqlite3_finalize (self->commit);
    sqlite3_close (self->db);
    zhashx_destroy (&self->families);
    zhashx_destroy (&self->types);
    if (self->lock != -1)
        close (self->lock);     //  Which releases the flock
    free (self);
    *self_p = NULL;
}

int64_t
journal_last (journal_t *self)
{
    return self->last;
}

//  What journal_scan has read of an event's members so far.
typedef struct {
    journal_event_t *event;
    bool id_ok;                 //  A good "id" was seen
    bool type_ok;               //  A good "type" was seen
    const char *other;          //  The first other fault, in text order
} s_fields_t;

//  Decodes a string member into out (room for max bytes and a NUL);
//  false unless it is a string of 1 to max bytes.
static bool
s_field (const char *value, size_t size, jscan_kind_t kind, char *out,
         size_t max)
{
    if (kind != JSCAN_STRING)
        return false;
    size_t length = jscan_string (value, size, out, out? max + 1: 0);
    return length > 0 && length <= max;
}

static bool
s_member (void *arg, const char *key, size_t key_size, const char *value,
          size_t value_size, jscan_kind_t kind)
{
    s_fields_t *self = (s_fields_t *) arg;
    journal_event_t *event = self->event;
    if (key_size != strlen (key))
        key = "";               //  Too long to be a known key
    if (streq (key, "id"))
        self->id_ok = s_field (value, value_size, kind, event->id,
                               JOURNAL_ID_MAX);
    else
    if (streq (key, "type"))
        self->type_ok = s_field (value, value_size, kind, event->type,
                                 JOURNAL_TYPE_MAX);
    else
    if (streq (key, "data")) {
        event->has_data = true;
        if (kind != JSCAN_OBJECT && !self->other)
            self->other = "event data must be an object";
    }
    else
    if (streq (key, "at") || streq (key, "correlation_id")
    ||  streq (key, "reservation") || streq (key, "resource")) {
        if (streq (key, "at"))
            event->has_at = true;
        if (!s_field (value, value_size, kind, NULL, 128) && !self->other)
            self->other = "event fields must be strings of 1 to 128 characters";
    }
    else
    if (!self->other)
        self->other = "unknown event field";
    return true;                //  Reads on: the whole text must be valid
}

size_t
journal_scan (const char *text, size_t size, journal_event_t *event,
              const char **why_p)
{
    memset (event, 0, sizeof *event);
    s_fields_t fields = { event, false, false, NULL };
    size_t used = jscan_object_max (text, size, JOURNAL_DEPTH_MAX, s_member,
                                    &fields);
    const char *why = NULL;
    if (!used && jscan_object (text, size, NULL, NULL))
        why = "an event nests more than " S_TEXT (JOURNAL_DEPTH_MAX)
              " levels";
    else
    if (!used)
        why = "an event is not an object";
    else
    if (!fields.id_ok)
        why = "event id must be a string of 1 to 64 characters";
    else
    if (!fields.type_ok)
        why = "event type must be a string of 1 to 64 characters";
    else {
        for (const char *c = event->type; *c && !why; c++)
            if (!((*c >= 'a' && *c <= 'z') || *c == '.' || *c == '_'))
                why = "event type must be lowercase words and dots";
        if (!why)
            why = fields.other;
    }
    *why_p = why;
    if (why)
        return 0;
    event->text = text;
    event->size = used;
    return used;
}

static int
s_split_fail (char **error_p, journal_event_t *events, const char *fmt, ...)
{
    char message [300];
    va_list args;
    va_start (args, fmt);
    vsnprintf (message, sizeof message, fmt, args);
    va_end (args);
    free (events);
    *error_p = strdup (message);
    return -2;
}

int
journal_split (const char *body, size_t size, journal_event_t **events_p,
               size_t *count_p, char **error_p)
{
    static const char head [] = "{\"events\":[";
    *events_p = NULL;
    *count_p = 0;
    *error_p = NULL;
    size_t at = sizeof head - 1;
    if (size < at || memcmp (body, head, at) || (at < size && body [at] == ']'))
        return s_split_fail (error_p, NULL, "events must be a non-empty array");
    journal_event_t *events = NULL;
    size_t count = 0, max = 0;
    while (true) {
        if (count == max) {
            max = max? max * 2: 16;
            journal_event_t *grown = (journal_event_t *) realloc (events,
                                         max * sizeof (journal_event_t));
            if (!grown)
                return s_split_fail (error_p, events, "out of memory");
            events = grown;
        }
        const char *why;
        size_t used = journal_scan (body + at, size - at, &events [count], &why);
        if (!used)
            return s_split_fail (error_p, events, "event %zu: %s", count, why);
        count++;
        at += used;
        if (at < size && body [at] == ',') {
            at++;
            continue;
        }
        if (size - at == 2 && body [at] == ']' && body [at + 1] == '}')
            break;
        return s_split_fail (error_p, events,
                             "a publish must be {\"events\":[...]}");
    }
    *events_p = events;
    *count_p = count;
    return 0;
}

//  Steps a statement that returns no rows, and resets it: the result code
//  of the step (its message stays in the connection).
static int
s_run (sqlite3_stmt *stmt)
{
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc;
}

static int
s_fail (journal_t *self, char **error_p, int code, const char *fmt, ...)
{
    char message [300];
    va_list args;
    va_start (args, fmt);
    vsnprintf (message, sizeof message, fmt, args);
    va_end (args);
    if (sqlite3_get_autocommit (self->db) == 0)
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    *error_p = strdup (message);
    return code;
}

//  The journaled text of event: its seq, and "at" and "data" when it has
//  none, in front of its members. Returns a malloc'd string, its length
//  in *size_p; NULL if out of memory.
static char *
s_body (const journal_event_t *event, int64_t seq, const char *now,
        size_t *size_p)
{
    //  The text is an object with an id and a type: after its '{' comes
    //  a member, so what goes in front ends with a comma.
    char head [RESV_TIME_SIZE + 64];
    memcpy (head, "{\"seq\":", 7);
    size_t used = 7 + resv_decimal (seq, head + 7);
    head [used++] = ',';
    if (!event->has_at) {
        size_t now_size = strnlen (now, RESV_TIME_SIZE - 1);
        memcpy (head + used, "\"at\":\"", 6);
        memcpy (head + used + 6, now, now_size);
        memcpy (head + used + 6 + now_size, "\",", 2);
        used += 6 + now_size + 2;
    }
    if (!event->has_data) {
        memcpy (head + used, "\"data\":{},", 10);
        used += 10;
    }
    const char *rest = (const char *) memchr (event->text, '{', event->size);
    size_t rest_size = rest? event->size - (size_t) (rest - event->text) - 1: 0;
    char *body = rest? (char *) malloc ((size_t) used + rest_size + 1): NULL;
    if (!body)
        return NULL;
    memcpy (body, head, (size_t) used);
    memcpy (body + used, rest + 1, rest_size);
    body [used + rest_size] = 0;
    *size_p = (size_t) used + rest_size;
    return body;
}

void
journal_fresh_destroy (journal_fresh_t **fresh_p, size_t count)
{
    if (!*fresh_p)
        return;
    for (size_t index = 0; index < count; index++)
        free ((*fresh_p) [index].text);
    free (*fresh_p);
    *fresh_p = NULL;
}

int
journal_append (journal_t *self, const journal_event_t *events, size_t count,
                int64_t *seqs, journal_fresh_t **fresh_p, size_t *nfresh_p,
                char **error_p)
{
    *fresh_p = NULL;
    *nfresh_p = 0;
    *error_p = NULL;
    if (count == 0) {
        *error_p = strdup ("events must be a non-empty array");
        return -2;
    }
    journal_fresh_t *fresh = (journal_fresh_t *) calloc (count,
                                                          sizeof (journal_fresh_t));
    if (!fresh)
        return s_fail (self, error_p, -1, "journal: out of memory");
    //  What it wrote to a file deleted or moved would be lost at the next
    //  start: refused, and the broker logs the refusals (a stat at most
    //  once a second, see db_moved).
    if (db_moved (self->db, &self->moved)) {
        free (fresh);
        return s_fail (self, error_p, -1, "journal: %s: the database file "
                       "was deleted or moved; refusing writes",
                       sqlite3_db_filename (self->db, "main"));
    }
    if (s_run (self->begin) != SQLITE_DONE) {
        free (fresh);
        return s_fail (self, error_p, -1, "journal: begin: %s",
                       sqlite3_errmsg (self->db));
    }
    size_t nfresh = 0;
    int64_t next = self->last;
    char now [RESV_TIME_SIZE];
    resv_time_now (now);
    for (size_t index = 0; index < count; index++) {
        const journal_event_t *event = &events [index];
        size_t size;
        char *body = s_body (event, next + 1, now, &size);
        if (!body) {
            journal_fresh_destroy (&fresh, nfresh);
            return s_fail (self, error_p, -1, "journal: insert %s: out of "
                           "memory", event->id);
        }
        sqlite3_reset (self->insert);
        sqlite3_bind_text (self->insert, 1, event->id, -1, SQLITE_STATIC);
        sqlite3_bind_text (self->insert, 2, event->type, -1, SQLITE_STATIC);
        sqlite3_bind_text (self->insert, 3, body, (int) size, SQLITE_STATIC);
        int rc = sqlite3_step (self->insert);
        if (rc != SQLITE_DONE) {
            free (body);
            journal_fresh_destroy (&fresh, nfresh);
            return s_fail (self, error_p, -1, "journal: insert %s: %s",
                           event->id, sqlite3_errmsg (self->db));
        }
        if (sqlite3_changes (self->db) == 1) {
            next++;
            seqs [index] = next;
            fresh [nfresh++] = (journal_fresh_t) { next, 0, 0, event->type, body, size };
        }
        else {
            //  Journaled before: a publisher's resend.
            free (body);
            sqlite3_reset (self->find);
            sqlite3_bind_text (self->find, 1, event->id, -1, SQLITE_STATIC);
            seqs [index] = sqlite3_step (self->find) == SQLITE_ROW
                         ? sqlite3_column_int64 (self->find, 0): 0;
        }
    }
    sqlite3_reset (self->insert);
    sqlite3_reset (self->find);
    if (s_run (self->commit) != SQLITE_DONE) {
        journal_fresh_destroy (&fresh, nfresh);
        return s_fail (self, error_p, -1, "journal: commit: %s",
                       sqlite3_errmsg (self->db));
    }
    self->last = next;
    for (size_t index = 0; index < nfresh; index++)
        s_newest (self, fresh [index].type, fresh [index].seq,
                  &fresh [index].prev, &fresh [index].prev_type);
    *fresh_p = fresh;
    *nfresh_p = nfresh;
    return 0;
}

int
journal_split_json (json_t *events, char **text_p, journal_event_t **events_p,
                    size_t *count_p, char **error_p)
{
    *text_p = NULL;
    json_t *request = events? json_pack ("{s:O}", "events", events): NULL;
    char *text = request? json_dumps (request, JSON_COMPACT): NULL;
    json_decref (request);
    if (!text) {
        *events_p = NULL;
        *count_p = 0;
        *error_p = strdup ("events must be a non-empty array");
        return -2;
    }
    int rc = journal_split (text, strlen (text), events_p, count_p, error_p);
    if (rc)
        free (text);
    else
        *text_p = text;
    return rc;
}

int
journal_append_json (journal_t *self, json_t *events, json_t **seqs_p,
                     json_t **fresh_p, char **error_p)
{
    *seqs_p = NULL;
    *fresh_p = NULL;
    char *text;
    journal_event_t *list;
    size_t count;
    int rc = journal_split_json (events, &text, &list, &count, error_p);
    int64_t *seqs = rc? NULL: (int64_t *) malloc (count * sizeof (int64_t));
    journal_fresh_t *fresh = NULL;
    size_t nfresh = 0;
    if (rc == 0)
        rc = seqs? journal_append (self, list, count, seqs, &fresh, &nfresh,
                                   error_p)
                 : s_fail (self, error_p, -1, "journal: out of memory");
    if (rc == 0) {
        *seqs_p = json_array ();
        for (size_t index = 0; index < count; index++)
            json_array_append_new (*seqs_p, json_integer (seqs [index]));
        *fresh_p = json_array ();
        for (size_t index = 0; index < nfresh; index++)
            json_array_append_new (*fresh_p, json_pack ("[I,s,s%,I,I]",
                (json_int_t) fresh [index].seq, fresh [index].type,
                fresh [index].text, fresh [index].size,
                (json_int_t) fresh [index].prev,
                (json_int_t) fresh [index].prev_type));
    }
    journal_fresh_destroy (&fresh, nfresh);
    free (seqs);
    free (list);
    free (text);
    return rc;
}

//  How many of the types journaled so far start with prefix: 0, 1 (then
//  *type_p is that one) or 2 (two or more).
static int
s_types_matching (journal_t *self, const char *prefix, const char **type_p)
{
    int count = 0;
    size_t size = strlen (prefix);
    for (void *item = zhashx_first (self->types); item && count < 2;
         item = zhashx_next (self->types)) {
        const char *type = (const char *) zhashx_cursor (self->types);
        if (strncmp (type, prefix, size) == 0) {
            *type_p = type;
            count++;
        }
    }
    return count;
}

char *
journal_read (journal_t *self, int64_t from, const char *prefix, int limit)
{
    sqlite3_stmt *stmt = self->read_all;
    char upper [JOURNAL_TYPE_MAX + 2];
    const char *type = NULL;
    int matching = prefix && *prefix? s_types_matching (self, prefix, &type): 2;
    if (matching < 2) {
        //  One type has the prefix (a consumer of one type reads), or none
        //  has: its events past from, in order, are a range of the type
        //  index (an empty one).
        if (matching == 0)
            type = prefix;
        stmt = self->read_exact;
        sqlite3_bind_text (stmt, 2, type, -1, SQLITE_STATIC);
        sqlite3_bind_int (stmt, 3, limit + 1);
    }
    else
    if (prefix && *prefix) {
        //  Types are lowercase words and dots, so every type that starts
        //  with the prefix sorts between it and the prefix ending in '~'.
        snprintf (upper, sizeof upper, "%s~", prefix);
        //  The type index finds a prefix's events wherever they are, but
        //  reads all of them and sorts those past from; near the end of
        //  the journal (where consumers read) walking the seqs is cheaper.
        stmt = self->last - from < JOURNAL_WALK_MAX? self->read_recent:
                                                       self->read_type;
        sqlite3_bind_text (stmt, 2, prefix, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 3, upper, -1, SQLITE_STATIC);
        sqlite3_bind_int (stmt, 4, limit + 1);
    }
    else
        sqlite3_bind_int (stmt, 2, limit + 1);
    sqlite3_bind_int64 (stmt, 1, from);
    //  The bodies are JSON already: the reply is built as text around them.
    size_t size = 4096, used = 0;
    char *text = (char *) malloc (size);
    if (!text) {
        sqlite3_reset (stmt);
        zsys_error ("journal: read from %" PRId64 ": out of memory", from);
        return NULL;
    }
    used += (size_t) snprintf (text, size, "{\"items\":[");
    int64_t next = from;
    int rc;
    int count = 0;
    bool more = false;          //  An event past the page matches too
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if (count == limit) {
            more = true;
            rc = SQLITE_DONE;
            break;
        }
        const char *body = (const char *) sqlite3_column_text (stmt, 1);
        size_t len = (size_t) sqlite3_column_bytes (stmt, 1);
        if (used + len + 64 > size) {
            size = (used + len + 64) * 2;
            char *larger = (char *) realloc (text, size);
            if (!larger) {
                rc = SQLITE_NOMEM;
                break;
            }
            text = larger;
        }
        if (count++)
            text [used++] = ',';
        memcpy (text + used, body, len);
        used += len;
        next = sqlite3_column_int64 (stmt, 0) + 1;
    }
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        zsys_error ("journal: read from %" PRId64 ": %s", from,
                    rc == SQLITE_NOMEM? "out of memory": sqlite3_errmsg (self->db));
        free (text);
        return NULL;
    }
    //  Each read asks for one event more than the page holds, so that a
    //  full page whose type filter matches nothing after it is not taken
    //  for a cut one: with no such event, every event up to the newest was
    //  read, the skipped ones too, and next is past the end.
    if (!more && self->last + 1 > next)
        next = self->last + 1;
    snprintf (text + used, size - used, "],\"next\":%" PRId64 ",\"last\":%" PRId64 "}",
              next, self->last);
    return text;
}
