/*  broker_main.c: resv-broker, the broker as a program.  */

#include "broker.h"
#include "resv_util.h"
#include <malloc.h>

//  How long (ms) the broker keeps its connections once every request in
//  flight at a stop is answered, for clients to read those answers.
#define S_STOP_LINGER       300
#define S_TEXT(number)      S_TEXT_OF (number)
#define S_TEXT_OF(number)   #number

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: resv-broker [-c CONFIG] [-v]\n"
        "\n"
        "Runs the resv broker in the foreground: clients connect to\n"
        "broker/frontend, workers to broker/backend. Logs go to stderr.\n"
        "SIGTERM or SIGINT stops it gracefully: new requests get 503, those\n"
        "in flight are answered (with the workers' calls they make), then it\n"
        "exits 0, " S_TEXT (S_STOP_LINGER) " ms later (for clients to read "
        "those answers). Workers'\n"
        "calls made once those are answered get 503 too.\n"
        "\n"
        "  -c CONFIG   configuration file (default " RESV_CFG_DEFAULT_PATH ")\n"
        "  -v          accepted, as resvd passes it on; the broker logs\n"
        "              every worker event (ready, stopped, expired) without it\n"
        "  -h, --help  this help\n"
        "\n"
        "Every key can be overridden by its environment variable, such as\n"
        "RESV_BROKER_FRONTEND for broker/frontend.\n");
}

int
main (int argc, char *argv [])
{
    const char *config = NULL;
    bool verbose = false;       //  Worker events are logged in any case
    int code = resv_daemon_args (argc, argv, "resv-broker", s_usage, &config,
                                 &verbose, NULL);
    if (code >= 0)
        return code;
    //  As in resv-worker: the journal's SQLite page cache is dropped and
    //  refilled often; keep freed memory in the heap rather than trim it
    //  (brk or madvise, and a TLB shootdown) and fault it back in.
    mallopt (M_TRIM_THRESHOLD, 64 * 1024 * 1024);
    //  Catch SIGTERM and SIGINT (zsys_interrupted), then take a stop that
    //  came while we started. A closed log pipe or a file size limit fails
    //  writes, not the process.
    zsys_init ();
    resv_daemon_signals ();
    resv_daemon_files ();
    zsys_set_logstream (stderr);
    zsys_set_logident ("resv-broker");
    resv_cfg_t *cfg = resv_cfg_load (config);
    if (!cfg)
        return 1;
    zactor_t *broker = broker_new (cfg);
    if (!broker) {
        //  Its line above says why; a bad configuration would fail again.
        int status = resv_cfg_bad (cfg)? RESV_CFG_EXIT: 1;
        resv_cfg_destroy (&cfg);
        return status;
    }
    if (resv_cfg_refused (cfg, "broker")) {
        zactor_destroy (&broker);
        resv_cfg_destroy (&cfg);
        return RESV_CFG_EXIT;
    }
    //  Wait for SIGTERM or SIGINT, then stop gracefully: the actor signals
    //  once every request in flight has its answer.
    zpoller_t *poller = zpoller_new (broker, NULL);
    //  The poller must keep waiting after the signal, for the actor's
    //  word that every request in flight has its answer.
    zpoller_set_nonstop (poller, true);
    while (!zsys_interrupted)
        zpoller_wait (poller, 500);
    zsys_info ("broker: signal received, stopping");
    zstr_send (broker, "STOP");
    while (!zpoller_wait (poller, 100))
        ;
    zsock_wait (broker);
    //  The last replies leave at once, but the connections' close would
    //  follow right behind them; a client whose socket drops a connection's
    //  unread messages when it goes (libresv's: ZMQ_IMMEDIATE) lost the
    //  reply it had all but read. The actor goes on meanwhile: a request
    //  that comes now is refused as during the stop.
    zclock_sleep (S_STOP_LINGER);
    zpoller_destroy (&poller);
    zactor_destroy (&broker);
    resv_cfg_destroy (&cfg);
    return 0;
}
