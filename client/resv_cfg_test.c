/*  resv_cfg_test.c: unit tests of resv_cfg, the configuration module.

    Each test writes what it needs into a fresh temporary directory and
    sets the RESV_* variables it uses itself, clearing them afterwards, so
    tests do not depend on the caller's environment or on each other.
*/

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "resv_cfg.h"
#include <unistd.h>

//  Variables the tests set; cleared before and after each test.
static const char *s_test_vars [] = {
    "RESV_TEST_NAME", "RESV_TEST_NUMBER", "RESV_TEST_EMPTY",
    "RESV_BROKER_FRONTEND", "RESV_CLIENT_TIMEOUT", NULL
};

typedef struct {
    char dir [64];              //  Temporary directory of the test
    char cwd [1024];            //  Working directory to restore
} s_fixture_t;

static void
s_clear_env (void)
{
    for (int i = 0; s_test_vars [i]; i++)
        unsetenv (s_test_vars [i]);
}

static int
s_setup (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) calloc (1, sizeof *fixture);
    assert_non_null (fixture);
    strcpy (fixture->dir, "/tmp/resv-cfg-test.XXXXXX");
    assert_non_null (mkdtemp (fixture->dir));
    assert_non_null (getcwd (fixture->cwd, sizeof fixture->cwd));
    s_clear_env ();
    *state = fixture;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    s_clear_env ();
    assert_int_equal (chdir (fixture->cwd), 0);
    char path [256];
    const char *names [] = { "test.cfg", "bad.cfg", "config/resv.cfg", NULL };
    for (int i = 0; names [i]; i++) {
        snprintf (path, sizeof path, "%s/%s", fixture->dir, names [i]);
        unlink (path);
    }
    snprintf (path, sizeof path, "%s/config", fixture->dir);
    rmdir (path);
    rmdir (fixture->dir);
    free (fixture);
    return 0;
}

//  Writes text to name in the fixture's directory; returns the path in
//  path.
static void
s_write (s_fixture_t *fixture, const char *name, const char *text,
         char *path, size_t size)
{
    snprintf (path, size, "%s/%s", fixture->dir, name);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fputs (text, file);
    assert_int_equal (fclose (file), 0);
}

static const char *s_good_zpl =
    "test\n"
    "    name = \"from-file\"\n"
    "    number = 42\n"
    "    bad_number = \"12x\"\n"
    "    huge = 99999999999999999999\n"
    "    hex = 0x10\n"
    "    negative = -7\n"
    "    empty = \"\"\n";


//  --------------------------------------------------------------------------
//  Environment variable names

static void
test_env_name_simple (void **state)
{
    (void) state;
    char buf [64];
    assert_string_equal (resv_cfg_env_name ("broker/frontend", buf,
                                            sizeof buf),
                         "RESV_BROKER_FRONTEND");
    assert_ptr_equal (resv_cfg_env_name ("data/dir", buf, sizeof buf), buf);
    assert_string_equal (buf, "RESV_DATA_DIR");
}

static void
test_env_name_nested_and_dashes (void **state)
{
    (void) state;
    char buf [64];
    assert_string_equal (resv_cfg_env_name ("workers/echo/count", buf,
                                            sizeof buf),
                         "RESV_WORKERS_ECHO_COUNT");
    assert_string_equal (resv_cfg_env_name ("resvd/restart-min", buf,
                                            sizeof buf),
                         "RESV_RESVD_RESTART_MIN");
    assert_string_equal (resv_cfg_env_name ("broker/max_timeout", buf,
                                            sizeof buf),
                         "RESV_BROKER_MAX_TIMEOUT");
}

static void
test_env_name_exact_fit (void **state)
{
    (void) state;
    //  "RESV_A_B" and its NUL: 9 bytes.
    char buf [9];
    assert_string_equal (resv_cfg_env_name ("a/b", buf, sizeof buf),
                         "RESV_A_B");
}

