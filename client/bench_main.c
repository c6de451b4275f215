/*  bench_main.c: resv-bench, a load generator that drives resv through
    libresv's asynchronous form and prints a siege-like summary.

    A run keeps CONCURRENCY requests in flight (resv_send/resv_recv) until
    REQUESTS are done, timing each from its send to its reply with
    zclock_usecs(). With --rate it is open-loop instead: requests start on
    a schedule, RATE a second, CONCURRENCY being only a cap on those in
    flight, and each is timed from when it was due, so that a backlog
    shows in the latencies. With --duration it sends for that long rather
    than a number of requests. Every request has a deadline, and a request
    that libresv does not return within its deadline plus a second is
    given up here too, so a run always ends.

    Each command is one workload: a row in s_commands with a few callbacks
    that parse its options, prepare (before the clock starts), build the
    request of a given index, and name the run in the report; optional
    ones see each reply, send side traffic of their own on the same client
    (reserve polls the view for its event lag), and add to the report.

    -   ping sends the same body to one service/method (echo/echo by
        default: a round trip through the broker to a worker).
    -   reserve makes RESOURCES resources (auto approval, a capacity that
        refuses nothing), then reserves one unit for one day for a distinct
        customer per request, on resource i % RESOURCES, on a date spread
        over DAYS days. For every K-th reservation it then polls the view
        (view/status) until the reservation shows there: the event lag.

    The summary and the --json line are bench_report.c's, the format
    tests/raw_echo.c also prints, so tests/bench.sh can compare resv with
    its raw CZMQ baseline and with tests/saga_baseline.c.
*/

#include "resv.h"
#include "resv_cfg.h"
#include "resv_util.h"
#include "bench_body.h"
#include "bench_report.h"
#include "bench_inflight.h"
#include <czmq.h>
#include <inttypes.h>

//  Limits of the command line, chosen so that the latency table and the
//  in-flight table always fit in memory and every loop stays bounded.
#define BENCH_REQUESTS_MAX      100000000
#define BENCH_CONCURRENCY_MAX   10000
#define BENCH_SIZE_MAX          (1024 * 1024)
#define BENCH_TIMEOUT_MAX       3600000
#define BENCH_RATE_MAX          10000000
//  The smallest --rate: one request every 1000 s. Below it a request's due
//  time (sent * 1e6 / rate, in us) would overflow int64 within -n's limit.
#define BENCH_RATE_MIN          0.001
#define BENCH_DURATION_MAX      86400
//  A request libresv has not returned this long after its deadline is
//  given up as a 504 (libresv should have returned it at the deadline).
#define BENCH_EXPIRY_SLACK      1000
//  How often the runner looks for such requests, in milliseconds.
#define BENCH_EXPIRY_TICK       100

//  Exit codes: all requests succeeded, some failed, usage error, none
//  succeeded or the broker did not answer.
#define BENCH_EXIT_OK           0
#define BENCH_EXIT_FAILED       1
#define BENCH_EXIT_USAGE        2
#define BENCH_EXIT_UNAVAILABLE  3

//  Settings every command shares.
typedef struct {
    const char *endpoint;       //  Broker frontend
    int concurrency;            //  Requests kept in flight (with rate: at
                                //  most)
    int64_t requests;           //  Requests to complete
    int timeout;                //  Deadline of each request, ms
    double rate;                //  Requests started a second; 0: closed
                                //  loop, as many as concurrency allows
    int duration;               //  Seconds of sending, instead of requests
    bool json;                  //  One JSON line instead of the summary
} s_options_t;

//  One request, as a workload builds it. The strings belong to the
//  workload and must live until the next call; libresv copies the body.
typedef struct {
    const char *service;
    const char *method;
    const char *body;
    size_t size;
} s_request_t;

//  A workload: one command of resv-bench.
typedef struct {
    const char *name;           //  Command word
    const char *synopsis;       //  Its options, for the usage line
    const char *help;           //  One line per option
    //  Creates the workload's state with its defaults; NULL if no memory.
    void *(*new) (void);
    //  Frees the state and nulls the pointer.
    void (*destroy) (void **state_p);
    //  Takes option name, with value the next argument (NULL if none).
    //  Returns how many arguments it used (1 or 2), 0 if the option is not
    //  the workload's, -1 (after a message) if its value is invalid.
    int (*option) (void *state, const char *name, const char *value);
    //  Prepares the run, before the clock starts: checks the options and
    //  creates what the requests need. Returns 0, or -1 after a message.
    int (*start) (void *state, resv_t *client, const s_options_t *options);
    //  Builds request number index (0 .. REQUESTS-1).
    void (*next) (void *state, int64_t index, s_request_t *request);
    //  Names the run: a title line for the summary and leading fields for
    //  the JSON line (a fragment such as "service":"echo").
    void (*describe) (void *state, char *title, size_t title_size,
                      char *fields, size_t fields_size);
    //  The optional callbacks (NULL: none).
    //  A request of the workload completed at now (zclock_usecs());
    //  reply, body included, is borrowed.
    void (*done) (void *state, resv_t *client, int64_t index,
                  const resv_reply_t *reply, int64_t now);
    //  Side traffic: requests the workload sends itself on the client.
    //  side_reply is offered each reply that is none of the runner's and
    //  returns true if it was the workload's (reply is borrowed);
    //  side_tick sends what is due and returns when it wants to run again
    //  (zclock_usecs()), INT64_MAX when it only waits for replies, or 0
    //  when it has nothing pending: the run ends once the runner's own
    //  requests are done and this says 0. Both or neither.
    bool (*side_reply) (void *state, resv_t *client,
                        const resv_reply_t *reply, int64_t now);
    int64_t (*side_tick) (void *state, resv_t *client, int64_t now);
    //  More results into text: summary lines, or with json JSON members
    //  each led by a comma.
    void (*results) (void *state, bool json, char *text, size_t size);
} s_command_t;


