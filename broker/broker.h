/*  broker.h: the resv broker, a CZMQ actor.

    The broker binds a ROUTER frontend for clients and a ROUTER backend for
    workers (doc/protocol.md), routes each client request to a worker of its
    service, and answers the internal services ping and stats. It runs as an
    actor so that a test can run a whole broker inside its own process:

        resv_cfg_t *cfg = resv_cfg_load (NULL);
        zactor_t *broker = broker_new (cfg);
        char *frontend, *backend, *events;
        zstr_send (broker, "ENDPOINTS");
        zstr_recvx (broker, &frontend, &backend, &events, NULL);
        ...
        zactor_destroy (&broker);

    Endpoints come from the configuration (broker/frontend, broker/backend,
    broker/events); the journal lives in data/dir/journal.db;
    a TCP endpoint may end in ":*" to take a free port, which ENDPOINTS then
    reports. broker_new binds both sockets before it starts the actor
    thread, so it can return NULL, after a log line, when a bind fails.

    Commands on the actor pipe:
      ENDPOINTS    replies three frames: the bound frontend, backend and
                   events endpoints.
      STOP         graceful stop: stops taking requests (new ones get 503),
                   waits until in-flight requests are answered or past their
                   deadline, then signals 0 on the pipe.
      $TERM        stops at once (zactor_destroy sends it).
*/
#ifndef BROKER_H_INCLUDED
#define BROKER_H_INCLUDED

#include <czmq.h>
#include "resv_cfg.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Creates and starts a broker actor. cfg is borrowed and must outlive the
//  actor. Returns NULL if a socket cannot be bound. The caller destroys the
//  actor with zactor_destroy().
zactor_t *
    broker_new (resv_cfg_t *cfg);

#ifdef __cplusplus
}
#endif

#endif
