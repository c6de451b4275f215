/*  bench_main.c: resv-bench, a load generator that drives resv through
    libresv's asynchronous form and prints a siege-like summary.

    A run keeps CONCURRENCY requests in flight (resv_send/resv_recv) until
    REQUESTS are done, timing each from its send to its reply with
    zclock_usecs(). Every request has a deadline, and a request that
    libresv does not return within its deadline plus a second is given up
    here too, so a run always ends.

    Each command is one workload: a row in s_commands with a few callbacks
    that parse its options, prepare (before the clock starts), build the
    request of a given index, and name the run in the report. `ping` sends
    the same body to one service/method (echo/echo by default: a round trip
    through the broker to a worker). A new workload, such as `reserve`
    (distinct customers spread over resources and dates), is a new state
    struct, its callbacks and one more row; the runner and the report stay
    as they are.

    The summary and the --json line are the same as tests/raw_echo.c
    prints, so tests/bench.sh can compare resv with its raw CZMQ baseline.
    Keep the two in step.
*/

#include "resv.h"
#include "resv_cfg.h"
#include <czmq.h>
#include <inttypes.h>

//  Limits of the command line, chosen so that the latency table and the
//  in-flight table always fit in memory and every loop stays bounded.
#define BENCH_REQUESTS_MAX      100000000
#define BENCH_CONCURRENCY_MAX   10000
#define BENCH_SIZE_MAX          (1024 * 1024)
#define BENCH_TIMEOUT_MAX       3600000
//  A request libresv has not returned this long after its deadline is
//  given up as a 504 (libresv should have returned it at the deadline).
#define BENCH_EXPIRY_SLACK      1000
//  How often the runner looks for such requests, in milliseconds.
#define BENCH_EXPIRY_TICK       100
//  Statuses are three decimal digits.
#define BENCH_STATUS_MAX        1000

//  Exit codes: all requests succeeded, some failed, usage error, none
//  succeeded or the broker did not answer.
#define BENCH_EXIT_OK           0
#define BENCH_EXIT_FAILED       1
#define BENCH_EXIT_USAGE        2
#define BENCH_EXIT_UNAVAILABLE  3

//  Settings every command shares.
typedef struct {
    const char *endpoint;       //  Broker frontend
    int concurrency;            //  Requests kept in flight
    int64_t requests;           //  Requests to complete
    int timeout;                //  Deadline of each request, ms
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
} s_command_t;


//  ---------------------------------------------------------------------
//  Helpers shared by workloads.

//  A request body: a JSON object padded to size bytes (0: empty, meaning
//  {}; 2 to 10: "{}" and spaces). The same bytes raw-echo sends.
static char *
s_body_new (int size)
{
    char *body = (char *) malloc ((size_t) size + 1);
    if (!body)
        return NULL;
    if (size >= 11) {
        //  {"pad":"xxx...x"}: 10 bytes of syntax around the padding.
        memcpy (body, "{\"pad\":\"", 8);
        memset (body + 8, 'x', (size_t) size - 10);
        memcpy (body + size - 2, "\"}", 2);
    }
    else
    if (size >= 2) {
        memset (body, ' ', (size_t) size);
        memcpy (body, "{}", 2);
    }
    body [size] = 0;
    return body;
}

//  Parses a whole decimal number in [min, max]; returns 0 or -1.
static int
s_parse_number (const char *text, int64_t min, int64_t max, int64_t *value)
{
    if (!text || !*text)
        return -1;
    char *end;
    errno = 0;
    long long number = strtoll (text, &end, 10);
    if (errno || *end || number < min || number > max)
        return -1;
    *value = number;
    return 0;
}

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
        if (s_parse_number (value, 0, BENCH_SIZE_MAX, &size) || size == 1) {
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
    self->body = s_body_new (self->size);
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
        s_ping_describe
    },
};
#define BENCH_COMMANDS (sizeof (s_commands) / sizeof (s_commands [0]))


//  ---------------------------------------------------------------------
//  Requests in flight: an open-addressing table from a libresv handle to
//  its send time, at least twice the concurrency so that probes stay
//  short. Handles are > 0; 0 marks an empty cell. Removal shifts later
//  cells back so that no tombstones build up over a long run.

