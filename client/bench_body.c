/*  bench_body.c: the request body the benchmarks send (bench_body.h).  */

#include "bench_body.h"
#include <stdlib.h>
#include <string.h>

char *
bench_body_new (int size)
{
    char *body = (char *) malloc ((size_t) size + 1);
    if (!body)
        return NULL;
    if (size >= 11) {
        //  {"pad":"xxx...x"}: 10 bytes of syntax around the padding.
        memcpy (body, "{\"pad\":\"", 8);
        memset (body + 8, 'x', (size_t) size - 10);
        memcpy (body + size - 2, "\"}", 2);
    }
    else
    if (size >= 2) {
        //  Too small for a member: an empty object padded with spaces.
        memset (body, ' ', (size_t) size);
        memcpy (body, "{}", 2);
    }
    body [size] = 0;
    return body;
}
