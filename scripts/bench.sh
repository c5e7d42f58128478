#!/usr/bin/env bash
#
# gpugate benchmark suite: every scenario side by side in one run, against
# the limit (plain nginx proxy_pass) and the direct path, with the same
# mock runtime and request mix in each group.  Prints one table and writes
# it with the machine description to build/bench/results-<time>.json.
#
#   scripts/bench.sh [--quick] [--no-deps] [--workers N] [--only GROUPS]
#
#   --quick      reduced set, short runs (about 2 minutes)
#   --only G,G   run only these groups: auth (cache hit vs none vs the
#                OpenResty peer, miss paths), overhead (direct, plain
#                nginx, gpugate), accounting (gpugate with metrics and
#                the usage ledger on vs off; ledger rows/s), streaming (1/64/512 SSE streams; 1/64 with
#                --quick), tunnel (plain proxy_pass vs the gpugate tunnel
#                over TLS and plain TCP vs ssh -R: 64 connections with CPU
#                per request, 64 streams; the full run adds 1 connection
#                and gateway / GPU host on separate cores), scale (memory
#                with 1,000 and 10,000 parked tunnel connections, on one
#                node and spread over two; 1,000 with --quick; and one
#                node vs two behind nginx's stream balancer: CPU per
#                request, errors), agent (the agent's RSS and CPU with 256
#                idle parked connections and under 64 streams, against
#                the runtime's CPU), limits (gpugate with limits off vs
#                on, one node and synced through Redis, on the cache-hit
#                path; Redis commands per request), cache (prefix-aware
#                routing vs least-loaded vs random: 4 mock runtimes with
#                a prefix cache model behind 4 agents, many tenants with
#                shared system prompts and a workload with none: TTFT
#                p50/p90, hit ratio), batch (interactive streams alone
#                and beside a 2,000-line Batch API batch on the same
#                agents, the runner at concurrency 4 and 1024:
#                interactive TTFT p50/p90/p99, batch lines/s; see
#                scripts/bench/batch.sh), profile (not in the
#                default set: syscalls, instructions and allocations per
#                request of the agent and the nginx worker through the
#                tunnel, with strace and callgrind; see
#                scripts/bench/profile.sh), trace (gpugate with metrics,
#                tracing off vs on at sample=1.0 with every span exported
#                over OTLP/HTTP to a local collector), full (the gateway
#                exactly as scripts/run.sh configures it, TLS tunnel and
#                agent included, vs plain proxy_pass: CPU per request of
#                nginx, the agent, PostgreSQL and Redis), peer (plain
#                nginx, run.sh's gateway, auth + router, and the Portkey
#                AI Gateway, which npm installs into build/peer; skipped
#                without npm: the same mock, 64 connections and 64
#                streams, CPU per request per process, RSS; see
#                scripts/bench/peer.sh)
#   --workers N  nginx worker_processes for every nginx (default 1, which
#                leaves the second core of a 2-core machine to wrk and the
#                mock runtime; the comparison is like for like either way)
#
# Figures that matter are ratios within a group; absolute numbers depend
# on the machine named in the results file.

set -euo pipefail

GG_SCRIPT=bench
. "$(dirname "$0")/lib.sh"

quick=0
deps=1
workers=1
only=auth,overhead,accounting,streaming,tunnel,scale,agent,limits,trace,full,peer,cache,batch

while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1 ;;
        --no-deps) deps=0 ;;
        --workers) workers=${2:?--workers needs a value}; shift ;;
        --only) only=${2:?--only needs a value}; shift ;;
        -h|--help) sed -n '2,51p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) gg_die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

want() {
    [[ ",$only," == *",$1,"* ]]
}

[ $deps -eq 1 ] && gg_install_deps wrk libnginx-mod-http-lua lua-nginx-redis \
    lua-nginx-string lua-cjson openssh-server openssh-client bc
"$GG_ROOT/scripts/build.sh" --no-deps

if [ $quick -eq 1 ]; then
    dur=2; rounds=3; stream_dur=3; stream_conns=(1 64); miss_dur=2
    scale_conns=(1000)
