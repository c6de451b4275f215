/*  events_test.c: the outbox relay and the journal consumer, against a
    real broker (in-process actor) and real SQLite files.  */

#include "events.h"
#include "db.h"
#include "fields.h"
#include "testkit.h"
#include "resv_util.h"
#include <sys/wait.h>

//  Publishes an event of type about r1, with event id id.
static void
s_publish (testkit_t *kit, const char *id, const char *type)
{
    testkit_publish (kit, testkit_event (kit, id, type, "r1", NULL));
}

//  Waits until the journal's newest seq is at least last.
static bool
s_wait (testkit_t *kit, int64_t last)
{
    return TESTKIT_WAIT (4000, testkit_journal_last (kit) >= last);
}

static void
test_outbox_relayed_and_pruned (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    events_config_t config = { .store = "relay" };
    zactor_t *events = events_new (testkit_cfg (kit), &config);
    assert_non_null (events);
    store_t *store = store_new (testkit_cfg (kit), "relay", NULL);
    assert_int_equal (store_begin (store), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal (store_emit (store, "reservation.requested",
            "reservation", "r1", NULL, json_pack ("{s:i}", "n", i)), 0);
    assert_int_equal (store_commit (store), 0);
    events_flush (events);
    assert_true (s_wait (kit, 3));
    int64_t last;
    for (int i = 0; i < 100 && (last = 0, true); i++) {
        json_t *left = store_outbox_peek (store, 10, &last);
        if (!left)
            break;
        json_decref (left);
        zclock_sleep (20);
    }
    assert_null (store_outbox_peek (store, 10, &last));
    assert_int_equal (testkit_journal_last (kit), 3);
    events_destroy (&events);
    store_destroy (&store);
}

//  Emits count events in a transaction of their own.
static void
s_emit_some (store_t *store, int count)
{
    assert_int_equal (store_begin (store), 0);
    for (int i = 0; i < count; i++)
        assert_int_equal (store_emit (store, "reservation.requested",
            "reservation", "r1", NULL, json_pack ("{s:i}", "n", i)), 0);
    assert_int_equal (store_commit (store), 0);
}

//  An acknowledged row is not read again, and goes with the store's next
//  write that commits (or an explicit prune); not with a read, nor with a
//  write rolled back.
static void
test_outbox_ack_prunes_with_the_next_write (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "acks", NULL);
    const char *count = "SELECT count (*) FROM outbox";
    s_emit_some (store, 3);
    char *text;
    size_t size;
    int64_t last = 0;
    assert_int_equal (store_outbox_text (store, 2, 0, &last, &text, &size), 2);
    free (text);
    store_outbox_ack (store, last);
    assert_int_equal (store_outbox_text (store, 10, 0, &last, &text, &size), 1);
    free (text);
    json_t *left = store_outbox_peek (store, 10, &last);
    assert_int_equal (json_array_size (left), 1);
    json_decref (left);
    assert_int_equal (testkit_sql_int (store, count), 3);
    assert_int_equal (store_begin_read (store), 0);
    assert_int_equal (store_commit (store), 0);
    assert_int_equal (store_begin (store), 0);
    store_rollback (store);
    assert_int_equal (testkit_sql_int (store, count), 3);
    s_emit_some (store, 1);
    assert_int_equal (testkit_sql_int (store, count), 2);
    //  The rest, acknowledged, with a prune of its own; and in a batch.
    assert_int_equal (store_outbox_text (store, 10, 0, &last, &text, &size), 2);
    free (text);
    store_outbox_ack (store, last);
    assert_int_equal (store_outbox_prune (store), 0);
    assert_int_equal (testkit_sql_int (store, count), 0);
    s_emit_some (store, 2);
    assert_int_equal (store_outbox_text (store, 10, 0, &last, &text, &size), 2);
    free (text);
    store_outbox_ack (store, last);
    assert_int_equal (store_batch_begin (store), 0);
    assert_int_equal (store_batch_end (store), 0);
    assert_int_equal (testkit_sql_int (store, count), 0);
    store_destroy (&store);
}

//  An event's envelope is written as text: what it quotes comes back the
//  same, whatever the characters; data given as text goes in as it is.
static void
test_emit_quotes_the_envelope (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "quotes", NULL);
    const char *id = "r\"1\\ \n\t\x01\x1f/\xc3\xa9\xe2\x82\xac end";
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit (store, "a.b", "reservation", id, "c\"x", NULL), 0);
    assert_int_equal (store_emit_text (store, "cause", "a.c", "resource", id,
                                       NULL, "{\"k\":[1,{\"z\":null}]}"), 0);
    assert_int_equal (store_commit (store), 0);
    int64_t last;
    json_t *events = store_outbox_peek (store, 10, &last);
    assert_int_equal (json_array_size (events), 2);
    json_t *first = json_array_get (events, 0);
    assert_string_equal (json_string_value (json_object_get (first, "reservation")), id);
    assert_string_equal (json_string_value (json_object_get (first, "correlation_id")), "c\"x");
    assert_int_equal (json_object_size (json_object_get (first, "data")), 0);
    json_t *second = json_array_get (events, 1);
    assert_string_equal (json_string_value (json_object_get (second, "resource")), id);
    assert_string_equal (json_string_value (json_object_get (second, "correlation_id")), id);
    char id_of_cause [STORE_CAUSED_ID_SIZE];
    assert_string_equal (json_string_value (json_object_get (second, "id")),
                         store_caused_id ("cause", "a.c", id_of_cause));
    char *data = json_dumps (json_object_get (second, "data"), JSON_COMPACT);
    assert_string_equal (data, "{\"k\":[1,{\"z\":null}]}");
    free (data);
    json_decref (events);
    store_destroy (&store);
}

