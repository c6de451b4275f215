/*  raw_echo.c: the benchmark baseline, a plain CZMQ echo with no resv code.

    It has resv's shape, over TCP on 127.0.0.1, in one program: a client
    DEALER (the main thread) talks to a proxy ROUTER frontend; the proxy
    hands each request to one of N echo workers (DEALERs on a backend
    ROUTER) and routes each reply back to the client by its routing id.
    Workers announce themselves with READY first; the proxy gives each
    request to the worker with spare credit and the fewest requests in
    hand, and queues requests when none has credit, as the resv broker
    does. The proxy and each worker are actors, each in a process of its
    own by default (as resv's broker and workers are), or with --threads
    all in this process. Messages carry what resv's carry, without resv's
    protocol and command frames:

        client -> proxy   request-id body
        proxy  -> worker  client-id request-id body
        worker -> proxy   client-id request-id status body   (or READY)
        proxy  -> client  request-id status body

    The client keeps CONCURRENCY requests in flight until REQUESTS are
    answered and prints the same summary, and the same --json line, as
    resv-bench, so tests/bench.sh can put the two side by side: both keep
    their requests in a bench_inflight_t and their results in a
    bench_report_t (client/bench_*.c, bookkeeping only). Nothing else of
    resv is linked in: no libresv, no broker, no worker runtime.
*/

#include "bench_inflight.h"
#include "bench_body.h"
#include "bench_report.h"
#include "resv_util.h"
#include <czmq.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

//  Limits of the command line, chosen so that the latency table and the
//  in-flight table always fit in memory and every loop stays bounded.
#define RAW_REQUESTS_MAX    100000000
#define RAW_CONCURRENCY_MAX 10000
#define RAW_WORKERS_MAX     64
#define RAW_SIZE_MAX        (1024 * 1024)
#define RAW_CREDIT_MAX      1000
//  A request still unanswered this long after its deadline is given up.
#define RAW_EXPIRY_SLACK    1000
//  How often the client looks for expired requests, in milliseconds.
#define RAW_EXPIRY_TICK     100
//  The status of a request this program gives up on.
#define RAW_STATUS_TIMEOUT  504
#define RAW_READY           "READY"
//  How long the proxy and the workers may take to come up, milliseconds.
#define RAW_START_TIMEOUT   5000
//  How long a stopped process may take to exit before it is killed.
#define RAW_STOP_TIMEOUT    2000
//  Most messages a server reads from one socket before it polls again.
#define RAW_BATCH           64

//  Settings of one run, from the command line.
typedef struct {
    int concurrency;            //  Requests kept in flight
    int64_t requests;           //  Requests to complete
    int workers;                //  Echo workers
    int size;                   //  Request body size, bytes
    int timeout;                //  Deadline of each request, ms
    int credit;                 //  Requests one worker may hold at once
    bool threads;               //  One process, pieces as threads
    bool json;                  //  Print one JSON line, not the summary
    int notify;                 //  Pipe the proxy reports to main on
} s_settings_t;


//  ---------------------------------------------------------------------
//  The echo worker: announces itself, then answers each request with
//  status 200 and the body it was sent.
//
//  Workers and the proxy read in batches: once woken, each takes what is
//  already queued on a socket (up to RAW_BATCH messages, so that the other
//  socket is not starved) before it polls again. Their sockets have a zero
//  receive timeout, so zmsg_recv returns NULL once the queue is empty.
//  (Asking zsock_events() before each read instead costs two system calls
//  per message: libzmq then processes its command mailbox unthrottled.)
//  Any ZeroMQ server can read this way, the resv broker and workers too.

//  Answers one request: client-id request-id body becomes client-id
//  request-id status body. Returns false if none was waiting.
static bool
s_worker_echo (zsock_t *dealer)
{
    zmsg_t *msg = zmsg_recv (dealer);
    if (!msg)
        return false;
    if (zmsg_size (msg) != 3) {
        zsys_warning ("raw-echo: worker: dropped a %zu-frame message",
                      zmsg_size (msg));
        zmsg_destroy (&msg);
        return true;
    }
    zframe_t *body = zmsg_last (msg);
    zmsg_remove (msg, body);
    zmsg_addstr (msg, "200");
    zmsg_append (msg, &body);
    zmsg_send (&msg, dealer);
    return true;
}

