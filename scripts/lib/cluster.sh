# Shared by local-cluster.sh and start-node.sh: the run folder's layout and starting one node.
# shellcheck shell=bash
# Run folder: cluster.env (seeds, ports), nodes/<name>.{pid,role,address}, logs/<name>.log,
# data/<name>/ (journal, api-token, job output), client.env (for the client and for scripts).

# orch_free_ports <n>: n distinct TCP ports that nothing on this machine listens on or is connected
# from (read from /proc/net/tcp and tcp6, so neither python nor ss is needed).
orch_free_ports() {
  local -A used=()
  local address hex port count=0
  while read -r _ address _; do
    hex="${address##*:}"
    [[ "$hex" =~ ^[0-9A-Fa-f]{4}$ ]] && used[$((16#$hex))]=1
  done < <(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  while [ "$count" -lt "$1" ]; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    [ -n "${used[$port]:-}" ] && continue
    used[$port]=1
    echo "$port"
    count=$((count + 1))
  done
}

orch_free_port() { orch_free_ports 1; }

# orch_api_workers <run dir>: the job API's worker list (JSON) through the client with the run folder's
# client.env only (contact, CA, token: the token never goes on a command line), or nothing when the API
# does not answer.
orch_api_workers() {
  local cli; cli="$(orch_built_dll Orchestrator.Cli orchestrator)" || return 1
  ORCHESTRATOR_RUN_DIR="$1" ORCHESTRATOR_CONTACT='' ORCHESTRATOR_TOKEN='' ORCHESTRATOR_CA='' ORCHESTRATOR_CLIENT_CONFIG=/dev/null \
    timeout 20 dotnet "$cli" workers --json 2>/dev/null
}

# orch_pid_alive <pid> [run dir]: true when the pid is a live orchestrator-node process whose command
# line names the run folder (its --data-dir is inside it): a reused pid, or another cluster's node, is
# never taken for one of ours.
orch_pid_alive() {
  [ -n "$1" ] && [ -r "/proc/$1/cmdline" ] || return 1
  local cmdline; cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline")"
  [[ "$cmdline" == *orchestrator-node* ]] || return 1
  [ -z "${2:-}" ] || [[ "$cmdline" == *"--data-dir $2/data/"* ]]
}

# orch_start_node <run dir> <name> <roles> <remoting port> [extra node args...]: starts one node in the
# background with the run folder's seeds, records its pid, role and address.
orch_start_node() {
  local dir="$1" name="$2" roles="$3" port="$4"; shift 4
  local dll; dll="$(orch_built_dll Orchestrator.Node orchestrator-node)" || return 1
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
  local configs=(--config "$ORCH_ROOT/cluster-config/common.conf")
  local role
  for role in ${roles//,/ }; do configs+=(--config "$ORCH_ROOT/cluster-config/$role.conf"); done
  configs+=(--config "$ORCH_ROOT/cluster-config/local-cluster.conf")
  mkdir -p "$dir/nodes" "$dir/logs" "$dir/data/$name"
  local seeds=() s
  for s in ${ORCH_SEEDS//,/ }; do seeds+=(--seed "$s"); done
  local args=(--roles "$roles" "${configs[@]}" --hostname 127.0.0.1 --port "$port" --data-dir "$dir/data/$name"
              --certs "$dir/tls/nodes/127.0.0.1" "${seeds[@]}" "$@")
  # The exact arguments, so that `local-cluster.sh start <name>` can bring a stopped node back as it was.
  printf '%s\0' "${args[@]}" >"$dir/nodes/$name.args"
  echo "$roles" >"$dir/nodes/$name.role"
  echo "akka.ssl.tcp://orchestrator@127.0.0.1:$port" >"$dir/nodes/$name.address"
  orch_launch "$dir" "$name" "$dll" "${args[@]}"
}

# orch_launch <run dir> <name> <dll> <args...>: the node process itself, in the background.
orch_launch() {
  local dir="$1" name="$2" dll="$3"; shift 3
  nohup dotnet "$dll" "$@" >>"$dir/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$dir/nodes/$name.pid"
}

# orch_restart_node <run dir> <name> [args...]: starts a stopped node again with the arguments it had;
# extra arguments (--set path=value) come after them, so they win for this start only.
orch_restart_node() {
  local dir="$1" name="$2"; shift 2
  [ -f "$dir/nodes/$name.args" ] || { echo "no node '$name' in $dir" >&2; return 2; }
  if orch_pid_alive "$(cat "$dir/nodes/$name.pid" 2>/dev/null)" "$dir"; then echo "node '$name' is running" >&2; return 1; fi
  local dll; dll="$(orch_built_dll Orchestrator.Node orchestrator-node)" || return 1
  local args=()
  mapfile -d '' args <"$dir/nodes/$name.args"
  orch_launch "$dir" "$name" "$dll" "${args[@]}" "$@"
}