//  An event's data built around a JSON text: the text goes in as it is,
//  the strings quoted and escaped, a NULL value leaves its member out.
static void
test_object_text (void **state)
{
    (void) state;
    const char *odd = "a\"b\\c\n\x01/\xc3\xa9";
    const char *members [] = { "previous", "PENDING", "reason", NULL,
                               "why", odd, NULL };
    char *text = store_object_text ("reservation", "{\"k\":[1,null]}", members);
    assert_non_null (text);
    assert_string_equal (text, "{\"reservation\":{\"k\":[1,null]},"
                         "\"previous\":\"PENDING\",\"why\":"
                         "\"a\\\"b\\\\c\\u000a\\u0001/\xc3\xa9\"}");
    json_t *object = json_loads (text, 0, NULL);
    assert_non_null (object);
    assert_string_equal (json_string_value (json_object_get (object, "why")), odd);
    assert_null (json_object_get (object, "reason"));
    json_decref (object);
    free (text);
    text = store_object_text ("r", "7", NULL);
    assert_string_equal (text, "{\"r\":7}");
    free (text);
    assert_null (store_object_text ("r", NULL, members));
    assert_null (store_object_text (NULL, "7", members));
    //  Strings alone, the first of them left out or not.
    text = store_object_text (NULL, NULL, members);
    assert_string_equal (text, "{\"previous\":\"PENDING\",\"why\":"
                         "\"a\\\"b\\\\c\\u000a\\u0001/\xc3\xa9\"}");
    free (text);
    text = store_object_text (NULL, NULL, members + 2);
    assert_string_equal (text, "{\"why\":\"a\\\"b\\\\c\\u000a\\u0001/\xc3\xa9\"}");
    free (text);
    text = store_object_text (NULL, NULL, NULL);
    assert_string_equal (text, "{}");
    free (text);
}

static void
test_rolled_back_change_emits_nothing (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "relay", NULL);
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit (store, "reservation.requested", "reservation",
                                  "r1", NULL, NULL), 0);
    store_rollback (store);
    events_config_t config = { .store = "relay" };
    zactor_t *events = events_new (testkit_cfg (kit), &config);
    zclock_sleep (400);
    assert_int_equal (testkit_journal_last (kit), 0);
    events_destroy (&events);
    store_destroy (&store);
}

static void
test_outbox_left_by_a_crash_is_sent_at_start (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    //  Committed while no relay ran: as if the process died after commit.
    store_t *store = store_new (testkit_cfg (kit), "relay", NULL);
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit (store, "payment.authorized", "reservation",
                                  "r9", NULL, NULL), 0);
    assert_int_equal (store_commit (store), 0);
    events_config_t config = { .store = "relay" };
    zactor_t *events = events_new (testkit_cfg (kit), &config);
    assert_true (s_wait (kit, 1));
    events_destroy (&events);
    store_destroy (&store);
}

//  A kit whose broker takes requests of 4 kB at most (broker/max_message),
//  for the relay's batches; the teardown puts the default back.
static int
s_small_messages_setup (void **state)
{
    const char *env [] = { "RESV_BROKER_MAX_MESSAGE", "4096", NULL };
    *state = testkit_new ((const char *) *state, env);
    return 0;
}

static int
s_small_messages_teardown (void **state)
{
    testkit_destroy ((testkit_t **) state);
    unsetenv ("RESV_BROKER_MAX_MESSAGE");
    return 0;
}

//  Emits count events in one transaction, each with a note of pad bytes.
static void
s_emit_padded (store_t *store, int count, size_t pad)
{
    char *note = (char *) malloc (pad + 1);
    assert_non_null (note);
    memset (note, 'n', pad);
    note [pad] = 0;
    assert_int_equal (store_begin (store), 0);
    for (int i = 0; i < count; i++)
        assert_int_equal (store_emit (store, "reservation.requested",
            "reservation", "r1", NULL, json_pack ("{s:i,s:s}", "n", i,
                                                  "note", note)), 0);
    assert_int_equal (store_commit (store), 0);
    free (note);
}

//  An outbox larger than one publish may carry (broker/max_message) goes
//  in several: a batch the broker refuses as too large would be refused
//  again at every try, and nothing after it would ever be journaled.
static void
test_relay_batches_fit_the_broker_limit (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "relay", NULL);
    s_emit_padded (store, 40, 300);
    //  The store's own reads stop at the limit too, past the first row.
    char *text;
    size_t size;
    int64_t last = 0;
    int count = store_outbox_text (store, 200, 4000, &last, &text, &size);
    assert_in_range (count, 2, 39);
    assert_in_range (size, 1, 4000);
    free (text);
    assert_int_equal (store_outbox_text (store, 200, 10, &last, &text,
                                         &size), 1);
    free (text);
    events_config_t config = { .store = "relay" };
    zactor_t *events = events_new (testkit_cfg (kit), &config);
    assert_non_null (events);
    assert_true (s_wait (kit, 40));
    assert_int_equal (testkit_journal_last (kit), 40);
    events_destroy (&events);
    store_destroy (&store);
}

//  Stopped while it relays a backlog of many publishes to a broker that
//  answers each at once, the relay hears the stop between two and sends
//  no more once the stop's time for the broker is over: the rest waits
//  in the outbox, and the next start sends it, each event journaled
//  once. The relay heard the stop only once the whole backlog was sent.
static void
test_stop_during_a_backlog (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "relay", NULL);
    //  About 15 to a publish of 4 kB: some 1300 publishes.
    const int count = 20000;
    s_emit_padded (store, count, 150);
    //  A stop gives the broker 250 ms (read when the actor starts).
    setenv ("RESV_RESVD_STOP_TIMEOUT", "1000", 1);
    events_config_t config = { .store = "relay" };
    zactor_t *events = events_new (testkit_cfg (kit), &config);
    unsetenv ("RESV_RESVD_STOP_TIMEOUT");
    assert_non_null (events);
    //  The relay is under way: stop it.
    assert_true (s_wait (kit, 1));
    events_destroy (&events);
    int64_t journaled = testkit_journal_last (kit);
    assert_in_range (journaled, 1, count - 1);
    //  What was not journaled is in the outbox; so may be the rows of the
    //  publish the stop gave up on, should the journal have taken it after
    //  all (the next start resends them, and the journal keeps each once).
    int64_t left = store_outbox_unacked (store);
    assert_in_range (left, count - journaled, count - journaled + 200);
    events = events_new (testkit_cfg (kit), &config);
    assert_non_null (events);
    assert_true (TESTKIT_WAIT (60000, testkit_journal_last (kit) >= count));
    events_destroy (&events);
    assert_int_equal (testkit_journal_last (kit), count);
    assert_int_equal (store_outbox_unacked (store), 0);
    store_destroy (&store);
}

