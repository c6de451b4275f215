/*  resvd.c: the resv supervisor: runs, restarts and scales the processes.  */

#define _GNU_SOURCE             //  memfd_create
#include "resvd.h"
#include "svc.h"
#include "fields.h"
#include "db.h"
#include "resv_util.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <netdb.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

//  Where every child finds the configuration resvd started with: the file
//  descriptor it gets it on, and that descriptor as a path for -c.
#define S_CONFIG_FD         3
#define S_CONFIG_PATH       "/dev/fd/3"

//  How often the loop looks at its children when nothing else wakes it.
#define S_TICK              100

//  One process.
typedef struct {
    pid_t pid;                  //  Its process id
    int64_t started;            //  When it was started, on zclock_mono()
    bool stopping;              //  We sent it SIGTERM: do not restart it
    int64_t kill_at;            //  When stopping: SIGKILL after this
    bool first;                 //  Started with resvd, not later
} s_child_t;

//  The processes of one program: the broker, or the workers of a service.
typedef struct {
    const char *name;           //  "broker" or the service name
    const char *service;        //  Argument of resv-worker; NULL for broker
    int wave;                   //  When it stops, highest first: 1 + its
                                //  svc_t depth; the broker's, 0, last
    int want;                   //  Processes that should run
    zlistx_t *children;         //  s_child_t *, oldest first
    int64_t start_at;           //  Restart backoff: start none before this
    int backoff;                //  Delay before the next restart, ms
} s_group_t;

struct _resvd_t {
    char broker_path [PATH_MAX];    //  bin/resv-broker beside us
    char worker_path [PATH_MAX];    //  bin/resv-worker beside us
    int config;                 //  The configuration resvd started with,
                                //  in memory (memfd), that each child
                                //  reads as S_CONFIG_PATH; -1 if none
    bool verbose;               //  Pass -v to children
    int restart_min;            //  resvd/restart_min, ms
    int restart_max;            //  resvd/restart_max, ms
    int restart_reset;          //  resvd/restart_reset, ms
    int stop_timeout;           //  resvd/stop_timeout, ms
    s_group_t *groups;          //  The broker first, then each service
    size_t ngroups;             //  Entries in groups
    int waves;                  //  The highest wave of a group
    worker_t *worker;           //  Our own worker, service "resvd"
    bool stopping;              //  Shutting down: restart nothing
    int lock;                   //  DATA_DIR/resvd.lock, held; -1 if none
    bool refused;               //  A process refused its configuration
    bool started;               //  The first processes have been started
    int unclean;                //  Processes whose stop was not an exit 0
};


static int
    s_handler (void *state, const char *method, zframe_t **body_p,
               int64_t deadline, zframe_t **reply_p);


//  --------------------------------------------------------------------------
//  Processes

static s_group_t *
s_group (resvd_t *self, const char *name)
{
    for (size_t i = 0; name && i < self->ngroups; i++)
        if (streq (self->groups [i].name, name))
            return &self->groups [i];
    return NULL;
}

//  Live processes of a group that are not being stopped.
static int
s_running (s_group_t *group)
{
    int count = 0;
    s_child_t *child = (s_child_t *) zlistx_first (group->children);
    for (; child; child = (s_child_t *) zlistx_next (group->children))
        count += !child->stopping;
    return count;
}

