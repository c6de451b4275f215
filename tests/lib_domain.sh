# shellcheck shell=bash
# tests/lib_domain.sh: helpers of the integration tests of the reservation
# flow (test_saga.sh, test_guarantees.sh, test_badinput.sh, and
# test_resvd.sh's stop under load), sourced after lib.sh. They run the
# whole system under resvd, read JSON with python3 (standard library only)
# and wait for the asynchronous side of the saga (approval, payment,
# notification, view) to catch up.

# python3 itself, not a wrapper (a pyenv shim costs 0.3 s a call).
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
[ -x "$PY" ] || PY=python3

# The CLI, with a deadline long enough for a loaded 2-core machine.
R=("$BIN/resv" -t 10000)
r () { "${R[@]}" "$@"; }

# js EXPR: evaluates the Python expression EXPR with d = the JSON document
# read from stdin; prints a string as it is, anything else as JSON. Fails
# (prints nothing) when stdin is not JSON or EXPR fails.
js () {
    "$PY" -c '
import json, sys
try:
    d = json.load(sys.stdin)
    v = eval(sys.argv[1])
except Exception:
    sys.exit(1)
print(v if isinstance(v, str) else json.dumps(v))' "$1"
}

# counts SERVICE N: the broker counts N workers of SERVICE now.
# wait_count SERVICE N [SECONDS]: waits for it, 15 s unless told, asking
# anew on every try (as lib.sh's wait_workers does).
counts () { test "$(workers_of "$1")" = "$2"; }
wait_count () { wait_for "${3:-15}" counts "$1" "$2"; }

DOMAIN_SERVICES="availability reservation payment approval notification view"

# start_resvd: starts resvd on fresh ports with the counts set in the
# environment (RESV_WORKERS_<SERVICE>_COUNT, which each test sets for every
# domain service) and waits until the broker counts them all.
start_resvd () {
    use_free_ports
    export RESV_WORKERS_ECHO_COUNT=${RESV_WORKERS_ECHO_COUNT:-0}
    spawn resvd "$BIN/resvd" -c "$TOP/config/resv.cfg"
    RESVD_PID=$LAST_PID
    wait_for 15 "$BIN/resv" -t 500 ping || return 1
    local s var
    for s in $DOMAIN_SERVICES; do
        var=RESV_WORKERS_${s^^}_COUNT
        wait_count "$s" "${!var}" || return 1
    done
}

# start_resvd_or_finish: start_resvd as a test's first check; the test
# ends there if it fails.
start_resvd_or_finish () {
    if ! start_resvd; then
        not_ok "resvd starts the broker and every service"
        finish
    fi
    ok "resvd starts the broker and every service"
}

# pids_of SERVICE: the PIDs of resvd's workers of SERVICE, one a line.
pids_of () { pgrep -P "$RESVD_PID" -f "resv-worker( .*)? $1\$" | sort -n; }
broker_pid () { pgrep -P "$RESVD_PID" -f 'resv-broker' | head -n 1; }

# Field readers, each a CLI call and a python3 expression.
view_status () { r status "$1" | js 'd["status"]'; }
view_payment () { r status "$1" | js 'd["payment"]["status"]'; }
cmd_status () { r call reservation get "{\"id\":\"$1\"}" | js 'd["status"]'; }
cmd_payment () { r call reservation get "{\"id\":\"$1\"}" | js 'd["payment"]["status"]'; }

# status_is ID STATUS [PAYMENT]: the view shows reservation ID in STATUS
# (and its payment in PAYMENT).
status_is () {
    local out
    out=$(r status "$1") || return 1
    [ "$(printf '%s' "$out" | js 'd["status"]')" = "$2" ] || return 1
    [ -z "${3:-}" ] ||
        [ "$(printf '%s' "$out" | js 'd["payment"]["status"]')" = "$3" ]
}

# held RESOURCE DATE [SLOT]: the units held on DATE (and SLOT; the first
# slot when none is given).
held () {
    r availability --resource "$1" --date "$2" |
        js "[x['held'] for x in d['days'] if '${3:-}' in ('', x['slot'])][0]"
}

# helds RESOURCE DATE DAYS [SLOT]: the held units of DAYS dates, space
# separated.
helds () {
    r availability --resource "$1" --date "$2" --days "$3" |
        js "' '.join(str(x['held']) for x in d['days'] if '${4:-}' in ('', x['slot']))"
}

# notes CUSTOMER [KIND] [RESERVATION]: how many notifications CUSTOMER has
# (of KIND, about RESERVATION).
notes () {
    r notifications --customer "$1" |
        js "len([n for n in d['items'] if '${2:-}' in ('', n['kind']) and '${3:-}' in ('', n['reservation'])])"
}
notes_are () { [ "$(notes "$1" "${3:-}" "${4:-}")" = "$2" ]; }

