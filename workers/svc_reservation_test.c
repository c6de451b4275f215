/*  svc_reservation_test.c: the reservation service (svc_reservation.c),
    against a real broker (in-process actor) and real SQLite files in a
    temporary directory.

    The saga runs for real: availability, payment, reservation and approval
    each run as a worker in a thread of this process, with the services'
    own handlers and states (svc.h), as resv-worker runs them. Failures
    come from configuration (payment/max_amount, payment/failure_rate,
    payment/latency), from stopping a service, from a stub availability
    whose replies are wrong on purpose, and from a table dropped under the
    service's feet. Validation goes straight to the handler.
*/

#include "testkit.h"
#include "resv_util.h"

//  The stub availability's counters, shared with its worker thread.
typedef struct {
    int holds;                  //  hold requests seen
    int releases;               //  release requests seen
    int hang;                   //  While set, a release is not answered
    int hang_hold;              //  While set, a hold is not answered
} stub_t;

typedef struct {
    testkit_t *kit;             //  Broker, journal, the saga's workers
    stub_t stub;                //  With the stub availability
    store_t *store;             //  The test's look into reservation.db
    char *manual;               //  A manual resource: price 2500, capacity 3
    char *automatic;            //  An auto resource: price 1000, capacity 5
    char *single;               //  A manual resource of capacity 1
} fixture_t;


//  --------------------------------------------------------------------------
//  A stub availability

//  An availability that answers hold wrongly on purpose: for resource
//  "res-huge" a price so high that the amount overflows, for any other a
//  resource without price. It counts holds and releases, and answers no
//  release while hang is set (10 s at most).
static int
s_stub_availability (void *state, const char *method, zframe_t **body_p,
                     int64_t deadline, zframe_t **reply_p)
{
    (void) deadline;
    stub_t *stub = (stub_t *) state;
    json_t *request = worker_parse (*body_p, reply_p);
    if (!request)
        return RESV_BAD_REQUEST;
    const char *resource = json_string_value (json_object_get (request, "resource"));
    int status = RESV_OK;
    if (streq (method, "hold")) {
        __atomic_add_fetch (&stub->holds, 1, __ATOMIC_SEQ_CST);
        (void) TESTKIT_WAIT (10000, !__atomic_load_n (&stub->hang_hold,
                                                      __ATOMIC_SEQ_CST));
        if (resource && streq (resource, "res-huge"))
            *reply_p = worker_json (json_pack ("{s:{s:s,s:I,s:s,s:s},s:s}",
                "resource", "id", resource, "price", (json_int_t) (INT64_MAX / 2),
                "owner", "olga", "approval", "auto", "slot", "all-day"));
        else
            *reply_p = worker_json (json_pack ("{s:{s:s},s:s}", "resource",
                                               "id", "res-broken", "slot", "x"));
    }
    else
    if (streq (method, "release")) {
        __atomic_add_fetch (&stub->releases, 1, __ATOMIC_SEQ_CST);
        (void) TESTKIT_WAIT (10000,
                             !__atomic_load_n (&stub->hang, __ATOMIC_SEQ_CST));
        *reply_p = worker_json (json_pack ("{s:i}", "released", 1));
    }
    else {
        status = RESV_BAD_REQUEST;
        *reply_p = worker_error (status, RESV_REASON_UNKNOWN_METHOD, "stub");
    }
    json_decref (request);
    return status;
}

static int
s_stub_count (int *counter)
{
    return __atomic_load_n (counter, __ATOMIC_SEQ_CST);
}


//  --------------------------------------------------------------------------
//  Fixture

//  Starts a broker and the four services; env is NULL or a NULL-ended
//  list of name, value pairs set first. A stub availability replaces the
//  real one when stub is true.
static fixture_t *
s_fixture_new (const char **env, bool stub)
{
    fixture_t *self = (fixture_t *) zmalloc (sizeof (fixture_t));
    const svc_t availability = { .name = "availability",
                                 .handler = s_stub_availability };
    self->kit = testkit_saga_new ("reservation", env,
                                  stub? &availability: NULL, &self->stub);
    self->store = store_new (testkit_cfg (self->kit), "reservation", NULL);
    assert_non_null (self->store);
    if (!stub) {
        self->manual = testkit_resource (self->kit, 3, 2500, "manual");
        self->automatic = testkit_resource (self->kit, 5, 1000, "auto");
        self->single = testkit_resource (self->kit, 1, 100, "manual");
    }
    return self;
}

static int
s_setup_with (void **state, const char **env, bool stub)
{
    *state = s_fixture_new (env, stub);
    return 0;
}

static int
s_setup (void **state)
{
    return s_setup_with (state, NULL, false);
}

static int
s_teardown (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    store_destroy (&self->store);
    testkit_destroy (&self->kit);
    zstr_free (&self->manual);
    zstr_free (&self->automatic);
    zstr_free (&self->single);
    free (self);
    return 0;
}


//  --------------------------------------------------------------------------
//  Helpers

//  Calls reservation/method with request (taken) through the broker.
static int
s_call (fixture_t *self, const char *method, json_t *request, int timeout,
        json_t **reply_p)
{
    return testkit_call (self->kit, "reservation", method, request, timeout,
                         reply_p);
}

//  Publishes one event into the journal, as another service would; returns
//  its seq.
static int64_t
s_publish (fixture_t *self, const char *event_id, const char *type,
           const char *id, json_t *data)
{
    return testkit_publish (self->kit, testkit_event (self->kit, event_id,
                                                      type, id, data));
}

//  Waits until the consumer's cursor of type (it takes its types one by
//  one) in reservation.db reaches seq.
static bool
s_wait_cursor (fixture_t *self, const char *type, int64_t seq)
{
    char name [64];
    snprintf (name, sizeof name, "reservation/%s", type);
    return testkit_wait_cursor (self->kit, self->store, name, seq);
}

//  A count from the test's look into reservation.db.
static int64_t
s_rows (fixture_t *self, const char *sql)
{
    return testkit_sql_int (self->store, sql);
}

//  Sends carla's reserve of the stub's res-odd (its hold comes back
//  unusable, so it is undone) with request_id and timeout, without waiting
//  for the answer; returns the client that will get it.
static resv_t *
s_send_odd_reserve (fixture_t *self, const char *request_id, int timeout)
{
    resv_t *client = testkit_client (self->kit);
    char *body = zsys_sprintf ("{\"customer\":\"carla\",\"resource\":"
                               "\"res-odd\",\"date\":\"2027-03-01\","
                               "\"days\":1,\"units\":1,\"request_id\":"
                               "\"%s\"}", request_id);
    assert_non_null (body);
    assert_true (resv_send (client, "reservation", "reserve", body,
                            strlen (body), timeout) >= 0);
    zstr_free (&body);
    return client;
}

static bool
s_wait_no_saga (fixture_t *self)
{
    return TESTKIT_WAIT (10000,
                         s_rows (self, "SELECT count (*) FROM sagas") == 0);
}

//  Whether two reservations are equal but for their payment's status,
//  which the service moves on as the payment's events come (a cancel
//  voids or refunds, a confirmation captures).
static bool
s_same_but_payment (json_t *one, json_t *other)
{
    json_t *first = json_deep_copy (one), *second = json_deep_copy (other);
    json_object_del (json_object_get (first, "payment"), "status");
    json_object_del (json_object_get (second, "payment"), "status");
    bool same = json_equal (first, second);
    json_decref (first);
    json_decref (second);
    return same;
}

static bool
s_is_time (const char *text)
{
    int64_t day;
    char date [11];
    if (!text || strlen (text) != 24 || text [10] != 'T' || text [19] != '.'
    ||  text [23] != 'Z')
        return false;
    memcpy (date, text, 10);
    date [10] = 0;
    return resv_date_parse (date, &day);
}


//  --------------------------------------------------------------------------
//  reserve: success

