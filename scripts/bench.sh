#!/usr/bin/env bash
# Benchmarks. Every figure is a median of BENCH_REPS runs (default 3) and is printed beside a
# baseline measured in the same run, as a ratio; nothing here is a pass/fail test.
#
# Now measured: single-process training throughput (samples/s) of `orchestrator run` against
# PyTorch (Debian's python3-torch with OpenBLAS, installed here when missing) with the same model, batch 64,
# SGD momentum 0.9, the same number of steps and one thread each.
# Still to come with the cluster (issue 7): all-reduce bus bandwidth against gloo, multi-worker
# training against DDP, communication share, peak RSS.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
reps="${BENCH_REPS:-3}"
threads="${BENCH_THREADS:-1}"
dll="$(orch_built_dll Orchestrator.Cli orchestrator)"
data=/usr/share/datasets/fashion-mnist
orch_have_fashion_mnist || "$ORCH_ROOT/scripts/fetch-data.sh"
[ -f "$data/train-images-idx3-ubyte.gz" ] || data="${ORCHESTRATOR_DATA:-$HOME/.orchestrator/data}/fashion-mnist"

python=/usr/bin/python3
# Debian's python3-torch is built against the generic BLAS interface; without OpenBLAS it runs on the
# reference BLAS, which made its MLP 10x slower here. Install both, so the baseline is a fair one.
blas_ok() { update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | grep -q '^Value: .*openblas'; }
if ! "$python" -c 'import torch' 2>/dev/null || ! blas_ok; then
  if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
    echo "installing Debian's python3-torch and OpenBLAS for the PyTorch baseline..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq python3-torch libopenblas0-pthread >/dev/null 2>&1 || true; }
  fi
fi
have_torch=0; "$python" -c 'import torch' 2>/dev/null && have_torch=1

work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { "$python" -c "import json,sys; print(json.load(sys.stdin)['$1'])" 2>/dev/null || sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p"; }

printf '%-8s %6s %18s %18s %8s\n' model steps orchestrator/s pytorch/s ratio
for model in mlp lenet; do
  steps=$([ "$model" = mlp ] && echo 600 || echo 200)
  cat >"$work/$model.json" <<JOB
{ "name": "bench-$model", "model": "$model", "dataset": { "name": "fashion-mnist" }, "epochs": 1,
  "maxSteps": $steps, "batchSizePerDevice": 64, "optimizer": { "type": "sgd", "lr": 0.05, "momentum": 0.9 } }
JOB
  ours=$(for _ in $(seq "$reps"); do
    dotnet "$dll" run "$work/$model.json" --json --threads "$threads" --out "$work/w.safetensors" 2>/dev/null | field samplesPerSecond
  done | median)
  theirs="n/a"; ratio="n/a"
  if [ "$have_torch" = 1 ]; then
    theirs=$(for _ in $(seq "$reps"); do
      "$python" "$ORCH_ROOT/scripts/bench/torch_train.py" "$data" "$model" 64 "$steps" "$threads" | field samplesPerSecond
    done | median)
    ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%.2f", a / b}')
    theirs=$(printf '%.0f' "$theirs")
  fi
  printf '%-8s %6s %18.0f %18s %8s\n' "$model" "$steps" "$ours" "$theirs" "$ratio"
done
[ "$have_torch" = 1 ] || echo "(PyTorch baseline skipped: python3-torch not installable here)"
echo "threads per process: $threads; repetitions: $reps (median); batch 64; PyTorch $("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)," \
  "BLAS $(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | sed -n 's/^Value: //p')"
