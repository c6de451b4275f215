/*  journal.c: the event journal on SQLite (see journal.h).  */

#include "journal.h"
#include "checkpoint.h"
#include "db.h"
#include "resv_util.h"
#include <czmq.h>
#include <sqlite3.h>

struct _journal_t {
    sqlite3 *db;                //  The open journal file
    sqlite3_stmt *insert;       //  INSERT OR IGNORE of one event
    sqlite3_stmt *find;         //  seq of an event id
    sqlite3_stmt *read_all;     //  Events from a seq
    sqlite3_stmt *read_type;    //  Events from a seq with a type prefix
    sqlite3_stmt *begin;        //  BEGIN IMMEDIATE
    sqlite3_stmt *commit;       //  COMMIT
    int64_t last;               //  Newest seq
};

static const char *s_schema =
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

journal_t *
journal_new (const char *path)
{
    journal_t *self = (journal_t *) zmalloc (sizeof (journal_t));
    char *error = NULL;
    if (db_open (path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &self->db)
        != SQLITE_OK) {
        zsys_error ("journal: open %s: %s", path, sqlite3_errmsg (self->db));
        goto failed;
    }
    sqlite3_busy_timeout (self->db, 5000);
    if (sqlite3_exec (self->db, s_schema, NULL, NULL, &error) != SQLITE_OK) {
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
    ||  s_prepare (self, "BEGIN IMMEDIATE", &self->begin)
    ||  s_prepare (self, "COMMIT", &self->commit))
        goto failed;
    sqlite3_stmt *last;
    if (s_prepare (self, "SELECT coalesce (max (seq), 0) FROM events", &last))
        goto failed;
    if (sqlite3_step (last) == SQLITE_ROW)
        self->last = sqlite3_column_int64 (last, 0);
    sqlite3_finalize (last);
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
    sqlite3_finalize (self->begin);
    sqlite3_finalize (self->commit);
    sqlite3_close (self->db);
    free (self);
    *self_p = NULL;
}

int64_t
journal_last (journal_t *self)
{
    return self->last;
}

//  A string member of at most max characters, or absent. Returns false if
//  it is present and not such a string.
static bool
s_string_ok (json_t *event, const char *key, size_t max, bool required)
{
    json_t *value = json_object_get (event, key);
    if (!value)
        return !required;
    return json_is_string (value) && json_string_length (value) > 0
        && json_string_length (value) <= max;
}

