#!/usr/bin/env bash
# The membership drill (docs/membership.md): on a local cluster of a coordinator and four workers, a
# 2-worker job per freeze, one worker frozen with SIGSTOP for each of 6, 8, 10, 11, 12, 14 and 20 s
# (alternately an idle worker and one of the job's) and resumed; then three of four workers killed
# within a moment, and every worker frozen for 30 s. Prints one line per freeze (the coordinator stayed
# up, the job completed, the worker joined again or exited by itself) and the tests' verdicts.
# The test suite runs the same tests with the 11 and 20 s freezes only. About 15 minutes.
# Usage: scripts/membership-drill.sh [seconds,seconds,...]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
ORCH_FREEZE_SECONDS="${1:-6,8,10,11,12,14,20}" orch_drill MembershipTests "^(froze |coordinator cut off|all four workers|three of four)" || exit
echo "membership drill: passed"