//  ---------------------------------------------------------------------
//  Helpers shared by workloads.

//  True if name is a protocol name: min to RESV_NAME_MAX characters of
//  [a-z0-9_.-]. Such names also need no escaping in the JSON line.
static bool
s_valid_name (const char *name, size_t min)
{
    size_t length = strlen (name);
    if (length < min || length > RESV_NAME_MAX)
        return false;
    for (size_t i = 0; i < length; i++) {
        char c = name [i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        ||  c == '_' || c == '.' || c == '-'))
            return false;
    }
    return true;
}


//  ---------------------------------------------------------------------
//  ping: one service/method, the same body every time.

typedef struct {
    const char *service;        //  Target service (argv or default)
    const char *method;         //  Target method (argv or default)
    int size;                   //  Body size, bytes
    char *body;                 //  The body, made by start
} s_ping_t;

static void *
s_ping_new (void)
{
    s_ping_t *self = (s_ping_t *) zmalloc (sizeof (s_ping_t));
    if (self) {
        self->service = "echo";
        self->method = "echo";
        self->size = 128;
    }
    return self;
}

static void
s_ping_destroy (void **state_p)
{
    s_ping_t *self = (s_ping_t *) *state_p;
    if (self)
        free (self->body);
    free (self);
    *state_p = NULL;
}

static int
s_ping_option (void *state, const char *name, const char *value)
{
    s_ping_t *self = (s_ping_t *) state;
    if (streq (name, "--service") || streq (name, "--method")) {
        bool service = streq (name, "--service");
        if (!value || !s_valid_name (value, service? 1: 0)) {
            fprintf (stderr, "resv-bench: %s: '%s' is not a name of up to "
                     "%d characters of [a-z0-9_.-]\n", name,
                     value? value: "", RESV_NAME_MAX);
            return -1;
        }
        if (service)
            self->service = value;
        else
            self->method = value;
        return 2;
    }
    if (streq (name, "--size")) {
        int64_t size;
        if (resv_parse_int (value, 0, BENCH_SIZE_MAX, &size) || size == 1) {
            fprintf (stderr, "resv-bench: --size: '%s' is not 0 or 2 to %d\n",
                     value? value: "", BENCH_SIZE_MAX);
            return -1;
        }
        self->size = (int) size;
        return 2;
    }
    return 0;
}

static int
s_ping_start (void *state, resv_t *client, const s_options_t *options)
{
    (void) client;
    (void) options;
    s_ping_t *self = (s_ping_t *) state;
    self->body = bench_body_new (self->size);
    if (!self->body) {
        fprintf (stderr, "resv-bench: ping: out of memory\n");
        return -1;
    }
    return 0;
}

static void
s_ping_next (void *state, int64_t index, s_request_t *request)
{
    (void) index;
    s_ping_t *self = (s_ping_t *) state;
    request->service = self->service;
    request->method = self->method;
    request->body = self->body;
    request->size = (size_t) self->size;
}

static void
s_ping_describe (void *state, char *title, size_t title_size,
                 char *fields, size_t fields_size)
{
    s_ping_t *self = (s_ping_t *) state;
    snprintf (title, title_size, "%s%s%s, %d-byte bodies", self->service,
              *self->method? "/": "", self->method, self->size);
    snprintf (fields, fields_size,
              "\"service\":\"%s\",\"method\":\"%s\",\"size\":%d",
              self->service, self->method, self->size);
}


//  ---------------------------------------------------------------------
//  reserve: one reservation per request, for distinct customers spread
//  over resources and dates; and the event lag of the view.

#define BENCH_RESOURCES_DEFAULT 50
#define BENCH_RESOURCES_MAX     10000
#define BENCH_DAYS_DEFAULT      365
#define BENCH_DAYS_MAX          3650
#define BENCH_SAMPLE_DEFAULT    20
//  The first date of the spread, far enough ahead to be valid for years.
#define BENCH_FIRST_DATE        "2030-01-01"
//  Availability's largest capacity: nothing a run makes is refused.
#define BENCH_CAPACITY          1000000
#define BENCH_PRICE             1000
//  Event lag: a sampled reservation is polled every BENCH_LAG_INTERVAL ms
//  until the view shows it. At most BENCH_LAG_POLLS polls are in flight,
//  so that a view far behind does not drown the run in polls (the lag's
//  resolution suffers instead). One the view has not shown after
//  BENCH_LAG_GIVEUP ms is counted lost. Lags are also kept by window of
//  BENCH_LAG_WINDOW seconds of the run, so that growth shows.
#define BENCH_LAG_INTERVAL      2
#define BENCH_LAG_POLLS         32
#define BENCH_LAG_GIVEUP        10000
#define BENCH_LAG_WINDOW        10
//  Room for the results: the lag line and the windows.
#define BENCH_RESULTS_SIZE      65536

