/*  svc_availability_test.c: the availability service (svc_availability.c),
    against a real broker (in-process actor, for the events actor's
    journal) and real SQLite files in a temporary directory.

    Requests go straight to the handler; reservation events are published
    into the journal by hand, in the shapes of doc/saga.md, and consumed
    by the service's events actor as in a worker process.
*/

#include <pthread.h>
#include "testkit.h"
#include "resv_util.h"

//  A state of the service, with no worker (testkit.h): every test's
//  fixture.
typedef testkit_service_t fixture_t;


//  --------------------------------------------------------------------------
//  Helpers

//  Calls method on state with a raw body; returns the status and the reply
//  parsed (caller owns; NULL: freed).
static int
s_call_raw (void *state, const char *method, const char *body, size_t size,
            json_t **reply_p)
{
    return testkit_handle (svc_availability, state, method, body, size, 5000,
                           reply_p);
}

//  Calls method with request (taken) as body.
static int
s_call (fixture_t *self, const char *method, json_t *request, json_t **reply_p)
{
    return testkit_handle_json (svc_availability, self->state, method,
                                request, reply_p);
}

//  The status of method with request, asserting that a refusal carries an
//  error object with reason. Returns the status.
static int
s_status (fixture_t *self, const char *method, json_t *request,
          const char *reason)
{
    json_t *reply = NULL;
    int status = s_call (self, method, request, &reply);
    if (status >= 400 && reason)
        assert_string_equal (testkit_reason (reply), reason);
    json_decref (reply);
    return status;
}

//  Adds a resource from resource (taken); returns its id (caller frees).
static char *
s_add (fixture_t *self, json_t *resource)
{
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "resource.add", resource, &reply), 201);
    char *id = strdup (json_string_value (json_object_get (reply, "id")));
    json_decref (reply);
    return id;
}

//  Units held on date in the resource's first slot, from availability.
static int64_t
s_held (fixture_t *self, const char *resource, const char *date)
{
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "availability", json_pack ("{s:s,s:s}",
                      "resource", resource, "date", date), &reply), 200);
    json_t *day = json_array_get (json_object_get (reply, "days"), 0);
    int64_t held = json_integer_value (json_object_get (day, "held"));
    json_decref (reply);
    return held;
}

static int
s_hold (fixture_t *self, const char *reservation, const char *resource,
        const char *date, int days, int units)
{
    return s_status (self, "hold", json_pack ("{s:s,s:s,s:s,s:i,s:i}",
                     "reservation", reservation, "resource", resource,
                     "date", date, "days", days, "units", units), NULL);
}

//  A count from the test's own connection.
static int64_t
s_count (fixture_t *self, const char *sql)
{
    return testkit_sql_int (self->store, sql);
}

//  Publishes an event of type about reservation by hand (reservation NULL:
//  an event that names none).
static void
s_publish (fixture_t *self, const char *type, const char *reservation)
{
    testkit_publish (self->kit, testkit_event (self->kit, NULL, type,
                                               reservation, NULL));
}

static bool
s_wait_held (fixture_t *self, const char *resource, const char *date,
             int64_t held)
{
    return TESTKIT_WAIT (5000, s_held (self, resource, date) == held);
}


//  --------------------------------------------------------------------------
//  Resources: success

static void
test_add_with_defaults (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "resource.add", json_pack ("{s:s,s:s}",
                      "name", "Table 4", "owner", "olivia"), &reply), 201);
    const char *id = json_string_value (json_object_get (reply, "id"));
    assert_non_null (id);
    assert_int_equal (strlen (id), 20);
    assert_memory_equal (id, "res-", 4);
    assert_string_equal (json_string_value (json_object_get (reply, "name")), "Table 4");
    assert_string_equal (json_string_value (json_object_get (reply, "owner")), "olivia");
    assert_true (json_is_null (json_object_get (reply, "kind")));
    assert_int_equal (json_integer_value (json_object_get (reply, "capacity")), 1);
    assert_int_equal (json_integer_value (json_object_get (reply, "price")), 0);
    assert_string_equal (json_string_value (json_object_get (reply, "approval")), "auto");
    json_t *slots = json_pack ("[s]", "all-day");
    assert_true (json_equal (json_object_get (reply, "slots"), slots));
    json_decref (slots);
    assert_non_null (json_string_value (json_object_get (reply, "created_at")));
    json_t *shown = NULL;
    assert_int_equal (s_call (self, "resource.show",
                      json_pack ("{s:s}", "id", id), &shown), 200);
    assert_true (json_equal (shown, reply));
    json_decref (shown);
    assert_true (testkit_wait_count (self->kit, "resource.registered", NULL,
                                     1));
    json_decref (reply);
}