else
    dur=4; rounds=5; stream_dur=10; stream_conns=(1 64 512); miss_dur=4
    scale_conns=(1000 10000)
fi

# SCALE_CONNS="1000 5000": other counts of parked connections
[ -n "${SCALE_CONNS:-}" ] && read -r -a scale_conns <<< "$SCALE_CONNS"

export BENCH_LUA=$GG_ROOT/scripts/bench

tmp=$(mktemp -d /tmp/gpugate-bench.XXXXXX)
chmod 755 "$tmp"
gg_install_traps
gg_on_cleanup "rm -rf '$tmp'"

out_dir=$GG_BUILD/bench
mkdir -p "$out_dir"
results=$tmp/results.jsonl
: > "$results"

# record GROUP SCENARIO BASELINE(0|1) JSON
record() {
    printf '{"group":"%s","scenario":"%s","baseline":%s,"result":%s}\n' \
        "$1" "$2" "$3" "$4" >> "$results"
}

# Scenarios compared within a group run interleaved, several rounds, and
# each reports its median-RPS round: a slow moment of a shared machine then
# hits every scenario alike instead of skewing one ratio.
sc_names=()
sc_base=()
sc_cmds=()

# scenario NAME BASELINE(0|1) COMMAND...  (COMMAND prints one JSON line)
scenario() {
    sc_names+=("$1")
    sc_base+=("$2")
    shift 2
    sc_cmds+=("$(printf '%q ' "$@")")
}

