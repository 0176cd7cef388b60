#!/usr/bin/env bash
# The soak: back-to-back small 2-worker jobs on a local cluster (a coordinator and three workers) for a
# while, with one worker killed with kill -9 and started again at once every few minutes (in turn). Every
# job must complete. Prints, for the coordinator and each worker, resident memory, threads and open files
# at the start and at the end (a restarted worker is a new process: its figures are the new one's), and
# the number of jobs and kills.
# Usage: scripts/soak.sh [minutes (30)] [seconds between kills (180)]     (run folder: .orchestrator/soak)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
minutes="${1:-30}" every="${2:-180}"
dir="$ORCH_ROOT/.orchestrator/soak"
if ! orch_have_fashion_mnist; then "$ORCH_ROOT/scripts/fetch-data.sh"; fi
"$ORCH_ROOT/scripts/local-cluster.sh" up --workers 3 --dir "$dir" || exit 1
rm -f "$dir/kills.log"
killer=""
cleanup() {
  [ -n "$killer" ] && kill "$killer" 2>/dev/null
  "$ORCH_ROOT/scripts/local-cluster.sh" down --dir "$dir" >/dev/null
}
trap cleanup EXIT
export ORCHESTRATOR_RUN_DIR="$dir"
job="$dir/soak-job.json"
cat >"$job" <<'JSON'
{ "name": "soak", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "workers": 2, "epochs": 1, "maxSteps": 150,
  "batchSizePerDevice": 32, "optimizer": { "type": "sgd", "lr": 0.05, "momentum": 0.9 }, "seed": 42,
  "allReduce": { "transport": "tcp" }, "checkpoint": { "everySteps": 50, "keep": 1 }, "maxFailures": 5 }
JSON

# usage <node>: "rss MiB, threads, open files" of the node's current process
usage() {
  local pid; pid="$(cat "$dir/nodes/$1.pid")"
  if ! [ -r "/proc/$pid/status" ]; then echo "not running"; return; fi
  local rss threads fds
  rss="$(awk '/^VmRSS:/ {printf "%.0f", $2/1024}' "/proc/$pid/status")"
  threads="$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")"
  fds="$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)"
  echo "pid $pid: ${rss} MiB RSS, $threads threads, $fds open files"
}
nodes=(coordinator worker-1 worker-2 worker-3)

# One job first, so that the start figures are of a cluster that has trained.
"$ORCH_ROOT/scripts/orchestrator" submit "$job" --wait >/dev/null || { echo "soak: the first job did not complete" >&2; exit 1; }
declare -A start
for n in "${nodes[@]}"; do start[$n]="$(usage "$n")"; done

(
  i=0
  while sleep "$every"; do
    victim="worker-$(( i % 3 + 1 ))"; i=$((i + 1))
    kill -9 "$(cat "$dir/nodes/$victim.pid")" 2>/dev/null
    echo "[soak] $(date -u +%T) killed $victim (kill -9); starting it again at once" | tee -a "$dir/kills.log"
    "$ORCH_ROOT/scripts/local-cluster.sh" start "$victim" --dir "$dir" >/dev/null || echo "[soak] $victim did not start again"
  done
) &
killer=$!

deadline=$((SECONDS + minutes * 60))
jobs=0 failed=0
while [ $SECONDS -lt $deadline ]; do
  if "$ORCH_ROOT/scripts/orchestrator" submit "$job" --wait >/dev/null 2>"$dir/last-error"; then
    jobs=$((jobs + 1))
  else
    failed=$((failed + 1)); echo "[soak] $(date -u +%T) a job did not complete: $(tail -1 "$dir/last-error")"
  fi
done
kill "$killer" 2>/dev/null; wait "$killer" 2>/dev/null; killer=""
kills="$(cat "$dir/kills.log" 2>/dev/null | wc -l)"
listed="$("$ORCH_ROOT/scripts/orchestrator" list --json | grep -c '"id"')"
echo "soak: $minutes min, $jobs jobs Completed, $failed not, $kills worker kills; $listed jobs listed (the first one included)"
for n in "${nodes[@]}"; do echo "  $n start: ${start[$n]}"; echo "  $n end:   $(usage "$n")"; done
[ "$failed" -eq 0 ]
