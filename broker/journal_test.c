/*  journal_test.c: unit tests of the event journal, on a real SQLite file.  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <czmq.h>
#include "journal.h"
#include "resv_util.h"

typedef struct {
    char dir [64];
    char path [96];
    journal_t *journal;
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *self = (fixture_t *) zmalloc (sizeof (fixture_t));
    strcpy (self->dir, "/tmp/resv-journal-test.XXXXXX");
    assert_non_null (mkdtemp (self->dir));
    snprintf (self->path, sizeof self->path, "%s/journal.db", self->dir);
    self->journal = journal_new (self->path);
    assert_non_null (self->journal);
    *state = self;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    journal_destroy (&self->journal);
    char *command = zsys_sprintf ("rm -rf '%s'", self->dir);
    assert_int_equal (system (command), 0);
    zstr_free (&command);
    free (self);
    return 0;
}

//  journal_append_json of the events in text.
static int
s_append_text (journal_t *journal, const char *text, json_t **seqs_p,
               json_t **fresh_p, char **error_p)
{
    json_t *events = json_loads (text, 0, NULL);
    *error_p = NULL;
    int rc = journal_append_json (journal, events, seqs_p, fresh_p, error_p);
    json_decref (events);
    return rc;
}

//  Appends the events in text; returns the seqs as text.
static char *
s_append (journal_t *journal, const char *text, int expect)
{
    json_t *seqs = NULL, *fresh = NULL;
    char *error;
    int rc = s_append_text (journal, text, &seqs, &fresh, &error);
    assert_int_equal (rc, expect);
    char *result = rc == 0? json_dumps (seqs, JSON_COMPACT): error;
    if (rc == 0)
        assert_null (error);
    else
        assert_non_null (error);
    json_decref (seqs);
    json_decref (fresh);
    return result;
}

static void
test_append_assigns_gap_free_seqs (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *seqs = s_append (self->journal,
        "[{\"id\":\"a\",\"type\":\"x.y\"},{\"id\":\"b\",\"type\":\"x.z\"}]", 0);
    assert_string_equal (seqs, "[1,2]");
    free (seqs);
    seqs = s_append (self->journal, "[{\"id\":\"c\",\"type\":\"x.y\"}]", 0);
    assert_string_equal (seqs, "[3]");
    free (seqs);
    assert_int_equal (journal_last (self->journal), 3);
}

//  Appends the events in text; returns the prevs of those stored (of the
//  family, of the type), as text.
static char *
s_append_prevs (journal_t *journal, const char *text)
{
    json_t *seqs = NULL, *fresh = NULL;
    char *error;
    assert_int_equal (s_append_text (journal, text, &seqs, &fresh, &error), 0);
    json_t *prevs = json_array ();
    size_t index;
    json_t *entry;
    json_array_foreach (fresh, index, entry)
        json_array_append_new (prevs, json_pack ("[O,O]", json_array_get (entry, 3),
                                                 json_array_get (entry, 4)));
    char *result = json_dumps (prevs, JSON_COMPACT);
    json_decref (prevs);
    json_decref (seqs);
    json_decref (fresh);
    return result;
}

//  Each stored event names the seq of the event before it of its family
//  (the type up to its first dot) and of its type, also after the journal
//  is reopened.
static void
test_append_names_the_family_previous (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *prevs = s_append_prevs (self->journal,
        "[{\"id\":\"a\",\"type\":\"r.one\"},{\"id\":\"b\",\"type\":\"p.one\"},"
        "{\"id\":\"c\",\"type\":\"r.two\"},{\"id\":\"d\",\"type\":\"r\"},"
        "{\"id\":\"e\",\"type\":\"rr.one\"}]");
    //  "r" (no dot) and "rr." are families of their own, not "r.".
    assert_string_equal (prevs, "[[0,0],[0,0],[1,0],[0,0],[0,0]]");
    free (prevs);
    //  A resend stores nothing and moves no family.
    prevs = s_append_prevs (self->journal,
        "[{\"id\":\"c\",\"type\":\"r.two\"},{\"id\":\"f\",\"type\":\"p.two\"}]");
    assert_string_equal (prevs, "[[2,0]]");
    free (prevs);
    journal_destroy (&self->journal);
    self->journal = journal_new (self->path);
    assert_non_null (self->journal);
    prevs = s_append_prevs (self->journal,
        "[{\"id\":\"g\",\"type\":\"r.three\"},{\"id\":\"h\",\"type\":\"p.one\"},"
        "{\"id\":\"i\",\"type\":\"r\"},{\"id\":\"j\",\"type\":\"rr.two\"},"
        "{\"id\":\"k\",\"type\":\"new.one\"},{\"id\":\"l\",\"type\":\"r.one\"}]");
    assert_string_equal (prevs, "[[3,0],[6,2],[4,4],[5,0],[0,0],[7,1]]");
    free (prevs);
}

static void
test_duplicate_id_keeps_first_seq (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    free (s_append (self->journal, "[{\"id\":\"a\",\"type\":\"t\"}]", 0));
    char *seqs = s_append (self->journal,
        "[{\"id\":\"b\",\"type\":\"t\"},{\"id\":\"a\",\"type\":\"t\"}]", 0);
    assert_string_equal (seqs, "[2,1]");
    free (seqs);
    assert_int_equal (journal_last (self->journal), 2);
}

//  An event is journaled as its text with its seq (and a missing "at" and
//  "data") in front; read back, it is the same object.
static void
test_append_keeps_the_text_given (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char body [] =
        "{\"events\":[{\"id\":\"a\",\"type\":\"x.y\","
        "\"at\":\"2026-01-01T00:00:00.000Z\",\"data\":{\"z\":1,\"a\":[2,3]}},"
        " { \"type\" : \"x.z\" , \"id\" : \"b\" }]}";
    journal_event_t *events;
    size_t count;
    char *error = NULL;
    assert_int_equal (journal_split (body, sizeof body - 1, &events, &count,
                                     &error), 0);
    assert_int_equal (count, 2);
    assert_string_equal (events [1].id, "b");
    assert_string_equal (events [1].type, "x.z");
    assert_false (events [1].has_at);
    assert_true (events [0].has_at && events [0].has_data);
    int64_t seqs [2];
    journal_fresh_t *fresh;
    size_t nfresh;
    assert_int_equal (journal_append (self->journal, events, count, seqs,
                                      &fresh, &nfresh, &error), 0);
    assert_int_equal (nfresh, 2);
    assert_int_equal (seqs [0], 1);
    assert_int_equal (seqs [1], 2);
    //  The first as given, behind its seq.
    const char *first = "{\"seq\":1,\"id\":\"a\",\"type\":\"x.y\","
        "\"at\":\"2026-01-01T00:00:00.000Z\",\"data\":{\"z\":1,\"a\":[2,3]}}";
    assert_string_equal (fresh [0].text, first);
    assert_int_equal (fresh [0].size, strlen (first));
    assert_string_equal (fresh [0].type, "x.y");
    //  The second parses, with every member and those filled in.
    json_t *second = json_loads (fresh [1].text, 0, NULL);
    assert_non_null (second);
    assert_int_equal (json_integer_value (json_object_get (second, "seq")), 2);
    assert_string_equal (json_string_value (json_object_get (second, "id")), "b");
    assert_string_equal (json_string_value (json_object_get (second, "type")), "x.z");
    assert_true (json_is_string (json_object_get (second, "at")));
    assert_int_equal (strlen (json_string_value (json_object_get (second, "at"))),
                      RESV_TIME_SIZE - 1);
    assert_int_equal (json_object_size (json_object_get (second, "data")), 0);
    assert_true (json_is_object (json_object_get (second, "data")));
    json_decref (second);
    //  A resend stores nothing and keeps the seqs.
    journal_fresh_destroy (&fresh, nfresh);
    assert_null (fresh);
    assert_int_equal (journal_append (self->journal, events, count, seqs,
                                      &fresh, &nfresh, &error), 0);
    assert_int_equal (nfresh, 0);
    assert_int_equal (seqs [0], 1);
    assert_int_equal (seqs [1], 2);
    journal_fresh_destroy (&fresh, nfresh);
    //  Read back: the same text as fanned out.
    char *page = journal_read (self->journal, 1, NULL, 10);
    assert_non_null (strstr (page, first));
    free (page);
    free (events);
}

//  What is not a publish in the relays' form, or not events, is refused
//  with what is wrong.
static void
test_split_refuses (void **state)
{
    (void) state;
    struct {
        const char *body;
        const char *error;
    } cases [] = {
        { "{\"events\":[]}", "events must be a non-empty array" },
        { "{\"events\": [{\"id\":\"a\",\"type\":\"t\"}]}",
          "events must be a non-empty array" },
        { "{\"events\":[1]}", "event 0: an event is not an object" },
        { "{\"events\":[{\"id\":\"a\",\"type\":\"t\"},{\"id\":\"a\",\"id\":\"b\",\"type\":\"t\"}]}",
          "event 1: an event is not an object" },
        { "{\"events\":[{\"id\":\"a\",\"type\":\"t\",\"data\":{\"x\":\"\\u0000\"}}]}",
          "event 0: an event is not an object" },
        { "{\"events\":[{\"id\":\"a\",\"type\":\"t\"}]} ",
          "a publish must be {\"events\":[...]}" },
        { "{\"events\":[{\"id\":\"a\",\"type\":\"t\"}],\"x\":1}",
          "a publish must be {\"events\":[...]}" },
        { "{\"events\":[{\"id\":\"a\",\"type\":\"t.\\u0041\"}]}",
          "event 0: event type must be lowercase words and dots" },
        { "{\"events\":[{\"type\":\"t\",\"x\":1,\"id\":7}]}",
          "event 0: event id must be a string of 1 to 64 characters" },
    };
    for (size_t index = 0; index < sizeof cases / sizeof cases [0]; index++) {
        journal_event_t *events;
        size_t count;
        char *error = NULL;
        assert_int_equal (journal_split (cases [index].body,
                                         strlen (cases [index].body),
                                         &events, &count, &error), -2);
        assert_null (events);
        assert_string_equal (error, cases [index].error);
        free (error);
    }
}

//  A publish of one event that nests depth levels: the event, its data,
//  and objects inside down to an empty one at level depth.
static char *
s_deep_publish (int depth)
{
    char *body = (char *) malloc ((size_t) depth * 6 + 64);
    size_t used = (size_t) sprintf (body, "{\"events\":[{\"id\":\"d%d\","
                                    "\"type\":\"deep\",\"data\":", depth);
    for (int level = 2; level < depth; level++)
        used += (size_t) sprintf (body + used, "{\"k\":");
    used += (size_t) sprintf (body + used, "{}");
    for (int level = 2; level < depth; level++)
        body [used++] = '}';
    strcpy (body + used, "}]}");
    return body;
}

//  An event is journaled only if the documents that carry it parse: a
//  page of the journal, and that page as a batch's reply. An event that
//  jansson parses alone but not inside a page (2047 or 2048 levels) was
//  journaled, and then every read of its page failed: a view rebuild
//  stopped there, with its view half built.
static void
test_deep_event_refused (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    int depths [] = { JOURNAL_DEPTH_MAX + 1, 2047, 2048 };
    for (size_t index = 0; index < sizeof depths / sizeof depths [0]; index++) {
        char *body = s_deep_publish (depths [index]);
        //  jansson takes the event alone, so only the depth is wrong.
        json_t *alone = json_loads (strstr (body, "[") + 1, JSON_DISABLE_EOF_CHECK,
                                    NULL);
        assert_non_null (alone);
        json_decref (alone);
        journal_event_t *events;
        size_t count;
        char *error = NULL;
        assert_int_equal (journal_split (body, strlen (body), &events, &count,
                                         &error), -2);
        assert_string_equal (error, "event 0: an event nests more than 64 levels");
        free (error);
        free (body);
    }
    assert_int_equal (journal_last (self->journal), 0);
    //  The deepest taken: its page parses, alone and inside a batch.
    char *body = s_deep_publish (JOURNAL_DEPTH_MAX);
    journal_event_t *events;
    size_t count;
    char *error = NULL;
    assert_int_equal (journal_split (body, strlen (body), &events, &count,
                                     &error), 0);
    int64_t seqs [1];
    journal_fresh_t *fresh;
    size_t nfresh;
    assert_int_equal (journal_append (self->journal, events, count, seqs,
                                      &fresh, &nfresh, &error), 0);
    journal_fresh_destroy (&fresh, nfresh);
    free (events);
    free (body);
    char *page = journal_read (self->journal, 1, NULL, 10);
    char *batch = zsys_sprintf ("{\"batch\":[{\"status\":200,\"body\":%s}]}",
                                page);
    json_t *json = json_loads (batch, 0, NULL);
    assert_non_null (json);
    json_t *items = json_object_get (json_object_get (json_array_get (
        json_object_get (json, "batch"), 0), "body"), "items");
    assert_int_equal (json_array_size (items), 1);
    json_decref (json);
    zstr_free (&batch);
    free (page);
}

static void
test_invalid_batch_stores_nothing (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *bad [] = {
        "[]", "{}", "[1]", "[{\"id\":\"a\"}]", "[{\"type\":\"t\"}]",
        "[{\"id\":\"\",\"type\":\"t\"}]", "[{\"id\":\"a\",\"type\":\"T\"}]",
        "[{\"id\":\"a\",\"type\":\"t\",\"data\":[]}]",
        "[{\"id\":\"a\",\"type\":\"t\",\"seq\":5}]",
        "[{\"id\":\"a\",\"type\":\"t\"},{\"id\":\"b\",\"type\":\"t\",\"at\":7}]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        free (s_append (self->journal, bad [i], -2));
    assert_int_equal (journal_last (self->journal), 0);
    char *page = journal_read (self->journal, 1, NULL, 10);
    assert_string_equal (page, "{\"items\":[],\"next\":1,\"last\":0}");
    free (page);
}

//  The seqs of the items of a read by prefix, as text, and its next.
static char *
s_read_seqs (journal_t *journal, int64_t from, const char *prefix, int limit)
{
    char *page = journal_read (journal, from, prefix, limit);
    json_t *json = json_loads (page, 0, NULL);
    free (page);
    assert_non_null (json);
    json_t *seqs = json_array ();
    size_t index;
    json_t *item;
    json_array_foreach (json_object_get (json, "items"), index, item)
        json_array_append (seqs, json_object_get (item, "seq"));
    char *list = json_dumps (seqs, JSON_COMPACT);
    char *text = zsys_sprintf ("%s next %" JSON_INTEGER_FORMAT, list,
                               json_integer_value (json_object_get (json, "next")));
    free (list);
    json_decref (seqs);
    json_decref (json);
    return text;
}

static void
test_read_pages_and_prefix (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    free (s_append (self->journal,
        "[{\"id\":\"1\",\"type\":\"reservation.requested\",\"data\":{\"q\":\"it's \\\"quoted\\\"\"}},"
        "{\"id\":\"2\",\"type\":\"payment.authorized\"},"
        "{\"id\":\"3\",\"type\":\"reservation.confirmed\"},"
        "{\"id\":\"4\",\"type\":\"resource.registered\"}]", 0));
    char *page = journal_read (self->journal, 1, NULL, 2);
    json_t *json = json_loads (page, 0, NULL);
    assert_non_null (json);
    assert_int_equal (json_array_size (json_object_get (json, "items")), 2);
    assert_int_equal (json_integer_value (json_object_get (json, "next")), 3);
    assert_string_equal (json_string_value (json_object_get (json_object_get (
        json_array_get (json_object_get (json, "items"), 0), "data"), "q")),
        "it's \"quoted\"");
    json_decref (json);
    free (page);
    page = journal_read (self->journal, 1, "reservation", 10);
    json = json_loads (page, 0, NULL);
    json_t *items = json_object_get (json, "items");
    assert_int_equal (json_array_size (items), 2);
    assert_int_equal (json_integer_value (json_object_get (json_array_get (items, 1), "seq")), 3);
    assert_int_equal (json_integer_value (json_object_get (json, "next")), 5);
    json_decref (json);
    free (page);
    page = journal_read (self->journal, 1, "res", 10);
    json = json_loads (page, 0, NULL);
    assert_int_equal (json_array_size (json_object_get (json, "items")), 3);
    json_decref (json);
    free (page);
    //  A prefix that one type has, or none: read through that type alone.
    char *text = s_read_seqs (self->journal, 1, "reservation.c", 10);
    assert_string_equal (text, "[3] next 5");
    free (text);
    text = s_read_seqs (self->journal, 1, "payment", 10);
    assert_string_equal (text, "[2] next 5");
    free (text);
    text = s_read_seqs (self->journal, 1, "nothing", 10);
    assert_string_equal (text, "[] next 5");
    free (text);
    //  A full page with no event of its type after it was not cut: next
    //  is past the end, as for a page that is not full.
    text = s_read_seqs (self->journal, 1, "reservation.requested", 1);
    assert_string_equal (text, "[1] next 5");
    free (text);
    text = s_read_seqs (self->journal, 1, "reservation", 2);
    assert_string_equal (text, "[1,3] next 5");
    free (text);
    text = s_read_seqs (self->journal, 1, "reservation", 1);
    assert_string_equal (text, "[1] next 2");
    free (text);
    text = s_read_seqs (self->journal, 1, NULL, 4);
    assert_string_equal (text, "[1,2,3,4] next 5");
    free (text);
}

//  A read by prefix far from the end (through the type index) and near it
//  (walking the seqs) give the same answers.
static void
test_read_prefix_far_and_near (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *events = json_array ();
    for (int seq = 1; seq <= 30000; seq++) {
        char id [16];
        snprintf (id, sizeof id, "%d", seq);
        json_array_append_new (events, json_pack ("{s:s,s:s}", "id", id,
            "type", seq % 3? "a.x": seq % 2? "b.y": "b.z"));
    }
    json_t *seqs = NULL, *fresh = NULL;
    char *error = NULL;
    assert_int_equal (journal_append_json (self->journal, events, &seqs,
                                           &fresh, &error), 0);
    json_decref (events);
    json_decref (seqs);
    json_decref (fresh);
    char *text = s_read_seqs (self->journal, 1, "b.", 3);
    assert_string_equal (text, "[3,6,9] next 10");
    free (text);
    text = s_read_seqs (self->journal, 29990, "b.", 3);
    assert_string_equal (text, "[29991,29994,29997] next 29998");
    free (text);
    text = s_read_seqs (self->journal, 29998, "b.z", 3);
    assert_string_equal (text, "[30000] next 30001");
    free (text);
    text = s_read_seqs (self->journal, 2, "b.z", 2);
    assert_string_equal (text, "[6,12] next 13");
    free (text);
    text = s_read_seqs (self->journal, 1, "a", 3);
    assert_string_equal (text, "[1,2,4] next 5");
    free (text);
    //  A full page with nothing of its prefix after it, read each way.
    text = s_read_seqs (self->journal, 29995, "b.", 2);
    assert_string_equal (text, "[29997,30000] next 30001");
    free (text);
    text = s_read_seqs (self->journal, 29995, "b.y", 1);
    assert_string_equal (text, "[29997] next 30001");
    free (text);
}

static void
test_reopen_keeps_events (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    free (s_append (self->journal, "[{\"id\":\"a\",\"type\":\"t\"}]", 0));
    journal_destroy (&self->journal);
    self->journal = journal_new (self->path);
    assert_non_null (self->journal);
    assert_int_equal (journal_last (self->journal), 1);
    char *seqs = s_append (self->journal,
        "[{\"id\":\"a\",\"type\":\"t\"},{\"id\":\"b\",\"type\":\"t\"}]", 0);
    assert_string_equal (seqs, "[1,2]");
    free (seqs);
}

//  A journal whose file was deleted while open (an rm -rf of the data
//  directory) would go on appending to it, and lose it all at the next
//  start: it refuses to append, says why, and reads on.
static void
test_deleted_file_refuses_appends (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *suffixes [] = { "", "-wal", "-shm" };
    for (size_t index = 0; index < 3; index++) {
        char *path = zsys_sprintf ("%s%s", self->path, suffixes [index]);
        assert_int_equal (unlink (path), 0);
        zstr_free (&path);
    }
    char *error = s_append (self->journal, "[{\"id\":\"a\",\"type\":\"t\"}]", -1);
    assert_non_null (strstr (error, "journal.db: the database file was "
                                    "deleted or moved; refusing writes"));
    free (error);
    assert_int_equal (journal_last (self->journal), 0);
    char *text = journal_read (self->journal, 1, NULL, 10);
    assert_string_equal (text, "{\"items\":[],\"next\":1,\"last\":0}");
    free (text);
}

//  Two journals on one file would give the same seqs to different events
//  (each numbers from the newest seq it read when it opened): the second
//  is refused while the first is open, and opens once it is closed.
static void
test_second_journal_on_one_file_refused (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    free (s_append (self->journal, "[{\"id\":\"a\",\"type\":\"t\"}]", 0));
    assert_null (journal_new (self->path));
    char *seqs = s_append (self->journal, "[{\"id\":\"b\",\"type\":\"t\"}]", 0);
    assert_string_equal (seqs, "[2]");
    free (seqs);
    journal_destroy (&self->journal);
    self->journal = journal_new (self->path);
    assert_non_null (self->journal);
    assert_int_equal (journal_last (self->journal), 2);
}

static void
test_unopenable_path_fails (void **state)
{
    (void) state;
    assert_null (journal_new ("/nonexistent-dir/for/sure/journal.db"));
}

static void
test_not_a_database_fails (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char path [128];
    snprintf (path, sizeof path, "%s/garbage.db", self->dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs ("this is not an SQLite file, not even close, and it is long enough", file);
    fclose (file);
    assert_null (journal_new (path));
}

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_append_assigns_gap_free_seqs, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_duplicate_id_keeps_first_seq, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_append_names_the_family_previous, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_append_keeps_the_text_given, s_setup, s_teardown),
        cmocka_unit_test (test_split_refuses),
        cmocka_unit_test_setup_teardown (test_deep_event_refused, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_invalid_batch_stores_nothing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_read_pages_and_prefix, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_read_prefix_far_and_near, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_reopen_keeps_events, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_deleted_file_refuses_appends, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_second_journal_on_one_file_refused, s_setup, s_teardown),
        cmocka_unit_test (test_unopenable_path_fails),
        cmocka_unit_test_setup_teardown (test_not_a_database_fails, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("journal", tests, NULL, NULL);
}
