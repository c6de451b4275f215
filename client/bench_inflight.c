/*  bench_inflight.c: the requests a benchmark has in flight
    (bench_inflight.h).  */

#include "bench_inflight.h"
#include <stdbool.h>
#include <stdlib.h>

typedef struct {
    int64_t key;                //  0 when the cell is empty
    int64_t index;              //  The workload's request number
    int64_t started;            //  Microseconds, when it was sent (or due)
} s_cell_t;

struct _bench_inflight_t {
    s_cell_t *cells;            //  The table
    size_t mask;                //  Table size - 1, the size a power of two
    size_t count;               //  Cells in use
    int64_t *expired;           //  Scratch list for bench_inflight_expire
};

bench_inflight_t *
bench_inflight_new (int concurrency)
{
    bench_inflight_t *self = (bench_inflight_t *) calloc (1, sizeof *self);
    if (!self)
        return NULL;
    size_t size = 16;
    while (size < 2 * (size_t) concurrency)
        size *= 2;
    self->cells = (s_cell_t *) calloc (size, sizeof (s_cell_t));
    self->expired = (int64_t *) calloc (size, sizeof (int64_t));
    self->mask = size - 1;
    if (!self->cells || !self->expired)
        bench_inflight_destroy (&self);
    return self;
}

void
bench_inflight_destroy (bench_inflight_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free ((*self_p)->cells);
    free ((*self_p)->expired);
    free (*self_p);
    *self_p = NULL;
}

size_t
bench_inflight_count (bench_inflight_t *self)
{
    return self->count;
}

static size_t
s_home (bench_inflight_t *self, int64_t key)
{
    return (size_t) (((uint64_t) key * 0x9E3779B97F4A7C15ull) >> 32)
           & self->mask;
}

void
bench_inflight_put (bench_inflight_t *self, int64_t key, int64_t index,
                    int64_t started)
{
    size_t i = s_home (self, key);
    while (self->cells [i].key)
        i = (i + 1) & self->mask;
    self->cells [i].key = key;
    self->cells [i].index = index;
    self->cells [i].started = started;
    self->count++;
}

int64_t
bench_inflight_take (bench_inflight_t *self, int64_t key, int64_t *index_p)
{
    size_t i = s_home (self, key);
    while (self->cells [i].key != key) {
        if (!self->cells [i].key)
            return -1;
        i = (i + 1) & self->mask;
    }
    int64_t started = self->cells [i].started;
    if (index_p)
        *index_p = self->cells [i].index;
    self->cells [i].key = 0;
    self->count--;
    //  Shift back each later cell of the run that may live at i.
    size_t j = i;
    while (true) {
        j = (j + 1) & self->mask;
        if (!self->cells [j].key)
            break;
        size_t home = s_home (self, self->cells [j].key);
        bool stays = i <= j? (i < home && home <= j)
                           : (i < home || home <= j);
        if (!stays) {
            self->cells [i] = self->cells [j];
            self->cells [j].key = 0;
            i = j;
        }
    }
    return started;
}

size_t
bench_inflight_expire (bench_inflight_t *self, int64_t cutoff)
{
    size_t count = 0;
    for (size_t i = 0; i <= self->mask; i++)
        if (self->cells [i].key && self->cells [i].started < cutoff)
            self->expired [count++] = self->cells [i].key;
    for (size_t i = 0; i < count; i++)
        bench_inflight_take (self, self->expired [i], NULL);
    return count;
}
