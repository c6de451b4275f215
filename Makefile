#   resv: a reservation service on ZeroMQ.
#
#   make            build bin/ and lib/
#   make run        install missing packages, build, run resvd with config/resv.cfg
#   make test       install missing packages, build, run every test
#   make check      the same tests on a build with ASan and UBSan
#   make bench      benchmarks against a raw CZMQ baseline
#   make install    PREFIX=/usr/local DESTDIR=
#   make clean

PREFIX    ?= /usr/local
DESTDIR   ?=
CC        ?= cc
SANITIZE  ?=
BUILD     ?= build/obj
BINDIR    ?= bin
LIBDIR    ?= lib
VERSION   := 0.1.0

#   Debian packages the build, the tests and the benchmarks need. `make deps`
#   installs those that are missing, so a fresh machine needs nothing else.
DEB_PKGS  := gcc make pkg-config libczmq-dev libzmq3-dev libsqlite3-dev \
             libjansson-dev libcmocka-dev sqlite3 procps python3
PKGS      := libczmq libzmq sqlite3 jansson

WARN      := -Wall -Wextra -Wformat=2 -Wstrict-prototypes -Werror
CFLAGS    ?= -O2 -g
CFLAGS    += -std=gnu11 -fPIC $(WARN) -Iclient -Iworkers -Ibroker \
             -DRESV_VERSION='"$(VERSION)"'
LDLIBS    := -lm -lpthread
ifneq ($(MAKECMDGOALS),deps)
ifneq ($(MAKECMDGOALS),clean)
CFLAGS    += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(LDLIBS)
CMOCKA    := $(shell pkg-config --libs cmocka 2>/dev/null)
endif
endif
ifneq ($(SANITIZE),)
CFLAGS    += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=$(SANITIZE)
endif