//  An event no publish could carry (over broker/max_message alone) is
//  refused when emitted, and its change with it: in the outbox it would
//  be refused by the journal at every try, and hold every event after it.
static void
test_event_too_large_for_a_publish_is_refused (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "relay", NULL);
    assert_true (store_publish_max (store) < 4096);
    char *note = (char *) malloc (4096);
    assert_non_null (note);
    memset (note, 'n', 4095);
    note [4095] = 0;
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit (store, "reservation.requested",
        "reservation", "r1", NULL, json_pack ("{s:s}", "note", note)), -1);
    assert_non_null (strstr (store_error (store), "broker/max_message"));
    store_rollback (store);
    free (note);
    //  The largest that fits goes, and so do those after it.
    size_t room = store_publish_max (store);
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit_text (store, NULL, "reservation.requested",
                                       "reservation", "r1", NULL, "{}"), 0);
    assert_int_equal (store_commit (store), 0);
    int64_t last = 0;
    char *text;
    size_t size;
    assert_int_equal (store_outbox_text (store, 10, 0, &last, &text, &size), 1);
    free (text);
    //  The same event with data that fills the room to the byte.
    size_t pad = room - size - strlen ("\"p\":\"\"");
    char *data = (char *) malloc (pad + 16);
    assert_non_null (data);
    memcpy (data, "{\"p\":\"", 6);
    memset (data + 6, 'p', pad);
    strcpy (data + 6 + pad, "\"}");
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit_text (store, NULL, "reservation.requested",
                                       "reservation", "r1", NULL, data), 0);
    assert_int_equal (store_emit_text (store, NULL, "reservation.requested",
                                       "reservation", "r1", NULL, "{}"), 0);
    assert_int_equal (store_commit (store), 0);
    free (data);
    events_config_t config = { .store = "relay" };
    zactor_t *events = events_new (testkit_cfg (kit), &config);
    assert_non_null (events);
    assert_true (s_wait (kit, 3));
    assert_int_equal (testkit_journal_last (kit), 3);
    events_destroy (&events);
    store_destroy (&store);
}

//  A consumer that records each event it applies in a table; a unique
//  constraint on seq would make a second application fail loudly.
static const char *s_schema =
    "CREATE TABLE IF NOT EXISTS applied (seq INTEGER PRIMARY KEY, type TEXT);";

static int
s_apply (void *state, store_t *store, const char *type, json_t *event)
{
    //  Failures injected by the test: state counts the attempts to fail.
    int *failures = (int *) state;
    if (failures && *failures > 0) {
        (*failures)--;
        return -1;
    }
    sqlite3_stmt *stmt = store_stmt (store, "INSERT INTO applied (seq, type) VALUES (?1, ?2)");
    sqlite3_bind_int64 (stmt, 1, json_integer_value (json_object_get (event, "seq")));
    sqlite3_bind_text (stmt, 2, type, -1, SQLITE_STATIC);
    return sqlite3_step (stmt) == SQLITE_DONE? 0: -1;
}

static bool
s_wait_applied (store_t *store, int64_t count)
{
    return TESTKIT_WAIT (6000, testkit_sql_int (store,
                         "SELECT count (*) FROM applied") >= count);
}

static void
test_consumer_catches_up_then_follows (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    //  Events journaled before the consumer starts come from the journal;
    //  those after, from the fan-out; each is applied once.
    for (int i = 0; i < 5; i++) {
        char id [8];
        snprintf (id, sizeof id, "a%d", i);
        s_publish (kit, id, "reservation.requested");
    }
    events_config_t config = { .store = "consumer", .schema = s_schema,
                               .consumer = "test", .apply = s_apply };
    zactor_t *events = events_new (testkit_cfg (kit), &config);
    assert_non_null (events);
    store_t *store = store_new (testkit_cfg (kit), "consumer", s_schema);
    assert_true (s_wait_applied (store, 5));
    for (int i = 0; i < 50; i++) {
        char id [8];
        snprintf (id, sizeof id, "b%d", i);
        s_publish (kit, id, "payment.captured");
    }
    s_publish (kit, "b7", "payment.captured");     //  A resend
    assert_true (s_wait_applied (store, 55));
    zclock_sleep (200);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM applied"),
                      55);
    assert_int_equal (testkit_sql_int (store, "SELECT max (seq) FROM applied"),
                      55);
    assert_int_equal (store_cursor (store, "test"), 55);
    events_destroy (&events);
    store_destroy (&store);
}

//  An apply that takes a millisecond an event: a page of a catch-up (500
//  events) half a second.
static int
s_apply_slow (void *state, store_t *store, const char *type, json_t *event)
{
    zclock_sleep (1);
    return s_apply (state, store, type, event);
}

//  A consumer told to stop while it catches up reads no further page of
//  the journal: the rest is read at its next start, each event once. A
//  journal that answered each read at once was read to its end first,
//  since the actor heard its pipe only in a call that waited 50 ms for
//  nothing: a view catching up 204 000 events took 9.4 s to stop, and a
//  longer catch-up went past resvd/stop_timeout and was killed.
static void
test_stop_during_catch_up (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    for (int batch = 0; batch < 10; batch++) {
        json_t *events = json_array ();
        for (int i = 0; i < 200; i++)
            json_array_append_new (events, testkit_event (kit, NULL,
                                   "reservation.requested", "r1", NULL));
        testkit_publish (kit, events);
    }
    events_config_t config = { .store = "consumer", .schema = s_schema,
                               .consumer = "test", .apply = s_apply_slow };
    zactor_t *events = events_new (testkit_cfg (kit), &config);
    assert_non_null (events);
    store_t *store = store_new (testkit_cfg (kit), "consumer", s_schema);
    //  The first of four pages is in: stop during the second.
    assert_true (s_wait_applied (store, 500));
    events_destroy (&events);
    int64_t applied = testkit_sql_int (store, "SELECT count (*) FROM applied");
    assert_in_range (applied, 500, 1000);
    assert_int_equal (store_cursor (store, "test"), applied);
    config.apply = s_apply;
    events = events_new (testkit_cfg (kit), &config);
    assert_non_null (events);
    assert_true (s_wait_applied (store, 2000));
    events_destroy (&events);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM applied"),
                      2000);
    assert_int_equal (store_cursor (store, "test"), 2000);
    store_destroy (&store);
}

static void
test_two_processes_apply_each_event_once (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    events_config_t config = { .store = "consumer", .schema = s_schema,
                               .consumer = "test", .apply = s_apply };
    zactor_t *one = events_new (testkit_cfg (kit), &config);
    zactor_t *two = events_new (testkit_cfg (kit), &config);
    store_t *store = store_new (testkit_cfg (kit), "consumer", s_schema);
    for (int i = 0; i < 200; i++) {
        char id [8];
        snprintf (id, sizeof id, "c%d", i);
        s_publish (kit, id, "reservation.confirmed");
    }
    assert_true (s_wait_applied (store, 200));
    zclock_sleep (200);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM applied"),
                      200);
    events_destroy (&one);
    events_destroy (&two);
    store_destroy (&store);
}

