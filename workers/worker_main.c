/*  worker_main.c: resv-worker, one worker process of one service.  */

#include "svc.h"
#include "resv_util.h"
#include <malloc.h>
#include <unistd.h>

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: resv-worker [-c CONFIG] [-v] SERVICE\n"
        "\n"
        "Runs one worker of SERVICE: it connects to the broker at\n"
        "broker/backend and serves requests until SIGTERM or SIGINT, then\n"
        "finishes the requests in hand, sends its outbox and exits 0. It\n"
        "waits for a broker that does not answer a quarter of\n"
        "resvd/stop_timeout at most for the requests, and as long again\n"
        "for the outbox, whose unsent events go at the next start; for\n"
        "one that answers, half of resvd/stop_timeout at most for the\n"
        "requests. Logs go to stderr.\n"
        "\n"
        "  -c CONFIG   configuration file (default " RESV_CFG_DEFAULT_PATH ")\n"
        "  -v          verbose: log every request, its status and duration\n"
        "  -h, --help  this help\n"
        "\n"
        "Services:");
    const svc_t *svc;
    for (size_t i = 0; (svc = svc_at (i)); i++)
        fprintf (out, " %s", svc->name);
    fprintf (out, "\n");
}

//  With -v, every request goes through this handler, which logs it.
typedef struct {
    const svc_t *svc;           //  The service
    void *state;                //  Its state
} s_verbose_t;

static int
s_verbose_handler (void *state, const char *method, zframe_t **body_p,
                   int64_t deadline, zframe_t **reply_p)
{
    s_verbose_t *verbose = (s_verbose_t *) state;
    int64_t start = zclock_usecs ();
    size_t size = zframe_size (*body_p);
    int status = verbose->svc->handler (verbose->state, method, body_p,
                                        deadline, reply_p);
    zsys_debug ("%s %s: %zu bytes, status %d, %lld us", verbose->svc->name,
                method, size, status, (long long) (zclock_usecs () - start));
    return status;
}

int
main (int argc, char *argv [])
{
    const char *config = NULL;
    const char *name = NULL;
    bool verbose = false;
    int code = resv_daemon_args (argc, argv, "resv-worker", s_usage, &config,
                                 &verbose, &name);
    if (code >= 0)
        return code;
    const svc_t *svc = svc_lookup (name);
    if (!svc) {
        if (name)
            fprintf (stderr, "resv-worker: unknown service '%s'\n\n", name);
        else
            fprintf (stderr, "resv-worker: a SERVICE is required\n\n");
        s_usage (stderr);
        return 2;
    }
    //  SQLite drops a connection's page cache whenever another connection
    //  has written, and a store has several; glibc would hand the freed
    //  pages back to the kernel each time (heap trim: brk or madvise, and a
    //  TLB shootdown across this process's threads) only to fault them in
    //  again at the next transaction. Keep freed memory in the heap.
    mallopt (M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    //  Catch SIGTERM and SIGINT (zsys_interrupted) before anything else,
    //  then take a stop that resvd sent while we started (it starts us
    //  with them blocked). A closed log pipe or a file size limit fails
    //  writes, not the process.
    zsys_init ();
    resv_daemon_signals ();
    resv_daemon_files ();
    zsys_set_logstream (stderr);
    char ident [64];
    snprintf (ident, sizeof ident, "resv-worker %s %d", svc->name,
              (int) getpid ());
    zsys_set_logident (ident);

    resv_cfg_t *cfg = resv_cfg_load (config);
    if (!cfg)
        return 1;
    worker_t *worker = worker_new (cfg, svc->name, svc->credit);
    void *state = NULL;
    if (worker && svc->state_new) {
        state = svc->state_new (cfg, worker);
        if (!state)
            worker_destroy (&worker);
    }
    if (!worker) {
        resv_cfg_destroy (&cfg);
        return 1;
    }
    if (resv_cfg_refused (cfg, svc->name)) {
        if (svc->state_destroy)
            svc->state_destroy (&state);
        worker_destroy (&worker);
        resv_cfg_destroy (&cfg);
        return RESV_CFG_EXIT;
    }
    zsys_info ("serving %s", svc->name);
    s_verbose_t wrapped = { svc, state };
    if (verbose)
        worker_run (worker, s_verbose_handler, &wrapped);
    else
        worker_run (worker, svc->handler, state);
    zsys_info ("stopped");
    if (svc->state_destroy)
        svc->state_destroy (&state);
    worker_destroy (&worker);
    resv_cfg_destroy (&cfg);
    return 0;
}