static void
test_env_name_too_small (void **state)
{
    (void) state;
    char buf [8];
    assert_null (resv_cfg_env_name ("a/b", buf, sizeof buf));
    assert_null (resv_cfg_env_name ("broker/frontend", buf, sizeof buf));
}


//  --------------------------------------------------------------------------
//  String values: environment, then file, then default

static void
test_str_env_overrides_file (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    s_write (fixture, "test.cfg", s_good_zpl, path, sizeof path);
    resv_cfg_t *cfg = resv_cfg_load (path);
    assert_non_null (cfg);
    assert_string_equal (resv_cfg_str (cfg, "test/name", "dflt"),
                         "from-file");
    setenv ("RESV_TEST_NAME", "from-env", 1);
    assert_string_equal (resv_cfg_str (cfg, "test/name", "dflt"),
                         "from-env");
    resv_cfg_destroy (&cfg);
}

static void
test_str_default_when_unset (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    s_write (fixture, "test.cfg", s_good_zpl, path, sizeof path);
    resv_cfg_t *cfg = resv_cfg_load (path);
    assert_non_null (cfg);
    assert_string_equal (resv_cfg_str (cfg, "test/missing", "dflt"), "dflt");
    assert_null (resv_cfg_str (cfg, "test/missing", NULL));
    assert_string_equal (resv_cfg_str (cfg, "nosuch/section/key", "d2"),
                         "d2");
    resv_cfg_destroy (&cfg);
}

static void
test_str_empty_is_unset (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    s_write (fixture, "test.cfg", s_good_zpl, path, sizeof path);
    resv_cfg_t *cfg = resv_cfg_load (path);
    assert_non_null (cfg);
    //  An empty value in the file and an empty variable both fall through.
    assert_string_equal (resv_cfg_str (cfg, "test/empty", "dflt"), "dflt");
    setenv ("RESV_TEST_NAME", "", 1);
    assert_string_equal (resv_cfg_str (cfg, "test/name", "dflt"),
                         "from-file");
    resv_cfg_destroy (&cfg);
}

static void
test_str_without_configuration (void **state)
{
    (void) state;
    //  A NULL configuration still honours the environment and defaults.
    assert_string_equal (resv_cfg_str (NULL, "broker/frontend", "dflt"),
                         "dflt");
    setenv ("RESV_BROKER_FRONTEND", "tcp://127.0.0.1:1", 1);
    assert_string_equal (resv_cfg_str (NULL, "broker/frontend", "dflt"),
                         "tcp://127.0.0.1:1");
}


//  --------------------------------------------------------------------------
//  Integer values

static void
test_int_from_file_and_env (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    s_write (fixture, "test.cfg", s_good_zpl, path, sizeof path);
    resv_cfg_t *cfg = resv_cfg_load (path);
    assert_non_null (cfg);
    assert_int_equal (resv_cfg_int (cfg, "test/number", 1, 0, 100), 42);
    assert_int_equal (resv_cfg_int (cfg, "test/negative", 1, -10, 10), -7);
    assert_int_equal (resv_cfg_int (cfg, "test/missing", 5, 0, 100), 5);
    setenv ("RESV_TEST_NUMBER", "43", 1);
    assert_int_equal (resv_cfg_int (cfg, "test/number", 1, 0, 100), 43);
    resv_cfg_destroy (&cfg);
}

static void
test_int_bounds_inclusive (void **state)
{
    (void) state;
    setenv ("RESV_TEST_NUMBER", "100", 1);
    assert_int_equal (resv_cfg_int (NULL, "test/number", 1, 0, 100), 100);
    setenv ("RESV_TEST_NUMBER", "0", 1);
    assert_int_equal (resv_cfg_int (NULL, "test/number", 1, 0, 100), 0);
}