//  In the child, between fork and exec: only async-signal-safe calls.
static void
s_exec (const char *path, char *const argv [], pid_t parent, int config,
        const char *failure)
{
    //  Our own process group: a terminal's Ctrl-C reaches resvd alone,
    //  which then stops the workers before the broker.
    setpgid (0, 0);
    //  Die with resvd, even when it is killed with SIGKILL. If it died
    //  already, the request came too late: stop now.
    prctl (PR_SET_PDEATHSIG, SIGTERM);
    if (getppid () != parent)
        _exit (1);
    //  SIGTERM and SIGINT stay blocked through the exec, until the
    //  program catches them (resv_daemon_signals): a stop that comes
    //  before then waits for it, rather than end it (the default action)
    //  or be lost (our handler, in this copy of resvd). Every other
    //  signal is as it would be.
    sigset_t stop;
    sigemptyset (&stop);
    sigaddset (&stop, SIGTERM);
    sigaddset (&stop, SIGINT);
    sigprocmask (SIG_SETMASK, &stop, NULL);
    //  The configuration at S_CONFIG_FD, kept through the exec (dup2 clears
    //  close-on-exec on the copy), first: it is above S_CONFIG_FD
    //  (s_snapshot), and so left alone by what follows.
    dup2 (config, S_CONFIG_FD);
    int null = open ("/dev/null", O_RDONLY);
    if (null > 2) {
        dup2 (null, 0);
        close (null);
    }
    //  Keep stdin, stdout and stderr, and it; nothing of resvd's sockets.
#ifdef SYS_close_range
    if (syscall (SYS_close_range, S_CONFIG_FD + 1, ~0U, 0) == -1)
#endif
        for (int fd = S_CONFIG_FD + 1; fd < 1024; fd++)
            close (fd);
    execv (path, argv);
    ssize_t written = write (2, failure, strlen (failure));
    (void) written;
    _exit (127);
}

//  Starts one process of group. Returns 0, or -1 if fork failed.
static int
s_start (resvd_t *self, s_group_t *group, int64_t now)
{
    //  Everything the child needs is built before fork: after it, a
    //  multithreaded process may not allocate.
    const char *path = group->service? self->worker_path: self->broker_path;
    char *argv [8];
    int argc = 0;
    argv [argc++] = (char *) path;
    argv [argc++] = (char *) "-c";
    argv [argc++] = (char *) S_CONFIG_PATH;
    if (self->verbose)
        argv [argc++] = (char *) "-v";
    if (group->service)
        argv [argc++] = (char *) group->service;
    argv [argc] = NULL;
    char failure [PATH_MAX + 32];
    snprintf (failure, sizeof failure, "resvd: cannot execute %s\n", path);
    s_child_t *child = (s_child_t *) zmalloc (sizeof (s_child_t));
    if (!child)
        return -1;
    //  The child starts with SIGTERM and SIGINT blocked (s_exec); ours
    //  wait meanwhile, and come once fork is done.
    sigset_t stop, mask;
    sigemptyset (&stop);
    sigaddset (&stop, SIGTERM);
    sigaddset (&stop, SIGINT);
    pthread_sigmask (SIG_BLOCK, &stop, &mask);
    pid_t parent = getpid ();
    pid_t pid = fork ();
    if (pid == 0)
        s_exec (path, argv, parent, self->config, failure);
    pthread_sigmask (SIG_SETMASK, &mask, NULL);
    if (pid == -1) {
        zsys_error ("resvd: fork for %s: %s", group->name, strerror (errno));
        free (child);
        return -1;
    }
    child->pid = pid;
    child->started = now;
    child->first = !self->started;
    zlistx_add_end (group->children, child);
    zsys_info ("resvd: started %s, pid %d", group->name, (int) pid);
    return 0;
}

//  Sends SIGTERM to a child, which then has stop_timeout ms to exit.
static void
s_stop_child (resvd_t *self, s_group_t *group, s_child_t *child, int64_t now)
{
    if (child->stopping)
        return;
    zsys_info ("resvd: stopping %s, pid %d", group->name, (int) child->pid);
    kill (child->pid, SIGTERM);
    child->stopping = true;
    child->kill_at = now + self->stop_timeout;
}

static size_t
    s_children (resvd_t *self, int wave);

//  Brings each group to its count: starts what is missing (unless a
//  restart backoff holds it back), stops the newest surplus processes, and
//  kills those that take too long to stop. While resvd stops, it starts
//  no worker, but still the broker, until its own wave, if it died while
//  workers are left: they need it to stop (to hear its BYE, to finish what
//  they hold and flush their outboxes), and without it each waited out
//  stop_timeout and was killed.
static void
s_reconcile (resvd_t *self, int64_t now)
{
    for (size_t i = 0; i < self->ngroups; i++) {
        s_group_t *group = &self->groups [i];
        int running = s_running (group);
        bool starts = !self->stopping
                   || (!group->service && !self->refused
                       && s_children (self, 1));
        if (starts && now >= group->start_at)
            for (; running < group->want; running++)
                if (s_start (self, group, now) == -1) {
                    group->start_at = now + self->restart_min;
                    break;
                }
        s_child_t *child = (s_child_t *) zlistx_last (group->children);
        for (; child && running > group->want;
             child = (s_child_t *) zlistx_prev (group->children))
            if (!child->stopping) {
                s_stop_child (self, group, child, now);
                running--;
            }
        child = (s_child_t *) zlistx_first (group->children);
        for (; child; child = (s_child_t *) zlistx_next (group->children))
            if (child->stopping && child->kill_at && now >= child->kill_at) {
                zsys_warning ("resvd: %s, pid %d, did not stop in %d ms; "
                              "killing it", group->name, (int) child->pid,
                              self->stop_timeout);
                kill (child->pid, SIGKILL);
                child->kill_at = 0;
            }
    }
}

