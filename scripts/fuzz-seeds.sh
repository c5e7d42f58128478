#!/usr/bin/env bash
#
# Builds every libFuzzer target (clang, with AddressSanitizer and UBSan)
# and runs each over its seed corpus once, without mutating: a parser
# change that crashes on a known input, or a target whose corpus went
# missing, fails here in CI rather than in a long fuzzing run.  Prints TAP
# (one test point per target); scripts/test.sh runs it with the unit
# tests.  To fuzz for real, run a target from build/fuzz/ on a copy of its
# corpus (see the comment at the top of each target).
#
#   scripts/fuzz-seeds.sh

set -euo pipefail

GG_SCRIPT=fuzz
. "$(dirname "$0")/lib.sh"

cd "$GG_ROOT"

# target -> seed corpus (every target must have one)
declare -A seeds=(
    [fuzz_apikey]=modules/core/fuzz/seeds/apikey
    [fuzz_base64]=modules/core/fuzz/seeds/base64
    [fuzz_oai_body]=modules/core/fuzz/seeds/oai_body
    [fuzz_multipart]=modules/core/fuzz/seeds/multipart
    [fuzz_oai_strip]=modules/core/fuzz/seeds/sse
    [fuzz_sse]=modules/core/fuzz/seeds/sse
    [fuzz_think]=modules/core/fuzz/seeds/think
    [fuzz_scram_parse_first]=modules/core/fuzz/seeds/parse_first
    [fuzz_scram_server_final]=modules/core/fuzz/seeds/server_final
    [fuzz_scram_client_final]=modules/core/fuzz/seeds/client_final
    [fuzz_tunnel_proto]=modules/core/fuzz/seeds/tunnel_proto
    [fuzz_tunnel_msg]=modules/core/fuzz/seeds/tunnel_msg
    [fuzz_utf8]=modules/core/fuzz/seeds/utf8
    [fuzz_trace]=modules/core/fuzz/seeds/trace
    [fuzz_prefix]=modules/core/fuzz/seeds/prefix
    [fuzz_ratelimit]=modules/core/fuzz/seeds/ratelimit
    [fuzz_http_head]=modules/core/fuzz/seeds/http_request
    [fuzz_http_chunked]=modules/core/fuzz/seeds/http_chunked
    [fuzz_ga_load]=worker-agent/fuzz/seeds/ga_load
    [fuzz_ga_models]=worker-agent/fuzz/seeds/ga_models
    [fuzz_ga_telemetry]=worker-agent/fuzz/seeds/ga_telemetry
)

log=$(mktemp /tmp/gpugate-fuzz.XXXXXX)
trap 'rm -rf "$log" "$log.d"' EXIT

if ! { make -s -C modules/core BUILDDIR="$GG_BUILD" fuzz \
       && make -s -C worker-agent BUILDDIR="$GG_BUILD" fuzz; } >"$log" 2>&1
then
    echo "1..1"
    echo "not ok 1 - fuzz targets build"
    sed 's/^/# /' "$log"
    exit 1
fi

mapfile -t targets < <(find "$GG_BUILD/fuzz" -maxdepth 1 -type f \
                            -name 'fuzz_*' -perm -u+x | sort)
echo "1..${#targets[@]}"

n=0
fail=0
for bin in "${targets[@]}"; do
    n=$((n + 1))
    name=$(basename "$bin")
    dir=${seeds[$name]:-}
    if [ -z "$dir" ] || [ -z "$(ls -A "$dir" 2>/dev/null)" ]; then
        echo "not ok $n - $name has a seed corpus (add one and list it in $0)"
        fail=1
        continue
    fi
    # libFuzzer may add to a corpus directory it is given: use a copy
    rm -rf "$log.d"
    cp -r "$dir" "$log.d"
    count=$(find "$log.d" -type f | wc -l)
    if "$bin" -runs=0 "$log.d" >"$log" 2>&1; then
        echo "ok $n - $name: $count seeds from $dir"
    else
        echo "not ok $n - $name: $count seeds from $dir"
        tail -n 30 "$log" | sed 's/^/# /'
        fail=1
    fi
done

exit $fail
