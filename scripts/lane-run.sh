#!/usr/bin/env bash
#
# Runs one test program in a free lane of a parallel test run (see
# scripts/test.sh): takes the first lane whose lock is free, runs the
# program with that lane's environment, and gives the lane back when the
# program ends.
#
#   lane-run.sh DIR COMMAND [ARG]...
#
# DIR holds lane1/, lane2/, ... each with an "env" file and a "lock".
# The lock is held on a descriptor of this script that the program does
# not inherit, so a server the program forgets to stop cannot keep the
# lane taken.  With as many programs at once as lanes, a free one is
# always found; a program started early waits for one.

set -uo pipefail

dir=$1
shift

while :; do
    for lane in "$dir"/lane*/; do
        exec 9>"$lane/lock"

        if flock -n 9; then
            set -a
            . "$lane/env"
            set +a
            "$@" 9>&-
            exit $?
        fi

        exec 9>&-
    done

    sleep 0.1
done