//  One sampled reservation, waiting to show in the view.
typedef struct _s_probe_t s_probe_t;
struct _s_probe_t {
    char id [RESV_ID_MAX + 1];  //  Reservation id, from the 201 reply
    int64_t replied;            //  zclock_usecs() of that reply
    int64_t due;                //  When to poll next
    int64_t sent;               //  When the last poll was sent
    int64_t handle;             //  The poll in flight
    s_probe_t *next;            //  In the waiting queue
};

typedef struct {
    int resources;              //  --resources
    int days;                   //  --days-spread
    int sample;                 //  --lag-sample; 0: no lag measured
    int timeout;                //  Deadline of a poll, ms
    char run [17];              //  Random, names this run's customers
    char (*ids) [RESV_ID_MAX + 1];  //  The resources made by start
    int64_t first_day;          //  Day number of BENCH_FIRST_DATE
    char body [512];            //  The request being built
    int64_t start;              //  zclock_usecs() of the first request
    s_probe_t *head, *tail;     //  Waiting to be polled, by due time
    s_probe_t *polling [BENCH_LAG_POLLS];   //  Polls in flight
    size_t npolling;
    bench_report_t *lag;        //  Every lag measured
    bench_report_t **windows;   //  Lags by window of their reply time
    size_t nwindows;
    int64_t lost;               //  Never shown within BENCH_LAG_GIVEUP
    int64_t polls;              //  Polls sent
} s_reserve_t;

static void *
s_reserve_new (void)
{
    s_reserve_t *self = (s_reserve_t *) zmalloc (sizeof (s_reserve_t));
    if (self) {
        self->resources = BENCH_RESOURCES_DEFAULT;
        self->days = BENCH_DAYS_DEFAULT;
        self->sample = BENCH_SAMPLE_DEFAULT;
        self->lag = bench_report_new (0);
        if (!self->lag) {
            free (self);
            return NULL;
        }
    }
    return self;
}

static void
s_reserve_destroy (void **state_p)
{
    s_reserve_t *self = (s_reserve_t *) *state_p;
    if (self) {
        while (self->head) {
            s_probe_t *probe = self->head;
            self->head = probe->next;
            free (probe);
        }
        for (size_t i = 0; i < self->npolling; i++)
            free (self->polling [i]);
        for (size_t i = 0; i < self->nwindows; i++)
            bench_report_destroy (&self->windows [i]);
        free (self->windows);
        bench_report_destroy (&self->lag);
        free (self->ids);
        free (self);
    }
    *state_p = NULL;
}

static int
s_reserve_option (void *state, const char *name, const char *value)
{
    s_reserve_t *self = (s_reserve_t *) state;
    int *target = NULL;
    int64_t min = 1, max = 0, number;
    if (streq (name, "--resources"))
        target = &self->resources, max = BENCH_RESOURCES_MAX;
    else
    if (streq (name, "--days-spread"))
        target = &self->days, max = BENCH_DAYS_MAX;
    else
    if (streq (name, "--lag-sample"))
        target = &self->sample, min = 0, max = BENCH_REQUESTS_MAX;
    else
        return 0;
    if (resv_parse_int (value, min, max, &number)) {
        fprintf (stderr, "resv-bench: %s: '%s' is not a number from %" PRId64
                 " to %" PRId64 "\n", name, value? value: "", min, max);
        return -1;
    }
    *target = (int) number;
    return 2;
}

//  Makes the run's resources through libresv.
static int
s_reserve_start (void *state, resv_t *client, const s_options_t *options)
{
    s_reserve_t *self = (s_reserve_t *) state;
    self->timeout = options->timeout;
    self->ids = calloc ((size_t) self->resources, sizeof *self->ids);
    if (!self->ids) {
        fprintf (stderr, "resv-bench: reserve: out of memory\n");
        return -1;
    }
    if (resv_random_hex (self->run, 8)) {
        fprintf (stderr, "resv-bench: reserve: no random source\n");
        return -1;
    }
    resv_date_parse (BENCH_FIRST_DATE, &self->first_day);
    char owner [64];
    snprintf (owner, sizeof owner, "bench-%s", self->run);
    for (int i = 0; i < self->resources; i++) {
        char name [64], request_id [64];
        snprintf (name, sizeof name, "bench resource %d", i);
        snprintf (request_id, sizeof request_id, "bench-%s-res-%d",
                  self->run, i);
        json_t *resource = json_pack ("{s:s,s:s,s:s,s:i,s:i,s:s,s:s}",
            "name", name, "owner", owner, "kind", "bench",
            "capacity", BENCH_CAPACITY, "price", BENCH_PRICE,
            "approval", "auto", "request_id", request_id);
        json_t *reply = NULL;
        int status = resource? resv_resource_add (client, resource, &reply)
                             : RESV_INTERNAL;
        json_decref (resource);
        const char *id = json_string_value (json_object_get (reply, "id"));
        if (status != RESV_CREATED || !id || strlen (id) > RESV_ID_MAX) {
            char *text = reply? json_dumps (reply, JSON_COMPACT): NULL;
            fprintf (stderr, "resv-bench: reserve: resource.add %d: %d %s\n",
                     i, status, text? text: "");
            free (text);
            json_decref (reply);
            return -1;
        }
        strcpy (self->ids [i], id);
        json_decref (reply);
    }
    return 0;
}

