/*  resv_util.c: time stamps, random ids and calendar dates.  */

#include "resv_util.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/random.h>

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

char *
resv_time_now (char *buf)
{
    return resv_time_format (resv_time_ms (), buf);
}

int
resv_random_hex (char *buf, size_t bytes)
{
    static const char digits [] = "0123456789abcdef";
    unsigned char raw [64];
    size_t done = 0;
    while (done < bytes) {
        size_t chunk = bytes - done < sizeof raw? bytes - done: sizeof raw;
        if (getrandom (raw, chunk, 0) != (ssize_t) chunk)
            return -1;
        for (size_t i = 0; i < chunk; i++) {
            buf [2 * (done + i)] = digits [raw [i] >> 4];
            buf [2 * (done + i) + 1] = digits [raw [i] & 15];
        }
        done += chunk;
    }
    buf [2 * bytes] = 0;
    return 0;
}

bool
resv_date_parse (const char *text, int64_t *day_p)
{
    if (!text || strlen (text) != 10 || text [4] != '-' || text [7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (text [i] < '0' || text [i] > '9'))
            return false;
    struct tm tm = { 0 };
    tm.tm_year = atoi (text) - 1900;
    tm.tm_mon = atoi (text + 5) - 1;
    tm.tm_mday = atoi (text + 8);
    tm.tm_hour = 12;
    if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1)
        return false;
    //  timegm normalises 2026-02-30 to March 2nd: a date that does not
    //  come back unchanged did not exist.
    struct tm back;
    time_t secs = timegm (&tm);
    gmtime_r (&secs, &back);
    if (back.tm_year != tm.tm_year || back.tm_mon != tm.tm_mon
    ||  back.tm_mday != tm.tm_mday)
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
