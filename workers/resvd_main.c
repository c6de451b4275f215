/*  resvd_main.c: resvd, the supervisor as a program.  */

#include "resvd.h"
#include "resv_util.h"

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: resvd [-c CONFIG] [-v]\n"
        "\n"
        "Runs resv in the foreground: starts resv-broker and\n"
        "workers/SERVICE/count resv-worker processes of each service (both\n"
        "found beside resvd), restarts any that exits, and answers\n"
        "'resv scale SERVICE N'. SIGTERM or SIGINT stops the workers, then\n"
        "the broker, and exits 0. Logs, its own and its children's, go to\n"
        "stderr.\n"
        "\n"
        "Every process it runs reads the configuration file as it was\n"
        "when resvd started, from a copy in memory (-c /dev/fd/3): an edit\n"
        "of the file takes effect, for all of them at once, when resvd is\n"
        "started again.\n"
        "\n"
        "It exits 1 at start when another resvd runs on the same data\n"
        "directory, when something already listens on its frontend,\n"
        "backend or events endpoint, or when a configuration value is\n"
        "bad; and, having stopped everything, when one of the processes\n"
        "it started with refuses its configuration (exit 78) rather than\n"
        "restart it (one started later, by 'resv scale', is not started\n"
        "again and the rest runs on), or when one did not stop cleanly\n"
        "(killed past resvd/stop_timeout, or ended by a signal or a\n"
        "non-zero status on its way out; the log names it).\n"
        "\n"
        "  -c CONFIG   configuration file (default "
        RESV_CFG_DEFAULT_PATH ")\n"
        "  -v          verbose: passed on to every process\n"
        "  -h, --help  this help\n"
        "\n"
        "Every key can be overridden by its environment variable, such as\n"
        "RESV_WORKERS_ECHO_COUNT for workers/echo/count.\n");
}

int
main (int argc, char *argv [])
{
    const char *config = NULL;
    bool verbose = false;
    int code = resv_daemon_args (argc, argv, "resvd", s_usage, &config,
                                 &verbose, NULL);
    if (code >= 0)
        return code;
    //  Catch SIGTERM and SIGINT (zsys_interrupted) before anything else. A
    //  closed log pipe fails the log's writes, not the process.
    zsys_init ();
    resv_daemon_signals ();
    resv_daemon_files ();
    zsys_set_logstream (stderr);
    zsys_set_logident ("resvd");
    resv_cfg_t *cfg = resv_cfg_load (config);
    if (!cfg)
        return 1;
    resvd_t *resvd = resvd_new (cfg, verbose);
    if (resvd && resv_cfg_refused (cfg, "resvd"))
        resvd_destroy (&resvd);
    if (!resvd) {
        resv_cfg_destroy (&cfg);
        return 1;
    }
    int rc = resvd_run (resvd);
    resvd_destroy (&resvd);
    resv_cfg_destroy (&cfg);
    return rc;
}
