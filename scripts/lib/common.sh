# Shared by the scripts: repository root, environment, and "build when sources changed".
# shellcheck shell=bash
ORCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
# glibc's malloc returns big tensor buffers to the OS and faults them back in every step, which made
# step times vary up to 4x on our machines; these thresholds keep them mapped.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-33554432}"
export MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-1073741824}"
# .NET runtime tuning for node processes that share a few cores (measured with scripts/bench.sh on 2
# cores: 2-worker MLP training went from 0.66x to 0.94x of PyTorch DDP): idle thread-pool threads
# sleep instead of spinning, which otherwise takes the core a neighbour's compute thread needs; a
# 64 MB gen0 budget makes the garbage of Akka Remote's per-message copies cheaper to collect.
export DOTNET_ThreadPool_UnfairSemaphoreSpinLimit="${DOTNET_ThreadPool_UnfairSemaphoreSpinLimit:-0}"
export DOTNET_GCgen0size="${DOTNET_GCgen0size:-0x4000000}"

# orch_built_dll <project folder under src/> <assembly name>: prints the Release dll, building it
# first when it is missing or any source, project or build file is newer. Builds are serialized by
# a lock so that parallel invocations do not build over each other.
orch_built_dll() {
  local project="$1" assembly="$2"
  local dll="$ORCH_ROOT/src/$project/bin/Release/net10.0/$assembly.dll"
  if [ ! -f "$dll" ] || [ -n "$(orch_newer_sources "$dll")" ]; then
    mkdir -p "$ORCH_ROOT/.orchestrator"
    (
      flock 9
      if [ ! -f "$dll" ] || [ -n "$(orch_newer_sources "$dll")" ]; then
        echo "building $project (Release)..." >&2
        local log="$ORCH_ROOT/.orchestrator/build-$project.log"
        if ! dotnet build "$ORCH_ROOT/src/$project" -c Release -nologo >"$log" 2>&1; then
          grep -E "error|Error" "$log" | sort -u >&2 || true
          echo "build failed; full log: $log" >&2
          exit 1
        fi
        touch "$dll"
      fi
    ) 9>"$ORCH_ROOT/.orchestrator/build.lock" || return 1
  fi
  printf '%s\n' "$dll"
}

orch_newer_sources() {
  find "$ORCH_ROOT/src" "$ORCH_ROOT/build" "$ORCH_ROOT/Directory.Build.props" "$ORCH_ROOT/Directory.Build.targets" \
    \( -name bin -o -name obj \) -prune -o \
    -newer "$1" \( -name '*.cs' -o -name '*.csproj' -o -name '*.props' -o -name '*.targets' -o -name '*.conf' \) -print 2>/dev/null | head -1
}

# True when Fashion-MNIST's training images are where the product looks for them.
orch_have_fashion_mnist() {
  local d
  for d in "${ORCHESTRATOR_DATA:-/nonexistent}/fashion-mnist" /usr/share/datasets/fashion-mnist "$HOME/.orchestrator/data/fashion-mnist"; do
    if [ -f "$d/train-images-idx3-ubyte.gz" ] || [ -f "$d/train-images-idx3-ubyte" ]; then return 0; fi
  done
  return 1
}

# orch_drill <test class> <lines to print (grep -E)>: the long drills (membership-drill.sh, durability-loop.sh):
# builds, runs one integration test class (its settings come from the environment), prints the matching
# lines of its output and its verdicts; on failure keeps the whole output and names it.
orch_drill() {
  local class="$1" pattern="$2" log status
  cd "$ORCH_ROOT" || return 1
  if ! orch_have_fashion_mnist; then "$ORCH_ROOT/scripts/fetch-data.sh" || return 1; fi
  dotnet build Orchestrator.sln -c Release -nologo -v q >/dev/null || { echo "build failed" >&2; return 1; }
  log="$(mktemp)"
  dotnet test tests/Orchestrator.IntegrationTests -c Release --no-build --nologo \
    --filter "FullyQualifiedName~$class" --logger "console;verbosity=detailed" >"$log" 2>&1
  status=$?
  grep -E "$pattern|^ *(Passed|Failed) Orchestrator|Error Message" "$log"
  [ "$status" -eq 0 ] || { echo "$class failed; the test output: $log" >&2; return "$status"; }
  rm -f "$log"
}