static void
test_int_not_a_number (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    s_write (fixture, "test.cfg", s_good_zpl, path, sizeof path);
    resv_cfg_t *cfg = resv_cfg_load (path);
    assert_non_null (cfg);
    assert_int_equal (resv_cfg_int (cfg, "test/bad_number", 7, 0, 100), 7);
    assert_int_equal (resv_cfg_int (cfg, "test/hex", 7, 0, 100), 7);
    assert_int_equal (resv_cfg_int (cfg, "test/name", 7, 0, 100), 7);
    setenv ("RESV_TEST_NUMBER", "1.5", 1);
    assert_int_equal (resv_cfg_int (cfg, "test/number", 7, 0, 100), 7);
    setenv ("RESV_TEST_NUMBER", "-", 1);
    assert_int_equal (resv_cfg_int (cfg, "test/number", 7, 0, 100), 7);
    resv_cfg_destroy (&cfg);
}

static void
test_int_out_of_range (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    s_write (fixture, "test.cfg", s_good_zpl, path, sizeof path);
    resv_cfg_t *cfg = resv_cfg_load (path);
    assert_non_null (cfg);
    assert_int_equal (resv_cfg_int (cfg, "test/number", 7, 0, 41), 7);
    assert_int_equal (resv_cfg_int (cfg, "test/number", 7, 43, 100), 7);
    assert_int_equal (resv_cfg_int (cfg, "test/negative", 7, 0, 100), 7);
    //  Beyond what 64 bits hold: strtoll's ERANGE.
    assert_int_equal (resv_cfg_int (cfg, "test/huge", 7, INT64_MIN,
                                    INT64_MAX), 7);
    setenv ("RESV_TEST_NUMBER", "101", 1);
    assert_int_equal (resv_cfg_int (cfg, "test/number", 7, 0, 100), 7);
    resv_cfg_destroy (&cfg);
}


//  --------------------------------------------------------------------------
//  Loading files

static void
test_load_missing_file (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    snprintf (path, sizeof path, "%s/no-such.cfg", fixture->dir);
    assert_null (resv_cfg_load (path));
}

static void
test_load_bad_zpl (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    s_write (fixture, "bad.cfg", "broker\n    frontend = \"tcp://x\n",
             path, sizeof path);
    assert_null (resv_cfg_load (path));
    s_write (fixture, "bad.cfg", "broker\n   frontend = 1\n", path,
             sizeof path);
    assert_null (resv_cfg_load (path));
    s_write (fixture, "bad.cfg", "=1\n", path, sizeof path);
    assert_null (resv_cfg_load (path));
}

static void
test_load_directory (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    //  A directory is no configuration file.
    assert_null (resv_cfg_load (fixture->dir));
}

static void
test_load_default_absent (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    assert_int_equal (chdir (fixture->dir), 0);
    resv_cfg_t *cfg = resv_cfg_load (NULL);
    assert_non_null (cfg);
    assert_string_equal (resv_cfg_str (cfg, "broker/frontend", "dflt"),
                         "dflt");
    resv_cfg_destroy (&cfg);
}

static void
test_load_default_present (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    snprintf (path, sizeof path, "%s/config", fixture->dir);
    assert_int_equal (mkdir (path, 0700), 0);
    s_write (fixture, RESV_CFG_DEFAULT_PATH,
             "broker\n    frontend = \"tcp://127.0.0.1:9\"\n",
             path, sizeof path);
    assert_int_equal (chdir (fixture->dir), 0);
    resv_cfg_t *cfg = resv_cfg_load (NULL);
    assert_non_null (cfg);
    assert_string_equal (resv_cfg_str (cfg, "broker/frontend", "dflt"),
                         "tcp://127.0.0.1:9");
    resv_cfg_destroy (&cfg);
}

static void
test_load_default_bad (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    snprintf (path, sizeof path, "%s/config", fixture->dir);
    assert_int_equal (mkdir (path, 0700), 0);
    s_write (fixture, RESV_CFG_DEFAULT_PATH, "=1\n", path, sizeof path);
    assert_int_equal (chdir (fixture->dir), 0);
    assert_null (resv_cfg_load (NULL));
}

