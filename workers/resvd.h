/*  resvd.h: the resv supervisor.

    A resvd_t runs the broker (bin/resv-broker) and workers/NAME/count
    processes of each service of svc.h (bin/resv-worker NAME), both found
    beside the running executable. It restarts any process that exits, after
    a delay that starts at resvd/restart_min ms and doubles on each quick
    exit up to resvd/restart_max, back to the minimum once a process of the
    group ran resvd/restart_reset ms. Children get SIGTERM when resvd dies
    (PR_SET_PDEATHSIG), so that none is ever left behind. Each runs in a
    process group of its own, with stdin from /dev/null and resvd's stdout
    and stderr: a terminal's Ctrl-C reaches resvd alone, which then stops
    them in order.

    resvd is itself a worker of service "resvd" (doc/protocol.md, section
    6). Methods:
      scale   {"service":"NAME","count":N}, N from 0 to RESVD_COUNT_MAX:
              starts processes, or stops the newest ones (SIGTERM), so that
              N run; answers {"service":"NAME","count":N,"previous":N}.
              404 for a service it does not run, 400 for a bad body, 503
              stopping once resvd is stopping.
      status  {"children":[{"service":S,"pid":N,"uptime_ms":N,
              "stopping":B},...]}, the broker first.

    On SIGTERM or SIGINT (zsys_interrupted) it stops its own worker, then
    the processes in waves, each wave once the one before has exited: the
    services that call others synchronously, deepest first (svc_t depth:
    approval, then reservation), then the other workers, then the broker.
    So a call in flight finds its callee still there, and every process
    finishes its work (spec 4.8). A process that has not exited
    resvd/stop_timeout ms after its SIGTERM is killed; everything is
    reaped.
*/
#ifndef RESVD_H_INCLUDED
#define RESVD_H_INCLUDED

#include "worker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _resvd_t resvd_t;

//  Most processes of one service that resvd runs.
#define RESVD_COUNT_MAX RESV_SCALE_MAX

//  Creates a supervisor configured from cfg (borrowed; it must outlive the
//  supervisor). The text cfg was loaded from is kept in memory, and every
//  child reads it (-c /dev/fd/3), so that all of them run on the
//  configuration resvd started with, whatever happens to the file later;
//  verbose passes -v on. Starts no process yet. Returns NULL, after a log
//  line, if a program is missing or not executable, a count is out of
//  range, the data directory is another resvd's or cannot be written,
//  an endpoint is already listened on, or its worker cannot be made.
resvd_t *
    resvd_new (resv_cfg_t *cfg, bool verbose);

//  Kills (SIGKILL) and reaps any child still running, frees the supervisor
//  and nulls the pointer. NULL-safe and idempotent.
void
    resvd_destroy (resvd_t **self_p);

//  Starts the broker and the workers and supervises them until
//  zsys_interrupted is set, then stops them all as described above.
//  Returns 0 once every child is reaped; 1 when it stopped because a
//  process refused its configuration (exit RESV_CFG_EXIT).
int
    resvd_run (resvd_t *self);

#ifdef __cplusplus
}
#endif

#endif