static void
test_reserve_creates (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 2, 2,
                                       "k-1", &reply), 201);
    const char *id = json_string_value (json_object_get (reply, "id"));
    assert_non_null (id);
    assert_int_equal (strlen (id), 33);
    assert_int_equal (id [0], 'r');
    assert_int_equal (strspn (id + 1, "0123456789abcdef"), 32);
    #define S_STR(key) json_string_value (json_object_get (reply, key))
    #define S_INT(key) json_integer_value (json_object_get (reply, key))
    assert_string_equal (S_STR ("request_id"), "k-1");
    assert_string_equal (S_STR ("customer"), "carla");
    assert_string_equal (S_STR ("resource"), self->manual);
    assert_string_equal (S_STR ("date"), "2027-03-01");
    assert_int_equal (S_INT ("days"), 2);
    assert_string_equal (S_STR ("slot"), "all-day");
    assert_int_equal (S_INT ("units"), 2);
    assert_int_equal (S_INT ("amount"), 2500 * 2 * 2);
    assert_string_equal (S_STR ("status"), "PENDING");
    assert_true (json_is_null (json_object_get (reply, "reason")));
    json_t *payment = json_object_get (reply, "payment");
    assert_non_null (json_string_value (json_object_get (payment, "id")));
    assert_string_equal (json_string_value (json_object_get (payment, "status")),
                         "authorized");
    assert_true (s_is_time (S_STR ("created_at")));
    assert_string_equal (S_STR ("created_at"), S_STR ("updated_at"));
    assert_int_equal (json_object_size (reply), 14);
    #undef S_STR
    #undef S_INT

    //  get answers the same object.
    json_t *got = NULL;
    assert_int_equal (testkit_act (self->kit, "get", id, NULL, &got), 200);
    assert_true (json_equal (got, reply));
    json_decref (got);

    //  Two days held, the third free.
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 1);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-02"), 1);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-03"), 3);

    //  One reservation.requested, with the object, owner and mode.
    assert_true (testkit_wait_count (self->kit, "reservation.requested", id,
                                     1));
    json_t *event = testkit_event_of (self->kit, "reservation.requested", id);
    json_t *data = json_object_get (event, "data");
    assert_string_equal (json_string_value (json_object_get (data, "owner")), "olga");
    assert_string_equal (json_string_value (json_object_get (data, "approval")), "manual");
    assert_true (json_equal (json_object_get (data, "reservation"), reply));
    assert_string_equal (json_string_value (json_object_get (event, "correlation_id")), id);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
    json_decref (event);
    json_decref (reply);
}

static void
test_reserve_retry_is_idempotent (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *first = NULL, *again = NULL;
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 2,
                                       "k-2", &first), 201);
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 2,
                                       "k-2", &again), 201);
    assert_true (json_equal (first, again));
    const char *id = json_string_value (json_object_get (first, "id"));
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 1);

    //  Concurrent copies from three clients: one reservation, one hold.
    resv_t *clients [3];
    char body [256];
    snprintf (body, sizeof body, "{\"customer\":\"dan\",\"resource\":\"%s\","
              "\"date\":\"2027-03-01\",\"request_id\":\"k-3\"}", self->manual);
    for (int i = 0; i < 3; i++) {
        clients [i] = testkit_client_new (self->kit);
        assert_true (resv_send (clients [i], "reservation", "reserve", body,
                                strlen (body), 5000) > 0);
    }
    char *ids [3];
    for (int i = 0; i < 3; i++) {
        resv_reply_t reply;
        assert_int_equal (resv_recv (clients [i], -1, &reply), 0);
        assert_int_equal (reply.status, 201);
        json_t *object = json_loads (reply.body, 0, NULL);
        ids [i] = strdup (json_string_value (json_object_get (object, "id")));
        json_decref (object);
        free (reply.body);
        resv_destroy (&clients [i]);
    }
    assert_string_equal (ids [0], ids [1]);
    assert_string_equal (ids [0], ids [2]);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 0);
    assert_true (testkit_wait_count (self->kit, "reservation.requested",
                                     ids [0], 1));
    assert_true (testkit_wait_count (self->kit, "reservation.requested", id,
                                     1));
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "reservation.requested",
                                     ids [0]), 1);
    assert_int_equal (testkit_count (self->kit, "payment.authorized", ids [0]),
                      1);
    assert_int_equal (testkit_count (self->kit, "reservation.requested", id),
                      1);
    assert_int_equal (testkit_count (self->kit, "payment.authorized", id), 1);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 2);
    for (int i = 0; i < 3; i++)
        free (ids [i]);
    json_decref (first);
    json_decref (again);
}

//  A retry of a reserve whose first try was undone, after the owner
//  changed the price: priced anew, it is made. The payment the undo voided
//  was refused for the new amount (409), and so was every retry after.
static void
test_reserve_retry_after_a_price_change (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    sqlite3 *db = store_db (self->store);
    assert_int_equal (sqlite3_exec (db,
        "CREATE TRIGGER price_fail BEFORE INSERT ON reservations BEGIN"
        "    SELECT RAISE (ABORT, 'test: store refused'); END;",
        NULL, NULL, NULL), SQLITE_OK);
    json_t *reply = NULL;
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 1,
                                       "k-price", &reply), 500);
    json_decref (reply);
    assert_true (s_wait_no_saga (self));
    assert_int_equal (sqlite3_exec (db, "DROP TRIGGER price_fail", NULL, NULL,
                                    NULL), SQLITE_OK);
    assert_int_equal (testkit_call (self->kit, "availability",
        "resource.update", json_pack ("{s:s,s:s,s:i}", "id", self->manual,
                                      "owner", "olga", "price", 2600),
        5000, &reply), 200);
    json_decref (reply);
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 1,
                                       "k-price", &reply), 201);
    assert_int_equal (json_integer_value (json_object_get (reply, "amount")),
                      2600);
    assert_string_equal (json_string_value (json_object_get (
                         json_object_get (reply, "payment"), "status")),
                         "authorized");
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 2);
}

//  Reservation ids sort by when they were made; a retry, even after the
//  store lost its record of request ids (a store made before it kept
//  them: the record is rebuilt when the service opens it), gets its first
//  attempt's id and no second reservation.
static void
test_reservation_ids_sort_and_last (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *first = NULL, *second = NULL, *again = NULL;
    assert_int_equal (testkit_reserve (self->kit, "ida", self->automatic, 1, 1,
                                       "k-s1", &first), 201);
    zclock_sleep (5);
    assert_int_equal (testkit_reserve (self->kit, "ida", self->automatic, 1, 1,
                                       "k-s2", &second), 201);
    const char *one = json_string_value (json_object_get (first, "id"));
    const char *two = json_string_value (json_object_get (second, "id"));
    assert_int_equal (strlen (one), 33);
    assert_int_equal (one [0], 'r');
    assert_int_equal (strspn (one + 1, "0123456789abcdef"), 32);
    assert_true (strcmp (one, two) < 0);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM requests"), 2);

    assert_int_equal (testkit_sql_int (self->store,
                      "DELETE FROM requests RETURNING 0"), 0);
    void *reopened = svc_reservation_new (testkit_cfg (self->kit), NULL);
    assert_non_null (reopened);
    svc_reservation_destroy (&reopened);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM requests"), 2);
    zclock_sleep (5);
    assert_int_equal (testkit_reserve (self->kit, "ida", self->automatic, 1, 1,
                                       "k-s1", &again), 201);
    //  The same reservation (auto approval may have confirmed it since).
    assert_string_equal (json_string_value (json_object_get (again, "id")), one);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 2);
    json_decref (first);
    json_decref (second);
    json_decref (again);
}

static void
test_reserve_without_request_id (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *one = NULL, *two = NULL;
    assert_int_equal (testkit_reserve (self->kit, "carla", self->automatic, 1,
                                       1, NULL, &one), 201);
    assert_int_equal (testkit_reserve (self->kit, "carla", self->automatic, 1,
                                       1, NULL, &two), 201);
    assert_string_not_equal (json_string_value (json_object_get (one, "id")),
                             json_string_value (json_object_get (two, "id")));
    const char *request_id = json_string_value (json_object_get (one, "request_id"));
    assert_int_equal (strlen (request_id), 32);
    assert_int_equal (testkit_free (self->kit, self->automatic, "2027-03-01"),
                      3);
    json_decref (one);
    json_decref (two);
}

static void
test_reserve_accepts_token_marks (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    assert_int_equal (testkit_reserve (self->kit, "o.brien+test@example.com",
                                       self->manual, 1, 1, "Key:1_2-3", &reply),
                      201);
    assert_string_equal (json_string_value (json_object_get (reply, "customer")),
                         "o.brien+test@example.com");
    json_decref (reply);
}

static void
test_auto_approval_confirms (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->automatic, "k-auto");
    assert_true (testkit_wait_status (self->kit, id, "CONFIRMED"));
    assert_true (testkit_wait_count (self->kit, "reservation.confirmed", id,
                                     1));
    json_t *approved = testkit_event_of (self->kit, "approval.approved", id);
    assert_non_null (approved);
    assert_true (json_is_true (json_object_get (json_object_get (approved, "data"),
                                                "auto")));
    json_t *confirmed = testkit_event_of (self->kit, "reservation.confirmed",
                                          id);
    json_t *data = json_object_get (confirmed, "data");
    assert_string_equal (json_string_value (json_object_get (data, "previous")),
                         "PENDING");
    assert_string_equal (json_string_value (json_object_get (json_object_get (
        data, "reservation"), "status")), "CONFIRMED");
    //  Its id is derived from the decision's: a second application could
    //  not journal a second confirmation.
    const char *event_id = json_string_value (json_object_get (confirmed, "id"));
    const char *cause = json_string_value (json_object_get (approved, "id"));
    char caused [STORE_CAUSED_ID_SIZE];
    assert_string_equal (event_id, store_caused_id (cause, "reservation.confirmed",
                                                    caused));
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "reservation.confirmed", id),
                      1);
    json_decref (approved);
    json_decref (confirmed);
    free (id);
}


