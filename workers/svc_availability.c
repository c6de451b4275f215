/*  svc_availability.c: availability, the service of resources and of the
    capacity held for reservations (svc.h, doc/saga.md).

    State lives in DATA_DIR/availability.db, shared by every process of the
    service. No overbooking is a rule of the store itself, not only of this
    code: the usage table keeps the units held per (resource, day, slot),
    and triggers abort any write that would make them exceed the resource's
    capacity or drop below zero, and any capacity change that would go
    below what is held. A hold is one BEGIN IMMEDIATE transaction over all
    the days of a stay: an upsert into usage that a trigger aborts as soon
    as one day is full, after which the whole transaction is rolled back,
    so either every day is held or none is.

    Holds are recorded per reservation and day (the holds table), which is
    what makes hold and release idempotent by reservation id. A hold moves
    through three states: held; released by a `release` (the compensation
    of a reserve that failed later: a retry of that reserve, with the same
    reservation id, may hold again); and ended, released because the
    reservation was declined, expired or cancelled (final: a late hold for
    it is refused, so that it can never hold capacity again).

    Requests run in the worker's thread on self->store; the consumer of
    reservation.* events runs in the events actor's thread on the store
    connection it is handed. Nothing else is shared between the two.
*/

#include "svc.h"
#include "events.h"
#include "fields.h"
#include "resv_util.h"
#include "jscan.h"

//  A store failure in a handler: logged, rolled back, answered 500.
#define S_FAIL(store, reply_p, operation, subject) \
    store_fail (store, reply_p, "availability", operation, subject)

//  The store, the consumer's cursor and the prefix of resource ids.
#define S_NAME          "availability"
#define S_ID_PREFIX     "res-"

//  The domain's limits (capacity, price, days, slots) are RESV_*_MAX, in
//  resv_proto.h. 9999-12-31 as a day number: a stay may not run past
//  four-digit years.
#define S_LAST_DAY      2932896
//  Bytes of resources one list reply carries before it is cut with a
//  "next" cursor: a page a client can take in at once.
#define S_LIST_BYTES    (512 * 1024)


//  holds.released: see the top of this file.
#define S_HELD          0
#define S_RELEASED      1
#define S_ENDED         2

//  The columns of a resource, in the order s_resource_json reads them.
#define S_RESOURCE_COLUMNS \
    "id, name, kind, owner, capacity, price, approval, slots, " \
    "created_at, updated_at, removed, rowid"

static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS resources ("
    "    id         TEXT PRIMARY KEY,"
    "    name       TEXT NOT NULL,"
    "    kind       TEXT,"
    "    owner      TEXT NOT NULL,"
    "    capacity   INTEGER NOT NULL CHECK (capacity >= 1),"
    "    price      INTEGER NOT NULL CHECK (price >= 0),"
    "    approval   TEXT NOT NULL CHECK (approval IN ('auto', 'manual')),"
    "    slots      TEXT NOT NULL,"         //  JSON array of labels
    "    request_id TEXT,"                  //  Of the add, for its retries
    "    removed    INTEGER NOT NULL DEFAULT 0,"
    "    created_at TEXT NOT NULL,"
    "    updated_at TEXT NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS resources_request"
    "    ON resources (owner, request_id) WHERE request_id IS NOT NULL;"
    //  Units held per resource, day (day number) and slot.
    "CREATE TABLE IF NOT EXISTS usage ("
    "    resource TEXT NOT NULL REFERENCES resources (id),"
    "    day      INTEGER NOT NULL,"
    "    slot     TEXT NOT NULL,"
    "    held     INTEGER NOT NULL CHECK (held >= 0),"
    "    PRIMARY KEY (resource, day, slot)) WITHOUT ROWID;"
    //  The no-overbooking rule. A resource that does not exist has no
    //  capacity at all.
    "CREATE TRIGGER IF NOT EXISTS usage_insert_within_capacity"
    "    BEFORE INSERT ON usage"
    "    WHEN NEW.held < 0 OR NEW.held > coalesce ("
    "        (SELECT capacity FROM resources WHERE id = NEW.resource), 0)"
    "    BEGIN SELECT RAISE (ABORT, 'no_capacity: held would exceed capacity'); END;"
    "CREATE TRIGGER IF NOT EXISTS usage_update_within_capacity"
    "    BEFORE UPDATE ON usage"
    "    WHEN NEW.held < 0 OR NEW.held > coalesce ("
    "        (SELECT capacity FROM resources WHERE id = NEW.resource), 0)"
    "    BEGIN SELECT RAISE (ABORT, 'no_capacity: held would exceed capacity'); END;"
    "CREATE TRIGGER IF NOT EXISTS resources_capacity_above_held"
    "    BEFORE UPDATE OF capacity ON resources"
    "    WHEN NEW.capacity < coalesce ("
    "        (SELECT max (held) FROM usage WHERE resource = NEW.id), 0)"
    "    BEGIN SELECT RAISE (ABORT, 'conflict: capacity below held units'); END;"
    //  What each reservation holds, one row per day of its stay.
    "CREATE TABLE IF NOT EXISTS holds ("
    "    reservation TEXT NOT NULL,"
    "    resource    TEXT NOT NULL,"
    "    day         INTEGER NOT NULL,"
    "    slot        TEXT NOT NULL,"
    "    units       INTEGER NOT NULL CHECK (units >= 1),"
    //  Comparisons, not IN (...): SQLite checks an IN list of more than
    //  two constants by building a temporary index, at every write.
    "    released    INTEGER NOT NULL DEFAULT 0"
    "                CHECK (released = 0 OR released = 1 OR released = 2),"
    "    PRIMARY KEY (reservation, day)) WITHOUT ROWID;"
    //  What each add with a request_id asked, its defaults filled in, so
    //  that a key used again for another add is told apart from a retry.
    "CREATE TABLE IF NOT EXISTS adds ("
    "    owner      TEXT NOT NULL,"
    "    request_id TEXT NOT NULL,"
    "    asked      TEXT NOT NULL,"
    "    PRIMARY KEY (owner, request_id)) WITHOUT ROWID;";

typedef struct {
    store_t *store;             //  Connection of the request thread
    zactor_t *events;           //  Outbox relay and consumer (own thread
                                //  and connection)
    events_batch_t batch;       //  Group commit of request bursts
} availability_t;


//  --------------------------------------------------------------------------
//  Shared by requests and the consumer

//  The text of column col, "" for NULL.
static const char *
s_text (sqlite3_stmt *stmt, int col)
{
    const char *text = (const char *) sqlite3_column_text (stmt, col);
    return text? text: "";
}

//  True if the last failed statement on store was aborted by one of our
//  triggers (the no-overbooking rule), rather than by the store failing.
static bool
s_trigger_aborted (store_t *store)
{
    return sqlite3_extended_errcode (store_db (store)) == SQLITE_CONSTRAINT_TRIGGER;
}

//  Releases what reservation holds, in the current transaction: every day
//  still held gives its units back, and every hold not yet in state mark
//  moves to it (S_RELEASED or S_ENDED). *count_p gets the number of days
//  given back by this call. Returns 0, or -1 on a store failure.
static int
s_release (store_t *store, const char *reservation, int mark, int *count_p)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "UPDATE usage SET held = usage.held - h.units FROM holds AS h "
        "WHERE h.reservation = ?1 AND h.released = 0 "
        "AND usage.resource = h.resource AND usage.day = h.day "
        "AND usage.slot = h.slot");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, reservation, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return -1;
    *count_p = sqlite3_changes (store_db (store));
    stmt = store_stmt (store,
        "UPDATE holds SET released = ?2 WHERE reservation = ?1 AND released < ?2");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, reservation, -1, SQLITE_STATIC);
    sqlite3_bind_int (stmt, 2, mark);
    rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  The event types the consumer applies: the ends of a reservation, which release its hold.
