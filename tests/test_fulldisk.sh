#!/usr/bin/env bash
# tests/test_fulldisk.sh: the whole system, under resvd, on a disk that
# fails its writes. While it does, every reserve is answered: 201 while the
# WAL files still have room, then a clear 5xx that says why, with a log
# line, and no process dies. Reads go on. Once writes work again, a retry
# of each refused request succeeds, and nothing was half-written: one
# reservation.requested per reservation, a journal with no gap, holds equal
# to the reservations, every reservation confirmed, notified and in the
# view.
#
# Two runs, each with a resvd of its own:
#   full   a small tmpfs, filled to the last byte: a real full disk
#          (ENOSPC; SQLite says "database or disk is full"). It needs the
#          right to mount (root with CAP_SYS_ADMIN), which CI has; where
#          that is missing this run cannot happen, which is a failure (a
#          test left out is not a test passed).
#   limit  every write of the broker and the workers refused by a file
#          size limit of 0 (prlimit --fsize; EFBIG, "disk I/O error"):
#          even writes within a file fail, and the processes must not die
#          of the kernel's SIGXFSZ.
#
# Then a third, where the data directory is removed (rm -rf) under the
# running system: each process would go on writing to its unlinked files,
# all of it lost at the next start. Instead writes are refused, with a
# clear 5xx and a log line, and reads go on.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
source "$(dirname "${BASH_SOURCE[0]}")/lib_domain.sh"

for s in $DOMAIN_SERVICES; do export "RESV_WORKERS_${s^^}_COUNT=1"; done
export RESV_WORKERS_ECHO_COUNT=0
export RESV_RESVD_RESTART_MIN=100

DISK=$(mktemp -d /tmp/resv-disk.XXXXXX)
MOUNTED=false
# The processes first, then the disk under them.
trap 'cleanup; $MOUNTED && umount "$DISK"; rmdir "$DISK"' EXIT

# resv_pids: resvd's broker and workers (not the log's cat, in limit).
resv_pids () { pgrep -P "$RESVD_PID" -f 'resv-(broker|worker)' | sort -n | tr '\n' ' '; }

# reserve I DIR: request I of this run (the same arguments on every try),
# its reply in DIR/I.out and its exit status in DIR/I.rc.
reserve () {
    "${R[@]}" reserve --customer "$MODE$1" --resource "$RES" --date 2027-03-01 \
        --request-id "$MODE-$1" >"$2/$1.out" 2>&1
    echo $? >"$2/$1.rc"
}
holds_are () { [ "$(held "$RES" 2027-03-01)" = "$1" ]; }
all_confirmed () {
    [ "$(r list --resource "$RES" --status CONFIRMED --limit 1000 |
         js '"\n".join(sorted(x["id"] for x in d["items"]))')" = "$(cat "$W/ids")" ]
}
# notified: each of CUSTOMERS has one notification, of the confirmation
# (a line for each, and each line says so).
# shellcheck disable=SC2086
notified () {
    local want got
    want=$(printf '%s\n' $CUSTOMERS | grep -c .)
    got=$(kinds_of $CUSTOMERS | grep -c ' 1 reservation.confirmed$')
    [ "$want" -gt 0 ] && [ "$got" = "$want" ]
}
# fsize_zero: PIDS_BEFORE holds 7 processes (the broker and the 6
# workers), and for each prlimit prints one line, its file size limit: 0.
fsize_zero () {
    local p limit
    # shellcheck disable=SC2086
    [ "$(printf '%s\n' $PIDS_BEFORE | grep -c .)" = 7 ] || return 1
    for p in $PIDS_BEFORE; do
        limit=$(prlimit --pid "$p" --fsize -o SOFT --noheadings)
        [ "$(printf '%s' "$limit" | tr -d ' ')" = 0 ] || return 1
    done
}

# payments_settled: the journal holds each made reservation's payment,
# authorised once more than voided (read into $W/j.json).
payments_settled () {
    journal "$W/j.json" &&
        [ -z "$(runs_odd "$(payment_runs "$W/j.json" "$W/ids")")" ]
}

