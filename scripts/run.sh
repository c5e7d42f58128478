#!/usr/bin/env bash
#
# Starts the whole gpugate stack on loopback and stays in the foreground
# until Ctrl-C (SIGINT) or SIGTERM, then stops everything it started.
#
#   scripts/run.sh [--port N] [--workers N] [--agents N] [--gateways N]
#                  [--runtime URL] [--state DIR] [--no-deps]
#
#   --port N       gateway port on 127.0.0.1 (default 8080); with
#                  --gateways 2 or more, the port of the L4 balancer
#                  (nginx's stream module) in front of the nodes
#   --workers N    nginx worker_processes (default 2), per node
#   --gateways N   gateway nodes (default 1): N nginx instances on ports
#                  of their own sharing the one PostgreSQL and Redis,
#                  every agent connected to every node; their URLs are
#                  printed as GPUGATE_NODE_URLS
#   --agents N     gpugate-agent processes (default 1), each with its own
#                  mock runtime, connected through the TLS tunnel
#   --runtime URL  the agents forward to this OpenAI-compatible runtime
#                  (llama.cpp server, vLLM, Ollama, ...), such as
#                  http://127.0.0.1:8000, instead of starting mocks
#   --state DIR    keep the state here instead of build/run/
#   --no-watch     stay up when a component exits (scripts/chaos.sh kills
#                  and restarts components on purpose)
#   --no-deps      do not check/install Debian packages
#
# State (PostgreSQL data, logs, generated nginx.conf) lives in build/run/;
# stack.env there names every process, port and file of the running stack
# (NAME=VALUE lines, for scripts that act on it).
# The layout is production's, not a shortcut: nginx logs in to PostgreSQL
# as "gpugate_nginx", a member of the least-privilege gpugate_gateway role
# (sql/002_gateway_role.sql), with a SCRAM password; every secret (the
# PostgreSQL passwords, the admin key, agent tokens, the generated
# nginx.conf that names the admin key) is in a 0600 file; the ledger's
# spill directory belongs to the worker user.

set -euo pipefail

GG_SCRIPT=run
. "$(dirname "$0")/lib.sh"

port=8080
workers=2
agents=1
gateways=1
runtime=
state=
watch=1
deps=1

need_value() {
    [ $# -ge 2 ] && [ -n "$2" ] || gg_die "$1 needs a value (see --help)"
}

while [ $# -gt 0 ]; do
    case $1 in
        --port) need_value "$@"; port=$2; shift ;;
        --workers) need_value "$@"; workers=$2; shift ;;
        --agents) need_value "$@"; agents=$2; shift ;;
        --gateways) need_value "$@"; gateways=$2; shift ;;
        --runtime) need_value "$@"; runtime=$2; shift ;;
        --state) need_value "$@"; state=$2; shift ;;
        --no-watch) watch=0 ;;
        --no-deps) deps=0 ;;
        -h|--help) sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) gg_die "unknown option: $1 (see --help)" ;;
    esac
    shift
done

