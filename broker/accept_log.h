/*  accept_log.h: logs the connections the broker's sockets cannot accept.

    Each TCP connection is a file of the broker's process. Past its limit
    of open files (or the system's, or short of kernel memory) ZeroMQ
    cannot accept a new connection: it leaves it pending in the kernel and
    tries again, and no client, worker or subscriber gets in until the
    cause goes (a connection closes). ZeroMQ tells it only to a socket
    monitor (zmq_socket_monitor, ZMQ_EVENT_ACCEPT_FAILED with the errno).
    An accept log reads the monitors of the sockets it watches in a thread
    of its own, so that the broker's loop polls nothing more, and logs for
    each socket:

        broker: cannot accept a connection on the frontend
            (tcp://127.0.0.1:5570): Too many open files (the broker's
            limit is 1024 open files); new connections wait until it can

    at the first failure; then, while they go on, one line at most every
    interval with the failures since the line before; and, once a
    connection is accepted with none failed since, and an interval after
    the last line, "broker: the frontend (...) accepts connections again,
    after N failed accepts". So a socket logs at most two lines an
    interval, whatever the flood.

    ZeroMQ retries a pending connection as fast as it can (its I/O thread
    busy all the while, with or without a monitor) and sends one event
    per try, a few hundred thousand a second: the counts are of tries,
    not of clients. The thread reads them in batches, ACCEPT_LOG_PAUSE ms
    apart, which costs it a few per cent of a core then; the monitor holds
    ACCEPT_LOG_HWM events meanwhile (more, and ZeroMQ's I/O thread would
    wait for the reader).
*/
#ifndef ACCEPT_LOG_H_INCLUDED
#define ACCEPT_LOG_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Sockets one accept log watches at most.
#define ACCEPT_LOG_MAX      8
//  Pause after a batch of events, ms, and the events a monitor holds.
#define ACCEPT_LOG_PAUSE    10
#define ACCEPT_LOG_HWM      10000

typedef struct _accept_log_t accept_log_t;

//  Starts an accept log whose lines about one socket come at most one
//  every interval ms (the first at once). Returns NULL, after a log line,
//  if its thread cannot start.
accept_log_t *
    accept_log_new (int interval);

//  Watches sock, bound, whose lines name it name ("frontend") and its
//  endpoint. Call it from the thread that owns sock. The socket stays the
//  caller's, and must outlive the watch: accept_log_destroy before it is
//  closed. Returns 0, or -1 after a log line (sock is then not watched
//  and as it was): ACCEPT_LOG_MAX sockets watched already, or ZeroMQ
//  refused the monitor.
int
    accept_log_watch (accept_log_t *self, zsock_t *sock, const char *name);

//  Stops the monitors of the sockets watched, then the thread, and nulls
//  the pointer. Call it from the thread that owns the sockets now, before
//  any is closed: ZeroMQ's I/O thread waits for the accept log's thread
//  to read an event when the monitor is full, and stopping a monitor
//  waits for that send. NULL-safe.
void
    accept_log_destroy (accept_log_t **self_p);

#ifdef __cplusplus
}
#endif

#endif