typedef struct {
    int64_t key;                //  Handle; 0 when the cell is empty
    int64_t started;            //  zclock_usecs() when it was sent
} s_cell_t;

typedef struct {
    s_cell_t *cells;            //  The table
    size_t mask;                //  Table size - 1, a power of two minus one
    size_t count;               //  Cells in use
    int64_t *expired;           //  Scratch list for s_inflight_expire
} s_inflight_t;

static int
s_inflight_init (s_inflight_t *self, int concurrency)
{
    size_t size = 16;
    while (size < 2 * (size_t) concurrency)
        size *= 2;
    self->cells = (s_cell_t *) calloc (size, sizeof (s_cell_t));
    self->expired = (int64_t *) calloc (size, sizeof (int64_t));
    self->mask = size - 1;
    self->count = 0;
    return self->cells && self->expired? 0: -1;
}

static void
s_inflight_free (s_inflight_t *self)
{
    free (self->cells);
    free (self->expired);
    self->cells = NULL;
    self->expired = NULL;
}

static size_t
s_inflight_home (s_inflight_t *self, int64_t key)
{
    return (size_t) (((uint64_t) key * 0x9E3779B97F4A7C15ull) >> 32)
           & self->mask;
}

static void
s_inflight_put (s_inflight_t *self, int64_t key, int64_t started)
{
    size_t i = s_inflight_home (self, key);
    while (self->cells [i].key)
        i = (i + 1) & self->mask;
    self->cells [i].key = key;
    self->cells [i].started = started;
    self->count++;
}

//  Removes key and returns its send time, or -1 if it is not in flight
//  (already given up, or never sent).
static int64_t
s_inflight_take (s_inflight_t *self, int64_t key)
{
    size_t i = s_inflight_home (self, key);
    while (self->cells [i].key != key) {
        if (!self->cells [i].key)
            return -1;
        i = (i + 1) & self->mask;
    }
    int64_t started = self->cells [i].started;
    self->cells [i].key = 0;
    self->count--;
    //  Shift back each later cell of the run that may live at i.
    size_t j = i;
    while (true) {
        j = (j + 1) & self->mask;
        if (!self->cells [j].key)
            break;
        size_t home = s_inflight_home (self, self->cells [j].key);
        bool stays = i <= j? (i < home && home <= j)
                           : (i < home || home <= j);
        if (!stays) {
            self->cells [i] = self->cells [j];
            self->cells [j].key = 0;
            i = j;
        }
    }
    return started;
}

//  Forgets every request sent before cutoff; returns how many.
static size_t
s_inflight_expire (s_inflight_t *self, int64_t cutoff)
{
    size_t count = 0;
    for (size_t i = 0; i <= self->mask; i++)
        if (self->cells [i].key && self->cells [i].started < cutoff)
            self->expired [count++] = self->cells [i].key;
    for (size_t i = 0; i < count; i++)
        s_inflight_take (self, self->expired [i]);
    return count;
}


//  ---------------------------------------------------------------------
//  Results and the summary, in the format raw-echo prints.

typedef struct {
    int64_t requests;           //  Requests asked for
    int64_t *latency;           //  Microseconds of each successful request
    int64_t ok;                 //  Successful requests (2xx)
    int64_t failed [BENCH_STATUS_MAX];  //  Failed requests by status
    int64_t elapsed;            //  Microseconds, first send to last reply
} s_report_t;

static int
s_report_init (s_report_t *self, int64_t requests)
{
    memset (self, 0, sizeof (s_report_t));
    self->requests = requests;
    self->latency = (int64_t *) malloc ((size_t) requests * sizeof (int64_t));
    return self->latency? 0: -1;
}

static void
s_report_add (s_report_t *self, int status, int64_t latency)
{
    if (status >= 200 && status < 300)
        self->latency [self->ok++] = latency;
    else
        self->failed [status >= 0 && status < BENCH_STATUS_MAX? status: 0]++;
}

static int
s_compare_int64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

//  Nearest-rank percentile of the sorted latencies, in milliseconds.
static double
s_report_percentile (s_report_t *self, double percent)
{
    if (self->ok == 0)
        return 0;
    int64_t rank = (int64_t) ceil (percent / 100 * (double) self->ok);
    if (rank < 1)
        rank = 1;
    return (double) self->latency [rank - 1] / 1000;
}

