#!/usr/bin/env bash
# make install into a temporary prefix, then build a program against the
# installed libresv with pkg-config alone, and run it against a broker:
# the header, the libraries and resv.pc are all a user needs.
source "$(dirname "$0")/lib.sh"

PREFIX=$T/prefix
if make -s -C "$TOP" install PREFIX="$PREFIX" >"$T/install.log" 2>&1; then
    ok "make install PREFIX=..."
else
    not_ok "make install: $(tail -5 "$T/install.log")"
    finish
fi
for f in bin/resv bin/resv-broker bin/resv-worker bin/resvd bin/resv-bench \
         lib/libresv.a lib/libresv.so lib/pkgconfig/resv.pc \
         include/resv.h include/resv_proto.h; do
    check "installed $f" test -e "$PREFIX/$f"
done

cat >"$T/hello.c" <<'C'
#include <resv.h>
#include <stdio.h>

int main (int argc, char *argv [])
{
    resv_t *client = resv_new (argc > 1? argv [1]: NULL);
    json_t *reply = NULL;
    int status = resv_ping (client, &reply);
    char *text = json_dumps (reply, JSON_COMPACT);
    printf ("%d %s\n", status, text);
    free (text);
    json_decref (reply);
    resv_destroy (&client);
    return status == RESV_OK? 0: 1;
}
C
export PKG_CONFIG_PATH=$PREFIX/lib/pkgconfig
# Under `make check` the installed library is built with sanitizers, and a
# program linking it must be too.
SAN=${RESV_SANITIZE:+-fsanitize=$RESV_SANITIZE}
# Shared: -lresv from the installed lib/ directory, and jansson, whose
# json_t the API hands out (hello.c calls json_dumps and json_decref):
# `pkg-config --libs resv` alone must link both.
if cc $SAN -o "$T/hello" "$T/hello.c" $(pkg-config --cflags --libs resv) \
      >"$T/cc.log" 2>&1; then
    ok "a client builds with pkg-config resv alone"
else
    not_ok "build against installed libresv: $(head -c 600 "$T/cc.log")"
fi
# Static: the archive and the private requirements.
if cc $SAN -o "$T/hello-static" "$T/hello.c" $(pkg-config --cflags resv) \
      "$PREFIX/lib/libresv.a" $(pkg-config --libs libczmq libzmq jansson) \
      >"$T/cc2.log" 2>&1; then
    ok "a client links libresv.a statically"
else
    not_ok "static link: $(head -c 600 "$T/cc2.log")"
fi

start_broker || { not_ok "broker starts"; finish; }
OUT=$(LD_LIBRARY_PATH=$PREFIX/lib "$T/hello" "$RESV_BROKER_FRONTEND")
has "installed shared libresv pings the broker" "$OUT" '^200 \{"pong":true'
OUT=$("$T/hello-static" "$RESV_BROKER_FRONTEND")
has "static libresv pings the broker" "$OUT" '^200 \{"pong":true'
finish