//  Describes how a process ended, for the log.
static void
s_describe (int status, char *text, size_t size)
{
    if (WIFEXITED (status))
        snprintf (text, size, "exited with status %d", WEXITSTATUS (status));
    else
    if (WIFSIGNALED (status))
        snprintf (text, size, "was killed by signal %d (%s)",
                  WTERMSIG (status), strsignal (WTERMSIG (status)));
    else
        snprintf (text, size, "ended (wait status %d)", status);
}

//  Takes note of one ended process: forgets it and, unless we stopped it,
//  schedules its replacement after the group's backoff.
static void
s_ended (resvd_t *self, pid_t pid, int status, int64_t now)
{
    char how [96];
    s_describe (status, how, sizeof how);
    for (size_t i = 0; i < self->ngroups; i++) {
        s_group_t *group = &self->groups [i];
        int running = s_running (group);    //  Before the walk: it moves
                                            //  the list's cursor
        s_child_t *child = (s_child_t *) zlistx_first (group->children);
        for (; child; child = (s_child_t *) zlistx_next (group->children)) {
            if (child->pid != pid)
                continue;
            int64_t ran = now - child->started;
            if (self->stopping && (child->stopping || group->service)
            &&  !(WIFEXITED (status) && WEXITSTATUS (status) == 0)) {
                //  Killed past stop_timeout, or crashed on its way out:
                //  what it held may not be finished, so resvd says so in
                //  its exit status too.
                self->unclean++;
                zsys_warning ("resvd: %s, pid %d, %s after %lld ms; "
                              "did not stop cleanly", group->name, (int) pid,
                              how, (long long) ran);
            }
            else
            if (child->stopping || (self->stopping && group->service))
                zsys_info ("resvd: %s, pid %d, %s after %lld ms; stopped",
                           group->name, (int) pid, how, (long long) ran);
            else
            if (WIFEXITED (status) && WEXITSTATUS (status) == RESV_CFG_EXIT
            &&  child->first) {
                //  Its configuration is bad, and would be at every start.
                zsys_error ("resvd: %s, pid %d, refused its configuration "
                            "(its line above says why); stopping everything",
                            group->name, (int) pid);
                self->refused = true;
            }
            else
            if (WIFEXITED (status) && WEXITSTATUS (status) == RESV_CFG_EXIT
            &&  group->service) {
                //  A worker started later (resv scale from 0): the rest of
                //  the system runs on. Its processes read the same copy of
                //  the configuration, so every start would refuse it again.
                //  (Not the broker: it refuses an endpoint it cannot bind,
                //  EADDRNOTAVAIL for an address gone for a while, and is
                //  restarted as after a crash, whatever the rest does.)
                group->want = running > 1? running - 1: 0;  //  Not itself
                zsys_error ("resvd: %s, pid %d, refused its configuration "
                            "(its line above says why); starting no more "
                            "of it, %d left running: fix the configuration "
                            "and restart resvd", group->name, (int) pid,
                            group->want);
            }
            else {
                //  One that exited 0 stopped because it was told to
                //  (SIGTERM by hand, a rolling restart): no crash loop to
                //  slow down. With the backoff, the fifth such stop in
                //  restart_reset waited longer than the broker's grace,
                //  and failed the requests sent meanwhile.
                bool asked = WIFEXITED (status) && WEXITSTATUS (status) == 0;
                int delay = self->restart_min;
                if (!asked) {
                    if (ran >= self->restart_reset)
                        group->backoff = self->restart_min;
                    delay = group->backoff;
                    group->backoff = delay * 2 > self->restart_max?
                                     self->restart_max: delay * 2;
                }
                if (group->start_at < now + delay)
                    group->start_at = now + delay;
                zsys_warning ("resvd: %s, pid %d, %s after %lld ms; "
                              "restarting in %d ms", group->name, (int) pid,
                              how, (long long) ran, delay);
            }
            free (zlistx_detach_cur (group->children));
            return;
        }
    }
    zsys_warning ("resvd: unknown child %d %s", (int) pid, how);
}