static void
test_add_everything_and_retry (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *body = "{\"name\":\"Villa\",\"owner\":\"o@x.org\",\"kind\":\"room\","
        "\"capacity\":3,\"price\":12500,\"approval\":\"manual\","
        "\"slots\":[\"am\",\"pm\"],\"request_id\":\"rq-7\"}";
    json_t *first = NULL, *again = NULL;
    assert_int_equal (s_call_raw (self->state, "resource.add", body,
                                  strlen (body), &first), 201);
    assert_int_equal (s_call_raw (self->state, "resource.add", body,
                                  strlen (body), &again), 201);
    //  The retry gets the same resource, and nothing more is stored.
    assert_true (json_equal (first, again));
    assert_int_equal (json_integer_value (json_object_get (first, "capacity")), 3);
    assert_int_equal (json_integer_value (json_object_get (first, "price")), 12500);
    assert_string_equal (json_string_value (json_object_get (first, "approval")), "manual");
    assert_string_equal (json_string_value (json_object_get (first, "kind")), "room");
    assert_int_equal (s_count (self, "SELECT count (*) FROM resources"), 1);
    //  The same request id of another owner is another request.
    free (s_add (self, json_pack ("{s:s,s:s,s:s}", "name", "Villa",
                 "owner", "other", "request_id", "rq-7")));
    assert_int_equal (s_count (self, "SELECT count (*) FROM resources"), 2);
    assert_true (testkit_wait_count (self->kit, "resource.registered", NULL,
                                     2));
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "resource.registered", NULL),
                      2);
    //  The key used again for another resource is refused, not answered
    //  with the first one; a retry that spells out the defaults, or comes
    //  after an update, is still a retry.
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "resource.add", json_pack ("{s:s,s:s,s:s}",
                      "name", "Cabin", "owner", "o@x.org", "request_id",
                      "rq-7"), &reply), 409);
    json_decref (reply);
    char *hut = s_add (self, json_pack ("{s:s,s:s,s:s}", "name", "Hut",
                       "owner", "o@x.org", "request_id", "rq-8"));
    assert_int_equal (s_call (self, "resource.add", json_pack (
                      "{s:s,s:s,s:i,s:i,s:s,s:[s],s:s}", "owner", "o@x.org",
                      "name", "Hut", "capacity", 1, "price", 0, "approval",
                      "auto", "slots", "all-day", "request_id", "rq-8"),
                      &reply), 201);
    assert_string_equal (json_string_value (json_object_get (reply, "id")), hut);
    json_decref (reply);
    assert_int_equal (s_call (self, "resource.update", json_pack (
                      "{s:s,s:s,s:i}", "id", hut, "owner", "o@x.org",
                      "capacity", 4), &reply), 200);
    json_decref (reply);
    assert_int_equal (s_call (self, "resource.add", json_pack ("{s:s,s:s,s:s}",
                      "name", "Hut", "owner", "o@x.org", "request_id",
                      "rq-8"), &reply), 201);
    assert_string_equal (json_string_value (json_object_get (reply, "id")), hut);
    assert_int_equal (json_integer_value (json_object_get (reply, "capacity")), 4);
    json_decref (reply);
    assert_int_equal (s_count (self, "SELECT count (*) FROM resources"), 3);
    free (hut);
    json_decref (first);
    json_decref (again);
}

static void
test_sql_and_quotes_in_names_are_stored_verbatim (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *name = "Bob's \"best\" table'); DROP TABLE resources; --";
    char *id = s_add (self, json_pack ("{s:s,s:s,s:s}", "name", name,
                                       "owner", "bob", "kind", "a'b"));
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "resource.show", json_pack ("{s:s}", "id", id),
                              &reply), 200);
    assert_string_equal (json_string_value (json_object_get (reply, "name")), name);
    json_decref (reply);
    assert_int_equal (s_count (self, "SELECT count (*) FROM resources"), 1);
    free (id);
}

static void
test_list_filters_and_pages (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *a = s_add (self, json_pack ("{s:s,s:s,s:s}", "name", "A", "owner", "ann", "kind", "car"));
    char *b = s_add (self, json_pack ("{s:s,s:s,s:s}", "name", "B", "owner", "ann", "kind", "room"));
    char *c = s_add (self, json_pack ("{s:s,s:s,s:s}", "name", "C", "owner", "cid", "kind", "car"));
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "resource.list", json_object (), &reply), 200);
    json_t *items = json_object_get (reply, "items");
    assert_int_equal (json_array_size (items), 3);
    assert_string_equal (json_string_value (json_object_get (json_array_get (items, 0), "id")), a);
    assert_string_equal (json_string_value (json_object_get (json_array_get (items, 2), "id")), c);
    assert_null (json_object_get (reply, "next"));
    json_decref (reply);
    assert_int_equal (s_call (self, "resource.list", json_pack ("{s:s}", "owner", "ann"), &reply), 200);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 2);
    json_decref (reply);
    assert_int_equal (s_call (self, "resource.list", json_pack ("{s:s,s:s}", "owner", "ann", "kind", "car"), &reply), 200);
    items = json_object_get (reply, "items");
    assert_int_equal (json_array_size (items), 1);
    assert_string_equal (json_string_value (json_object_get (json_array_get (items, 0), "id")), a);
    json_decref (reply);
    assert_int_equal (s_call (self, "resource.list", json_pack ("{s:s}", "owner", "nobody"), &reply), 200);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 0);
    json_decref (reply);
    //  Pages: two, then the rest.
    assert_int_equal (s_call (self, "resource.list", json_pack ("{s:i}", "limit", 2), &reply), 200);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 2);
    const char *next = json_string_value (json_object_get (reply, "next"));
    assert_non_null (next);
    json_t *page = NULL;
    assert_int_equal (s_call (self, "resource.list", json_pack ("{s:i,s:s}", "limit", 2, "after", next), &page), 200);
    items = json_object_get (page, "items");
    assert_int_equal (json_array_size (items), 1);
    assert_string_equal (json_string_value (json_object_get (json_array_get (items, 0), "id")), c);
    assert_null (json_object_get (page, "next"));
    json_decref (page);
    json_decref (reply);
    //  A cursor is exactly p and digits, as the list makes it: strtoll's
    //  sign, spaces and overflow are refused, as by the other lists.
    const char *forged [] = { "p+1", "p 1", "p-1", "p", "x1", "p1x",
                              "p99999999999999999999", NULL };
    for (int i = 0; forged [i]; i++) {
        assert_int_equal (s_call (self, "resource.list", json_pack ("{s:s}", "after", forged [i]), &reply), 400);
        json_decref (reply);
    }
    free (a);
    free (b);
    free (c);
}

static void
test_update_and_repeat (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i}", "name", "Van", "owner", "uma", "capacity", 2));
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "resource.update", json_pack ("{s:s,s:s,s:s,s:i,s:i,s:s,s:[ss]}",
                      "id", id, "owner", "uma", "name", "Big van", "capacity", 5,
                      "price", 900, "approval", "manual", "slots", "am", "pm"), &reply), 200);
    assert_string_equal (json_string_value (json_object_get (reply, "name")), "Big van");
    assert_int_equal (json_integer_value (json_object_get (reply, "capacity")), 5);
    assert_int_equal (json_integer_value (json_object_get (reply, "price")), 900);
    assert_string_equal (json_string_value (json_object_get (reply, "approval")), "manual");
    assert_int_equal (json_array_size (json_object_get (reply, "slots")), 2);
    json_decref (reply);
    //  The same update again changes nothing and emits nothing.
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:s,s:i}",
                      "id", id, "owner", "uma", "name", "Big van", "capacity", 5), NULL), 200);
    assert_true (testkit_wait_count (self->kit, "resource.updated", NULL, 1));
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "resource.updated", NULL), 1);
    assert_int_equal (s_call (self, "resource.show", json_pack ("{s:s}", "id", id), &reply), 200);
    assert_int_equal (json_integer_value (json_object_get (reply, "capacity")), 5);
    json_decref (reply);
    free (id);
}

