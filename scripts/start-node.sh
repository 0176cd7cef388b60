#!/usr/bin/env bash
# Starts one node.
#   scripts/start-node.sh <coordinator|worker|checkpoint|roles,...> [--dir D] [node options...]
# Without --dir: runs in the foreground with cluster-config/common.conf and the role's file; seed
#   nodes come from cluster-config, $ORCHESTRATOR_SEEDS or --seed (a real multi-host cluster).
# With --dir D: joins the local cluster whose run folder is D (scripts/local-cluster.sh), in the
#   background on a free port; `local-cluster.sh down --dir D` stops it with the rest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$ORCH_ROOT/scripts/lib/cluster.sh"
[ $# -ge 1 ] || { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
roles="$1"; shift
dir=""
if [ "${1:-}" = "--dir" ]; then dir="${2:?--dir needs a folder}"; shift 2; fi

if [ -z "$dir" ]; then
  dll="$(orch_built_dll Orchestrator.Node orchestrator-node)"
  configs=(--config "$ORCH_ROOT/cluster-config/common.conf")
  for role in ${roles//,/ }; do
    [ -f "$ORCH_ROOT/cluster-config/$role.conf" ] && configs+=(--config "$ORCH_ROOT/cluster-config/$role.conf")
  done
  exec dotnet "$dll" --roles "$roles" "${configs[@]}" "$@"
fi

[ -f "$dir/cluster.env" ] || { echo "start-node.sh: $dir is not a local cluster's run folder (no cluster.env)" >&2; exit 2; }
dir="$(cd "$dir" && pwd)"
n=1
while [ -e "$dir/nodes/${roles//,/-}-$n.role" ]; do n=$((n + 1)); done
name="${roles//,/-}-$n"
port="$(orch_free_port)"
orch_start_node "$dir" "$name" "$roles" "$port" "$@"
echo "$name started: akka.ssl.tcp://orchestrator@127.0.0.1:$port, pid $(cat "$dir/nodes/$name.pid"), log $dir/logs/$name.log"