//  resv_cfg_text is the text the configuration was loaded from; with no
//  file, a text that loads to an empty configuration.
static void
test_text_is_the_file (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    s_write (fixture, "test.cfg", s_good_zpl, path, sizeof path);
    resv_cfg_t *cfg = resv_cfg_load (path);
    assert_non_null (cfg);
    assert_string_equal (resv_cfg_text (cfg), s_good_zpl);
    resv_cfg_destroy (&cfg);
    //  No file: what it gives loads, with nothing in it.
    assert_int_equal (chdir (fixture->dir), 0);
    cfg = resv_cfg_load (NULL);
    assert_non_null (cfg);
    s_write (fixture, "bad.cfg", resv_cfg_text (cfg), path, sizeof path);
    resv_cfg_destroy (&cfg);
    cfg = resv_cfg_load (path);
    assert_non_null (cfg);
    assert_string_equal (resv_cfg_str (cfg, "test/name", "dflt"), "dflt");
    resv_cfg_destroy (&cfg);
}

//  resv_cfg_unknown counts what no program reads: a key not in the list,
//  one in the wrong section, a key or section given twice, a name with '/'.
static void
test_unknown_keys (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    char path [256];
    const char *known [] = { "broker/frontend", "workers/echo/count",
                             "data/dir", NULL };
    s_write (fixture, "test.cfg",
             "broker\n"
             "    frontend = \"tcp://127.0.0.1:9\"\n"
             "workers\n"
             "    echo\n"
             "        count = 2\n"
             "data\n"
             "    dir = \"var\"\n", path, sizeof path);
    resv_cfg_t *cfg = resv_cfg_load (path);
    assert_non_null (cfg);
    assert_int_equal (resv_cfg_unknown (cfg, known), 0);
    resv_cfg_destroy (&cfg);
    s_write (fixture, "test.cfg",
             "broker\n"
             "    frontend = \"tcp://127.0.0.1:9\"\n"
             "    frontend = \"tcp://127.0.0.1:10\"\n"
             "    fronted = 1\n"
             "workers\n"
             "    echo\n"
             "        count = 2\n"
             "    echo\n"
             "        count = 0\n"
             "count = 3\n"
             "data/dir = \"elsewhere\"\n", path, sizeof path);
    cfg = resv_cfg_load (path);
    assert_non_null (cfg);
    //  frontend twice, fronted, echo twice, count, data/dir.
    assert_int_equal (resv_cfg_unknown (cfg, known), 5);
    resv_cfg_destroy (&cfg);
    //  No file: nothing to look at.
    assert_int_equal (chdir (fixture->dir), 0);
    cfg = resv_cfg_load (NULL);
    assert_int_equal (resv_cfg_unknown (cfg, known), 0);
    resv_cfg_destroy (&cfg);
}

static void
test_destroy_null_safe (void **state)
{
    s_fixture_t *fixture = (s_fixture_t *) *state;
    assert_int_equal (chdir (fixture->dir), 0);
    resv_cfg_t *cfg = resv_cfg_load (NULL);
    assert_non_null (cfg);
    resv_cfg_destroy (&cfg);
    assert_null (cfg);
    resv_cfg_destroy (&cfg);
    resv_cfg_destroy (NULL);
}

int
main (void)
{
    //  Library logs (expected here: bad files) must not mix with TAP.
    zsys_set_logstream (stderr);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_env_name_simple,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_env_name_nested_and_dashes,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_env_name_exact_fit,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_env_name_too_small,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_str_env_overrides_file,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_str_default_when_unset,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_str_empty_is_unset,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_str_without_configuration,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_int_from_file_and_env,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_int_bounds_inclusive,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_int_not_a_number,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_int_out_of_range,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_load_missing_file,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_load_bad_zpl,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_load_directory,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_load_default_absent,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_load_default_present,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_load_default_bad,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_text_is_the_file,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_unknown_keys,
                                         s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_destroy_null_safe,
                                         s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