static void
test_remove_and_repeat (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s}", "name", "Locker", "owner", "rita"));
    assert_int_equal (s_status (self, "resource.remove", json_pack ("{s:s,s:s}", "id", id, "owner", "rita"), NULL), 200);
    //  Gone for reads, holds and updates; a repeat by the owner is fine.
    assert_int_equal (s_status (self, "resource.show", json_pack ("{s:s}", "id", id), "not_found"), 404);
    assert_int_equal (s_hold (self, "r1", id, "2026-05-01", 1, 1), 404);
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:s}", "id", id, "owner", "rita", "name", "x"), "not_found"), 404);
    assert_int_equal (s_status (self, "resource.remove", json_pack ("{s:s,s:s}", "id", id, "owner", "rita"), NULL), 200);
    assert_int_equal (s_status (self, "resource.remove", json_pack ("{s:s,s:s}", "id", id, "owner", "eve"), "not_found"), 404);
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "resource.list", json_object (), &reply), 200);
    assert_int_equal (json_array_size (json_object_get (reply, "items")), 0);
    json_decref (reply);
    assert_true (testkit_wait_count (self->kit, "resource.removed", NULL, 1));
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "resource.removed", NULL), 1);
    free (id);
}


//  --------------------------------------------------------------------------
//  Capacity: success

static void
test_availability_reply_shape (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i,s:[ss]}", "name", "Court",
                      "owner", "carl", "capacity", 3, "slots", "am", "pm"));
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "hold", json_pack ("{s:s,s:s,s:s,s:i,s:s,s:i}",
                      "reservation", "r1", "resource", id, "date", "2026-02-28",
                      "days", 2, "slot", "pm", "units", 2), &reply), 200);
    assert_string_equal (json_string_value (json_object_get (reply, "slot")), "pm");
    //  The hold's resource is the resource as shown, member for member and
    //  in the same order, with a kind of null and the slots as a list.
    json_t *shown = NULL;
    assert_int_equal (s_call (self, "resource.show", json_pack ("{s:s}", "id", id),
                              &shown), 200);
    assert_int_equal (json_object_size (reply), 2);
    assert_true (json_equal (json_object_get (reply, "resource"), shown));
    char *held_text = json_dumps (json_object_get (reply, "resource"), JSON_COMPACT);
    char *shown_text = json_dumps (shown, JSON_COMPACT);
    assert_string_equal (held_text, shown_text);
    free (held_text);
    free (shown_text);
    json_decref (reply);
    //  A retry answers the same.
    assert_int_equal (s_call (self, "hold", json_pack ("{s:s,s:s,s:s,s:i,s:s,s:i}",
                      "reservation", "r1", "resource", id, "date", "2026-02-28",
                      "days", 2, "slot", "pm", "units", 2), &reply), 200);
    assert_true (json_equal (json_object_get (reply, "resource"), shown));
    assert_string_equal (json_string_value (json_object_get (reply, "slot")), "pm");
    json_decref (shown);
    json_decref (reply);
    assert_int_equal (s_call (self, "availability", json_pack ("{s:s,s:s,s:i}",
                      "resource", id, "date", "2026-02-27", "days", 3), &reply), 200);
    char *expected = zsys_sprintf ("{\"resource\":\"%s\",\"days\":["
        "{\"date\":\"2026-02-27\",\"slot\":\"am\",\"capacity\":3,\"held\":0,\"free\":3},"
        "{\"date\":\"2026-02-27\",\"slot\":\"pm\",\"capacity\":3,\"held\":0,\"free\":3},"
        "{\"date\":\"2026-02-28\",\"slot\":\"am\",\"capacity\":3,\"held\":0,\"free\":3},"
        "{\"date\":\"2026-02-28\",\"slot\":\"pm\",\"capacity\":3,\"held\":2,\"free\":1},"
        "{\"date\":\"2026-03-01\",\"slot\":\"am\",\"capacity\":3,\"held\":0,\"free\":3},"
        "{\"date\":\"2026-03-01\",\"slot\":\"pm\",\"capacity\":3,\"held\":2,\"free\":1}]}", id);
    json_t *want = json_loads (expected, 0, NULL);
    assert_non_null (want);
    assert_true (json_equal (reply, want));
    //  And in this key order, as the spec prints it.
    char *text = json_dumps (reply, JSON_COMPACT);
    assert_string_equal (text, expected);
    free (text);
    json_decref (want);
    zstr_free (&expected);
    json_decref (reply);
    //  A whole year, and the last day there is.
    assert_int_equal (s_call (self, "availability", json_pack ("{s:s,s:s,s:i}",
                      "resource", id, "date", "2028-01-01", "days", 366), &reply), 200);
    assert_int_equal (json_array_size (json_object_get (reply, "days")), 732);
    json_decref (reply);
    assert_int_equal (s_status (self, "availability", json_pack ("{s:s,s:s}",
                      "resource", id, "date", "9999-12-31"), NULL), 200);
    free (id);
    //  The longest stay a reserve takes, on a resource with the most slots
    //  of the longest labels, can be asked about whole (a cap of 4096
    //  entries refused more than 128 days of 32 slots).
    json_t *slots = json_array ();
    for (int i = 0; i < RESV_SLOTS_MAX; i++)
        json_array_append_new (slots, json_sprintf ("%02d%0*d", i,
                                                    RESV_SLOT_MAX - 2, 0));
    id = s_add (self, json_pack ("{s:s,s:s,s:i,s:o}", "name", "Hall",
                "owner", "carl", "capacity", 1, "slots", slots));
    assert_int_equal (s_call (self, "availability", json_pack ("{s:s,s:s,s:i}",
                      "resource", id, "date", "2028-01-01", "days",
                      RESV_DAYS_MAX), &reply), 200);
    json_t *days = json_object_get (reply, "days");
    assert_int_equal (json_array_size (days), RESV_DAYS_MAX * RESV_SLOTS_MAX);
    json_t *end = json_array_get (days, json_array_size (days) - 1);
    assert_string_equal (json_string_value (json_object_get (end, "date")),
                         "2028-12-31");
    assert_int_equal (strlen (json_string_value (json_object_get (end, "slot"))),
                      RESV_SLOT_MAX);
    json_decref (reply);
    free (id);
}