# disk_fails / disk_works: the disk stops taking writes, and takes them again.
disk_fails () {
    local p
    if [ "$MODE" = full ]; then
        dd if=/dev/zero of="$DISK/filler" bs=64k 2>/dev/null
        check "[full] the disk is full" \
            test "$(df --output=avail -k "$DISK" | tail -n 1 | tr -d ' ')" = 0
    else
        for p in $PIDS_BEFORE; do prlimit --pid "$p" --fsize=0:; done
        check "[limit] the broker and the 6 workers may write nothing more" \
            fsize_zero
    fi
}
disk_works () {
    local p
    if [ "$MODE" = full ]; then
        rm -f "$DISK/filler"
    else
        for p in $PIDS_BEFORE; do prlimit --pid "$p" --fsize=unlimited:; done
    fi
}

# log_is_quiet: while writes are refused, the relays try again (backing
# off) and the consumers too, and each refusal would be a log line: they
# come once in 10 s, so the log hardly grows in 5 s.
log_is_quiet () {
    local lines
    lines=$(wc -l <"$T/resvd.log")
    sleep 5
    lines=$(( $(wc -l <"$T/resvd.log") - lines ))
    check "[$MODE] while it lasts, the log does not flood ($lines lines in 5 s)" \
        test $lines -lt 40
}

# start_resvd, as lib_domain.sh's, but the log goes through a pipe in the
# limit run: the workers log to resvd's stderr, and a file size limit
# would refuse their writes to a file.
start_resvd () {
    use_free_ports
    if [ "$MODE" = full ]; then
        spawn resvd "$BIN/resvd" -c "$TOP/config/resv.cfg"
        RESVD_PID=$LAST_PID
    else
        "$BIN/resvd" -c "$TOP/config/resv.cfg" > >(cat >>"$T/resvd.log") 2>&1 &
        RESVD_PID=$!
        PIDS+=("$RESVD_PID")
    fi
    wait_for 15 "$BIN/resv" -t 500 ping || return 1
    local s
    for s in $DOMAIN_SERVICES; do wait_count "$s" 1 || return 1; done
}

