/*  resv_util.h: small helpers shared by every resv program: time stamps,
    random ids, calendar dates, whole numbers from text, rate-limited log
    lines, the daemons' signals and command lines, and the connect and bind
    of a socket through signals.  */
#ifndef RESV_UTIL_H_INCLUDED
#define RESV_UTIL_H_INCLUDED

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdbool.h>
#include <czmq.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Size of a buffer for an RFC 3339 UTC time stamp with milliseconds,
//  "2026-11-28T23:40:00.123Z", and its NUL.
#define RESV_TIME_SIZE 25

//  Writes the current wall-clock time into buf as RFC 3339, UTC, ms.
//  Returns buf.
char *
    resv_time_now (char *buf);

//  Writes the wall-clock time ms (milliseconds since the epoch) into buf.
char *
    resv_time_format (int64_t ms, char *buf);

//  Milliseconds since the epoch, wall clock.
int64_t
    resv_time_ms (void);

//  Whether endpoint is TCP to an IPv6 address ("tcp://[::1]:5570"): a
//  socket must have ZMQ_IPV6 set to bind or connect to one. Left unset
//  otherwise, so that an IPv4 address or `*` binds as it always did.
bool
    resv_endpoint_ipv6 (const char *endpoint);

//  zsock_connect and zsock_bind of endpoint, made again each time a
//  signal interrupted them (EINTR). ZeroMQ reads the socket's pending
//  commands before it does anything, and a signal that comes then fails
//  the call with nothing done: a stop that reached a process while it set
//  up its sockets failed its start (a worker exited 1, "cannot connect
//  ...: Interrupted system call"), where it should stop cleanly. Return
//  what zsock_connect and zsock_bind return.
int
    resv_sock_connect (zsock_t *sock, const char *endpoint);
int
    resv_sock_bind (zsock_t *sock, const char *endpoint);

//  Room for any int64_t in decimal, sign and NUL.
#define RESV_DECIMAL_SIZE 21

//  Writes value into buf (RESV_DECIMAL_SIZE bytes) as "%" PRId64 would,
//  without printf's cost (the broker writes a few per message). Returns
//  its length.
size_t
    resv_decimal (int64_t value, char *buf);

//  A deadline sent as TIMEOUT@SENT (protocol sections 2 and 3): what is
//  left of it, ms, and the sender's monotonic clock at the send, ms. The
//  receiver counts the deadline from the send, not from when it read the
//  message, which may have waited (the receiver busy, or stopped for a
//  while): otherwise it could act on the message after its sender gave
//  up, and whatever the sender then undid would be done after the undo.
//
//  A resv_clock_t estimates, for one peer, the receiver's clock minus the
//  sender's plus the least time a message takes to come: the least
//  (clock at reading - SENT) seen, which rises by 1 ms a second while
//  nothing lowers it, so that clocks of two hosts drifting apart do not
//  leave it too low for good. Zero it (known false) for a new peer, or
//  when the peer may have another clock (a reconnection). A SENT lower
//  than the last one seen is another clock too (a client that names its
//  own routing id, back from another host or after a reboot: one peer's
//  messages come in the order sent, each SENT at its send), and the
//  estimate starts again from it: the old one would put its deadlines far
//  in the past.
typedef struct {
    bool known;                 //  offset holds an estimate
    int64_t offset;             //  The estimate, ms
    int64_t at;                 //  When it was last lowered
    int64_t sent;               //  The last SENT seen
} resv_clock_t;

//  Parses text (size bytes), "TIMEOUT" or "TIMEOUT@SENT", decimal digits
//  each: TIMEOUT 1 to max_digits of them (a number too large for int64_t
//  counts as INT64_MAX), SENT 1 to 18. Sets *sent_p to -1 when there is
//  none. Returns 0, or -1 when text is not of that form.
int
    resv_timeout_parse (const char *text, size_t size, size_t max_digits,
                        int64_t *timeout_p, int64_t *sent_p);

//  Parses text (size bytes), a SENT alone: 1 to 18 decimal digits.
//  Returns it, or -1 when text is not of that form.
int64_t
    resv_sent_parse (const char *text, size_t size);

//  Takes a message read at now and sent at sent (the peer's clock) into
//  the estimate, as resv_clock_deadline does, for a message with no
//  deadline (a heartbeat). Kept fresh so, the estimate does not rise
//  through an idle spell and hide the wait of the next message.
void
    resv_clock_seen (resv_clock_t *self, int64_t now, int64_t sent);

