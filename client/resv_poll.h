/*  resv_poll.h: waiting on ZeroMQ sockets with few system calls.

    zmq_poll asks every socket for its pending commands (ZMQ_EVENTS: a
    getpid and a poll of the socket's mailbox, in libzmq 4.3) before it
    polls and again after, and it polls once with no timeout first. Under
    load those checks are a good part of a resv process's system calls,
    each a microsecond or more on a virtual machine. resv_poll asks each
    socket once, sleeps in poll(2) only when none is readable, and after
    the sleep asks only the sockets whose descriptor woke it.

    For the internal use of resv's programs; not part of libresv's API.  */
#ifndef RESV_POLL_H_INCLUDED
#define RESV_POLL_H_INCLUDED

#include <zmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Waits until one of items is ready for what it asks (ZMQ_POLLIN: a
//  message to read; ZMQ_POLLOUT: a send would be taken), or timeout ms
//  (-1: no limit, 0: a check only), like zmq_poll, and sets each item's
//  revents. Every item must be a ZeroMQ socket (its fd is ignored), at
//  most 16 of them: plain descriptors, or more items, are refused with
//  EINVAL; other requested events are never reported. Returns the number
//  of ready items, 0 on timeout, or -1 with errno set (EINTR when a
//  signal interrupted the sleep; the caller simply waits again).
int
    resv_poll (zmq_pollitem_t *items, int count, long timeout);

#ifdef __cplusplus
}
#endif

#endif