//  Reaps every child that ended, without waiting.
static void
s_reap (resvd_t *self)
{
    int status;
    pid_t pid;
    while ((pid = waitpid (-1, &status, WNOHANG)) > 0)
        s_ended (self, pid, status, zclock_mono ());
}

//  Live processes of the groups of wave or a higher one.
static size_t
s_children (resvd_t *self, int wave)
{
    size_t count = 0;
    for (size_t i = 0; i < self->ngroups; i++)
        if (self->groups [i].wave >= wave)
            count += zlistx_size (self->groups [i].children);
    return count;
}

//  Sends SIGTERM to every process of the groups of wave, then reaps until
//  they are gone; stop_timeout ms later, what is left gets SIGKILL. Serves
//  our own worker meanwhile while it runs, so that it finishes its stop.
static void
s_stop_wave (resvd_t *self, int wave, bool *serving)
{
    char names [256] = "";
    for (size_t i = 0; i < self->ngroups; i++) {
        s_group_t *group = &self->groups [i];
        size_t used = strlen (names);
        if (group->wave == wave && zlistx_size (group->children))
            snprintf (names + used, sizeof names - used, "%s%s",
                      used? ", ": "", group->name);
    }
    if (*names)
        zsys_info ("resvd: stopping %s", names);
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < self->ngroups; i++) {
        s_group_t *group = &self->groups [i];
        if (group->wave == wave) {
            group->want = 0;
            s_child_t *child = (s_child_t *) zlistx_first (group->children);
            for (; child; child = (s_child_t *) zlistx_next (group->children))
                s_stop_child (self, group, child, now);
        }
    }
    while (s_children (self, wave) || *serving) {
        if (*serving)
            *serving = worker_serve (self->worker, S_TICK, s_handler,
                                     self) == 0;
        else
            zclock_sleep (S_TICK / 4);
        s_reap (self);
        s_reconcile (self, zclock_mono ());
    }
}


//  --------------------------------------------------------------------------
//  The resvd service

static int
s_bad (zframe_t **reply_p, int code, const char *reason, const char *message)
{
    *reply_p = worker_error (code, reason, "%s", message);
    return code;
}

static int
s_scale (resvd_t *self, zframe_t *body, zframe_t **reply_p)
{
    json_t *request = worker_parse (body, reply_p);
    if (!request)
        return RESV_BAD_REQUEST;
    static const char *keys [] = { "service", "count", NULL };
    if (field_only (request, keys, reply_p)) {
        json_decref (request);
        return RESV_BAD_REQUEST;
    }
    const char *name = json_string_value (json_object_get (request, "service"));
    json_t *count = json_object_get (request, "count");
    s_group_t *group = s_group (self, name);
    int status = RESV_OK;
    if (!name)
        status = s_bad (reply_p, RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                        "scale: service must be a string");
    else
    if (!json_is_integer (count) || json_integer_value (count) < 0
    ||  json_integer_value (count) > RESVD_COUNT_MAX) {
        char message [80];
        snprintf (message, sizeof message, "scale: count must be an integer "
                  "from 0 to %d", RESVD_COUNT_MAX);
        status = s_bad (reply_p, RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                        message);
    }
    else
    if (!group || !group->service) {
        char message [80];
        snprintf (message, sizeof message, "scale: resvd runs no service "
                  "'%.32s'", name);
        status = s_bad (reply_p, RESV_NOT_FOUND, RESV_REASON_NOT_FOUND,
                        message);
    }
    else {
        int previous = group->want;
        group->want = (int) json_integer_value (count);
        zsys_info ("resvd: scaling %s from %d to %d", group->name, previous,
                   group->want);
        s_reconcile (self, zclock_mono ());
        *reply_p = worker_json (json_pack ("{s:s,s:i,s:i}",
                                           "service", group->name,
                                           "count", group->want,
                                           "previous", previous));
    }
    json_decref (request);
    return status;
}