//  The deadline on our clock of a message read at now with timeout and
//  sent (-1: none, the deadline counts from now), from the peer's clock,
//  whose estimate it updates: the earlier of now + timeout and
//  sent + estimate + timeout.
int64_t
    resv_clock_deadline (resv_clock_t *self, int64_t now, int64_t timeout,
                         int64_t sent);

//  Writes 2 * bytes random hex digits and a NUL into buf, from the
//  kernel's random source (read 256 bytes at a time per thread). Returns
//  0, or -1 if it could not be read.
int
    resv_random_hex (char *buf, size_t bytes);

//  Size of the hex form of a 128-bit hash, and its NUL.
#define RESV_HASH_SIZE 33

//  Writes 32 hex digits of a 128-bit hash of the NUL-terminated strings
//  parts[0..count-1] (each followed by a NUL, so ("ab","c") and ("a","bc")
//  differ) into hex. The same parts give the same hash on every machine.
//  Not cryptographic: callers that must tell two inputs apart compare the
//  inputs too. Returns hex.
char *
    resv_hash128 (const char **parts, size_t count, char *hex);

//  Length of the family of an event type: the type up to and including
//  its first dot ("reservation." of "reservation.confirmed"), or the whole
//  type if it has none. The fan-out numbers the events of each family
//  (doc/protocol.md), so that a subscriber to one family finds a gap.
size_t
    resv_type_family (const char *type);

//  Parses a whole decimal number in [min, max] from all of text: no
//  spaces, nothing after it. Returns 0 with *value_p set, or -1 (text
//  NULL or empty, not a number, or out of range).
int
    resv_parse_int (const char *text, int64_t min, int64_t max,
                    int64_t *value_p);

//  Parses a calendar date "YYYY-MM-DD" (a real date: no 2026-02-30) into a
//  day number (days since 1970-01-01). Returns true on success.
bool
    resv_date_parse (const char *text, int64_t *day_p);

//  Writes day number day as "YYYY-MM-DD" into buf (11 bytes). Returns buf.
char *
    resv_date_format (int64_t day, char *buf);

//  A log line that repeats while its cause lasts (a journal refusing
//  commits while the disk is full, say): written the first time, then at
//  most once every interval_ms, so that a cause lasting hours neither
//  floods the log nor fills the disk further. resv_log_due says whether
//  to write it now, and *skipped_p how many were left out since the last
//  one written; resv_log_clear, once the cause is gone, makes the next
//  one due at once and returns how many there were since the first (0
//  when there were none). Start from a zeroed struct.
typedef struct {
    int64_t next;               //  When the next line may be written (ms)
    unsigned skipped;           //  Left out since the last written
    unsigned total;             //  Since the first one
} resv_log_limit_t;

bool
    resv_log_due (resv_log_limit_t *limit, int interval_ms, unsigned *skipped_p);
unsigned
    resv_log_clear (resv_log_limit_t *limit);

//  For resv's daemons (resv-broker, resv-worker, resvd), at start, once
//  zsys_init has caught SIGTERM and SIGINT (zsys_interrupted): ignores the
//  signals by which the kernel would end a process for an outside cause
//  that the code handles as a failed write. SIGPIPE: whoever read the log
//  (a pipe) went away; the log lines are lost, the service goes on.
//  SIGXFSZ: a file size limit (ulimit -f), which is a full disk to resv:
//  SQLite reports the write, the request or publish is refused and
//  logged. Then unblocks SIGTERM and SIGINT, which resvd starts its
//  children with blocked: a stop that came while the process was still
//  starting, before it could catch it, is taken now (a graceful stop)
//  instead of ending the process or being lost.
void
    resv_daemon_signals (void);

//  For resv's daemons, at start: raises the soft limit of open files to
//  the hard one (at most RESV_FILES_MAX). Every TCP connection to the
//  broker is a file of its process, and Debian's soft limit is 1024: past
//  it the broker could accept no connection, so no client or worker
//  reached it, and nothing said why. Returns the limit now in force.
#define RESV_FILES_MAX 65536
long
    resv_daemon_files (void);

//  Reads the command line of one of resv's daemons: -h or --help, -c
//  CONFIG, -v, and, when name_p is not NULL, one NAME not starting with
//  '-' (*name_p stays NULL without one). Help goes to stdout; anything
//  else is a usage error, said on stderr with the program's name, then
//  the usage. Returns -1 when the program goes on, else the code to exit
//  with: 0 after the help, 2 after a usage error.
int
    resv_daemon_args (int argc, char *argv [], const char *program,
                      void (*usage) (FILE *stream), const char **config_p,
                      bool *verbose_p, const char **name_p);

#ifdef __cplusplus
}
#endif

#endif