//  Types of the filtering consumer: a prefix and an exact name.
static const char *s_some_types [] = { "payment.", "reservation.confirmed", NULL };

static void
test_consumer_passes_over_other_types (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    events_config_t config = { .store = "consumer", .schema = s_schema,
                               .consumer = "test", .apply = s_apply,
                               .types = s_some_types };
    //  Two processes' worth of consumers, as a scaled service runs.
    zactor_t *one = events_new (testkit_cfg (kit), &config);
    zactor_t *two = events_new (testkit_cfg (kit), &config);
    store_t *store = store_new (testkit_cfg (kit), "consumer", s_schema);
    const char *types [] = { "reservation.requested", "payment.captured",
        "reservation.confirmed_late", "approval.approved",
        "reservation.confirmed" };
    for (int i = 0; i < 100; i++) {
        char id [8];
        snprintf (id, sizeof id, "f%d", i);
        s_publish (kit, id, types [i % 5]);
    }
    //  Forty wanted (payment.captured, reservation.confirmed), each once;
    //  none of the others.
    assert_true (s_wait_applied (store, 40));
    zclock_sleep (200);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM applied"), 40);
    assert_int_equal (testkit_sql_int (store,
        "SELECT count (*) FROM applied WHERE type NOT IN "
        "('payment.captured', 'reservation.confirmed')"), 0);
    //  The cursor moves over what is passed over too, lazily: the last
    //  event is unwanted, yet the stored cursor reaches it.
    s_publish (kit, "f-last", "approval.declined");
    assert_true (TESTKIT_WAIT (4000, store_cursor (store, "test") == 101));
    events_destroy (&one);
    events_destroy (&two);
    //  A restart reads on from the cursor: nothing is applied twice.
    zactor_t *three = events_new (testkit_cfg (kit), &config);
    s_publish (kit, "f-new", "payment.refunded");
    assert_true (s_wait_applied (store, 41));
    zclock_sleep (200);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM applied"), 41);
    events_destroy (&three);
    store_destroy (&store);
}

//  A consumer whose apply fails the first *failures times.
static zactor_t *
s_failing_consumer (testkit_t *kit, int *failures)
{
    events_config_t config = { .store = "consumer", .schema = s_schema,
                               .consumer = "test", .apply = s_apply,
                               .state = failures };
    return events_new (testkit_cfg (kit), &config);
}

static void
test_failed_apply_is_retried_not_skipped (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "consumer", s_schema);
    int failures = 2;
    zactor_t *events = s_failing_consumer (kit, &failures);
    s_publish (kit, "d1", "reservation.expired");
    s_publish (kit, "d2", "reservation.expired");
    assert_true (s_wait_applied (store, 2));
    assert_int_equal (testkit_sql_int (store, "SELECT min (seq) FROM applied"),
                      1);
    assert_int_equal (failures, 0);
    events_destroy (&events);
    store_destroy (&store);
}

//  The last event, missed live (here: its apply and the catch-up right
//  after it fail), is read from the journal once the stream is quiet:
//  no later event's seq can show the gap.
static void
test_missed_last_event_found_when_quiet (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "consumer", s_schema);
    int failures = 2;
    zactor_t *events = s_failing_consumer (kit, &failures);
    zclock_sleep (200);         //  Subscribed and caught up (nothing)
    s_publish (kit, "q1", "reservation.expired");
    assert_true (s_wait_applied (store, 1));
    assert_int_equal (failures, 0);
    events_destroy (&events);
    store_destroy (&store);
}

//  A consumer that records each event it applies: where it came from (the
//  "via" of its data) and the whole of it as it reached apply.
static const char *s_seen_schema =
    "CREATE TABLE IF NOT EXISTS seen (seq INTEGER PRIMARY KEY, via TEXT,"
    "                                 text TEXT);";

static int
s_apply_seen (void *state, store_t *store, const char *type, json_t *event)
{
    (void) state;
    (void) type;
    char *text = json_dumps (event, JSON_COMPACT | JSON_SORT_KEYS);
    sqlite3_stmt *stmt = store_stmt (store, "INSERT INTO seen VALUES (?1, ?2, ?3)");
    sqlite3_bind_int64 (stmt, 1, json_integer_value (json_object_get (event, "seq")));
    sqlite3_bind_text (stmt, 2, json_string_value (json_object_get (
                       json_object_get (event, "data"), "via")), -1, SQLITE_STATIC);
    sqlite3_bind_text (stmt, 3, text, -1, SQLITE_TRANSIENT);
    free (text);
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    return rc == SQLITE_DONE? 0: -1;
}

//  Sends a fan-out message as the broker does: type; seq, prev of the
//  family and prev of the type; the event.
static void
s_fan_out_text (zsock_t *pub, const char *type, int seq, int prev,
                int prev_type, const char *event)
{
    char seqs [48];
    snprintf (seqs, sizeof seqs, "%d %d %d", seq, prev, prev_type);
    zstr_sendx (pub, type, seqs, event, NULL);
}

//  s_fan_out_text of event v<seq> about r1 with data {"via": via}.
static void
s_fan_out (zsock_t *pub, const char *type, int seq, int prev, int prev_type,
           const char *via)
{
    char *event = zsys_sprintf ("{\"seq\":%d,\"id\":\"v%d\",\"type\":\"%s\","
                                "\"reservation\":\"r1\",\"data\":{\"via\":\"%s\"}}",
                                seq, seq, type, via);
    s_fan_out_text (pub, type, seq, prev, prev_type, event);
    zstr_free (&event);
}

//  Starts a consumer of config whose fan-out is pub (the test's own).
static zactor_t *
s_consumer_of (testkit_t *kit, events_config_t *config, zsock_t *pub)
{
    char *saved = strdup (getenv ("RESV_BROKER_EVENTS"));
    setenv ("RESV_BROKER_EVENTS", zsock_endpoint (pub), 1);
    zactor_t *events = events_new (testkit_cfg (kit), config);
    setenv ("RESV_BROKER_EVENTS", saved, 1);
    free (saved);
    assert_non_null (events);
    return events;
}

