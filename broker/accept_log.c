/*  accept_log.c: logs the connections the broker's sockets cannot accept
    (accept_log.h).  */

#include "accept_log.h"
#include "resv_util.h"
#include <errno.h>
#include <inttypes.h>
#include <sys/resource.h>

//  Events read from one monitor in one turn, at most: the rest wait for
//  the next, after the pause, so that a flood cannot keep the thread
//  from its pipe.
#define S_BATCH_MAX     (2 * ACCEPT_LOG_HWM)
//  Tries at a monitor endpoint of our own: the name of one stopped a
//  moment ago (an accept log at the same address before) stays taken
//  until ZeroMQ's reaper has closed it.
#define S_NAME_TRIES    100

struct _accept_log_t {
    zactor_t *actor;            //  The thread that reads and logs
    void *watched [ACCEPT_LOG_MAX]; //  libzmq handles of the sockets watched
    size_t count;               //  Used entries of watched
    unsigned names;             //  Monitor endpoints named so far
};

//  A socket watched, as the thread sees it.
typedef struct {
    char *name;                 //  "frontend", for the lines
    char *endpoint;             //  Where the socket is bound
    zsock_t *monitor;           //  PAIR, receives the socket's events
    uint64_t failed;            //  Failed accepts since the last line
    uint64_t total;             //  Since the first; 0 while it accepts
    bool accepted;              //  One accepted since the latest failure
    int64_t next;               //  When the next line may be written
} s_watched_t;

typedef struct {
    zsock_t *pipe;              //  Actor pipe
    int interval;               //  Between a socket's lines, ms
    s_watched_t watched [ACCEPT_LOG_MAX];   //  Sockets watched
    size_t count;               //  Used entries of watched
    bool terminated;            //  $TERM received
} s_thread_t;

//  What may explain an errno, for the line: the limit a process hit.
static void
s_hint (int error, char *buf, size_t size)
{
    struct rlimit limit;
    if (error == EMFILE && getrlimit (RLIMIT_NOFILE, &limit) == 0
    &&  limit.rlim_cur != RLIM_INFINITY)
        snprintf (buf, size, " (the broker's limit is %" PRIu64
                  " open files)", (uint64_t) limit.rlim_cur);
    else
    if (error == ENFILE)
        snprintf (buf, size, " (the system's limit of open files)");
    else
        buf [0] = '\0';
}

static void
s_failed (s_thread_t *self, s_watched_t *watched, int error, int64_t now)
{
    watched->failed++;
    watched->total++;
    watched->accepted = false;
    if (watched->total > 1 && now < watched->next)
        return;
    char hint [64];
    s_hint (error, hint, sizeof hint);
    if (watched->total == 1)
        zsys_error ("broker: cannot accept a connection on the %s (%s): %s%s; "
                    "new connections wait until it can", watched->name,
                    watched->endpoint, strerror (error), hint);
    else
        zsys_error ("broker: cannot accept a connection on the %s (%s): %s%s; "
                    "%" PRIu64 " failed accepts since the last line",
                    watched->name, watched->endpoint, strerror (error), hint,
                    watched->failed);
    watched->failed = 0;
    watched->next = now + self->interval;
}

//  Says a socket accepts again once a connection got in with no failure
//  since, and a whole interval has passed since its last line: so a
//  socket on the edge of its limit, which fails and accepts in turn,
//  writes two lines an interval, not two per connection.
static void
s_recovered (s_watched_t *watched, int64_t now)
{
    if (!watched->total || !watched->accepted || now < watched->next)
        return;
    zsys_info ("broker: the %s (%s) accepts connections again, after %"
               PRIu64 " failed accepts", watched->name, watched->endpoint,
               watched->total);
    watched->total = 0;
    watched->failed = 0;
    watched->accepted = false;
}

//  Reads the events waiting at a monitor, up to S_BATCH_MAX. An event is
//  two frames: its number (16 bits) and value (32 bits, here the errno),
//  then the endpoint, which we know already. Returns how many were read.
static size_t
s_drain (s_thread_t *self, s_watched_t *watched)
{
    void *handle = zsock_resolve (watched->monitor);
    int64_t now = zclock_mono ();
    size_t events = 0;
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    while (events < S_BATCH_MAX
       &&  zmq_msg_recv (&frame, handle, ZMQ_DONTWAIT) != -1) {
        if (zmq_msg_size (&frame) != 6 || !zmq_msg_more (&frame))
            continue;           //  The endpoint frame
        const byte *data = (const byte *) zmq_msg_data (&frame);
        uint16_t event;
        uint32_t value;
        memcpy (&event, data, sizeof event);
        memcpy (&value, data + sizeof event, sizeof value);
        if (event == ZMQ_EVENT_ACCEPT_FAILED)
            s_failed (self, watched, (int) value, now);
        else
        if (event == ZMQ_EVENT_ACCEPTED) {
            if (watched->total)
                watched->accepted = true;
            s_recovered (watched, now);
        }
        events++;
    }
    zmq_msg_close (&frame);
    return events;
}

//  WATCH name endpoint monitor: connects a PAIR to the monitor's endpoint.
//  Signals 0, or -1 when it cannot.
static void
s_watch (s_thread_t *self, zmsg_t *command)
{
    char *name = zmsg_popstr (command);
    char *endpoint = zmsg_popstr (command);
    char *address = zmsg_popstr (command);
    zsock_t *monitor = NULL;
    if (name && endpoint && address && self->count < ACCEPT_LOG_MAX)
        monitor = zsock_new (ZMQ_PAIR);
    if (monitor) {
        zsock_set_rcvhwm (monitor, ACCEPT_LOG_HWM);
        if (resv_sock_connect (monitor, address) == -1)
            zsock_destroy (&monitor);
    }
    if (monitor) {
        self->watched [self->count++] = (s_watched_t) {
            .name = name, .endpoint = endpoint, .monitor = monitor
        };
        name = endpoint = NULL;
    }
    zstr_free (&name);
    zstr_free (&endpoint);
    zstr_free (&address);
    zsock_signal (self->pipe, monitor? 0: 1);
}

