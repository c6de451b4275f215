/*  bench_report.c: results and summary of a benchmark run (bench_report.h). */

#include "bench_report.h"
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct _bench_report_t {
    int64_t *latency;           //  Microseconds of each success
    size_t size;                //  Room in latency
    int64_t ok;                 //  Successes (2xx)
    int64_t requests;           //  Successes and failures
    int64_t failed [BENCH_STATUS_MAX];  //  Failures by status
    int64_t elapsed;            //  Microseconds, first send to last reply
    bool sorted;                //  latency [0 .. ok-1] is in order
};

bench_report_t *
bench_report_new (int64_t expected)
{
    bench_report_t *self = (bench_report_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->size = expected > 16? (size_t) expected: 16;
    self->latency = (int64_t *) malloc (self->size * sizeof (int64_t));
    if (!self->latency) {
        free (self);
        return NULL;
    }
    self->sorted = true;
    return self;
}

void
bench_report_destroy (bench_report_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->latency);
    free (*self_p);
    *self_p = NULL;
}

int
bench_report_add (bench_report_t *self, int status, int64_t latency)
{
    self->requests++;
    if (status < 200 || status >= 300) {
        self->failed [status >= 0 && status < BENCH_STATUS_MAX? status: 0]++;
        return 0;
    }
    if ((size_t) self->ok == self->size) {
        int64_t *bigger = (int64_t *) realloc (self->latency,
                                               2 * self->size * sizeof (int64_t));
        if (!bigger)
            return -1;
        self->latency = bigger;
        self->size *= 2;
    }
    self->latency [self->ok++] = latency;
    self->sorted = false;
    return 0;
}

void
bench_report_set_elapsed (bench_report_t *self, int64_t elapsed)
{
    self->elapsed = elapsed;
}

int64_t
bench_report_requests (bench_report_t *self)
{
    return self->requests;
}

int64_t
bench_report_ok (bench_report_t *self)
{
    return self->ok;
}

static int
s_compare_int64 (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

double
bench_report_percentile (bench_report_t *self, double percent)
{
    if (self->ok == 0)
        return 0;
    if (!self->sorted) {
        qsort (self->latency, (size_t) self->ok, sizeof (int64_t),
               s_compare_int64);
        self->sorted = true;
    }
    int64_t rank = (int64_t) ceil (percent / 100 * (double) self->ok);
    if (rank < 1)
        rank = 1;
    return (double) self->latency [rank - 1] / 1000;
}

void
bench_report_print (bench_report_t *self, bool json, const char *title,
                    const char *fields, const char *extra)
{
    int64_t failed = self->requests - self->ok;
    double elapsed = (double) self->elapsed / 1e6;
    double availability = self->requests?
        100.0 * (double) self->ok / (double) self->requests: 0;
    double rate = elapsed > 0? (double) self->ok / elapsed: 0;
    double shortest = bench_report_percentile (self, 0);
    double p50 = bench_report_percentile (self, 50);
    double p90 = bench_report_percentile (self, 90);
    double p99 = bench_report_percentile (self, 99);
    double longest = bench_report_percentile (self, 100);
    char by_status [BENCH_STATUS_MAX * 16] = "";
    size_t used = 0;
    for (int status = 0; status < BENCH_STATUS_MAX; status++) {
        if (!self->failed [status])
            continue;
        used += (size_t) snprintf (by_status + used, sizeof (by_status) - used,
                                   json? "%s\"%d\":%" PRId64: "%s%d: %" PRId64,
                                   used? (json? ",": ", "): "", status,
                                   self->failed [status]);
    }
    if (!extra)
        extra = "";
    if (json) {
        printf ("{%s,\"transactions\":%" PRId64 ",\"availability\":%.2f,"
                "\"elapsed_s\":%.3f,\"rate\":%.2f,\"shortest_ms\":%.3f,"
                "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
                "\"longest_ms\":%.3f,\"failed\":%" PRId64 ","
                "\"failed_by_status\":{%s}%s}\n",
                fields, self->ok, availability, elapsed, rate, shortest, p50,
                p90, p99, longest, failed, by_status, extra);
        return;
    }
    printf ("%s\n", title);
    printf ("Transactions:         %12" PRId64 " hits\n", self->ok);
    printf ("Availability:         %12.2f %%\n", availability);
    printf ("Elapsed time:         %12.3f s\n", elapsed);
    printf ("Transaction rate:     %12.2f req/s\n", rate);
    printf ("Shortest transaction: %12.3f ms\n", shortest);
    printf ("p50 transaction:      %12.3f ms\n", p50);
    printf ("p90 transaction:      %12.3f ms\n", p90);
    printf ("p99 transaction:      %12.3f ms\n", p99);
    printf ("Longest transaction:  %12.3f ms\n", longest);
    printf ("Failed transactions:  %12" PRId64 "%s%s%s\n", failed,
            used? " (": "", by_status, used? ")": "");
    printf ("%s", extra);
}