static const char *s_types [] = {
    "reservation.declined", "reservation.expired",
    "reservation.cancelled", NULL
};

//  Consumer: a reservation that was declined, expired or cancelled gives
//  back what it holds, for good.
static int
s_apply (void *state, store_t *store, const char *type, json_t *event)
{
    (void) state;
    if (!streq (type, "reservation.declined")
    &&  !streq (type, "reservation.expired")
    &&  !streq (type, "reservation.cancelled"))
        return 0;
    const char *id = json_string_value (json_object_get (event, "reservation"));
    if (!id) {
        json_t *data = json_object_get (event, "data");
        id = json_string_value (json_object_get (
             json_object_get (data, "reservation"), "id"));
    }
    if (!id) {
        //  A producer's bug; retrying could never succeed and would stop
        //  every later event, so it is logged and skipped.
        const char *cause = json_string_value (json_object_get (event, "id"));
        zsys_warning ("availability: event %s (%s) names no reservation; "
                      "skipped", cause? cause: "without id", type);
        return 0;
    }
    int count;
    if (s_release (store, id, S_ENDED, &count)) {
        zsys_error ("availability: release %s on %s: %s", id, type,
                    store_error (store));
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Replies

static int
s_not_found (store_t *store, zframe_t **reply_p, const char *id)
{
    store_rollback (store);
    *reply_p = worker_error (RESV_NOT_FOUND, RESV_REASON_NOT_FOUND,
                             "no resource '%s'", id);
    return RESV_NOT_FOUND;
}

static int
s_forbidden (store_t *store, zframe_t **reply_p, const char *id)
{
    store_rollback (store);
    *reply_p = worker_error (RESV_FORBIDDEN, RESV_REASON_FORBIDDEN,
                             "only the owner of resource '%s' may change it",
                             id);
    return RESV_FORBIDDEN;
}


//  --------------------------------------------------------------------------
//  Request fields beyond fields.h

//  slots: an array of 1 to RESV_SLOTS_MAX distinct labels, each 1 to
//  RESV_SLOT_MAX bytes without control characters. *slots_p gets a new
//  reference (caller owns), or stays NULL when the member is absent.
static int
s_field_slots (json_t *request, json_t **slots_p, zframe_t **reply_p)
{
    json_t *slots = json_object_get (request, "slots");
    if (!slots || json_is_null (slots))
        return 0;
    if (!json_is_array (slots) || json_array_size (slots) == 0
    ||  json_array_size (slots) > RESV_SLOTS_MAX) {
        *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                 "slots must be an array of 1 to %d labels",
                                 RESV_SLOTS_MAX);
        return -1;
    }
    size_t index;
    json_t *slot;
    json_array_foreach (slots, index, slot) {
        //  Each label goes through the same check as any text field.
        json_t *wrapper = json_pack ("{s:O}", "slot", slot);
        const char *label = NULL;
        int rc = wrapper? field_string (wrapper, "slot", true, RESV_SLOT_MAX,
                                        &label, reply_p): -1;
        json_decref (wrapper);
        if (rc) {
            if (!*reply_p)
                *reply_p = worker_error (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                         "availability: out of memory");
            return -1;
        }
        for (size_t other = 0; other < index; other++)
            if (json_equal (slot, json_array_get (slots, other))) {
                *reply_p = worker_error (RESV_BAD_REQUEST,
                                         RESV_REASON_BAD_REQUEST,
                                         "slots must be distinct: '%s' "
                                         "appears twice", label);
                return -1;
            }
    }
    *slots_p = json_incref (slots);
    return 0;
}

//  A stay: date (required), days (1 to RESV_DAYS_MAX, default 1), ending on
//  9999-12-31 at the latest.
static int
s_field_stay (json_t *request, const char *key, int64_t *first_p,
              int64_t *days_p, zframe_t **reply_p)
{
    const char *date = NULL;
    if (field_date (request, key, true, &date, first_p, reply_p))
        return -1;
    if (field_int (request, "days", false, 1, RESV_DAYS_MAX, days_p, reply_p))
        return -1;
    if (*first_p + *days_p - 1 > S_LAST_DAY) {
        *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                 "days must end by 9999-12-31");
        return -1;
    }
    return 0;
}


//  --------------------------------------------------------------------------
//  Resources

//  The resource of the current row of stmt (S_RESOURCE_COLUMNS), as
//  replied and as carried by events. Caller owns; NULL if out of memory.
//  hold writes the same object in SQL (s_sql_resource_text);
//  test_availability_reply_shape checks that the two agree.
static json_t *
s_resource_json (sqlite3_stmt *stmt)
{
    json_t *slots = json_loads (s_text (stmt, 7), 0, NULL);
    if (!slots)
        slots = json_array ();
    return json_pack ("{s:s,s:s,s:s?,s:s,s:I,s:I,s:s,s:o,s:s,s:s}",
        "id", s_text (stmt, 0), "name", s_text (stmt, 1),
        "kind", (const char *) sqlite3_column_text (stmt, 2),
        "owner", s_text (stmt, 3),
        "capacity", (json_int_t) sqlite3_column_int64 (stmt, 4),
        "price", (json_int_t) sqlite3_column_int64 (stmt, 5),
        "approval", s_text (stmt, 6), "slots", slots,
        "created_at", s_text (stmt, 8), "updated_at", s_text (stmt, 9));
}

//  Loads resource id into *resource_p (caller owns) and whether it was
//  removed into *removed_p. Returns 0, RESV_NOT_FOUND if there is no such
//  resource, or -1 on a store failure.
static int
s_resource_load (store_t *store, const char *id, json_t **resource_p,
                 bool *removed_p)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "SELECT " S_RESOURCE_COLUMNS " FROM resources WHERE id = ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        *resource_p = s_resource_json (stmt);
        *removed_p = sqlite3_column_int (stmt, 10) != 0;
    }
    sqlite3_reset (stmt);
    if (rc == SQLITE_DONE)
        return RESV_NOT_FOUND;
    return rc == SQLITE_ROW && *resource_p? 0: -1;
}