static void
test_hold_is_idempotent_and_release_too (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i}", "name", "Bay", "owner", "ola", "capacity", 4));
    assert_int_equal (s_hold (self, "r1", id, "2026-06-01", 3, 3), 200);
    assert_int_equal (s_hold (self, "r1", id, "2026-06-01", 3, 3), 200);
    assert_int_equal (s_held (self, id, "2026-06-01"), 3);
    assert_int_equal (s_held (self, id, "2026-06-03"), 3);
    assert_int_equal (s_held (self, id, "2026-06-04"), 0);
    assert_int_equal (s_count (self, "SELECT count (*) FROM holds"), 3);
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "release", json_pack ("{s:s}", "reservation", "r1"), &reply), 200);
    assert_int_equal (json_integer_value (json_object_get (reply, "released")), 3);
    json_decref (reply);
    assert_int_equal (s_held (self, id, "2026-06-02"), 0);
    assert_int_equal (s_call (self, "release", json_pack ("{s:s}", "reservation", "r1"), &reply), 200);
    assert_int_equal (json_integer_value (json_object_get (reply, "released")), 0);
    json_decref (reply);
    //  A release of what never held anything is a success too.
    assert_int_equal (s_status (self, "release", json_pack ("{s:s}", "reservation", "never"), NULL), 200);
    //  A retried reserve holds again after its compensation.
    assert_int_equal (s_hold (self, "r1", id, "2026-06-01", 3, 3), 200);
    assert_int_equal (s_held (self, id, "2026-06-02"), 3);
    free (id);
}

static void
test_hold_defaults_to_the_first_slot (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:[ss]}", "name", "Room",
                      "owner", "ida", "slots", "morning", "evening"));
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "hold", json_pack ("{s:s,s:s,s:s}",
                      "reservation", "r9", "resource", id, "date", "2026-01-31"),
                      &reply), 200);
    assert_string_equal (json_string_value (json_object_get (reply, "slot")), "morning");
    json_decref (reply);
    //  Its retry without a slot is the same hold.
    assert_int_equal (s_status (self, "hold", json_pack ("{s:s,s:s,s:s}",
                      "reservation", "r9", "resource", id, "date", "2026-01-31"), NULL), 200);
    assert_int_equal (s_held (self, id, "2026-01-31"), 1);
    free (id);
}

//  A hold released by a compensation, whose slot the owner removed before
//  the reserve was retried: the retry holds in a slot the resource has,
//  not again in the removed one (where availability shows nothing).
static void
test_retry_after_its_slot_went_holds_in_a_kept_one (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:[ss]}", "name", "Hall",
                      "owner", "ida", "slots", "morning", "evening"));
    json_t *hold = json_pack ("{s:s,s:s,s:s}", "reservation", "r5",
                              "resource", id, "date", "2027-02-28");
    assert_int_equal (s_status (self, "hold", json_incref (hold), NULL), 200);
    assert_int_equal (s_status (self, "release", json_pack ("{s:s}",
                      "reservation", "r5"), NULL), 200);
    assert_int_equal (s_status (self, "resource.update", json_pack (
                      "{s:s,s:s,s:[s]}", "id", id, "owner", "ida", "slots",
                      "evening"), NULL), 200);
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "hold", hold, &reply), 200);
    assert_string_equal (json_string_value (json_object_get (reply, "slot")),
                         "evening");
    json_decref (reply);
    assert_int_equal (s_held (self, id, "2027-02-28"), 1);
    assert_int_equal (s_count (self, "SELECT count (*) FROM usage "
                               "WHERE slot = 'morning' AND held > 0"), 0);
    assert_int_equal (s_count (self, "SELECT count (*) FROM holds"), 1);
    free (id);
}

static void
test_hold_is_all_or_nothing (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i}", "name", "Boat", "owner", "bo", "capacity", 2));
    assert_int_equal (s_hold (self, "r1", id, "2026-07-02", 1, 2), 200);
    //  The middle day of three is full: nothing is held on the others.
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "hold", json_pack ("{s:s,s:s,s:s,s:i,s:i}",
                      "reservation", "r2", "resource", id, "date", "2026-07-01",
                      "days", 3, "units", 1), &reply), 409);
    json_t *error = json_object_get (reply, "error");
    assert_string_equal (json_string_value (json_object_get (error, "reason")), "no_capacity");
    char message [160];
    snprintf (message, sizeof message, "resource '%s' has not enough free "
              "units on 2026-07-02 (slot 'all-day'): 1 asked", id);
    assert_string_equal (json_string_value (json_object_get (error, "message")),
                         message);
    json_decref (reply);
    assert_int_equal (s_held (self, id, "2026-07-01"), 0);
    assert_int_equal (s_held (self, id, "2026-07-03"), 0);
    assert_int_equal (s_count (self, "SELECT count (*) FROM holds WHERE reservation = 'r2'"), 0);
    //  More than the capacity at all.
    assert_int_equal (s_status (self, "hold", json_pack ("{s:s,s:s,s:s,s:i}",
                      "reservation", "r3", "resource", id, "date", "2026-08-01",
                      "units", 3), "no_capacity"), 409);
    assert_int_equal (s_held (self, id, "2026-08-01"), 0);
    //  Exactly what is left fits.
    assert_int_equal (s_hold (self, "r4", id, "2026-07-03", 1, 2), 200);
    free (id);
}