//  --------------------------------------------------------------------------
//  The status machine: success

static void
test_cancel_pending_and_confirmed (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *pending = testkit_reserved (self->kit, self->manual, "k-c1");
    zclock_sleep (5);           //  So that updated_at differs
    json_t *reply = NULL;
    assert_int_equal (testkit_act (self->kit, "cancel", pending, "carla",
                                   &reply), 200);
    assert_string_equal (json_string_value (json_object_get (reply, "status")),
                         "CANCELLED");
    assert_string_not_equal (json_string_value (json_object_get (reply, "updated_at")),
                             json_string_value (json_object_get (reply, "created_at")));
    //  The answer is the reservation as get shows it, and as the event has
    //  it; again, the same answer and no second event (its payment may be
    //  voided by then).
    json_t *got = NULL, *again = NULL;
    assert_int_equal (testkit_act (self->kit, "get", pending, NULL, &got), 200);
    assert_true (s_same_but_payment (got, reply));
    assert_int_equal (json_object_size (got), 14);
    assert_int_equal (testkit_act (self->kit, "cancel", pending, "carla",
                                   &again), 200);
    assert_true (s_same_but_payment (again, reply));
    json_decref (got);
    json_decref (again);
    assert_true (testkit_wait_count (self->kit, "reservation.cancelled",
                                     pending, 1));
    json_t *event = testkit_event_of (self->kit, "reservation.cancelled",
                                      pending);
    json_t *data = json_object_get (event, "data");
    assert_string_equal (json_string_value (json_object_get (data, "previous")),
                         "PENDING");
    assert_true (json_equal (json_object_get (data, "reservation"), reply));
    assert_int_equal (json_object_size (data), 2);
    json_decref (reply);
    json_decref (event);
    //  availability consumes the cancellation: the unit comes back.
    assert_true (testkit_wait_free (self->kit, self->manual, 3));

    char *confirmed = testkit_reserved (self->kit, self->automatic, "k-c2");
    assert_true (testkit_wait_status (self->kit, confirmed, "CONFIRMED"));
    assert_int_equal (testkit_act (self->kit, "cancel", confirmed, "carla",
                                   &reply), 200);
    assert_string_equal (json_string_value (json_object_get (reply, "status")),
                         "CANCELLED");
    json_decref (reply);
    assert_true (testkit_wait_count (self->kit, "reservation.cancelled",
                                     confirmed, 1));
    event = testkit_event_of (self->kit, "reservation.cancelled", confirmed);
    assert_string_equal (json_string_value (json_object_get (json_object_get (
        event, "data"), "previous")), "CONFIRMED");
    json_decref (event);
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "reservation.cancelled",
                                     pending), 1);
    free (pending);
    free (confirmed);
}

static void
test_expire_pending (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-e1");
    json_t *reply = NULL;
    for (int round = 0; round < 2; round++) {
        assert_int_equal (testkit_act (self->kit, "expire", id, NULL, &reply),
                          200);
        assert_string_equal (json_string_value (json_object_get (reply, "status")),
                             "EXPIRED");
        assert_non_null (json_string_value (json_object_get (reply, "reason")));
        json_decref (reply);
    }
    assert_true (testkit_wait_count (self->kit, "reservation.expired", id, 1));
    zclock_sleep (300);
    assert_int_equal (testkit_count (self->kit, "reservation.expired", id), 1);
    free (id);
}

static void
test_declined_by_event (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-d1");
    int64_t seq = s_publish (self, "e-test-decline", "approval.declined", id,
        json_pack ("{s:s,s:s}", "owner", "olga", "reason", "closed for works"));
    assert_true (s_wait_cursor (self, "approval.declined", seq));
    json_t *reply = NULL;
    assert_int_equal (testkit_act (self->kit, "get", id, NULL, &reply), 200);
    assert_string_equal (json_string_value (json_object_get (reply, "status")),
                         "DECLINED");
    assert_string_equal (json_string_value (json_object_get (reply, "reason")),
                         "closed for works");
    assert_true (testkit_wait_count (self->kit, "reservation.declined", id, 1));
    json_t *event = testkit_event_of (self->kit, "reservation.declined", id);
    char caused [STORE_CAUSED_ID_SIZE];
    assert_string_equal (json_string_value (json_object_get (event, "id")),
                         store_caused_id ("e-test-decline", "reservation.declined",
                                          caused));
    json_t *data = json_object_get (event, "data");
    assert_string_equal (json_string_value (json_object_get (data, "reason")),
                         "closed for works");
    assert_string_equal (json_string_value (json_object_get (data, "previous")),
                         "PENDING");
    //  The event has the payment as it was then, authorised: get may show
    //  it voided already, since payment voids on the decline.
    json_object_set_new (json_object_get (reply, "payment"), "status",
                         json_string ("authorized"));
    assert_true (json_equal (json_object_get (data, "reservation"), reply));
    assert_int_equal (json_object_size (data), 3);
    json_decref (reply);
    json_decref (event);
    free (id);
}

//  The payment status of get, "" when it has none.
static char *
s_payment_status (fixture_t *self, const char *id)
{
    json_t *reply = NULL;
    if (testkit_act (self->kit, "get", id, NULL, &reply) != 200) {
        json_decref (reply);
        return strdup ("");
    }
    const char *status = json_string_value (json_object_get (
        json_object_get (reply, "payment"), "status"));
    char *copy = strdup (status? status: "");
    json_decref (reply);
    return copy;
}

static bool
s_payment_is (fixture_t *self, const char *id, const char *status)
{
    char *now = s_payment_status (self, id);
    bool is = streq (now, status);
    free (now);
    return is;
}

//  The service follows the payment's events: a reservation it answers
//  with says what became of its payment, and never goes back.
static void
test_payment_status_follows_events (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->automatic, "k-ps1");
    assert_true (testkit_wait_status (self->kit, id, "CONFIRMED"));
    assert_true (TESTKIT_WAIT (5000, s_payment_is (self, id, "captured")));
    //  A cancel answers, and emits, the captured payment (to be refunded).
    json_t *reply = NULL;
    assert_int_equal (testkit_act (self->kit, "cancel", id, "carla", &reply),
                      200);
    assert_string_equal (json_string_value (json_object_get (json_object_get (
        reply, "payment"), "status")), "captured");
    json_decref (reply);
    assert_true (testkit_wait_count (self->kit, "reservation.cancelled", id, 1));
    json_t *event = testkit_event_of (self->kit, "reservation.cancelled", id);
    assert_string_equal (json_string_value (json_object_get (json_object_get (
        json_object_get (json_object_get (event, "data"), "reservation"),
        "payment"), "status")), "captured");
    json_decref (event);
    assert_true (TESTKIT_WAIT (5000, s_payment_is (self, id, "refunded")));
    //  A capture that comes again (another event id, as a redelivery by
    //  another producer would) does not take it back.
    int64_t seq = s_publish (self, "e-test-ps-late", "payment.captured", id,
                             json_pack ("{s:{s:s,s:s}}", "payment", "id", "p",
                                        "status", "captured"));
    assert_true (s_wait_cursor (self, "payment.captured", seq));
    assert_true (s_payment_is (self, id, "refunded"));
    //  A payment of no stored reservation (a reserve undone) is passed over.
    seq = s_publish (self, "e-test-ps-none", "payment.voided", "r-none",
                     json_pack ("{s:{s:s,s:s}}", "payment", "id", "p",
                                "status", "voided"));
    assert_true (s_wait_cursor (self, "payment.voided", seq));
    //  A pending reservation declined: its payment is voided. A void that
    //  comes while it is still pending is a compensation's, of an earlier
    //  attempt whose retry authorised again: it changes nothing.
    char *declined = testkit_reserved (self->kit, self->manual, "k-ps2");
    seq = s_publish (self, "e-test-ps-early", "payment.voided", declined,
                     json_pack ("{s:{s:s,s:s}}", "payment", "id", "p",
                                "status", "voided"));
    assert_true (s_wait_cursor (self, "payment.voided", seq));
    assert_true (s_payment_is (self, declined, "authorized"));
    seq = s_publish (self, "e-test-ps-decline", "approval.declined", declined,
                     json_pack ("{s:s}", "reason", "full"));
    assert_true (s_wait_cursor (self, "approval.declined", seq));
    assert_true (TESTKIT_WAIT (5000, s_payment_is (self, declined, "voided")));
    free (id);
    free (declined);
}

