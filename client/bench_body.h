/*  bench_body.h: the request body the benchmarks send, so that resv-bench
    ping and tests/raw_echo.c (its raw-CZMQ baseline) send the same bytes.

    Not part of libresv: it is linked into the benchmark programs only.
*/
#ifndef BENCH_BODY_H_INCLUDED
#define BENCH_BODY_H_INCLUDED

#ifdef __cplusplus
extern "C" {
#endif

//  A JSON object of exactly size bytes and a NUL: {"pad":"xx...x"} from 11
//  bytes, "{}" padded with spaces from 2 to 10, and "" for 0 (a body
//  meaning {}). size 1 has no such object: the callers refuse it. Returns
//  the text, to free, or NULL if memory ran out.
char *
    bench_body_new (int size);

#ifdef __cplusplus
}
#endif

#endif
