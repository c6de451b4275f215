/*  resv_util.c: time stamps, random ids, calendar dates, numbers, log
    limits and the daemons' start (resv_util.h).  */

#include "resv_util.h"
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <inttypes.h>
#include <sys/random.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

int64_t
resv_time_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
resv_time_format (int64_t ms, char *buf)
{
    time_t secs = (time_t) (ms / 1000);
    struct tm tm;
    gmtime_r (&secs, &tm);
    size_t len = strftime (buf, RESV_TIME_SIZE, "%Y-%m-%dT%H:%M:%S", &tm);
    unsigned millis = (unsigned) (ms % 1000);
    if (len == 19) {
        buf [19] = '.';
        buf [20] = (char) ('0' + millis / 100);
        buf [21] = (char) ('0' + millis / 10 % 10);
        buf [22] = (char) ('0' + millis % 10);
        buf [23] = 'Z';
        buf [24] = 0;
    }
    return buf;
}

size_t
resv_decimal (int64_t value, char *buf)
{
    char digits [RESV_DECIMAL_SIZE];
    size_t count = 0;
    //  The magnitude as unsigned: -INT64_MIN does not fit an int64_t.
    uint64_t left = value < 0? 0 - (uint64_t) value: (uint64_t) value;
    do {
        digits [count++] = (char) ('0' + left % 10);
        left /= 10;
    } while (left);
    size_t size = 0;
    if (value < 0)
        buf [size++] = '-';
    while (count)
        buf [size++] = digits [--count];
    buf [size] = 0;
    return size;
}

//  The estimate of resv_clock_t rises by 1 ms per this many ms while no
//  message lowers it.
#define S_CLOCK_AGE         1000

//  Reads a run of 1 to max_digits decimal digits; one too large for
//  int64_t counts as INT64_MAX. Returns the number, or -1.
static int64_t
s_digits (const char *text, size_t size, size_t max_digits)
{
    if (size == 0 || size > max_digits)
        return -1;
    int64_t value = 0;
    for (size_t i = 0; i < size; i++) {
        if (text [i] < '0' || text [i] > '9')
            return -1;
        int digit = text [i] - '0';
        value = value > (INT64_MAX - digit) / 10? INT64_MAX
                                                : value * 10 + digit;
    }
    return value;
}

int
resv_timeout_parse (const char *text, size_t size, size_t max_digits,
                    int64_t *timeout_p, int64_t *sent_p)
{
    const char *at = (const char *) memchr (text, '@', size);
    size_t head = at? (size_t) (at - text): size;
    int64_t timeout = s_digits (text, head, max_digits);
    int64_t sent = at? s_digits (at + 1, size - head - 1, 18): -1;
    if (timeout < 0 || (at && sent < 0))
        return -1;
    *timeout_p = timeout;
    *sent_p = sent;
    return 0;
}

int64_t
resv_sent_parse (const char *text, size_t size)
{
    return s_digits (text, size, 18);
}

//  The estimate after a message read at now and sent at sent.
static int64_t
s_clock_offset (resv_clock_t *self, int64_t now, int64_t sent)
{
    int64_t seen = now - sent;
    int64_t offset = self->offset + (now - self->at) / S_CLOCK_AGE;
    if (!self->known || seen <= offset || sent < self->sent) {
        self->known = true;
        self->offset = offset = seen;
        self->at = now;
    }
    self->sent = sent;
    return offset;
}

void
resv_clock_seen (resv_clock_t *self, int64_t now, int64_t sent)
{
    s_clock_offset (self, now, sent);
}

int64_t
resv_clock_deadline (resv_clock_t *self, int64_t now, int64_t timeout,
                     int64_t sent)
{
    int64_t deadline = timeout > INT64_MAX - now? INT64_MAX: now + timeout;
    if (sent < 0)
        return deadline;
    int64_t offset = s_clock_offset (self, now, sent);
    //  sent + offset <= now: the same sum, never later.
    int64_t from = sent + offset;
    if (timeout < deadline - from)
        deadline = from + timeout;
    return deadline;
}