//  Publishes event v<seq> of type to the journal, with via "journal".
static void
s_journal (testkit_t *kit, const char *type, int seq)
{
    char id [16];
    snprintf (id, sizeof id, "v%d", seq);
    assert_int_equal (testkit_publish (kit, testkit_event (kit, id, type, "r1",
                      json_pack ("{s:s}", "via", "journal"))), seq);
}

//  Sends event 1 of type live, again and again until the consumer that
//  stores into store has applied it: until its subscription has reached
//  the PUB.
static void
s_first_live (zsock_t *pub, store_t *store, const char *type)
{
    int64_t deadline = zclock_mono () + 5000;
    while (testkit_sql_int (store, "SELECT count (*) FROM seen") == 0
       &&  zclock_mono () < deadline) {
        s_fan_out (pub, type, 1, 0, 0, "live");
        zclock_sleep (20);
    }
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM seen "
                                       "WHERE seq = 1 AND via = 'live'"), 1);
}

//  A recording consumer ("test", on store "consumer") whose fan-out is a
//  PUB of the test's own (so that a test can lose events, or send what the
//  broker never would), and its store.
typedef struct {
    events_config_t config;
    zsock_t *pub;
    zactor_t *events;
    store_t *store;
} s_live_t;

//  Starts the consumer of types (by type or not), which keeps fields (NULL:
//  all), and opens its store; with first_type, waits until it has applied
//  event 1 of that type, heard live.
static void
s_live_start (testkit_t *kit, s_live_t *self, const char *const *types,
              bool by_type, const char *const *fields,
              const char *first_type)
{
    self->config = (events_config_t) {
        .store = "consumer", .schema = s_seen_schema, .consumer = "test",
        .apply = s_apply_seen, .types = types, .by_type = by_type,
        .fields = fields
    };
    self->pub = zsock_new_pub ("tcp://127.0.0.1:*");
    assert_non_null (self->pub);
    self->events = s_consumer_of (kit, &self->config, self->pub);
    self->store = store_new (testkit_cfg (kit), self->config.store,
                             s_seen_schema);
    assert_non_null (self->store);
    if (first_type)
        s_first_live (self->pub, self->store, first_type);
}

static void
s_live_stop (s_live_t *self)
{
    events_destroy (&self->events);
    store_destroy (&self->store);
    zsock_destroy (&self->pub);
}

//  A consumer of one family (here "reservation.") subscribes to it alone:
//  the seqs it hears skip the other families' events, and a gap shows in
//  the fan-out's prev. The fan-out here is the test's own PUB, so that it
//  can lose an event; the journal is the broker's.
static void
test_family_consumer_finds_a_gap_by_prev (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    static const char *types [] = { "reservation.", NULL };
    s_live_t live;
    s_live_start (kit, &live, types, false, NULL, "reservation.requested");
    zsock_t *pub = live.pub;
    store_t *store = live.store;
    //  The journal has 1 to 4; 2 is of another family. 3 is lost on the
    //  way: 4 names it as its prev, so the consumer reads 3 and 4 back from
    //  the journal (4 is not applied as heard), and never sees 2.
    s_journal (kit, "reservation.requested", 1);
    s_journal (kit, "approval.approved", 2);
    s_journal (kit, "reservation.confirmed", 3);
    s_journal (kit, "reservation.cancelled", 4);
    s_fan_out (pub, "reservation.cancelled", 4, 3, 0, "live");
    assert_true (TESTKIT_WAIT (4000, testkit_sql_int (store,
                 "SELECT count (*) FROM seen") == 3));
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM seen "
                      "WHERE seq IN (3, 4) AND via = 'journal'"), 2);
    //  With nothing lost, a live event is applied as heard, over the other
    //  family's seqs: 6 follows 4 (5 is not the consumer's).
    s_fan_out (pub, "reservation.expired", 6, 4, 0, "live");
    assert_true (TESTKIT_WAIT (4000, testkit_sql_int (store,
                 "SELECT count (*) FROM seen") == 4));
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM seen "
                                       "WHERE seq = 6 AND via = 'live'"), 1);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM seen "
                                       "WHERE seq IN (2, 5)"), 0);
    s_live_stop (&live);
}

//  A fan-out message of any shape but the broker's (too few or too many
//  frames; seqs that are not three numbers of 1 to 18 digits with one
//  space between) is dropped with a log line: the event it carried is read
//  from the journal, never applied as heard.
static void
test_malformed_fan_out_is_dropped (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    static const char *types [] = { "reservation.", NULL };
    s_live_t live;
    s_live_start (kit, &live, types, false, NULL, "reservation.requested");
    zsock_t *pub = live.pub;
    s_journal (kit, "reservation.requested", 1);
    s_journal (kit, "reservation.confirmed", 2);
    const char *type = "reservation.confirmed";
    const char *event = "{\"seq\":2,\"id\":\"v2\",\"type\":\"reservation.confirmed\","
                        "\"reservation\":\"r1\",\"data\":{\"via\":\"live\"}}";
    const char *bad_seqs [] = {
        "2 1", "2 1 0 ", " 2 1 0", "2  1 0", "2\t1\t0", "+2 1 0", "2 1 -1",
        "2 1 0x", "0x2 1 0", "", "1234567890123456789 1 0", NULL
    };
    for (const char **seqs = bad_seqs; *seqs; seqs++)
        zstr_sendx (pub, type, *seqs, event, NULL);
    zstr_sendx (pub, type, NULL);
    zstr_sendx (pub, type, "2 1 0", NULL);
    zstr_sendx (pub, type, "2 1 0", event, "0", NULL);
    zstr_sendx (pub, type, "2 1 0", event, "0", "0", NULL);
    //  3 comes whole, naming 2, which was never applied: both are read
    //  from the journal.
    s_journal (kit, "reservation.cancelled", 3);
    s_fan_out (pub, "reservation.cancelled", 3, 2, 0, "live");
    assert_true (TESTKIT_WAIT (4000, testkit_sql_int (live.store,
                 "SELECT count (*) FROM seen") == 3));
    assert_int_equal (testkit_sql_int (live.store, "SELECT count (*) FROM seen "
                      "WHERE seq IN (2, 3) AND via = 'journal'"), 2);
    s_live_stop (&live);
}

