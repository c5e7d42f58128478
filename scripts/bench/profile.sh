# shellcheck shell=bash
#
# Benchmark group "profile", sourced by scripts/bench.sh after tunnel.sh
# (whose helpers it uses).  Load-independent counts per request through
# the tunnel, for a machine shared with other work where RPS is noise:
#   - syscalls per request of the agent and of the nginx worker
#     (strace -c for $prof_s s at 64 connections);
#   - instructions and allocator calls per request, and the top functions
#     by exclusive instructions, of the agent and of the nginx worker
#     (callgrind for $prof_cg s at 16 connections), nginx also as plain
#     proxy_pass (the limit).
# Every count is divided by the requests wrk saw answered in that time.
# Each for the tunnel over TLS and over plain TCP.

# Also (PROFILE_STREAM, default "plain router"): the nginx worker's
# instructions per stream and per event under 64 SSE streams of the slow
# mock (20 tokens), plain proxy_pass with proxy_buffering off against
# auth + router (the streaming group's two nginx scenarios).

prof_s=${PROFILE_SECONDS:-8}
prof_cg=${PROFILE_CG_SECONDS:-15}

# p_count PORT CONNS SECONDS: requests through PORT for SECONDS; prints
# how many were answered (the counts taken around it are divided by it)
p_count() {
    local out
    out=$(BENCH_BODY=$chat BENCH_HEADERS="Authorization: Bearer $bench_key" \
        wrk -t1 -c"$2" -d"$3s" --timeout 10s -s "$BENCH_LUA/post.lua" \
        "http://127.0.0.1:$1/v1/chat/completions" | tail -n 1)
    printf '%s' "$out" | perl -MJSON::PP -e '
        my $r = decode_json(scalar <STDIN>);
        print $r->{requests} - $r->{errors}, "\n";'
}

# p_strace FILE PID: attaches strace -c to PID (all threads) in the
# background; sets p_spid
p_strace() {
    strace -c -f -q -o "$1" -p "$2" &
    p_spid=$!
    sleep 1
}