static void
test_decision_after_cancel_is_ignored (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-i1");
    json_t *reply = NULL;
    assert_int_equal (testkit_act (self->kit, "cancel", id, "carla", &reply),
                      200);
    json_decref (reply);
    int64_t seq = s_publish (self, "e-test-late", "approval.approved", id,
                             json_pack ("{s:s,s:b}", "owner", "olga", "auto", 0));
    assert_true (s_wait_cursor (self, "approval.approved", seq));
    assert_string_equal (testkit_status (self->kit, id), "CANCELLED");
    assert_int_equal (testkit_count (self->kit, "reservation.confirmed", id),
                      0);
    free (id);
}


//  --------------------------------------------------------------------------
//  reserve: failures

static void
test_reserve_bad_input (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *big = (char *) malloc (200 * 1024 + 1);
    memset (big, 'a', 200 * 1024);
    big [200 * 1024] = 0;
    char *huge = zsys_sprintf ("{\"customer\":\"%s\",\"resource\":\"%s\","
                               "\"date\":\"2027-03-01\"}", big, self->manual);
    free (big);
    //  Each is refused with 400; the resource is a real one, so only the
    //  checks stand between each request and a reservation.
    const char *cases [] = {
        "{}",
        "not json",
        "[1,2,3]",
        "\"just a string\"",
        "{\"customer\":\"carla\",\"resource\":\"R\"}",
        "{\"customer\":\"carla\",\"date\":\"2027-03-01\"}",
        "{\"resource\":\"R\",\"date\":\"2027-03-01\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-02-29\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-13-01\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-04-31\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"27-03-01\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-3-1\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"1969-12-31\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":20270301}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"9999-12-31\",\"days\":2}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"units\":0}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"units\":-3}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"units\":\"2\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"units\":1.5}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"units\":1000001}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"units\":true}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"days\":0}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"days\":367}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"days\":\"two\"}",
        "{\"customer\":\"O'Brien\",\"resource\":\"R\",\"date\":\"2027-03-01\"}",
        "{\"customer\":\"x\\\"; DROP TABLE reservations; --\",\"resource\":\"R\",\"date\":\"2027-03-01\"}",
        "{\"customer\":\"carla\",\"resource\":\"R' OR '1'='1\",\"date\":\"2027-03-01\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"request_id\":\"a b\"}",
        "{\"customer\":\"carla\\u0007\",\"resource\":\"R\",\"date\":\"2027-03-01\"}",
        "{\"customer\":\"carla\\u0000x\",\"resource\":\"R\",\"date\":\"2027-03-01\"}",
        "{\"customer\":\"\",\"resource\":\"R\",\"date\":\"2027-03-01\"}",
        "{\"customer\":42,\"resource\":\"R\",\"date\":\"2027-03-01\"}",
        "{\"customer\":[\"carla\"],\"resource\":\"R\",\"date\":\"2027-03-01\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"slot\":\"\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"colour\":\"red\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\""
            "\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac"
            "\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac"
            "\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\":1}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"id\":\"r1\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\","
            "\"request_id\":\"12345678901234567890123456789012345678901234567890123456789012345\"}",
        "{\"customer\":\"carla\",\"resource\":\"R\",\"date\":\"2027-03-01\",\"units\":1,\"units\":2,\"x\":1}",
        huge,
        NULL
    };
    for (const char **body = cases; *body; body++) {
        //  R stands for the real resource.
        char *text = strdup (*body);
        char *at = strstr (text, "\"R");
        if (at && at [2] != '\'') {
            char *fixed = zsys_sprintf ("%.*s\"%s%s", (int) (at - text), text,
                                        self->manual, at + 2);
            free (text);
            text = fixed;
        }
        json_t *reply = NULL;
        int status = testkit_direct (self->kit, "reservation", "reserve", text,
                                     strlen (text), &reply);
        if (status != 400)
            fail_msg ("%.80s: %d, expected 400", text, status);
        testkit_assert_error (reply, 400, NULL);
        //  Refused by the checks, not by a downstream call (this state
        //  has no worker to make one).
        assert_null (strstr (testkit_message (reply), "worker_call"));
        json_decref (reply);
        free (text);
    }
    zstr_free (&huge);
    //  Through the broker too.
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "reserve", json_pack ("{s:s,s:s,s:s,s:i}",
        "customer", "carla", "resource", self->manual, "date", "2027-03-01",
        "units", 0), 5000, &reply), 400);
    testkit_assert_error (reply, 400, "bad_request");
    assert_non_null (strstr (testkit_message (reply), "units"));
    json_decref (reply);
    //  Nothing was held, stored or emitted.
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 3);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 0);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
    assert_int_equal (testkit_count (self->kit, "reservation.requested", NULL),
                      0);
}

static void
test_reserve_refused_by_availability (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    //  Unknown resource: availability's 404, as it said it.
    assert_int_equal (testkit_reserve (self->kit, "carla", "res-nothing", 1, 1,
                                       "k-n1", &reply), 404);
    testkit_assert_error (reply, 404, "not_found");
    json_decref (reply);
    //  Unknown slot: 400.
    json_t *request = json_pack ("{s:s,s:s,s:s,s:s}", "customer", "carla",
                                 "resource", self->manual, "date", "2027-03-01",
                                 "slot", "breakfast");
    assert_int_equal (s_call (self, "reserve", request, 5000, &reply), 400);
    testkit_assert_error (reply, 400, "bad_request");
    json_decref (reply);
    //  No capacity: 409 no_capacity, nothing held or stored.
    char *first = testkit_reserved (self->kit, self->single, "k-n2");
    assert_int_equal (testkit_reserve (self->kit, "dan", self->single, 1, 1,
                                       "k-n3", &reply), 409);
    testkit_assert_error (reply, 409, "no_capacity");
    json_decref (reply);
    assert_int_equal (testkit_reserve (self->kit, "dan", self->manual, 1, 4,
                                       "k-n4", &reply), 409);
    testkit_assert_error (reply, 409, "no_capacity");
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->single, "2027-03-01"), 0);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 3);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 1);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
    assert_int_equal (testkit_count (self->kit, "reservation.requested", NULL),
                      1);
    free (first);
}

static void
test_reserve_request_id_reused (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-r1");
    json_t *reply = NULL;
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 2,
                                       "k-r1", &reply), 409);
    testkit_assert_error (reply, 409, "conflict");
    json_decref (reply);
    //  Another customer's k-r1 is another reservation.
    assert_int_equal (testkit_reserve (self->kit, "dan", self->manual, 1, 1,
                                       "k-r1", &reply), 201);
    assert_string_not_equal (json_string_value (json_object_get (reply, "id")), id);
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 1);
    free (id);
}

static int
s_setup_cheap_payments (void **state)
{
    static const char *env [] = { "RESV_PAYMENT_MAX_AMOUNT", "5000", NULL };
    return s_setup_with (state, env, false);
}

static void
test_reserve_payment_declined (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    //  2500 x 3 units = 7500, above the 5000 allowed.
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 3,
                                       "k-p1", &reply), 402);
    testkit_assert_error (reply, 402, "payment_declined");
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 3);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 0);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
    //  2500 x 2 = 5000 is allowed.
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 2,
                                       "k-p2", &reply), 201);
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 1);
}

static int
s_setup_failing_payments (void **state)
{
    static const char *env [] = { "RESV_PAYMENT_FAILURE_RATE", "100", NULL };
    return s_setup_with (state, env, false);
}

static void
test_reserve_payment_unavailable (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 2, 1,
                                       "k-u1", &reply), 503);
    testkit_assert_error (reply, 503, NULL);
    assert_non_null (strstr (testkit_message (reply), "nothing was reserved"));
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 3);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-02"), 3);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 0);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
}

static int
s_setup_slow_payments (void **state)
{
    static const char *env [] = {
        "RESV_PAYMENT_LATENCY", "1500",
        "RESV_RESERVATION_SWEEP", "100", "RESV_RESERVATION_ABANDON", "2000",
        NULL
    };
    return s_setup_with (state, env, false);
}

static void
test_reserve_deadline_passes (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *request = json_pack ("{s:s,s:s,s:s,s:s}", "customer", "carla",
                                 "resource", self->manual, "date", "2027-03-01",
                                 "request_id", "k-t1");
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "reserve", request, 1000, &reply), 504);
    testkit_assert_error (reply, 504, "deadline_exceeded");
    json_decref (reply);
    //  The handler releases the hold at once. Its void waits behind the
    //  slow authorisation (which the simulator voids in turn, as slowly)
    //  and times out: the saga row stays, and the sweep finishes the undo.
    assert_true (testkit_wait_free (self->kit, self->manual, 3));
    assert_true (s_wait_no_saga (self));
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 0);
}

static int
s_setup_busy_payments (void **state)
{
    static const char *env [] = { "RESV_PAYMENT_LATENCY", "600", NULL };
    return s_setup_with (state, env, false);
}