# run MODE WHY: the run on that disk; WHY is what SQLite says of a write
# that failed there.
run () {
    MODE=$1 WHY=$2 W=$T/$1
    mkdir -p "$W/first" "$W/final"
    if [ "$MODE" = full ]; then
        export RESV_DATA_DIR=$DISK/var
    else
        export RESV_DATA_DIR=$W/var
    fi
    if ! start_resvd; then
        not_ok "[$MODE] resvd starts the broker and every service"
        return
    fi
    ok "[$MODE] resvd starts the broker and every service"
    RES=$(r resource add --name "Disk $MODE" --owner ann --kind storage \
        --capacity 1000 --price 100 --approval auto | js 'd["id"]')
    check "[$MODE] a resource" test -n "$RES"
    local i
    for i in 1 2 3 4 5; do reserve $i "$W/first"; done
    check "[$MODE] five reserves before the writes fail" \
        test "$(outcomes "$W/first" | grep -c ' ok ')" = 5
    local first
    first=$(outcomes "$W/first" | awk '{print $3; exit}')
    PIDS_BEFORE=$(resv_pids)

    disk_fails
    # Reserve on until five in a row were refused (what the WAL files
    # still have room for succeeds first): at most 400 tries or 90 s.
    local refused=0 n=5 end=$((SECONDS + 90))
    while [ $refused -lt 5 ] && [ $n -lt 405 ] && [ $SECONDS -lt $end ]; do
        n=$((n + 1))
        reserve $n "$W/first"
        if [ "$(cat "$W/first/$n.rc")" = 0 ]; then refused=0
        else refused=$((refused + 1)); fi
    done
    outcomes "$W/first" >"$W/first.outcomes"
    echo "# [$MODE] while writes fail: $(awk '{print $2, $3}' "$W/first.outcomes" |
        sed 's/^ok .*/ok/' | sort | uniq -c | tr -s ' \n' ' ')"
    echo "# [$MODE] $(cat "$W/first/$n.out")"
    check "[$MODE] five refused in a row, after $((n - 5)) reserves" test $refused = 5
    # A reserve whose own store cannot write is refused before its hold
    # (503; not 500, which would open the reservation service's circuit,
    # and reads with it), as is one whose hold or authorisation met
    # availability or payment refusing writes; one whose last commit
    # failed after the hold and authorisation with a 500 (a retry finds
    # them again). Each exits 3 and says why.
    local odd mute
    odd=$(grep -vE ' ok | err 50[03] internal$' "$W/first.outcomes")
    check "[$MODE] every reserve is answered 201, or 500 or 503${odd:+: $(printf '%s' "$odd" | head -n 3 | tr '\n' ';')}" \
        test -z "$odd"
    mute=$(for i in $(awk '$2 == "err" {print $1}' "$W/first.outcomes"); do
               grep -q "$WHY" "$W/first/$i.out" || echo "$i"; done)
    check "[$MODE] every refusal says why ($WHY)${mute:+; these do not: $mute}" \
        test -z "$mute"
    check "[$MODE] a reservation made before is still read from the view" \
        status_is "$first" CONFIRMED
    check "[$MODE] and from the command side" test "$(cmd_status "$first")" = CONFIRMED
    check "[$MODE] the processes logged the failing writes" grep -q "$WHY" "$T/resvd.log"
    check "[$MODE] no process died or was restarted" test "$(resv_pids)" = "$PIDS_BEFORE"
    log_is_quiet

    disk_works
    # Every request again (one that succeeded must give the same id), each
    # until it is answered 201, for 60 s at most in all.
    end=$((SECONDS + 60))
    for i in $(seq 1 $n); do
        while :; do
            reserve "$i" "$W/final"
            [ "$(cat "$W/final/$i.rc")" = 0 ] || [ $SECONDS -ge $end ] && break
            sleep 0.25
        done
    done
    outcomes "$W/final" >"$W/final.outcomes"
    odd=$(grep -v ' ok ' "$W/final.outcomes")
    check "[$MODE] once writes work again every request succeeds${odd:+: $(printf '%s' "$odd" | head -n 3 | tr '\n' ';')}" \
        test -z "$odd"
    odd=$(join <(awk '$2 == "ok" {print $1, $3}' "$W/first.outcomes" | sort) \
               <(awk '{print $1, $3}' "$W/final.outcomes" | sort) | awk '$2 != $3')
    check "[$MODE] a request that succeeded meanwhile keeps its reservation${odd:+: $odd}" \
        test -z "$odd"
    awk '$2 == "ok" {print $3}' "$W/final.outcomes" | sort >"$W/ids"
    check "[$MODE] each request has its own reservation ($n)" \
        test "$(sort -u "$W/ids" | grep -c .)" = $n

    # Nothing half-written, nothing lost.
    check "[$MODE] the view shows each reservation CONFIRMED, and no other" \
        wait_for 30 all_confirmed
    check "[$MODE] holds equal the reservations ($n units)" wait_for 10 holds_are $n
    # A relay refused while the disk was full tries again after its
    # back-off (up to 2 s), so the payment service's last events may reach
    # the journal a moment after the view shows every reservation: read it
    # once they have (or, failing that, as it is after 15 s).
    wait_for 15 payments_settled
    check "[$MODE] the journal reads whole" journal "$W/j.json"
    check "[$MODE] journal: seqs run 1..N with no gap" \
        test "$(jq_file "$W/j.json" '[e["seq"] for e in d] == list(range(1, len(d) + 1))')" = true
    check "[$MODE] journal: one reservation.requested per reservation" \
        test "$(jq_file "$W/j.json" '"\n".join(sorted(e["reservation"] for e in d if e["type"] == "reservation.requested"))')" = "$(cat "$W/ids")"
    # Each made reservation's payment authorised once more than voided
    # (lib_domain.sh's payment_runs says why more than once may happen).
    payments=$(payment_runs "$W/j.json" "$W/ids")
    printf '%s\n' "$payments" | grep ',' | sed "s/^/# [$MODE] authorised again: /"
    odd=$(runs_odd "$payments")
    check "[$MODE] journal: each of the $n payments authorised once more than voided${odd:+: $(printf '%s' "$odd" | head -n 3 | tr '\n' ';')}" \
        test "$(printf '%s\n' "$payments" | grep -c .)" = $n -a -z "$odd"
    CUSTOMERS=$(for i in $(seq 1 $n); do echo "$MODE$i"; done)
    check "[$MODE] each customer is notified exactly once" wait_for 20 notified
    check "[$MODE] and still no process died" test "$(resv_pids)" = "$PIDS_BEFORE"
    check "[$MODE] resvd saw no death" \
        test "$(grep -cE 'pid [0-9]+, (was killed|exited)' "$T/resvd.log")" = 0

    # Stop this run's system: the next one starts its own.
    kill -TERM "$RESVD_PID"
    wait_for 20 dead "$RESVD_PID"
    mv "$T/resvd.log" "$W/resvd.log"
}

