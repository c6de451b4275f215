/*  checkpoint.c: WAL checkpoints in a thread of their own (checkpoint.h).  */

#include "checkpoint.h"
#include "db.h"

//  Failures logged at most once in this many checkpoints, so that a file
//  that keeps failing does not flood the log.
#define S_LOG_EVERY     300

//  Syncs the WAL through the connection's own handle, holding no lock.
//  (Not through a descriptor of our own: closing it would drop every
//  POSIX lock this process holds on the file.) A failure is not ours to
//  report: the RESTART after it syncs again, and says.
static void
s_sync_wal (sqlite3 *db)
{
    sqlite3_file *wal = NULL;
    if (sqlite3_file_control (db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal)
        == SQLITE_OK && wal && wal->pMethods)
        wal->pMethods->xSync (wal, SQLITE_SYNC_NORMAL);
}

static void
s_checkpointer (zsock_t *pipe, void *args)
{
    char *path = (char *) args;
    sqlite3 *db = NULL;
    //  A connection knows its file is in WAL mode only once it has read
    //  it: until then a checkpoint does nothing, and says OK. The first
    //  read may find the file busy (db_exec_retry says when).
    if (db_open (path, SQLITE_OPEN_READWRITE, &db) != SQLITE_OK
    ||  db_exec_retry (db, "PRAGMA schema_version", 5000, NULL) != SQLITE_OK) {
        zsys_warning ("checkpoint: open %s: %s; its writers checkpoint it "
                      "themselves", path, db? sqlite3_errmsg (db): "no memory");
        sqlite3_close (db);
        db = NULL;
    }
    else
        db_wait_busy (db, CHECKPOINT_RESTART_WAIT);
    zsock_signal (pipe, 0);
    zpoller_t *poller = zpoller_new (pipe, NULL);
    //  SIGTERM sets zsys_interrupted; the owner still says $TERM.
    zpoller_set_nonstop (poller, true);
    unsigned failures = 0;
    while (true) {
        zsock_t *which = (zsock_t *) zpoller_wait (poller, CHECKPOINT_INTERVAL);
        if (which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
        if (!db)
            continue;
        int frames = 0;
        int rc = sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                            &frames, NULL);
        //  Under steady writes the WAL is never all copied back when a
        //  write begins, so no writer restarts it: it grows until the
        //  writers' own checkpoints (CHECKPOINT_SAFETY) take over. So
        //  once it is long, a RESTART checkpoint holds the writers back
        //  for the last few frames and lets the next writer start over.
        //  It syncs the WAL and then the database with the writers held,
        //  so the writers wait for as long as those syncs take, which is
        //  longer the more there is to write: before it, a second PASSIVE
        //  copies what came during the first, and the WAL is synced with
        //  no lock held, which leaves the RESTART only what comes after.
        if (rc == SQLITE_OK && frames >= CHECKPOINT_RESTART_FRAMES) {
            sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                       NULL, NULL);
            s_sync_wal (db);
            rc = sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_RESTART,
                                            NULL, NULL);
        }
        //  Busy: another process's checkpointer is at it, or the writers
        //  or readers did not let a RESTART through in time.
        if (rc != SQLITE_OK && rc != SQLITE_BUSY && failures++ % S_LOG_EVERY == 0)
            zsys_warning ("checkpoint: %s: %s", path, sqlite3_errmsg (db));
    }
    zpoller_destroy (&poller);
    sqlite3_close (db);
    free (path);
}

zactor_t *
checkpoint_new (const char *path)
{
    char *copy = strdup (path);
    zactor_t *self = copy? zactor_new (s_checkpointer, copy): NULL;
    if (!self) {
        zsys_error ("checkpoint: cannot start a checkpointer for %s", path);
        free (copy);
    }
    return self;
}

void
checkpoint_destroy (zactor_t **self_p)
{
    if (self_p)
        zactor_destroy (self_p);
}