//  The store refuses overbooking by itself, whatever the code does.
static void
test_store_enforces_capacity (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i}", "name", "Car", "owner", "cy", "capacity", 2));
    assert_int_equal (s_hold (self, "r1", id, "2026-09-01", 1, 2), 200);
    sqlite3 *db = store_db (self->store);
    char *sql = zsys_sprintf ("UPDATE usage SET held = held + 1 WHERE resource = '%s'", id);
    assert_int_equal (sqlite3_exec (db, sql, NULL, NULL, NULL), SQLITE_CONSTRAINT);
    zstr_free (&sql);
    sql = zsys_sprintf ("UPDATE usage SET held = -1 WHERE resource = '%s'", id);
    assert_int_not_equal (sqlite3_exec (db, sql, NULL, NULL, NULL), SQLITE_OK);
    zstr_free (&sql);
    sql = zsys_sprintf ("INSERT INTO usage (resource, day, slot, held) "
                        "VALUES ('%s', 1, 'all-day', 3)", id);
    assert_int_equal (sqlite3_exec (db, sql, NULL, NULL, NULL), SQLITE_CONSTRAINT);
    zstr_free (&sql);
    //  Usage of a resource that does not exist has no capacity at all.
    assert_int_equal (sqlite3_exec (db, "INSERT INTO usage (resource, day, slot, held) "
                      "VALUES ('res-none', 1, 'all-day', 1)", NULL, NULL, NULL),
                      SQLITE_CONSTRAINT);
    sql = zsys_sprintf ("UPDATE resources SET capacity = 1 WHERE id = '%s'", id);
    assert_int_equal (sqlite3_exec (db, sql, NULL, NULL, NULL), SQLITE_CONSTRAINT);
    zstr_free (&sql);
    assert_int_equal (s_held (self, id, "2026-09-01"), 2);
    free (id);
}

//  Several processes' worth of states hold the last units at once.
typedef struct {
    void *state;                //  This thread's own service state
    const char *resource;
    int index;
    int held;                   //  Holds that succeeded
    int refused;                //  Holds refused with 409
} s_racer_t;

static void *
s_racer (void *args)
{
    s_racer_t *racer = (s_racer_t *) args;
    for (int i = 0; i < 10; i++) {
        char reservation [32];
        snprintf (reservation, sizeof reservation, "t%d-%d", racer->index, i);
        json_t *request = json_pack ("{s:s,s:s,s:s,s:i,s:i}", "reservation",
                                     reservation, "resource", racer->resource,
                                     "date", "2026-10-01", "days", 2, "units", 1);
        char *text = json_dumps (request, JSON_COMPACT);
        json_decref (request);
        zframe_t *body = zframe_new (text, strlen (text));
        free (text);
        zframe_t *reply = NULL;
        int status = svc_availability (racer->state, "hold", &body,
                                       zclock_mono () + 20000, &reply);
        zframe_destroy (&body);
        zframe_destroy (&reply);
        if (status == 200)
            racer->held++;
        else
        if (status == 409)
            racer->refused++;
    }
    return NULL;
}

static void
test_concurrent_holds_never_overbook (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i}", "name", "Hall", "owner", "hu", "capacity", 15));
    assert_int_equal (s_hold (self, "first", id, "2026-10-02", 1, 1), 200);
    enum { RACERS = 4 };
    s_racer_t racers [RACERS];
    pthread_t threads [RACERS];
    for (int i = 0; i < RACERS; i++) {
        racers [i] = (s_racer_t) {
            svc_availability_new (testkit_cfg (self->kit), NULL), id, i, 0, 0
        };
        assert_non_null (racers [i].state);
    }
    for (int i = 0; i < RACERS; i++)
        assert_int_equal (pthread_create (&threads [i], NULL, s_racer, &racers [i]), 0);
    int held = 0, refused = 0;
    for (int i = 0; i < RACERS; i++) {
        pthread_join (threads [i], NULL);
        held += racers [i].held;
        refused += racers [i].refused;
        svc_availability_destroy (&racers [i].state);
    }
    //  One unit of the second day went first: 14 of 40 two-day holds fit.
    assert_int_equal (held, 14);
    assert_int_equal (refused, 26);
    assert_int_equal (s_held (self, id, "2026-10-01"), 14);
    assert_int_equal (s_held (self, id, "2026-10-02"), 15);
    assert_int_equal (s_count (self, "SELECT count (*) FROM holds WHERE released = 0"), 29);
    free (id);
}

static void
test_ended_reservations_release_for_good (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i}", "name", "Tent", "owner", "tia", "capacity", 5));
    assert_int_equal (s_hold (self, "rc", id, "2026-04-01", 2, 2), 200);
    assert_int_equal (s_hold (self, "rd", id, "2026-04-01", 1, 1), 200);
    assert_int_equal (s_hold (self, "re", id, "2026-04-01", 1, 1), 200);
    assert_int_equal (s_held (self, id, "2026-04-01"), 4);
    s_publish (self, "reservation.cancelled", "rc");
    assert_true (s_wait_held (self, id, "2026-04-01", 2));
    assert_int_equal (s_held (self, id, "2026-04-02"), 0);
    //  Events that are not ours, that name nothing, or that name an
    //  unknown reservation do not stop the consumer.
    s_publish (self, "reservation.confirmed", "rd");
    s_publish (self, "reservation.declined", NULL);
    s_publish (self, "reservation.expired", "unknown");
    s_publish (self, "reservation.declined", "rd");
    s_publish (self, "reservation.expired", "re");
    assert_true (s_wait_held (self, id, "2026-04-01", 0));
    //  Another cancel of it changes nothing.
    s_publish (self, "reservation.cancelled", "rc");
    zclock_sleep (200);
    assert_int_equal (s_held (self, id, "2026-04-01"), 0);
    //  An ended reservation never holds again, nor does its release undo
    //  the end.
    assert_int_equal (s_status (self, "release", json_pack ("{s:s}", "reservation", "rc"), NULL), 200);
    assert_int_equal (s_hold (self, "rc", id, "2026-04-01", 2, 2), 409);
    assert_int_equal (s_held (self, id, "2026-04-01"), 0);
    assert_int_equal (s_count (self, "SELECT count (*) FROM holds WHERE released = 2"), 4);
    free (id);
}