char *
resv_time_now (char *buf)
{
    return resv_time_format (resv_time_ms (), buf);
}

//  Random bytes are read from the kernel a pool at a time, not one system
//  call per id: ids are made several times per reservation. The pool is
//  the thread's own; a forked child empties its copy, so that parent and
//  child never hand out the same bytes.
#define S_POOL_SIZE 256
static __thread unsigned char s_pool [S_POOL_SIZE];
static __thread size_t s_pool_left;
static pthread_once_t s_pool_once = PTHREAD_ONCE_INIT;

static void
s_pool_forget (void)
{
    s_pool_left = 0;
}

static void
s_pool_setup (void)
{
    pthread_atfork (NULL, NULL, s_pool_forget);
}

int
resv_random_hex (char *buf, size_t bytes)
{
    static const char digits [] = "0123456789abcdef";
    pthread_once (&s_pool_once, s_pool_setup);
    for (size_t i = 0; i < bytes; i++) {
        if (s_pool_left == 0) {
            if (getrandom (s_pool, sizeof s_pool, 0) != (ssize_t) sizeof s_pool)
                return -1;
            s_pool_left = sizeof s_pool;
        }
        unsigned char byte = s_pool [--s_pool_left];
        s_pool [s_pool_left] = 0;       //  Never handed out twice
        buf [2 * i] = digits [byte >> 4];
        buf [2 * i + 1] = digits [byte & 15];
    }
    buf [2 * bytes] = 0;
    return 0;
}

size_t
resv_type_family (const char *type)
{
    const char *dot = strchr (type, '.');
    return dot? (size_t) (dot - type) + 1: strlen (type);
}

