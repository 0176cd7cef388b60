#!/usr/bin/env bash
# The README's main command: starts a local cluster (a coordinator and two workers, separate
# processes on 127.0.0.1), submits the Fashion-MNIST MLP job to both workers (data-parallel, a ring
# all-reduce over the tcp link), watches it to the end, prints the held-out accuracy and the weights'
# path, then trains the same job file in this one process (`orchestrator run`, the single-replica
# reference) and compares the two: the cluster's weights equal the reference's to the bit. Stops the
# cluster it started.
# Usage: scripts/demo.sh [job.json]     (run folder: .orchestrator/demo)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
job="${1:-$ORCH_ROOT/scripts/jobs/fmnist-mlp.json}"
dir="$ORCH_ROOT/.orchestrator/demo"
if ! orch_have_fashion_mnist; then
  "$ORCH_ROOT/scripts/fetch-data.sh"
fi
"$ORCH_ROOT/scripts/local-cluster.sh" up --workers 2 --dir "$dir"
trap '"$ORCH_ROOT/scripts/local-cluster.sh" down --dir "$dir" >/dev/null' EXIT
export ORCHESTRATOR_RUN_DIR="$dir"
id="$("$ORCH_ROOT/scripts/submit.sh" "$job")"
echo "submitted $job as $id"
"$ORCH_ROOT/scripts/orchestrator" watch "$id"
"$ORCH_ROOT/scripts/orchestrator" status "$id"

workers="$(sed -n 's/.*"workers": *\([0-9]*\).*/\1/p' "$job" | head -1)"
echo
echo "$id trained on ${workers:-1} worker(s), each a replica on its shard of every batch, gradients summed by a ring all-reduce."
echo "The same job file in this one process (orchestrator run, the single-replica reference, 1 thread as the workers use):"
weights="$("$ORCH_ROOT/scripts/orchestrator" status "$id" --json | sed -n 's/^  "weights": "\(.*\)",*$/\1/p')"
reference="$dir/reference.safetensors"
"$ORCH_ROOT/scripts/orchestrator" run "$job" --threads 1 --out "$reference" | tail -2
echo "cluster weights against the reference (max abs diff 0 means equal to the bit):"
"$ORCH_ROOT/scripts/orchestrator" compare "$weights" "$reference" | tail -1
