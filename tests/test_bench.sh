#!/usr/bin/env bash
# make bench, shrunk to a few seconds: both sections run to the end, every
# table row has its figures, and nothing failed or was lost. No figure is
# compared with any other (speed is for make bench to show, not for a
# test); this only keeps the benchmark itself from breaking unseen.
source "$(dirname "$0")/lib.sh"

# The baselines' paths as make gives them, relative to the top directory.
RAW=${RESV_RAW_ECHO:-build/obj/raw-echo}
BASE=${RESV_SAGA_BASELINE:-build/obj/saga-baseline}
cd "$TOP" || exit 1
for prog in "$RAW" "$BASE"; do
    check "$(basename "$prog") is built" test -x "$prog"
done

# bench.sh makes its own temporary directory and ports, and stops what it
# starts; its output is kept here.
if RESV_BIN=${RESV_BIN:-bin} RESV_RAW_ECHO=$RAW RESV_SAGA_BASELINE=$BASE \
   BENCH_SECTIONS="echo reserve" BENCH_RUNS=1 BENCH_REQUESTS_1=300 \
   BENCH_REQUESTS_16=2000 BENCH_REQUESTS_64=4000 BENCH_RESERVE_SECONDS=1 \
   BENCH_BASELINE_REQUESTS=300 BENCH_SUSTAIN_SECONDS=10 \
   timeout 240 "$TOP/tests/bench.sh" >"$T/bench.out" 2>"$T/bench.err"; then
    ok "bench.sh exits 0"
else
    not_ok "bench.sh exits 0: $(tail -c 600 "$T/bench.err")"
fi
OUT=$(cat "$T/bench.out")
ERR=$(cat "$T/bench.err")

# row TABLE_HEADER_PATTERN FIRST...: the line of the table whose first
# columns are FIRST..., printed by bench.sh.
row () {
    local pattern=$1; shift
    printf '%s\n' "$OUT" | awk -v p="$pattern" -v k="$*" '
        BEGIN { n = split(k, words, " ") }
        index($0, p) { table = 1; next }
        /^#/ { table = 0 }
        table { key = $1; for (i = 2; i <= n; i++) key = key " " $i
                if (key == k) print }'
}

# numbers NAME LINE COUNT: the first COUNT fields of LINE are each a
# number or a pair of them (a/b).
numbers () {
    local name=$1 line=$2 count=$3
    if [ -n "$line" ] &&
       printf '%s\n' "$line" | awk -v n="$count" '
           NF < n { exit 1 }
           { for (i = 1; i <= n; i++)
                 if ($i !~ /^[0-9.]+(\/[0-9.]+)?$/) exit 1 }'; then
        ok "$name"
    else
        not_ok "$name: '$line'"
    fi
}

# The echo table's last column, the round trip's ratio, is for 1 in flight.
for w in 1 2; do
    for c in 1 16 64; do
        numbers "echo table: $w worker(s), $c in flight" \
            "$(row 'workers in-flight' "$w $c")" $((c == 1? 8: 7))
    done
done
has "echo: the broker alone" "$OUT" '^broker alone .*: [0-9.]+ req/s'
for c in 1 16 64; do
    numbers "reserve table: $c in flight, with cpu ms/res" \
        "$(row 'in-flight reserves/s' "$c")" 10
done
has "sustained run: a 10 s window" "$OUT" '^ +0 +[0-9]+ +[0-9.]+ +[0-9.]+$'
has "sustained run: nothing lost" "$OUT" '^overall: .*, [0-9]+ sampled, 0 lost$'
check "no run without a result" test -z "$(printf '%s\n' "$ERR" | grep 'no result from')"
check "no failed requests" test -z "$(printf '%s\n' "$ERR" | grep 'failed requests in')"

finish