static void
s_worker_actor (zsock_t *pipe, void *args)
{
    const char *backend = (const char *) args;
    zsock_t *dealer = zsock_new_dealer (backend);
    zsock_signal (pipe, 0);
    if (!dealer) {
        //  The proxy never counts this worker: main's start timeout says so.
        zsys_error ("raw-echo: worker: cannot connect to %s", backend);
        return;
    }
    zsock_set_rcvtimeo (dealer, 0);
    zstr_send (dealer, RAW_READY);
    zpoller_t *poller = zpoller_new (pipe, dealer, NULL);
    while (!zsys_interrupted) {
        void *which = zpoller_wait (poller, -1);
        if (which == pipe || !which)
            break;              //  $TERM, or interrupted
        for (int i = 0; i < RAW_BATCH && s_worker_echo (dealer); i++)
            ;
    }
    zpoller_destroy (&poller);
    zsock_destroy (&dealer);
}


//  ---------------------------------------------------------------------
//  The proxy: frontend ROUTER for clients, backend ROUTER for workers.

typedef struct {
    zframe_t *identity;         //  Routing id on the backend
    int inhand;                 //  Requests sent and not yet answered
} s_worker_t;

typedef struct {
    zsock_t *frontend;          //  Clients connect here
    zsock_t *backend;           //  Workers connect here
    s_worker_t *workers;        //  Workers that said READY
    int nworkers;               //  Entries used in workers
    int capacity;               //  Entries allocated in workers
    int credit;                 //  Requests one worker may hold
    int next;                   //  Where the next search starts (fairness)
    zlist_t *queue;             //  Requests waiting for credit (zmsg_t *)
    int notify;                 //  Pipe to main: endpoints, then READY
} s_proxy_t;

//  Writes one line to main; the pipe is small and read at once, so a
//  short or failed write only shows as main's start timeout.
static void
s_proxy_notify (s_proxy_t *self, const char *line)
{
    if (write (self->notify, line, strlen (line)) < 0)
        zsys_error ("raw-echo: proxy: write to main: %s", strerror (errno));
}

//  The worker with spare credit and the fewest requests in hand, searching
//  from the one after the last chosen so that equals take turns; NULL if
//  every worker is full.
static s_worker_t *
s_proxy_choose (s_proxy_t *self)
{
    s_worker_t *best = NULL;
    int best_index = 0;
    for (int i = 0; i < self->nworkers; i++) {
        int index = (self->next + i) % self->nworkers;
        s_worker_t *worker = &self->workers [index];
        if (worker->inhand < self->credit
        && (!best || worker->inhand < best->inhand)) {
            best = worker;
            best_index = index;
        }
    }
    if (best)
        self->next = (best_index + 1) % self->nworkers;
    return best;
}

//  Sends msg (client-id request-id body) to a worker, or queues it when
//  every worker is full.
static void
s_proxy_dispatch (s_proxy_t *self, zmsg_t *msg)
{
    s_worker_t *worker = s_proxy_choose (self);
    if (!worker) {
        zlist_append (self->queue, msg);
        return;
    }
    zframe_t *identity = zframe_dup (worker->identity);
    zmsg_prepend (msg, &identity);
    worker->inhand++;
    zmsg_send (&msg, self->backend);
}

