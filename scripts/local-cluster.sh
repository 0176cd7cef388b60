#!/usr/bin/env bash
# A whole cluster on this machine, as separate processes on 127.0.0.1: one coordinator (with the job
# API) and N workers, on free ports chosen now. Logs, pids, ports, the API token and data live in
# the run folder (.orchestrator/local by default), with client.env for the client and scripts.
#
# Usage: scripts/local-cluster.sh up [--workers N] [--devices-per-worker D] [--dir D] [--set path=value]...
#        scripts/local-cluster.sh down [--dir D]      stops exactly the processes it started
#        scripts/local-cluster.sh status [--dir D]    one line per node: name, role, address, pid, state
#        scripts/local-cluster.sh start NAME [--dir D] [--set path=value]...
#                                                      starts a stopped node again (same port, data, args;
#                                                      a --set here holds for this start only)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$ORCH_ROOT/scripts/lib/cluster.sh"

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
action="$1"; shift
node=""
if [ "$action" = start ]; then node="${1:?start needs a node name (see status)}"; shift; fi
dir="$ORCH_ROOT/.orchestrator/local"
workers=2
devices=1
settings=()
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) workers="${2:?--workers needs a number}"; shift 2 ;;
    --devices-per-worker) devices="${2:?--devices-per-worker needs a number}"; shift 2 ;;
    --dir) dir="${2:?--dir needs a folder}"; shift 2 ;;
    --set) settings+=(--set "${2:?--set needs path=value}"); shift 2 ;;
    *) echo "local-cluster.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ "$workers" =~ ^[1-9][0-9]*$ ]] || { echo "local-cluster.sh: --workers must be a positive integer, was '$workers'" >&2; exit 2; }
[[ "$devices" =~ ^[1-9][0-9]*$ ]] || { echo "local-cluster.sh: --devices-per-worker must be a positive integer, was '$devices'" >&2; exit 2; }
# Everything in the run folder (keys, the API token, journals, logs) is the user's alone.
umask 077
mkdir -p "$dir"
chmod 700 "$dir"
dir="$(cd "$dir" && pwd)"

