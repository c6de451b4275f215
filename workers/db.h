/*  db.h: how resv opens its SQLite connections.

    Every connection of resv belongs to one thread: a service's request
    thread, its events thread, a checkpointer, the broker's loop. So they
    are opened without SQLite's per-connection mutex (SQLITE_OPEN_NOMUTEX),
    which SQLite would otherwise take and release around every call. The
    first open of a process also turns off SQLite's memory statistics,
    which take a global mutex at every allocation and which resv never
    reads. And they go through a thin VFS over the platform's, which
    gathers the frames a commit appends to the WAL and writes them with
    one system call instead of two per page (db.c says when it writes).
    All three are for speed only: what is stored, and when it is
    committed and seen by others, is the same.

    Used by the broker's journal, the services' stores and checkpointers.
*/
#ifndef DB_H_INCLUDED
#define DB_H_INCLUDED

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  The page size of a new file, as SQL to run before its first write (a
//  file keeps the size it was made with). A commit writes each page it
//  changed whole to the WAL, and most pages a commit changes hold only a
//  row or an index key of it: the last page of a table, and a page at a
//  random place in an index on a customer or a resource. Pages of 2 KiB
//  write about a quarter fewer bytes to the WALs than SQLite's 4 KiB,
//  so the syncs of the checkpoints (which the writers wait for when the
//  WAL restarts) have less to write; 1 KiB holds too few rows of an
//  event's size, one per page, and costs more CPU than it saves.
#define DB_PAGE_SIZE_SQL    "PRAGMA page_size = 2048;"

//  Opens the SQLite file at path for the calling thread's own use, with
//  SQLITE_OPEN_* flags (SQLITE_OPEN_NOMUTEX is added). Returns SQLite's
//  result code; *db_p is set as sqlite3_open_v2 sets it, so that the
//  caller can read its error message and must close it either way.
int
    db_open (const char *path, int flags, sqlite3 **db_p);

//  Makes a connection that finds the file locked by another wait for it,
//  up to timeout_ms, as sqlite3_busy_timeout does, but polling every 50
//  to 200 us: SQLite's own handler sleeps 1, 2, 5 ... 100 ms between
//  tries, so a writer behind a lock held for 100 us may sleep for 100 ms.
void
    db_wait_busy (sqlite3 *db, int timeout_ms);

//  What db_wait_busy_calling waits with: the timeout, and a function it
//  calls while it waits, at once and then about every 100 ms (a worker's
//  heartbeat: a thread that waits on a lock sends none of its own). The
//  caller keeps it as long as the connection.
typedef struct {
    int timeout_ms;
    void (*waiting) (void *arg);
    void *arg;
    int64_t next;               //  When waiting is due again (monotonic ms)
} db_busy_t;

//  As db_wait_busy, calling busy->waiting while it waits.
void
    db_wait_busy_calling (sqlite3 *db, db_busy_t *busy);

//  sqlite3_exec of sql, run again while it fails with the file busy or
//  locked, for up to timeout_ms. SQLite answers some waits at once
//  without asking the busy handler: two connections that both read
//  and then write a new file (a deadlock, which it breaks at once), or
//  a file whose WAL another process is setting up or recovering, as a
//  process restarted after a crash finds it. sql must be safe to run
//  again after any of its statements (a schema of IF NOT EXISTS and
//  pragmas). Returns SQLite's result code; error_p as sqlite3_exec.
int
    db_exec_retry (sqlite3 *db, const char *sql, int timeout_ms,
                   char **error_p);

//  Whether the file of db was deleted or renamed since it was opened (an
//  rm -rf of the data directory, say). A connection goes on writing to
//  its unlinked file as if nothing happened, and what it writes is lost
//  at the next start, which opens a new file at the path: so writers
//  refuse to write once it has moved. Asking costs a stat, so *self keeps
//  the answer, asked again at most every DB_MOVED_CHECK_MS (start from a
//  zeroed struct). A file put back where it was is answered false again.
#define DB_MOVED_CHECK_MS   1000

typedef struct {
    int64_t next;               //  When to ask again (monotonic ms)
    bool moved;                 //  The last answer
} db_moved_t;

bool
    db_moved (sqlite3 *db, db_moved_t *self);

//  Why db_open failed, in SQLite's words and, where the system said why,
//  its words too ("unable to open database file: Permission denied"),
//  written into buf. Returns buf.
const char *
    db_open_error (sqlite3 *db, char *buf, size_t size);

//  Creates directory dir and its parents, as the data directory of a
//  store or the journal. Another process creating it at the same moment
//  (resvd starts them all at once) is no failure. Returns 0, or -1 with
//  errno set.
int
    db_dir_create (const char *dir);

//  Takes an exclusive lock (flock) on the file at path, made if missing,
//  held for as long as the returned descriptor stays open; programs exec'd
//  from this one do not inherit it. Returns the descriptor, or -1 with
//  errno set: EWOULDBLOCK when another open descriptor holds the lock.
int
    db_lock (const char *path);

#ifdef __cplusplus
}
#endif

#endif
