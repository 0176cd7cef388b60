#!/usr/bin/env bash
# The durability loop: submits in a loop (jobs that wait in the queue) on a local cluster while the
# coordinator is killed with kill -9 at seeded random moments and started again after each kill; at the
# end every acknowledged job id must be listed exactly once, none lost, none doubled. Prints the number
# of submits, kills, acknowledged and refused submits. The test suite runs the same test with 24 submits.
# Usage: scripts/durability-loop.sh [submits (200)] [seed (17)]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORCH_ROOT"
if ! orch_have_fashion_mnist; then "$ORCH_ROOT/scripts/fetch-data.sh"; fi
dotnet build Orchestrator.sln -c Release -nologo -v q >/dev/null || { echo "build failed" >&2; exit 1; }
log="$(mktemp)"
ORCH_DURABILITY_SUBMITS="${1:-200}" ORCH_DURABILITY_SEED="${2:-17}" dotnet test tests/Orchestrator.IntegrationTests -c Release --no-build --nologo \
  --filter "FullyQualifiedName~DurabilityTests" --logger "console;verbosity=detailed" >"$log" 2>&1
status=$?
grep -E "^durability loop|^ *(Passed|Failed) Orchestrator|Assert|Error Message" "$log"
[ "$status" -eq 0 ] || { echo "the loop failed; the test output: $log" >&2; exit "$status"; }
rm -f "$log"
