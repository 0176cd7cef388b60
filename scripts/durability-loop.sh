#!/usr/bin/env bash
# The durability loop: submits in a loop (jobs that wait in the queue) on a local cluster while the
# coordinator is killed with kill -9 at seeded random moments and started again after each kill; at the
# end every acknowledged job id must be listed exactly once, none lost, none doubled. Prints the number
# of submits, kills, acknowledged and refused submits. The test suite runs the same test with 24 submits.
# Usage: scripts/durability-loop.sh [submits (200)] [seed (17)]
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
ORCH_DURABILITY_SUBMITS="${1:-200}" ORCH_DURABILITY_SEED="${2:-17}" orch_drill DurabilityTests "^durability loop|Assert"
