/*  db_test.c: resv's SQLite connections (db.h) and the VFS that gathers
    WAL writes, on real files in a temporary directory. Each test fails if
    gathered frames reach the file too late: another connection would read
    a commit whose frames are not there, a killed process would lose a
    commit, or a writer would write old frames over newer ones.  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <czmq.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include "db.h"

typedef struct {
    char dir [64];
    char *path;
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *self = calloc (1, sizeof (s_fixture_t));
    strcpy (self->dir, "/tmp/resv-db-test.XXXXXX");
    if (!mkdtemp (self->dir))
        return -1;
    self->path = zsys_sprintf ("%s/x.db", self->dir);
    *state = self;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *self = *state;
    char *command = zsys_sprintf ("rm -rf '%s'", self->dir);
    int rc = system (command);
    zstr_free (&command);
    zstr_free (&self->path);
    free (self);
    return rc == 0? 0: -1;
}

//  Opens path as the stores do: WAL, commits not synced.
static sqlite3 *
s_open (const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal (db_open (path, SQLITE_OPEN_READWRITE
                                   | SQLITE_OPEN_CREATE, &db), SQLITE_OK);
    sqlite3_busy_timeout (db, 5000);
    assert_int_equal (sqlite3_exec (db, "PRAGMA journal_mode = WAL;"
                                        "PRAGMA synchronous = NORMAL;",
                                    NULL, NULL, NULL), SQLITE_OK);
    return db;
}

static void
s_exec (sqlite3 *db, const char *sql)
{
    int rc = sqlite3_exec (db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fail_msg ("%s: %s", sql, sqlite3_errmsg (db));
}

//  The single integer that sql returns.
static int64_t
s_number (sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db, sql, -1, &stmt, NULL),
                      SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    int64_t number = sqlite3_column_int64 (stmt, 0);
    sqlite3_finalize (stmt);
    return number;
}

static void
s_assert_intact (sqlite3 *db)
{
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db, "PRAGMA integrity_check", -1,
                                          &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_string_equal ((const char *) sqlite3_column_text (stmt, 0), "ok");
    sqlite3_finalize (stmt);
}

//  Rows of t hold i and a blob of n bytes, each byte i % 251.
#define S_TABLE "CREATE TABLE IF NOT EXISTS t (i INTEGER PRIMARY KEY, b BLOB);"
#define S_ROW(from, to, size) \
    "WITH RECURSIVE n (i) AS (SELECT " #from " UNION ALL SELECT i + 1" \
    " FROM n WHERE i < " #to ") INSERT INTO t" \
    " SELECT i, zeroblob (" #size ") FROM n;"

static void
test_commit_is_seen_at_once (void **state)
{
    s_fixture_t *self = *state;
    sqlite3 *writer = s_open (self->path);
    sqlite3 *reader = s_open (self->path);
    s_exec (writer, S_TABLE);
    //  Transactions of one to many pages; the reader sees each whole as
    //  soon as its COMMIT returns.
    for (int i = 1; i <= 200; i++) {
        char *sql = zsys_sprintf ("BEGIN; INSERT INTO t VALUES (%d,"
            " randomblob (%d)); COMMIT;", i, 100 + (i * 397) % 9000);
        s_exec (writer, sql);
        zstr_free (&sql);
        char *count = zsys_sprintf ("SELECT count (*) FROM t WHERE i <= %d"
                                    " AND length (b) = 100 + (i * 397) %% 9000",
                                    i);
        assert_int_equal (s_number (reader, count), i);
        zstr_free (&count);
    }
    s_assert_intact (reader);
    sqlite3_close (writer);
    sqlite3_close (reader);
}

static void
test_commit_survives_kill (void **state)
{
    s_fixture_t *self = *state;
    int ready [2];
    assert_int_equal (pipe (ready), 0);
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        //  Commits, says so, and waits to be killed with the connection
        //  open: whatever it gathered and did not write is lost.
        sqlite3 *db = s_open (self->path);
        s_exec (db, S_TABLE);
        for (int i = 1; i <= 50; i++) {
            char *sql = zsys_sprintf ("INSERT INTO t VALUES (%d,"
                                      " randomblob (%d));", i, i * 100);
            s_exec (db, sql);
            zstr_free (&sql);
        }
        if (write (ready [1], "x", 1) != 1)
            _exit (1);
        pause ();
        _exit (0);
    }
    char byte;
    assert_int_equal (read (ready [0], &byte, 1), 1);
    kill (child, SIGKILL);
    int status;
    assert_int_equal (waitpid (child, &status, 0), child);
    close (ready [0]);
    close (ready [1]);
    sqlite3 *db = s_open (self->path);
    assert_int_equal (s_number (db, "SELECT count (*) FROM t"), 50);
    assert_int_equal (s_number (db, "SELECT sum (length (b)) FROM t"),
                      100 * 50 * 51 / 2);
    s_assert_intact (db);
    sqlite3_close (db);
}

static void
test_rolled_back_spill_is_not_written_later (void **state)
{
    s_fixture_t *self = *state;
    sqlite3 *spiller = s_open (self->path);
    sqlite3 *other = s_open (self->path);
    s_exec (spiller, S_TABLE);
    //  A page cache of a few pages makes a large transaction write frames
    //  to the WAL before its commit; it is then rolled back.
    s_exec (spiller, "PRAGMA cache_size = 5;");
    s_exec (spiller, "BEGIN;" S_ROW (1, 300, 2000));
    s_exec (spiller, "ROLLBACK;");
    //  Another connection commits where those frames were; the spiller
    //  then writes again and closes. Frames of its rolled-back transaction
    //  written now would overwrite the other's commit.
    s_exec (other, S_ROW (1000, 1040, 3000));
    s_exec (spiller, S_ROW (2000, 2001, 10));
    sqlite3_close (spiller);
    sqlite3_close (other);
    sqlite3 *db = s_open (self->path);
    assert_int_equal (s_number (db, "SELECT count (*) FROM t"), 43);
    assert_int_equal (s_number (db, "SELECT count (*) FROM t WHERE i < 1000"),
                      0);
    s_assert_intact (db);
    sqlite3_close (db);
}

static void
test_large_transaction (void **state)
{
    s_fixture_t *self = *state;
    sqlite3 *writer = s_open (self->path);
    sqlite3 *reader = s_open (self->path);
    //  About 6 MB in one commit: many times what is gathered at once.
    s_exec (writer, S_TABLE "BEGIN;" S_ROW (1, 2000, 3000) "COMMIT;");
    assert_int_equal (s_number (reader, "SELECT count (*) FROM t"), 2000);
    assert_int_equal (s_number (reader, "SELECT sum (length (b)) FROM t"),
                      2000 * 3000);
    s_assert_intact (reader);
    sqlite3_close (writer);
    sqlite3_close (reader);
}

static void
test_failed_write_fails_the_commit (void **state)
{
    s_fixture_t *self = *state;
    sqlite3 *db = s_open (self->path);
    s_exec (db, S_TABLE S_ROW (1, 10, 100));
    sqlite3_close (db);
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        //  Files may not grow past 200 KB (as on a full disk, writes past
        //  it fail). The small commit fits; the large one must fail.
        signal (SIGXFSZ, SIG_IGN);
        struct rlimit limit = { 200000, 200000 };
        if (setrlimit (RLIMIT_FSIZE, &limit) != 0)
            _exit (10);
        sqlite3 *db = s_open (self->path);
        if (sqlite3_exec (db, S_ROW (11, 12, 100), NULL, NULL, NULL)
            != SQLITE_OK)
            _exit (11);
        int rc = sqlite3_exec (db, "BEGIN;" S_ROW (100, 200, 3000) "COMMIT;",
                               NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            _exit (12);
        sqlite3_exec (db, "ROLLBACK;", NULL, NULL, NULL);
        sqlite3_close (db);
        _exit (0);
    }
    int status;
    assert_int_equal (waitpid (child, &status, 0), child);
    assert_true (WIFEXITED (status));
    assert_int_equal (WEXITSTATUS (status), 0);
    //  Nothing of the failed commit is there; all of the others is.
    db = s_open (self->path);
    assert_int_equal (s_number (db, "SELECT count (*) FROM t"), 12);
    assert_int_equal (s_number (db, "SELECT count (*) FROM t WHERE i >= 100"),
                      0);
    s_assert_intact (db);
    sqlite3_close (db);
}

//  Forks a child that opens path, runs begin (a transaction that takes a
//  lock), holds it for ms, then rolls back and exits 0. It writes 'y' to
//  fds [1] once it holds the lock and 'r' just before it lets it go; this
//  returns once it has read the 'y'. The caller then calls s_let_go.
static pid_t
s_hold_lock (const char *path, const char *begin, int ms, int fds [2])
{
    assert_int_equal (pipe (fds), 0);
    pid_t child = fork ();
    assert_true (child >= 0);
    if (child == 0) {
        sqlite3 *db = NULL;
        int rc = db_open (path, SQLITE_OPEN_READWRITE, &db);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec (db, begin, NULL, NULL, NULL);
        ssize_t written = write (fds [1], rc == SQLITE_OK? "y": "n", 1);
        zclock_sleep (ms);
        written += write (fds [1], "r", 1);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec (db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close (db);
        _exit (rc == SQLITE_OK && written == 2? 0: 1);
    }
    char said;
    assert_int_equal (read (fds [0], &said, 1), 1);
    assert_int_equal (said, 'y');
    return child;
}

//  Waits for the child of s_hold_lock, checks it exited 0, closes fds.
static void
s_let_go (pid_t child, int fds [2])
{
    int status;
    assert_int_equal (waitpid (child, &status, 0), child);
    assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
    close (fds [0]);
    close (fds [1]);
}

//  db_exec_retry runs its SQL again while the file is locked, where
//  sqlite3_exec on a connection without a busy handler (as SQLite treats
//  some waits) fails at once; and gives up at its timeout.
static void
test_exec_retry_waits_for_the_lock (void **state)
{
    s_fixture_t *self = *state;
    sqlite3 *setup = NULL;
    assert_int_equal (db_open (self->path, SQLITE_OPEN_READWRITE
                                         | SQLITE_OPEN_CREATE, &setup), SQLITE_OK);
    s_exec (setup, S_TABLE);
    sqlite3_close (setup);
    //  A child holds the file (rollback journal: its exclusive lock keeps
    //  every reader out) for 300 ms.
    int fds [2];
    pid_t child = s_hold_lock (self->path, "BEGIN EXCLUSIVE", 300, fds);
    sqlite3 *db = NULL;
    assert_int_equal (db_open (self->path, SQLITE_OPEN_READWRITE, &db), SQLITE_OK);
    const char *sql = "CREATE TABLE IF NOT EXISTS u (x);"
                      "INSERT INTO u VALUES (1);";
    assert_int_equal (sqlite3_exec (db, sql, NULL, NULL, NULL), SQLITE_BUSY);
    char *error = NULL;
    assert_int_equal (db_exec_retry (db, sql, 20, &error), SQLITE_BUSY);
    assert_non_null (error);
    sqlite3_free (error);
    error = NULL;
    int64_t start = zclock_mono ();
    assert_int_equal (db_exec_retry (db, sql, 5000, &error), SQLITE_OK);
    assert_null (error);
    assert_true (zclock_mono () - start < 5000);
    assert_int_equal (s_number (db, "SELECT count (*) FROM u"), 1);
    s_let_go (child, fds);
    sqlite3_close (db);
}

static void
s_count (void *arg)
{
    (*(int *) arg)++;
}

//  A wait for a lock gives up after its timeout, by the clock, while the
//  lock is still held; a wait with a function calls it while it waits, at
//  once and then about every 100 ms, and gets the lock once it is free.
static void
test_busy_wait_gives_up_and_calls (void **state)
{
    s_fixture_t *self = *state;
    sqlite3 *setup = s_open (self->path);
    s_exec (setup, S_TABLE);
    sqlite3_close (setup);
    //  A child holds the write lock for 1.5 s.
    int fds [2];
    pid_t child = s_hold_lock (self->path, "BEGIN IMMEDIATE", 1500, fds);
    char said;
    sqlite3 *quick = NULL;
    assert_int_equal (db_open (self->path, SQLITE_OPEN_READWRITE, &quick),
                      SQLITE_OK);
    db_wait_busy (quick, 200);
    assert_int_equal (sqlite3_exec (quick, "BEGIN IMMEDIATE", NULL, NULL, NULL),
                      SQLITE_BUSY);
    zmq_pollitem_t item = { NULL, fds [0], ZMQ_POLLIN, 0 };
    assert_int_equal (zmq_poll (&item, 1, 0), 0);   //  Still held
    int calls = 0;
    db_busy_t busy = { .timeout_ms = 10000, .waiting = s_count, .arg = &calls };
    sqlite3 *patient = NULL;
    assert_int_equal (db_open (self->path, SQLITE_OPEN_READWRITE, &patient),
                      SQLITE_OK);
    db_wait_busy_calling (patient, &busy);
    assert_int_equal (sqlite3_exec (patient, "BEGIN IMMEDIATE", NULL, NULL,
                                    NULL), SQLITE_OK);
    assert_int_equal (read (fds [0], &said, 1), 1);
    assert_int_equal (said, 'r');                   //  Got it once let go
    assert_true (calls >= 2);
    assert_int_equal (sqlite3_exec (patient, "COMMIT", NULL, NULL, NULL),
                      SQLITE_OK);
    //  Without a function it waits as db_wait_busy does.
    busy.waiting = NULL;
    db_wait_busy_calling (quick, &busy);
    assert_int_equal (sqlite3_exec (quick, "BEGIN IMMEDIATE; COMMIT;", NULL,
                                    NULL, NULL), SQLITE_OK);
    s_let_go (child, fds);
    sqlite3_close (quick);
    sqlite3_close (patient);
}

int
main (void)
{
    zsys_init ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_commit_is_seen_at_once,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_commit_survives_kill,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (
            test_rolled_back_spill_is_not_written_later, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_large_transaction,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_failed_write_fails_the_commit,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_exec_retry_waits_for_the_lock,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_busy_wait_gives_up_and_calls,
                                         s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("db", tests, NULL, NULL);
}
