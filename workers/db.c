/*  db.c: resv's SQLite connections (see db.h).

    Besides the connection flags, this file holds a thin SQLite VFS, named
    "resv", over the platform's own. It changes one thing: how a
    connection's writes reach its write-ahead log (WAL).

    SQLite appends a transaction to the WAL as frames, and writes each
    frame with two system calls: its 24-byte header, then the page. A
    commit of ten pages is twenty pwrite calls, and on a virtual machine
    each call is dear. This VFS gathers the contiguous writes of a WAL
    file in memory and hands them to the file as one write:

      - when the page of a commit frame (a frame header whose "database
        size" field is not zero, see SQLite's WAL file format) has been
        gathered: the commit is on its way to readers, so it is written
        now, and a failure is the commit's own failure, returned to
        SQLite from that write before it publishes anything;
      - before anything else touches the WAL or its index: a read, sync,
        truncate, size query, file control or close of the WAL, and any
        shared-memory call (lock, barrier, map, unmap) of its database.
        So no other process or connection can see, or write over, frames
        that are still in memory; in particular, a transaction that
        spilled frames and then rolled back writes them before it drops
        the WAL's write lock.
      - when the gathered bytes would pass S_GATHER_MAX.

    What the file holds after each commit, and when, is what SQLite
    alone would have written; only the number of calls differs. Files
    other than WALs are passed through untouched.
*/

#include "db.h"
#include <czmq.h>
#include <pthread.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <errno.h>
#include <limits.h>

//  Most bytes gathered before a write. SQLite's unix VFS writes at most
//  128 KiB - 1 bytes per call (it masks a write's size to 17 bits, as
//  SQLite itself never writes more than a page), so stay under that: 29
//  frames of 4 KiB pages.
#define S_GATHER_MAX    (120 * 1024)

//  Size of a WAL frame header; its bytes 4 to 7 are the database size in
//  pages after a commit, zero on frames that do not end a transaction.
#define S_FRAME_HEADER  24

typedef struct s_file_t s_file_t;
struct s_file_t {
    sqlite3_file base;          //  Must be first: SQLite sees this
    sqlite3_file *real;         //  The platform's file, just after us
    s_file_t *wal;              //  On a database: its open WAL, if any
    s_file_t *db;               //  On a WAL: its database
    bool is_wal;                //  Writes are gathered
    unsigned char *data;        //  Gathered bytes
    size_t size;                //  How many
    size_t max;                 //  Room in data
    sqlite3_int64 offset;       //  Where they go in the file
    bool commit_header;         //  The last write was a commit's header
};

static sqlite3_vfs *s_real_vfs;
static sqlite3_vfs s_vfs;
static sqlite3_io_methods s_methods;
static pthread_once_t s_setup_once = PTHREAD_ONCE_INIT;

//  Writes what is gathered. On failure the bytes are dropped: SQLite
//  treats the failed write as the failure of the transaction.
static int
s_flush (s_file_t *self)
{
    if (self->size == 0)
        return SQLITE_OK;
    int rc = self->real->pMethods->xWrite (self->real, self->data,
                                           (int) self->size, self->offset);
    self->size = 0;
    return rc;
}

//  Writes the gathered bytes of a database's WAL before a shared-memory
//  call of the database. The commit path has written a commit's frames
//  already, so this finds only frames of a transaction not committed (or
//  nothing); a failure is logged, as a barrier cannot return it.
static int
s_flush_wal_of (s_file_t *db)
{
    if (!db->wal)
        return SQLITE_OK;
    int rc = s_flush (db->wal);
    if (rc != SQLITE_OK)
        zsys_error ("db: cannot write the WAL (SQLite error %d)", rc);
    return rc;
}