static int
s_status (resvd_t *self, zframe_t **reply_p)
{
    json_t *children = json_array ();
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < self->ngroups; i++) {
        s_group_t *group = &self->groups [i];
        s_child_t *child = (s_child_t *) zlistx_first (group->children);
        for (; child; child = (s_child_t *) zlistx_next (group->children))
            json_array_append_new (children, json_pack (
                "{s:s,s:i,s:I,s:b}", "service", group->name,
                "pid", (int) child->pid,
                "uptime_ms", (json_int_t) (now - child->started),
                "stopping", child->stopping));
    }
    *reply_p = worker_json (json_pack ("{s:o}", "children", children));
    return RESV_OK;
}

static int
s_handler (void *state, const char *method, zframe_t **body_p,
           int64_t deadline, zframe_t **reply_p)
{
    (void) deadline;
    resvd_t *self = (resvd_t *) state;
    if (streq (method, RESV_METHOD_SCALE) && self->stopping)
        return s_bad (reply_p, RESV_UNAVAILABLE, RESV_REASON_STOPPING,
                      "scale: resvd is stopping");
    if (streq (method, RESV_METHOD_SCALE))
        return s_scale (self, *body_p, reply_p);
    if (streq (method, RESV_METHOD_STATUS))
        return s_status (self, reply_p);
    *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_UNKNOWN_METHOD,
                             "resvd has no method '%s'", method);
    return RESV_BAD_REQUEST;
}


//  --------------------------------------------------------------------------
//  Public API

//  Writes the path of program, beside the running executable, into path.
//  Returns 0, or -1 after a log line if it is not there or not executable.
static int
s_find (const char *program, char *path, size_t size)
{
    char self [PATH_MAX];
    ssize_t length = readlink ("/proc/self/exe", self, sizeof self - 1);
    if (length <= 0) {
        zsys_error ("resvd: readlink /proc/self/exe: %s", strerror (errno));
        return -1;
    }
    self [length] = 0;
    char *slash = strrchr (self, '/');
    if (slash)
        *slash = 0;
    if (snprintf (path, size, "%s/%s", self, program) >= (int) size) {
        zsys_error ("resvd: %s/%s: path too long", self, program);
        return -1;
    }
    if (access (path, X_OK) == -1) {
        zsys_error ("resvd: %s: %s", path, strerror (errno));
        return -1;
    }
    return 0;
}

//  Takes DATA_DIR/resvd.lock for as long as resvd runs. A second resvd on
//  one data directory (started again by mistake, with the same config)
//  would start a second set of workers that join the first broker, with
//  another internal key, and every internal call they make would be
//  refused: it stops at once instead. Returns 0, or -1 after a log line.
static int
s_lock (resvd_t *self, const char *dir)
{
    char path [PATH_MAX];
    if (snprintf (path, sizeof path, "%s/resvd.lock", dir)
        >= (int) sizeof path) {
        zsys_error ("resvd: data/dir '%s' is too long", dir);
        return -1;
    }
    if (db_dir_create (dir)) {
        zsys_error ("resvd: cannot create data/dir '%s': %s", dir,
                    strerror (errno));
        return -1;
    }
    self->lock = db_lock (path);
    if (self->lock == -1 && errno == EWOULDBLOCK)
        zsys_error ("resvd: another resvd runs on data directory %s (%s is "
                    "locked)", dir, path);
    else
    if (self->lock == -1)
        zsys_error ("resvd: lock %s: %s", path, strerror (errno));
    return self->lock == -1? -1: 0;
}