# p_syscalls FILE N: syscalls per request from a strace -c summary,
# with the busiest calls
p_syscalls() {
    perl -MJSON::PP -e '
        my ($f, $n) = @ARGV;
        open my $fh, "<", $f or die "$f: $!";
        my (%c, $total);
        while (<$fh>) {
            my @w = split;
            next unless @w >= 5 && $w[-1] =~ /^[a-z_0-9]+$/
                        && $w[3] =~ /^\d+$/;
            if ($w[-1] eq "total") { $total = $w[3]; next }
            $c{$w[-1]} = $w[3];
        }
        my @top = grep { $c{$_} / $n >= 0.05 }
                  sort { $c{$b} <=> $c{$a} } keys %c;
        print JSON::PP->new->canonical->encode({
            requests => $n + 0,
            syscalls_per_request => sprintf("%.2f", ($total // 0) / $n) + 0,
            by_call => { map { $_ => sprintf("%.2f", $c{$_} / $n) + 0 }
                         @top } }), "\n";
    ' "$1" "$2"
}

# p_cg_dump PID OUT N: zeroed before, dumped now: the summary line
p_cg_dump() {
    local f
    callgrind_control -d "$1" >/dev/null 2>&1
    f=$(ls -t "$2".* 2>/dev/null | head -n 1)
    # kept for callgrind_annotate (--inclusive=yes, --tree=caller)
    mkdir -p "$GG_BUILD/bench/profile"
    cp "$f" "$GG_BUILD/bench/profile/${2##*/}.out"
    perl "$GG_ROOT/scripts/bench/cg-summary.pl" "$f" "$3"
}

# p_record NAME JSON: one row, its note the figure that matters
p_record() {
    local note
    note=$(printf '%s' "$2" | perl -MJSON::PP -e '
        my $r = decode_json(scalar <STDIN>);
        if (defined $r->{syscalls_per_request}) {
            print "syscalls/rq $r->{syscalls_per_request}: ",
                join(" ", map { "$_ $r->{by_call}{$_}" }
                     sort { $r->{by_call}{$b} <=> $r->{by_call}{$a} }
                     keys %{ $r->{by_call} });
        } else {
            my $a = $r->{allocs_per_request};
            print "instr/rq $r->{instructions_per_request}, malloc/rq ",
                $a->{malloc} + $a->{calloc} + $a->{realloc}, "; top: ",
                join(", ", map { "$_->{fn} $_->{pct}%" }
                     @{ $r->{top} }[0 .. 5]);
        }')
    record profile "$1" 0 "{\"note\":\"$note\",\"detail\":$2}"
    gg_log "profile / $1: $2"
}

if want profile; then
    command -v valgrind >/dev/null && command -v strace >/dev/null \
        || gg_die "profile: needs valgrind and strace"

    for scheme in ${PROFILE_SCHEMES:-https http}; do
        pp=$(gg_free_port)
        pt=$(gg_free_port)
        pc=$(gg_free_port)
        label=TLS
        [ $scheme = http ] && label=TCP
        tunnel_nginx "p-$scheme" "$pp" "$pt" tunnel "$tfast_port" "$pc"
        tport=$pt
        [ $scheme = http ] && tport=$pc
        AGENT_SCHEME=$scheme start_agent "bench-p-$scheme" "$tport" \
            "$tfast_port" --capacity 1024 --spare 70
        p_agent=$agent_pid
        tunnel_ready "$pp"
        p_count "$pp" 64 2 >/dev/null

        w=$(nginx_worker "p-$scheme")
        p_strace "$tmp/st-agent-$scheme" "$p_agent"
        s1=$p_spid
        p_strace "$tmp/st-nginx-$scheme" "$w"
        s2=$p_spid
        n=$(p_count "$pp" 64 "$prof_s")
        kill -INT "$s1" "$s2" 2>/dev/null || true
        wait "$s1" "$s2" 2>/dev/null || true
        p_record "agent, tunnel over $label: syscalls" \
            "$(p_syscalls "$tmp/st-agent-$scheme" "$n")"
        p_record "nginx worker, tunnel over $label: syscalls" \
            "$(p_syscalls "$tmp/st-nginx-$scheme" "$n")"
        kill "$p_agent" 2>/dev/null || true
        wait "$p_agent" 2>/dev/null || true

        # the agent under callgrind
        AGENT_SCHEME=$scheme \
        AGENT_WRAP="valgrind -q --tool=callgrind --callgrind-out-file=$tmp/cg-agent-$scheme" \
            start_agent "bench-pc-$scheme" "$tport" "$tfast_port" \
            --capacity 1024 --spare 20 --log-level info
        p_agent=$agent_pid
        tunnel_ready "$pp"
        p_count "$pp" 16 3 >/dev/null
        callgrind_control -z "$p_agent" >/dev/null 2>&1
        n=$(p_count "$pp" 16 "$prof_cg")
        p_record "agent, tunnel over $label: callgrind" \
            "$(p_cg_dump "$p_agent" "$tmp/cg-agent-$scheme" "$n")"
        kill "$p_agent" 2>/dev/null || true
        kill "$(cat "$tmp/p-$scheme/nginx.pid")" 2>/dev/null || true
        sleep 1
    done

    # the nginx worker under callgrind: plain proxy_pass, tunnel over TLS
    for mode in ${PROFILE_NGINX:-plain https http}; do
        pp=$(gg_free_port)
        pt=$(gg_free_port)
        pc=$(gg_free_port)
        m=tunnel
        [ $mode = plain ] && m=plain
        NGINX_WRAP="valgrind -q --tool=callgrind --callgrind-out-file=$tmp/cg-nginx-$mode" \
            tunnel_nginx "pn-$mode" "$pp" "$pt" "$m" "$tfast_port" "$pc"
        n_pid=$(cat "$tmp/pn-$mode/nginx.pid")
        if [ $mode != plain ]; then
            tport=$pt
            [ $mode = http ] && tport=$pc
            AGENT_SCHEME=$mode start_agent "bench-pn-$mode" "$tport" \
                "$tfast_port" --capacity 1024 --spare 20
            p_agent=$agent_pid
        fi
        tunnel_ready "$pp"
        p_count "$pp" 16 3 >/dev/null
        callgrind_control -z "$n_pid" >/dev/null 2>&1
        n=$(p_count "$pp" 16 "$prof_cg")
        label="tunnel over TLS"
        [ $mode = http ] && label="tunnel over TCP"
        [ $mode = plain ] && label="plain proxy_pass"
        p_record "nginx worker, $label: callgrind" \
            "$(p_cg_dump "$n_pid" "$tmp/cg-nginx-$mode" "$n")"
        [ $mode != plain ] && kill "$p_agent" 2>/dev/null
        kill "$n_pid" 2>/dev/null || true
        sleep 1
    done

    # the nginx worker under callgrind with SSE streams (per event)
    for mode in ${PROFILE_STREAM:-plain router}; do
        pp=$(gg_free_port)
        pt=$(gg_free_port)
        NGINX_WRAP="valgrind -q --tool=callgrind --callgrind-out-file=$tmp/cg-nginx-sse-$mode" \
            tunnel_nginx "ps-$mode" "$pp" "$pt" "$mode" "$tslow_port"
        n_pid=$(cat "$tmp/ps-$mode/nginx.pid")
        printf '%s' "$stream" > "$tmp/p-stream.json"
        p_sse() {
            "$GG_BUILD/bin/gpugate-sse-bench" -c 64 -d "$1" \
                -b "$tmp/p-stream.json" \
                -H "Authorization: Bearer $bench_key" \
                -u "http://127.0.0.1:$pp/v1/chat/completions" \
                | perl -MJSON::PP -e '
                    my $r = decode_json(scalar <STDIN>);
                    print $r->{requests} - $r->{errors}, "\n";'
        }
        p_sse 3 >/dev/null
        callgrind_control -z "$n_pid" >/dev/null 2>&1
        n=$(p_sse "$prof_cg")
        label="plain proxy_pass, proxy_buffering off"
        [ $mode = router ] && label="auth + router"
        # 22 events a stream: 20 tokens, the usage chunk, [DONE]
        p_record "nginx worker, SSE streams, $label: callgrind" \
            "$(p_cg_dump "$n_pid" "$tmp/cg-nginx-sse-$mode" "$n")"
        kill "$n_pid" 2>/dev/null || true
        sleep 1
    done
fi
