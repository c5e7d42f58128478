# shellcheck shell=bash
#
# Shared helpers for gpugate's scripts (sourced, not run).  Everything that
# starts a process registers it with gg_track so that gg_cleanup, installed
# as an EXIT/INT/TERM trap, stops it even when a step fails.

GG_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
GG_BUILD=${GG_BUILD:-$GG_ROOT/build}

# Debian packages every script needs: build, run and test.  Tests only:
# chromium (the console's browser test, t/097: skipped without it).
GG_PACKAGES=(
    gcc make pkgconf
    nginx nginx-dev libpcre2-dev zlib1g-dev libssl-dev openssl
    libnginx-mod-stream
    libjansson-dev libhiredis-dev libpq-dev
    postgresql redis-server
    libtest-base-perl libtest-longstring-perl libhttp-message-perl
    curl procps valgrind prometheus
    clang libclang-rt-14-dev
    chromium
)

GG_PIDS=()
GG_CLEANUP_CMDS=()

gg_log() {
    printf '%s: %s\n' "${GG_SCRIPT:-gpugate}" "$*" >&2
}

gg_die() {
    gg_log "error: $*"
    exit 1
}

# Installs missing Debian packages.  Only root may do that; anyone else is
# told exactly what to install.
gg_install_deps() {
    local missing=() p extra=("$@")

    for p in "${GG_PACKAGES[@]}" "${extra[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
                | grep -q 'install ok installed'
        then
            missing+=("$p")
        fi
    done

    [ ${#missing[@]} -eq 0 ] && return 0

    if [ "$(id -u)" -ne 0 ]; then
        gg_die "missing Debian packages: ${missing[*]}
  install them with:  sudo apt-get install -y ${missing[*]}
  (or run this script as root to have it install them)"
    fi

    gg_log "installing Debian packages: ${missing[*]}"

    # A package's postinst must not start system-wide services (port 80
    # nginx, the cluster on 5432): the scripts start their own on loopback.
    local policy=/usr/sbin/policy-rc.d had_policy=0
    [ -e $policy ] && had_policy=1
    if [ $had_policy -eq 0 ]; then
        printf '#!/bin/sh\nexit 101\n' > $policy
        chmod 755 $policy
    fi

    if ! { apt-get update -qq \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
                --no-install-recommends "${missing[@]}"; } >&2
    then
        [ $had_policy -eq 0 ] && rm -f $policy
        gg_die "apt-get install failed"
    fi

    [ $had_policy -eq 0 ] && rm -f $policy
    return 0
}

gg_track() {
    GG_PIDS+=("$1")
}

gg_on_cleanup() {
    GG_CLEANUP_CMDS+=("$1")
}

# Stops everything this script started: tracked processes first (they may
# use what the cleanup commands remove), then the cleanup commands, newest
# first.  Safe to call twice.
gg_cleanup() {
    local i pid

    trap - EXIT INT TERM

    for ((i = ${#GG_PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${GG_PIDS[$i]}" 2>/dev/null || true
    done

    for pid in "${GG_PIDS[@]}"; do
        gg_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null || true
    done
    GG_PIDS=()

    for ((i = ${#GG_CLEANUP_CMDS[@]} - 1; i >= 0; i--)); do
        eval "${GG_CLEANUP_CMDS[$i]}" >/dev/null 2>&1 || true
    done
    GG_CLEANUP_CMDS=()
}

gg_install_traps() {
    trap 'gg_cleanup' EXIT
    trap 'gg_log "interrupted"; gg_cleanup; exit 130' INT
    trap 'gg_log "terminated"; gg_cleanup; exit 143' TERM
}

# gg_wait_gone PID SECONDS: waits for a process to exit.
gg_wait_gone() {
    local pid=$1 deadline=$((SECONDS + $2))

    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.05
    done
    return 0
}

# gg_wait_for DESCRIPTION SECONDS COMMAND...: polls until COMMAND succeeds.
gg_wait_for() {
    local what=$1 deadline=$((SECONDS + $2))
    shift 2

    until "$@" >/dev/null 2>&1; do
        if [ $SECONDS -ge $deadline ]; then
            gg_log "timed out waiting for $what"
            return 1
        fi
        sleep 0.05
    done
}

# A TCP port on 127.0.0.1 that nobody listens on now.  Ports are picked
# from a range below the usual ephemeral one's start (20000-31999, or
# GPUGATE_PORT_LO-GPUGATE_PORT_HI: each lane of a parallel test run has a
# range of its own), at random, and checked by trying to bind them.  A port chosen earlier but not bound
# yet (a balancer started last) passes that check, so ports listed in
# GG_TAKEN_PORTS are skipped too: gg_take_port keeps that list.
GG_TAKEN_PORTS=${GG_TAKEN_PORTS:-}

gg_free_port() {
    local port i lo=${GPUGATE_PORT_LO:-20000} hi=${GPUGATE_PORT_HI:-31999}

    for ((i = 0; i < 200; i++)); do
        port=$((lo + RANDOM % (hi - lo + 1)))
        [[ " $GG_TAKEN_PORTS " == *" $port "* ]] && continue
        if perl -MIO::Socket::INET -e '
                exit(IO::Socket::INET->new(LocalAddr => "127.0.0.1",
                    LocalPort => $ARGV[0], Proto => "tcp",
                    ReuseAddr => 1, Listen => 1) ? 0 : 1)' "$port"
        then
            echo "$port"
            return 0
        fi
    done
    gg_die "no free TCP port found"
}

# gg_take_port VAR: a free port into VAR, remembered so that no later
# gg_free_port of this shell hands it out again before it is bound.
gg_take_port() {
    local taken

    taken=$(gg_free_port) || return 1
    GG_TAKEN_PORTS+=" $taken"
    printf -v "$1" '%s' "$taken"
}

gg_pg_bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [ -n "$d" ] || gg_die "PostgreSQL server binaries not found"
    echo "$d"
}

# Runs a command as the PostgreSQL owner: the invoking user, or the
# unprivileged "postgres" account when invoked as root (the server refuses
# to run as root).
gg_as_pg() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# gg_start_postgres DIR PORT [PASSFILE]: a throwaway cluster on
# 127.0.0.1:PORT with a "gpugate" database owned by the "gpugate" role.
# Sets GG_PG_DSN.
#
# Without PASSFILE, loopback TCP is trusted (the test suite).  With it, the
# layout production should have: TCP logins need a SCRAM password, the
# owner's password lives in PASSFILE (libpq passfile format, 0600, created
# when missing and kept across starts) and GG_PG_DSN names it; the Unix
# socket, in DIR which only the server's user (and root) may enter, stays
# trusted for the scripts' own administration.  PGPASSFILE is exported so
# psql (gg_psql_at, gpugate-keys, gpugate-usage) finds the password.
gg_start_postgres() {
    local dir=$1 port=$2 passfile=${3:-} bin pw
    bin=$(gg_pg_bindir)

    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres: "$dir"
        # the server needs to reach its directory through the parents
        chmod o+x "$(dirname "$dir")" 2>/dev/null || true
    fi

    if [ ! -f "$dir/data/PG_VERSION" ]; then
        gg_as_pg "$bin/initdb" -D "$dir/data" -U gpugate -A trust \
            --no-sync -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
            || { cat "$dir/initdb.log" >&2; gg_die "initdb failed"; }
    fi

    if [ -n "$passfile" ]; then
        chmod 700 "$dir"
        gg_as_pg sh -c "printf '%s\n' \
            'local all all trust' \
            'host all all 127.0.0.1/32 scram-sha-256' \
            > '$dir/data/pg_hba.conf'"
    fi

    gg_as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir \
            -c fsync=off -c synchronous_commit=off \
            -c full_page_writes=off -c max_connections=200" \
        start >/dev/null \
        || { tail -n 20 "$dir/postgres.log" >&2; gg_die "PostgreSQL failed"; }

    gg_on_cleanup "gg_as_pg '$bin/pg_ctl' -D '$dir/data' -m fast -w stop"

    GG_PG_DSN="host=127.0.0.1 port=$port user=gpugate dbname=gpugate"

    if [ -n "$passfile" ]; then
        pw=$(gg_pg_password "$passfile")
        [ -n "$pw" ] || pw=$(gg_secret)
        gg_pg_socket "$dir" "$port" postgres -qc \
            "ALTER ROLE gpugate PASSWORD '$pw'" >/dev/null \
            || gg_die "cannot set the gpugate role's password"
        gg_write_passfile "$passfile" "$port" gpugate "$pw"
        export PGPASSFILE=$passfile
        GG_PG_DSN+=" passfile=$passfile"
    fi

    if ! gg_psql_at "$port" postgres -tAc \
            "SELECT 1 FROM pg_database WHERE datname = 'gpugate'" \
            | grep -q 1
    then
        gg_psql_at "$port" postgres -qc "CREATE DATABASE gpugate" \
            || gg_die "cannot create database gpugate"
    fi
}

# gg_pg_socket DIR PORT DB ARGS...: psql as the owner over the cluster's
# Unix socket (trusted; only reachable by the server's user and root).
gg_pg_socket() {
    local dir=$1 port=$2 db=$3
    shift 3
    gg_as_pg psql -X -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U gpugate \
        -d "$db" "$@"
}

# gg_pg_login_role DIR PORT ROLE GROUP PASSFILE [OWNER]: creates (or
# updates) login ROLE as a member of GROUP with a password kept in
# PASSFILE (0600, chowned to OWNER when given) and prints its DSN.
gg_pg_login_role() {
    local dir=$1 port=$2 role=$3 group=$4 passfile=$5 owner=${6:-} pw
    pw=$(gg_pg_password "$passfile")
    [ -n "$pw" ] || pw=$(gg_secret)
    gg_pg_socket "$dir" "$port" gpugate -q >/dev/null <<SQL \
        || gg_die "cannot create the PostgreSQL role $role"
DO \$\$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$role') THEN
        CREATE ROLE $role LOGIN;
    END IF;
END
\$\$;
ALTER ROLE $role LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '$pw';
GRANT $group TO $role;
SQL
    gg_write_passfile "$passfile" "$port" "$role" "$pw"
    [ -n "$owner" ] && chown "$owner" "$passfile"
    echo "host=127.0.0.1 port=$port user=$role dbname=gpugate passfile=$passfile"
}

# 32 hex digits from the kernel's random source
gg_secret() {
    od -An -tx1 -N16 /dev/urandom | tr -d ' \n'
}

# the password recorded in a passfile written by gg_write_passfile
gg_pg_password() {
    [ -f "$1" ] && sed -n '1s/^[^:]*:[^:]*:[^:]*:[^:]*://p' "$1"
    return 0
}

# gg_write_passfile FILE PORT ROLE PASSWORD: a libpq passfile, mode 0600
# (libpq ignores a passfile others may read)
gg_write_passfile() {
    (umask 077; printf '127.0.0.1:%s:*:%s:%s\n' "$2" "$3" "$4" > "$1.tmp")
    mv -f "$1.tmp" "$1"
}

gg_psql_at() {
    local port=$1 db=$2
    shift 2
    psql -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U gpugate -d "$db" "$@"
}

# gg_apply_sql PORT: applies sql/*.sql in name order.  Each file is
# idempotent and records itself in schema_migrations.
gg_apply_sql() {
    local port=$1 f
    for f in "$GG_ROOT"/sql/[0-9]*.sql; do
        [ -e "$f" ] || continue
        PGOPTIONS="-c client_min_messages=warning" \
            gg_psql_at "$port" gpugate -q -f "$f" >/dev/null \
            || gg_die "migration $(basename "$f") failed"
    done
}

# gg_start_redis DIR PORT [PASSWORD_FILE]: a memory-only Redis on
# 127.0.0.1:PORT.  With PASSWORD_FILE clients must AUTH with its first
# line, as in production; the password goes through a 0600 config file,
# never argv.
gg_start_redis() {
    local dir=$1 port=$2 pwfile=${3:-} pid conf=() pw=

    mkdir -p "$dir"
    if [ -n "$pwfile" ]; then
        pw=$(head -n 1 "$pwfile")
        (umask 077; printf 'requirepass "%s"\n' "$pw" > "$dir/auth.conf")
        conf=("$dir/auth.conf")
    fi
    redis-server "${conf[@]}" --bind 127.0.0.1 --port "$port" --dir "$dir" \
        --save '' --appendonly no --daemonize no \
        --logfile "$dir/redis.log" &
    pid=$!
    gg_track "$pid"

    gg_wait_for "Redis on port $port" 30 \
        env REDISCLI_AUTH="$pw" redis-cli -h 127.0.0.1 -p "$port" ping \
        || { tail -n 20 "$dir/redis.log" >&2; gg_die "Redis failed"; }
}

# gg_start_mock DIR NAME [ARGS...]: starts the mock inference runtime on a
# free port and sets GG_MOCK_PORT.  Not to be run in $(...): the process
# must be tracked by this shell to be stopped at the end.
gg_start_mock() {
    local dir=$1 name=$2 pid
    shift 2

    mkdir -p "$dir"
    rm -f "$dir/$name.port"
    "$GG_BUILD/bin/gpugate-mock-runtime" --listen 127.0.0.1:0 \
        --port-file "$dir/$name.port" "$@" \
        >>"$dir/$name.log" 2>&1 &
    pid=$!
    gg_track "$pid"

    gg_wait_for "mock runtime $name" 30 test -s "$dir/$name.port" \
        || { tail -n 20 "$dir/$name.log" >&2; gg_die "mock runtime failed"; }

    GG_MOCK_PORT=$(cat "$dir/$name.port")
}
