/*  accept_log_test.c: unit tests of the accept log, on a ROUTER that runs
    out of files in this process.  */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include "accept_log.h"

//  Lines a test's accept log writes about one socket: one every 100 ms.
#define S_INTERVAL      100
#define S_CLIENTS_MAX   256
//  Connections left pending, well under the listener's backlog (100),
//  past which a connect would wait.
#define S_PENDING       16

typedef struct {
    char path [64];             //  The log, written by zsys
    FILE *stream;               //  zsys's log stream, on path
    int reader;                 //  path, to read it back
    zsock_t *router;            //  The socket watched
    char endpoint [64];         //  Where it is bound
    accept_log_t *accepts;      //  Under test
    struct rlimit limit;        //  This process's, as it was
    int clients [S_CLIENTS_MAX];    //  Sockets holding the last descriptors
    size_t nclients;            //  Used entries of clients (some connected)
    rlim_t exhausted;           //  The limit s_exhaust set last
} fixture_t;

static int
s_setup (void **state)
{
    fixture_t *self = (fixture_t *) zmalloc (sizeof (fixture_t));
    strcpy (self->path, "/tmp/resv-accept-log-test.XXXXXX");
    int fd = mkstemp (self->path);
    assert_true (fd >= 0);
    self->stream = fdopen (fd, "w");
    assert_non_null (self->stream);
    self->reader = open (self->path, O_RDONLY);
    assert_true (self->reader >= 0);
    zsys_set_logstream (self->stream);
    self->router = zsock_new (ZMQ_ROUTER);
    assert_non_null (self->router);
    int port = zsock_bind (self->router, "tcp://127.0.0.1:*");
    assert_true (port > 0);
    snprintf (self->endpoint, sizeof self->endpoint, "tcp://127.0.0.1:%d", port);
    self->accepts = accept_log_new (S_INTERVAL);
    assert_non_null (self->accepts);
    assert_int_equal (getrlimit (RLIMIT_NOFILE, &self->limit), 0);
    *state = self;
    return 0;
}

static int
s_teardown (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    for (size_t index = 0; index < self->nclients; index++)
        close (self->clients [index]);
    setrlimit (RLIMIT_NOFILE, &self->limit);
    accept_log_destroy (&self->accepts);
    zsock_destroy (&self->router);
    zsys_set_logstream (stderr);
    fclose (self->stream);
    close (self->reader);
    unlink (self->path);
    free (self);
    return 0;
}

//  The log as written so far, read through a descriptor opened before
//  the process ran out of them.
static char *
s_log (fixture_t *self)
{
    size_t size = 0, max = 4096;
    char *log = (char *) zmalloc (max);
    ssize_t got;
    while ((got = pread (self->reader, log + size, max - size - 1,
                         (off_t) size)) > 0) {
        size += (size_t) got;
        if (max - size < 1024) {
            max *= 2;
            log = (char *) realloc (log, max);
            assert_non_null (log);
        }
    }
    log [size] = '\0';
    return log;
}

//  How many lines of the log hold text.
static int
s_lines (fixture_t *self, const char *text)
{
    char *log = s_log (self);
    int count = 0;
    for (char *line = strtok (log, "\n"); line; line = strtok (NULL, "\n"))
        if (strstr (line, text))
            count++;
    free (log);
    return count;
}

//  Whether count lines of the log hold text, within 5 s.
static bool
s_logged (fixture_t *self, const char *text, int count)
{
    for (int tries = 0; tries < 500; tries++) {
        if (s_lines (self, text) >= count)
            return true;
        zclock_sleep (10);
    }
    return false;
}

//  The highest descriptor this process has open under its limit (over
//  it: valgrind's own).
static int
s_highest_fd (fixture_t *self)
{
    DIR *dir = opendir ("/proc/self/fd");
    assert_non_null (dir);
    int highest = 2;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (atoi (entry->d_name) > highest
        &&  (rlim_t) atoi (entry->d_name) < self->limit.rlim_cur)
            highest = atoi (entry->d_name);
    closedir (dir);
    return highest;
}

//  Leaves this process no descriptor free (sockets take the last ones),
//  then connects S_PENDING of them to the router: the kernel completes
//  the connections, and ZeroMQ cannot accept them (EMFILE). A descriptor
//  that ZeroMQ closes meanwhile (one of the test before, its socket
//  reaped) lets it accept one: until the log has a line more, the
//  descriptors freed are taken again, and their sockets connected too.
static void
s_exhaust (fixture_t *self)
{
    struct sockaddr_in address = { .sin_family = AF_INET };
    address.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    address.sin_port = htons ((uint16_t) atoi (strrchr (self->endpoint, ':') + 1));
    struct rlimit limit = self->limit;
    limit.rlim_cur = (rlim_t) s_highest_fd (self) + 1 + S_PENDING;
    self->exhausted = limit.rlim_cur;
    assert_int_equal (setrlimit (RLIMIT_NOFILE, &limit), 0);
    int lines = s_lines (self, "cannot accept");
    for (int round = 0; round < 10; round++) {
        size_t first = self->nclients;
        while (self->nclients < S_CLIENTS_MAX) {
            int fd = socket (AF_INET, SOCK_STREAM, 0);
            if (fd == -1) {
                assert_int_equal (errno, EMFILE);
                break;
            }
            self->clients [self->nclients++] = fd;
        }
        //  The first sockets only fill the holes of the table.
        if (round == 0) {
            assert_true (self->nclients >= S_PENDING);
            first = self->nclients - S_PENDING;
        }
        for (size_t index = first; index < self->nclients; index++)
            assert_int_equal (connect (self->clients [index],
                                       (struct sockaddr *) &address,
                                       sizeof address), 0);
        for (int tries = 0; tries < 100; tries++) {
            if (s_lines (self, "cannot accept") > lines)
                return;
            zclock_sleep (10);
        }
    }
    fail_msg ("ZeroMQ accepted every connection");
}

