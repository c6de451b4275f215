/*  svc_echo.c: echo, the service that tests and benchmarks use (svc.h).  */

#include "svc.h"
#include <errno.h>
#include <time.h>
#include <unistd.h>

//  Longest sleep a request may ask for: the broker's largest deadline.
#define S_SLEEP_MAX 60000

//  Sleeps ms milliseconds in full, whatever signals come meanwhile: a
//  SIGTERM must not cut short the work a graceful stop waits for.
static void
s_sleep (int ms)
{
    struct timespec left = { ms / 1000, (long) (ms % 1000) * 1000000 };
    while (nanosleep (&left, &left) == -1 && errno == EINTR)
        ;
}

//  Sleeps in slices, keeping the worker's heartbeats going: a long sleep
//  is a slow request, not a dead worker.
static void
s_sleep_alive (worker_t *worker, int ms)
{
    while (ms > 0) {
        int slice = ms < 50? ms: 50;
        s_sleep (slice);
        ms -= slice;
        worker_keepalive (worker);
    }
}

void *
svc_echo_new (resv_cfg_t *cfg, worker_t *worker)
{
    (void) cfg;
    return worker;              //  The state is the worker, for keepalive
}

static int
s_sleep_method (worker_t *worker, zframe_t *body, zframe_t **reply_p)
{
    json_t *request = worker_parse (body, reply_p);
    if (!request)
        return RESV_BAD_REQUEST;
    json_t *ms = json_object_get (request, "ms");
    json_int_t value = json_is_integer (ms)? json_integer_value (ms): -1;
    json_decref (request);
    if (value < 0 || value > S_SLEEP_MAX) {
        *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_BAD_REQUEST,
                                 "echo sleep: ms must be an integer from 0 "
                                 "to %d", S_SLEEP_MAX);
        return RESV_BAD_REQUEST;
    }
    s_sleep_alive (worker, (int) value);
    *reply_p = worker_json (json_pack ("{s:I}", "slept", value));
    return RESV_OK;
}

int
svc_echo (void *state, const char *method, zframe_t **body_p,
          int64_t deadline, zframe_t **reply_p)
{
    (void) deadline;
    if (streq (method, "echo")) {
        *reply_p = *body_p;     //  The very frame that came in goes back
        *body_p = NULL;
        return RESV_OK;
    }
    if (streq (method, "sleep"))
        return s_sleep_method ((worker_t *) state, *body_p, reply_p);
    if (streq (method, "fail")) {
        *reply_p = worker_error (RESV_INTERNAL, RESV_REASON_INTERNAL,
                                 "echo fail: failing as asked");
        return RESV_INTERNAL;
    }
    if (streq (method, "exit")) {
        //  A crash with a request in hand, on purpose; said, so that a
        //  test's log tells it from a worker that died of a fault. An
        //  internal method (resv_proto.h): only a holder of the internal
        //  key may call it, not any client of a default system.
        zsys_warning ("echo exit: exiting at once, as asked");
        _exit (1);
    }
    *reply_p = worker_error (RESV_BAD_REQUEST, RESV_REASON_UNKNOWN_METHOD,
                             "echo has no method '%s'", method);
    return RESV_BAD_REQUEST;
}
