/*  bench_inflight.h: the requests a benchmark has in flight.

    An open-addressing table from a request's key (a libresv handle, or
    raw-echo's request number) to the time it was sent and the workload's
    request number, sized at least twice the concurrency so that probes
    stay short. Keys are > 0. Removal shifts later cells back, so no
    tombstones build up over a long run.

    Not part of libresv: it is linked into resv-bench and raw-echo only,
    and uses nothing of resv's.
*/
#ifndef BENCH_INFLIGHT_H_INCLUDED
#define BENCH_INFLIGHT_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _bench_inflight_t bench_inflight_t;

//  Creates an empty table for up to concurrency requests. Returns NULL
//  when out of memory.
bench_inflight_t *
    bench_inflight_new (int concurrency);

//  Frees the table and nulls the pointer. NULL-safe, idempotent.
void
    bench_inflight_destroy (bench_inflight_t **self_p);

//  Requests in the table.
size_t
    bench_inflight_count (bench_inflight_t *self);

//  Adds request key (not in the table; at most concurrency at a time),
//  sent at started (microseconds), the workload's request index.
void
    bench_inflight_put (bench_inflight_t *self, int64_t key, int64_t index,
                        int64_t started);

//  Removes key and returns its send time, and its index in *index_p (may
//  be NULL); or -1 if it is not in flight (given up, never sent, or not
//  the benchmark's).
int64_t
    bench_inflight_take (bench_inflight_t *self, int64_t key,
                         int64_t *index_p);

//  Removes every request sent before cutoff; returns how many.
size_t
    bench_inflight_expire (bench_inflight_t *self, int64_t cutoff);

#ifdef __cplusplus
}
#endif

#endif