static int
s_gather (s_file_t *self, const void *data, int amount, sqlite3_int64 offset)
{
    if (self->size > 0 && offset != self->offset + (sqlite3_int64) self->size) {
        int rc = s_flush (self);
        if (rc != SQLITE_OK)
            return rc;
    }
    if (self->size + amount > S_GATHER_MAX) {
        int rc = s_flush (self);
        if (rc != SQLITE_OK)
            return rc;
        if ((size_t) amount > S_GATHER_MAX / 2)
            return self->real->pMethods->xWrite (self->real, data, amount,
                                                 offset);
    }
    if (self->size + amount > self->max) {
        size_t max = self->max? self->max: 8192;
        while (max < self->size + amount)
            max *= 2;
        unsigned char *grown = realloc (self->data, max);
        if (!grown) {
            int rc = s_flush (self);
            if (rc != SQLITE_OK)
                return rc;
            return self->real->pMethods->xWrite (self->real, data, amount,
                                                 offset);
        }
        self->data = grown;
        self->max = max;
    }
    if (self->size == 0)
        self->offset = offset;
    memcpy (self->data + self->size, data, amount);
    self->size += amount;
    return SQLITE_OK;
}

static int
s_write (sqlite3_file *file, const void *data, int amount,
         sqlite3_int64 offset)
{
    s_file_t *self = (s_file_t *) file;
    if (!self->is_wal)
        return self->real->pMethods->xWrite (self->real, data, amount, offset);

    bool ends_commit = self->commit_header;
    const unsigned char *bytes = data;
    self->commit_header = amount == S_FRAME_HEADER
                       && (bytes [4] | bytes [5] | bytes [6] | bytes [7]);
    int rc = s_gather (self, data, amount, offset);
    if (rc == SQLITE_OK && ends_commit)
        rc = s_flush (self);
    return rc;
}

//  Every other call of a WAL writes what is gathered first.
#define S_FLUSH_FIRST(file) do { \
    s_file_t *self_ = (s_file_t *) (file); \
    self_->commit_header = false; \
    int rc_ = s_flush (self_); \
    if (rc_ != SQLITE_OK) \
        return rc_; \
} while (0)

static int
s_close (sqlite3_file *file)
{
    s_file_t *self = (s_file_t *) file;
    int flushed = s_flush (self);
    if (self->db && self->db->wal == self)
        self->db->wal = NULL;
    if (self->wal && self->wal->db == self)
        self->wal->db = NULL;
    free (self->data);
    self->data = NULL;
    int rc = self->real->pMethods->xClose (self->real);
    return flushed != SQLITE_OK? flushed: rc;
}

static int
s_read (sqlite3_file *file, void *data, int amount, sqlite3_int64 offset)
{
    S_FLUSH_FIRST (file);
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xRead (real, data, amount, offset);
}

static int
s_truncate (sqlite3_file *file, sqlite3_int64 size)
{
    S_FLUSH_FIRST (file);
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xTruncate (real, size);
}

static int
s_sync (sqlite3_file *file, int flags)
{
    S_FLUSH_FIRST (file);
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xSync (real, flags);
}

static int
s_file_size (sqlite3_file *file, sqlite3_int64 *size_p)
{
    S_FLUSH_FIRST (file);
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xFileSize (real, size_p);
}

static int
s_lock (sqlite3_file *file, int level)
{
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xLock (real, level);
}

static int
s_unlock (sqlite3_file *file, int level)
{
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xUnlock (real, level);
}

static int
s_check_reserved_lock (sqlite3_file *file, int *out_p)
{
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xCheckReservedLock (real, out_p);
}

static int
s_file_control (sqlite3_file *file, int op, void *arg)
{
    S_FLUSH_FIRST (file);
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xFileControl (real, op, arg);
}

static int
s_sector_size (sqlite3_file *file)
{
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xSectorSize (real);
}

static int
s_device_characteristics (sqlite3_file *file)
{
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xDeviceCharacteristics (real);
}

