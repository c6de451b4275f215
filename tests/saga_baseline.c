/*  saga_baseline.c: the baseline of `resv-bench reserve`: the reserve
    saga's SQLite transactions, run by the services' own code, with no
    messaging at all.

    One process holds an availability, a payment and a reservation state
    (svc.h), on SQLite files in a data directory of its own. The
    reservation state's downstream caller is replaced
    (svc_reservation_set_caller) by one that calls the availability and
    payment handlers directly, with the request encoded as worker_call
    would send it and the reply parsed as worker_call would; with
    events/relay = 0 the services' events actors neither relay nor
    consume. Each request is then exactly what a reserve does to the
    stores: the saga row, the hold, the authorisation, the reservation
    with its outbox event, followed by what the relays and the broker do
    with the outboxes: read them (store_outbox_peek), append them to a
    journal (journal_append_json, on DIR/journal.db) and mark them
    acknowledged (store_outbox_ack; deleted with the store's next write).
    Nothing is sent anywhere.

    The requests are resv-bench reserve's: RESOURCES resources with auto
    approval and a capacity that refuses nothing, then one reservation of
    one unit for one day per request, for customer bench-RUN-i, on
    resource i % RESOURCES, on day (i / RESOURCES) % DAYS from 2030-01-01.
    One at a time: the stores serialise their writers anyway. The summary
    and the --json line are resv-bench's (bench_report.c), latencies per
    reservation, its relay included.
*/

#include "svc.h"
#include "store.h"
#include "journal.h"
#include "resv_util.h"
#include "bench_report.h"
#include <inttypes.h>
#include <malloc.h>

#define BASE_REQUESTS_MAX   100000000
#define BASE_RESOURCES_MAX  10000
#define BASE_DAYS_MAX       3650
//  As in resv-bench reserve.
#define BASE_FIRST_DATE     "2030-01-01"
#define BASE_CAPACITY       1000000
#define BASE_PRICE          1000
//  Deadline handed to each handler, ms.
#define BASE_TIMEOUT        5000
//  Outbox rows one append carries, as the relay's RELAY_BATCH.
#define BASE_RELAY_BATCH    200

//  The stores whose outboxes a reserve fills, in the order they are
//  relayed.
static const char *s_stores [] = { "availability", "payment", "reservation" };
#define BASE_STORES (sizeof s_stores / sizeof *s_stores)

//  The services a reserve calls, by the name worker_call would use.
typedef struct {
    void *availability;         //  svc_availability state
    void *payment;              //  svc_payment state
} s_direct_t;

//  The reservation state's caller: the handler of service, on its state,
//  with the frames worker_call would carry. request is borrowed.
static int
s_direct_call (void *arg, const char *service, const char *method,
               json_t *request, int timeout_ms, json_t **reply_p)
{
    s_direct_t *self = (s_direct_t *) arg;
    worker_handler_fn *handler = NULL;
    void *state = NULL;
    if (streq (service, RESV_SERVICE_AVAILABILITY))
        handler = svc_availability, state = self->availability;
    else
    if (streq (service, RESV_SERVICE_PAYMENT))
        handler = svc_payment, state = self->payment;
    if (!handler) {
        *reply_p = resv_error_new (RESV_UNAVAILABLE, RESV_REASON_NO_WORKER,
                                   "baseline: no service %s", service);
        return RESV_UNAVAILABLE;
    }
    zframe_t *body = worker_json (json_incref (request));
    zframe_t *reply = NULL;
    int status = handler (state, method, &body, zclock_mono () + timeout_ms,
                          &reply);
    zframe_destroy (&body);
    *reply_p = worker_parse (reply, NULL);
    zframe_destroy (&reply);
    if (!*reply_p) {
        status = RESV_INTERNAL;
        *reply_p = resv_error_new (status, RESV_REASON_INTERNAL,
                                   "baseline: %s %s: reply is not a JSON "
                                   "object", service, method);
    }
    return status;
}

//  Calls handler with a body given as text; returns the status and the
//  reply object in *reply_p (caller owns; NULL if none or not an object).
static int
s_handle (worker_handler_fn *handler, void *state, const char *method,
          const char *text, json_t **reply_p)
{
    zframe_t *body = zframe_new (text, strlen (text));
    zframe_t *reply = NULL;
    int status = handler (state, method, &body, zclock_mono () + BASE_TIMEOUT,
                          &reply);
    zframe_destroy (&body);
    *reply_p = reply? worker_parse (reply, NULL): NULL;
    zframe_destroy (&reply);
    return status;
}