//  Loads a resource that is not removed: 0, RESV_NOT_FOUND or -1.
static int
s_resource_live (store_t *store, const char *id, json_t **resource_p)
{
    bool removed = false;
    int rc = s_resource_load (store, id, resource_p, &removed);
    if (rc == 0 && removed) {
        json_decref (*resource_p);
        *resource_p = NULL;
        return RESV_NOT_FOUND;
    }
    return rc;
}

//  The resource of s_resource_json as text, written by SQLite: what hold
//  replies with, which needs no jansson value of it.
static const char s_sql_resource_text [] =
    "SELECT json_object ('id', id, 'name', name, 'kind', kind,"
    "       'owner', owner, 'capacity', capacity, 'price', price,"
    "       'approval', approval, 'slots', CASE WHEN json_valid (slots)"
    "       THEN json (slots) ELSE json_array () END,"
    "       'created_at', created_at, 'updated_at', updated_at), slots"
    "  FROM resources WHERE id = ?1 AND NOT removed";

//  Loads resource id, if not removed, as the text of its JSON object and
//  the text of its slots (both malloc'd). Returns 0, RESV_NOT_FOUND, or
//  -1 on a store failure.
static int
s_resource_text (store_t *store, const char *id, char **text_p,
                 char **slots_p)
{
    *text_p = *slots_p = NULL;
    sqlite3_stmt *stmt = store_stmt (store, s_sql_resource_text);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *) sqlite3_column_text (stmt, 0);
        const char *slots = (const char *) sqlite3_column_text (stmt, 1);
        *text_p = text? strdup (text): NULL;
        *slots_p = slots? strdup (slots): NULL;
    }
    sqlite3_reset (stmt);
    if (rc == SQLITE_DONE)
        return RESV_NOT_FOUND;
    if (rc == SQLITE_ROW && *text_p && *slots_p)
        return 0;
    zstr_free (text_p);
    zstr_free (slots_p);
    return -1;
}

//  Looks for a slot label in the text of a resource's slots, a JSON array
//  of strings: the label given, or with none the first.
typedef struct {
    const char *wanted;         //  NULL: the first
    char found [RESV_SLOT_MAX + 1];
    bool known;
} s_slot_find_t;

static bool
s_slot_item (void *arg, const char *value, size_t value_size,
             jscan_kind_t kind)
{
    s_slot_find_t *find = (s_slot_find_t *) arg;
    if (find->known || kind != JSCAN_STRING)
        return true;
    char label [RESV_SLOT_MAX + 2];
    size_t size = jscan_string (value, value_size, label, sizeof label);
    if (size > RESV_SLOT_MAX)
        return true;            //  Too long to be one we took
    if (!find->wanted || streq (label, find->wanted)) {
        memcpy (find->found, label, size + 1);
        find->known = true;
    }
    return true;
}

static int64_t
s_int (json_t *object, const char *key)
{
    return json_integer_value (json_object_get (object, key));
}

static const char *
s_str (json_t *object, const char *key)
{
    return json_string_value (json_object_get (object, key));
}

//  Emits a resource event carrying resource (borrowed), commits, pokes the
//  relay and replies status with the resource. Returns status, or 500.
static int
s_emit_commit (availability_t *self, const char *type, json_t *resource,
               int status, const char *operation, zframe_t **reply_p)
{
    const char *id = s_str (resource, "id");
    if (store_emit (self->store, type, "resource", id, NULL,
                    json_pack ("{s:O}", "resource", resource))
    ||  store_commit (self->store))
        return S_FAIL (self->store, reply_p, operation, id);
    events_flush (self->events);
    *reply_p = worker_json (json_incref (resource));
    return status;
}

//  What the add of (owner, request_id) asked, or NULL when it asked
//  nothing that was kept (an add made before adds were recorded): *rc_p
//  gets SQLITE_ROW, SQLITE_DONE or an error. Caller frees.
static char *
s_add_asked (store_t *store, const char *owner, const char *request_id,
             int *rc_p)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "SELECT asked FROM adds WHERE owner = ?1 AND request_id = ?2");
    *rc_p = SQLITE_ERROR;
    if (!stmt)
        return NULL;
    sqlite3_bind_text (stmt, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, request_id, -1, SQLITE_STATIC);
    *rc_p = sqlite3_step (stmt);
    char *asked = *rc_p == SQLITE_ROW
                ? strdup ((const char *) sqlite3_column_text (stmt, 0)): NULL;
    sqlite3_reset (stmt);
    if (*rc_p == SQLITE_ROW && !asked)
        *rc_p = SQLITE_NOMEM;
    return asked;
}