//  Handles one message from a worker; returns false if none was waiting.
static bool
s_proxy_on_worker (s_proxy_t *self)
{
    zmsg_t *msg = zmsg_recv (self->backend);
    if (!msg)
        return false;
    zframe_t *identity = zmsg_pop (msg);
    s_worker_t *worker = NULL;
    for (int i = 0; i < self->nworkers && !worker; i++)
        if (zframe_eq (self->workers [i].identity, identity))
            worker = &self->workers [i];
    if (zmsg_size (msg) == 1) {
        //  READY: a new worker, which may take queued requests at once.
        if (!worker && self->nworkers < self->capacity) {
            worker = &self->workers [self->nworkers++];
            worker->identity = identity;
            worker->inhand = 0;
            identity = NULL;
            if (self->nworkers == self->capacity)
                s_proxy_notify (self, RAW_READY "\n");
        }
        zframe_destroy (&identity);
        zmsg_destroy (&msg);
        while (zlist_size (self->queue) && s_proxy_choose (self)) {
            zmsg_t *queued = (zmsg_t *) zlist_pop (self->queue);
            s_proxy_dispatch (self, queued);
        }
        return true;
    }
    zframe_destroy (&identity);
    if (!worker || zmsg_size (msg) != 4) {
        zsys_warning ("raw-echo: proxy: dropped a reply from an unknown "
                      "worker or with %zu frames", zmsg_size (msg));
        zmsg_destroy (&msg);
        return true;
    }
    worker->inhand--;
    //  client-id request-id status body: the frontend routes on client-id.
    zmsg_send (&msg, self->frontend);
    if (zlist_size (self->queue)) {
        zmsg_t *queued = (zmsg_t *) zlist_pop (self->queue);
        s_proxy_dispatch (self, queued);
    }
    return true;
}

//  Handles one request from a client; returns false if none was waiting.
static bool
s_proxy_on_client (s_proxy_t *self)
{
    zmsg_t *msg = zmsg_recv (self->frontend);
    if (!msg)
        return false;
    if (zmsg_size (msg) != 3) {
        zsys_warning ("raw-echo: proxy: dropped a %zu-frame request",
                      zmsg_size (msg));
        zmsg_destroy (&msg);
        return true;
    }
    s_proxy_dispatch (self, msg);
    return true;
}

//  Binds both sockets on free ports and writes "FRONTEND BACKEND\n" to
//  settings->notify, then "READY\n" once every worker said READY (or only
//  "\n" if it cannot bind). Runs until $TERM or a signal.
static void
s_proxy_actor (zsock_t *pipe, void *args)
{
    const s_settings_t *settings = (const s_settings_t *) args;
    s_proxy_t self = { 0 };
    self.frontend = zsock_new_router ("@tcp://127.0.0.1:*");
    self.backend = zsock_new_router ("@tcp://127.0.0.1:*");
    self.capacity = settings->workers;
    self.credit = settings->credit;
    self.notify = settings->notify;
    self.workers = (s_worker_t *) calloc ((size_t) self.capacity,
                                          sizeof (s_worker_t));
    self.queue = zlist_new ();
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, NULL);
    if (self.frontend && self.backend && self.workers && self.queue) {
        char line [256];
        snprintf (line, sizeof (line), "%s %s\n",
                  zsock_endpoint (self.frontend),
                  zsock_endpoint (self.backend));
        s_proxy_notify (&self, line);
        //  The backend comes first: replies free credit for requests.
        zsock_set_rcvtimeo (self.frontend, 0);
        zsock_set_rcvtimeo (self.backend, 0);
        zpoller_add (poller, self.backend);
        zpoller_add (poller, self.frontend);
    }
    else {
        zsys_error ("raw-echo: proxy: cannot bind on 127.0.0.1");
        s_proxy_notify (&self, "\n");
    }
    while (!zsys_interrupted) {
        void *which = zpoller_wait (poller, -1);
        if (which == self.backend || which == self.frontend) {
            for (int i = 0; i < RAW_BATCH && s_proxy_on_worker (&self); i++)
                ;
            for (int i = 0; i < RAW_BATCH && s_proxy_on_client (&self); i++)
                ;
        }
        else
            break;              //  $TERM on the pipe, or a signal
    }
    zpoller_destroy (&poller);
    while (self.queue && zlist_size (self.queue)) {
        zmsg_t *msg = (zmsg_t *) zlist_pop (self.queue);
        zmsg_destroy (&msg);
    }
    zlist_destroy (&self.queue);
    for (int i = 0; i < self.nworkers; i++)
        zframe_destroy (&self.workers [i].identity);
    free (self.workers);
    zsock_destroy (&self.frontend);
    zsock_destroy (&self.backend);
}