//  An authorisation whose deadline passes in the broker's queue, its one
//  payment worker busy with another (a slow provider announces a credit
//  of 1), was never begun (504 not_started): the reserve releases its
//  hold and answers in time, with no void. It voided: the void queued
//  behind the same authorisations, the reserve answered past its
//  deadline, and under load those misses opened the reservation circuit.
static void
test_reserve_authorize_not_started_is_not_voided (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    int64_t served = testkit_served (self->kit, "payment");
    resv_t *client = testkit_client (self->kit);
    char body [256];
    snprintf (body, sizeof body, "{\"customer\":\"dan\",\"resource\":\"%s\","
              "\"date\":\"2027-03-01\",\"request_id\":\"k-busy\"}",
              self->automatic);
    assert_true (resv_send (client, "reservation", "reserve", body,
                            strlen (body), 5000) >= 0);
    //  Its hold is made and its authorisation at the provider.
    assert_true (TESTKIT_WAIT (5000, testkit_free (self->kit, self->automatic,
                                                   "2027-03-01") == 4));
    zclock_sleep (50);
    json_t *request = json_pack ("{s:s,s:s,s:s,s:s}", "customer", "carla",
                                 "resource", self->automatic, "date",
                                 "2027-03-01", "request_id", "k-late");
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "reserve", request, 300, &reply), 504);
    //  The reserve's own answer, not the broker's at its deadline.
    assert_non_null (strstr (testkit_message (reply), "payment authorize failed"));
    assert_non_null (strstr (testkit_message (reply), "not begun"));
    assert_non_null (strstr (testkit_message (reply), "nothing was reserved"));
    json_decref (reply);
    resv_reply_t first;
    assert_int_equal (resv_recv (client, 6000, &first), 0);
    assert_int_equal (first.status, 201);
    free (first.body);
    //  One authorisation served, and nothing else.
    zclock_sleep (700);
    assert_int_equal (testkit_served (self->kit, "payment"), served + 1);
    assert_int_equal (testkit_free (self->kit, self->automatic, "2027-03-01"), 4);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 1);
}

static void
test_reserve_availability_down (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    testkit_stop (self->kit, "availability");
    json_t *reply = NULL;
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 1,
                                       "k-a1", &reply), 503);
    testkit_assert_error (reply, 503, "no_worker");
    json_decref (reply);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 0);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
    //  Back: the same request now goes through.
    testkit_start (self->kit, "availability");
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 1,
                                       "k-a1", &reply), 201);
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 2);
}

//  The commit that opens the saga fails (a deferred constraint, checked at
//  COMMIT, as a full disk fails it): the hold it made never leaves, so
//  there is nothing to undo, and the client hears why.
static void
test_reserve_commit_fails (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    sqlite3 *db = store_db (self->store);
    assert_int_equal (sqlite3_exec (db,
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE child (parent INTEGER"
        "    REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);"
        "CREATE TRIGGER sagas_fail AFTER INSERT ON sagas"
        "    BEGIN INSERT INTO child VALUES (1); END;", NULL, NULL, NULL),
        SQLITE_OK);
    int64_t served = testkit_served (self->kit, "availability");
    json_t *reply = NULL;
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 1,
                                       "k-c1", &reply), 503);
    testkit_assert_error (reply, 503, "internal");
    assert_string_equal (testkit_message (reply),
        "reservation: availability hold not sent: the commit before it "
        "failed (FOREIGN KEY constraint failed); nothing was reserved");
    json_decref (reply);
    //  Availability heard nothing: no hold, and no release of one.
    assert_int_equal (testkit_served (self->kit, "availability"), served);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 0);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 3);
    //  Once commits work again, the same request goes through.
    assert_int_equal (sqlite3_exec (db, "DROP TRIGGER sagas_fail", NULL, NULL,
                                    NULL), SQLITE_OK);
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 1,
                                       "k-c1", &reply), 201);
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 2);
}

static int
s_setup_stub (void **state)
{
    return s_setup_with (state, NULL, true);
}

static void
test_reserve_bad_hold_replies (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    //  price x units x days overflows: 400, and the hold is released.
    assert_int_equal (testkit_reserve (self->kit, "carla", "res-huge", 1, 3,
                                       "k-h1", &reply), 400);
    testkit_assert_error (reply, 400, "bad_request");
    assert_non_null (strstr (testkit_message (reply), "amount"));
    json_decref (reply);
    assert_int_equal (s_stub_count (&self->stub.holds), 1);
    assert_int_equal (s_stub_count (&self->stub.releases), 1);
    //  A hold reply without a price: 500, released.
    assert_int_equal (testkit_reserve (self->kit, "carla", "res-odd", 1, 1,
                                       "k-h2", &reply), 500);
    testkit_assert_error (reply, 500, "internal");
    json_decref (reply);
    assert_int_equal (s_stub_count (&self->stub.releases), 2);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 0);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
    //  No payment was authorised for either.
    assert_int_equal (testkit_count (self->kit, "payment.authorized", NULL), 0);
}

static int
s_setup_sweep (void **state)
{
    static const char *env [] = {
        "RESV_RESERVATION_SWEEP", "100", "RESV_RESERVATION_ABANDON", "300",
        NULL
    };
    return s_setup_with (state, env, false);
}

static void
test_abandoned_reserve_is_swept (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    //  A reserve that died after its hold and its authorisation: both done
    //  by hand here, and its saga row as the worker wrote it.
    const char *id = "r0123456789abcdef0123456789abcdef";
    json_t *request = json_pack ("{s:s,s:s,s:s,s:i}", "reservation", id,
                                 "resource", self->manual, "date", "2027-03-01",
                                 "units", 2);
    json_t *reply = NULL;
    assert_int_equal (resv_call (testkit_client (self->kit), "availability",
                                 "hold", request, 5000, &reply), 200);
    json_decref (request);
    json_decref (reply);
    request = json_pack ("{s:s,s:s,s:i}", "reservation", id, "customer",
                         "carla", "amount", 5000);
    assert_int_equal (resv_call (testkit_client (self->kit), "payment",
                                 "authorize", request, 5000, &reply), 200);
    json_decref (request);
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->manual, "2027-03-01"), 1);
    char *sql = zsys_sprintf ("INSERT INTO sagas (id, started_ms) VALUES "
                              "('%s', %" PRId64 ")", id, resv_time_ms () - 1000);
    assert_int_equal (sqlite3_exec (store_db (self->store), sql, NULL, NULL,
                                    NULL), SQLITE_OK);
    zstr_free (&sql);
    //  A fresh saga row is left alone: its reserve may still be running.
    sql = zsys_sprintf ("INSERT INTO sagas (id, started_ms) VALUES "
                        "('r-young', %" PRId64 ")", resv_time_ms () + 60000);
    assert_int_equal (sqlite3_exec (store_db (self->store), sql, NULL, NULL,
                                    NULL), SQLITE_OK);
    zstr_free (&sql);
    assert_true (testkit_wait_free (self->kit, self->manual, 3));
    assert_true (testkit_wait_count (self->kit, "payment.voided", id, 1));
    for (int i = 0; i < 100 && s_rows (self, "SELECT count (*) FROM sagas") > 1; i++)
        zclock_sleep (20);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 1);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas "
                                    "WHERE id = 'r-young'"), 1);
}


static int
s_setup_eager_sweep (void **state)
{
    static const char *env [] = {
        "RESV_RESERVATION_SWEEP", "10", "RESV_RESERVATION_ABANDON", "0", NULL
    };
    return s_setup_with (state, env, false);
}

//  A sweep every 10 ms that takes every saga row for abandoned at once
//  (reservation/abandon 0): reserves under way are left alone, and so are
//  those that store their reservation between the sweep's read of their
//  saga row and its claim. The sweep looked for the stored reservation
//  before its claim's transaction, which then saw only that no attempt
//  was live (the store had deleted the attempts with the saga row): it
//  released the holds and voided the payments of one to three of these
//  reservations in each of four runs.
static void
test_sweep_leaves_a_reserve_stored_meanwhile (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *resource = testkit_resource (self->kit, 1000, 100, "manual");
    //  Many in flight, so that the sweep often reads a saga row while the
    //  group commit that stores its reservation holds the write lock.
    const int count = 600;
    resv_t *client = testkit_client (self->kit);
    int sent = 0, made = 0;
    while (made < count) {
        while (sent < count && sent - made < 32) {
            char *body = zsys_sprintf ("{\"customer\":\"c%d\",\"resource\":"
                                       "\"%s\",\"date\":\"2027-03-01\","
                                       "\"request_id\":\"q%d\"}",
                                       sent, resource, sent);
            assert_true (resv_send (client, "reservation", "reserve", body,
                                    strlen (body), 10000) > 0);
            zstr_free (&body);
            sent++;
        }
        resv_reply_t reply;
        assert_int_equal (resv_recv (client, 15000, &reply), 0);
        if (reply.status != 201)
            fail_msg ("a reserve: %d %.200s", reply.status, reply.body);
        free (reply.body);
        made++;
    }
    //  Sweeps enough to have looked at the last one's row.
    zclock_sleep (200);
    assert_int_equal (testkit_free (self->kit, resource, "2027-03-01"),
                      1000 - count);
    assert_int_equal (testkit_count (self->kit, "payment.voided", NULL), 0);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"
                                    " WHERE status = 'PENDING'"), count);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
    free (resource);
}

