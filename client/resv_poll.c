/*  resv_poll.c: waiting on ZeroMQ sockets with few system calls.

    A ZeroMQ socket's descriptor (ZMQ_FD) is the socket's mailbox, and it
    is edge-triggered: it turns readable when commands arrive (a message
    waiting is one, a connection made or room made in a full pipe others),
    and reading ZMQ_EVENTS processes them and resets it.
    So a sleep on the descriptors is safe once each socket has been asked
    for its events: anything that arrives after that question wakes the
    sleep.  */

#include "resv_poll.h"

#include <czmq.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>

//  Sockets one wait takes at most; resv's loops wait on three at most.
#define S_ITEMS_MAX     16

//  Which of wanted (ZMQ_POLLIN, ZMQ_POLLOUT) socket is ready for, or -1
//  (errno set).
static int
s_ready (void *socket, short wanted)
{
    int events = 0;
    size_t size = sizeof events;
    if (zmq_getsockopt (socket, ZMQ_EVENTS, &events, &size))
        return -1;
    return events & wanted & (ZMQ_POLLIN | ZMQ_POLLOUT);
}

int
resv_poll (zmq_pollitem_t *items, int count, long timeout)
{
    if (count < 0 || count > S_ITEMS_MAX) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd fds [S_ITEMS_MAX];
    int ready = 0;
    //  What is queued already shows here, and each question resets the
    //  socket's descriptor for the sleep below.
    for (int index = 0; index < count; index++) {
        zmq_pollitem_t *item = &items [index];
        item->revents = 0;
        fds [index] = (struct pollfd) { -1, POLLIN, 0 };
        if (!item->socket) {
            errno = EINVAL;     //  Plain descriptors: zmq_poll's job
            return -1;
        }
        if (!(item->events & (ZMQ_POLLIN | ZMQ_POLLOUT)))
            continue;           //  poll(2) skips a negative descriptor
        size_t size = sizeof fds [index].fd;
        if (zmq_getsockopt (item->socket, ZMQ_FD, &fds [index].fd, &size))
            return -1;
        int rc = s_ready (item->socket, item->events);
        if (rc == -1)
            return -1;
        if (rc) {
            item->revents = (short) rc;
            ready++;
        }
    }
    if (ready || timeout == 0)
        return ready;
    int64_t until = timeout > 0? zclock_mono () + timeout: 0;
    while (true) {
        int wait = -1;
        if (timeout > 0) {
            int64_t left = until - zclock_mono ();
            wait = left <= 0? 0: left > INT_MAX? INT_MAX: (int) left;
        }
        int rc = poll (fds, (nfds_t) count, wait);
        if (rc == -1)
            return -1;          //  EINTR too, as zmq_poll does
        if (rc == 0)
            return 0;           //  The time is up
        //  A descriptor wakes for any command, not only a message: ask
        //  the sockets that woke, and sleep again if none has one.
        for (int index = 0; index < count; index++) {
            if (!fds [index].revents)
                continue;
            int rc = s_ready (items [index].socket, items [index].events);
            if (rc == -1)
                return -1;
            if (rc) {
                items [index].revents = (short) rc;
                ready++;
            }
        }
        if (ready)
            return ready;
    }
}
