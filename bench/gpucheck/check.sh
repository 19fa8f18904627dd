#!/usr/bin/env bash
# The GPU check: medusa on a GPU against medusa on the CPU (every op, every
# learner, outputs and gradients) and against PyTorch on the same GPU
# (the three workloads of BenchmarkGPU), printed as one table.
#
#   bash bench/gpucheck/check.sh build  # where Go is: static binaries into bench/gpucheck/bin
#   bash bench/gpucheck/check.sh run    # on the GPU machine (no Go needed): tests, timings, table
#   bash bench/gpucheck/check.sh        # both, on a machine with Go and a GPU
#
# The run step needs the NVIDIA driver; NVRTC and cuBLAS are looked up by
# the loader, then in /usr/local/cuda*, then in PyTorch's nvidia wheels.
# PyTorch (for the reference column) is optional.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=$here/bin
iters=${ITERS:-20}

build() {
	mkdir -p "$bin"
	cd "$here/../.."
	CGO_ENABLED=0 go test -c -ldflags='-s -w' -o "$bin/cuda.test" ./cuda || exit 1
	CGO_ENABLED=0 go test -c -ldflags='-s -w' -o "$bin/bench.test" ./bench || exit 1
	ls -l "$bin"
}

# libdirs prints folders holding NVRTC or cuBLAS that the loader may not search.
libdirs() {
	local d
	for d in /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib; do
		[ -d "$d" ] && echo "$d"
	done
	python3 - 2>/dev/null <<'PY'
import glob, os, site
for s in site.getsitepackages() + [site.getusersitepackages()]:
    for lib in glob.glob(os.path.join(s, "nvidia", "*", "lib")):
        print(lib)
PY
}

run() {
	[ -x "$bin/cuda.test" ] && [ -x "$bin/bench.test" ] || { echo "no binaries in $bin: run '$0 build' where Go is"; exit 1; }
	MEDUSA_CUDA_LIB=$(libdirs | paste -sd: -)
	export MEDUSA_CUDA_LIB MEDUSA_CUDA_CACHE=${MEDUSA_CUDA_CACHE:-$(mktemp -d)}
	nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | sed 's/^/gpu: /'
	out=$(mktemp -d)

	echo "== parity: every op and learner on the GPU against the CPU (float32 1e-4, float64 1e-10), determinism"
	(cd "$here/../../cuda" && MEDUSA_TEST_DEVICE=cuda "$bin/cuda.test" -test.v -test.count 1 \
		-test.run 'TestSymbols|TestDeviceOpen|TestOpsOnDevice|TestMetaLearnersOnDevice|TestMTLOnDevice|TestConvNetOnDevice|TestConvNetMAMLOnDevice|TestPoolArgMax|TestScatterAddIndices|TestDeviceDeterministic' \
		>"$out/parity.txt" 2>&1)
	parity=$?
	# One line per learner and type: its result and the largest relative
	# difference of losses and parameters from the CPU after its steps.
	awk '/^=== (RUN|NAME|CONT)/ { name = $3 }
		/largest relative difference/ { if (!(name in diff)) order[++n] = name; diff[name] = $(NF-2) }
		/--- (PASS|FAIL|SKIP): / { s = $2; sub(":", "", s); st[$3] = s }
		END { printf "  %-44s %-6s %s\n", "learner / type", "result", "largest relative difference"
		      for (i = 1; i <= n; i++) printf "  %-44s %-6s %s\n", order[i], st[order[i]], diff[order[i]] }' "$out/parity.txt"
	grep -E -- '--- FAIL|^    .*(device .*, CPU|MEDUSA_TEST_DEVICE)' "$out/parity.txt" | head -20
	echo "  $(grep -c -- '--- PASS' "$out/parity.txt") passed, $(grep -c -- '--- FAIL' "$out/parity.txt") failed, $(grep -c -- '--- SKIP' "$out/parity.txt") skipped"

	echo "== timings (ms per step; $iters steps after warm-up)"
	(cd "$here/.." && MEDUSA_BENCH_DEVICE=cuda "$bin/bench.test" -test.run '^$' -test.bench 'BenchmarkGPU' \
		-test.benchtime "${iters}x" -test.count 1 -test.v >"$out/bench.txt" 2>&1)
	grep -E 'SKIP|no GPU|FAIL|panic' "$out/bench.txt" | head
	if python3 -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
		python3 "$here/torch_ref.py" --device cuda --iters "$iters" >"$out/torch.txt" 2>"$out/torch.err" || tail -5 "$out/torch.err"
		python3 -c 'import torch; print("pytorch:", torch.__version__, "cuda", torch.version.cuda)'
	else
		echo "(PyTorch with CUDA is not installed here: no reference column)"
		: >"$out/torch.txt"
	fi
	printf '%-16s %12s %12s %18s\n' workload "medusa ms" "PyTorch ms" "PyTorch/medusa"
	for w in maml-convnet maml-sinusoid mtl; do
		m=$(awk -v w="BenchmarkGPU/$w" '$1 ~ "^"w"(-[0-9]+)?$" {printf "%.3f", $3/1e6}' "$out/bench.txt")
		p=$(awk -v w="$w" '$1 == w {print $2}' "$out/torch.txt")
		r=$(awk -v m="$m" -v p="$p" 'BEGIN { if (m > 0 && p > 0) printf "%.2f×", p/m; else print "-" }')
		printf '%-16s %12s %12s %18s\n' "$w" "${m:--}" "${p:--}" "$r"
	done
	echo "(full output in $out)"
	return $parity
}

case "${1:-all}" in
build) build ;;
run) run ;;
all) build && run ;;
*) echo "usage: $0 [build|run]"; exit 2 ;;
esac