//  Moves every outbox to the journal, as the relays and the broker do:
//  read a batch, append it in one transaction, mark it acknowledged (the
//  store deletes it with its next write, as the relays' stores do).
//  Returns 0, or -1 after a message.
static int
s_relay (store_t **stores, journal_t *journal)
{
    for (size_t i = 0; i < BASE_STORES; i++) {
        int64_t last = 0;
        json_t *events;
        while ((events = store_outbox_peek (stores [i], BASE_RELAY_BATCH,
                                            &last))) {
            json_t *seqs = NULL, *fresh = NULL;
            char *error = NULL;
            int rc = journal_append_json (journal, events, &seqs, &fresh, &error);
            json_decref (events);
            json_decref (seqs);
            json_decref (fresh);
            if (rc) {
                fprintf (stderr, "saga-baseline: append %s's outbox: %s\n",
                         s_stores [i], error? error: "?");
                free (error);
                return -1;
            }
            store_outbox_ack (stores [i], last);
        }
    }
    return 0;
}

static void
s_usage (FILE *stream)
{
    fprintf (stream,
        "usage: saga-baseline [-c CONFIG] [-n REQUESTS] [--resources R]\n"
        "                     [--days-spread D] [--dir DIR] [--json]\n"
        "\n"
        "Runs the reserve saga's SQLite transactions (hold, authorize,\n"
        "the reservation and its event, the outboxes appended to a\n"
        "journal) with the services' own code and no messaging, one\n"
        "reservation at a time, and prints resv-bench's summary.\n"
        "\n"
        "  -c CONFIG        configuration (default config/resv.cfg if\n"
        "                   present); data/dir and events/relay are set here\n"
        "  -n REQUESTS      reservations (default 10000)\n"
        "  --resources R    resources made first (default 50)\n"
        "  --days-spread D  days the dates spread over (default 365)\n"
        "  --dir DIR        data directory (default: a new temporary one,\n"
        "                   removed at the end)\n"
        "  --json           one JSON line instead of the summary\n");
}

