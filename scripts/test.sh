#!/usr/bin/env bash
#
# Builds gpugate and runs every test: C unit tests, then the t/ suite
# (Test::Nginx format) against Debian's nginx with the gpugate module,
# real PostgreSQL and Redis servers and the mock inference runtime, all
# started here on free loopback ports in a temp dir and stopped at the end,
# also on failure or Ctrl-C.  Ends with "N passed, N failed"; exits
# non-zero if anything failed.
#
#   scripts/test.sh [--no-deps] [--valgrind] [-v] [TEST.t ...]
#
#   --no-deps    do not check/install Debian packages
#   --valgrind   run nginx under valgrind memcheck (TEST_NGINX_USE_VALGRIND)
#   -v           verbose TAP output
#   TEST.t       run only these test files (no unit tests)
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

while [ $# -gt 0 ]; do
    case $1 in
        --no-deps) deps=0 ;;
        --valgrind) valgrind=1 ;;
        -v|--verbose) verbose=(-v) ;;
        -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

# An nginx left running by an interrupted test file is ours to stop too.
servroot=$tmp/servroot
gg_on_cleanup "[ -f '$servroot/logs/nginx.pid' ] && \
    kill -QUIT \$(cat '$servroot/logs/nginx.pid')"

pg_port=$(gg_free_port)
gg_start_postgres "$tmp/pg" "$pg_port"
gg_apply_sql "$pg_port"
# every migration must be idempotent: applying them again is a no-op
gg_apply_sql "$pg_port"

redis_port=$(gg_free_port)
gg_start_redis "$tmp/redis" "$redis_port"

gg_start_mock "$tmp" mock --models mock-model,other-model
mock_port=$GG_MOCK_PORT
gg_start_mock "$tmp" mock2 --models second-model
mock2_port=$GG_MOCK_PORT

export TEST_NGINX_BINARY=${TEST_NGINX_BINARY:-/usr/sbin/nginx}
export TEST_NGINX_LOAD_MODULES="$GG_BUILD/modules/ngx_http_gpugate_module.so"
export TEST_NGINX_PORT
TEST_NGINX_PORT=$(gg_free_port)
export TEST_NGINX_SERVER_PORT=$TEST_NGINX_PORT
export TEST_NGINX_SERVROOT=$servroot
export TEST_NGINX_MOCK_PORT=$mock_port
export TEST_NGINX_MOCK_LOG=$tmp/mock.log
export TEST_NGINX_MOCK2_PORT=$mock2_port
export TEST_NGINX_MOCK2_LOG=$tmp/mock2.log
export TEST_NGINX_PG_PORT=$pg_port
export TEST_NGINX_PG_DSN=$GG_PG_DSN
export TEST_NGINX_REDIS_PORT=$redis_port
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

rc=0
perl "$GG_ROOT/scripts/tap-run.pl" "${inc[@]}" "${verbose[@]}" "${beside[@]}" \
    "${tests[@]}" \
    || rc=$?

if [ $rc -ne 0 ]; then
    gg_log "failures: server logs are in $tmp (kept with GPUGATE_KEEP_TMP=1)"
fi

exit $rc
