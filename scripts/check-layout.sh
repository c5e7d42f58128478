#!/usr/bin/env bash
#
# Checks the source tree's layout rules (docs/maintainers.md, issue 24)
# and fails, naming each violation, when one is broken:
#
#   - no C source or header under modules/ or worker-agent/ (unit tests
#     and fuzz targets included) over 1,200 lines;
#   - no function over 150 lines in product code (unit tests and fuzz
#     targets are tables of cases, not held to it), except the byte-level
#     state machines named in the allow-list below, each with the reason
#     it stays whole; an allow-list entry that is no longer over fails
#     too, so the list stays true;
#   - no ngx_ include under modules/core (make -C modules/core nginx-free);
#   - the agent's build (worker-agent/Makefile) names no folder under
#     modules/ other than modules/core, and no agent source includes a
#     header from one.
#
# Prints TAP (one point per rule), so scripts/test.sh runs it with the
# unit tests.
#
#   scripts/check-layout.sh [ROOT]     # ROOT: the tree to check (default:
#                                      # this checkout)

set -euo pipefail

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root"

max_file=1200
max_func=150

# FILE:FUNCTION of the functions allowed over $max_func lines.  Each is a
# switch over the bytes of its input where the cases share the state they
# resume from; split, the state would have to be passed around or
# re-derived at every byte.
allow=(
    # the HTTP/1.x head grammar: one case per state of the request or
    # status line and of a field line, resumed at any byte
    "modules/core/gg_http_parse.c:gg_http_parse_head"
    # the chunked-body grammar: size line, extensions, data, CRLF and
    # trailers, resumed at any byte
    "modules/core/gg_http_parse.c:gg_http_parse_chunked"
)

sources=$(find modules worker-agent -name '*.[ch]' -not -path '*/seeds/*' \
          | LC_ALL=C sort)

n=0
fail=0

point() {   # point OK|NOT DESCRIPTION [DETAIL...]
    local ok=$1 what=$2
    shift 2
    n=$((n + 1))
    if [ "$ok" = ok ]; then
        echo "ok $n - $what"
    else
        echo "not ok $n - $what"
        for d in "$@"; do echo "# $d"; done
        fail=$((fail + 1))
    fi
}

# 1. file length

long=()
while IFS= read -r f; do
    lines=$(wc -l < "$f")
    [ "$lines" -gt $max_file ] && long+=("$f: $lines lines")
done <<< "$sources"

if [ ${#long[@]} -eq 0 ]; then
    point ok "no source file over $max_file lines"
else
    point not "no source file over $max_file lines" "${long[@]}"
fi

# 2. function length: nginx style puts a function's name at column 0
# ("name(" after its return type's line) and its braces at column 0, so
# the body is the lines from "{" to "}" at the start of a line.

funcs=$(for f in $(echo "$sources" | grep '\.c$' \
                   | grep -vE '/(tests|fuzz)/'); do
    awk -v file="$f" -v max=$max_func '
        /^[A-Za-z_][A-Za-z0-9_]*\(/ { name = $0; sub(/\(.*/, "", name) }
        /^\{/ && name != "" { start = NR; inbody = 1; next }
        /^\}/ && inbody {
            if (NR - start - 1 > max) {
                printf "%s:%s: %d lines\n", file, name, NR - start - 1
            }
            inbody = 0; name = ""
        }' "$f"
done)

over=()
while IFS= read -r line; do
    [ -z "$line" ] && continue
    key=${line%: *}
    allowed=0
    for a in "${allow[@]}"; do
        [ "$a" = "$key" ] && allowed=1
    done
    [ $allowed -eq 0 ] && over+=("$line")
done <<< "$funcs"

for a in "${allow[@]}"; do
    grep -q "^$a: " <<< "$funcs" \
        || over+=("$a: in the allow-list but not over $max_func lines")
done

if [ ${#over[@]} -eq 0 ]; then
    point ok "no function over $max_func lines outside the allow-list"
else
    point not "no function over $max_func lines outside the allow-list" \
        "${over[@]}"
fi

# 3. the core stays nginx-free

bad=$(grep -lE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]ngx_' \
      $(echo "$sources" | grep '^modules/core/') || true)

if [ -z "$bad" ]; then
    point ok "no ngx_ include under modules/core"
else
    point not "no ngx_ include under modules/core" $bad
fi

# 4. the agent builds on the core only

# every "modules/X" the Makefile names, one per line, so that a line
# naming the core and a glue folder is caught too
refs=$( (grep -noE 'modules/[A-Za-z0-9_.-]+' worker-agent/Makefile \
         | grep -vE ':modules/core$' | sed 's|^|worker-agent/Makefile:|';
         grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]'\
'([^">]*modules/|ngx_)' $(echo "$sources" | grep '^worker-agent/') \
         || true) || true)

if [ -z "$refs" ]; then
    point ok "the agent's build references no folder under modules/ but core"
else
    mapfile -t lines <<< "$refs"
    point not \
        "the agent's build references no folder under modules/ but core" \
        "${lines[@]}"
fi

echo "1..$n"

[ $fail -eq 0 ]
