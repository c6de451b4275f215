/*  checkpoint.h: WAL checkpoints off the path of requests and events.

    In WAL mode SQLite appends every commit to the -wal file, and copies the
    file back into the database (a checkpoint) in the connection whose
    commit takes it past wal_autocheckpoint pages. That commit then copies
    some megabytes and syncs them, tens of milliseconds on a small machine,
    while the request or the event it belongs to waits: a p99 made of
    checkpoints. A checkpointer runs them instead in a thread of its own,
    with its own connection, every CHECKPOINT_INTERVAL ms. Its checkpoints
    are PASSIVE: they neither wait for nor block the readers and writers,
    and copy what they can.

    Copying the WAL back does not shorten it: only a writer that begins
    when all of it has been copied starts it over, and under steady
    writes that never happens. So once the WAL is CHECKPOINT_RESTART_FRAMES
    long, the checkpointer follows its PASSIVE checkpoint with a RESTART
    one, which holds the writers back while it copies the last frames, so
    that the next writer starts the WAL over (it gives up if it cannot get
    the locks within CHECKPOINT_RESTART_WAIT ms). The RESTART syncs the
    WAL and the database with the writers held, so a second PASSIVE and a
    sync of the WAL with no lock held go first and leave it less to write.
    Without the RESTART, the WAL grew to CHECKPOINT_SAFETY pages in a few
    seconds of load, and then the writers checkpointed in their own
    threads again, each time with two fsyncs, several times a second. The
    program's own connections keep wal_autocheckpoint at
    CHECKPOINT_SAFETY pages, so that they checkpoint only should the
    checkpointer fall far behind.

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

//  WAL length, in frames (pages, 16 MB), from which a checkpointer
//  restarts the WAL, and how long it waits for the writers and readers
//  then, ms.
#define CHECKPOINT_RESTART_FRAMES   4000
#define CHECKPOINT_RESTART_WAIT     20

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
