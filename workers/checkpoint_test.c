/*  checkpoint_test.c: the checkpointer (checkpoint.h), on a real SQLite
    file in a temporary directory.  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <sys/stat.h>
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

int
main (void)
{
    zsys_init ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_checkpoints_in_its_thread),
    };
    return cmocka_run_group_tests_name ("checkpoint", tests, NULL, NULL);
}