//  The items of a batch run in one transaction and cannot be taken aside:
//  a "batch.reserve" (any client may send one) sent each hold and
//  authorisation before its saga row was stored, so that a crash left
//  them for good. It is refused, item by item, and nothing is held.
static void
test_reserve_is_not_taken_in_a_batch (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *item = json_pack ("{s:s,s:s,s:s,s:s}", "customer", "carla",
                              "resource", self->automatic, "date", "2027-03-01",
                              "request_id", "b-1");
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "batch.reserve",
                              json_pack ("{s:[o]}", "batch", item), 5000,
                              &reply), 200);
    json_t *answer = json_array_get (json_object_get (reply, "batch"), 0);
    assert_int_equal (json_integer_value (json_object_get (answer, "status")),
                      400);
    testkit_assert_error (json_object_get (answer, "body"), 400, "bad_request");
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->automatic, "2027-03-01"), 5);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 0);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM reservations"), 0);
    assert_int_equal (testkit_served (self->kit, "payment"), 0);
    //  The same reserve alone is made.
    assert_int_equal (testkit_reserve (self->kit, "carla", self->automatic, 1,
                                       1, "b-1", &reply), 201);
    json_decref (reply);
    assert_int_equal (testkit_free (self->kit, self->automatic, "2027-03-01"), 4);
}

//  A quick sweep with the stub availability, and a stop that waits 500 ms
//  for the broker (worker_stop_wait of a stop_timeout of 2 s).
static int
s_setup_sweep_stopping (void **state)
{
    static const char *env [] = {
        "RESV_RESERVATION_SWEEP", "100", "RESV_RESERVATION_ABANDON", "300",
        "RESV_RESVD_STOP_TIMEOUT", "2000", NULL
    };
    return s_setup_with (state, env, true);
}

static int
s_teardown_sweep_stopping (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    __atomic_store_n (&self->stub.hang, 0, __ATOMIC_SEQ_CST);
    s_teardown (state);
    unsetenv ("RESV_RESVD_STOP_TIMEOUT");
    return 0;
}

//  A stop while the sweep's undo waits for an availability that does not
//  answer gives up on it once the stop's time for the broker is over
//  (500 ms here), and the undos not done leave their saga rows for the next
//  sweep. Each undo's release waited its whole deadline (S_UNDO_MIN, 1 s),
//  one abandoned reserve after the other, the stop with them: eight took
//  5 s. The undo given up on keeps its claim until it lapses: its release
//  still runs, and would take back the hold of a retry of the reserve let
//  in meanwhile. It was dropped with the stop.
static void
test_stop_gives_up_on_an_unanswered_undo (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    __atomic_store_n (&self->stub.hang, 1, __ATOMIC_SEQ_CST);
    for (int index = 0; index < 8; index++) {
        char *sql = zsys_sprintf ("INSERT INTO sagas (id, started_ms) VALUES "
                                  "('r-gone-%d', %" PRId64 ")", index,
                                  resv_time_ms () - 1000);
        assert_int_equal (sqlite3_exec (store_db (self->store), sql, NULL,
                                        NULL, NULL), SQLITE_OK);
        zstr_free (&sql);
    }
    //  The sweep undoes the first; its release is not answered.
    assert_true (TESTKIT_WAIT (5000, s_stub_count (&self->stub.releases) > 0));
    int64_t start = zclock_mono ();
    testkit_stop (self->kit, "reservation");
    int64_t took = zclock_mono () - start;
    if (took >= 3000)
        fail_msg ("the stop took %" PRId64 " ms", took);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 8);
    //  The one claim, of the undo under way; none of the others began.
    char *sql = zsys_sprintf ("SELECT count (*) FROM attempts WHERE attempt"
                              " = 0 AND until_ms > %" PRId64, resv_time_ms ());
    assert_int_equal (s_rows (self, sql), 1);
    zstr_free (&sql);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM attempts"), 1);
    //  The next start's sweep undoes them all.
    __atomic_store_n (&self->stub.hang, 0, __ATOMIC_SEQ_CST);
    testkit_start (self->kit, "reservation");
    assert_true (s_wait_no_saga (self));
}

//  Whether a write transaction on the store at path gets its lock within
//  wait_ms, through a connection of its own.
static bool
s_store_writable (const char *path, int wait_ms)
{
    sqlite3 *db = NULL;
    bool writable = sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE, NULL)
                    == SQLITE_OK
                 && sqlite3_busy_timeout (db, wait_ms) == SQLITE_OK
                 && sqlite3_exec (db, "BEGIN IMMEDIATE; COMMIT;", NULL, NULL,
                                  NULL) == SQLITE_OK;
    sqlite3_close (db);
    return writable;
}

//  The undo of a failed reserve holds neither its worker nor the store:
//  while the release of a hold that came back unusable goes unanswered,
//  the same worker answers a get and the store takes a write from
//  elsewhere; once the release is answered, the reserve is answered. The
//  undo's calls waited inside the transaction of the batch of completions
//  the failed step ran in: the worker held its requests back meanwhile,
//  and every other writer of the store (the events thread, the other
//  reservation processes) waited for the write lock.
static void
test_an_undo_holds_neither_worker_nor_store (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    __atomic_store_n (&self->stub.hang, 1, __ATOMIC_SEQ_CST);
    resv_t *client = s_send_odd_reserve (self, "k-undo", 8000);
    assert_true (TESTKIT_WAIT (5000, s_stub_count (&self->stub.releases) > 0));
    json_t *reply = NULL;
    assert_int_equal (s_call (self, "get", json_pack ("{s:s}", "id", "r-none"),
                              1000, &reply), 404);
    json_decref (reply);
    assert_true (s_store_writable (sqlite3_db_filename (store_db (self->store),
                                                        "main"), 500));
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 1);
    //  Not answered before its undo is over.
    resv_reply_t answer;
    assert_int_not_equal (resv_recv (client, 200, &answer), 0);
    __atomic_store_n (&self->stub.hang, 0, __ATOMIC_SEQ_CST);
    assert_int_equal (resv_recv (client, 9000, &answer), 0);
    assert_int_equal (answer.status, 500);
    assert_non_null (strstr (answer.body, "nothing was reserved"));
    free (answer.body);
    assert_true (s_wait_no_saga (self));
    assert_int_equal (s_stub_count (&self->stub.releases), 1);
}

//  An undo whose claim is lost with the batch it was made in makes no
//  call after that: a resumed attempt (it voids) fails its hold, and the
//  commit of the batch of completions that claimed its undo fails (a
//  deferred foreign key, broken on purpose by the claim's insert). The
//  void, held for that commit, never leaves; the release went out anyway,
//  with no claim to keep a retry's hold from it.
static void
test_an_undo_whose_claim_was_lost_stops (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    sqlite3 *db = store_db (self->store);
    json_t *reply = NULL;
    //  A first reserve gives the request its reservation id, and undoes.
    assert_int_equal (testkit_reserve (self->kit, "carla", "res-odd", 1, 1,
                                       "k-lost", &reply), 500);
    json_decref (reply);
    assert_int_equal (s_stub_count (&self->stub.releases), 1);
    assert_true (s_wait_no_saga (self));
    //  An earlier attempt left its saga row, so the next one resumes.
    assert_int_equal (sqlite3_exec (db,
        "INSERT INTO sagas (id, started_ms) SELECT id, 1 FROM requests"
        "    WHERE request_id = 'k-lost';"
        "CREATE TABLE parent (id INTEGER PRIMARY KEY);"
        "CREATE TABLE child (parent INTEGER"
        "    REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED);"
        "CREATE TRIGGER claim_lost AFTER INSERT ON attempts"
        "    WHEN NEW.attempt = 0 BEGIN INSERT INTO child VALUES (1); END;",
        NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal (testkit_reserve (self->kit, "carla", "res-odd", 1, 1,
                                       "k-lost", &reply), 500);
    assert_non_null (strstr (testkit_message (reply), "will be retried"));
    json_decref (reply);
    assert_int_equal (s_stub_count (&self->stub.releases), 1);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 1);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM attempts WHERE "
                                    "attempt = 0 OR until_ms > 0"), 0);
    //  Once claims can be stored again, a retry undoes it all at once.
    assert_int_equal (sqlite3_exec (db, "DROP TRIGGER claim_lost", NULL, NULL,
                                    NULL), SQLITE_OK);
    assert_int_equal (testkit_reserve (self->kit, "carla", "res-odd", 1, 1,
                                       "k-lost", &reply), 500);
    assert_non_null (strstr (testkit_message (reply), "nothing was reserved"));
    json_decref (reply);
    assert_int_equal (s_stub_count (&self->stub.releases), 2);
    assert_true (s_wait_no_saga (self));
}

