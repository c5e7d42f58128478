#!/usr/bin/env bash
#
# Builds gpugate and runs every test: C unit tests, then the t/ suite
# (Test::Nginx format) against Debian's nginx with the gpugate module,
# real PostgreSQL and Redis servers and the mock inference runtime, all
# started here on free loopback ports in a temp dir and stopped at the end,
# also on failure or Ctrl-C.  Ends with "N passed, N failed"; exits
# non-zero if anything failed.
#
#   scripts/test.sh [--no-deps] [--valgrind] [-v] [-j N] [TEST.t ...]
#
#   --no-deps    do not check/install Debian packages
#   --valgrind   run nginx under valgrind memcheck (TEST_NGINX_USE_VALGRIND)
#   -v           verbose TAP output
#   -j N         run N test files at once (default 3, GPUGATE_TEST_JOBS)
#   TEST.t       run only these test files (no unit tests)
#
# Test files mostly wait (for servers, agents, timeouts), so they run N
# at a time, each in a "lane" of its own: a PostgreSQL, a Redis, two mock
# runtimes, an nginx port and servroot, and a range of ports for what the
# file starts itself (scripts/lane-run.sh hands a free lane to each).
#
# Upstream Test::Nginx is used when it is installed; otherwise the runner
# in t/lib.  GPUGATE_TEST_RUNNER=bundled forces the bundled runner.
# GPUGATE_KEEP_TMP=1 keeps the temp dir (logs of every server) for a look.

set -euo pipefail

GG_SCRIPT=test
. "$(dirname "$0")/lib.sh"

deps=1
valgrind=0
verbose=()
only=()
jobs=${GPUGATE_TEST_JOBS:-3}

while [ $# -gt 0 ]; do
    case $1 in
        --no-deps) deps=0 ;;
        --valgrind) valgrind=1 ;;
        -v|--verbose) verbose=(-v) ;;
        -j) shift; jobs=${1:-}
            [[ "$jobs" =~ ^[1-9][0-9]?$ ]] || gg_die "-j wants 1 to 99" ;;
        -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) gg_die "unknown option: $1 (see --help)" ;;
        *) [ -f "$1" ] || gg_die "no such test file: $1"; only+=("$1") ;;
    esac
    shift
done

cd "$GG_ROOT"

[ $deps -eq 1 ] && gg_install_deps
"$GG_ROOT/scripts/build.sh" --no-deps

tmp=$(mktemp -d /tmp/gpugate-test.XXXXXX)
chmod 755 "$tmp"
gg_install_traps
if [ "${GPUGATE_KEEP_TMP:-0}" = 1 ]; then
    gg_on_cleanup "echo 'test: kept $tmp' >&2"
else
    gg_on_cleanup "rm -rf '$tmp'"
fi