//  --------------------------------------------------------------------------
//  Failures

//  Each body is refused with 400 and changes nothing.
static void
s_refused_all (fixture_t *self, const char *method, const char **bodies,
               const char *reason)
{
    int64_t resources = s_count (self, "SELECT count (*) FROM resources");
    int64_t holds = s_count (self, "SELECT count (*) FROM holds");
    for (const char **body = bodies; *body; body++)
        testkit_refused (svc_availability, self->state, method, *body, 400,
                         reason);
    assert_int_equal (s_count (self, "SELECT count (*) FROM resources"), resources);
    assert_int_equal (s_count (self, "SELECT count (*) FROM holds"), holds);
}

static void
test_add_refuses_bad_input (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *bodies [] = {
        "{}",
        "{\"owner\":\"o\"}",
        "{\"name\":\"n\"}",
        "{\"name\":\"\",\"owner\":\"o\"}",
        "{\"name\":7,\"owner\":\"o\"}",
        "{\"name\":\"n\",\"owner\":\"o\",\"colour\":\"red\"}",
        "{\"name\":\"n\",\"owner\":\"o\",\"capacity\":0}",
        "{\"name\":\"n\",\"owner\":\"o\",\"capacity\":-1}",
        "{\"name\":\"n\",\"owner\":\"o\",\"capacity\":\"3\"}",
        "{\"name\":\"n\",\"owner\":\"o\",\"capacity\":1.5}",
        "{\"name\":\"n\",\"owner\":\"o\",\"capacity\":1000001}",
        "{\"name\":\"n\",\"owner\":\"o\",\"price\":-1}",
        "{\"name\":\"n\",\"owner\":\"o\",\"price\":100000001}",
        "{\"name\":\"n\",\"owner\":\"o\",\"approval\":\"sometimes\"}",
        "{\"name\":\"n\",\"owner\":\"o\",\"slots\":[]}",
        "{\"name\":\"n\",\"owner\":\"o\",\"slots\":\"am\"}",
        "{\"name\":\"n\",\"owner\":\"o\",\"slots\":[1]}",
        "{\"name\":\"n\",\"owner\":\"o\",\"slots\":[\"am\",\"am\"]}",
        "{\"name\":\"n\",\"owner\":\"o\",\"slots\":[\"\"]}",
        "{\"name\":\"n\",\"owner\":\"o\",\"slots\":[\"a\\u0001\"]}",
        "{\"name\":\"n\",\"owner\":\"o\",\"slots\":[null]}",
        "{\"name\":\"tab\\there\",\"owner\":\"o\"}",
        "{\"name\":\"n\",\"owner\":\"o p\"}",
        "{\"name\":\"n\",\"owner\":\"o'; DROP TABLE resources; --\"}",
        "{\"name\":\"n\",\"owner\":\"\\\"quoted\\\"\"}",
        "{\"name\":\"n\",\"owner\":\"o\",\"request_id\":\"a'b\"}",
        "{\"name\":\"n\",\"owner\":\"o\",\"kind\":\"\"}",
        NULL
    };
    s_refused_all (self, "resource.add", bodies, "bad_request");
    //  Too many slots, and oversized strings.
    json_t *slots = json_array ();
    for (int i = 0; i < 33; i++)
        json_array_append_new (slots, json_sprintf ("s%d", i));
    assert_int_equal (s_status (self, "resource.add", json_pack ("{s:s,s:s,s:o}",
                      "name", "n", "owner", "o", "slots", slots), "bad_request"), 400);
    char *big = (char *) malloc (200 * 1024 + 1);
    memset (big, 'x', 200 * 1024);
    big [200 * 1024] = 0;
    assert_int_equal (s_status (self, "resource.add", json_pack ("{s:s,s:s}",
                      "name", big, "owner", "o"), "bad_request"), 400);
    assert_int_equal (s_status (self, "resource.add", json_pack ("{s:s,s:s}",
                      "name", "n", "owner", big), "bad_request"), 400);
    assert_int_equal (s_status (self, "resource.add", json_pack ("{s:s,s:s,s:[s]}",
                      "name", "n", "owner", "o", "slots", big), "bad_request"), 400);
    free (big);
    assert_int_equal (s_count (self, "SELECT count (*) FROM resources"), 0);
}

static void
test_malformed_bodies_and_methods (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *bodies [] = {
        "{", "[1,2]", "\"text\"", "nul\0l", "{\"name\":\"a\\u0000b\",\"owner\":\"o\"}",
        NULL
    };
    for (const char **body = bodies; *body; body++)
        assert_int_equal (s_call_raw (self->state, "resource.add", *body,
                                      strlen (*body), NULL), 400);
    //  A NUL inside the frame itself.
    assert_int_equal (s_call_raw (self->state, "resource.add",
                                  "{\"name\":\"a\0\"}", 13, NULL), 400);
    json_t *reply = NULL;
    assert_int_equal (s_call_raw (self->state, "drop.tables", "{}", 2, &reply), 400);
    assert_string_equal (json_string_value (json_object_get (
                         json_object_get (reply, "error"), "reason")), "unknown_method");
    json_decref (reply);
    assert_int_equal (s_call_raw (self->state, "", "", 0, NULL), 400);
    //  An empty body is an empty object: the fields are missing.
    assert_int_equal (s_status (self, "hold", json_object (), "bad_request"), 400);
    assert_int_equal (s_count (self, "SELECT count (*) FROM resources"), 0);
}