//  Every key of the configuration that a resv program reads, but for the
//  services' own (workers/SERVICE/count and credit), which s_check_keys
//  adds. A new key goes here too, or resvd warns that it is unused.
static const char *s_keys [] = {
    "broker/frontend", "broker/backend", "broker/events", "broker/heartbeat",
    "broker/liveness", "broker/queue_max", "broker/grace",
    "broker/max_timeout", "broker/breaker_failures", "broker/breaker_cooldown",
    "broker/breaker_min_time", "broker/max_message", "broker/internal_key",
    "client/timeout", "data/dir", "workers/credit", "events/relay",
    "resvd/restart_min", "resvd/restart_max", "resvd/restart_reset",
    "resvd/stop_timeout", "approval/timeout", "approval/tick",
    "reservation/sweep", "reservation/abandon", "payment/max_amount",
    "payment/latency", "payment/failure_rate", "payment/tick",
    "workers/resvd/credit", NULL            //  resvd's own worker's
};

//  Warns of each key of the configuration file that no resv program reads
//  (resv_cfg_unknown): a misspelt one would be left unused in silence.
static void
s_check_keys (resv_cfg_t *cfg)
{
    size_t fixed = sizeof s_keys / sizeof s_keys [0] - 1;
    size_t services = 0;
    while (svc_at (services))
        services++;
    const char **known = (const char **) calloc (fixed + 2 * services + 1,
                                                 sizeof (char *));
    if (!known)
        return;
    memcpy (known, s_keys, fixed * sizeof (char *));
    for (size_t i = 0; i < services; i++) {
        known [fixed + 2 * i] = zsys_sprintf ("workers/%s/count",
                                              svc_at (i)->name);
        known [fixed + 2 * i + 1] = zsys_sprintf ("workers/%s/credit",
                                                  svc_at (i)->name);
        if (!known [fixed + 2 * i] || !known [fixed + 2 * i + 1])
            goto done;
    }
    resv_cfg_unknown (cfg, known);
done:
    for (size_t i = fixed; i < fixed + 2 * services; i++)
        free ((char *) known [i]);
    free (known);
}

//  Keeps the text of the configuration resvd started with in memory, in an
//  anonymous file that every process it runs reads (-c S_CONFIG_PATH), at
//  every start: an edit of the file while resvd runs then reaches none of
//  them, rather than only the next one restarted (a new data/dir, say,
//  would give that one other stores than the rest). Nothing on disk: it
//  needs no room and no data directory, and shows the internal key to no
//  other user. The environment is theirs as it was resvd's. Returns 0, or
//  -1 after a log line.
static int
s_snapshot (resvd_t *self, resv_cfg_t *cfg)
{
    const char *text = resv_cfg_text (cfg);
    size_t size = strlen (text), done = 0;
    int fd = memfd_create ("resvd.cfg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    while (fd != -1 && done < size) {
        ssize_t wrote = write (fd, text + done, size - done);
        if (wrote == -1 && errno == EINTR)
            continue;
        if (wrote <= 0)
            break;
        done += (size_t) wrote;
    }
    //  Sealed, so that no child can change what the others read; and above
    //  the descriptors a child is given (0 to S_CONFIG_FD), which s_exec
    //  sets up without touching it (resvd started with stdin closed had it
    //  at 0, where the child's /dev/null took its place).
    if (fd != -1 && done == size
    &&  fcntl (fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW
                                | F_SEAL_SEAL) == 0)
        self->config = fcntl (fd, F_DUPFD_CLOEXEC, S_CONFIG_FD + 1);
    int error = errno;
    if (fd != -1)
        close (fd);
    if (self->config == -1) {
        zsys_error ("resvd: cannot keep its configuration in memory: %s",
                    strerror (error));
        return -1;
    }
    return 0;
}

//  True if a TCP connect to address succeeds within S_PROBE_MS (an
//  address that is not of this host may never answer).
#define S_PROBE_MS      200
static bool
s_connects (const struct sockaddr *address, socklen_t size)
{
    int fd = socket (address->sa_family,
                     SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1)
        return false;
    int rc = connect (fd, address, size);
    struct pollfd item = { fd, POLLOUT, 0 };
    int error = 0;
    socklen_t error_size = sizeof error;
    bool connected = rc == 0
        || (errno == EINPROGRESS && poll (&item, 1, S_PROBE_MS) == 1
            && getsockopt (fd, SOL_SOCKET, SO_ERROR, &error,
                           &error_size) == 0 && error == 0);
    close (fd);
    return connected;
}

