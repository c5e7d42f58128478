#!/usr/bin/env bash
#
# Builds gpugate: the nginx dynamic module (build/modules/*.so) against the
# installed nginx's source headers, and the C programs in worker-agent/
# (build/bin/).  nginx's configure runs once; later builds only recompile
# what changed, unless ./config (the module's source list) or the nginx
# version changed.
#
#   scripts/build.sh [--no-deps] [--nginx-src DIR]
#
#   --no-deps         do not check/install Debian packages
#   --nginx-src DIR   build against an upstream nginx source tree instead of
#                     Debian's /usr/share/nginx/src (configured with
#                     --with-compat; the .so then loads into that nginx)

set -euo pipefail

GG_SCRIPT=build
. "$(dirname "$0")/lib.sh"

deps=1
nginx_src=/usr/share/nginx/src

while [ $# -gt 0 ]; do
    case $1 in
        --no-deps) deps=0 ;;
        --nginx-src) nginx_src=${2:?--nginx-src needs a directory}; shift ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) gg_die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

[ $deps -eq 1 ] && gg_install_deps

[ -x "$nginx_src/configure" ] || gg_die "no nginx source tree at $nginx_src"

ngx=$GG_BUILD/nginx
mkdir -p "$GG_BUILD/modules" "$GG_BUILD/bin"

# What configure's output depends on.  The addon sources are listed in
# ./config, so adding a file reconfigures; editing one does not.
stamp=$(
    {
        cat "$GG_ROOT/config"
        echo "$nginx_src"
        cat "$nginx_src/src/core/nginx.h"
        if [ -f "$nginx_src/conf_flags" ]; then cat "$nginx_src/conf_flags"; fi
    } | sha256sum | cut -d' ' -f1
)

if [ ! -f "$ngx/objs/Makefile" ] || [ "$(cat "$ngx/.gpugate-stamp" 2>/dev/null)" != "$stamp" ]
then
    gg_log "configuring nginx tree in $ngx"
    rm -rf "$ngx"
    mkdir -p "$ngx"
    cp -a "$nginx_src/." "$ngx/"

    flags=()
    if [ -f "$ngx/conf_flags" ]; then
        # Debian's flags: the same as /usr/sbin/nginx, so the module's
        # binary signature matches the installed server.
        # shellcheck disable=SC1091
        . "$ngx/conf_flags"
        flags=("${NGX_CONF_FLAGS[@]}")
    else
        flags=(--with-compat --with-http_ssl_module --with-threads)
    fi

    (cd "$ngx" && ./configure "${flags[@]}" \
        --with-cc-opt="-O2 -g -fPIC -Wextra -Werror -fstack-protector-strong" \
        --with-ld-opt="-Wl,-z,relro -Wl,-z,now" \
        --add-dynamic-module="$GG_ROOT" >"$ngx/configure.log" 2>&1) \
        || { tail -n 30 "$ngx/configure.log" >&2; gg_die "nginx configure failed"; }

    echo "$stamp" > "$ngx/.gpugate-stamp"
fi

gg_log "building nginx modules"
make -C "$ngx" -f objs/Makefile -j"$(nproc)" modules >"$ngx/make.log" 2>&1 \
    || { grep -E 'error|warning' "$ngx/make.log" | head -n 40 >&2
         tail -n 20 "$ngx/make.log" >&2
         gg_die "module build failed (full log: $ngx/make.log)"; }

for so in "$ngx"/objs/*.so; do
    # install only when changed, so a running nginx's files are not
    # rewritten under it for nothing
    cmp -s "$so" "$GG_BUILD/modules/$(basename "$so")" \
        || install -m 0644 "$so" "$GG_BUILD/modules/"
done

if [ -f "$GG_ROOT/worker-agent/Makefile" ]; then
    gg_log "building worker-agent programs"
    make -s -C "$GG_ROOT/worker-agent" -j"$(nproc)" BUILDDIR="$GG_BUILD" \
        || gg_die "worker-agent build failed"
fi

# the benchmark's SSE load client: one file, rebuilt when it changes
bench_src=$GG_ROOT/scripts/bench/gpugate_sse_bench.c
bench_bin=$GG_BUILD/bin/gpugate-sse-bench
if [ ! -x "$bench_bin" ] || [ "$bench_src" -nt "$bench_bin" ]; then
    gcc -O2 -g -std=gnu11 -Wall -Wextra -Werror -o "$bench_bin" "$bench_src" \
        || gg_die "gpugate-sse-bench build failed"
fi

gg_log "build ok: $(cd "$GG_BUILD" && ls modules/*.so bin/* 2>/dev/null | tr '\n' ' ')"