//  Prints the summary, or with json one line whose first fields are
//  fields (a JSON fragment naming the run). title heads the summary.
static void
s_report_print (s_report_t *self, bool json, const char *title,
                const char *fields)
{
    qsort (self->latency, (size_t) self->ok, sizeof (int64_t),
           s_compare_int64);
    int64_t failed = self->requests - self->ok;
    double elapsed = (double) self->elapsed / 1e6;
    double availability = self->requests?
        100.0 * (double) self->ok / (double) self->requests: 0;
    double rate = elapsed > 0? (double) self->ok / elapsed: 0;
    double shortest = s_report_percentile (self, 0);
    double p50 = s_report_percentile (self, 50);
    double p90 = s_report_percentile (self, 90);
    double p99 = s_report_percentile (self, 99);
    double longest = s_report_percentile (self, 100);
    char by_status [BENCH_STATUS_MAX * 16] = "";
    size_t used = 0;
    for (int status = 0; status < BENCH_STATUS_MAX; status++) {
        if (!self->failed [status])
            continue;
        used += (size_t) snprintf (by_status + used, sizeof (by_status) - used,
                                   json? "%s\"%d\":%" PRId64: "%s%d: %" PRId64,
                                   used? (json? ",": ", "): "", status,
                                   self->failed [status]);
    }
    if (json) {
        printf ("{%s,\"transactions\":%" PRId64 ",\"availability\":%.2f,"
                "\"elapsed_s\":%.3f,\"rate\":%.2f,\"shortest_ms\":%.3f,"
                "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
                "\"longest_ms\":%.3f,\"failed\":%" PRId64 ","
                "\"failed_by_status\":{%s}}\n",
                fields, self->ok, availability, elapsed, rate, shortest, p50,
                p90, p99, longest, failed, by_status);
        return;
    }
    printf ("%s\n", title);
    printf ("Transactions:         %12" PRId64 " hits\n", self->ok);
    printf ("Availability:         %12.2f %%\n", availability);
    printf ("Elapsed time:         %12.3f s\n", elapsed);
    printf ("Transaction rate:     %12.2f req/s\n", rate);
    printf ("Shortest transaction: %12.3f ms\n", shortest);
    printf ("p50 transaction:      %12.3f ms\n", p50);
    printf ("p90 transaction:      %12.3f ms\n", p90);
    printf ("p99 transaction:      %12.3f ms\n", p99);
    printf ("Longest transaction:  %12.3f ms\n", longest);
    printf ("Failed transactions:  %12" PRId64 "%s%s%s\n", failed,
            used? " (": "", by_status, used? ")": "");
}


//  ---------------------------------------------------------------------
//  The runner: keeps the workload's requests in flight until all are done.

static void
s_run (resv_t *client, const s_command_t *command, void *state,
       const s_options_t *options, s_report_t *report)
{
    s_inflight_t inflight;
    if (s_inflight_init (&inflight, options->concurrency)) {
        s_inflight_free (&inflight);
        fprintf (stderr, "resv-bench: out of memory\n");
        return;
    }
    int64_t sent = 0, done = 0;
    int64_t slack = (int64_t) (options->timeout + BENCH_EXPIRY_SLACK) * 1000;
    int64_t start = zclock_usecs ();
    int64_t next_expiry = start + BENCH_EXPIRY_TICK * 1000;
    while (done < options->requests && !zsys_interrupted) {
        while (sent < options->requests
           &&  inflight.count < (size_t) options->concurrency) {
            s_request_t request;
            command->next (state, sent++, &request);
            int64_t now = zclock_usecs ();
            int64_t handle = resv_send (client, request.service,
                                        request.method, request.body,
                                        request.size, options->timeout);
            if (handle > 0)
                s_inflight_put (&inflight, handle, now);
            else {
                s_report_add (report, RESV_BAD_REQUEST, 0);
                done++;
            }
        }
        resv_reply_t reply;
        int rc = resv_recv (client, BENCH_EXPIRY_TICK, &reply);
        int64_t now = zclock_usecs ();
        if (rc == 0) {
            int64_t started = s_inflight_take (&inflight, reply.handle);
            if (started >= 0) {
                s_report_add (report, reply.status, now - started);
                report->elapsed = now - start;
                done++;
            }
            free (reply.body);
        }
        //  Give up requests libresv has kept past their deadline, or all
        //  of ours at once when libresv says none is in flight any more.
        if (now >= next_expiry || (rc && resv_inflight (client) == 0)) {
            int64_t cutoff = resv_inflight (client)? now - slack: INT64_MAX;
            size_t expired = s_inflight_expire (&inflight, cutoff);
            for (size_t i = 0; i < expired; i++)
                s_report_add (report, RESV_TIMEOUT, 0);
            if (expired)
                report->elapsed = now - start;
            done += (int64_t) expired;
            next_expiry = now + BENCH_EXPIRY_TICK * 1000;
        }
    }
    //  An interrupted run counts what never came back as failed.
    for (int64_t i = done; i < options->requests; i++)
        s_report_add (report, RESV_TIMEOUT, 0);
    s_inflight_free (&inflight);
}


