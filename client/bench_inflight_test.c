/*  bench_inflight_test.c: the benchmarks' table of requests in flight,
    against a plain list kept beside it.  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include "bench_inflight.h"

//  Keys that share a home cell (many collisions) and keys far apart, put
//  and taken in a mixed order; after each step every key in the model is
//  found with its time and index, and no other.
static void
test_put_take_against_a_model (void **state)
{
    (void) state;
    enum { CONCURRENCY = 40, KEYS = 4000 };
    bench_inflight_t *table = bench_inflight_new (CONCURRENCY);
    assert_non_null (table);
    int64_t model [KEYS + 1] = { 0 };      //  Send time + 1, 0: not in
    int64_t in = 0;
    srand (7);
    for (int step = 0; step < 100000; step++) {
        //  Small keys collide a lot with the mask of a 128-cell table.
        int64_t key = 1 + rand () % (step % 2? KEYS: 200);
        if (model [key]) {
            int64_t index = -1;
            assert_int_equal (bench_inflight_take (table, key, &index),
                              model [key] - 1);
            assert_int_equal (index, key * 3);
            model [key] = 0;
            in--;
        }
        else
        if (in < CONCURRENCY) {
            bench_inflight_put (table, key, key * 3, step);
            model [key] = step + 1;
            in++;
        }
        else
            assert_int_equal (bench_inflight_take (table, key, NULL), -1);
        assert_int_equal (bench_inflight_count (table), (size_t) in);
        if (step % 997 == 0)
            for (int64_t k = 1; k <= KEYS; k++)
                if (model [k]) {
                    //  Found: take it and put it back as it was.
                    int64_t index;
                    assert_int_equal (bench_inflight_take (table, k, &index),
                                      model [k] - 1);
                    bench_inflight_put (table, k, index, model [k] - 1);
                }
    }
    bench_inflight_destroy (&table);
    assert_null (table);
    bench_inflight_destroy (&table);
}

//  Expiry removes exactly the requests sent before the cutoff.
static void
test_expire_takes_the_old_ones (void **state)
{
    (void) state;
    bench_inflight_t *table = bench_inflight_new (64);
    for (int64_t key = 1; key <= 64; key++)
        bench_inflight_put (table, key, 0, key * 10);
    assert_int_equal (bench_inflight_expire (table, 205), 20);
    assert_int_equal (bench_inflight_count (table), 44);
    for (int64_t key = 1; key <= 64; key++)
        assert_int_equal (bench_inflight_take (table, key, NULL),
                          key <= 20? -1: key * 10);
    assert_int_equal (bench_inflight_count (table), 0);
    assert_int_equal (bench_inflight_expire (table, 1000000), 0);
    bench_inflight_destroy (&table);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_put_take_against_a_model),
        cmocka_unit_test (test_expire_takes_the_old_ones),
    };
    return cmocka_run_group_tests_name ("bench_inflight", tests, NULL, NULL);
}