//  The shared-memory calls are made on the database file; its WAL's
//  gathered frames are written before any of them.
static int
s_shm_map (sqlite3_file *file, int page, int page_size, int extend,
           void volatile **map_p)
{
    s_file_t *self = (s_file_t *) file;
    int rc = s_flush_wal_of (self);
    if (rc != SQLITE_OK)
        return rc;
    return self->real->pMethods->xShmMap (self->real, page, page_size,
                                          extend, map_p);
}

static int
s_shm_lock (sqlite3_file *file, int offset, int count, int flags)
{
    s_file_t *self = (s_file_t *) file;
    int rc = s_flush_wal_of (self);
    if (rc != SQLITE_OK && (flags & SQLITE_SHM_LOCK))
        return rc;              //  An unlock must still happen
    return self->real->pMethods->xShmLock (self->real, offset, count, flags);
}

static void
s_shm_barrier (sqlite3_file *file)
{
    s_file_t *self = (s_file_t *) file;
    s_flush_wal_of (self);
    self->real->pMethods->xShmBarrier (self->real);
}

static int
s_shm_unmap (sqlite3_file *file, int delete_flag)
{
    s_file_t *self = (s_file_t *) file;
    s_flush_wal_of (self);
    return self->real->pMethods->xShmUnmap (self->real, delete_flag);
}

static int
s_fetch (sqlite3_file *file, sqlite3_int64 offset, int amount, void **page_p)
{
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xFetch (real, offset, amount, page_p);
}

static int
s_unfetch (sqlite3_file *file, sqlite3_int64 offset, void *page)
{
    sqlite3_file *real = ((s_file_t *) file)->real;
    return real->pMethods->xUnfetch (real, offset, page);
}

static int
s_open (sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags,
        int *out_flags_p)
{
    (void) vfs;
    s_file_t *self = (s_file_t *) file;
    memset (self, 0, sizeof (*self));
    self->real = (sqlite3_file *) (self + 1);
    int rc = s_real_vfs->xOpen (s_real_vfs, name, self->real, flags,
                                out_flags_p);
    //  SQLite closes a file whose methods are set, even after a failed
    //  open; ours then close the platform's.
    self->base.pMethods = self->real->pMethods? &s_methods: NULL;
    if (rc != SQLITE_OK || !self->real->pMethods)
        return rc;
    //  The calls forwarded here exist from version 3 of the methods,
    //  which the platform's VFS has had since SQLite 3.7.17.
    if (self->real->pMethods->iVersion < 3) {
        self->real->pMethods->xClose (self->real);
        self->base.pMethods = NULL;
        return SQLITE_CANTOPEN;
    }
    if ((flags & SQLITE_OPEN_WAL) && name) {
        self->db = (s_file_t *) sqlite3_database_file_object (name);
        self->db->wal = self;
        self->is_wal = true;
    }
    return SQLITE_OK;
}

//  The VFS calls other than open are the platform's own.
static int
s_delete (sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    (void) vfs;
    return s_real_vfs->xDelete (s_real_vfs, name, sync_dir);
}

static int
s_access (sqlite3_vfs *vfs, const char *name, int flags, int *out_p)
{
    (void) vfs;
    return s_real_vfs->xAccess (s_real_vfs, name, flags, out_p);
}

static int
s_full_pathname (sqlite3_vfs *vfs, const char *name, int size, char *out)
{
    (void) vfs;
    return s_real_vfs->xFullPathname (s_real_vfs, name, size, out);
}

static void *
s_dl_open (sqlite3_vfs *vfs, const char *name)
{
    (void) vfs;
    return s_real_vfs->xDlOpen (s_real_vfs, name);
}

static void
s_dl_error (sqlite3_vfs *vfs, int size, char *out)
{
    (void) vfs;
    s_real_vfs->xDlError (s_real_vfs, size, out);
}

static void
(*s_dl_sym (sqlite3_vfs *vfs, void *handle, const char *symbol)) (void)
{
    (void) vfs;
    return s_real_vfs->xDlSym (s_real_vfs, handle, symbol);
}

