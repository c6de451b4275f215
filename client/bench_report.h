/*  bench_report.h: the results of one benchmark run, and the summary that
    resv-bench and tests/saga_baseline.c print.

    A bench_report_t collects the outcome of each request: the latency of
    each success, a count of failures by status. It prints a siege-like
    summary, or one JSON line, in the format tests/bench.sh reads;
    tests/raw_echo.c prints its results through it too.

    It also serves as a plain sample set: percentiles of whatever was
    added as successes (resv-bench keeps its event lags in reports).

    Not part of libresv: it is linked into the benchmark programs only.
*/
#ifndef BENCH_REPORT_H_INCLUDED
#define BENCH_REPORT_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _bench_report_t bench_report_t;

//  Statuses are three decimal digits; others count as status 0.
#define BENCH_STATUS_MAX        1000

//  Creates an empty report, with room for expected successes (it grows
//  past that). Returns NULL when out of memory.
bench_report_t *
    bench_report_new (int64_t expected);

//  Frees the report and nulls the pointer. NULL-safe, idempotent.
void
    bench_report_destroy (bench_report_t **self_p);

//  Adds the outcome of one request: a 2xx status with its latency in
//  microseconds, or any other status (a failure). Returns 0, or -1 when
//  out of memory (the sample is lost, the request still counted).
int
    bench_report_add (bench_report_t *self, int status, int64_t latency);

//  Sets the run's elapsed time, microseconds from its first send to its
//  last reply: the rate is successes over it.
void
    bench_report_set_elapsed (bench_report_t *self, int64_t elapsed);

//  Requests added, and the successes among them.
int64_t
    bench_report_requests (bench_report_t *self);
int64_t
    bench_report_ok (bench_report_t *self);

//  Nearest-rank percentile (0 to 100) of the successes' latencies, in
//  milliseconds; 0 when there are none.
double
    bench_report_percentile (bench_report_t *self, double percent);

//  Prints the summary, titled title, then extra (lines of its own, may be
//  NULL); or with json one line: {fields, the results, extra}, where
//  fields is a JSON fragment naming the run and extra, when not NULL or
//  empty, a fragment of more members that starts with a comma.
void
    bench_report_print (bench_report_t *self, bool json, const char *title,
                        const char *fields, const char *extra);

#ifdef __cplusplus
}
#endif

#endif
