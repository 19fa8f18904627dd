#!/usr/bin/env bash
# Prints the README's table of the synthetic multi-task problem: every
# weighting method and architecture, and the single-task networks, each
# trained by `medusa mtl` with its defaults (2,000 steps) for every seed in
# SEEDS; the table gives the means over the seeds, Δm against the
# single-task networks of the same seed (averaged), and the mean wall time.
#
#   bash bench/mtl_table.sh                 # SEEDS="1 2 3"
#   SEEDS=1 ROWS="ew pcgrad" ARGS="--steps 100" bash bench/mtl_table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${SEEDS:-1 2 3}
rows=${ROWS:-ew uw gradnorm dwa pcgrad mgda cagrad imtl nash rlw upgrad alignedmtl gradvac fairgrad famo gls graddrop dbmtl dbmtl:beta_sigma=0.5 stch moco moco:beta=0.9:beta_sigma=-1 arch=mmoe arch=cgc arch=ple arch=cross-stitch arch=dselect-k}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/medusa" ./cmd/medusa

# metrics FILE HEADER: "reg1 reg2 accuracy F1" from the metrics block
# that follows the line starting with HEADER.
metrics() {
	awk -v h="$2" 'index($0, h) == 1 { on = 1; next }
		on && $1 == "reg1" { r1 = $4 } on && $1 == "reg2" { r2 = $4 }
		on && $1 == "cls" { print r1, r2, $5, $6; exit }' "$1"
}

run() { # run NAME SEED ARGS...: appends "NAME SEED reg1 reg2 acc f1 seconds" to results
	local name=$1 seed=$2
	shift 2
	local t0 t1
	t0=$(date +%s.%N)
	# shellcheck disable=SC2086 # ARGS is a list of flags
	"$tmp/medusa" mtl "$@" ${ARGS:-} --seed "$seed" --out "$tmp/m.safetensors" >"$tmp/out" 2>&1 ||
		{ cat "$tmp/out" >&2; exit 1; }
	t1=$(date +%s.%N)
	local header="held-out metrics"
	[[ $name == single ]] && header="single-task baselines"
	echo "$name $seed $(metrics "$tmp/out" "$header") $(awk "BEGIN { print $t1 - $t0 }")" >>"$tmp/results"
	echo "done: $name, seed $seed" >&2
}

for seed in $seeds; do
	# The baselines' wall time includes the equal-weighting run before them.
	run single "$seed" --baseline single
	for row in $rows; do
		case $row in
		arch=*) run "ew, ${row#arch=}" "$seed" --arch "${row#arch=}" ;;
		*) run "$row" "$seed" --weighting "$row" ;;
		esac
	done
done
# A name may have spaces ("ew, mmoe"): the last 6 fields are the values.
awk -v order="$rows" '
	{ name = $1; for (i = 2; i <= NF - 6; i++) name = name " " $i
	  s = $(NF-5); r1 = $(NF-4); r2 = $(NF-3); a = $(NF-2); f = $(NF-1); t = $NF
	  key = name SUBSEP s; R1[key] = r1; R2[key] = r2; A[key] = a; F[key] = f; T[name] += t
	  if (!(name in n)) names[++count] = name
	  n[name]++; seen[s] = 1 }
	END {
	  print "| method | reg1 MSE (floor 0.030) | reg2 MSE (floor 0.250) | cls accuracy (ceiling 0.980) | cls F1 | Δm | wall time |"
	  print "| --- | --- | --- | --- | --- | --- | --- |"
	  for (i = 1; i <= count; i++) {
	    name = names[i]; if (name == "single") continue
	    m1 = m2 = ma = mf = dm = 0; k = 0
	    for (s in seen) {
	      key = name SUBSEP s; b = "single" SUBSEP s
	      if (!(key in R1)) continue
	      k++; m1 += R1[key]; m2 += R2[key]; ma += A[key]; mf += F[key]
	      # Δm as learners.DeltaM: MSE lower is better; accuracy and F1 averaged for the binary task.
	      d = (-(R1[key] - R1[b]) / R1[b] - (R2[key] - R2[b]) / R2[b] + ((A[key] - A[b]) / A[b] + (F[key] - F[b]) / F[b]) / 2) / 3
	      dm += 100 * d
	    }
	    printf "| %s | %.4f | %.4f | %.4f | %.4f | %+.2f%% | %.1f s |\n", name, m1/k, m2/k, ma/k, mf/k, dm/k, T[name]/k
	  }
	  m1 = m2 = ma = mf = 0; k = 0
	  for (s in seen) { b = "single" SUBSEP s; k++; m1 += R1[b]; m2 += R2[b]; ma += A[b]; mf += F[b] }
	  printf "| single-task networks | %.4f | %.4f | %.4f | %.4f | 0 | |\n", m1/k, m2/k, ma/k, mf/k
	}' "$tmp/results"
echo >&2
echo "per seed (name seed reg1 reg2 accuracy F1 seconds):" >&2
cat "$tmp/results" >&2