if mount -t tmpfs -o size=24m resv-test-disk "$DISK" 2>"$T/mount.err"; then
    MOUNTED=true
    run full 'database or disk is full'
else
    # A run that cannot happen is a failure, not a pass: say why.
    not_ok "[full] a tmpfs to fill is mounted (this needs root with" \
        "CAP_SYS_ADMIN; mount said: $(head -n 1 "$T/mount.err" | head -c 200))"
fi
run limit 'disk I/O error'

# deleted: the data directory removed while the system runs.
deleted () {
    MODE=deleted W=$T/deleted
    local why='the database file was deleted or moved; refusing writes'
    mkdir -p "$W/first"
    export RESV_DATA_DIR=$W/var
    if ! start_resvd; then
        not_ok "[$MODE] resvd starts the broker and every service"
        return
    fi
    RES=$(r resource add --name "Disk $MODE" --owner ann --kind storage \
        --capacity 1000 --price 100 --approval auto | js 'd["id"]')
    check "[$MODE] a resource" test -n "$RES"
    reserve 1 "$W/first"
    local first
    first=$(js 'd["id"]' <"$W/first/1.out")
    check "[$MODE] a reserve before the directory goes" test -n "$first"
    check "[$MODE] and it is confirmed" wait_for 30 status_is "$first" CONFIRMED
    PIDS_BEFORE=$(resv_pids)
    rm -rf "$RESV_DATA_DIR"
    # Each store looks at its file at most once a second.
    sleep 1.5
    local i
    for i in 2 3 4; do reserve $i "$W/first"; done
    outcomes "$W/first" >"$W/first.outcomes"
    echo "# [$MODE] $(cat "$W/first/2.out")"
    local odd
    odd=$(sed 1d "$W/first.outcomes" | grep -vE ' err 50[03] internal$')
    check "[$MODE] every reserve is refused, 500 or 503${odd:+: $(printf '%s' "$odd" | head -n 3 | tr '\n' ';')}" \
        test -z "$odd"
    check "[$MODE] and says why" grep -q "$why" "$W/first/2.out"
    check "[$MODE] the reservation service logged it" \
        grep -qE "/reservation\.db: (.*: )?$why" "$T/resvd.log"
    check "[$MODE] and refused them before their holds" holds_are 1
    check "[$MODE] a reservation made before is still read from the view" \
        status_is "$first" CONFIRMED
    check "[$MODE] no process died or was restarted" test "$(resv_pids)" = "$PIDS_BEFORE"
    log_is_quiet
    kill -TERM "$RESVD_PID"
    wait_for 20 dead "$RESVD_PID"
    mv "$T/resvd.log" "$W/resvd.log"
}
deleted
finish