static int
s_setup_stub_stopping (void **state)
{
    static const char *env [] = { "RESV_RESVD_STOP_TIMEOUT", "2000", NULL };
    return s_setup_with (state, env, true);
}

//  The same for a reserve's own undo that begins during a stop: the hold
//  comes back unusable after the stop began, and the release of the hold
//  is not answered. The stop gives up on the release (within 1 s here),
//  which may still be done, so the undo keeps its claim until it lapses:
//  a retry let in meanwhile by another reservation process would have its
//  new hold released by that call. The claim was dropped, as for an undo
//  whose calls were over.
static void
test_stop_keeps_the_claim_of_a_reserve_undo (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    testkit_stop (self->kit, "reservation");
    zactor_t *reservation = testkit_start (self->kit, "reservation");
    __atomic_store_n (&self->stub.hang_hold, 1, __ATOMIC_SEQ_CST);
    __atomic_store_n (&self->stub.hang, 1, __ATOMIC_SEQ_CST);
    resv_t *client = s_send_odd_reserve (self, "k-stop", 5000);
    assert_true (TESTKIT_WAIT (5000, s_stub_count (&self->stub.holds) > 0));
    zstr_send (reservation, "STOP");
    zclock_sleep (200);
    __atomic_store_n (&self->stub.hang_hold, 0, __ATOMIC_SEQ_CST);
    zsock_set_rcvtimeo (zactor_sock (reservation), 5000);
    char *stopped = zstr_recv (reservation);
    assert_non_null (stopped);
    assert_string_equal (stopped, "STOPPED");
    zstr_free (&stopped);
    assert_int_equal (s_stub_count (&self->stub.releases), 1);
    char *sql = zsys_sprintf ("SELECT count (*) FROM attempts WHERE until_ms"
                              " > %" PRId64, resv_time_ms ());
    assert_int_equal (s_rows (self, sql), 1);
    zstr_free (&sql);
    assert_int_equal (s_rows (self, "SELECT count (*) FROM sagas"), 1);
    resv_reply_t reply;
    assert_int_equal (resv_recv (client, 6000, &reply), 0);
    free (reply.body);
    __atomic_store_n (&self->stub.hang, 0, __ATOMIC_SEQ_CST);
}

//  --------------------------------------------------------------------------
//  The status machine: failures

static void
test_illegal_moves (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    //  DECLINED: no cancel, no expire.
    char *declined = testkit_reserved (self->kit, self->manual, "k-m1");
    int64_t seq = s_publish (self, "e-test-m1", "approval.declined", declined,
                             json_pack ("{s:s}", "owner", "olga"));
    assert_true (s_wait_cursor (self, "approval.declined", seq));
    assert_string_equal (testkit_status (self->kit, declined), "DECLINED");
    //  EXPIRED: no cancel.
    char *expired = testkit_reserved (self->kit, self->manual, "k-m2");
    assert_int_equal (testkit_act (self->kit, "expire", expired, NULL, &reply),
                      200);
    json_decref (reply);
    //  CANCELLED: no expire.
    char *cancelled = testkit_reserved (self->kit, self->manual, "k-m3");
    assert_int_equal (testkit_act (self->kit, "cancel", cancelled, "carla",
                                   &reply), 200);
    json_decref (reply);
    //  CONFIRMED: no expire.
    char *confirmed = testkit_reserved (self->kit, self->automatic, "k-m4");
    assert_true (testkit_wait_status (self->kit, confirmed, "CONFIRMED"));

    struct {
        const char *id, *method, *customer, *from, *to;
    } moves [] = {
        { declined,  "cancel", "carla", "DECLINED",  "CANCELLED" },
        { declined,  "expire", NULL,    "DECLINED",  "EXPIRED" },
        { expired,   "cancel", "carla", "EXPIRED",   "CANCELLED" },
        { cancelled, "expire", NULL,    "CANCELLED", "EXPIRED" },
        { confirmed, "expire", NULL,    "CONFIRMED", "EXPIRED" },
    };
    for (size_t i = 0; i < sizeof moves / sizeof *moves; i++) {
        assert_int_equal (testkit_act (self->kit, moves [i].method,
                                       moves [i].id, moves [i].customer,
                                       &reply), 409);
        testkit_assert_error (reply, 409, "conflict");
        assert_non_null (strstr (testkit_message (reply), moves [i].from));
        assert_non_null (strstr (testkit_message (reply), moves [i].to));
        json_decref (reply);
        assert_string_equal (testkit_status (self->kit, moves [i].id),
                             moves [i].from);
    }
    //  A late decision moves nothing either.
    seq = s_publish (self, "e-test-m5", "approval.approved", expired,
                     json_pack ("{s:s,s:b}", "owner", "olga", "auto", 0));
    seq = s_publish (self, "e-test-m6", "approval.declined", confirmed,
                     json_pack ("{s:s}", "owner", "olga"));
    assert_true (s_wait_cursor (self, "approval.declined", seq));
    assert_string_equal (testkit_status (self->kit, expired), "EXPIRED");
    assert_string_equal (testkit_status (self->kit, confirmed), "CONFIRMED");
    //  The store refuses an illegal move even from outside the code.
    char *sql = zsys_sprintf ("UPDATE reservations SET status = 'PENDING' "
                              "WHERE id = '%s'", expired);
    assert_int_equal (sqlite3_exec (store_db (self->store), sql, NULL, NULL,
                                    NULL), SQLITE_CONSTRAINT);
    zstr_free (&sql);
    assert_string_equal (testkit_status (self->kit, expired), "EXPIRED");
    free (declined);
    free (expired);
    free (cancelled);
    free (confirmed);
}