//  True if something already listens at endpoint, as far as a quick look
//  can tell. A TCP endpoint's host, an IPv4 or IPv6 address ([::1]) or a
//  name, is resolved, and each of its addresses connected to (* is tried
//  on 127.0.0.1); an ipc endpoint is connected to. A host that does not
//  resolve, or another form (an interface name), is not looked at: the
//  broker says what it makes of it.
static bool
s_listened (const char *endpoint)
{
    if (strncmp (endpoint, "ipc://", 6) == 0) {
        struct sockaddr_un address = { .sun_family = AF_UNIX };
        if (strlen (endpoint + 6) >= sizeof address.sun_path)
            return false;
        strcpy (address.sun_path, endpoint + 6);
        int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool connected = fd != -1
            && connect (fd, (struct sockaddr *) &address,
                        sizeof address) == 0;
        if (fd != -1)
            close (fd);
        return connected;
    }
    //  tcp://HOST:PORT, HOST in brackets when it is an IPv6 address.
    char host [256], port [8];
    const char *colon = strrchr (endpoint, ':');
    if (strncmp (endpoint, "tcp://", 6) != 0 || !colon
    ||  colon - (endpoint + 6) >= (int) sizeof host
    ||  strlen (colon + 1) >= sizeof port)
        return false;
    size_t host_len = (size_t) (colon - (endpoint + 6));
    memcpy (host, endpoint + 6, host_len);
    host [host_len] = 0;
    strcpy (port, colon + 1);
    int64_t number;
    if (resv_parse_int (port, 1, 65535, &number))
        return false;
    if (host_len >= 2 && host [0] == '[' && host [host_len - 1] == ']') {
        memmove (host, host + 1, host_len - 2);
        host [host_len - 2] = 0;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICSERV };
    struct addrinfo *addresses = NULL;
    if (getaddrinfo (streq (host, "*")? "127.0.0.1": host, port, &hints,
                     &addresses) != 0)
        return false;
    bool connected = false;
    for (struct addrinfo *at = addresses; at && !connected; at = at->ai_next)
        connected = s_connects (at->ai_addr, at->ai_addrlen);
    freeaddrinfo (addresses);
    return connected;
}

//  Refuses to start beside a broker that already listens on our endpoints:
//  a resvd of another data directory on the same ports. Our broker could
//  not bind, and would be restarted for ever, while our workers joined
//  the other broker with another internal key. Returns 0, or -1 after a
//  log line.
static int
s_ports_free (resv_cfg_t *cfg)
{
    const char *keys [] = { "broker/frontend", "broker/backend",
                            "broker/events", NULL };
    const char *dflts [] = { RESV_DEFAULT_ENDPOINT, RESV_DEFAULT_BACKEND,
                             RESV_DEFAULT_EVENTS };
    for (int i = 0; keys [i]; i++) {
        const char *endpoint = resv_cfg_str (cfg, keys [i], dflts [i]);
        if (s_listened (endpoint)) {
            zsys_error ("resvd: something already listens at %s (%s): "
                        "another resvd, of another data directory?",
                        endpoint, keys [i]);
            return -1;
        }
    }
    return 0;
}