static void
s_dl_close (sqlite3_vfs *vfs, void *handle)
{
    (void) vfs;
    s_real_vfs->xDlClose (s_real_vfs, handle);
}

static int
s_randomness (sqlite3_vfs *vfs, int size, char *out)
{
    (void) vfs;
    return s_real_vfs->xRandomness (s_real_vfs, size, out);
}

static int
s_sleep (sqlite3_vfs *vfs, int micros)
{
    (void) vfs;
    return s_real_vfs->xSleep (s_real_vfs, micros);
}

static int
s_current_time (sqlite3_vfs *vfs, double *now_p)
{
    (void) vfs;
    return s_real_vfs->xCurrentTime (s_real_vfs, now_p);
}

static int
s_get_last_error (sqlite3_vfs *vfs, int size, char *out)
{
    (void) vfs;
    return s_real_vfs->xGetLastError (s_real_vfs, size, out);
}

static int
s_current_time_int64 (sqlite3_vfs *vfs, sqlite3_int64 *now_p)
{
    (void) vfs;
    return s_real_vfs->xCurrentTimeInt64 (s_real_vfs, now_p);
}

//  Process-wide settings; sqlite3_config works only before SQLite's first
//  use, and refuses (harmlessly) after it.
static void
s_setup (void)
{
    sqlite3_config (SQLITE_CONFIG_MEMSTATUS, 0);

    s_real_vfs = sqlite3_vfs_find (NULL);
    if (!s_real_vfs || s_real_vfs->iVersion < 2)
        return;                 //  db_open then uses SQLite's default
    s_methods = (sqlite3_io_methods) {
        .iVersion = 3,
        .xClose = s_close,
        .xRead = s_read,
        .xWrite = s_write,
        .xTruncate = s_truncate,
        .xSync = s_sync,
        .xFileSize = s_file_size,
        .xLock = s_lock,
        .xUnlock = s_unlock,
        .xCheckReservedLock = s_check_reserved_lock,
        .xFileControl = s_file_control,
        .xSectorSize = s_sector_size,
        .xDeviceCharacteristics = s_device_characteristics,
        .xShmMap = s_shm_map,
        .xShmLock = s_shm_lock,
        .xShmBarrier = s_shm_barrier,
        .xShmUnmap = s_shm_unmap,
        .xFetch = s_fetch,
        .xUnfetch = s_unfetch
    };
    s_vfs = (sqlite3_vfs) {
        .iVersion = 2,
        .szOsFile = (int) sizeof (s_file_t) + s_real_vfs->szOsFile,
        .mxPathname = s_real_vfs->mxPathname,
        .zName = "resv",
        .xOpen = s_open,
        .xDelete = s_delete,
        .xAccess = s_access,
        .xFullPathname = s_full_pathname,
        .xDlOpen = s_dl_open,
        .xDlError = s_dl_error,
        .xDlSym = s_dl_sym,
        .xDlClose = s_dl_close,
        .xRandomness = s_randomness,
        .xSleep = s_sleep,
        .xCurrentTime = s_current_time,
        .xGetLastError = s_get_last_error,
        .xCurrentTimeInt64 = s_current_time_int64
    };
    if (sqlite3_vfs_register (&s_vfs, 0) != SQLITE_OK)
        s_real_vfs = NULL;
}

//  When this thread's current wait for a lock began (monotonic ms): the
//  waits of one thread come one after the other, each from tries 0.
static __thread int64_t s_busy_since;

//  One wait of a busy handler, tries being SQLite's count of them: polls
//  every 50 us for the first 100 tries (5 ms and more), then every 200 us.
//  Returns 1 to try again, 0 once timeout_ms have passed by the clock
//  (a sleep lasts longer than asked, by more on a loaded machine).
static int
s_busy_step (int tries, int timeout_ms)
{
    int64_t now = zclock_mono ();
    if (tries == 0)
        s_busy_since = now;
    else
    if (now - s_busy_since >= timeout_ms)
        return 0;
    struct timespec pause = { 0, (tries < 100? 50: 200) * 1000 };
    nanosleep (&pause, NULL);
    return 1;
}