#   Sources by role. A file ending in _main.c holds a program's main(); a
#   file ending in _test.c is a cmocka unit test of the module beside it;
#   client/bench_*.c are the benchmark programs' own, not libresv's.
#   client/getpid_cache.c goes into the broker's and the workers' programs
#   only: it replaces libc's getpid in the process that links it.
LIB_SRC    := $(filter-out %_main.c %_test.c client/bench_%.c client/getpid_cache.c,\
                $(wildcard client/*.c))
#   The broker's journal shares the workers' checkpointer and SQLite opener.
BROKER_SRC := $(filter-out %_main.c %_test.c,$(wildcard broker/*.c)) \
              workers/checkpoint.c workers/db.c
#   Consumers read the fields they need from an event with the broker's
#   JSON checker.
WORKER_SRC := $(filter-out %_main.c %_test.c workers/testkit.c,$(wildcard workers/*.c)) \
              broker/jscan.c
TEST_SRC   := $(wildcard client/*_test.c broker/*_test.c workers/*_test.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
LIB_OBJ    := $(call obj,$(LIB_SRC))
BROKER_OBJ := $(call obj,$(BROKER_SRC))
WORKER_OBJ := $(call obj,$(WORKER_SRC))
BENCH_OBJ  := $(BUILD)/client/bench_report.o $(BUILD)/client/bench_inflight.o \
              $(BUILD)/client/bench_body.o
PID_OBJ    := $(BUILD)/client/getpid_cache.o

PROGRAMS   := $(BINDIR)/resv-broker $(BINDIR)/resv-worker $(BINDIR)/resvd \
              $(BINDIR)/resv $(BINDIR)/resv-bench
LIBS       := $(LIBDIR)/libresv.a $(LIBDIR)/libresv.so $(LIBDIR)/resv.pc
TESTS      := $(patsubst %_test.c,$(BUILD)/test/%_test,$(TEST_SRC))
RAW_ECHO   := $(BUILD)/raw-echo
SAGA_BASE  := $(BUILD)/saga-baseline

.PHONY: all deps run test check bench install clean
#   Keep the unit tests' objects: make would otherwise delete them as
#   intermediates after each build (and rebuild them every time).
.SECONDARY:
all: $(PROGRAMS) $(LIBS) $(TESTS) $(RAW_ECHO) $(SAGA_BASE)

deps:
	@missing=""; for p in $(DEB_PKGS); do \
	    dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	    echo "make deps: installing$$missing"; \
	    sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	    $$sudo apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

run: deps
	$(MAKE) all
	$(BINDIR)/resvd -c config/resv.cfg

test: deps
	$(MAKE) all
	@RESV_BIN=$(BINDIR) RESV_TEST_BIN=$(BUILD)/test RESV_SANITIZE=$(SANITIZE) \
	    RESV_RAW_ECHO=$(RAW_ECHO) RESV_SAGA_BASELINE=$(SAGA_BASE) tests/run.sh

check: deps
	$(MAKE) all test SANITIZE=address,undefined BUILD=build/san \
	    BINDIR=build/san/bin LIBDIR=build/san/lib

bench: deps
	$(MAKE) all
	@RESV_BIN=$(BINDIR) RESV_RAW_ECHO=$(RAW_ECHO) \
	    RESV_SAGA_BASELINE=$(SAGA_BASE) tests/bench.sh

$(BUILD)/%.o: %.c $(wildcard client/*.h broker/*.h workers/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIBDIR)/libresv.a: $(LIB_OBJ)
	@mkdir -p $(LIBDIR)
	rm -f $@ && ar rcs $@ $^

$(LIBDIR)/libresv.so: $(LIB_OBJ)
	@mkdir -p $(LIBDIR)
	$(CC) -shared -Wl,-soname,libresv.so.0 $(LDFLAGS) -o $@ $^ $(LDLIBS)
	ln -sf libresv.so $(LIBDIR)/libresv.so.0

$(LIBDIR)/resv.pc: client/resv.pc.in
	@mkdir -p $(LIBDIR)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

$(BINDIR)/resv-broker: $(BUILD)/broker/broker_main.o $(BROKER_OBJ) $(PID_OBJ) $(LIBDIR)/libresv.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/resv-worker: $(BUILD)/workers/worker_main.o $(WORKER_OBJ) $(PID_OBJ) $(LIBDIR)/libresv.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/resvd: $(BUILD)/workers/resvd_main.o $(WORKER_OBJ) $(LIBDIR)/libresv.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/resv: $(BUILD)/client/resv_main.o $(LIBDIR)/libresv.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BINDIR)/resv-bench: $(BUILD)/client/bench_main.o $(BENCH_OBJ) $(LIBDIR)/libresv.a
	@mkdir -p $(BINDIR)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

#   The benchmark baseline: a plain CZMQ echo with no resv code in it but
#   the benchmarks' bookkeeping (client/bench_*.c) and, to read its
#   arguments, resv_util's number parser.
$(RAW_ECHO): $(BUILD)/tests/raw_echo.o $(BENCH_OBJ) $(BUILD)/client/resv_util.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

#   The reserve benchmark's baseline: the saga's SQLite transactions run by
#   the services' own code, called directly, with no messaging.
$(SAGA_BASE): $(BUILD)/tests/saga_baseline.o $(BENCH_OBJ) $(WORKER_OBJ) $(BROKER_OBJ) $(LIBDIR)/libresv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

#   Each unit test links the objects of its own component and libresv.
#   (The cached getpid's test links it alone: an explicit rule wins over
#   the pattern below.)
$(BUILD)/test/client/getpid_cache_test: $(BUILD)/client/getpid_cache_test.o $(PID_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA) $(LDLIBS)

$(BUILD)/test/client/%_test: $(BUILD)/client/%_test.o $(BENCH_OBJ) $(LIBDIR)/libresv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA) $(LDLIBS)

$(BUILD)/test/broker/%_test: $(BUILD)/broker/%_test.o $(BROKER_OBJ) $(LIBDIR)/libresv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA) $(LDLIBS)

$(BUILD)/test/workers/%_test: $(BUILD)/workers/%_test.o $(BUILD)/workers/testkit.o $(WORKER_OBJ) $(BROKER_OBJ) $(LIBDIR)/libresv.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(CMOCKA) $(LDLIBS)

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig \
	    $(DESTDIR)$(PREFIX)/include
	install -m 755 $(PROGRAMS) $(DESTDIR)$(PREFIX)/bin
	install -m 644 $(LIBDIR)/libresv.a $(DESTDIR)$(PREFIX)/lib
	install -m 755 $(LIBDIR)/libresv.so $(DESTDIR)$(PREFIX)/lib/libresv.so.0
	ln -sf libresv.so.0 $(DESTDIR)$(PREFIX)/lib/libresv.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' client/resv.pc.in \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/resv.pc
	install -m 644 client/resv.h client/resv_proto.h $(DESTDIR)$(PREFIX)/include

clean:
	rm -rf build bin lib