static void
s_reserve_next (void *state, int64_t index, s_request_t *request)
{
    s_reserve_t *self = (s_reserve_t *) state;
    if (index == 0)
        self->start = zclock_usecs ();
    char date [16];
    resv_date_format (self->first_day + (index / self->resources) % self->days,
                      date);
    //  Every field is a token or a date: nothing to escape.
    int size = snprintf (self->body, sizeof self->body,
        "{\"customer\":\"bench-%s-%" PRId64 "\",\"resource\":\"%s\","
        "\"date\":\"%s\",\"days\":1,\"units\":1,"
        "\"request_id\":\"bench-%s-%" PRId64 "\"}",
        self->run, index, self->ids [index % self->resources], date,
        self->run, index);
    request->service = RESV_SERVICE_RESERVATION;
    request->method = RESV_METHOD_RESERVE;
    request->body = self->body;
    request->size = (size_t) size;
}

static void
s_reserve_describe (void *state, char *title, size_t title_size,
                    char *fields, size_t fields_size)
{
    s_reserve_t *self = (s_reserve_t *) state;
    snprintf (title, title_size, "%d resources, %d days from %s, view lag "
              "of 1 in %d", self->resources, self->days, BENCH_FIRST_DATE,
              self->sample);
    snprintf (fields, fields_size,
              "\"resources\":%d,\"days_spread\":%d,\"lag_sample\":%d",
              self->resources, self->days, self->sample);
}

//  Queues probe to be polled at probe->due.
static void
s_reserve_wait (s_reserve_t *self, s_probe_t *probe)
{
    probe->next = NULL;
    probe->handle = 0;
    if (self->tail)
        self->tail->next = probe;
    else
        self->head = probe;
    self->tail = probe;
}

//  A sampled reservation was made: poll the view for it from now on.
static void
s_reserve_done (void *state, resv_t *client, int64_t index,
                const resv_reply_t *reply, int64_t now)
{
    (void) client;
    s_reserve_t *self = (s_reserve_t *) state;
    if (!self->sample || index % self->sample || reply->status != RESV_CREATED)
        return;
    json_t *object = json_loadb (reply->body, reply->size, 0, NULL);
    const char *id = json_string_value (json_object_get (object, "id"));
    s_probe_t *probe = id && strlen (id) <= RESV_ID_MAX?
        (s_probe_t *) zmalloc (sizeof (s_probe_t)): NULL;
    if (probe) {
        strcpy (probe->id, id);
        probe->replied = probe->due = now;
        s_reserve_wait (self, probe);
    }
    else
        self->lost++;
    json_decref (object);
}

//  The view answered a poll: shown (a lag), or not yet (poll again).
static bool
s_reserve_side_reply (void *state, resv_t *client, const resv_reply_t *reply,
                      int64_t now)
{
    (void) client;
    s_reserve_t *self = (s_reserve_t *) state;
    size_t i = 0;
    while (i < self->npolling && self->polling [i]->handle != reply->handle)
        i++;
    if (i == self->npolling)
        return false;
    s_probe_t *probe = self->polling [i];
    self->polling [i] = self->polling [--self->npolling];
    if (reply->status != RESV_OK) {
        int64_t due = probe->sent + BENCH_LAG_INTERVAL * 1000;
        probe->due = due > now? due: now;
        s_reserve_wait (self, probe);
        return true;
    }
    int64_t lag = now - probe->replied;
    bench_report_add (self->lag, RESV_OK, lag);
    size_t window = (size_t) ((probe->replied - self->start)
                              / ((int64_t) BENCH_LAG_WINDOW * 1000000));
    if (window >= self->nwindows) {
        bench_report_t **bigger = (bench_report_t **) realloc (self->windows,
                                  (window + 1) * sizeof (bench_report_t *));
        if (bigger) {
            for (size_t w = self->nwindows; w <= window; w++)
                bigger [w] = bench_report_new (0);
            self->windows = bigger;
            self->nwindows = window + 1;
        }
    }
    if (window < self->nwindows && self->windows [window])
        bench_report_add (self->windows [window], RESV_OK, lag);
    free (probe);
    return true;
}