resvd_t *
resvd_new (resv_cfg_t *cfg, bool verbose)
{
    resvd_t *self = (resvd_t *) zmalloc (sizeof (resvd_t));
    if (!self)
        return NULL;
    self->lock = -1;
    self->config = -1;
    self->verbose = verbose;
    //  The processes resvd runs share an internal key, which lets workers
    //  call the internal methods and no one else: made up here unless the
    //  configuration gives one, and handed down in the environment.
    if (!resv_cfg_str (cfg, "broker/internal_key", NULL)) {
        char key [33];
        if (resv_random_hex (key, 16) == 0)
            setenv ("RESV_BROKER_INTERNAL_KEY", key, 1);
        else
            zsys_warning ("resvd: no random source; internal methods are open");
    }
    self->restart_min = (int) resv_cfg_int (cfg, "resvd/restart_min", 100,
                                            1, 3600000);
    self->restart_max = (int) resv_cfg_int (cfg, "resvd/restart_max", 5000,
                                            self->restart_min, 3600000);
    self->restart_reset = (int) resv_cfg_int (cfg, "resvd/restart_reset",
                                              10000, 0, 86400000);
    self->stop_timeout = (int) resv_cfg_int (cfg, "resvd/stop_timeout",
                                             WORKER_STOP_TIMEOUT, 1,
                                             WORKER_STOP_TIMEOUT_MAX);
    size_t nservices = 0;
    while (svc_at (nservices))
        nservices++;
    self->groups = (s_group_t *) calloc (nservices + 1, sizeof (s_group_t));
    if (!self->groups) {
        free (self);
        return NULL;
    }
    int rc = 0;
    if (s_find ("resv-broker", self->broker_path, sizeof self->broker_path)
    ||  s_find ("resv-worker", self->worker_path, sizeof self->worker_path))
        rc = -1;
    for (size_t i = 0; i <= nservices; i++) {
        s_group_t *group = &self->groups [self->ngroups++];
        group->children = zlistx_new ();
        group->backoff = self->restart_min;
        if (!group->children)
            rc = -1;
        if (i == 0) {
            group->name = "broker";
            group->want = 1;
            continue;
        }
        const svc_t *svc = svc_at (i - 1);
        group->name = group->service = svc->name;
        group->wave = svc->depth + 1;
        if (group->wave > self->waves)
            self->waves = group->wave;
        char key [64];
        snprintf (key, sizeof key, "workers/%s/count", svc->name);
        //  Read as text first: resv_cfg_int falls back to the default on a
        //  bad value, and a supervisor that silently runs another number
        //  of processes than asked is worse than one that refuses to start.
        const char *text = resv_cfg_str (cfg, key, NULL);
        int64_t count = svc->count;
        if (text && resv_parse_int (text, 0, RESVD_COUNT_MAX, &count)) {
            zsys_error ("resvd: %s: '%s' is not a count from 0 to %d", key,
                        text, RESVD_COUNT_MAX);
            rc = -1;
        }
        group->want = (int) count;
    }
    if (rc == 0)
        rc = s_lock (self, resv_cfg_str (cfg, "data/dir", "./var"));
    if (rc == 0)
        rc = s_snapshot (self, cfg);
    if (rc == 0)
        s_check_keys (cfg);
    if (rc == 0)
        rc = s_ports_free (cfg);
    if (rc == 0)
        self->worker = worker_new (cfg, RESV_SERVICE_RESVD, 0);
    if (rc == -1 || !self->worker) {
        resvd_destroy (&self);
        return NULL;
    }
    return self;
}

void
resvd_destroy (resvd_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    resvd_t *self = *self_p;
    for (size_t i = 0; i < self->ngroups; i++) {
        s_group_t *group = &self->groups [i];
        s_child_t *child;
        while ((child = (s_child_t *) zlistx_detach (group->children, NULL))) {
            kill (child->pid, SIGKILL);
            waitpid (child->pid, NULL, 0);
            free (child);
        }
        zlistx_destroy (&group->children);
    }
    free (self->groups);
    if (self->config != -1)
        close (self->config);
    worker_destroy (&self->worker);
    if (self->lock != -1)
        close (self->lock);     //  Which lets go of the lock
    free (self);
    *self_p = NULL;
}

int
resvd_run (resvd_t *self)
{
    assert (self);
    zsys_info ("resvd: starting %s and %s", self->broker_path,
               self->worker_path);
    bool serving = true;
    while (!zsys_interrupted && serving && !self->refused) {
        s_reconcile (self, zclock_mono ());
        self->started = true;
        serving = worker_serve (self->worker, S_TICK, s_handler, self) == 0;
        s_reap (self);
    }
    //  In waves, so that what is in flight finds what it calls still
    //  there: the services that call others synchronously first, the
    //  deepest callers before those they call (svc_t depth); then those
    //  that call none; then the broker, last, to take their BYE and the
    //  replies they still owe.
    zsys_info ("resvd: stopping %zu workers, callers first",
               s_children (self, 1));
    self->stopping = true;
    worker_stop (self->worker);
    for (int wave = self->waves; wave >= 0; wave--)
        s_stop_wave (self, wave, &serving);
    if (self->unclean)
        zsys_warning ("resvd: every process stopped, %d of them not cleanly "
                      "(see above)", self->unclean);
    else
        zsys_info ("resvd: every process stopped");
    return self->refused || self->unclean? 1: 0;
}
