#!/usr/bin/env bash
# The test command (README; .ci/run calls it): builds the solution and runs every test project,
# then prints one summary line "tests: N passed, N failed, N skipped".
# Needs Fashion-MNIST (scripts/fetch-data.sh). Extra arguments go to dotnet test (e.g. --filter X).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$ORCH_ROOT"

if ! orch_have_fashion_mnist; then
  echo "Fashion-MNIST not found; the training tests need it. Run scripts/fetch-data.sh first." >&2
  exit 2
fi

dotnet build Orchestrator.sln -c Release -nologo -v q || { echo "build failed" >&2; exit 1; }
log="$(mktemp)"
dotnet test Orchestrator.sln -c Release --no-build --nologo "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
# Per project, dotnet test prints "Passed!  - Failed: 0, Passed: 61, Skipped: 0, Total: 61, ...".
summary="$(grep -E '(Passed|Failed)! +- +Failed:' "$log" | awk -F'[:,]' '{f+=$2; p+=$4; s+=$6} END {printf "tests: %d passed, %d failed, %d skipped", p, f, s}')"
rm -f "$log"
echo "$summary"
exit "$status"
