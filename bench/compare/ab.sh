#!/usr/bin/env bash
# Compares a benchmark between two revisions of this repository: builds
# each revision's ./bench test binary (in temporary git worktrees), then
# runs the two at the same time, one per CPU, ROUNDS times (default 30),
# swapping the CPUs each round, and prints each round's times and their
# ratio, then the geometric mean of the ratios. On a shared machine whose
# speed moves by tens of percent from minute to minute, both binaries of a
# round see the same load, so the ratio is far steadier than either time.
# With one CPU the two run one after the other.
#
#   bash bench/compare/ab.sh REV_A REV_B    # prints B/A: below 1 is faster
#
# BENCH (default MAMLConvNet/filters=32/order=second) and BENCHTIME
# (default 3x) choose the benchmark and its iterations a round.
set -euo pipefail
if [ $# -ne 2 ]; then
	echo "usage: $0 REV_A REV_B" >&2
	exit 2
fi
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-30}
bench=${BENCH:-MAMLConvNet/filters=32/order=second}
benchtime=${BENCHTIME:-3x}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/a" >/dev/null 2>&1 || true; git worktree remove --force "$tmp/b" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
for side in a b; do
	rev=$1
	[ "$side" = b ] && rev=$2
	git worktree add --detach --quiet "$tmp/$side" "$rev"
	(cd "$tmp/$side" && go test -c -o "$tmp/$side.test" ./bench)
done
export GOMAXPROCS=1 OPENBLAS_NUM_THREADS=1
run() { # binary, cpu
	local cmd=("$1" -test.run '^$' -test.bench "$bench" -test.benchtime "$benchtime")
	if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
		cmd=(taskset -c "$2" "${cmd[@]}")
	fi
	"${cmd[@]}" | awk '/ns\/op/ {print $3/1e6}'
}
for r in $(seq "$rounds"); do
	ca=$((r % 2))
	cb=$((1 - ca))
	if [ "$(nproc)" -ge 2 ]; then
		run "$tmp/a.test" "$ca" > "$tmp/ta" &
		run "$tmp/b.test" "$cb" > "$tmp/tb" &
		wait
	else
		run "$tmp/a.test" 0 > "$tmp/ta"
		run "$tmp/b.test" 0 > "$tmp/tb"
	fi
	paste "$tmp/ta" "$tmp/tb"
done | awk -v a="$1" -v b="$2" '
	{ printf "%s ms  %s ms  %.3f\n", $1, $2, $2 / $1; s += log($2 / $1); n++ }
	END { printf "%s / %s: geometric mean of %d rounds %.4f\n", b, a, n, exp(s / n) }'