//  A consumer by type keeps a cursor per type, and a gap shows in the
//  fan-out's prev of the type (the family's prev, also sent, would say
//  otherwise). Another consumer by type, started on a store whose service
//  cursor is 3, starts each type's cursor there.
static void
test_consumer_by_type_finds_a_gap_by_type_prev (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    static const char *types [] = {
        "reservation.confirmed", "reservation.cancelled", NULL
    };
    s_live_t live;
    s_live_start (kit, &live, types, true, NULL, "reservation.confirmed");
    zsock_t *pub = live.pub;
    store_t *store = live.store;
    //  4 follows 1 among the confirmed (3, cancelled, is the family's
    //  prev): applied as heard, though 3 is not applied yet.
    s_fan_out (pub, "reservation.confirmed", 4, 3, 1, "live");
    assert_true (TESTKIT_WAIT (4000, testkit_sql_int (store,
                 "SELECT count (*) FROM seen WHERE seq = 4 AND via = 'live'") == 1));
    //  The journal has 1 to 5; 2 is not one of the types. 3 is lost on
    //  the way: 5 names it as the cancelled before, so the consumer reads
    //  the cancelled back from the journal, and never sees 2.
    s_journal (kit, "reservation.confirmed", 1);
    s_journal (kit, "reservation.requested", 2);
    s_journal (kit, "reservation.cancelled", 3);
    s_journal (kit, "reservation.confirmed", 4);
    s_journal (kit, "reservation.cancelled", 5);
    s_fan_out (pub, "reservation.cancelled", 5, 4, 3, "live");
    assert_true (TESTKIT_WAIT (4000, testkit_sql_int (store,
                 "SELECT count (*) FROM seen") == 4));
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM seen "
                      "WHERE seq IN (3, 5) AND via = 'journal'"), 2);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM seen "
                                       "WHERE seq = 2"), 0);
    assert_true (testkit_wait_cursor (kit, store, "test/reservation.confirmed", 4));
    assert_true (testkit_wait_cursor (kit, store, "test/reservation.cancelled", 5));
    events_destroy (&live.events);
    store_destroy (&live.store);

    //  A store with the service's cursor at 3: each type starts there.
    store = store_new (testkit_cfg (kit), "second", s_seen_schema);
    assert_non_null (store);
    assert_int_equal (store_cursor_set (store, "test", 3), 0);
    live.config.store = "second";
    zactor_t *events = s_consumer_of (kit, &live.config, pub);
    assert_true (TESTKIT_WAIT (4000, testkit_sql_int (store,
                 "SELECT count (*) FROM seen") == 2));
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM seen "
                      "WHERE seq IN (4, 5) AND via = 'journal'"), 2);
    assert_int_equal (store_cursor (store, "test/reservation.confirmed"), 4);
    events_destroy (&events);
    store_destroy (&store);
    s_live_stop (&live);
}

//  A consumer that names its fields gets a live event with those members
//  alone (and seq and type), at any depth; a member a field names whole
//  comes whole, and one that is not an object is not gone into.
static void
test_consumer_gets_the_fields_it_names (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    static const char *fields [] = { "id", "data.owner", "data.deep.x",
                                     "data.list.x", "data.whole", "absent",
                                     NULL };
    s_live_t live;
    s_live_start (kit, &live, NULL, false, fields, NULL);
    store_t *store = live.store;
    const char *event =
        "{\"seq\":1,\"id\":\"e1\",\"type\":\"a.b\",\"at\":\"now\","
        "\"reservation\":\"r1\",\"data\":{\"other\":[1,{\"x\":2}],"
        "\"owner\":\"o\\u00e9\",\"deep\":{\"y\":3,\"x\":{\"z\":[4]}},"
        "\"list\":[{\"x\":5}],\"whole\":{\"a\":{\"b\":6}}}}";
    int64_t deadline = zclock_mono () + 5000;
    while (testkit_sql_int (store, "SELECT count (*) FROM seen") == 0
       &&  zclock_mono () < deadline) {
        s_fan_out_text (live.pub, "a.b", 1, 0, 0, event);
        zclock_sleep (20);
    }
    char *text = testkit_sql_text (store, "SELECT text FROM seen WHERE seq = 1");
    assert_string_equal (text,
        "{\"data\":{\"deep\":{\"x\":{\"z\":[4]}},\"owner\":\"o\u00e9\","
        "\"whole\":{\"a\":{\"b\":6}}},\"id\":\"e1\",\"seq\":1,\"type\":\"a.b\"}");
    free (text);
    s_live_stop (&live);
}

//  field_sparse makes each kept value as json_loadb makes it, whichever
//  kind (the usual ones are made without jansson's parser), and fails
//  where json_loadb fails.
static void
test_field_sparse_values (void **state)
{
    (void) state;
    const char *values [] = {
        "\"\"", "\"plain\"", "\"o\\u00e9 \\\" \\\\ \\n\"", "\"\xc3\xa9\"",
        "\"nul \\u0000 inside\"", "0", "-0", "7", "-12", "123456789012345678",
        "-12345678901234567", "999999999999999999", "9223372036854775807",
        "9223372036854775808", "-9223372036854775808", "-9223372036854775809",
        "99999999999999999999", "1.5", "-0.0", "1e5", "2E-3", "true", "false",
        "null", "[1,\"a\",{\"b\":null}]", "{\"x\":{\"y\":[]}}", "{}", "[]", NULL
    };
    static const char *const fields [] = { "k", NULL };
    for (int index = 0; values [index]; index++) {
        char text [128];
        snprintf (text, sizeof text, "{\"a\":1,\"k\":%s,\"z\":[2]}", values [index]);
        json_t *expected = json_loadb (values [index], strlen (values [index]),
                                       JSON_DECODE_ANY, NULL);
        json_t *got = field_sparse (text, strlen (text), fields, NULL);
        if (!expected)
            assert_null (got);
        else {
            assert_non_null (got);
            assert_int_equal (json_object_size (got), 1);
            json_t *member = json_object_get (got, "k");
            assert_int_equal (json_typeof (member), json_typeof (expected));
            assert_true (json_equal (member, expected));
        }
        json_decref (expected);
        json_decref (got);
    }
    //  A text that is not an object, or not valid, gives NULL.
    assert_null (field_sparse ("[1]", 3, fields, NULL));
    assert_null (field_sparse ("{\"k\":1,\"k\":2}", 13, fields, NULL));
    assert_null (field_sparse ("{\"k\":\"\x80\"}", 10, fields, NULL));
}