//  Closes the pending connections and gives the process its limit back.
static void
s_release (fixture_t *self)
{
    for (size_t index = 0; index < self->nclients; index++)
        close (self->clients [index]);
    self->nclients = 0;
    assert_int_equal (setrlimit (RLIMIT_NOFILE, &self->limit), 0);
}

static void
test_failed_accepts_logged (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    assert_int_equal (accept_log_watch (self->accepts, self->router, "frontend"), 0);
    //  Nothing failed yet.
    zclock_sleep (50);
    assert_int_equal (s_lines (self, "accept"), 0);
    s_exhaust (self);
    //  At once; then, as ZeroMQ retries, a line every interval that
    //  counts the failures since the one before.
    char *line = zsys_sprintf ("broker: cannot accept a connection on the "
                               "frontend (%s): %s (the broker's limit is %d "
                               "open files); ", self->endpoint,
                               strerror (EMFILE), (int) self->exhausted);
    char *first = zsys_sprintf ("%snew connections wait until it can", line);
    assert_true (s_logged (self, first, 1));
    assert_true (s_logged (self, "failed accepts since the last line", 1));
    assert_true (s_logged (self, line, 2));
    assert_int_equal (s_lines (self, "accepts connections again"), 0);
    //  Once the connections can be accepted, it says so, once.
    s_release (self);
    char *again = zsys_sprintf ("broker: the frontend (%s) accepts connections "
                                "again, after ", self->endpoint);
    assert_true (s_logged (self, again, 1));
    zclock_sleep (3 * S_INTERVAL);
    assert_int_equal (s_lines (self, "accepts connections again"), 1);
    //  Many failures, few lines.
    char *log = s_log (self);
    long failures = atol (strstr (log, again) + strlen (again));
    free (log);
    int lines = s_lines (self, "cannot accept");
    assert_true (lines < failures);
    //  A new failure is logged at once again.
    assert_int_equal (s_lines (self, first), 1);
    s_exhaust (self);
    assert_true (s_logged (self, first, 2));
    s_release (self);
    zstr_free (&line);
    zstr_free (&first);
    zstr_free (&again);
}

//  The monitors stop while ZeroMQ's I/O thread sends their events as
//  fast as it can: no hang, and the socket still works after.
static void
test_destroy_during_failures (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    assert_int_equal (accept_log_watch (self->accepts, self->router, "backend"), 0);
    s_exhaust (self);
    assert_true (s_logged (self, "failed accepts since the last line", 1));
    accept_log_destroy (&self->accepts);
    assert_null (self->accepts);
    accept_log_destroy (&self->accepts);
    s_release (self);
    zsock_t *dealer = zsock_new_dealer (self->endpoint);
    assert_non_null (dealer);
    zsock_set_rcvtimeo (self->router, 5000);
    zstr_send (dealer, "hello");
    zmsg_t *msg = zmsg_recv (self->router);
    assert_non_null (msg);
    assert_int_equal (zmsg_size (msg), 2);
    zmsg_destroy (&msg);
    zsock_destroy (&dealer);
}

static void
test_watch_refused_past_max (void **state)
{
    fixture_t *self = (fixture_t *) *state;
    zsock_t *socks [ACCEPT_LOG_MAX + 1];
    for (size_t index = 0; index <= ACCEPT_LOG_MAX; index++) {
        socks [index] = zsock_new (ZMQ_ROUTER);
        assert_true (zsock_bind (socks [index], "tcp://127.0.0.1:*") > 0);
        int rc = accept_log_watch (self->accepts, socks [index], "frontend");
        assert_int_equal (rc, index < ACCEPT_LOG_MAX? 0: -1);
    }
    //  The one refused has no monitor: one may be set. (Not one that
    //  sends ZMQ_EVENT_MONITOR_STOPPED: with no reader, the stop would
    //  wait for ever to send it.)
    assert_int_equal (zmq_socket_monitor (zsock_resolve (socks [ACCEPT_LOG_MAX]),
                                          "inproc://accept-log-test",
                                          ZMQ_EVENT_ACCEPTED), 0);
    assert_int_equal (zmq_socket_monitor (zsock_resolve (socks [ACCEPT_LOG_MAX]),
                                          NULL, 0), 0);
    accept_log_destroy (&self->accepts);
    for (size_t index = 0; index <= ACCEPT_LOG_MAX; index++)
        zsock_destroy (&socks [index]);
}

int
main (void)
{
    zsys_init ();
    zsys_set_logstream (stderr);
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_failed_accepts_logged, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_destroy_during_failures, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_watch_refused_past_max, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name ("accept_log", tests, NULL, NULL);
}