//  resource.add {name, owner, kind?, capacity?, price?, approval?, slots?,
//  request_id?} -> 201 resource. A repeated (owner, request_id) gets the
//  resource the first one made, as it is now; 409 if it asks for another
//  resource than the first did.
static int
s_resource_add (void *state, json_t *request, int64_t deadline,
                zframe_t **reply_p)
{
    availability_t *self = (availability_t *) state;
    (void) deadline;
    static const char *keys [] = {
        "name", "owner", "kind", "capacity", "price", "approval", "slots",
        "request_id", NULL
    };
    static const char *approvals [] = { "auto", "manual", NULL };
    const char *name = NULL, *owner = NULL, *kind = NULL, *approval = "auto";
    const char *request_id = NULL;
    int64_t capacity = 1, price = 0;
    json_t *slots = NULL;
    if (field_only (request, keys, reply_p)
    ||  field_string (request, "name", true, 0, &name, reply_p)
    ||  field_token (request, "owner", true, &owner, reply_p)
    ||  field_string (request, "kind", false, 0, &kind, reply_p)
    ||  field_int (request, "capacity", false, 1, RESV_CAPACITY_MAX, &capacity,
                   reply_p)
    ||  field_int (request, "price", false, 0, RESV_PRICE_MAX, &price, reply_p)
    ||  field_choice (request, "approval", false, approvals, &approval, reply_p)
    ||  field_token (request, "request_id", false, &request_id, reply_p)
    ||  s_field_slots (request, &slots, reply_p))
        return RESV_BAD_REQUEST;
    char *slots_text = slots? json_dumps (slots, JSON_COMPACT):
                              strdup ("[\"all-day\"]");
    json_decref (slots);
    //  What this add asks, defaults and all, in one text to compare.
    char *asked = NULL;
    if (request_id && slots_text) {
        json_t *fields = json_pack ("{s:s,s:s?,s:I,s:I,s:s,s:s}",
                                    "name", name, "kind", kind,
                                    "capacity", (json_int_t) capacity,
                                    "price", (json_int_t) price,
                                    "approval", approval, "slots", slots_text);
        asked = json_dumps (fields, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref (fields);
    }
    char id [sizeof S_ID_PREFIX + 32] = S_ID_PREFIX;
    char now [RESV_TIME_SIZE];
    resv_time_now (now);
    const char *trouble = !slots_text || (request_id && !asked)
                        ? "out of memory"
                        : resv_random_hex (id + strlen (S_ID_PREFIX), 8)
                        ? "no random source": NULL;
    if (trouble) {
        free (slots_text);
        free (asked);
        zsys_error ("availability: add resource %s: %s", name, trouble);
        *reply_p = worker_error (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                 "availability: add resource %.64s: %s",
                                 name, trouble);
        return RESV_INTERNAL;
    }
    int status;
    json_t *resource = NULL;
    if (store_begin (self->store)) {
        status = S_FAIL (self->store, reply_p, "add resource", name);
        goto done;
    }
    if (request_id) {
        sqlite3_stmt *stmt = store_stmt (self->store,
            "SELECT " S_RESOURCE_COLUMNS " FROM resources "
            "WHERE owner = ?1 AND request_id = ?2");
        int rc = SQLITE_ERROR;
        if (stmt) {
            sqlite3_bind_text (stmt, 1, owner, -1, SQLITE_STATIC);
            sqlite3_bind_text (stmt, 2, request_id, -1, SQLITE_STATIC);
            rc = sqlite3_step (stmt);
            if (rc == SQLITE_ROW)
                resource = s_resource_json (stmt);
            sqlite3_reset (stmt);
        }
        if (rc == SQLITE_ROW && resource) {
            //  A retry: the first add's reply, and nothing more; or the
            //  key used again for another resource.
            char *first = s_add_asked (self->store, owner, request_id, &rc);
            bool other = first && !streq (first, asked);
            free (first);
            if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
                json_decref (resource);
                status = S_FAIL (self->store, reply_p, "add resource", name);
                goto done;
            }
            store_rollback (self->store);
            if (other) {
                json_decref (resource);
                status = worker_fail (reply_p, RESV_CONFLICT,
                                      RESV_REASON_CONFLICT,
                                      "request_id %s was used for another "
                                      "resource.add", request_id);
            }
            else {
                *reply_p = worker_json (resource);
                status = RESV_CREATED;
            }
            goto done;
        }
        if (rc != SQLITE_DONE) {
            status = S_FAIL (self->store, reply_p, "add resource", name);
            goto done;
        }
    }
    sqlite3_stmt *stmt = store_stmt (self->store,
        "INSERT INTO resources (id, name, kind, owner, capacity, price, "
        "approval, slots, request_id, created_at, updated_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10)");
    if (!stmt) {
        status = S_FAIL (self->store, reply_p, "add resource", id);
        goto done;
    }
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, name, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 4, owner, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 5, capacity);
    sqlite3_bind_int64 (stmt, 6, price);
    sqlite3_bind_text (stmt, 7, approval, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 8, slots_text, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 9, request_id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 10, now, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc == SQLITE_DONE && request_id) {
        stmt = store_stmt (self->store, "INSERT INTO adds (owner, request_id, "
                                        "asked) VALUES (?1, ?2, ?3)");
        rc = SQLITE_ERROR;
        if (stmt) {
            sqlite3_bind_text (stmt, 1, owner, -1, SQLITE_STATIC);
            sqlite3_bind_text (stmt, 2, request_id, -1, SQLITE_STATIC);
            sqlite3_bind_text (stmt, 3, asked, -1, SQLITE_STATIC);
            rc = sqlite3_step (stmt);
            sqlite3_reset (stmt);
        }
    }
    bool removed;
    if (rc != SQLITE_DONE
    ||  s_resource_load (self->store, id, &resource, &removed)) {
        status = S_FAIL (self->store, reply_p, "add resource", id);
        goto done;
    }
    status = s_emit_commit (self, "resource.registered", resource,
                            RESV_CREATED, "add resource", reply_p);
    json_decref (resource);
done:
    free (slots_text);
    free (asked);
    return status;
}

//  resource.show {id} -> resource, or 404 (also once removed).
static int
s_resource_show (void *state, json_t *request, int64_t deadline,
                 zframe_t **reply_p)
{
    availability_t *self = (availability_t *) state;
    (void) deadline;
    static const char *keys [] = { "id", NULL };
    const char *id = NULL;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "id", true, &id, reply_p))
        return RESV_BAD_REQUEST;
    json_t *resource = NULL;
    int rc = s_resource_live (self->store, id, &resource);
    if (rc == RESV_NOT_FOUND)
        return s_not_found (self->store, reply_p, id);
    if (rc)
        return S_FAIL (self->store, reply_p, "show resource", id);
    *reply_p = worker_json (resource);
    return RESV_OK;
}

//  resource.list {owner?, kind?, limit?, after?} -> {"items":[...]}, in the
//  order they were added, with "next" (the cursor to pass as after) when
//  cut by limit or by the size of a reply.
static int
s_resource_list (void *state, json_t *request, int64_t deadline,
                 zframe_t **reply_p)
{
    availability_t *self = (availability_t *) state;
    (void) deadline;
    static const char *keys [] = { "owner", "kind", "limit", "after", NULL };
    const char *owner = NULL, *kind = NULL, *after = NULL;
    int64_t limit = RESV_PAGE_MAX;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "owner", false, &owner, reply_p)
    ||  field_string (request, "kind", false, 0, &kind, reply_p)
    ||  field_int (request, "limit", false, 1, RESV_PAGE_MAX, &limit, reply_p)
    ||  field_token (request, "after", false, &after, reply_p))
        return RESV_BAD_REQUEST;
    //  The cursor is the position (rowid) of the last resource returned.
    int64_t position = 0;
    if (after && store_page_after (after, 'p', &position)) {
        *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                 "after must be the next cursor of a "
                                 "previous list");
        return RESV_BAD_REQUEST;
    }
    sqlite3_stmt *stmt = store_stmt (self->store,
        "SELECT " S_RESOURCE_COLUMNS " FROM resources WHERE removed = 0 "
        "AND (?1 IS NULL OR owner = ?1) AND (?2 IS NULL OR kind = ?2) "
        "AND rowid > ?3 ORDER BY rowid");
    if (!stmt)
        return S_FAIL (self->store, reply_p, "list resources", owner? owner: "");
    sqlite3_bind_text (stmt, 1, owner, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 3, position);
    json_t *items = json_array ();
    size_t bytes = 0;
    int64_t last = 0;
    int rc;
    while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        if ((int64_t) json_array_size (items) == limit || bytes > S_LIST_BYTES)
            break;
        json_t *resource = s_resource_json (stmt);
        if (!resource) {
            rc = SQLITE_NOMEM;
            break;
        }
        //  A close upper bound of the resource's encoded size.
        bytes += 200 + strlen (s_text (stmt, 1)) + strlen (s_text (stmt, 2))
               + strlen (s_text (stmt, 7));
        json_array_append_new (items, resource);
        last = sqlite3_column_int64 (stmt, 11);
    }
    sqlite3_reset (stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        json_decref (items);
        return S_FAIL (self->store, reply_p, "list resources", owner? owner: "");
    }
    json_t *reply = json_pack ("{s:o}", "items", items);
    if (rc == SQLITE_ROW) {
        char cursor [32];
        snprintf (cursor, sizeof cursor, "p%" PRId64, last);
        json_object_set_new (reply, "next", json_string (cursor));
    }
    *reply_p = worker_json (reply);
    return RESV_OK;
}

