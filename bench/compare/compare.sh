#!/usr/bin/env bash
# Runs medusa's benchmarks and their PyTorch references (torch_bench.py)
# interleaved, single-threaded on both sides, ROUNDS times (default 6),
# and prints the ratio table (ratio.py) and benchstat's comparison.
# Needs Debian's python3-torch and benchstat
# (go install golang.org/x/perf/cmd/benchstat@latest).
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${ROUNDS:-6}
out=${OUT:-$(mktemp -d)}
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 GOMAXPROCS=1
go test -c -o "$out/bench.test" ./bench
: > "$out/medusa.txt"
: > "$out/torch.txt"
for i in $(seq "$rounds"); do
	echo "round $i of $rounds" >&2
	for b in 'MAMLSinusoid' 'MTLStep/weighting=ew' 'MAMLConvNet/filters=32'; do
		"$out/bench.test" -test.run '^$' -test.bench "$b" -test.benchmem -test.cpu 1 >> "$out/medusa.txt"
	done
	/usr/bin/python3 bench/compare/torch_bench.py >> "$out/torch.txt"
done
/usr/bin/python3 bench/compare/ratio.py "$out/torch.txt" "$out/medusa.txt"
if command -v benchstat >/dev/null || [ -x "$(go env GOPATH)/bin/benchstat" ]; then
	PATH="$PATH:$(go env GOPATH)/bin" benchstat torch="$out/torch.txt" medusa="$out/medusa.txt"
fi
echo "raw results in $out" >&2