//  Sends the polls that are due, as far as the cap on polls in flight
//  allows.
static int64_t
s_reserve_side_tick (void *state, resv_t *client, int64_t now)
{
    s_reserve_t *self = (s_reserve_t *) state;
    while (self->head && self->npolling < BENCH_LAG_POLLS
       &&  self->head->due <= now) {
        s_probe_t *probe = self->head;
        self->head = probe->next;
        if (!self->head)
            self->tail = NULL;
        int64_t handle = -1;
        if (now - probe->replied <= (int64_t) BENCH_LAG_GIVEUP * 1000) {
            char body [RESV_ID_MAX + 16];
            int size = snprintf (body, sizeof body, "{\"id\":\"%s\"}",
                                 probe->id);
            handle = resv_send (client, RESV_SERVICE_VIEW, RESV_METHOD_STATUS,
                                body, (size_t) size, self->timeout);
        }
        if (handle <= 0) {
            self->lost++;
            free (probe);
            continue;
        }
        probe->handle = handle;
        probe->sent = now;
        self->polling [self->npolling++] = probe;
        self->polls++;
    }
    if (self->head && self->npolling < BENCH_LAG_POLLS)
        return self->head->due;
    return self->head || self->npolling? INT64_MAX: 0;
}

//  Appends printf-style text at *used in text (size bytes), never past
//  its end.
static void
s_append (char *text, size_t size, size_t *used, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

static void
s_append (char *text, size_t size, size_t *used, const char *format, ...)
{
    if (*used >= size)
        return;
    va_list args;
    va_start (args, format);
    int length = vsnprintf (text + *used, size - *used, format, args);
    va_end (args);
    *used = length < 0? size: *used + (size_t) length;
    if (*used >= size)
        *used = size;
}

static void
s_reserve_results (void *state, bool json, char *text, size_t size)
{
    s_reserve_t *self = (s_reserve_t *) state;
    size_t used = 0;
    bench_report_t *lag = self->lag;
    if (json)
        s_append (text, size, &used, ",\"lag_count\":%" PRId64 ","
                  "\"lag_p50_ms\":%.3f,\"lag_p99_ms\":%.3f,"
                  "\"lag_max_ms\":%.3f,\"lag_lost\":%" PRId64 ","
                  "\"lag_polls\":%" PRId64 ",\"lag_windows\":[",
                  bench_report_ok (lag), bench_report_percentile (lag, 50),
                  bench_report_percentile (lag, 99),
                  bench_report_percentile (lag, 100), self->lost, self->polls);
    else
        s_append (text, size, &used, "Event lag to the view: %" PRId64
                  " sampled, p50 %.3f ms, p99 %.3f ms, longest %.3f ms, %"
                  PRId64 " lost, %" PRId64 " polls\n", bench_report_ok (lag),
                  bench_report_percentile (lag, 50),
                  bench_report_percentile (lag, 99),
                  bench_report_percentile (lag, 100), self->lost, self->polls);
    for (size_t w = 0; w < self->nwindows; w++) {
        bench_report_t *window = self->windows [w];
        if (!window)
            continue;
        int from = (int) w * BENCH_LAG_WINDOW;
        if (json)
            s_append (text, size, &used, "%s{\"from_s\":%d,\"count\":%"
                      PRId64 ",\"w_p50_ms\":%.3f,\"w_p99_ms\":%.3f}",
                      w? ",": "", from, bench_report_ok (window),
                      bench_report_percentile (window, 50),
                      bench_report_percentile (window, 99));
        else
            s_append (text, size, &used, "  lag from %4d s: %8" PRId64
                      " sampled, p50 %9.3f ms, p99 %9.3f ms\n", from,
                      bench_report_ok (window),
                      bench_report_percentile (window, 50),
                      bench_report_percentile (window, 99));
    }
    if (json)
        s_append (text, size, &used, "]");
    //  A cut JSON fragment would spoil the whole line: drop the windows.
    if (json && used >= size)
        snprintf (text, size, ",\"lag_count\":%" PRId64 ",\"lag_p50_ms\":"
                  "%.3f,\"lag_p99_ms\":%.3f,\"lag_max_ms\":%.3f,"
                  "\"lag_lost\":%" PRId64 ",\"lag_polls\":%" PRId64,
                  bench_report_ok (lag), bench_report_percentile (lag, 50),
                  bench_report_percentile (lag, 99),
                  bench_report_percentile (lag, 100), self->lost, self->polls);
}

//  Every command, by name.
static const s_command_t s_commands [] = {
    {   "ping",
        "[--service S] [--method M] [--size BYTES]",
        "  --service S     target service (default echo; ping: the broker\n"
        "                  alone)\n"
        "  --method M      target method (default echo)\n"
        "  --size BYTES    request body, a JSON object padded to BYTES\n"
        "                  (default 128; 0, or 2 and more)\n",
        s_ping_new, s_ping_destroy, s_ping_option, s_ping_start, s_ping_next,
        s_ping_describe, NULL, NULL, NULL, NULL
    },
    {   "reserve",
        "[--resources R] [--days-spread D] [--lag-sample K]",
        "  --resources R   resources made first, auto approval and a\n"
        "                  capacity that refuses nothing (default 50)\n"
        "  --days-spread D request i reserves resource i % R on day\n"
        "                  (i / R) % D from " BENCH_FIRST_DATE " (default 365),\n"
        "                  one unit, one day, for customer bench-RUN-i\n"
        "  --lag-sample K  every K-th reservation, once made, is polled in\n"
        "                  the view (view/status) every 2 ms until shown:\n"
        "                  the event lag, also by 10 s window (default 20;\n"
        "                  0: none)\n",
        s_reserve_new, s_reserve_destroy, s_reserve_option, s_reserve_start,
        s_reserve_next, s_reserve_describe, s_reserve_done,
        s_reserve_side_reply, s_reserve_side_tick, s_reserve_results
    },
};
#define BENCH_COMMANDS (sizeof (s_commands) / sizeof (s_commands [0]))


//  ---------------------------------------------------------------------
//  The runner: keeps the workload's requests in flight until all are done.

static void
s_run (resv_t *client, const s_command_t *command, void *state,
       const s_options_t *options, bench_report_t *report)
{
    bench_inflight_t *inflight = bench_inflight_new (options->concurrency);
    if (!inflight) {
        fprintf (stderr, "resv-bench: out of memory\n");
        return;
    }
    int64_t limit = options->duration? BENCH_REQUESTS_MAX: options->requests;
    int64_t sent = 0;
    int64_t slack = (int64_t) (options->timeout + BENCH_EXPIRY_SLACK) * 1000;
    int64_t start = zclock_usecs ();
    int64_t stop = options->duration?
                   start + (int64_t) options->duration * 1000000: INT64_MAX;
    int64_t next_expiry = start + BENCH_EXPIRY_TICK * 1000;
    int64_t side = 0;           //  What side_tick last said
    while (!zsys_interrupted) {
        int64_t now = zclock_usecs ();
        bool sending = sent < limit && now < stop;
        //  When the next request is due: now when closed-loop.
        int64_t due = now;
        while (sending
           &&  bench_inflight_count (inflight) < (size_t) options->concurrency) {
            if (options->rate > 0) {
                due = start + (int64_t) ((double) sent * 1e6 / options->rate);
                if (due > now)
                    break;
            }
            s_request_t request;
            command->next (state, sent, &request);
            int64_t handle = resv_send (client, request.service,
                                        request.method, request.body,
                                        request.size, options->timeout);
            if (handle > 0)
                bench_inflight_put (inflight, handle, sent, due);
            else
                bench_report_add (report, RESV_BAD_REQUEST, 0);
            sent++;
            now = zclock_usecs ();
            sending = sent < limit && now < stop;
        }
        if (!sending && bench_inflight_count (inflight) == 0 && side == 0)
            break;
        //  Wait for a reply, at most until the next thing to do.
        int64_t wake = next_expiry;
        if (sending && options->rate > 0 && due > now && due < wake)
            wake = due;
        if (sending && stop < wake)
            wake = stop;
        if (side && side < wake)
            wake = side;
        int wait = wake > now? (int) ((wake - now + 999) / 1000): 0;
        resv_reply_t reply;
        int rc = resv_recv (client, wait, &reply);
        now = zclock_usecs ();
        if (rc == 0) {
            int64_t index;
            int64_t started = bench_inflight_take (inflight, reply.handle,
                                                   &index);
            if (started >= 0) {
                bench_report_add (report, reply.status, now - started);
                bench_report_set_elapsed (report, now - start);
                if (command->done)
                    command->done (state, client, index, &reply, now);
            }
            else
            if (command->side_reply)
                command->side_reply (state, client, &reply, now);
            free (reply.body);
        }
        if (command->side_tick)
            side = command->side_tick (state, client, now);
        //  Give up requests libresv has kept past their deadline, or all
        //  of ours at once when libresv says none is in flight any more.
        if (now >= next_expiry || (rc && resv_inflight (client) == 0)) {
            int64_t cutoff = resv_inflight (client)? now - slack: INT64_MAX;
            size_t expired = bench_inflight_expire (inflight, cutoff);
            for (size_t i = 0; i < expired; i++)
                bench_report_add (report, RESV_TIMEOUT, 0);
            if (expired)
                bench_report_set_elapsed (report, now - start);
            next_expiry = now + BENCH_EXPIRY_TICK * 1000;
        }
    }
    //  An interrupted run counts what never came back, and what it never
    //  sent of its -n requests, as failed.
    int64_t missing = (int64_t) bench_inflight_count (inflight)
                    + (options->duration? 0: limit - sent);
    for (int64_t i = 0; i < missing; i++)
        bench_report_add (report, RESV_TIMEOUT, 0);
    bench_inflight_destroy (&inflight);
}


//  ---------------------------------------------------------------------
//  The command line.

static void
s_usage (FILE *stream)
{
    fprintf (stream,
        "usage: resv-bench [-e ENDPOINT] [-c CONFIG] COMMAND -c CONCURRENCY\n"
        "                  -n REQUESTS [-t TIMEOUT_MS] [--rate R]\n"
        "                  [--duration S] [--json] [OPTIONS]\n"
        "\n"
        "Load generator for resv: keeps CONCURRENCY requests in flight\n"
        "through libresv's asynchronous form until REQUESTS are done, then\n"
        "prints Transactions (successful requests), Availability, Elapsed\n"
        "time, Transaction rate, latencies of successful requests from send\n"
        "to reply (Shortest, p50, p90, p99, Longest, in ms) and Failed\n"
        "transactions by status.\n"
        "\n"
        "  -e ENDPOINT     broker frontend (default: broker/frontend from\n"
        "                  the config or RESV_BROKER_FRONTEND, else %s)\n"
        "  -c CONFIG       configuration file (default %s)\n"
        "\n"
        "Options of every command:\n"
        "  -c CONCURRENCY  requests in flight (default 16, max %d)\n"
        "  -n REQUESTS     requests to complete (default 10000)\n"
        "  -t TIMEOUT_MS   deadline of each request (default client/timeout)\n"
        "  --rate R        open loop: start R requests a second (0.001 to\n"
        "                  10000000), whatever the replies, with at most\n"
        "                  CONCURRENCY in flight; latency counts from\n"
        "                  when a request was due\n"
        "  --duration S    send for S seconds instead of REQUESTS\n"
        "  --json          print one JSON line instead of the summary\n",
        RESV_DEFAULT_ENDPOINT, RESV_CFG_DEFAULT_PATH, BENCH_CONCURRENCY_MAX);
    for (size_t i = 0; i < BENCH_COMMANDS; i++)
        fprintf (stream, "\nresv-bench %s %s\n%s", s_commands [i].name,
                 s_commands [i].synopsis, s_commands [i].help);
    fprintf (stream,
        "\nping measures a worker round trip (echo/echo); --service ping\n"
        "measures the broker alone. reserve measures the reserve saga\n"
        "(availability hold, payment authorize, the reservation stored)\n"
        "and how long its events take to reach the view.\n"
        "\n"
        "Exit status: 0 all requests succeeded, 1 some failed, 2 usage error,\n"
        "3 none succeeded or the broker did not answer.\n");
}

//  Parses the options after the command word: the shared ones into
//  options, the rest through the workload. Returns 0, -1 on a usage error.
static int
s_parse_command (int argc, char *argv [], const s_command_t *command,
                 void *state, s_options_t *options, bool *timeout_set)
{
    for (int i = 0; i < argc; i++) {
        const char *name = argv [i];
        const char *text = i + 1 < argc? argv [i + 1]: NULL;
        if (streq (name, "--help") || streq (name, "-h")) {
            s_usage (stdout);
            exit (BENCH_EXIT_OK);
        }
        if (streq (name, "--json")) {
            options->json = true;
            continue;
        }
        int64_t value = 0;      //  Meaningful only when rc is 0
        int rc = 0;
        if (streq (name, "-c")) {
            rc = resv_parse_int (text, 1, BENCH_CONCURRENCY_MAX, &value);
            options->concurrency = (int) value;
        }
        else
        if (streq (name, "-n")) {
            rc = resv_parse_int (text, 1, BENCH_REQUESTS_MAX, &value);
            options->requests = value;
        }
        else
        if (streq (name, "-t")) {
            rc = resv_parse_int (text, 1, BENCH_TIMEOUT_MAX, &value);
            options->timeout = (int) value;
            *timeout_set = true;
        }
        else
        if (streq (name, "--duration")) {
            rc = resv_parse_int (text, 1, BENCH_DURATION_MAX, &value);
            options->duration = (int) value;
        }
        else
        if (streq (name, "--rate")) {
            char *end = NULL;
            double rate = text? strtod (text, &end): 0;
            rc = text && *text && !*end && rate >= BENCH_RATE_MIN
                                        && rate <= BENCH_RATE_MAX
               ? 0: -1;
            options->rate = rate;
        }
        else {
            int used = command->option (state, name, text);
            if (used < 0)
                return -1;
            if (used == 0) {
                fprintf (stderr, "resv-bench: %s: unknown option '%s'\n",
                         command->name, name);
                return -1;
            }
            i += used - 1;
            continue;
        }
        if (rc) {
            fprintf (stderr, "resv-bench: %s: bad or missing value '%s'\n",
                     name, text? text: "");
            return -1;
        }
        i++;
    }
    return 0;
}

//  Runs the command on a connected client; returns the exit code.
static int
s_bench (resv_t *client, const s_command_t *command, void *state,
         const s_options_t *options)
{
    //  One round trip to the broker before the clock starts, so that the
    //  run measures the steady state and not the TCP connect, and a
    //  broker that is down is reported as such.
    json_t *pong = NULL;
    int status = resv_ping (client, &pong);
    json_decref (pong);
    if (status != RESV_OK) {
        fprintf (stderr, "resv-bench: broker at %s does not answer ping "
                 "(%d %s)\n", options->endpoint, status,
                 resv_strstatus (status));
        return BENCH_EXIT_UNAVAILABLE;
    }
    if (command->start (state, client, options))
        return BENCH_EXIT_FAILED;
    //  Room for the latencies up front, so that the table does not grow
    //  while the clock runs; a run with --duration sends no more than
    //  BENCH_REQUESTS_MAX, however large its rate times its duration.
    int64_t expected = options->requests;
    if (options->duration)
        expected = options->rate > 0?
            (int64_t) (options->rate * options->duration): 100000;
    if (expected > BENCH_REQUESTS_MAX)
        expected = BENCH_REQUESTS_MAX;
    bench_report_t *report = bench_report_new (expected);
    char *extra = (char *) zmalloc (BENCH_RESULTS_SIZE);
    if (!report || !extra) {
        bench_report_destroy (&report);
        free (extra);
        fprintf (stderr, "resv-bench: out of memory\n");
        return BENCH_EXIT_FAILED;
    }
    s_run (client, command, state, options, report);

    char what [256], title [512], fields [512];
    command->describe (state, what, sizeof (what), fields, sizeof (fields));
    char pace [96] = "";
    if (options->rate > 0)
        snprintf (pace, sizeof pace, " (at most), %.1f started a second",
                  options->rate);
    if (options->duration)
        snprintf (pace + strlen (pace), sizeof pace - strlen (pace),
                  " for %d s", options->duration);
    snprintf (title, sizeof (title), "resv-bench %s: %s, %d in flight%s",
              command->name, what, options->concurrency, pace);
    char all [1024];
    snprintf (all, sizeof (all),
              "\"tool\":\"resv-bench\",\"command\":\"%s\",%s,"
              "\"concurrency\":%d,\"requests\":%" PRId64 ",\"timeout_ms\":%d,"
              "\"offered_rate\":%.1f,\"duration_s\":%d",
              command->name, fields, options->concurrency,
              options->duration? bench_report_requests (report)
                               : options->requests,
              options->timeout, options->rate, options->duration);
    if (command->results)
        command->results (state, options->json, extra, BENCH_RESULTS_SIZE);
    bench_report_print (report, options->json, title, all, extra);
    int64_t ok = bench_report_ok (report);
    int rc = ok == bench_report_requests (report)? BENCH_EXIT_OK
           : ok? BENCH_EXIT_FAILED: BENCH_EXIT_UNAVAILABLE;
    bench_report_destroy (&report);
    free (extra);
    return rc;
}

int
main (int argc, char *argv [])
{
    s_options_t options = {
        .endpoint = NULL, .concurrency = 16, .requests = 10000,
        .timeout = RESV_DEFAULT_TIMEOUT, .rate = 0, .duration = 0,
        .json = false
    };
    //  Ctrl-C ends a run early with its summary (zsys_interrupted):
    //  CZMQ's signal handling, which libresv leaves to the program.
    zsys_init ();
    const char *config = NULL;
    int i = 1;
    for (; i < argc && argv [i][0] == '-'; i++) {
        if (streq (argv [i], "--help") || streq (argv [i], "-h")) {
            s_usage (stdout);
            return BENCH_EXIT_OK;
        }
        if ((streq (argv [i], "-e") || streq (argv [i], "-c")) && i + 1 < argc) {
            if (streq (argv [i], "-e"))
                options.endpoint = argv [i + 1];
            else
                config = argv [i + 1];
            i++;
            continue;
        }
        fprintf (stderr, "resv-bench: bad option '%s'\n", argv [i]);
        s_usage (stderr);
        return BENCH_EXIT_USAGE;
    }
    const s_command_t *command = NULL;
    for (size_t c = 0; i < argc && c < BENCH_COMMANDS; c++)
        if (streq (argv [i], s_commands [c].name))
            command = &s_commands [c];
    if (!command) {
        if (i < argc)
            fprintf (stderr, "resv-bench: unknown command '%s'\n", argv [i]);
        else
            fprintf (stderr, "resv-bench: missing command\n");
        s_usage (stderr);
        return BENCH_EXIT_USAGE;
    }
    void *state = command->new ();
    if (!state) {
        fprintf (stderr, "resv-bench: out of memory\n");
        return BENCH_EXIT_FAILED;
    }
    bool timeout_set = false;
    if (s_parse_command (argc - i - 1, argv + i + 1, command, state, &options,
                         &timeout_set)) {
        command->destroy (&state);
        s_usage (stderr);
        return BENCH_EXIT_USAGE;
    }
    if (!options.duration && options.concurrency > options.requests)
        options.concurrency = (int) options.requests;

    resv_cfg_t *cfg = resv_cfg_load (config);
    if (!cfg) {
        command->destroy (&state);
        return BENCH_EXIT_USAGE;    //  resv_cfg_load logged the cause
    }
    if (!options.endpoint)
        options.endpoint = resv_cfg_str (cfg, "broker/frontend",
                                         RESV_DEFAULT_ENDPOINT);
    if (!timeout_set)
        options.timeout = (int) resv_cfg_int (cfg, "client/timeout",
                                              RESV_DEFAULT_TIMEOUT, 1,
                                              BENCH_TIMEOUT_MAX);
    int rc = BENCH_EXIT_USAGE;
    resv_t *client = NULL;
    if (resv_cfg_bad (cfg))
        fprintf (stderr, "resv-bench: the configuration has a bad value "
                 "(above)\n");
    else
    if (!(client = resv_new (options.endpoint)))
        fprintf (stderr, "resv-bench: cannot connect to '%s'\n",
                 options.endpoint);
    else {
        resv_set_timeout (client, options.timeout);
        rc = s_bench (client, command, state, &options);
    }
    resv_destroy (&client);
    resv_cfg_destroy (&cfg);
    command->destroy (&state);
    return rc;
}