bool
resv_date_parse (const char *text, int64_t *day_p)
{
    if (!text || strlen (text) != 10 || text [4] != '-' || text [7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (text [i] < '0' || text [i] > '9'))
            return false;
    int year = atoi (text), month = atoi (text + 5), day = atoi (text + 8);
    if (year < 1970 || month < 1 || month > 12 || day < 1)
        return false;
    struct tm tm = { 0 };
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = 12;
    //  timegm normalises 2026-02-30 to March 2nd (in tm itself): a date
    //  that does not come back as it was asked did not exist.
    time_t secs = timegm (&tm);
    struct tm back;
    gmtime_r (&secs, &back);
    if (back.tm_year != year - 1900 || back.tm_mon != month - 1
    ||  back.tm_mday != day)
        return false;
    *day_p = (int64_t) secs / 86400;
    return true;
}

char *
resv_date_format (int64_t day, char *buf)
{
    time_t secs = (time_t) (day * 86400);
    struct tm tm;
    gmtime_r (&secs, &tm);
    strftime (buf, 11, "%Y-%m-%d", &tm);
    return buf;
}

//  --------------------------------------------------------------------------
//  A 128-bit hash: two 64-bit lanes, each word mixed into both and the
//  lanes stirred together by invertible steps, so that every input byte
//  reaches all 128 bits.

static uint64_t
s_mix (uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static uint64_t
s_rotl (uint64_t x, int bits)
{
    return (x << bits) | (x >> (64 - bits));
}

//  Two 64-bit lanes take in one 64-bit word: each is mixed with the word
//  on its own, then they are stirred together by an invertible step, so
//  that no word is lost and each lane depends on the whole input.
static void
s_absorb (uint64_t lane [2], uint64_t word)
{
    lane [0] = s_mix (lane [0] ^ word);
    lane [1] = s_mix ((lane [1] ^ s_rotl (word, 32)) * 0x9e3779b97f4a7c15ULL + 1);
    lane [0] += lane [1];
    lane [1] ^= s_rotl (lane [0], 23);
}

char *
resv_hash128 (const char **parts, size_t count, char *hex)
{
    uint64_t lane [2] = { 0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL };
    uint64_t word = 0;
    size_t length = 0;
    //  Bytes are read one by one, not as native words: the same on every
    //  machine. Each part ends with its NUL, which no part contains.
    for (size_t part = 0; part < count; part++) {
        const unsigned char *byte = (const unsigned char *) parts [part];
        for (size_t i = 0; i == 0 || byte [i - 1]; i++) {
            word |= (uint64_t) byte [i] << (8 * (length % 8));
            if (++length % 8 == 0) {
                s_absorb (lane, word);
                word = 0;
            }
        }
    }
    s_absorb (lane, word);
    s_absorb (lane, (uint64_t) length);
    lane [0] = s_mix (lane [0] ^ 0x3c6ef372fe94f82bULL);
    lane [1] = s_mix (lane [1] + lane [0]);
    //  As "%016" PRIx64 twice, without printf: ids are hashed often.
    static const char digits [] = "0123456789abcdef";
    for (size_t index = 0; index < 32; index++)
        hex [index] = digits [(lane [index / 16] >> (60 - 4 * (index % 16))) & 15];
    hex [32] = 0;
    return hex;
}

int
resv_parse_int (const char *text, int64_t min, int64_t max, int64_t *value_p)
{
    //  strtoll alone would take leading spaces and an empty text as 0.
    if (!text || !*text || isspace ((unsigned char) *text))
        return -1;
    char *end;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (errno || *end || value < min || value > max)
        return -1;
    *value_p = value;
    return 0;
}

void
resv_daemon_signals (void)
{
    signal (SIGPIPE, SIG_IGN);
    signal (SIGXFSZ, SIG_IGN);
    sigset_t stop;
    sigemptyset (&stop);
    sigaddset (&stop, SIGTERM);
    sigaddset (&stop, SIGINT);
    pthread_sigmask (SIG_UNBLOCK, &stop, NULL);
}

long
resv_daemon_files (void)
{
    struct rlimit limit;
    if (getrlimit (RLIMIT_NOFILE, &limit) == -1)
        return -1;
    rlim_t want = limit.rlim_max < RESV_FILES_MAX? limit.rlim_max: RESV_FILES_MAX;
    if (limit.rlim_cur < want) {
        limit.rlim_cur = want;
        if (setrlimit (RLIMIT_NOFILE, &limit) == -1)
            getrlimit (RLIMIT_NOFILE, &limit);
    }
    return (long) limit.rlim_cur;
}

int
resv_daemon_args (int argc, char *argv [], const char *program,
                  void (*usage) (FILE *stream), const char **config_p,
                  bool *verbose_p, const char **name_p)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv [i];
        if (strcmp (arg, "-h") == 0 || strcmp (arg, "--help") == 0) {
            usage (stdout);
            return 0;
        }
        else
        if (strcmp (arg, "-c") == 0 && i + 1 < argc)
            *config_p = argv [++i];
        else
        if (strcmp (arg, "-v") == 0)
            *verbose_p = true;
        else
        if (name_p && arg [0] != '-' && !*name_p)
            *name_p = arg;
        else {
            fprintf (stderr, "%s: unexpected argument '%s'\n\n", program, arg);
            usage (stderr);
            return 2;
        }
    }
    return -1;
}

bool
resv_log_due (resv_log_limit_t *limit, int interval_ms, unsigned *skipped_p)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    limit->total++;
    if (limit->total > 1 && now < limit->next) {
        limit->skipped++;
        return false;
    }
    *skipped_p = limit->skipped;
    limit->skipped = 0;
    limit->next = now + interval_ms;
    return true;
}

bool
resv_endpoint_ipv6 (const char *endpoint)
{
    return endpoint && strncmp (endpoint, "tcp://[", 7) == 0;
}

int
resv_sock_connect (zsock_t *sock, const char *endpoint)
{
    int rc;
    do
        rc = zsock_connect (sock, "%s", endpoint);
    while (rc == -1 && zmq_errno () == EINTR);
    return rc;
}

int
resv_sock_bind (zsock_t *sock, const char *endpoint)
{
    int rc;
    do
        rc = zsock_bind (sock, "%s", endpoint);
    while (rc == -1 && zmq_errno () == EINTR);
    return rc;
}

unsigned
resv_log_clear (resv_log_limit_t *limit)
{
    unsigned total = limit->total;
    *limit = (resv_log_limit_t) { 0, 0, 0 };
    return total;
}
