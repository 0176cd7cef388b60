#!/usr/bin/env bash
# The operator's submit: sends a job file to the cluster and prints the new job's id.
# Usage: scripts/submit.sh <job.json> [--wait] [--contact URL] [--token T]
# The contact point and token come from the options, $ORCHESTRATOR_CONTACT / $ORCHESTRATOR_TOKEN,
# cluster-config/client.conf, or the local cluster's run folder (.orchestrator/local/client.env).
set -euo pipefail
[ $# -ge 1 ] || { sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
exec "$(dirname "${BASH_SOURCE[0]}")/orchestrator" submit "$@"