# start_lane K: lane K's servers in $tmp/laneK, and the environment its
# test files run with in $tmp/laneK/env (sourced by scripts/lane-run.sh)
start_lane() {
    local k=$1 d=$tmp/lane$1 pg_port redis_port mock_port mock2_port
    local nginx_port span lo

    mkdir -p "$d"

    # An nginx left running by an interrupted test file is ours to stop too.
    gg_on_cleanup "[ -f '$d/servroot/logs/nginx.pid' ] && \
        kill -QUIT \$(cat '$d/servroot/logs/nginx.pid')"

    pg_port=$(gg_free_port)
    gg_start_postgres "$d/pg" "$pg_port"
    gg_apply_sql "$pg_port"
    # every migration must be idempotent: applying them again is a no-op
    gg_apply_sql "$pg_port"

    redis_port=$(gg_free_port)
    gg_start_redis "$d/redis" "$redis_port"

    gg_start_mock "$d" mock --models mock-model,other-model
    mock_port=$GG_MOCK_PORT
    gg_start_mock "$d" mock2 --models second-model
    mock2_port=$GG_MOCK_PORT

    # ports the files pick themselves: a slice of 20000-29999 per lane
    span=$((10000 / lanes))
    lo=$((20000 + (k - 1) * span))

    # nginx's port is free between the lane's files, so it must not lie in
    # any lane's slice: a file there could take it for a server of its own
    # and the lane's next Test::Nginx file fail to bind (t/004 in a loaded
    # run: "bind() to 0.0.0.0:22391 failed (98: Address already in use)")
    GPUGATE_PORT_LO=30000 GPUGATE_PORT_HI=31999 gg_take_port nginx_port

    {
        printf 'TEST_NGINX_PORT=%q\n' "$nginx_port"
        printf 'TEST_NGINX_SERVER_PORT=%q\n' "$nginx_port"
        printf 'TEST_NGINX_SERVROOT=%q\n' "$d/servroot"
        printf 'TEST_NGINX_MOCK_PORT=%q\n' "$mock_port"
        printf 'TEST_NGINX_MOCK_LOG=%q\n' "$d/mock.log"
        printf 'TEST_NGINX_MOCK2_PORT=%q\n' "$mock2_port"
        printf 'TEST_NGINX_MOCK2_LOG=%q\n' "$d/mock2.log"
        printf 'TEST_NGINX_PG_PORT=%q\n' "$pg_port"
        printf 'TEST_NGINX_PG_DSN=%q\n' "$GG_PG_DSN"
        printf 'TEST_NGINX_REDIS_PORT=%q\n' "$redis_port"
        printf 'GPUGATE_PORT_LO=%q\n' "$lo"
        printf 'GPUGATE_PORT_HI=%q\n' "$((lo + span - 1))"
        printf 'GPUGATE_TEST_LANE=%q\n' "$k"
    } >"$d/env"

    gg_log "test lane $k: PostgreSQL $pg_port, Redis $redis_port," \
        "mocks $mock_port $mock2_port, ports $lo-$((lo + span - 1))"
}

export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
export TEST_NGINX_LOAD_MODULES="$GG_BUILD/modules/ngx_http_gpugate_module.so"
export GPUGATE_BUILD=$GG_BUILD
[ $valgrind -eq 1 ] && export TEST_NGINX_USE_VALGRIND=1

inc=()
if [ "${GPUGATE_TEST_RUNNER:-}" = bundled ] \
    || ! perl -MTest::Nginx::Socket -e 1 2>/dev/null
then
    inc=(-I "$GG_ROOT/t/lib")
    gg_log "Test::Nginx runner: bundled (t/lib)"
else
    gg_log "Test::Nginx runner: upstream $(perl -MTest::Nginx::Socket \
        -e 'print $Test::Nginx::Socket::VERSION')"
fi

tests=()
beside=()

if [ ${#only[@]} -gt 0 ]; then
    tests=("${only[@]}")
else
    # C unit test programs print TAP; build/tests/ is filled by make
    make -s -C worker-agent BUILDDIR="$GG_BUILD" unit-tests
    make -s -C modules/core BUILDDIR="$GG_BUILD" unit-tests
    for t in "$GG_BUILD"/tests/*; do
        [ -x "$t" ] && tests+=("$t")
    done
    # the tree's layout rules: file and function length, nginx-free core
    tests+=("$GG_ROOT/scripts/check-layout.sh")
    # every fuzz target over its seed corpus (TAP, one point per target);
    # it shares nothing with the others, so it runs beside them
    tests+=("$GG_ROOT/scripts/fuzz-seeds.sh")
    beside=(--beside "$GG_ROOT/scripts/fuzz-seeds.sh")
    # the mock runtime over real sockets with curl (TAP)
    tests+=("$GG_ROOT/worker-agent/tests/mock_smoke.sh")
    while IFS= read -r t; do
        tests+=("$t")
    done < <(find t -name '*.t' -not -path 't/lib/*' | sort)
fi

# no more lanes than files that need one
lanes=$jobs
[ ${#tests[@]} -lt "$lanes" ] && lanes=${#tests[@]}

for ((k = 1; k <= lanes; k++)); do
    start_lane "$k"
done

rc=0
perl "$GG_ROOT/scripts/tap-run.pl" "${inc[@]}" "${verbose[@]}" "${beside[@]}" \
    --lanes "$tmp" --jobs "$lanes" --durations "$GG_ROOT/t/durations.txt" \
    --record "$GG_BUILD/test-durations.txt" "${tests[@]}" \
    || rc=$?

if [ $rc -ne 0 ]; then
    gg_log "failures: server logs are in $tmp (kept with GPUGATE_KEEP_TMP=1)"
fi

exit $rc