# journal FILE: reads the whole journal, page by page (--limit 200), into
# FILE as one JSON list of events. Fails if a page cannot be read.
journal () {
    "$PY" - "$1" "${R[@]}" <<'EOF'
import json, subprocess, sys
path, cmd = sys.argv[1], sys.argv[2:]
events, start = [], 1
for _ in range(10000):
    p = subprocess.run(cmd + ["events", "--from", str(start), "--limit", "200"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(1)
    page = json.loads(p.stdout)
    events += page["items"]
    if "next" not in page or not page["items"]:
        break
    start = page["next"]
json.dump(events, open(path, "w"))
EOF
}

# jq_file FILE EXPR: EXPR on d = the JSON in FILE.
jq_file () { js "$2" <"$1"; }

# payment_runs JOURNAL IDS: for each reservation id in the file IDS, a
# line "ID authorized,voided,..." of its payment.authorized and .voided
# events in the journal file, in order. A reserve undone after its
# authorisation (a failed commit, a deadline passed) voids it, and its
# retry authorises the same payment again; so a made reservation's line
# matches ' (authorized,voided,)*authorized$': never two authorisations
# without a void between, nor a void at the end.
payment_runs () {
    "$PY" - "$1" "$2" <<'EOF'
import json, sys
events, ids = json.load(open(sys.argv[1])), open(sys.argv[2]).read().split()
runs = {i: [] for i in ids}
for e in events:
    if e["type"] in ("payment.authorized", "payment.voided") \
            and e.get("reservation") in runs:
        runs[e["reservation"]].append(e["type"][8:])
for i in ids:
    print(i, ",".join(runs[i]))
EOF
}

# runs_odd RUNS: the lines of payment_runs' output RUNS that do not end
# authorised, once more than voided.
runs_odd () {
    printf '%s\n' "$1" | grep -vE ' (authorized,voided,)*authorized$'
}

# error_is OUT CODE [REASON]: OUT is the CLI's error document,
# {"error":{"code":CODE,"reason":REASON,"message":...}}.
error_is () {
    printf '%s' "$1" |
        grep -qE "^\{\"error\":\{\"code\":$2,\"reason\":\"${3:-[a-z_]+}\",\"message\":"
}

# refused CODE REASON NAME CMD...: CMD exits 1 and prints the error with
# CODE (and REASON, may be empty).
refused () {
    local code=$1 reason=$2 name=$3; shift 3
    expect_exit 1 "$name: exits 1" "$@"
    if error_is "$OUT" "$code" "$reason"; then ok "$name: $code${reason:+ $reason}"
    else not_ok "$name: wanted $code${reason:+ $reason}, got: $(printf '%s' "$OUT" | head -c 300)"; fi
}

# outcomes DIR: one line per reply file DIR/NAME.out, in NAME order:
# "NAME ok ID STATUS" (a document with an id), "NAME done" (another
# document), "NAME err CODE REASON", or "NAME bad EXIT TEXT". The exit
# status in DIR/NAME.rc, when there, must agree: 0 for a success, 1 for a
# refusal (4xx), 3 for 5xx; else the line is "bad".
outcomes () {
    "$PY" - "$1" <<'EOF'
import json, os, sys
top = sys.argv[1]
names = [f[:-4] for f in os.listdir(top) if f.endswith(".out")]
names.sort(key=lambda n: (len(n), n))
for name in names:
    text = open(os.path.join(top, name + ".out")).read()
    rc = None
    if os.path.exists(os.path.join(top, name + ".rc")):
        rc = open(os.path.join(top, name + ".rc")).read().strip()
    try:
        doc = json.loads(text)
    except Exception:
        doc = None
    line = None
    if isinstance(doc, dict) and "error" in doc:
        code = doc["error"].get("code")
        if rc in (None, "1" if isinstance(code, int) and code < 500 else "3"):
            line = "err %s %s" % (code, doc["error"].get("reason"))
    elif isinstance(doc, dict) and rc in (None, "0"):
        line = "ok %s %s" % (doc["id"], doc.get("status")) if "id" in doc else "done"
    if line is None:
        line = "bad %s %s" % (rc, " ".join(text.split())[:200])
    print(name, line)
EOF
}

# kinds_of CUSTOMER...: one line per customer: "CUSTOMER N KIND,KIND,..."
# (N notifications, their kinds sorted); "CUSTOMER ? -" when unreadable.
kinds_of () {
    "$PY" - "${R[@]}" -- "$@" <<'EOF'
import json, subprocess, sys
at = sys.argv.index("--")
cmd, customers = sys.argv[1:at], sys.argv[at + 1:]
for c in customers:
    p = subprocess.run(cmd + ["notifications", "--customer", c],
                       capture_output=True, text=True)
    try:
        items = json.loads(p.stdout)["items"]
        print(c, len(items), ",".join(sorted(n["kind"] for n in items)) or "-")
    except Exception:
        print(c, "?", "-")
EOF
}

# stores_agree: whether the command side's stores, read from their files
# in $RESV_DATA_DIR, agree with each other: every payment not voided
# belongs to a reservation, the units held are those of the PENDING and
# CONFIRMED reservations (units x days), and no saga row is left. Prints
# "orphans=[...] held=N live=N sagas=N".
stores_agree () {
    "$PY" - "$RESV_DATA_DIR" <<'PY'
import sqlite3, sys
d = sys.argv[1]
res = sqlite3.connect(d + "/reservation.db")
pay = sqlite3.connect(d + "/payment.db")
avail = sqlite3.connect(d + "/availability.db")
ids = set(r[0] for r in res.execute("SELECT id FROM reservations"))
orphans = [r for r in pay.execute("SELECT reservation, status FROM payments")
           if r[0] not in ids and r[1] != "voided"]
held = avail.execute("SELECT coalesce (sum (units), 0) FROM holds "
                     "WHERE released = 0").fetchone()[0]
live = res.execute("SELECT coalesce (sum (units * days), 0) FROM reservations "
                   "WHERE status = 'PENDING' OR status = 'CONFIRMED'").fetchone()[0]
sagas = res.execute("SELECT count (*) FROM sagas").fetchone()[0]
print("orphans=%s held=%d live=%d sagas=%d" % (orphans, held, live, sagas))
sys.exit(0 if not orphans and held == live and sagas == 0 else 1)
PY
}

# store_sql NAME SQL: the first column of the first row SQL gives on the
# store NAME ($RESV_DATA_DIR/NAME.db, read-only, as a file: its process
# may be down), or the error when it cannot be read.
store_sql () {
    "$PY" -c 'import sqlite3, sys
print(sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True, timeout=10)
      .execute(sys.argv[2]).fetchone()[0])' "$RESV_DATA_DIR/$1.db" "$2" 2>&1 |
        tail -n 1
}

# outboxes_left: " NAME:N" for each domain store whose outbox holds events
# not yet journaled (or that cannot be read); nothing when all are empty.
outboxes_left () {
    local s n
    for s in $DOMAIN_SERVICES; do
        n=$(store_sql "$s" "SELECT count (*) FROM outbox")
        [ "$n" = 0 ] || printf ' %s:%s' "$s" "$n"
    done
}

# journal_agrees: whether every change the stores committed, read from their
# files in $RESV_DATA_DIR, has its event in the journal (journal.db, read as
# a file too, so the broker may be down): each reservation its
# reservation.requested and the event of its status, each payment its
# payment.authorized and those of its status, each notification one
# notification.sent. For quiet stores whose outboxes are empty (a stopped
# system): an outbox row is an event not yet journaled. Prints what is
# missing, if anything.
journal_agrees () {
    "$PY" - "$RESV_DATA_DIR" <<'PY'
import sqlite3, sys
d = sys.argv[1]
def rows(name, sql):
    return sqlite3.connect("file:%s/%s.db?mode=ro" % (d, name), uri=True,
                           timeout=10).execute(sql).fetchall()
journal = {}
for kind, who in rows("journal", "SELECT type, json_extract (body, "
                      "'$.reservation') FROM events"):
    journal.setdefault(kind, []).append(who)
def has(kind, who):
    return who in journal.get(kind, [])
missing = []
status_event = {"CONFIRMED": "reservation.confirmed",
                "DECLINED": "reservation.declined",
                "EXPIRED": "reservation.expired",
                "CANCELLED": "reservation.cancelled"}
for rid, status in rows("reservation", "SELECT id, status FROM reservations"):
    for kind in ["reservation.requested", status_event.get(status)]:
        if kind and not has(kind, rid):
            missing.append(kind + " " + rid)
payment_events = {"authorized": [], "captured": ["payment.captured"],
                  "voided": ["payment.voided"],
                  "refunded": ["payment.captured", "payment.refunded"]}
for rid, status in rows("payment", "SELECT reservation, status FROM payments"):
    for kind in ["payment.authorized"] + payment_events.get(status, []):
        if not has(kind, rid):
            missing.append(kind + " " + rid)
notes = rows("notification", "SELECT count (*) FROM notifications")[0][0]
sent = len(journal.get("notification.sent", []))
if notes != sent:
    missing.append("notification.sent: %d notifications, %d events"
                   % (notes, sent))
print("missing %d%s" % (len(missing), ": " + ", ".join(missing[:5])
                        if missing else ""))
sys.exit(1 if missing else 0)
PY
}