//  One request's transaction inside a batch: inserts what sql inserts
//  (it returns the row's id, which must be id), then commits or rolls back.
static void
s_batched_insert (store_t *store, const char *sql, int64_t id, bool commit)
{
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (testkit_sql_int (store, sql), id);
    if (commit)
        assert_int_equal (store_commit (store), 0);
    else
        store_rollback (store);
}

static void
test_store_batch (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    const char *schema =
        "CREATE TABLE IF NOT EXISTS parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE IF NOT EXISTS child (id INTEGER PRIMARY KEY, parent"
        "    INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);";
    store_t *store = store_new (testkit_cfg (kit), "batch", schema);
    assert_non_null (store);
    assert_int_equal (store_batch_end (store), -1);     //  None open
    assert_string_equal (store_batch_error (store), "no batch is open");
    //  Three requests share a batch: the first commits, the second rolls
    //  back, the third only reads. Only the first is written.
    assert_int_equal (store_batch_begin (store), 0);
    assert_int_equal (store_batch_begin (store), -1);   //  One at a time
    s_batched_insert (store, "INSERT INTO parent VALUES (1) RETURNING id", 1, true);
    s_batched_insert (store, "INSERT INTO parent VALUES (2) RETURNING id", 2, false);
    assert_int_equal (store_begin_read (store), 0);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM parent"), 1);
    store_rollback (store);
    assert_int_equal (store_batch_end (store), 0);
    //  It wrote rows but no event: nothing for the relay.
    assert_false (store_emitted (store));
    assert_int_equal (testkit_sql_int (store, "SELECT group_concat (id) FROM parent"), 1);
    //  A batch whose request emits an event says so once committed.
    assert_int_equal (store_batch_begin (store), 0);
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit (store, "test.batched", "thing", "t1", NULL,
                                  NULL), 0);
    assert_int_equal (store_commit (store), 0);
    assert_int_equal (store_batch_end (store), 0);
    assert_true (store_emitted (store));
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM outbox"), 1);
    //  A commit that fails (a deferred constraint, checked at COMMIT)
    //  writes nothing of the batch, its event included, and the store
    //  works on.
    assert_int_equal (store_batch_begin (store), 0);
    s_batched_insert (store, "INSERT INTO parent VALUES (3) RETURNING id", 3, true);
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit (store, "test.batched", "thing", "t2", NULL,
                                  NULL), 0);
    assert_int_equal (store_commit (store), 0);
    s_batched_insert (store, "INSERT INTO child VALUES (1, 99) RETURNING id", 1, true);
    assert_int_equal (store_batch_end (store), -1);
    //  SQLite's reason is kept, though the rollback came after it.
    assert_string_equal (store_batch_error (store),
                         "FOREIGN KEY constraint failed");
    assert_false (store_emitted (store));
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM outbox"), 1);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM parent"), 1);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM child"), 0);
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_commit (store), 0);
    assert_false (store_emitted (store));
    //  So does a plain transaction; one rolled back or only read does not.
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit (store, "test.plain", "thing", "t3", NULL,
                                  NULL), 0);
    assert_int_equal (store_commit (store), 0);
    assert_true (store_emitted (store));
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit (store, "test.plain", "thing", "t4", NULL,
                                  NULL), 0);
    store_rollback (store);
    assert_int_equal (store_begin_read (store), 0);
    assert_int_equal (store_commit (store), 0);
    assert_false (store_emitted (store));
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM outbox"), 2);
    store_destroy (&store);
}

//  Event ids sort by when they were emitted, and a derived id sorts with
//  its cause, so that the journal's index of ids grows at its end.
static void
test_event_ids_sort_by_time (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "ids", NULL);
    assert_non_null (store);
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_emit (store, "test.first", "reservation", "r1", NULL, NULL), 0);
    zclock_sleep (5);
    assert_int_equal (store_emit (store, "test.second", "reservation", "r1", NULL, NULL), 0);
    assert_int_equal (store_commit (store), 0);
    int64_t last;
    json_t *events = store_outbox_peek (store, 10, &last);
    assert_int_equal (json_array_size (events), 2);
    const char *first = json_string_value (json_object_get (json_array_get (events, 0), "id"));
    const char *second = json_string_value (json_object_get (json_array_get (events, 1), "id"));
    assert_int_equal (strlen (first), STORE_CAUSED_ID_SIZE - 1);
    assert_int_equal (first [0], 'e');
    assert_true (strcmp (first, second) < 0);
    //  "e", 12 digits of the time in ms, 20 random ones.
    char digits [13];
    memcpy (digits, first + 1, 12);
    digits [12] = 0;
    int64_t stamp = strtoll (digits, NULL, 16);
    assert_true (llabs (stamp - resv_time_ms ()) < 60000);
    //  An effect keeps its cause's time digits, so it sorts after the
    //  cause's predecessors and before what was emitted later; two causes
    //  of one time still give two ids, and a cause of another shape a
    //  plain hash.
    char effect [STORE_CAUSED_ID_SIZE], other [STORE_CAUSED_ID_SIZE];
    store_caused_id (first, "test.effect", effect);
    assert_int_equal (effect [0], 'c');
    assert_memory_equal (effect + 1, first + 1, 12);
    assert_true (strcmp (effect + 1, second + 1) < 0);
    assert_string_not_equal (effect, store_caused_id (second, "test.effect", other));
    assert_string_not_equal (effect, store_caused_id (first, "test.other", other));
    store_caused_id ("confirm-1", "test.effect", other);
    assert_int_equal (strlen (other), STORE_CAUSED_ID_SIZE - 1);
    assert_int_equal (strspn (other + 1, "0123456789abcdef"), STORE_CAUSED_ID_SIZE - 2);
    json_decref (events);
    store_destroy (&store);
}

//  A store whose file was deleted or moved while open (an rm -rf of the
//  data directory) would go on writing to it, and lose it all at the
//  next start: it refuses to begin a write, alone or as a batch, and any
//  write outside one (a request run without its batch), and says why; it
//  reads on. It looks at most once a second: a file put back where it
//  was takes writes again once that second has passed.
#define S_MOVED_SCHEMA "CREATE TABLE IF NOT EXISTS rows (id INTEGER PRIMARY KEY);" \
                       "INSERT OR IGNORE INTO rows VALUES (1);"
#define S_REFUSED "the database file was deleted or moved; refusing writes"