//  decide: the owner's decision moved at once (approval calls it right
//  after it recorded the decision). PENDING moves, a repeat succeeds with
//  no second event, and a reservation a cancel got first is refused, so
//  that the decision is told it lost. The event that comes later moves
//  nothing more.
static void
test_decide (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *approved = testkit_reserved (self->kit, self->manual, "k-d1");
    char *declined = testkit_reserved (self->kit, self->manual, "k-d2");
    char *cancelled = testkit_reserved (self->kit, self->manual, "k-d3");
    json_t *reply = NULL;
    assert_int_equal (testkit_act (self->kit, "cancel", cancelled, "carla",
                                   &reply), 200);
    json_decref (reply);
    struct {
        const char *id, *decision, *status;
        int code;
    } cases [] = {
        { approved,  "approved", "CONFIRMED", 200 },
        { approved,  "approved", "CONFIRMED", 200 },
        { approved,  "declined", "CONFIRMED", 409 },
        { declined,  "declined", "DECLINED",  200 },
        { declined,  "approved", "DECLINED",  409 },
        { cancelled, "approved", "CANCELLED", 409 },
        { cancelled, "declined", "CANCELLED", 409 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *request = json_pack ("{s:s,s:s}", "id", cases [i].id,
                                     "decision", cases [i].decision);
        int status = testkit_call (self->kit, "reservation", "decide", request,
                                   5000, &reply);
        if (status != cases [i].code)
            fail_msg ("case %zu: %d %s", i, status, testkit_message (reply));
        if (status == 200)
            assert_string_equal (json_string_value (json_object_get (reply,
                                 "status")), cases [i].status);
        else {
            testkit_assert_error (reply, 409, "conflict");
            assert_non_null (strstr (testkit_message (reply),
                                     cases [i].status));
        }
        json_decref (reply);
        assert_string_equal (testkit_status (self->kit, cases [i].id),
                             cases [i].status);
    }
    assert_int_equal (testkit_act (self->kit, "get", declined, NULL, &reply),
                      200);
    assert_string_equal (json_string_value (json_object_get (reply, "reason")),
                         "declined by the owner");
    json_decref (reply);
    //  The decision's event, when it comes, moves nothing more.
    int64_t seq = s_publish (self, "e-test-d1", "approval.approved", approved,
                             json_pack ("{s:s,s:b}", "owner", "olga", "auto", 0));
    assert_true (s_wait_cursor (self, "approval.approved", seq));
    assert_int_equal (testkit_count (self->kit, "reservation.confirmed",
                                     approved), 1);
    assert_int_equal (testkit_count (self->kit, "reservation.declined",
                                     declined), 1);
    assert_int_equal (testkit_count (self->kit, "reservation.confirmed",
                                     cancelled), 0);
    //  The race approval's call can lose: the consumer applies the
    //  journaled decision, and a cancel follows, before decide comes. The
    //  decision took effect, and is told so; the other one is not.
    char *raced = testkit_reserved (self->kit, self->manual, "k-d4");
    seq = s_publish (self, "e-test-d4", "approval.approved", raced,
                     json_pack ("{s:s,s:b}", "owner", "olga", "auto", 0));
    assert_true (s_wait_cursor (self, "approval.approved", seq));
    assert_string_equal (testkit_status (self->kit, raced), "CONFIRMED");
    assert_int_equal (testkit_act (self->kit, "cancel", raced, "carla",
                                   &reply), 200);
    json_decref (reply);
    const char *decisions [] = { "approved", "declined" };
    for (int i = 0; i < 2; i++) {
        json_t *request = json_pack ("{s:s,s:s}", "id", raced,
                                     "decision", decisions [i]);
        int status = testkit_call (self->kit, "reservation", "decide",
                                   request, 5000, &reply);
        assert_int_equal (status, i == 0? 200: 409);
        if (status == 200)
            assert_string_equal (json_string_value (json_object_get (reply,
                                 "status")), "CANCELLED");
        json_decref (reply);
    }
    assert_string_equal (testkit_status (self->kit, raced), "CANCELLED");
    assert_int_equal (testkit_count (self->kit, "reservation.confirmed",
                                     raced), 1);
    //  An auto reservation leaves no row there: it is never decided on.
    char *automatic = testkit_reserved (self->kit, self->automatic, "k-d5");
    assert_true (testkit_wait_status (self->kit, automatic, "CONFIRMED"));
    assert_int_equal (s_rows (self, "SELECT count (*) FROM decisions"), 3);
    free (approved);
    free (declined);
    free (cancelled);
    free (raced);
    free (automatic);
}

static void
test_cancel_by_another_customer (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-f1");
    json_t *reply = NULL;
    assert_int_equal (testkit_act (self->kit, "cancel", id, "mallory", &reply),
                      403);
    testkit_assert_error (reply, 403, "forbidden");
    json_decref (reply);
    assert_string_equal (testkit_status (self->kit, id), "PENDING");
    assert_int_equal (testkit_count (self->kit, "reservation.cancelled", id),
                      0);
    free (id);
}

static void
test_unknown_reservation (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    const char *methods [] = { "get", "cancel", "expire", NULL };
    for (const char **method = methods; *method; method++) {
        json_t *reply = NULL;
        assert_int_equal (testkit_act (self->kit, *method, "r-none",
                                streq (*method, "cancel")? "carla": NULL,
                                &reply), 404);
        testkit_assert_error (reply, 404, "not_found");
        assert_string_equal (testkit_message (reply), "no reservation 'r-none'");
        json_decref (reply);
    }
}

static void
test_bad_requests (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    json_t *reply = NULL;
    assert_int_equal (testkit_direct (self->kit, "reservation", "refund", "{}",
                                      2, &reply), 400);
    testkit_assert_error (reply, 400, "unknown_method");
    json_decref (reply);
    const struct {
        const char *method, *body, *reason;
    } cases [] = {
        { "cancel", "{\"id\":\"r1\"}", "bad_request" },
        { "cancel", "{\"customer\":\"carla\"}", "bad_request" },
        { "cancel", "{\"id\":\"r1\",\"customer\":\"carla\",\"reason\":\"x\"}", "bad_request" },
        { "cancel", "{\"id\":7,\"customer\":\"carla\"}", "bad_request" },
        { "expire", "{}", "bad_request" },
        { "expire", "{\"id\":\"r1'--\"}", "bad_request" },
        { "decide", "{\"id\":\"r1\"}", "bad_request" },
        { "decide", "{\"id\":\"r1\",\"decision\":\"maybe\"}", "bad_request" },
        { "decide", "{\"id\":\"r1\",\"decision\":\"approved\",\"x\":1}", "bad_request" },
        { "get", "{\"id\":null}", "bad_request" },
        { "get", "{\"id\":\"r1\"", "malformed" },
        { "get", "[]", "malformed" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int status = testkit_direct (self->kit, "reservation", cases [i].method,
                                     cases [i].body, strlen (cases [i].body),
                                     &reply);
        if (status != 400)
            fail_msg ("%s %s: %d", cases [i].method, cases [i].body, status);
        testkit_assert_error (reply, 400, cases [i].reason);
        json_decref (reply);
    }
    //  A body with a NUL byte inside.
    assert_int_equal (testkit_direct (self->kit, "reservation", "get",
                                      "{\"id\":\"r\0\"}", 10, &reply), 400);
    json_decref (reply);
}

static void
test_store_failure (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    char *id = testkit_reserved (self->kit, self->manual, "k-s1");
    assert_int_equal (sqlite3_exec (store_db (self->store),
        "DROP TABLE reservations", NULL, NULL, NULL), SQLITE_OK);
    json_t *reply = NULL;
    assert_int_equal (testkit_act (self->kit, "get", id, NULL, &reply), 500);
    testkit_assert_error (reply, 500, "internal");
    assert_non_null (strstr (testkit_message (reply), "load"));
    assert_non_null (strstr (testkit_message (reply), id));
    assert_non_null (strstr (testkit_message (reply), "no such table"));
    json_decref (reply);
    assert_int_equal (testkit_act (self->kit, "cancel", id, "carla", &reply),
                      500);
    testkit_assert_error (reply, 500, "internal");
    json_decref (reply);
    assert_int_equal (testkit_reserve (self->kit, "carla", self->manual, 1, 1,
                                       "k-s2", &reply), 500);
    testkit_assert_error (reply, 500, "internal");
    json_decref (reply);
    free (id);
}

//  Without a fixture: it sets the environment, which no thread may read
//  meanwhile.
static void
test_state_lifecycle (void **state)
{
    (void) state;
    //  A data directory that cannot exist: no state, and no crash.
    testkit_assert_no_state (svc_reservation_new, svc_reservation_destroy);
    //  A handler without state answers 500.
    assert_int_equal (testkit_handle (svc_reservation, NULL, "get", "{}", 2,
                                      1000, NULL), 500);
}

int
main (void)
{
    testkit_init ();
    #define S_TEST(name) cmocka_unit_test_setup_teardown (name, s_setup, s_teardown)
    #define S_TEST_WITH(name, setup) \
        cmocka_unit_test_setup_teardown (name, setup, s_teardown)
    const struct CMUnitTest tests [] = {
        S_TEST (test_reserve_creates),
        S_TEST (test_reserve_retry_is_idempotent),
        S_TEST (test_reserve_retry_after_a_price_change),
        S_TEST (test_reserve_without_request_id),
        S_TEST (test_reservation_ids_sort_and_last),
        S_TEST (test_reserve_accepts_token_marks),
        S_TEST (test_auto_approval_confirms),
        S_TEST (test_cancel_pending_and_confirmed),
        S_TEST (test_expire_pending),
        S_TEST (test_declined_by_event),
        S_TEST (test_decision_after_cancel_is_ignored),
        S_TEST (test_payment_status_follows_events),
        S_TEST_WITH (test_abandoned_reserve_is_swept, s_setup_sweep),
        S_TEST_WITH (test_sweep_leaves_a_reserve_stored_meanwhile,
                     s_setup_eager_sweep),
        S_TEST (test_reserve_is_not_taken_in_a_batch),
        cmocka_unit_test_setup_teardown (
            test_stop_gives_up_on_an_unanswered_undo, s_setup_sweep_stopping,
            s_teardown_sweep_stopping),
        cmocka_unit_test_setup_teardown (
            test_stop_keeps_the_claim_of_a_reserve_undo, s_setup_stub_stopping,
            s_teardown_sweep_stopping),
        S_TEST (test_reserve_bad_input),
        S_TEST (test_reserve_refused_by_availability),
        S_TEST (test_reserve_request_id_reused),
        S_TEST_WITH (test_reserve_payment_declined, s_setup_cheap_payments),
        S_TEST_WITH (test_reserve_payment_unavailable, s_setup_failing_payments),
        S_TEST_WITH (test_reserve_deadline_passes, s_setup_slow_payments),
        S_TEST_WITH (test_reserve_authorize_not_started_is_not_voided,
                     s_setup_busy_payments),
        S_TEST (test_reserve_availability_down),
        S_TEST (test_reserve_commit_fails),
        S_TEST_WITH (test_reserve_bad_hold_replies, s_setup_stub),
        S_TEST_WITH (test_an_undo_holds_neither_worker_nor_store,
                     s_setup_stub),
        S_TEST_WITH (test_an_undo_whose_claim_was_lost_stops, s_setup_stub),
        S_TEST (test_illegal_moves),
        S_TEST (test_decide),
        S_TEST (test_cancel_by_another_customer),
        S_TEST (test_unknown_reservation),
        S_TEST (test_bad_requests),
        S_TEST (test_store_failure),
        cmocka_unit_test (test_state_lifecycle),
    };
    return cmocka_run_group_tests_name ("svc_reservation", tests, NULL, NULL);
}