[[ $port =~ ^[0-9]+$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] \
    || gg_die "--port must be 1..65535, got '$port'"
[[ $workers =~ ^[0-9]+$ ]] && [ "$workers" -ge 1 ] && [ "$workers" -le 256 ] \
    || gg_die "--workers must be 1..256, got '$workers'"

[[ $agents =~ ^[0-9]+$ ]] && [ "$agents" -ge 1 ] && [ "$agents" -le 64 ] \
    || gg_die "--agents must be 1..64, got '$agents'"

# the agent dials at most 8 gateways (GA_MAX_GATEWAYS)
[[ $gateways =~ ^[0-9]+$ ]] && [ "$gateways" -ge 1 ] \
    && [ "$gateways" -le 8 ] \
    || gg_die "--gateways must be 1..8, got '$gateways'"

stream_module=/usr/lib/nginx/modules/ngx_stream_module.so
[ "$gateways" -eq 1 ] || [ $deps -eq 0 ] || [ -e "$stream_module" ] \
    || gg_install_deps
[ "$gateways" -eq 1 ] || [ -e "$stream_module" ] \
    || gg_die "--gateways needs $stream_module (Debian: libnginx-mod-stream)"

if [ -n "$runtime" ]; then
    [[ $runtime =~ ^http://([^/]+)/?$ ]] \
        || gg_die "--runtime must look like http://HOST:PORT, got '$runtime'"
    runtime_host=${BASH_REMATCH[1]}
fi

[ $deps -eq 1 ] && gg_install_deps
"$GG_ROOT/scripts/build.sh" --no-deps

[ -n "$state" ] || state=$GG_BUILD/run
mkdir -p "$state/logs" "$state/nginx/conf" "$state/secrets"
state=$(cd "$state" && pwd)
chmod 700 "$state/secrets" "$state/nginx/conf"

# nginx workers run as "nobody" when the master is root, else as us
if [ "$(id -u)" -eq 0 ]; then
    worker_user=nobody
else
    worker_user=$(id -un)
fi

# What the workers must open themselves (their PostgreSQL passfile, the
# ledger's spill directory) needs a path they can walk; a checkout under
# /root is not one.
worker_dir=$state/worker
if ! runuser -u "$worker_user" -- test -x "$state" 2>/dev/null \
    && [ "$(id -u)" -eq 0 ]
then
    worker_dir=/var/tmp/gpugate-run-$(printf '%s' "$state" | sha256sum | cut -c1-12)
    gg_log "worker files in $worker_dir ($state is not reachable by $worker_user)"
fi
mkdir -p "$worker_dir/usage-spill"
chmod 711 "$worker_dir"
# the admin API's OpenAPI description, served by nginx beside the API
install -m 644 "$GG_ROOT/modules/admin/openapi.json" \
    "$worker_dir/admin-openapi.json"
# the operator console's static files (modules/admin/console/), at /console/
install -d -m 755 "$worker_dir/console"
install -m 644 "$GG_ROOT"/modules/admin/console/* "$worker_dir/console/"
chmod 700 "$worker_dir/usage-spill"
chown "$worker_user" "$worker_dir/usage-spill"

gg_install_traps

# what scripts need to act on the running stack: NAME=VALUE lines
: > "$state/stack.env"
stack_env() {
    printf '%s=%q\n' "$1" "$2" >> "$state/stack.env"
}
stack_env STATE "$state"

# A port someone else holds would make nginx fail later with a less
# helpful message.
perl -MIO::Socket::INET -e '
    exit(IO::Socket::INET->new(LocalAddr => "127.0.0.1",
        LocalPort => $ARGV[0], Proto => "tcp", ReuseAddr => 1,
        Listen => 1) ? 0 : 1)' "$port" \
    || gg_die "port $port on 127.0.0.1 is in use; pick another with --port"

GG_TAKEN_PORTS+=" $port"
gg_take_port pg_port
pg_dir=$state/pg
if [ "$(id -u)" -eq 0 ] && ! runuser -u postgres -- test -x "$state" 2>/dev/null
then
    # the server runs as "postgres", which cannot enter this checkout
    # (e.g. under /root): keep its data in a directory it can use
    pg_dir=/var/tmp/gpugate-run-pg-$(printf '%s' "$GG_ROOT" | sha256sum | cut -c1-12)
    gg_log "PostgreSQL data in $pg_dir ($state is not reachable by postgres)"
fi
gg_start_postgres "$pg_dir" "$pg_port" "$state/secrets/pgpass"
gg_apply_sql "$pg_port"
stack_env PG_PORT "$pg_port"
stack_env PG_DATA "$pg_dir/data"
stack_env PG_BIN "$(gg_pg_bindir)"
stack_env PG_DSN "$GG_PG_DSN"
gg_log "PostgreSQL on 127.0.0.1:$pg_port (log: $pg_dir/postgres.log)"

# nginx's own login: only what sql/002_gateway_role.sql grants
nginx_dsn=$(gg_pg_login_role "$pg_dir" "$pg_port" gpugate_nginx \
    gpugate_gateway "$worker_dir/pgpass" "$worker_user")

# Redis with a password, and a secret that signs the key entries in it
# (both 0600, read by nginx at startup and by gpugate-keys)
(umask 077
 od -An -tx1 -N24 /dev/urandom | tr -d ' \n' > "$state/secrets/redis.pass"
 od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > "$state/secrets/auth.secret")
export GPUGATE_REDIS_PASSWORD_FILE=$state/secrets/redis.pass
gg_take_port redis_port
gg_start_redis "$state/redis" "$redis_port" "$state/secrets/redis.pass"
gg_log "Redis on 127.0.0.1:$redis_port (password in $state/secrets/redis.pass)"
stack_env REDIS_PORT "$redis_port"
stack_env REDIS_PID "${GG_PIDS[-1]}"
stack_env REDIS_PASSWORD_FILE "$state/secrets/redis.pass"

# one runtime per agent: the mock (a fake, no model) unless --runtime
runtime_hosts=()
for i in $(seq 1 "$agents"); do
    if [ -n "$runtime" ]; then
        runtime_hosts+=("$runtime_host")
        continue
    fi
    # token timing of a small real model, so streaming is visible
    gg_start_mock "$state/logs" "mock-runtime-$i" \
        --models mock-model,mock-embed \
        --ttft-ms 150 --token-delay-ms 60 --tokens 40
    runtime_hosts+=("127.0.0.1:$GG_MOCK_PORT")
    stack_env "MOCK_${i}_PORT" "$GG_MOCK_PORT"
    stack_env "MOCK_${i}_PID" "${GG_PIDS[-1]}"
    gg_log "mock runtime $i (a fake, no model) on 127.0.0.1:$GG_MOCK_PORT" \
           "(log: $state/logs/mock-runtime-$i.log)"
done

# The gateway lists what the runtime actually serves.
models_json=$(curl -fsS --max-time 10 "http://${runtime_hosts[0]}/v1/models") \
    || gg_die "cannot list models at http://${runtime_hosts[0]}/v1/models"

mapfile -t models < <(printf '%s' "$models_json" | perl -MJSON::PP -e '
    my $j = eval { decode_json(join "", <STDIN>) };
    die "not an OpenAI model list\n" unless ref $j eq "HASH"
        && ref $j->{data} eq "ARRAY";
    for (@{ $j->{data} }) {
        my $id = ref $_ eq "HASH" ? $_->{id} : undef;
        print "$id\n" if defined $id && $id =~ /^[\x21-\x7e]+$/
            && $id !~ /["\\]/;
    }') || gg_die "bad /v1/models answer from the runtime: $models_json"

[ ${#models[@]} -gt 0 ] || gg_die "the runtime serves no models"

model_lines=
for m in "${models[@]}"; do
    model_lines+="    gpugate_model $m pool=gpugate_agents;"$'\n'
done

# the tunnel's TLS: a private CA the agents trust
"$GG_ROOT/scripts/gpugate-ca" "$state/ca" >/dev/null

# the metrics and status pages' admin key, new on every start
admin_key=$(gg_secret)
(umask 077; printf '%s\n' "$admin_key" > "$state/secrets/admin.key")

nginx=${GPUGATE_NGINX:-/usr/sbin/nginx}
stack_env GATEWAYS "$gateways"
stack_env WORKERS "$workers"
stack_env ADMIN_KEY_FILE "$state/secrets/admin.key"

# One gateway node: its own prefix, logs, spill directory and name (the
# ledger's "gateway" column, /status, /metrics), the shared PostgreSQL and
# Redis.  With one node the layout is the single gateway's.
node_ports=()
tunnel_ports=()
node_pids=()
start_node() {
    local i=$1 http_port=$2 tunnel_port prefix logp spill name conf

    gg_take_port tunnel_port
    if [ "$gateways" -eq 1 ]; then
        prefix=nginx logp=nginx spill=usage-spill name=
    else
        prefix=nginx-$i logp=nginx-$i spill=usage-spill-$i name=gw-$i
        mkdir -p "$state/$prefix/conf" "$worker_dir/$spill"
        chmod 700 "$state/$prefix/conf" "$worker_dir/$spill"
        chown "$worker_user" "$worker_dir/$spill"
    fi

    conf=$state/$prefix/conf/nginx.conf
    GG_ADMIN_KEY=$admin_key GG_NGINX_DSN=$nginx_dsn GG_WORKER_DIR=$worker_dir \
    GG_MODULES="$GG_BUILD/modules" GG_STATE="$state" GG_WORKERS="$workers" \
    GG_PORT="$http_port" GG_TUNNEL_PORT="$tunnel_port" MODEL_LINES=$model_lines \
    GG_PG_PORT="$pg_port" GG_REDIS_PORT="$redis_port" GG_PREFIX=$prefix \
    GG_LOGP=$logp GG_SPILL=$spill GG_NAME=$name \
    perl -pe '
        s/\@MODULES\@/$ENV{GG_MODULES}/g;
        s/\@STATE\@\/nginx\//\@STATE\@\/$ENV{GG_PREFIX}\//g;
        s/\@STATE\@\/logs\/nginx-/\@STATE\@\/logs\/$ENV{GG_LOGP}-/g;
        s/\@WORKER_DIR\@\/usage-spill/\@WORKER_DIR\@\/$ENV{GG_SPILL}/g;
        s/^(\s*gpugate_usage_ledger "\@NGINX_DSN\@")/$1 gateway=$ENV{GG_NAME}/
            if $ENV{GG_NAME} ne "";
        s/\@STATE\@/$ENV{GG_STATE}/g;
        s/\@WORKERS\@/$ENV{GG_WORKERS}/g;  s/\@PORT\@/$ENV{GG_PORT}/g;
        s/\@LOG_LEVEL\@/notice/g;
        s/\@PG_PORT\@/$ENV{GG_PG_PORT}/g; s/\@REDIS_PORT\@/$ENV{GG_REDIS_PORT}/g;
        s/\@TUNNEL_PORT\@/$ENV{GG_TUNNEL_PORT}/g;
        s/\@ADMIN_KEY\@/$ENV{GG_ADMIN_KEY}/g;
        s/\@NGINX_DSN\@/$ENV{GG_NGINX_DSN}/g;
        s/\@WORKER_DIR\@/$ENV{GG_WORKER_DIR}/g;
        s/^\@MODEL_LINES\@\n/$ENV{MODEL_LINES}/;
    ' "$GG_ROOT/conf/nginx.conf.in" > "$conf.tmp"
    # it names the admin key: root (the master) reads it, nobody else
    chmod 600 "$conf.tmp"
    mv -f "$conf.tmp" "$conf"

    "$nginx" -t -q -p "$state/$prefix" -c "$conf" \
        -e "$state/logs/$logp-error.log" \
        || gg_die "nginx rejected $conf (see above)"

    "$nginx" -p "$state/$prefix" -c "$conf" -e "$state/logs/$logp-error.log" \
        -g 'daemon off;' &
    gg_track $!
    node_pids+=("$!")
    node_ports+=("$http_port")
    tunnel_ports+=("$tunnel_port")

    if [ "$gateways" -eq 1 ]; then
        stack_env NGINX_PID "$!"
        stack_env NGINX_PREFIX "$state/$prefix"
        stack_env NGINX_CONF "$conf"
        stack_env PORT "$http_port"
        stack_env TUNNEL_PORT "$tunnel_port"
    else
        stack_env "NODE_${i}_PID" "$!"
        stack_env "NODE_${i}_NAME" "$name"
        stack_env "NODE_${i}_PREFIX" "$state/$prefix"
        stack_env "NODE_${i}_CONF" "$conf"
        stack_env "NODE_${i}_PORT" "$http_port"
        stack_env "NODE_${i}_TUNNEL_PORT" "$tunnel_port"
    fi

    gg_wait_for "nginx on port $http_port" 30 \
        curl -fsS --max-time 2 "http://127.0.0.1:$http_port/health" \
        || gg_die "nginx did not come up (log: $state/logs/$logp-error.log)"
}

# The balancer: nginx's stream module (Debian's libnginx-mod-stream)
# passing TCP connections to the nodes; a node that refuses connections
# is skipped (the stream proxy tries the next server) and rested
# for fail_timeout.
start_balancer() {
    local conf=$state/balancer/nginx.conf servers= p

    mkdir -p "$state/balancer"
    for p in "${node_ports[@]}"; do
        servers+="        server 127.0.0.1:$p max_fails=1 fail_timeout=5s;"$'\n'
    done
    cat > "$conf" <<EOC
# gpugate's demo L4 balancer (scripts/run.sh --gateways): clients see
# one URL; each TCP connection goes to a live gateway node
load_module $stream_module;
worker_processes 1;
error_log $state/logs/balancer-error.log notice;
pid $state/balancer/nginx.pid;
events {
    worker_connections 4096;
}
stream {
    upstream gpugate_nodes {
$servers    }
    server {
        listen 127.0.0.1:$port;
        proxy_pass gpugate_nodes;
        proxy_connect_timeout 1s;
        # streamed completions: idle between tokens, never this long
        proxy_timeout 600s;
    }
}
EOC
    "$nginx" -t -q -p "$state/balancer" -c "$conf" \
        -e "$state/logs/balancer-error.log" \
        || gg_die "nginx rejected $conf (see above)"
    "$nginx" -p "$state/balancer" -c "$conf" \
        -e "$state/logs/balancer-error.log" -g 'daemon off;' &
    gg_track $!
    stack_env BALANCER_PID "$!"
    stack_env PORT "$port"
    gg_wait_for "the balancer on port $port" 30 \
        curl -fsS --max-time 2 "http://127.0.0.1:$port/health" \
        || gg_die "the balancer did not come up (log: $state/logs/balancer-error.log)"
}

if [ "$gateways" -eq 1 ]; then
    start_node 1 "$port"
else
    for i in $(seq 1 "$gateways"); do
        gg_take_port node_port
        start_node "$i" "$node_port"
    done
    start_balancer
fi
nginx_pid=${node_pids[0]}
tunnel_port=${tunnel_ports[0]}

# a fresh demo key on every start; only its digest is stored
api_key=$(GPUGATE_PG_DSN=$GG_PG_DSN "$GG_ROOT/scripts/gpugate-keys" \
    --redis "127.0.0.1:$redis_port" create --tenant demo --name "run.sh demo" \
    --rpm 600 --tpm 1000000 \
    2>/dev/null | sed -n 's/^key: //p')
[ -n "$api_key" ] || gg_die "could not create the demo API key"
first_model=${models[0]}
stack_env API_KEY "$api_key"

# the admin API's credential for this run; earlier runs' ones are revoked
gg_psql_at "$pg_port" gpugate -qc "UPDATE admins SET revoked_at = now()
    WHERE name LIKE 'run-sh-%' AND revoked_at IS NULL" >/dev/null
admin_cred=$(GPUGATE_PG_DSN=$GG_PG_DSN "$GG_ROOT/scripts/gpugate-keys" \
    admin-create "run-sh-$(date +%s)-$$" --role admin \
    2>/dev/null | sed -n 's/^credential: //p')
[ -n "$admin_cred" ] || gg_die "could not create the admin API credential"
(umask 077; printf '%s\n' "$admin_cred" > "$state/secrets/admin-api.key")
stack_env ADMIN_API_KEY_FILE "$state/secrets/admin-api.key"
stack_env MODEL "$first_model"

# the agents: each its own credentials (a SCRAM verifier in PostgreSQL;
# the token goes to a 0600 file, never to argv)
for i in $(seq 1 "$agents"); do
    name=run-agent-$i
    gg_psql_at "$pg_port" gpugate -qc \
        "DELETE FROM agents WHERE name = '$name'" >/dev/null
    token=$(GPUGATE_PG_DSN=$GG_PG_DSN "$GG_ROOT/scripts/gpugate-keys" \
        agent-create "$name" 2>/dev/null | sed -n 's/^token: //p')
    [ -n "$token" ] || gg_die "could not create agent $name"
    (umask 077; printf '%s\n' "$token" > "$state/$name.token")
    agent_cmd=("$GG_BUILD/bin/gpugate-agent")
    for tp in "${tunnel_ports[@]}"; do
        agent_cmd+=(--gateway "https://127.0.0.1:$tp/gpugate/tunnel")
    done
    agent_cmd+=(
        --ca-file "$state/ca/ca.crt" --name "$name"
        --token-file "$state/$name.token"
        --runtime "http://${runtime_hosts[$((i - 1))]}")
    "${agent_cmd[@]}" >>"$state/logs/$name.log" 2>&1 &
    gg_track $!
    stack_env "AGENT_${i}_PID" "$!"
    # a bash array: source stack.env, then "${AGENT_1_CMD[@]}"
    printf 'AGENT_%s_CMD=(%s)\n' "$i" "${agent_cmd[*]@Q}" \
        >> "$state/stack.env"
done
stack_env AGENTS "$agents"

# every node must reach an agent, not only the one the balancer picks
for p in "${node_ports[@]}"; do
    gg_wait_for "a request through the tunnel (port $p)" 30 \
        curl -fsS --max-time 5 -o /dev/null "http://127.0.0.1:$p/v1/chat/completions" \
            -H "Authorization: Bearer $api_key" -H 'Content-Type: application/json' \
            -d "{\"model\":\"$first_model\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
        || gg_die "no agent came up (logs: $state/logs/run-agent-*.log)"
done

node_urls=
for p in "${node_ports[@]}"; do
    node_urls+=${node_urls:+,}http://127.0.0.1:$p
done
stack_env NODE_URLS "$node_urls"

echo
if [ "$gateways" -eq 1 ]; then
    echo "gpugate is running (nginx with $workers workers, pid $nginx_pid;"
    echo "$agents agent(s) connected through the TLS tunnel on 127.0.0.1:$tunnel_port)."
else
    echo "gpugate is running: $gateways gateway nodes (nginx with $workers workers"
    echo "each: ${node_pids[*]}) behind nginx's stream balancer on 127.0.0.1:$port;"
    echo "$agents agent(s), each connected to every node through the TLS tunnel"
    echo "(ports ${tunnel_ports[*]}); each node's /status names it (gw-1 ...)."
fi
cat <<EOF
GPUGATE_URL=http://127.0.0.1:$port
GPUGATE_NODE_URLS=$node_urls
GPUGATE_API_KEY=$api_key
GPUGATE_ADMIN_KEY=$admin_cred
GPUGATE_PG_DSN='$GG_PG_DSN'
GPUGATE_REDIS=127.0.0.1:$redis_port
GPUGATE_REDIS_PASSWORD_FILE=$state/secrets/redis.pass

Stream a chat completion:
  curl -N http://127.0.0.1:$port/v1/chat/completions \\
    -H 'Authorization: Bearer $api_key' \\
    -H 'Content-Type: application/json' \\
    -d '{"model":"$first_model","stream":true,"messages":[{"role":"user","content":"Hello"}]}'

A job run asynchronously (the Batch API is at /v1/files and /v1/batches):
  curl http://127.0.0.1:$port/v1/jobs -H 'Authorization: Bearer $api_key' \\
    -H 'Content-Type: application/json' \\
    -d '{"endpoint":"/v1/chat/completions","body":{"model":"$first_model","messages":[{"role":"user","content":"Hello"}]}}'
  curl http://127.0.0.1:$port/v1/jobs/JOB_ID -H 'Authorization: Bearer $api_key'

Keys and usage (the PostgreSQL owner's password is in $state/secrets/pgpass):
  GPUGATE_PG_DSN='$GG_PG_DSN' GPUGATE_REDIS_PASSWORD_FILE='$state/secrets/redis.pass' \\
    scripts/gpugate-keys --redis 127.0.0.1:$redis_port list
  GPUGATE_PG_DSN='$GG_PG_DSN' scripts/gpugate-usage --by tenant,model

The admin API (keys, tenants, agents, usage; GPUGATE_ADMIN_KEY, new on
every start, is also in $state/secrets/admin-api.key):
  curl -H "Authorization: Bearer \$GPUGATE_ADMIN_KEY" http://127.0.0.1:$port/admin/v1/agents
  curl http://127.0.0.1:$port/admin/v1/openapi.json

The operator console (log in with GPUGATE_ADMIN_KEY):
  http://127.0.0.1:$port/console/

Metrics and status (the admin key, new on every start, is also in
$state/secrets/admin.key):
  curl -H 'Authorization: Bearer $admin_key' http://127.0.0.1:$port/metrics
  curl -H 'Authorization: Bearer $admin_key' http://127.0.0.1:$port/status
  (every node has its own: ask each of GPUGATE_NODE_URLS, not the balancer)

Logs: $state/logs/  (nginx-error.log, nginx-access.log, run-agent-N.log,
      mock-runtime-N.log; with --gateways: nginx-N-error.log,
      nginx-N-access.log per node and balancer-error.log)
Press Ctrl-C to stop everything.
EOF

# Stay in the foreground; leave if a component dies, so a broken stack is
# not mistaken for a running one.
while :; do
    sleep 1 &
    wait $! || true
    [ $watch -eq 1 ] || continue
    for pid in "${GG_PIDS[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            gg_die "a component (pid $pid) exited; see $state/logs/"
        fi
    done
done