//  Checks one event of a batch. Returns NULL or what is wrong with it.
static const char *
s_invalid (json_t *event)
{
    if (!json_is_object (event))
        return "an event is not an object";
    if (!s_string_ok (event, "id", JOURNAL_ID_MAX, true))
        return "event id must be a string of 1 to 64 characters";
    if (!s_string_ok (event, "type", JOURNAL_TYPE_MAX, true))
        return "event type must be a string of 1 to 64 characters";
    const char *type = json_string_value (json_object_get (event, "type"));
    for (const char *c = type; *c; c++)
        if (!(islower (*c) || *c == '.' || *c == '_'))
            return "event type must be lowercase words and dots";
    const char *key;
    json_t *value;
    json_object_foreach (event, key, value) {
        if (streq (key, "id") || streq (key, "type"))
            continue;
        if (streq (key, "data")) {
            if (!json_is_object (value))
                return "event data must be an object";
        }
        else
        if (streq (key, "at") || streq (key, "correlation_id")
        ||  streq (key, "reservation") || streq (key, "resource")) {
            if (!s_string_ok (event, key, 128, true))
                return "event fields must be strings of 1 to 128 characters";
        }
        else
            return "unknown event field";
    }
    return NULL;
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

int
journal_check (json_t *events, char **error_p)
{
    char message [300];
    *error_p = NULL;
    if (!json_is_array (events) || json_array_size (events) == 0) {
        *error_p = strdup ("events must be a non-empty array");
        return -2;
    }
    size_t index;
    json_t *event;
    json_array_foreach (events, index, event) {
        const char *why = s_invalid (event);
        if (why) {
            snprintf (message, sizeof message, "event %zu: %s", index, why);
            *error_p = strdup (message);
            return -2;
        }
    }
    return 0;
}

//  The journaled text of event: its seq, and "at" and "data" when it has
//  none, in front of the members of text (the event as sent) or of the
//  object written anew when there is no text. Returns a malloc'd string,
//  its length in *size_p; NULL if out of memory.
static char *
s_body (json_t *event, const journal_text_t *text, int64_t seq,
        const char *now, size_t *size_p)
{
    if (!text || !text->text) {
        json_t *stored = json_copy (event);
        json_object_set_new (stored, "seq", json_integer (seq));
        if (!json_object_get (stored, "at"))
            json_object_set_new (stored, "at", json_string (now));
        if (!json_object_get (stored, "data"))
            json_object_set_new (stored, "data", json_object ());
        char *body = json_dumps (stored, JSON_COMPACT);
        json_decref (stored);
        *size_p = body? strlen (body): 0;
        return body;
    }
    //  The text is an object with an id and a type: after its '{' comes
    //  a member, so what goes in front ends with a comma.
    bool at = json_object_get (event, "at") != NULL;
    bool data = json_object_get (event, "data") != NULL;
    char head [RESV_TIME_SIZE + 64];
    int used = snprintf (head, sizeof head, "{\"seq\":%" PRId64 ",%s%s%s%s", seq,
                         at? "": "\"at\":\"", at? "": now, at? "": "\",",
                         data? "": "\"data\":{},");
    const char *rest = (const char *) memchr (text->text, '{', text->size);
    size_t rest_size = rest? text->size - (size_t) (rest - text->text) - 1: 0;
    char *body = rest? (char *) malloc ((size_t) used + rest_size + 1): NULL;
    if (!body)
        return NULL;
    memcpy (body, head, (size_t) used);
    memcpy (body + used, rest + 1, rest_size);
    body [used + rest_size] = 0;
    *size_p = (size_t) used + rest_size;
    return body;
}

int
journal_append (journal_t *self, json_t *events, const journal_text_t *texts,
                json_t **seqs_p, json_t **fresh_p, char **error_p)
{
    *seqs_p = NULL;
    *fresh_p = NULL;
    if (journal_check (events, error_p))
        return -2;
    size_t index;
    json_t *event;
    if (s_run (self->begin) != SQLITE_DONE)
        return s_fail (self, error_p, -1, "journal: begin: %s",
                       sqlite3_errmsg (self->db));
    json_t *seqs = json_array ();
    json_t *fresh = json_array ();
    int64_t next = self->last;
    char now [RESV_TIME_SIZE];
    resv_time_now (now);
    json_array_foreach (events, index, event) {
        const char *id = json_string_value (json_object_get (event, "id"));
        const char *type = json_string_value (json_object_get (event, "type"));
        size_t size;
        char *body = s_body (event, texts? &texts [index]: NULL, next + 1,
                             now, &size);
        if (!body) {
            json_decref (seqs);
            json_decref (fresh);
            return s_fail (self, error_p, -1, "journal: insert %s: out of "
                           "memory", id);
        }
        sqlite3_reset (self->insert);
        sqlite3_bind_text (self->insert, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text (self->insert, 2, type, -1, SQLITE_STATIC);
        sqlite3_bind_text (self->insert, 3, body, (int) size, SQLITE_STATIC);
        int rc = sqlite3_step (self->insert);
        if (rc != SQLITE_DONE) {
            free (body);
            json_decref (seqs);
            json_decref (fresh);
            return s_fail (self, error_p, -1, "journal: insert %s: %s", id,
                           sqlite3_errmsg (self->db));
        }
        if (sqlite3_changes (self->db) == 1) {
            next++;
            json_array_append_new (seqs, json_integer (next));
            //  Both texts are valid UTF-8 already (checked when parsed).
            json_t *entry = json_array ();
            json_array_append_new (entry, json_integer (next));
            json_array_append_new (entry, json_string_nocheck (type));
            json_array_append_new (entry, json_stringn_nocheck (body, size));
            json_array_append_new (fresh, entry);
        }
        else {
            //  Journaled before: a publisher's resend.
            sqlite3_reset (self->find);
            sqlite3_bind_text (self->find, 1, id, -1, SQLITE_STATIC);
            int64_t seq = 0;
            if (sqlite3_step (self->find) == SQLITE_ROW)
                seq = sqlite3_column_int64 (self->find, 0);
            json_array_append_new (seqs, json_integer (seq));
        }
        free (body);
    }
    sqlite3_reset (self->insert);
    sqlite3_reset (self->find);
    if (s_run (self->commit) != SQLITE_DONE) {
        json_decref (seqs);
        json_decref (fresh);
        return s_fail (self, error_p, -1, "journal: commit: %s",
                       sqlite3_errmsg (self->db));
    }
    self->last = next;
    *seqs_p = seqs;
    *fresh_p = fresh;
    return 0;
}

char *
journal_read (journal_t *self, int64_t from, const char *prefix, int limit)
{
    sqlite3_stmt *stmt = self->read_all;
    char upper [JOURNAL_TYPE_MAX + 2];
    if (prefix && *prefix) {
        //  Types are lowercase words and dots, so every type that starts
        //  with the prefix sorts between it and the prefix ending in '~'.
        snprintf (upper, sizeof upper, "%s~", prefix);
        stmt = self->read_type;
        sqlite3_bind_text (stmt, 2, prefix, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 3, upper, -1, SQLITE_STATIC);
        sqlite3_bind_int (stmt, 4, limit);
    }
    else
        sqlite3_bind_int (stmt, 2, limit);
    sqlite3_bind_int64 (stmt, 1, from);
    //  The bodies are JSON already: the reply is built as text around them.
    size_t size = 4096, used = 0;
    char *text = (char *) malloc (size);
    used += (size_t) snprintf (text, size, "{\"items\":[");
    int64_t next = from;
    int rc;
    int count = 0;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *body = (const char *) sqlite3_column_text (stmt, 1);
        size_t len = (size_t) sqlite3_column_bytes (stmt, 1);
        if (used + len + 64 > size) {
            size = (used + len + 64) * 2;
            text = (char *) realloc (text, size);
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
                    sqlite3_errmsg (self->db));
        free (text);
        return NULL;
    }
    //  With a type filter, what was skipped is read too: next is past it.
    if (count < limit && self->last + 1 > next)
        next = self->last + 1;
    snprintf (text + used, size - used, "],\"next\":%" PRId64 ",\"last\":%" PRId64 "}",
              next, self->last);
    return text;
}