static void
test_hold_refuses_bad_input (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i,s:[ss]}", "name", "Desk",
                      "owner", "di", "capacity", 5, "slots", "am", "pm"));
    char *bodies [32];
    size_t count = 0;
    const char *base = "\"reservation\":\"r1\",\"resource\":\"%s\"";
    const char *tails [] = {
        ",\"date\":\"2026-02-30\"",
        ",\"date\":\"2026-13-01\"",
        ",\"date\":\"2026-00-10\"",
        ",\"date\":\"26-01-01\"",
        ",\"date\":\"2026-1-1\"",
        ",\"date\":\"1969-12-31\"",
        ",\"date\":\"2026-01-01T00:00\"",
        ",\"date\":20260101",
        "",
        ",\"date\":\"2026-01-01\",\"days\":0",
        ",\"date\":\"2026-01-01\",\"days\":367",
        ",\"date\":\"2026-01-01\",\"days\":-2",
        ",\"date\":\"2026-01-01\",\"units\":0",
        ",\"date\":\"2026-01-01\",\"units\":-1",
        ",\"date\":\"2026-01-01\",\"units\":\"1\"",
        ",\"date\":\"2026-01-01\",\"units\":1000001",
        ",\"date\":\"2026-01-01\",\"slot\":\"night\"",
        ",\"date\":\"2026-01-01\",\"slot\":\"\"",
        ",\"date\":\"2026-01-01\",\"slot\":7",
        ",\"date\":\"9999-12-31\",\"days\":2",
        ",\"date\":\"2026-01-01\",\"price\":0",
        NULL
    };
    for (const char **tail = tails; *tail; tail++) {
        char *prefix = zsys_sprintf (base, id);
        bodies [count++] = zsys_sprintf ("{%s%s}", prefix, *tail);
        zstr_free (&prefix);
    }
    bodies [count++] = strdup ("{\"resource\":\"x\",\"date\":\"2026-01-01\"}");
    bodies [count++] = zsys_sprintf ("{\"reservation\":\"r1' OR '1'='1\",\"resource\":\"%s\","
                                     "\"date\":\"2026-01-01\"}", id);
    bodies [count++] = strdup ("{\"reservation\":\"r1\",\"resource\":\"res-1; DELETE FROM usage\","
                               "\"date\":\"2026-01-01\"}");
    bodies [count] = NULL;
    s_refused_all (self, "hold", (const char **) bodies, "bad_request");
    for (size_t i = 0; i < count; i++)
        zstr_free (&bodies [i]);
    //  The last day there is can be held.
    assert_int_equal (s_hold (self, "r-last", id, "9999-12-31", 1, 1), 200);
    assert_int_equal (s_count (self, "SELECT count (*) FROM holds"), 1);
    free (id);
}

static void
test_availability_refuses_bad_input (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *slots = json_array ();
    for (int i = 0; i < 32; i++)
        json_array_append_new (slots, json_sprintf ("slot-%d", i));
    char *id = s_add (self, json_pack ("{s:s,s:s,s:o}", "name", "Gym",
                                       "owner", "gi", "slots", slots));
    assert_int_equal (s_status (self, "availability", json_pack ("{s:s,s:s}",
                      "resource", id, "date", "2026-02-29"), "bad_request"), 400);
    assert_int_equal (s_status (self, "availability", json_pack ("{s:s,s:s,s:i}",
                      "resource", id, "date", "2026-02-01", "days", 0), "bad_request"), 400);
    assert_int_equal (s_status (self, "availability", json_pack ("{s:s,s:s,s:i}",
                      "resource", id, "date", "2026-02-01", "days", 367), "bad_request"), 400);
    assert_int_equal (s_status (self, "availability", json_pack ("{s:s}",
                      "resource", id), "bad_request"), 400);
    assert_int_equal (s_status (self, "availability", json_pack ("{s:s,s:s,s:b}",
                      "resource", id, "date", "2026-02-01", "verbose", 1), "bad_request"), 400);
    free (id);
}

static void
test_unknown_resources_are_404 (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    assert_int_equal (s_status (self, "resource.show", json_pack ("{s:s}", "id", "res-0000000000000000"), "not_found"), 404);
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:s}",
                      "id", "res-0000000000000000", "owner", "o", "name", "n"), "not_found"), 404);
    assert_int_equal (s_status (self, "resource.remove", json_pack ("{s:s,s:s}",
                      "id", "res-0000000000000000", "owner", "o"), "not_found"), 404);
    assert_int_equal (s_status (self, "availability", json_pack ("{s:s,s:s}",
                      "resource", "res-0000000000000000", "date", "2026-01-01"), "not_found"), 404);
    assert_int_equal (s_status (self, "hold", json_pack ("{s:s,s:s,s:s}", "reservation", "r1",
                      "resource", "res-0000000000000000", "date", "2026-01-01"), "not_found"), 404);
    assert_int_equal (s_count (self, "SELECT count (*) FROM holds"), 0);
}

static void
test_only_the_owner_changes_a_resource (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i}", "name", "Kayak", "owner", "kim", "capacity", 2));
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:i}",
                      "id", id, "owner", "mallory", "capacity", 9), "forbidden"), 403);
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:i}",
                      "id", id, "owner", "KIM", "capacity", 9), "forbidden"), 403);
    assert_int_equal (s_status (self, "resource.remove", json_pack ("{s:s,s:s}",
                      "id", id, "owner", "mallory"), "forbidden"), 403);
    //  Missing owner is a bad request, not a forbidden one.
    assert_int_equal (s_status (self, "resource.remove", json_pack ("{s:s}", "id", id),
                      "bad_request"), 400);
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "resource.show", json_pack ("{s:s}", "id", id), &reply), 200);
    assert_int_equal (json_integer_value (json_object_get (reply, "capacity")), 2);
    json_decref (reply);
    free (id);
}

