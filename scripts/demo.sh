#!/usr/bin/env bash
# The README's main command: starts a local cluster (a coordinator and two workers, separate
# processes on 127.0.0.1), submits the Fashion-MNIST MLP job, watches it to the end, prints the
# held-out accuracy and the weights' path, and stops the cluster it started.
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
