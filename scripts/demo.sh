#!/usr/bin/env bash
# The README's main command. Trains the Fashion-MNIST MLP job (scripts/jobs/fmnist-mlp.json) in one
# process with `orchestrator run`, prints held-out accuracy and loss, and writes the weights to
# .orchestrator/demo/fmnist-mlp.safetensors. (The multi-node version arrives with the cluster.)
# Usage: scripts/demo.sh [job.json]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
job="${1:-$ORCH_ROOT/scripts/jobs/fmnist-mlp.json}"
out="$ORCH_ROOT/.orchestrator/demo"
mkdir -p "$out"
if ! orch_have_fashion_mnist; then
  "$ORCH_ROOT/scripts/fetch-data.sh"
fi
name="$(basename "$job" .json)"
"$ORCH_ROOT/scripts/orchestrator" run "$job" --out "$out/$name.safetensors"