//  ---------------------------------------------------------------------
//  The command line.

static void
s_usage (FILE *stream)
{
    fprintf (stream,
        "usage: resv-bench [-e ENDPOINT] [-c CONFIG] COMMAND -c CONCURRENCY\n"
        "                  -n REQUESTS [-t TIMEOUT_MS] [--json] [OPTIONS]\n"
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
        "  --json          print one JSON line instead of the summary\n",
        RESV_DEFAULT_ENDPOINT, RESV_CFG_DEFAULT_PATH, BENCH_CONCURRENCY_MAX);
    for (size_t i = 0; i < BENCH_COMMANDS; i++)
        fprintf (stream, "\nresv-bench %s %s\n%s", s_commands [i].name,
                 s_commands [i].synopsis, s_commands [i].help);
    fprintf (stream,
        "\nping measures a worker round trip (echo/echo); --service ping\n"
        "measures the broker alone.\n"
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
        int64_t value;
        int rc = 0;
        if (streq (name, "-c")) {
            rc = s_parse_number (text, 1, BENCH_CONCURRENCY_MAX, &value);
            options->concurrency = (int) value;
        }
        else
        if (streq (name, "-n")) {
            rc = s_parse_number (text, 1, BENCH_REQUESTS_MAX, &value);
            options->requests = value;
        }
        else
        if (streq (name, "-t")) {
            rc = s_parse_number (text, 1, BENCH_TIMEOUT_MAX, &value);
            options->timeout = (int) value;
            *timeout_set = true;
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
    s_report_t report;
    if (s_report_init (&report, options->requests)) {
        fprintf (stderr, "resv-bench: out of memory\n");
        return BENCH_EXIT_FAILED;
    }
    s_run (client, command, state, options, &report);

    char what [256], title [512], fields [512];
    command->describe (state, what, sizeof (what), fields, sizeof (fields));
    snprintf (title, sizeof (title), "resv-bench %s: %s, %d in flight",
              command->name, what, options->concurrency);
    char all [1024];
    snprintf (all, sizeof (all),
              "\"tool\":\"resv-bench\",\"command\":\"%s\",%s,"
              "\"concurrency\":%d,\"requests\":%" PRId64 ",\"timeout_ms\":%d",
              command->name, fields, options->concurrency, options->requests,
              options->timeout);
    s_report_print (&report, options->json, title, all);
    int rc = report.ok == report.requests? BENCH_EXIT_OK
           : report.ok? BENCH_EXIT_FAILED: BENCH_EXIT_UNAVAILABLE;
    free (report.latency);
    return rc;
}

int
main (int argc, char *argv [])
{
    s_options_t options = {
        .endpoint = NULL, .concurrency = 16, .requests = 10000,
        .timeout = RESV_DEFAULT_TIMEOUT, .json = false
    };
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
    if (options.concurrency > options.requests)
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
    resv_t *client = resv_new (options.endpoint);
    if (client) {
        resv_set_timeout (client, options.timeout);
        rc = s_bench (client, command, state, &options);
    }
    else
        fprintf (stderr, "resv-bench: cannot connect to '%s'\n",
                 options.endpoint);
    resv_destroy (&client);
    resv_cfg_destroy (&cfg);
    command->destroy (&state);
    return rc;
}