//  ---------------------------------------------------------------------
//  The client: keeps concurrency requests in flight until all are done.

typedef struct {
    zsock_t *dealer;            //  Connected to the proxy frontend
    char prefix [17];           //  Random request-id prefix, 16 hex digits
    char *body;                 //  Request body
    int size;                   //  Its length
    int64_t sent;               //  Requests sent so far (their key is +1)
} s_client_t;

static int
s_client_send (s_client_t *self, int64_t key)
{
    zmsg_t *msg = zmsg_new ();
    zmsg_addstrf (msg, "%s%" PRId64, self->prefix, key);
    zmsg_addmem (msg, self->body, (size_t) self->size);
    return zmsg_send (&msg, self->dealer);
}

//  A status frame is exactly three decimal digits; returns 0 otherwise.
static int
s_status_parse (zframe_t *frame)
{
    const byte *data = zframe_data (frame);
    if (zframe_size (frame) != 3)
        return 0;
    int status = 0;
    for (int i = 0; i < 3; i++) {
        if (data [i] < '0' || data [i] > '9')
            return 0;
        status = status * 10 + data [i] - '0';
    }
    return status;
}

//  Receives one reply, waiting up to the socket's receive timeout. Returns
//  its key and sets *status, or returns 0 on timeout or a malformed reply.
static int64_t
s_client_recv (s_client_t *self, int *status)
{
    zmsg_t *msg = zmsg_recv (self->dealer);
    if (!msg)
        return 0;
    int64_t key = 0;
    if (zmsg_size (msg) == 3) {
        zframe_t *id = zmsg_first (msg);
        zframe_t *code = zmsg_next (msg);
        char text [32];
        size_t prefix = strlen (self->prefix);
        size_t size = zframe_size (id);
        if (size > prefix && size - prefix < sizeof (text)
        &&  memcmp (zframe_data (id), self->prefix, prefix) == 0) {
            memcpy (text, zframe_data (id) + prefix, size - prefix);
            text [size - prefix] = 0;
            key = strtoll (text, NULL, 10);
        }
        *status = s_status_parse (code);
    }
    zmsg_destroy (&msg);
    return key;
}

static int
s_client_run (s_client_t *self, const s_settings_t *settings,
              bench_report_t *report)
{
    bench_inflight_t *inflight = bench_inflight_new (settings->concurrency);
    if (!inflight)
        return -1;
    int64_t done = 0;
    int64_t limit = (int64_t) (settings->timeout + RAW_EXPIRY_SLACK) * 1000;
    int64_t start = zclock_usecs ();
    int64_t next_expiry = start + RAW_EXPIRY_TICK * 1000;
    while (done < settings->requests && !zsys_interrupted) {
        while (self->sent < settings->requests
           &&  bench_inflight_count (inflight) < (size_t) settings->concurrency) {
            int64_t key = ++self->sent;
            int64_t now = zclock_usecs ();
            if (s_client_send (self, key) == 0)
                bench_inflight_put (inflight, key, key, now);
            else {
                bench_report_add (report, RAW_STATUS_TIMEOUT, 0);
                done++;
            }
        }
        int status = 0;
        int64_t key = s_client_recv (self, &status);
        int64_t now = zclock_usecs ();
        int64_t started = key? bench_inflight_take (inflight, key, NULL): -1;
        if (started >= 0) {
            bench_report_add (report, status, now - started);
            done++;
            bench_report_set_elapsed (report, now - start);
        }
        if (now >= next_expiry) {
            size_t expired = bench_inflight_expire (inflight, now - limit);
            for (size_t i = 0; i < expired; i++)
                bench_report_add (report, RAW_STATUS_TIMEOUT, 0);
            done += (int64_t) expired;
            if (expired)
                bench_report_set_elapsed (report, now - start);
            next_expiry = now + RAW_EXPIRY_TICK * 1000;
        }
    }
    //  An interrupted run counts what never came back as failed.
    for (int64_t i = done; i < settings->requests; i++)
        bench_report_add (report, RAW_STATUS_TIMEOUT, 0);
    bench_inflight_destroy (&inflight);
    return 0;
}


