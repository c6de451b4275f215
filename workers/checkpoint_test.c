/*  checkpoint_test.c: the checkpointer (checkpoint.h), on a real SQLite
    file in a temporary directory.  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>
#include "checkpoint.h"

//  Size of the file at path, -1 if there is none.
static int64_t
s_size (const char *path)
{
    struct stat info;
    return stat (path, &info) == 0? (int64_t) info.st_size: -1;
}

static void
test_checkpoints_in_its_thread (void **state)
{
    (void) state;
    char dir [] = "/tmp/resv-checkpoint-test.XXXXXX";
    assert_non_null (mkdtemp (dir));
    char *path = zsys_sprintf ("%s/x.db", dir);
    sqlite3 *db;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    //  As the stores and the journal are set: WAL, and checkpoints left
    //  to the checkpointer. Some 4 MB of rows stay in the WAL.
    assert_int_equal (sqlite3_exec (db, "PRAGMA journal_mode = WAL;"
        CHECKPOINT_SAFETY_SQL "CREATE TABLE t (x TEXT);"
        "WITH RECURSIVE n (i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n"
        "    WHERE i < 4000) INSERT INTO t SELECT printf ('%01000d', i) FROM n;",
        NULL, NULL, NULL), SQLITE_OK);
    int64_t before = s_size (path);
    assert_true (before < 100000);
    //  The checkpointer copies the WAL into the database by itself.
    zactor_t *checkpoint = checkpoint_new (path);
    assert_non_null (checkpoint);
    int64_t end = zclock_mono () + 5000;
    while (s_size (path) < 4000000 && zclock_mono () < end)
        zclock_sleep (20);
    assert_true (s_size (path) >= 4000000);
    checkpoint_destroy (&checkpoint);
    checkpoint_destroy (&checkpoint);
    checkpoint_destroy (NULL);
    //  Nothing lost on the way.
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT count (*) FROM t", -1,
                                          &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int (stmt, 0), 4000);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    //  A file that cannot be opened is logged, and the thread still stops.
    char *missing = zsys_sprintf ("%s/no/such.db", dir);
    checkpoint = checkpoint_new (missing);
    assert_non_null (checkpoint);
    checkpoint_destroy (&checkpoint);
    zstr_free (&missing);
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    assert_int_equal (system (command), 0);
    zstr_free (&command);
    zstr_free (&path);
}

//  A writer that never pauses long enough for the WAL to be all copied back
//  when it begins a transaction never restarts the WAL itself; with its
//  own checkpoints off, the WAL would grow by a frame per commit. The
//  checkpointer restarts it once it is CHECKPOINT_RESTART_FRAMES long.
static void
test_restarts_a_long_wal (void **state)
{
    (void) state;
    char dir [] = "/tmp/resv-checkpoint-test.XXXXXX";
    assert_non_null (mkdtemp (dir));
    char *path = zsys_sprintf ("%s/x.db", dir);
    char *wal = zsys_sprintf ("%s-wal", path);
    sqlite3 *db;
    assert_int_equal (sqlite3_open (path, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db, "PRAGMA journal_mode = WAL;"
        "PRAGMA wal_autocheckpoint = 0; PRAGMA synchronous = NORMAL;"
        "CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER);"
        "INSERT INTO t VALUES (1, 0);", NULL, NULL, NULL), SQLITE_OK);
    zactor_t *checkpoint = checkpoint_new (path);
    assert_non_null (checkpoint);
    //  Each commit changes one page: one frame. 4 times the restart
    //  length, 100 us apart at least.
    sqlite3_stmt *stmt;
    assert_int_equal (sqlite3_prepare_v2 (db,
        "UPDATE t SET n = n + 1 WHERE id = 1", -1, &stmt, NULL), SQLITE_OK);
    sqlite3_busy_timeout (db, 5000);
    int commits = 4 * CHECKPOINT_RESTART_FRAMES;
    for (int i = 0; i < commits; i++) {
        assert_int_equal (sqlite3_step (stmt), SQLITE_DONE);
        sqlite3_reset (stmt);
        struct timespec pause = { 0, 100000 };
        nanosleep (&pause, NULL);
    }
    sqlite3_finalize (stmt);
    //  Frames of 4 KiB and a header each: the WAL was started over at
    //  least once (it stays as long as it ever was).
    int64_t frame = 4096 + 24;
    assert_true (s_size (wal) > 0);
    assert_true (s_size (wal) < 3 * CHECKPOINT_RESTART_FRAMES * frame);
    checkpoint_destroy (&checkpoint);
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT n FROM t", -1,
                                          &stmt, NULL), SQLITE_OK);
    assert_int_equal (sqlite3_step (stmt), SQLITE_ROW);
    assert_int_equal (sqlite3_column_int (stmt, 0), commits);
    sqlite3_finalize (stmt);
    sqlite3_close (db);
    char *command = zsys_sprintf ("rm -rf '%s'", dir);
    assert_int_equal (system (command), 0);
    zstr_free (&command);
    zstr_free (&wal);
    zstr_free (&path);
}

int
main (void)
{
    zsys_init ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_checkpoints_in_its_thread),
        cmocka_unit_test (test_restarts_a_long_wal),
    };
    return cmocka_run_group_tests_name ("checkpoint", tests, NULL, NULL);
}