//  The busy handler of db_wait_busy: arg is the timeout in ms.
static int
s_busy (void *arg, int tries)
{
    return s_busy_step (tries, (int) (intptr_t) arg);
}

void
db_wait_busy (sqlite3 *db, int timeout_ms)
{
    sqlite3_busy_handler (db, s_busy, (void *) (intptr_t) timeout_ms);
}

//  The busy handler of db_wait_busy_calling: arg is its db_busy_t.
static int
s_busy_calling (void *arg, int tries)
{
    db_busy_t *busy = (db_busy_t *) arg;
    int rc = s_busy_step (tries, busy->timeout_ms);
    int64_t now = zclock_mono ();
    if (rc && (tries == 0 || now >= busy->next)) {
        busy->next = now + 100;
        busy->waiting (busy->arg);
    }
    return rc;
}

void
db_wait_busy_calling (sqlite3 *db, db_busy_t *busy)
{
    if (busy->waiting)
        sqlite3_busy_handler (db, s_busy_calling, busy);
    else
        db_wait_busy (db, busy->timeout_ms);
}

int
db_exec_retry (sqlite3 *db, const char *sql, int timeout_ms, char **error_p)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int rc = sqlite3_exec (db, sql, NULL, NULL, error_p);
        int primary = rc & 0xff;
        if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED)
        ||  zclock_mono () >= deadline)
            return rc;
        if (error_p) {
            sqlite3_free (*error_p);
            *error_p = NULL;
        }
        zclock_sleep (5);
    }
}

bool
db_moved (sqlite3 *db, db_moved_t *self)
{
    int64_t now = zclock_mono ();
    if (now >= self->next) {
        //  The unix VFS stats the path and compares the inode (ours
        //  passes the file control on to it); a VFS that does not know
        //  the file control leaves moved alone.
        int moved = 0;
        sqlite3_file_control (db, "main", SQLITE_FCNTL_HAS_MOVED, &moved);
        self->moved = moved != 0;
        self->next = now + DB_MOVED_CHECK_MS;
    }
    return self->moved;
}

int
db_open (const char *path, int flags, sqlite3 **db_p)
{
    pthread_once (&s_setup_once, s_setup);
    return sqlite3_open_v2 (path, db_p, flags | SQLITE_OPEN_NOMUTEX,
                            s_real_vfs? "resv": NULL);
}

const char *
db_open_error (sqlite3 *db, char *buf, size_t size)
{
    int error = db? sqlite3_system_errno (db): 0;
    const char *message = db? sqlite3_errmsg (db): "out of memory";
    if (error)
        snprintf (buf, size, "%s: %s", message, strerror (error));
    else
        snprintf (buf, size, "%s", message);
    return buf;
}

int
db_dir_create (const char *dir)
{
    //  mkdir -p: each level in turn, where one that is there already,
    //  made by us or by another process a moment ago, is fine.
    char path [PATH_MAX];
    size_t size = strlen (dir);
    if (size == 0 || size >= sizeof path) {
        errno = size? ENAMETOOLONG: ENOENT;
        return -1;
    }
    memcpy (path, dir, size + 1);
    for (size_t end = 1; end <= size; end++) {
        if (path [end] != '/' && path [end] != 0)
            continue;
        char kept = path [end];
        path [end] = 0;
        struct stat info;
        if (mkdir (path, 0777) == -1 && errno != EEXIST)
            return -1;
        if (stat (path, &info) == -1)
            return -1;
        if (!S_ISDIR (info.st_mode)) {
            errno = ENOTDIR;
            return -1;
        }
        path [end] = kept;
    }
    return 0;
}

int
db_lock (const char *path)
{
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1)
        return -1;
    if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
        int error = errno;
        close (fd);
        errno = error;
        return -1;
    }
    return fd;
}
