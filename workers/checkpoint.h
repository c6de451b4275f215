/*  checkpoint.h: WAL checkpoints off the path of requests and events.

    In WAL mode SQLite appends every commit to the -wal file, and copies the
    file back into the database (a checkpoint) in the connection whose
    commit takes it past wal_autocheckpoint pages. That commit then copies
    some megabytes and syncs them, tens of milliseconds on a small machine,
    while the request or the event it belongs to waits: a p99 made of
    checkpoints. A checkpointer runs them instead in a thread of its own,
    with its own connection, every CHECKPOINT_INTERVAL ms. Its checkpoints
    are PASSIVE: they neither wait for nor block the readers and writers,
    and copy what they can. The program's own connections keep
    wal_autocheckpoint at CHECKPOINT_SAFETY pages, so that they checkpoint
    only should the checkpointer fall far behind.

    Used for the broker's journal and every service's store; several
    processes may run one on the same file (one checkpoints at a time, the
    others find it busy and try again later).
*/
#ifndef CHECKPOINT_H_INCLUDED
#define CHECKPOINT_H_INCLUDED

#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  How often a checkpointer checkpoints, ms.
#define CHECKPOINT_INTERVAL     200

//  wal_autocheckpoint of the program's own connections, pages, as SQL.
#define CHECKPOINT_SAFETY_SQL   "PRAGMA wal_autocheckpoint = 10000;"

//  Starts a checkpointer for the SQLite file at path (copied), which must
//  exist and be in WAL mode. Returns NULL, after a log line, if the thread
//  cannot start; a file that cannot be opened is logged and left to the
//  connections' own checkpoints.
zactor_t *
    checkpoint_new (const char *path);

//  Stops the checkpointer and nulls the pointer. NULL-safe.
void
    checkpoint_destroy (zactor_t **self_p);

#ifdef __cplusplus
}
#endif

#endif