static void
s_command (s_thread_t *self)
{
    zmsg_t *command = zmsg_recv (self->pipe);
    char *verb = command? zmsg_popstr (command): NULL;
    if (!verb || streq (verb, "$TERM"))
        self->terminated = true;
    else
    if (streq (verb, "WATCH"))
        s_watch (self, command);
    zstr_free (&verb);
    zmsg_destroy (&command);
}

//  Until the earliest "accepts again" line due, ms, or -1 for none.
static long
s_timeout (s_thread_t *self)
{
    int64_t now = zclock_mono (), next = -1;
    for (size_t index = 0; index < self->count; index++) {
        s_watched_t *watched = &self->watched [index];
        if (watched->total && watched->accepted
        &&  (next == -1 || watched->next < next))
            next = watched->next;
    }
    return next == -1? -1: next <= now? 0: (long) (next - now);
}

static void
s_thread (zsock_t *pipe, void *args)
{
    s_thread_t *self = (s_thread_t *) zmalloc (sizeof (s_thread_t));
    self->pipe = pipe;
    self->interval = *(int *) args;
    zsock_signal (pipe, 0);
    zmq_pollitem_t items [1 + ACCEPT_LOG_MAX];
    while (!self->terminated) {
        //  A WATCH below adds a socket this wait did not poll.
        size_t polled = self->count;
        items [0] = (zmq_pollitem_t) { zsock_resolve (pipe), 0, ZMQ_POLLIN, 0 };
        for (size_t index = 0; index < polled; index++)
            items [1 + index] = (zmq_pollitem_t) {
                zsock_resolve (self->watched [index].monitor), 0, ZMQ_POLLIN, 0
            };
        int rc = zmq_poll (items, 1 + (int) polled, s_timeout (self));
        if (rc == -1 && zmq_errno () != EINTR)
            break;              //  ETERM: the context is going
        if (rc > 0 && (items [0].revents & ZMQ_POLLIN))
            s_command (self);
        size_t events = 0;
        for (size_t index = 0; rc > 0 && index < polled; index++)
            if (items [1 + index].revents & ZMQ_POLLIN)
                events += s_drain (self, &self->watched [index]);
        int64_t now = zclock_mono ();
        for (size_t index = 0; index < self->count; index++)
            s_recovered (&self->watched [index], now);
        //  A flood of failures comes as fast as ZeroMQ retries: let the
        //  next events gather, and read them in one batch.
        if (events && !self->terminated
        &&  zmq_poll (items, 1, ACCEPT_LOG_PAUSE) == 1)
            s_command (self);
    }
    for (size_t index = 0; index < self->count; index++) {
        zstr_free (&self->watched [index].name);
        zstr_free (&self->watched [index].endpoint);
        zsock_destroy (&self->watched [index].monitor);
    }
    free (self);
}

accept_log_t *
accept_log_new (int interval)
{
    accept_log_t *self = (accept_log_t *) zmalloc (sizeof (accept_log_t));
    //  The thread copies interval before it signals, which zactor_new
    //  waits for.
    self->actor = zactor_new (s_thread, &interval);
    if (!self->actor) {
        zsys_error ("broker: cannot start the thread that logs failed accepts");
        free (self);
        return NULL;
    }
    return self;
}

int
accept_log_watch (accept_log_t *self, zsock_t *sock, const char *name)
{
    assert (self);
    assert (sock);
    const char *endpoint = zsock_endpoint (sock);
    if (self->count == ACCEPT_LOG_MAX) {
        zsys_error ("broker: cannot watch the %s for failed accepts: %d "
                    "sockets watched already", name, ACCEPT_LOG_MAX);
        return -1;
    }
    void *handle = zsock_resolve (sock);
    char address [64];
    int rc = -1;
    for (int tries = 0; rc == -1 && tries < S_NAME_TRIES; tries++) {
        snprintf (address, sizeof address, "inproc://accept-log-%p-%u",
                  (void *) self, self->names++);
        //  Not ZMQ_EVENT_MONITOR_STOPPED: accept_log_destroy would wait
        //  to send it to a thread that may be gone.
        rc = zmq_socket_monitor (handle, address,
                                 ZMQ_EVENT_ACCEPT_FAILED | ZMQ_EVENT_ACCEPTED);
        if (rc == -1 && zmq_errno () != EADDRINUSE)
            break;
    }
    if (rc == -1) {
        zsys_error ("broker: cannot watch the %s for failed accepts: %s",
                    name, zmq_strerror (zmq_errno ()));
        return -1;
    }
    //  Until the thread's PAIR is connected, an event would hold ZeroMQ's
    //  I/O thread: it is, before we return.
    zstr_sendx (self->actor, "WATCH", name, endpoint? endpoint: "?", address,
                NULL);
    if (zsock_wait (self->actor) != 0) {
        zmq_socket_monitor (handle, NULL, 0);
        zsys_error ("broker: cannot watch the %s for failed accepts: no "
                    "monitor socket", name);
        return -1;
    }
    self->watched [self->count++] = handle;
    return 0;
}

void
accept_log_destroy (accept_log_t **self_p)
{
    accept_log_t *self = self_p? *self_p: NULL;
    if (!self)
        return;
    //  The thread still reads: a send that waits for it ends.
    for (size_t index = 0; index < self->count; index++)
        zmq_socket_monitor (self->watched [index], NULL, 0);
    zactor_destroy (&self->actor);
    free (self);
    *self_p = NULL;
}