//  The largest number of units held on any day and slot of resource id
//  (into *held_p), in the current transaction. Returns 0 or -1.
static int
s_max_held (store_t *store, const char *id, int64_t *held_p)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "SELECT coalesce (max (held), 0) FROM usage WHERE resource = ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    *held_p = sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW? 0: -1;
}

//  Finds a slot of resource id that holds units and is not in slots.
//  Returns 1 with the label copied into label, 0 if none, -1 on failure.
static int
s_slot_in_use (store_t *store, const char *id, json_t *slots, char *label,
               size_t size)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "SELECT DISTINCT slot FROM usage WHERE resource = ?1 AND held > 0");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    int rc, found = 0;
    while (!found && (rc = sqlite3_step (stmt)) == SQLITE_ROW) {
        const char *slot = s_text (stmt, 0);
        found = 1;
        size_t index;
        json_t *kept;
        json_array_foreach (slots, index, kept)
            if (streq (json_string_value (kept), slot))
                found = 0;
        if (found)
            snprintf (label, size, "%s", slot);
    }
    sqlite3_reset (stmt);
    return found? 1: rc == SQLITE_DONE? 0: -1;
}

//  resource.update {id, owner, name?, kind?, capacity?, price?, approval?,
//  slots?} -> 200 resource; 403 not the owner; 409 if the capacity would
//  drop below what is held, or a slot holding units would go. Emits
//  resource.updated when something changed.
static int
s_resource_update (void *state, json_t *request, int64_t deadline,
                   zframe_t **reply_p)
{
    availability_t *self = (availability_t *) state;
    (void) deadline;
    static const char *keys [] = {
        "id", "owner", "name", "kind", "capacity", "price", "approval",
        "slots", NULL
    };
    static const char *approvals [] = { "auto", "manual", NULL };
    const char *id = NULL, *owner = NULL;
    json_t *change = json_object ();     //  The members given, checked
    const char *name = NULL, *kind = NULL, *approval = NULL;
    int64_t capacity = -1, price = -1;
    json_t *slots = NULL;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "id", true, &id, reply_p)
    ||  field_token (request, "owner", true, &owner, reply_p)
    ||  field_string (request, "name", false, 0, &name, reply_p)
    ||  field_string (request, "kind", false, 0, &kind, reply_p)
    ||  field_int (request, "capacity", false, 1, RESV_CAPACITY_MAX, &capacity,
                   reply_p)
    ||  field_int (request, "price", false, 0, RESV_PRICE_MAX, &price, reply_p)
    ||  field_choice (request, "approval", false, approvals, &approval, reply_p)
    ||  s_field_slots (request, &slots, reply_p)) {
        json_decref (change);
        return RESV_BAD_REQUEST;
    }
    if (name)
        json_object_set_new (change, "name", json_string (name));
    if (kind)
        json_object_set_new (change, "kind", json_string (kind));
    if (capacity >= 0)
        json_object_set_new (change, "capacity", json_integer (capacity));
    if (price >= 0)
        json_object_set_new (change, "price", json_integer (price));
    if (approval)
        json_object_set_new (change, "approval", json_string (approval));
    if (slots)
        json_object_set_new (change, "slots", slots);

    int status;
    json_t *resource = NULL;
    if (store_begin (self->store)) {
        status = S_FAIL (self->store, reply_p, "update resource", id);
        goto done;
    }
    int rc = s_resource_live (self->store, id, &resource);
    if (rc) {
        status = rc == RESV_NOT_FOUND? s_not_found (self->store, reply_p, id):
                 S_FAIL (self->store, reply_p, "update resource", id);
        goto done;
    }
    if (!streq (s_str (resource, "owner"), owner)) {
        status = s_forbidden (self->store, reply_p, id);
        goto done;
    }
    bool changed = false;
    const char *key;
    json_t *value;
    json_object_foreach (change, key, value)
        if (!json_equal (value, json_object_get (resource, key)))
            changed = true;
    if (!changed) {
        //  A repeat, or nothing asked: no write and no event.
        store_rollback (self->store);
        *reply_p = worker_json (json_incref (resource));
        status = RESV_OK;
        goto done;
    }
    int64_t held = 0;
    if (capacity >= 0 && s_max_held (self->store, id, &held)) {
        status = S_FAIL (self->store, reply_p, "update resource", id);
        goto done;
    }
    if (capacity >= 0 && capacity < held) {
        store_rollback (self->store);
        *reply_p = worker_error (RESV_CONFLICT, RESV_REASON_CONFLICT,
                                 "capacity of '%s' cannot drop to %" PRId64
                                 ": %" PRId64 " units are held on some day",
                                 id, capacity, held);
        status = RESV_CONFLICT;
        goto done;
    }
    char label [RESV_SLOT_MAX + 1];
    rc = slots? s_slot_in_use (self->store, id, slots, label, sizeof label): 0;
    if (rc) {
        if (rc < 0)
            status = S_FAIL (self->store, reply_p, "update resource", id);
        else {
            store_rollback (self->store);
            *reply_p = worker_error (RESV_CONFLICT, RESV_REASON_CONFLICT,
                                     "slot '%s' of '%s' holds units and "
                                     "cannot be removed", label, id);
            status = RESV_CONFLICT;
        }
        goto done;
    }
    json_object_update (resource, change);
    char now [RESV_TIME_SIZE];
    json_object_set_new (resource, "updated_at", json_string (resv_time_now (now)));
    char *slots_text = json_dumps (json_object_get (resource, "slots"), JSON_COMPACT);
    sqlite3_stmt *stmt = store_stmt (self->store,
        "UPDATE resources SET name = ?2, kind = ?3, capacity = ?4, price = ?5, "
        "approval = ?6, slots = ?7, updated_at = ?8 WHERE id = ?1");
    if (!stmt || !slots_text) {
        free (slots_text);
        status = S_FAIL (self->store, reply_p, "update resource", id);
        goto done;
    }
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, s_str (resource, "name"), -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, s_str (resource, "kind"), -1, SQLITE_STATIC);
    sqlite3_bind_int64 (stmt, 4, s_int (resource, "capacity"));
    sqlite3_bind_int64 (stmt, 5, s_int (resource, "price"));
    sqlite3_bind_text (stmt, 6, s_str (resource, "approval"), -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 7, slots_text, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 8, now, -1, SQLITE_STATIC);
    rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    free (slots_text);
    if (rc != SQLITE_DONE) {
        //  The checks above make the trigger's refusal unreachable unless
        //  another writer got in; the store still has the last word.
        if (s_trigger_aborted (self->store)) {
            store_rollback (self->store);
            *reply_p = worker_error (RESV_CONFLICT, RESV_REASON_CONFLICT,
                                     "capacity of '%s' cannot drop below "
                                     "the units held", id);
            status = RESV_CONFLICT;
        }
        else
            status = S_FAIL (self->store, reply_p, "update resource", id);
        goto done;
    }
    status = s_emit_commit (self, "resource.updated", resource, RESV_OK,
                            "update resource", reply_p);