static void
test_store_refuses_writes_once_deleted (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "deleted", S_MOVED_SCHEMA);
    assert_non_null (store);
    const char *suffixes [] = { "", "-wal", "-shm" };
    for (size_t index = 0; index < 3; index++) {
        char *path = zsys_sprintf ("%s%s", store_path (store), suffixes [index]);
        assert_int_equal (unlink (path), 0);
        zstr_free (&path);
    }
    assert_int_equal (store_begin (store), -1);
    assert_string_equal (store_error (store), S_REFUSED);
    assert_true (sqlite3_get_autocommit (store_db (store)));
    assert_int_equal (store_batch_begin (store), -1);
    assert_true (sqlite3_get_autocommit (store_db (store)));
    assert_int_equal (testkit_sql_int (store, "INSERT INTO rows VALUES (2) "
                                              "RETURNING id"), -1);
    assert_string_equal (store_error (store), S_REFUSED);
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM rows"), 1);
    store_destroy (&store);
}

static void
test_store_refuses_writes_once_moved (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    store_t *store = store_new (testkit_cfg (kit), "moved", S_MOVED_SCHEMA);
    assert_non_null (store);
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (store_commit (store), 0);
    char *aside = zsys_sprintf ("%s.aside", store_path (store));
    assert_int_equal (rename (store_path (store), aside), 0);
    zclock_sleep (DB_MOVED_CHECK_MS + 100);
    assert_int_equal (store_begin (store), -1);
    assert_string_equal (store_error (store), S_REFUSED);
    //  Reads go on, and after one the error is SQLite's again.
    assert_int_equal (testkit_sql_int (store, "SELECT count (*) FROM rows"), 1);
    assert_string_not_equal (store_error (store), S_REFUSED);
    assert_int_equal (rename (aside, store_path (store)), 0);
    zclock_sleep (DB_MOVED_CHECK_MS + 100);
    assert_int_equal (store_begin (store), 0);
    assert_int_equal (testkit_sql_int (store, "INSERT INTO rows VALUES (2) "
                                              "RETURNING id"), 2);
    assert_int_equal (store_commit (store), 0);
    store_destroy (&store);
    zstr_free (&aside);
}

static void
test_store_open_failures (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    assert_null (store_new (testkit_cfg (kit), "bad", "THIS IS NOT SQL"));
    setenv ("RESV_DATA_DIR", "/proc/no-such-place", 1);
    resv_cfg_t *cfg = resv_cfg_load (NULL);
    assert_null (store_new (cfg, "x", NULL));
    events_config_t config = { .store = "x" };
    assert_null (events_new (cfg, &config));
    resv_cfg_destroy (&cfg);
    setenv ("RESV_DATA_DIR", testkit_dir (kit), 1);
}

//  A file that cannot be opened says why in the system's words too.
static void
test_open_error_says_why (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    char *path = zsys_sprintf ("%s/no-such-dir/x.db", testkit_dir (kit));
    sqlite3 *db = NULL;
    assert_int_not_equal (db_open (path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
                                   &db), SQLITE_OK);
    char why [256];
    db_open_error (db, why, sizeof why);
    assert_non_null (strstr (why, "unable to open database file"));
    assert_non_null (strstr (why, strerror (ENOENT)));
    sqlite3_close (db);
    zstr_free (&path);
}

//  resvd starts every process at once, and each makes the data directory
//  if it is not there: none may fail because another made it first.
static void
test_data_dir_made_by_many_at_once (void **state)
{
    testkit_t *kit = (testkit_t *) *state;
    for (int round = 0; round < 20; round++) {
        char *dir = zsys_sprintf ("%s/race%d/a/b/c", testkit_dir (kit), round);
        pid_t children [8];
        for (int index = 0; index < 8; index++) {
            children [index] = fork ();
            assert_true (children [index] >= 0);
            if (children [index] == 0)
                _exit (db_dir_create (dir) == 0? 0: 1);
        }
        for (int index = 0; index < 8; index++) {
            int status = -1;
            assert_int_equal (waitpid (children [index], &status, 0), children [index]);
            assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
        }
        zstr_free (&dir);
    }
    //  A file where the directory should be is a failure.
    char *file = zsys_sprintf ("%s/race0/file", testkit_dir (kit));
    FILE *handle = fopen (file, "w");
    assert_non_null (handle);
    fclose (handle);
    assert_int_equal (db_dir_create (file), -1);
    zstr_free (&file);
}

int
main (void)
{
    testkit_init ();
    //  Every test's fixture is a kit (testkit.h): a broker and its journal.
    #define T(name) cmocka_unit_test_prestate_setup_teardown (name, \
        testkit_setup, testkit_teardown, "events")
    const struct CMUnitTest tests [] = {
        T (test_outbox_relayed_and_pruned),
        T (test_outbox_ack_prunes_with_the_next_write),
        T (test_emit_quotes_the_envelope),
        T (test_object_text),
        T (test_rolled_back_change_emits_nothing),
        T (test_outbox_left_by_a_crash_is_sent_at_start),
        cmocka_unit_test_prestate_setup_teardown (test_stop_during_a_backlog,
            s_small_messages_setup, s_small_messages_teardown, "events"),
        T (test_consumer_catches_up_then_follows),
        T (test_stop_during_catch_up),
        T (test_two_processes_apply_each_event_once),
        T (test_consumer_passes_over_other_types),
        T (test_failed_apply_is_retried_not_skipped),
        T (test_store_batch),
        T (test_event_ids_sort_by_time),
        T (test_store_refuses_writes_once_deleted),
        T (test_store_refuses_writes_once_moved),
        T (test_data_dir_made_by_many_at_once),
        T (test_open_error_says_why),
        T (test_missed_last_event_found_when_quiet),
        T (test_family_consumer_finds_a_gap_by_prev),
        T (test_malformed_fan_out_is_dropped),
        T (test_consumer_by_type_finds_a_gap_by_type_prev),
        T (test_consumer_gets_the_fields_it_names),
        T (test_field_sparse_values),
        T (test_store_open_failures),
        cmocka_unit_test_prestate_setup_teardown (
            test_relay_batches_fit_the_broker_limit, s_small_messages_setup,
            s_small_messages_teardown, "events"),
        cmocka_unit_test_prestate_setup_teardown (
            test_event_too_large_for_a_publish_is_refused,
            s_small_messages_setup, s_small_messages_teardown, "events"),
    };
    return cmocka_run_group_tests_name ("events", tests, NULL, NULL);
}