//  ---------------------------------------------------------------------
//  The command line.

static void
s_usage (FILE *stream)
{
    fprintf (stream,
        "usage: raw-echo [-c CONCURRENCY] [-n REQUESTS] [-w WORKERS]\n"
        "                [--size BYTES] [-t TIMEOUT_MS] [--credit N]\n"
        "                [--threads] [--json]\n"
        "\n"
        "The baseline of resv-bench: a plain CZMQ client -> proxy -> echo\n"
        "workers over tcp://127.0.0.1, with no resv code. Keeps CONCURRENCY\n"
        "requests in flight until REQUESTS are answered, then prints the\n"
        "summary resv-bench prints (latencies of successful requests).\n"
        "\n"
        "  -c CONCURRENCY  requests in flight (default 16, max %d)\n"
        "  -n REQUESTS     requests to complete (default 10000)\n"
        "  -w WORKERS      echo workers (default 1, max %d)\n"
        "  --size BYTES    request body size, a padded JSON object\n"
        "                  (default 128; 0, or 2 to %d)\n"
        "  -t TIMEOUT_MS   deadline of each request (default 5000)\n"
        "  --credit N      requests one worker may hold (default 16, as\n"
        "                  resv's workers/credit)\n"
        "  --threads       run the proxy and workers as threads of this\n"
        "                  process, sharing its ZeroMQ context (default:\n"
        "                  a process each, as resv's programs are)\n"
        "  --json          print one JSON line instead of the summary\n"
        "\n"
        "Exit status: 0 all requests succeeded, 1 some failed, 2 usage.\n",
        RAW_CONCURRENCY_MAX, RAW_WORKERS_MAX, RAW_SIZE_MAX);
}

static int
s_parse_args (int argc, char *argv [], s_settings_t *settings)
{
    for (int i = 1; i < argc; i++) {
        const char *name = argv [i];
        if (streq (name, "--help") || streq (name, "-h")) {
            s_usage (stdout);
            exit (0);
        }
        if (streq (name, "--json")) {
            settings->json = true;
            continue;
        }
        if (streq (name, "--threads")) {
            settings->threads = true;
            continue;
        }
        const char *text = i + 1 < argc? argv [i + 1]: NULL;
        int64_t value;
        int rc = -1;
        if (streq (name, "-c")) {
            rc = resv_parse_int (text, 1, RAW_CONCURRENCY_MAX, &value);
            settings->concurrency = (int) value;
        }
        else
        if (streq (name, "-n")) {
            rc = resv_parse_int (text, 1, RAW_REQUESTS_MAX, &value);
            settings->requests = value;
        }
        else
        if (streq (name, "-w")) {
            rc = resv_parse_int (text, 1, RAW_WORKERS_MAX, &value);
            settings->workers = (int) value;
        }
        else
        if (streq (name, "--size")) {
            rc = resv_parse_int (text, 0, RAW_SIZE_MAX, &value);
            if (rc == 0 && value == 1)
                rc = -1;
            settings->size = (int) value;
        }
        else
        if (streq (name, "-t")) {
            rc = resv_parse_int (text, 1, 3600000, &value);
            settings->timeout = (int) value;
        }
        else
        if (streq (name, "--credit")) {
            rc = resv_parse_int (text, 1, RAW_CREDIT_MAX, &value);
            settings->credit = (int) value;
        }
        else {
            fprintf (stderr, "raw-echo: unknown option '%s'\n", name);
            return -1;
        }
        if (rc) {
            fprintf (stderr, "raw-echo: %s: bad or missing value '%s'\n",
                     name, text? text: "");
            return -1;
        }
        i++;
    }
    return 0;
}