done:
    json_decref (resource);
    json_decref (change);
    return status;
}

//  resource.remove {id, owner} -> 200 resource as it was; 403; 409 while
//  it holds units (PENDING or CONFIRMED reservations). Removing a removed
//  resource again is a success without an event.
static int
s_resource_remove (void *state, json_t *request, int64_t deadline,
                   zframe_t **reply_p)
{
    availability_t *self = (availability_t *) state;
    (void) deadline;
    static const char *keys [] = { "id", "owner", NULL };
    const char *id = NULL, *owner = NULL;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "id", true, &id, reply_p)
    ||  field_token (request, "owner", true, &owner, reply_p))
        return RESV_BAD_REQUEST;
    if (store_begin (self->store))
        return S_FAIL (self->store, reply_p, "remove resource", id);
    json_t *resource = NULL;
    bool removed = false;
    int rc = s_resource_load (self->store, id, &resource, &removed);
    if (rc == RESV_NOT_FOUND)
        return s_not_found (self->store, reply_p, id);
    if (rc)
        return S_FAIL (self->store, reply_p, "remove resource", id);
    if (!streq (s_str (resource, "owner"), owner)) {
        //  To anyone but its owner, a removed resource is simply gone.
        json_decref (resource);
        return removed? s_not_found (self->store, reply_p, id):
                        s_forbidden (self->store, reply_p, id);
    }
    if (removed) {
        //  A repeat of a remove that was done: its answer, no new event.
        store_rollback (self->store);
        *reply_p = worker_json (resource);
        return RESV_OK;
    }
    sqlite3_stmt *stmt = store_stmt (self->store,
        "SELECT EXISTS (SELECT 1 FROM usage WHERE resource = ?1 AND held > 0)");
    int status;
    if (!stmt) {
        status = S_FAIL (self->store, reply_p, "remove resource", id);
        goto done;
    }
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    rc = sqlite3_step (stmt);
    bool held = sqlite3_column_int (stmt, 0) != 0;
    sqlite3_reset (stmt);
    if (rc != SQLITE_ROW) {
        status = S_FAIL (self->store, reply_p, "remove resource", id);
        goto done;
    }
    if (held) {
        store_rollback (self->store);
        *reply_p = worker_error (RESV_CONFLICT, RESV_REASON_CONFLICT,
                                 "resource '%s' has pending or confirmed "
                                 "reservations", id);
        status = RESV_CONFLICT;
        goto done;
    }
    char now [RESV_TIME_SIZE];
    stmt = store_stmt (self->store,
        "UPDATE resources SET removed = 1, updated_at = ?2 WHERE id = ?1");
    if (!stmt) {
        status = S_FAIL (self->store, reply_p, "remove resource", id);
        goto done;
    }
    sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 2, resv_time_now (now), -1, SQLITE_STATIC);
    rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE) {
        status = S_FAIL (self->store, reply_p, "remove resource", id);
        goto done;
    }
    status = s_emit_commit (self, "resource.removed", resource, RESV_OK,
                            "remove resource", reply_p);
done:
    json_decref (resource);
    return status;
}


//  --------------------------------------------------------------------------
//  Capacity

//  availability {resource, date, days?} -> {"resource":ID,"days":[{"date",
//  "slot","capacity","held","free"}]}, by date, then slot in the
//  resource's order.
static int
s_availability (void *state, json_t *request, int64_t deadline,
                zframe_t **reply_p)
{
    availability_t *self = (availability_t *) state;
    (void) deadline;
    static const char *keys [] = { "resource", "date", "days", NULL };
    const char *id = NULL;
    int64_t first = 0, days = 1;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "resource", true, &id, reply_p)
    ||  s_field_stay (request, "date", &first, &days, reply_p))
        return RESV_BAD_REQUEST;
    //  One read transaction: the capacity and the usage of one moment.
    if (store_begin_read (self->store))
        return S_FAIL (self->store, reply_p, "read availability of", id);
    json_t *resource = NULL;
    int rc = s_resource_live (self->store, id, &resource);
    if (rc == RESV_NOT_FOUND)
        return s_not_found (self->store, reply_p, id);
    if (rc)
        return S_FAIL (self->store, reply_p, "read availability of", id);
    json_t *slots = json_object_get (resource, "slots");
    size_t nslots = json_array_size (slots);
    int64_t capacity = s_int (resource, "capacity");
    //  Every stay a reserve takes can be asked about: RESV_DAYS_MAX days
    //  of RESV_SLOTS_MAX slots are some 12 000 entries of about 100 bytes,
    //  far under what a reply may carry (resv_frame_limit, 16 MB).
    int64_t *held = (int64_t *) zmalloc (sizeof (int64_t) * nslots * (size_t) days);
    sqlite3_stmt *stmt = store_stmt (self->store,
        "SELECT day, slot, held FROM usage "
        "WHERE resource = ?1 AND day BETWEEN ?2 AND ?3");
    rc = SQLITE_ERROR;
    if (stmt) {
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 2, first);
        sqlite3_bind_int64 (stmt, 3, first + days - 1);
        while ((rc = sqlite3_step (stmt)) == SQLITE_ROW) {
            int64_t day = sqlite3_column_int64 (stmt, 0) - first;
            const char *slot = s_text (stmt, 1);
            for (size_t index = 0; index < nslots; index++)
                if (streq (json_string_value (json_array_get (slots, index)), slot))
                    held [day * (int64_t) nslots + (int64_t) index] =
                        sqlite3_column_int64 (stmt, 2);
        }
        sqlite3_reset (stmt);
    }
    if (rc != SQLITE_DONE) {
        free (held);
        json_decref (resource);
        return S_FAIL (self->store, reply_p, "read availability of", id);
    }
    store_rollback (self->store);   //  Ends the read transaction
    json_t *entries = json_array ();
    for (int64_t day = 0; day < days; day++) {
        char date [16];
        resv_date_format (first + day, date);
        for (size_t index = 0; index < nslots; index++) {
            int64_t units = held [day * (int64_t) nslots + (int64_t) index];
            json_array_append_new (entries, json_pack ("{s:s,s:s,s:I,s:I,s:I}",
                "date", date,
                "slot", json_string_value (json_array_get (slots, index)),
                "capacity", (json_int_t) capacity, "held", (json_int_t) units,
                "free", (json_int_t) (capacity > units? capacity - units: 0)));
        }
    }
    free (held);
    json_decref (resource);
    *reply_p = worker_json (json_pack ("{s:s,s:o}", "resource", id,
                                       "days", entries));
    return RESV_OK;
}