# run_group GROUP: runs the registered scenarios, then forgets them
run_group() {
    local group=$1 round i out start=$SECONDS
    local -a runs

    for ((i = 0; i < ${#sc_names[@]}; i++)); do
        runs[$i]=
    done

    for ((round = 1; round <= rounds; round++)); do
        for ((i = 0; i < ${#sc_names[@]}; i++)); do
            out=$(eval "${sc_cmds[$i]}" | tail -n 1)
            runs[$i]+="$out"$'\n'
        done
    done

    for ((i = 0; i < ${#sc_names[@]}; i++)); do
        out=$(printf '%s' "${runs[$i]}" | perl -MJSON::PP -ne '
            push @r, decode_json($_) if /\S/;
            END {
                @r = sort { ($a->{rps} // 0) <=> ($b->{rps} // 0) } @r;
                my $m = $r[$#r / 2];
                $m->{rounds} = [ map { $_->{rps} } @r ];
                print JSON::PP->new->canonical->encode($m), "\n";
            }')
        record "$group" "${sc_names[$i]}" "${sc_base[$i]}" "$out"
        gg_log "$group / ${sc_names[$i]}: $out"
    done

    gg_log "$group: $((SECONDS - start)) s"
    sc_names=()
    sc_base=()
    sc_cmds=()
}

# wrk_get URL [wrk args...]: one GET run, JSON line on stdout
wrk_get() {
    local url=$1
    shift
    wrk -t1 -d"${dur}s" --timeout 10s -s "$BENCH_LUA/get.lua" "$@" "$url"
}

# Shared by every group: PostgreSQL and Redis for gpugate's auth, and a
# key that every gateway scenario presents.
bench_dir=$tmp/shared
pg_port=$(gg_free_port)
gg_start_postgres "$bench_dir/pg" "$pg_port"
gg_apply_sql "$pg_port"
redis_port=$(gg_free_port)
gg_start_redis "$bench_dir/redis" "$redis_port"

export GPUGATE_PG_DSN=$GG_PG_DSN
bench_key=$("$GG_ROOT/scripts/gpugate-keys" --redis "127.0.0.1:$redis_port" \
    create --tenant bench --name bench 2>/dev/null | sed -n 's/^key: //p')
[ -n "$bench_key" ] || gg_die "cannot create the benchmark key"

if want auth; then
    . "$GG_ROOT/scripts/bench/auth.sh"
fi

if want overhead || want streaming || want accounting || want trace; then
    . "$GG_ROOT/scripts/bench/proxy.sh"
fi

if want trace; then
    . "$GG_ROOT/scripts/bench/trace.sh"
fi

if want tunnel || want scale || want agent || want profile || want full \
    || want peer
then
    . "$GG_ROOT/scripts/bench/tunnel.sh"
    . "$GG_ROOT/scripts/bench/profile.sh"
fi

if want full || want peer; then
    . "$GG_ROOT/scripts/bench/full.sh"
fi

if want peer; then
    . "$GG_ROOT/scripts/bench/peer.sh"
fi

if want scale; then
    . "$GG_ROOT/scripts/bench/scale.sh"
fi

if want limits; then
    . "$GG_ROOT/scripts/bench/limits.sh"
fi

if want cache; then
    . "$GG_ROOT/scripts/bench/cache.sh"
fi

if want batch; then
    . "$GG_ROOT/scripts/bench/batch.sh"
fi

stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=$out_dir/results-$stamp.json

GG_QUICK=$quick GG_WORKERS=$workers perl -MJSON::PP -e '
    my @rows = map { decode_json($_) } grep { /\S/ } <STDIN>;
    my %base;
    for (@rows) { $base{ $_->{group} } = $_->{result} if $_->{baseline} }

    my $cpu = `lscpu 2>/dev/null` =~ /Model name:\s*(.+)/ ? $1 : "unknown";
    chomp(my $cores = `nproc`);
    my $mem = `free -g 2>/dev/null` =~ /Mem:\s+(\d+)/ ? "$1 GiB" : "?";
    chomp(my $kernel = `uname -r`);
    my $nginx = `/usr/sbin/nginx -v 2>&1`; chomp $nginx;
    my $machine = "$cpu, $cores cores, $mem RAM, Linux $kernel, $nginx";

    my $fmt = "%-16s %-34s %9s %8s %8s %8s %8s %8s %8s %9s %9s %8s\n";
    printf "\nmachine: %s; nginx workers: %s%s\n\n", $machine,
        $ENV{GG_WORKERS}, $ENV{GG_QUICK} ? " (quick run)" : "";
    printf $fmt, "group", "scenario", "rps", "p50 ms", "p99 ms",
        "ttft p50", "ttft p99", "gap p50", "gap p99", "ngx us/rq",
        "agt us/rq", "ratio";
    for my $row (@rows) {
        my $r = $row->{result} // {};
        my $b = $base{ $row->{group} } // {};
        my $ratio = ($b->{rps} // 0) > 0 && defined $r->{rps}
            ? sprintf("%.3f", $r->{rps} / $b->{rps}) : "-";
        $row->{ratio_rps} = $ratio;
        if (defined $r->{note}) {
            printf "%-16s %-34s %s\n", $row->{group}, $row->{scenario},
                $r->{note};
            next;
        }
        my $t = $r->{ttft_ms} // {};
        my $g = $r->{gap_ms} // {};
        my $c = $r->{cpu_us_per_request} // {};
        my $f = sub { defined $_[0] && $_[0] >= 0
                      ? sprintf("%.2f", $_[0]) : "-" };
        printf $fmt, $row->{group}, $row->{scenario},
            $f->($r->{rps}), $f->($r->{latency_ms}{p50}),
            $f->($r->{latency_ms}{p99}), $f->($t->{p50}), $f->($t->{p99}),
            $f->($g->{p50}), $f->($g->{p99}), $f->($c->{nginx}), $f->($c->{agent}), $ratio . ($row->{baseline} ? " (base)" : "")
            . (($r->{errors} // 0) > 0 ? " ERR=$r->{errors}" : "");
    }
    open my $fh, ">", $ARGV[0] or die "$ARGV[0]: $!";
    print $fh JSON::PP->new->pretty->canonical->encode({
        machine => $machine, workers => $ENV{GG_WORKERS} + 0,
        quick => $ENV{GG_QUICK} + 0, rows => \@rows });
    print "\nresults: $ARGV[0]\n";
' "$out" < "$results"

gg_log "whole run: $SECONDS s"