//  Reads one line from fd into buf, without its newline, waiting at most
//  until deadline (zclock_mono). Returns 0, or -1 on timeout, end of file
//  or a line too long for buf.
static int
s_read_line (int fd, char *buf, size_t size, int64_t deadline)
{
    size_t used = 0;
    while (used + 1 < size) {
        int64_t left = deadline - zclock_mono ();
        struct pollfd item = { fd, POLLIN, 0 };
        if (left <= 0 || poll (&item, 1, (int) left) <= 0)
            return -1;
        if (read (fd, buf + used, 1) != 1)
            return -1;
        if (buf [used] == '\n') {
            buf [used] = 0;
            return 0;
        }
        used++;
    }
    return -1;
}


//  ---------------------------------------------------------------------
//  The pieces (the proxy, each worker) are actors. By default each runs in
//  a process of its own, forked before this process touches ZeroMQ, so
//  that each has its own ZeroMQ context and I/O thread, as resv's broker,
//  workers and client do. With --threads they are threads of this process
//  and share its context: fewer wakeups per hop, which resv, being several
//  programs, cannot have.

typedef struct {
    zactor_t *actor;            //  The piece, when it is a thread
    pid_t pid;                  //  Its process, when it is one
} s_piece_t;

static int
s_piece_start (s_piece_t *self, bool threads, zactor_fn *actor, void *args)
{
    if (threads) {
        self->actor = zactor_new (actor, args);
        return self->actor? 0: -1;
    }
    pid_t parent = getpid ();
    fflush (NULL);
    self->pid = fork ();
    if (self->pid == -1) {
        fprintf (stderr, "raw-echo: fork: %s\n", strerror (errno));
        return -1;
    }
    if (self->pid == 0) {
        //  The child ends on SIGTERM, or when its parent ends however it
        //  ends, so that nothing outlives a run.
        prctl (PR_SET_PDEATHSIG, SIGTERM);
        if (getppid () != parent)
            _exit (0);
        zactor_t *piece = zactor_new (actor, args);
        zpoller_t *poller = zpoller_new (piece, NULL);
        //  Nothing comes on the actor pipe unless the actor ends: this
        //  waits for SIGTERM, which interrupts the poll.
        zpoller_wait (poller, -1);
        zpoller_destroy (&poller);
        zactor_destroy (&piece);
        exit (0);
    }
    return 0;
}

//  Stops the piece: $TERM to a thread, SIGTERM to a process (SIGKILL if it
//  takes longer than RAW_STOP_TIMEOUT), and waits for it.
static void
s_piece_stop (s_piece_t *self)
{
    zactor_destroy (&self->actor);
    if (self->pid <= 0)
        return;
    kill (self->pid, SIGTERM);
    int64_t deadline = zclock_mono () + RAW_STOP_TIMEOUT;
    while (waitpid (self->pid, NULL, WNOHANG) == 0) {
        if (zclock_mono () >= deadline) {
            kill (self->pid, SIGKILL);
            waitpid (self->pid, NULL, 0);
            break;
        }
        zclock_sleep (10);
    }
    self->pid = 0;
}

//  Splits "FRONTEND BACKEND" into two buffers of size bytes each; returns
//  0, or -1 if the line is not two endpoints that fit.
static int
s_split_endpoints (const char *line, char *frontend, char *backend,
                   size_t size)
{
    const char *space = strchr (line, ' ');
    if (!space || space == line || !space [1]
    ||  (size_t) (space - line) >= size || strlen (space + 1) >= size)
        return -1;
    memcpy (frontend, line, (size_t) (space - line));
    frontend [space - line] = 0;
    strcpy (backend, space + 1);
    return 0;
}