//  After a hold was refused for capacity: the first day of the stay that
//  lacks units, for the message. Runs outside any transaction.
static void
s_full_day (store_t *store, const char *id, const char *slot, int64_t first,
            int64_t days, int64_t units, char *date)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "SELECT u.day FROM usage AS u JOIN resources AS r ON r.id = u.resource "
        "WHERE u.resource = ?1 AND u.slot = ?2 AND u.day BETWEEN ?3 AND ?4 "
        "AND u.held + ?5 > r.capacity ORDER BY u.day LIMIT 1");
    int64_t day = first;
    if (stmt) {
        sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC);
        sqlite3_bind_text (stmt, 2, slot, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (stmt, 3, first);
        sqlite3_bind_int64 (stmt, 4, first + days - 1);
        sqlite3_bind_int64 (stmt, 5, units);
        if (sqlite3_step (stmt) == SQLITE_ROW)
            day = sqlite3_column_int64 (stmt, 0);
        sqlite3_reset (stmt);
    }
    resv_date_format (day, date);
}

//  What a reservation already holds: a summary of its holds rows.
typedef struct {
    int64_t count;              //  Days recorded; 0: none
    char resource [FIELD_TOKEN_MAX + 1];
    char slot [RESV_SLOT_MAX + 1];
    int64_t first;              //  First day
    int64_t units;
    int released;               //  Highest state of its days
} s_holding_t;

//  Reads what reservation holds into *holding. Returns 0 or -1.
static int
s_holding (store_t *store, const char *reservation, s_holding_t *holding)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "SELECT count (*), min (day), resource, slot, units, max (released) "
        "FROM holds WHERE reservation = ?1");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, reservation, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW) {
        holding->count = sqlite3_column_int64 (stmt, 0);
        holding->first = sqlite3_column_int64 (stmt, 1);
        snprintf (holding->resource, sizeof holding->resource, "%s", s_text (stmt, 2));
        snprintf (holding->slot, sizeof holding->slot, "%s", s_text (stmt, 3));
        holding->units = sqlite3_column_int64 (stmt, 4);
        holding->released = sqlite3_column_int (stmt, 5);
    }
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW? 0: -1;
}

//  The end of an insert into usage that adds to a day's held units.
#define S_USAGE_ADD \
    " ON CONFLICT (resource, day, slot) DO UPDATE SET held = held + excluded.held"

//  Holds again every released day of reservation: adds its units to
//  usage, where the triggers refuse to go past capacity. Returns 0, -1 on
//  a store failure, or RESV_CONFLICT when a day lacks capacity.
static int
s_hold_released (store_t *store, const char *reservation)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "INSERT INTO usage (resource, day, slot, held) "
        "SELECT resource, day, slot, units FROM holds "
        "WHERE reservation = ?1 AND released = 1" S_USAGE_ADD);
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, reservation, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    if (rc != SQLITE_DONE)
        return s_trigger_aborted (store)? RESV_CONFLICT: -1;
    stmt = store_stmt (store,
        "UPDATE holds SET released = 0 WHERE reservation = ?1 AND released = 1");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, reservation, -1, SQLITE_STATIC);
    rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  Deletes the rows of reservation's released hold, which hold no units.
//  Returns 0, or -1 on a store failure.
static int
s_holds_forget (store_t *store, const char *reservation)
{
    sqlite3_stmt *stmt = store_stmt (store,
        "DELETE FROM holds WHERE reservation = ?1 AND released = 1");
    if (!stmt)
        return -1;
    sqlite3_bind_text (stmt, 1, reservation, -1, SQLITE_STATIC);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  Holds a new stay of reservation, day by day: its rows in holds, held,
//  and its units added to usage, where the triggers refuse to go past
//  capacity. A statement per day, not one over a recursive list of the
//  days: SQLite builds a temporary b-tree for each of those (the list, and
//  the copy it inserts from), four per reservation. Returns 0, -1 on a
//  store failure, or RESV_CONFLICT when a day lacks capacity (what was
//  written before is undone with the transaction).
static int
s_hold_new (store_t *store, const char *reservation, const char *resource,
            int64_t first, int64_t days, const char *slot, int64_t units)
{
    sqlite3_stmt *hold = store_stmt (store,
        "INSERT INTO holds (reservation, resource, day, slot, units, released)"
        " VALUES (?1, ?2, ?3, ?4, ?5, 0)");
    sqlite3_stmt *use = store_stmt (store,
        "INSERT INTO usage (resource, day, slot, held) VALUES (?1, ?2, ?3, ?4)"
        S_USAGE_ADD);
    if (!hold || !use)
        return -1;
    sqlite3_bind_text (hold, 1, reservation, -1, SQLITE_STATIC);
    sqlite3_bind_text (hold, 2, resource, -1, SQLITE_STATIC);
    sqlite3_bind_text (hold, 4, slot, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (hold, 5, units);
    sqlite3_bind_text (use, 1, resource, -1, SQLITE_STATIC);
    sqlite3_bind_text (use, 3, slot, -1, SQLITE_STATIC);
    sqlite3_bind_int64 (use, 4, units);
    for (int64_t day = first; day < first + days; day++) {
        sqlite3_bind_int64 (hold, 3, day);
        int rc = sqlite3_step (hold);
        sqlite3_reset (hold);
        if (rc != SQLITE_DONE)
            return -1;
        sqlite3_bind_int64 (use, 2, day);
        rc = sqlite3_step (use);
        sqlite3_reset (use);
        if (rc != SQLITE_DONE)
            return s_trigger_aborted (store)? RESV_CONFLICT: -1;
    }
    return 0;
}

//  hold {reservation, resource, date, days?, slot?, units?} -> 200
//  {"resource":{...},"slot":S}; 404 unknown or removed resource; 400
//  unknown slot; 409 no_capacity (nothing held) or a reservation id that
//  already holds something else or has ended. Idempotent by reservation.
static int
s_hold (void *state, json_t *request, int64_t deadline,
        zframe_t **reply_p)
{
    availability_t *self = (availability_t *) state;
    static const char *keys [] = {
        "reservation", "resource", "date", "days", "slot", "units", NULL
    };
    const char *reservation = NULL, *id = NULL, *slot = NULL;
    int64_t first = 0, days = 1, units = 1;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "reservation", true, &reservation, reply_p)
    ||  field_token (request, "resource", true, &id, reply_p)
    ||  s_field_stay (request, "date", &first, &days, reply_p)
    ||  field_string (request, "slot", false, RESV_SLOT_MAX, &slot, reply_p)
    ||  field_int (request, "units", false, 1, RESV_UNITS_MAX, &units, reply_p))
        return RESV_BAD_REQUEST;
    store_t *store = self->store;
    if (store_begin (store))
        return S_FAIL (store, reply_p, "hold", reservation);
    char *resource = NULL, *slots = NULL;
    int rc = s_resource_text (store, id, &resource, &slots);
    if (rc == RESV_NOT_FOUND)
        return s_not_found (store, reply_p, id);
    if (rc)
        return S_FAIL (store, reply_p, "hold", reservation);
    int status = RESV_OK;
    s_slot_find_t find = { .wanted = slot };
    jscan_array (slots, strlen (slots), s_slot_item, &find);
    if (slot && !find.known) {
        store_rollback (store);
        *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                 "resource '%s' has no slot '%s'", id, slot);
        status = RESV_BAD_REQUEST;
        goto done;
    }
    if (!slot)
        slot = find.known? find.found: NULL;
    s_holding_t holding;
    if (s_holding (store, reservation, &holding)) {
        status = S_FAIL (store, reply_p, "hold", reservation);
        goto done;
    }
    bool requested_slot = json_object_get (request, "slot")
                       && !json_is_null (json_object_get (request, "slot"));
    if (holding.count
    && (!streq (holding.resource, id) || holding.first != first
    ||  holding.count != days || holding.units != units
    ||  (requested_slot && !streq (holding.slot, slot)))) {
        store_rollback (store);
        *reply_p = worker_error (RESV_CONFLICT, RESV_REASON_CONFLICT,
                                 "reservation '%s' already holds other units",
                                 reservation);
        status = RESV_CONFLICT;
        goto done;
    }
    if (holding.count && holding.released == S_ENDED) {
        store_rollback (store);
        *reply_p = worker_error (RESV_CONFLICT, RESV_REASON_CONFLICT,
                                 "reservation '%s' has ended", reservation);
        status = RESV_CONFLICT;
        goto done;
    }
    if (holding.count && holding.released == S_RELEASED) {
        //  Released by a compensation, and its slot removed since: a
        //  retry holds anew, in a slot the resource has now, never again
        //  in the one removed (whose units nothing checks any more).
        s_slot_find_t kept = { .wanted = holding.slot };
        jscan_array (slots, strlen (slots), s_slot_item, &kept);
        if (!kept.known) {
            if (s_holds_forget (store, reservation)) {
                status = S_FAIL (store, reply_p, "hold", reservation);
                goto done;
            }
            holding.count = 0;
        }
    }
    if (holding.count)
        slot = holding.slot;
    if (holding.count && holding.released == S_HELD) {
        //  A retry of a hold that was done: its answer again, no change.
        store_rollback (store);
        goto reply;
    }
    //  A new stay, or one released (by a compensation) held again.
    rc = holding.count? s_hold_released (store, reservation):
                        s_hold_new (store, reservation, id, first, days,
                                    slot, units);
    if (rc == RESV_CONFLICT) {
        store_rollback (store);
        char date [16];
        s_full_day (store, id, slot, first, days, units, date);
        *reply_p = worker_error (RESV_CONFLICT, RESV_REASON_NO_CAPACITY,
                                 "resource '%s' has not enough free units on "
                                 "%s (slot '%s'): %" PRId64 " asked", id, date,
                                 slot, units);
        status = RESV_CONFLICT;
        goto done;
    }
    if (rc) {
        status = S_FAIL (store, reply_p, "hold", reservation);
        goto done;
    }
    //  The caller has given up at its deadline and may already have
    //  compensated with a release: holding now would hold for nobody. At
    //  the deadline's very millisecond too: the broker answers the caller
    //  504 in it. (The deadline is the broker's, counted from when it sent
    //  the request: worker.c, s_clock_offset.)
    if (zclock_mono () >= deadline) {
        store_rollback (store);
        *reply_p = worker_error (RESV_TIMEOUT, RESV_REASON_DEADLINE,
                                 "hold %s: the deadline passed", reservation);
        status = RESV_TIMEOUT;
        goto done;
    }
    if (store_commit (store)) {
        status = S_FAIL (store, reply_p, "hold", reservation);
        goto done;
    }