int
main (int argc, char *argv [])
{
    const char *config = NULL, *dir = NULL;
    int64_t requests = 10000, resources = 50, days = 365;
    bool json = false;
    for (int i = 1; i < argc; i++) {
        const char *name = argv [i];
        const char *value = i + 1 < argc? argv [i + 1]: NULL;
        int rc = 0;
        if (streq (name, "-h") || streq (name, "--help")) {
            s_usage (stdout);
            return 0;
        }
        else
        if (streq (name, "--json")) {
            json = true;
            continue;
        }
        else
        if (streq (name, "-c") && value)
            config = value;
        else
        if (streq (name, "--dir") && value)
            dir = value;
        else
        if (streq (name, "-n"))
            rc = resv_parse_int (value, 1, BASE_REQUESTS_MAX, &requests);
        else
        if (streq (name, "--resources"))
            rc = resv_parse_int (value, 1, BASE_RESOURCES_MAX, &resources);
        else
        if (streq (name, "--days-spread"))
            rc = resv_parse_int (value, 1, BASE_DAYS_MAX, &days);
        else
            rc = -1;
        if (rc || !value) {
            fprintf (stderr, "saga-baseline: bad option '%s'\n", name);
            s_usage (stderr);
            return 2;
        }
        i++;
    }
    //  As resv-worker and resv-broker do: keep freed memory in the heap,
    //  so that the comparison stays fair.
    mallopt (M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    zsys_init ();
    zsys_set_logstream (stderr);
    char scratch [] = "/tmp/saga-baseline.XXXXXX";
    bool temporary = !dir;
    if (temporary && !(dir = mkdtemp (scratch))) {
        fprintf (stderr, "saga-baseline: mkdtemp: %s\n", strerror (errno));
        return 1;
    }
    //  The environment wins over the file: this run's data directory, and
    //  events actors that stay out of the way (events.h).
    setenv ("RESV_DATA_DIR", dir, 1);
    setenv ("RESV_EVENTS_RELAY", "0", 1);
    resv_cfg_t *cfg = resv_cfg_load (config);
    if (!cfg)
        return 2;

    int rc = 1;
    s_direct_t direct = {
        svc_availability_new (cfg, NULL), svc_payment_new (cfg, NULL)
    };
    void *reservation = svc_reservation_new (cfg, NULL);
    store_t *stores [BASE_STORES] = { NULL };
    for (size_t i = 0; i < BASE_STORES; i++)
        stores [i] = store_new (cfg, s_stores [i], NULL);
    char *path = zsys_sprintf ("%s/journal.db", dir);
    journal_t *journal = path? journal_new (path): NULL;
    zstr_free (&path);
    bench_report_t *report = bench_report_new (requests);
    char (*ids) [RESV_ID_MAX + 1] = calloc ((size_t) resources,
                                            sizeof *ids);
    char run [17];
    if (!direct.availability || !direct.payment || !reservation || !journal
    ||  !stores [0] || !stores [1] || !stores [2] || !report || !ids
    ||  resv_random_hex (run, 8)) {
        fprintf (stderr, "saga-baseline: cannot start in %s\n", dir);
        goto done;
    }
    svc_reservation_set_caller (reservation, s_direct_call, &direct);

    //  The resources, as resv-bench makes them.
    for (int64_t i = 0; i < resources; i++) {
        char body [256];
        snprintf (body, sizeof body,
                  "{\"name\":\"bench resource %" PRId64 "\",\"owner\":"
                  "\"bench-%s\",\"kind\":\"bench\",\"capacity\":%d,"
                  "\"price\":%d,\"approval\":\"auto\"}", i, run,
                  BASE_CAPACITY, BASE_PRICE);
        json_t *reply;
        int status = s_handle (svc_availability, direct.availability,
                               RESV_METHOD_RESOURCE_ADD, body, &reply);
        const char *id = json_string_value (json_object_get (reply, "id"));
        if (status != RESV_CREATED || !id || strlen (id) > RESV_ID_MAX) {
            fprintf (stderr, "saga-baseline: resource.add: %d\n", status);
            json_decref (reply);
            goto done;
        }
        strcpy (ids [i], id);
        json_decref (reply);
    }
    if (s_relay (stores, journal))
        goto done;

    int64_t first_day;
    resv_date_parse (BASE_FIRST_DATE, &first_day);
    int64_t start = zclock_usecs ();
    for (int64_t i = 0; i < requests && !zsys_interrupted; i++) {
        char date [16], body [512];
        resv_date_format (first_day + (i / resources) % days, date);
        snprintf (body, sizeof body,
                  "{\"customer\":\"bench-%s-%" PRId64 "\",\"resource\":\"%s\","
                  "\"date\":\"%s\",\"days\":1,\"units\":1,"
                  "\"request_id\":\"bench-%s-%" PRId64 "\"}",
                  run, i, ids [i % resources], date, run, i);
        int64_t began = zclock_usecs ();
        json_t *reply;
        int status = s_handle (svc_reservation, reservation,
                               RESV_METHOD_RESERVE, body, &reply);
        json_decref (reply);
        if (s_relay (stores, journal))
            goto done;
        int64_t now = zclock_usecs ();
        bench_report_add (report, status, now - began);
        bench_report_set_elapsed (report, now - start);
    }
    char title [256], fields [512];
    snprintf (title, sizeof title, "saga-baseline reserve: %" PRId64
              " resources, %" PRId64 " days from %s, no messaging, one at a "
              "time", resources, days, BASE_FIRST_DATE);
    snprintf (fields, sizeof fields,
              "\"tool\":\"saga-baseline\",\"command\":\"reserve\","
              "\"resources\":%" PRId64 ",\"days_spread\":%" PRId64 ","
              "\"concurrency\":1,\"requests\":%" PRId64, resources, days,
              requests);
    bench_report_print (report, json, title, fields, NULL);
    rc = bench_report_ok (report) == bench_report_requests (report)? 0: 1;
done:
    free (ids);
    bench_report_destroy (&report);
    journal_destroy (&journal);
    for (size_t i = 0; i < BASE_STORES; i++)
        store_destroy (&stores [i]);
    svc_reservation_destroy (&reservation);
    svc_payment_destroy (&direct.payment);
    svc_availability_destroy (&direct.availability);
    resv_cfg_destroy (&cfg);
    if (temporary) {
        zdir_t *scratch_dir = zdir_new (dir, NULL);
        if (scratch_dir)
            zdir_remove (scratch_dir, true);
        zdir_destroy (&scratch_dir);
    }
    return rc;
}
