# shellcheck shell=bash
#
# Benchmark group "trace", sourced by scripts/bench.sh after proxy.sh:
# gpugate with metrics, tracing off (the base) vs "gpugate_trace on" with
# every request sampled (sample=1.0), its traceparent sent upstream and
# its span exported over OTLP/HTTP to a collector on this machine (an
# nginx answering 200 to each POST).  Same runtime and request mix.

trace_dir=$tmp/otlp-collector
trace_port=$(gg_free_port)
mkdir -p "$trace_dir/logs"
cat > "$trace_dir/nginx.conf" <<CONF
worker_processes 1;
error_log $trace_dir/logs/error.log warn;
pid $trace_dir/nginx.pid;
events { worker_connections 1024; }
http {
    access_log $trace_dir/logs/access.log;
    client_body_temp_path $trace_dir; proxy_temp_path $trace_dir;
    fastcgi_temp_path $trace_dir; uwsgi_temp_path $trace_dir;
    scgi_temp_path $trace_dir;
    client_max_body_size 64m;
    server {
        listen 127.0.0.1:$trace_port;
        location = /v1/traces { return 200 "{}"; }
    }
}
CONF
/usr/sbin/nginx -p "$trace_dir" -c "$trace_dir/nginx.conf" \
    -e "$trace_dir/logs/error.log" -g 'daemon off;' &
gg_track $!
gg_wait_for "OTLP collector" 30 perl -MIO::Socket::INET -e \
    'exit(IO::Socket::INET->new("127.0.0.1:$ARGV[0]") ? 0 : 1)' "$trace_port"

for target in gg-trace-off gg-trace-on; do
    port[$target]=$(gg_free_port)
done
proxy_nginx gg-trace-off "${port[gg-trace-off]}" 1 "$fast_port" 2
BENCH_HTTP_EXTRA="gpugate_otlp http://127.0.0.1:$trace_port/v1/traces sample=1.0;" \
BENCH_LOC_EXTRA='gpugate_trace on; proxy_set_header traceparent $gpugate_traceparent;' \
    proxy_nginx gg-trace-on "${port[gg-trace-on]}" 1 "$fast_port" 2

gg_log "trace: non-streaming chat, 64 connections, $rounds x ${dur}s"
scenario "gpugate + metrics, tracing off" 1 \
    wrk_post_cpu "${port[gg-trace-off]}" 64 gg-trace-off
scenario "+ tracing, sample=1.0, OTLP export" 0 \
    wrk_post_cpu "${port[gg-trace-on]}" 64 gg-trace-on
run_group trace

trace_posts=$(wc -l < "$trace_dir/logs/access.log")
record trace "OTLP POSTs" 0 \
    "{\"note\":\"the collector took $trace_posts POSTs (batches of up to 256 spans)\"}"
gg_log "trace: the collector took $trace_posts POSTs"
