#!/usr/bin/env bash
# Peak memory of second-order MAML on a ConvNet with 1, 2, 5 and 10 inner
# steps, with and without gradient checkpointing (--grad-checkpoint): the
# DoubleMNIST settings of the README (5-way 1-shot, 5 query images per
# class, meta-batch 4, 32 filters, float32), three meta-iterations, no
# final evaluation. Prints a markdown table of the peak resident set
# (GNU time's %M) and the part of the run's own estimate that is the
# compiled graphs. BenchmarkMAMLConvNetCheckpoint times the same settings.
#
#   bash bench/memory.sh            # 1-shot
#   SHOTS=5 bash bench/memory.sh    # 5-shot: 25 support images per task
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/medusa
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/medusa
iters=3
shots=${SHOTS:-1}
echo "| inner steps | unrolled: peak RSS | graphs | checkpointed: peak RSS | graphs |"
echo "| --- | --- | --- | --- | --- |"
for steps in 1 2 5 10; do
	row="| $steps |"
	for ck in "" "--grad-checkpoint"; do
		out=$( /usr/bin/time -f 'peak %M' "$bin" train --task doublemnist --filters 32 --shots "$shots" --query 5 \
			--inner-steps "$steps" --iters "$iters" --eval-tasks 0 $ck 2>&1 )
		rss=$(sed -n 's/^peak \([0-9]*\)$/\1/p' <<<"$out")
		graphs=$(sed -n 's/^memory: about .*graphs \([^,)]*\).*/\1/p' <<<"$out")
		row+=" $((rss / 1024)) MiB | $graphs |"
	done
	echo "$row"
done