//  Starts the proxy and the workers and waits until the proxy counts every
//  worker. Fills frontend and backend (size bytes each); returns 0, or -1
//  after a message.
static int
s_start (s_settings_t *settings, s_piece_t *proxy, s_piece_t *workers,
         char *frontend, char *backend, size_t size)
{
    int fds [2];
    if (pipe (fds)) {
        fprintf (stderr, "raw-echo: pipe: %s\n", strerror (errno));
        return -1;
    }
    settings->notify = fds [1];
    int64_t deadline = zclock_mono () + RAW_START_TIMEOUT;
    char line [512];
    bool up = s_piece_start (proxy, settings->threads, s_proxy_actor,
                             settings) == 0
           && s_read_line (fds [0], line, sizeof (line), deadline) == 0
           && s_split_endpoints (line, frontend, backend, size) == 0;
    for (int i = 0; up && i < settings->workers; i++)
        up = s_piece_start (&workers [i], settings->threads, s_worker_actor,
                            backend) == 0;
    up = up && s_read_line (fds [0], line, sizeof (line), deadline) == 0
            && streq (line, RAW_READY);
    close (fds [0]);
    close (fds [1]);
    if (!up)
        fprintf (stderr, "raw-echo: the proxy and %d workers did not come "
                 "up within %d ms\n", settings->workers, RAW_START_TIMEOUT);
    return up? 0: -1;
}

int
main (int argc, char *argv [])
{
    s_settings_t settings = {
        .concurrency = 16, .requests = 10000, .workers = 1, .size = 128,
        .timeout = 5000, .credit = 16, .threads = false, .json = false,
        .notify = -1
    };
    if (s_parse_args (argc, argv, &settings)) {
        s_usage (stderr);
        return 2;
    }
    if (settings.concurrency > settings.requests)
        settings.concurrency = (int) settings.requests;

    s_piece_t proxy = { 0 };
    s_piece_t workers [RAW_WORKERS_MAX];
    memset (workers, 0, sizeof (workers));
    char frontend [256] = "", backend [256] = "";
    s_client_t client = { 0 };
    bench_report_t *report = NULL;
    int rc = 1;
    if (s_start (&settings, &proxy, workers, frontend, backend,
                 sizeof (frontend)))
        ;                       //  s_start said why
    else
    if (!(client.body = bench_body_new (settings.size))
    ||  !(report = bench_report_new (settings.requests)))
        fprintf (stderr, "raw-echo: out of memory\n");
    else
    if (!(client.dealer = zsock_new_dealer (frontend)))
        fprintf (stderr, "raw-echo: cannot connect to %s\n", frontend);
    else {
        client.size = settings.size;
        snprintf (client.prefix, sizeof (client.prefix), "%08x%08x",
                  (unsigned) randof (0x7fffffff),
                  (unsigned) randof (0x7fffffff));
        //  One warm-up round trip, not counted, so that the run measures
        //  the steady state and not the TCP connect.
        zsock_set_rcvtimeo (client.dealer, settings.timeout);
        int status = 0;
        s_client_send (&client, INT64_MAX);
        s_client_recv (&client, &status);
        zsock_set_rcvtimeo (client.dealer, RAW_EXPIRY_TICK);
        if (s_client_run (&client, &settings, report) == 0) {
            char title [256], fields [256];
            snprintf (title, sizeof (title),
                      "raw-echo: %d worker%s (%s), %d in flight, "
                      "%d-byte bodies", settings.workers,
                      settings.workers > 1? "s": "",
                      settings.threads? "threads": "processes",
                      settings.concurrency, settings.size);
            snprintf (fields, sizeof (fields),
                      "\"tool\":\"raw-echo\",\"workers\":%d,"
                      "\"pieces\":\"%s\",\"concurrency\":%d,"
                      "\"requests\":%" PRId64 ",\"size\":%d,"
                      "\"timeout_ms\":%d", settings.workers,
                      settings.threads? "threads": "processes",
                      settings.concurrency, settings.requests, settings.size,
                      settings.timeout);
            bench_report_print (report, settings.json, title, fields, NULL);
            rc = bench_report_ok (report) == settings.requests? 0: 1;
        }
    }
    zsock_destroy (&client.dealer);
    free (client.body);
    bench_report_destroy (&report);
    for (int i = 0; i < settings.workers; i++)
        s_piece_stop (&workers [i]);
    s_piece_stop (&proxy);
    return rc;
}