running_nodes() {
  local f
  for f in "$dir"/nodes/*.pid; do
    [ -e "$f" ] || continue
    orch_pid_alive "$(cat "$f")" "$dir" && basename "$f" .pid
  done
  return 0
}

down() {
  local f pid pids=()
  for f in "$dir"/nodes/*.pid; do
    [ -e "$f" ] || continue
    pid="$(cat "$f")"
    if orch_pid_alive "$pid" "$dir"; then kill -TERM "$pid" 2>/dev/null || true; pids+=("$pid"); fi
  done
  local deadline=$((SECONDS + 15))
  for pid in "${pids[@]}"; do
    while orch_pid_alive "$pid" "$dir" && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if orch_pid_alive "$pid" "$dir"; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  rm -f "$dir"/nodes/*.pid "$dir/client.env"
  echo "local cluster in $dir: stopped ${#pids[@]} process(es)"
}

status() {
  local f name pid state any=0
  for f in "$dir"/nodes/*.role; do
    [ -e "$f" ] || continue
    any=1
    name="$(basename "$f" .role)"
    pid="$(cat "$dir/nodes/$name.pid" 2>/dev/null || echo -)"
    if orch_pid_alive "$pid" "$dir"; then state=running; else state=stopped; fi
    printf '%-12s %-22s %-40s pid %-8s %s\n' "$name" "$(cat "$f")" "$(cat "$dir/nodes/$name.address")" "$pid" "$state"
  done
  [ $any = 1 ] || echo "no local cluster in $dir"
}

up() {
  if [ -n "$(running_nodes)" ]; then
    echo "local-cluster.sh: a cluster is already running in $dir (scripts/local-cluster.sh down first)" >&2
    exit 1
  fi
  local dll; dll="$(orch_built_dll Orchestrator.Node orchestrator-node)"
  rm -rf "$dir/nodes" "$dir/client.env"
  mkdir -p "$dir/logs" "$dir/nodes"
  # The cluster's own CA and one certificate for 127.0.0.1 that every node presents (kept across ups).
  dotnet "$dll" init --dir "$dir/tls" --hosts 127.0.0.1 >/dev/null
  local coord_port api_port first_worker_port
  local ports=()
  # Remoting and API ports, then each node's Prometheus port (loopback, no token; nodes/<name>.metrics says where).
  mapfile -t ports < <(orch_free_ports $((2 * workers + 3)))
  coord_port="${ports[0]}"; api_port="${ports[1]}"; first_worker_port="${ports[2]}"
  # Two seeds (the coordinator and the first worker), so that a restarted coordinator rejoins the
  # running cluster instead of forming an island of its own.
  cat >"$dir/cluster.env" <<ENV
ORCH_SEEDS=akka.ssl.tcp://orchestrator@127.0.0.1:$coord_port,akka.ssl.tcp://orchestrator@127.0.0.1:$first_worker_port
ORCH_COORDINATOR_PORT=$coord_port
ORCH_API_PORT=$api_port
ENV
  local metrics_port="${ports[$((workers + 2))]}"
  echo "http://127.0.0.1:$metrics_port/metrics" >"$dir/nodes/coordinator.metrics"
  orch_start_node "$dir" coordinator coordinator,checkpoint "$coord_port" --api-port "$api_port" \
    --set "orchestrator.metrics.port=$metrics_port" "${settings[@]}"
  local i port
  for i in $(seq 1 "$workers"); do
    port="${ports[$((i + 1))]}"
    metrics_port="${ports[$((workers + 2 + i))]}"
    echo "http://127.0.0.1:$metrics_port/metrics" >"$dir/nodes/worker-$i.metrics"
    orch_start_node "$dir" "worker-$i" worker "$port" --set "orchestrator.worker.cpu-devices=$devices" \
      --set "orchestrator.metrics.port=$metrics_port" "${settings[@]}"
  done

  # Ready when the API answers and lists every worker. The client finds the API (https, checked against the
  # cluster's CA) and the token through client.env, written as soon as the coordinator has made its token.
  local token_file="$dir/data/coordinator/api-token" deadline=$((SECONDS + 90)) seen=0
  while [ $SECONDS -lt $deadline ]; do
    for f in "$dir"/nodes/*.pid; do
      if ! orch_pid_alive "$(cat "$f")" "$dir"; then
        echo "local-cluster.sh: node $(basename "$f" .pid) exited; its log:" >&2
        tail -20 "$dir/logs/$(basename "$f" .pid).log" >&2
        down >/dev/null; exit 1
      fi
    done
    if [ -s "$token_file" ]; then
      [ -s "$dir/client.env" ] || cat >"$dir/client.env" <<ENV
ORCHESTRATOR_CONTACT=https://127.0.0.1:$api_port
ORCHESTRATOR_CA=$dir/tls/ca.crt
ORCHESTRATOR_TOKEN=$(cat "$token_file")
ENV
      seen="$( { orch_api_workers "$dir" || true; } | grep -o '"node"' | wc -l || true)"
      [ "$seen" -ge "$workers" ] && break
    fi
    sleep 0.5
  done
  if [ "$seen" -lt "$workers" ]; then
    echo "local-cluster.sh: only $seen of $workers worker(s) registered within 90 s; logs in $dir/logs" >&2
    down >/dev/null; exit 1
  fi
  echo "local cluster up in $dir: coordinator + $workers worker(s), job API https://127.0.0.1:$api_port (CA $dir/tls/ca.crt)"
  status
}

# A restarted node that exited: its status and the end of its log. A refusal of its arguments (exit 2,
# e.g. a --set that does not parse, named in the log) is passed on as exit 2.
report_exit() {
  local pid="$1" rc=0
  wait "$pid" || rc=$?
  echo "local-cluster.sh: $node exited with status $rc; the end of its log ($dir/logs/$node.log):" >&2
  tail -5 "$dir/logs/$node.log" >&2
  if [ "$rc" = 2 ]; then exit 2; fi
  exit 1
}

start_again() {
  orch_restart_node "$dir" "$node" ${settings[@]+"${settings[@]}"}
  local pid deadline
  pid="$(cat "$dir/nodes/$node.pid")"
  if grep -q coordinator "$dir/nodes/$node.role"; then
    # A coordinator is back when its job API answers (the client fails at once on a closed port).
    # shellcheck disable=SC1091
    source "$dir/cluster.env"
    deadline=$((SECONDS + 60))
    until orch_api_workers "$dir" | grep -q '^\['; do
      orch_pid_alive "$pid" "$dir" || report_exit "$pid"
      if [ $SECONDS -ge $deadline ]; then
        echo "local-cluster.sh: $node did not come back; its log: $dir/logs/$node.log" >&2; exit 1
      fi
      sleep 0.3
    done
  else
    # Other nodes validate their configuration within a second or two of starting.
    deadline=$((SECONDS + 3))
    while [ $SECONDS -lt $deadline ]; do
      orch_pid_alive "$pid" "$dir" || report_exit "$pid"
      sleep 0.3
    done
  fi
  echo "$node started again, pid $(cat "$dir/nodes/$node.pid")"
}

case "$action" in
  up) up ;;
  down) down ;;
  status) status ;;
  start) start_again ;;
  *) usage ;;
esac