reply: {
        //  {"resource":{...},"slot":S}, built around the resource's text.
        const char *members [] = { "slot", slot, NULL };
        *reply_p = worker_text (store_object_text ("resource", resource,
                                                   members));
        if (!*reply_p)
            status = worker_fail (reply_p, RESV_INTERNAL, RESV_REASON_INTERNAL,
                                  "hold %s: out of memory", reservation);
    }
done:
    free (resource);
    free (slots);
    return status;
}

//  release {reservation} -> 200 {"reservation":ID,"released":N}, N the
//  days given back by this call (0 when nothing was held). Idempotent.
static int
s_release_method (void *state, json_t *request, int64_t deadline,
                  zframe_t **reply_p)
{
    availability_t *self = (availability_t *) state;
    (void) deadline;
    static const char *keys [] = { "reservation", NULL };
    const char *reservation = NULL;
    if (field_only (request, keys, reply_p)
    ||  field_token (request, "reservation", true, &reservation, reply_p))
        return RESV_BAD_REQUEST;
    int count = 0;
    if (store_begin (self->store)
    ||  s_release (self->store, reservation, S_RELEASED, &count)
    ||  store_commit (self->store))
        return S_FAIL (self->store, reply_p, "release", reservation);
    *reply_p = worker_json (json_pack ("{s:s,s:i}", "reservation", reservation,
                                       "released", count));
    return RESV_OK;
}


//  --------------------------------------------------------------------------
//  The service

static const worker_method_t s_methods [] = {
    { RESV_METHOD_RESOURCE_ADD, s_resource_add },
    { RESV_METHOD_RESOURCE_LIST, s_resource_list },
    { RESV_METHOD_RESOURCE_SHOW, s_resource_show },
    { RESV_METHOD_RESOURCE_UPDATE, s_resource_update },
    { RESV_METHOD_RESOURCE_REMOVE, s_resource_remove },
    { RESV_METHOD_AVAILABILITY, s_availability },
    { RESV_METHOD_HOLD, s_hold },
    { RESV_METHOD_RELEASE, s_release_method },
    { NULL, NULL }
};

int
svc_availability (void *state, const char *method, zframe_t **body_p,
                  int64_t deadline, zframe_t **reply_p)
{
    return worker_dispatch (s_methods, "availability", state, method, body_p,
                            deadline, reply_p);
}

void *
svc_availability_new (resv_cfg_t *cfg, worker_t *worker)
{
    availability_t *self = (availability_t *) zmalloc (sizeof (availability_t));
    self->store = store_new (cfg, S_NAME, s_schema);
    store_keep_alive (self->store, worker);
    if (self->store) {
        //  A release does not depend on any other: by type, the consumer
        //  hears only the reservations that end unused, not every
        //  reservation.* event.
        events_config_t config = {
            .store = S_NAME, .schema = s_schema,
            .consumer = S_NAME, .apply = s_apply, .types = s_types,
            .by_type = true, .state = self
        };
        self->events = events_new (cfg, &config);
    }
    if (!self->events) {
        void *state = self;
        svc_availability_destroy (&state);
        return NULL;
    }
    //  Holds come in bursts and each is a short transaction: a burst
    //  shares one commit.
    self->batch = (events_batch_t) { self->store, self->events };
    worker_set_batch (worker, events_batch_begin, events_batch_end, &self->batch);
    return self;
}

void
svc_availability_destroy (void **state_p)
{
    if (!state_p || !*state_p)
        return;
    availability_t *self = (availability_t *) *state_p;
    events_destroy (&self->events);
    store_destroy (&self->store);
    free (self);
    *state_p = NULL;
}