static void
test_update_refuses_below_held_and_bad_input (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i,s:[ss]}", "name", "Bus",
                      "owner", "bea", "capacity", 5, "slots", "am", "pm"));
    assert_int_equal (s_status (self, "hold", json_pack ("{s:s,s:s,s:s,s:i,s:s,s:i}",
                      "reservation", "r1", "resource", id, "date", "2026-03-10",
                      "days", 2, "slot", "pm", "units", 3), NULL), 200);
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:i}",
                      "id", id, "owner", "bea", "capacity", 2), "conflict"), 409);
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:[s]}",
                      "id", id, "owner", "bea", "slots", "am"), "conflict"), 409);
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:i}",
                      "id", id, "owner", "bea", "capacity", 0), "bad_request"), 400);
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:s}",
                      "id", id, "owner", "bea", "approval", "never"), "bad_request"), 400);
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:s}",
                      "id", id, "owner", "bea", "colour", "red"), "bad_request"), 400);
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s}",
                      "id", id, "owner", "bea"), NULL), 200);
    //  Down to exactly what is held is fine; a slot without holds may go.
    assert_int_equal (s_status (self, "resource.update", json_pack ("{s:s,s:s,s:i,s:[s]}",
                      "id", id, "owner", "bea", "capacity", 3, "slots", "pm"), NULL), 200);
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "availability", json_pack ("{s:s,s:s}",
                      "resource", id, "date", "2026-03-10"), &reply), 200);
    json_t *day = json_array_get (json_object_get (reply, "days"), 0);
    assert_int_equal (json_integer_value (json_object_get (day, "free")), 0);
    assert_int_equal (json_array_size (json_object_get (reply, "days")), 1);
    json_decref (reply);
    free (id);
}

static void
test_remove_refused_while_held (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s}", "name", "Shed", "owner", "sam"));
    assert_int_equal (s_hold (self, "r1", id, "2026-05-05", 1, 1), 200);
    assert_int_equal (s_status (self, "resource.remove", json_pack ("{s:s,s:s}",
                      "id", id, "owner", "sam"), "conflict"), 409);
    assert_int_equal (s_status (self, "resource.show", json_pack ("{s:s}", "id", id), NULL), 200);
    assert_int_equal (s_status (self, "release", json_pack ("{s:s}", "reservation", "r1"), NULL), 200);
    assert_int_equal (s_status (self, "resource.remove", json_pack ("{s:s,s:s}",
                      "id", id, "owner", "sam"), NULL), 200);
    free (id);
}

static void
test_hold_conflicts (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s,s:i,s:[ss]}", "name", "Pod",
                      "owner", "pa", "capacity", 4, "slots", "a", "b"));
    char *other = s_add (self, json_pack ("{s:s,s:s,s:i}", "name", "Pod 2", "owner", "pa", "capacity", 4));
    assert_int_equal (s_hold (self, "r1", id, "2026-11-01", 2, 1), 200);
    //  The same reservation id asking for something else.
    assert_int_equal (s_hold (self, "r1", id, "2026-11-01", 2, 2), 409);
    assert_int_equal (s_hold (self, "r1", id, "2026-11-02", 2, 1), 409);
    assert_int_equal (s_hold (self, "r1", id, "2026-11-01", 3, 1), 409);
    assert_int_equal (s_hold (self, "r1", other, "2026-11-01", 2, 1), 409);
    assert_int_equal (s_status (self, "hold", json_pack ("{s:s,s:s,s:s,s:i,s:s}",
                      "reservation", "r1", "resource", id, "date", "2026-11-01",
                      "days", 2, "slot", "b"), "conflict"), 409);
    assert_int_equal (s_held (self, id, "2026-11-01"), 1);
    assert_int_equal (s_held (self, other, "2026-11-01"), 0);
    free (id);
    free (other);
}

static void
test_hold_past_its_deadline_holds_nothing (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = s_add (self, json_pack ("{s:s,s:s}", "name", "Late", "owner", "lu"));
    char *body = zsys_sprintf ("{\"reservation\":\"r1\",\"resource\":\"%s\","
                               "\"date\":\"2026-01-01\"}", id);
    assert_int_equal (testkit_handle (svc_availability, self->state, "hold",
                                      body, strlen (body), -1, NULL), 504);
    zstr_free (&body);
    assert_int_equal (s_held (self, id, "2026-01-01"), 0);
    assert_int_equal (s_count (self, "SELECT count (*) FROM holds"), 0);
    free (id);
}

//  resv-worker destroys the state after SIGTERM, with zsys_interrupted
//  raised: the events actor must stop all the same, however its loop met
//  the flag (it hung for good while its poller was not set nonstop).
static void
test_stops_after_sigterm (void **state)
{
    //  Time for the actor's loop to meet the raised flag.
    testkit_assert_stops_interrupted ((fixture_t *) *state, 1500);
}

static void
test_state_fails_cleanly (void **state)
{
    (void) state;
    testkit_assert_no_state (svc_availability_new, svc_availability_destroy);
    //  The service is in the table resv-worker reads.
    testkit_assert_service ("availability", svc_availability,
                            svc_availability_new, svc_availability_destroy);
}

int
main (void)
{
    testkit_init ();
    //  The last day a stay may reach, as the service has it.
    int64_t last;
    assert_true (resv_date_parse ("9999-12-31", &last));
    assert_int_equal (last, 2932896);
#define T(name) cmocka_unit_test_prestate_setup_teardown (name, \
    testkit_service_setup, testkit_service_teardown, "availability")
    const struct CMUnitTest tests [] = {
        T (test_add_with_defaults),
        T (test_add_everything_and_retry),
        T (test_sql_and_quotes_in_names_are_stored_verbatim),
        T (test_list_filters_and_pages),
        T (test_update_and_repeat),
        T (test_remove_and_repeat),
        T (test_availability_reply_shape),
        T (test_hold_is_idempotent_and_release_too),
        T (test_hold_defaults_to_the_first_slot),
    T (test_retry_after_its_slot_went_holds_in_a_kept_one),
        T (test_hold_is_all_or_nothing),
        T (test_store_enforces_capacity),
        T (test_concurrent_holds_never_overbook),
        T (test_ended_reservations_release_for_good),
        T (test_add_refuses_bad_input),
        T (test_malformed_bodies_and_methods),
        T (test_hold_refuses_bad_input),
        T (test_availability_refuses_bad_input),
        T (test_unknown_resources_are_404),
        T (test_only_the_owner_changes_a_resource),
        T (test_update_refuses_below_held_and_bad_input),
        T (test_remove_refused_while_held),
        T (test_hold_conflicts),
        T (test_hold_past_its_deadline_holds_nothing),
        T (test_stops_after_sigterm),
        T (test_state_fails_cleanly),
    };
    return cmocka_run_group_tests_name ("svc_availability", tests, NULL, NULL);
}
