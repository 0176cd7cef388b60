#!/usr/bin/env bash
# Benchmarks. Every figure is a median of BENCH_REPS runs (default 3) and is printed beside a
# baseline measured in the same run, as a ratio; nothing here is a pass/fail test.
#
# 1. single-process training throughput (samples/s) of `orchestrator run` against PyTorch (Debian's
#    python3-torch with OpenBLAS, installed here when missing): same model, batch 64, SGD momentum 0.9,
#    the same number of steps, one thread each; and the example character transformer (a workload
#    package) against the same model in PyTorch, 16 windows of 64 characters, AdamW with clipping;
# 2. all-reduce bus bandwidth (busbw = bytes/time x 2(n-1)/n, as NCCL's tests define it) of the akka
#    and tcp links against gloo (torch.distributed), 2 and 3 processes on loopback, 0.2, 1, 16 and
#    64 MiB (BENCH_SIZES), with each process's peak RSS; beside them, "akka-stream": the bytes an
#    all-reduce sends per rank, streamed over Akka Remote with no all-reduce (what Akka itself carries);
#    then, with 2 processes, compression: both links with bf16 on the wire and gloo with float16 tensors,
#    in float32-equivalent busbw (the bytes an uncompressed all-reduce of the same values moves), against
#    gloo float32, and the bytes each process allocates per all-reduce;
# 3. training on a local cluster with 1 worker, and 2 workers on each link (batch 32 per worker; the
#    transformer 8 windows), against PyTorch DDP with gloo (1 and 2 processes, the same batch each):
#    samples/s, the share of step time spent communicating, and the workers' peak RSS; then the same mlp job
#    with the step trace's hooks idle against a cluster whose workers have none (what an untraced job pays);
# 4. BENCH_SOAK_SECONDS (default 60) of back-to-back 64 MiB all-reduces on the akka link, counting
#    cluster members marked unreachable (bulk traffic must not starve the heartbeats).
# 5. recovery: a 2-worker job on a local cluster with a spare worker; kill -9 one of its workers
#    mid-epoch and time, from the coordinator's log, the kill to the job runner's reaction (failure
#    detection) and to training again on a new ring from the latest checkpoint (target <= 15 s).
# 6. reduction overlapped with backward: the example transformer's training steps on a 2-rank ring over the tcp
#    link throttled to an emulated bandwidth and latency (BENCH_THROTTLE_MBS, default 180 MB/s; 1 ms), with
#    1 MiB buckets, reduced while backward runs against after it, each with one bucket on the ring at a time and
#    with two (the default): samples/s, communication share, and the step-time ratios (the bandwidth is meant to
#    make the unoverlapped communication share about 0.35).
# BENCH_ONLY=1,2 runs a subset.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
source "$ORCH_ROOT/scripts/lib/cluster.sh"
reps="${BENCH_REPS:-3}"
threads="${BENCH_THREADS:-1}"
dll="$(orch_built_dll Orchestrator.Cli orchestrator)"
dotnet build "$ORCH_ROOT/examples/CharTransformer" -c Release -nologo -v q >/dev/null   # the transformer rows' package
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

work="$(mktemp -d)"
clusters=()   # local clusters this run started: all are stopped at exit
cleanup() { for d in "${clusters[@]}"; do "$ORCH_ROOT/scripts/local-cluster.sh" down --dir "$d" >/dev/null 2>&1; done; rm -rf "$work"; }
trap cleanup EXIT
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { "$python" -c "import json,sys; print(json.load(sys.stdin)['$1'])" 2>/dev/null || sed -n "s/.*\"$1\": *\([0-9.eE+-]*\).*/\1/p"; }

only="${BENCH_ONLY:-1,2,3,4,5,6}"

# The transformer rows train examples/CharTransformer (a package from its build folder) on Debian's GPL-3 text.
corpus=/usr/share/common-licenses/GPL-3
steps_of() { case "$1" in mlp) echo 600 ;; lenet) echo 200 ;; transformer) echo 100 ;; esac; }
transformer_job() {  # transformer_job <name> <workers> <steps> <batch per worker> <transport> [compression]: the job file on stdout
  cat <<JOB
{ "name": "$1", "workload": { "package": "$ORCH_ROOT/examples/CharTransformer/bin/Release/net10.0",
  "type": "Examples.CharTransformer.CharLanguageModel", "args": { "text": "$corpus" } },
  "workers": $2, "epochs": 100, "maxSteps": $3, "batchSizePerDevice": $4,
  "optimizer": { "type": "adamw", "lr": 0.002, "weightDecay": 0.01, "clipGradNorm": 1.0 },
  "allReduce": { "transport": "$5", "compression": "${6:-none}" } }
JOB
}
want() { [[ ",$only," == *",$1,"* ]]; }
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

if want 1; then
echo "== 1. single-process training =="
printf '%-8s %6s %18s %18s %8s\n' model steps orchestrator/s pytorch/s ratio
for model in mlp lenet transformer; do
  steps=$(steps_of "$model"); batch=64; source_data="$data"
  if [ "$model" = transformer ]; then
    batch=16; source_data="$corpus"
    transformer_job "bench-transformer" 1 "$steps" "$batch" akka >"$work/$model.json"
  else
    cat >"$work/$model.json" <<JOB
{ "name": "bench-$model", "model": "$model", "dataset": { "name": "fashion-mnist" }, "epochs": 1,
  "maxSteps": $steps, "batchSizePerDevice": 64, "optimizer": { "type": "sgd", "lr": 0.05, "momentum": 0.9 } }
JOB
  fi
  ours=$(for _ in $(seq "$reps"); do
    dotnet "$dll" run "$work/$model.json" --json --threads "$threads" --out "$work/w.safetensors" 2>/dev/null | field samplesPerSecond
  done | median)
  theirs="n/a"; ratio="n/a"
  if [ "$have_torch" = 1 ]; then
    theirs=$(for _ in $(seq "$reps"); do
      "$python" "$ORCH_ROOT/scripts/bench/torch_train.py" "$source_data" "$model" "$batch" "$steps" "$threads" | field samplesPerSecond
    done | median)
    ratio=$(awk -v a="$ours" -v b="$theirs" 'BEGIN {printf "%.2f", a / b}')
    theirs=$(printf '%.0f' "$theirs")
  fi
  printf '%-8s %6s %18.0f %18s %8s\n' "$model" "$steps" "$ours" "$theirs" "$ratio"
done
[ "$have_torch" = 1 ] || echo "(PyTorch baseline skipped: python3-torch not installable here)"
echo "threads per process: $threads; repetitions: $reps (median); batch 64 (transformer: 16 windows of 64 characters); PyTorch $("$python" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)," \
  "BLAS $(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | sed -n 's/^Value: //p')"
fi

# on_ranks <world> <function>: calls the function with each rank, 1..world-1 in the background (their
# stdout dropped) and rank 0 in the foreground (its stdout is the result), then waits for all of them.
on_ranks() {
  local world="$1" fn="$2" r pids=()
  for r in $(seq 1 $((world - 1))); do "$fn" "$r" >/dev/null & pids+=($!); done
  "$fn" 0 || true
  for r in "${pids[@]}"; do wait "$r" || true; done
}
# ring_bench <transport> <world> <MiB,MiB...> [extra options]: runs a world-rank orchestrator-bench on
# loopback and prints rank 0's JSON lines; each rank's peak RSS goes to $work/rss (rank 0/rank 1/...).
bench_dll=""
ring_bench() {
  local transport="$1" world="$2" mib="$3" extra=("${@:4}")
  [ -n "$bench_dll" ] || bench_dll="$(orch_built_dll Orchestrator.Bench orchestrator-bench)"
  local ports=() tcp=() r
  for r in $(seq 0 $((world - 1))); do ports+=("$(free_port)"); tcp+=("$(free_port)"); done
  local common=(--ports "$(IFS=,; echo "${ports[*]}")" --tcp-ports "$(IFS=,; echo "${tcp[*]}")" --transport "$transport"
                --mib "$mib" --reps "$allreduces" "${extra[@]}")
  bench_rank() { dotnet "$bench_dll" --rank "$1" "${common[@]}" 2>"$work/rank$1.err"; }
  on_ranks "$world" bench_rank
  for r in $(seq 0 $((world - 1))); do sed -n 's/.*peak RSS \([0-9]*\) MiB.*/\1/p' "$work/rank$r.err"; done | paste -sd/ >"$work/rss"
}
gloo_bench() {  # gloo_bench <world> <MiB,...> [float32|float16]
  local world="$1" mib="$2" dtype="${3:-float32}" port; port=$(free_port)
  gloo_rank() { "$python" "$ORCH_ROOT/scripts/bench/gloo_allreduce.py" "$1" "$world" "$port" "$mib" "$allreduces" "$dtype" 2>/dev/null; }
  on_ranks "$world" gloo_rank
}
# jfield <field> <MiB> [<file>...]: that field of every JSON line for that size (Akka's own log lines on stdout are skipped).
jfield() { local f="$1" m="$2"; shift 2; cat "$@" | "$python" -c "import json,sys
for line in sys.stdin:
    try: d=json.loads(line)
    except ValueError: continue
    if d.get('mib')=='$m': print(d['$f'])" 2>/dev/null || true; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a > 0 && b > 0) printf "%.2f", a / b; else print "n/a"}'; }
# Timed all-reduces per size in each process run (after a JIT warm-up); each figure is the median over
# BENCH_REPS runs, and the three transports take turns run by run, so drift on a shared machine
# touches them alike.
allreduces="${BENCH_ALLREDUCES:-15}"

if want 2; then
sizes="${BENCH_SIZES:-0.2,1,16,64}"
# The akka link runs over TLS with mutual authentication, as on every cluster (akka-plain: the same without
# TLS, to show what TLS costs); the tcp link authenticates each connection once, at connect.
"$ORCH_ROOT/scripts/orchestrator-node" init --dir "$work/tls" --hosts 127.0.0.1 >/dev/null
certs=(--certs "$work/tls/nodes/127.0.0.1")
for world in 2 3; do
  echo
  echo "== 2. all-reduce bus bandwidth, $world processes on loopback (GB/s; median of $reps runs of $allreduces all-reduces) =="
  : >"$work/akka-$world.jsonl"; : >"$work/tcp-$world.jsonl"; : >"$work/gloo-$world.jsonl"; : >"$work/rss-$world"; : >"$work/stream-$world.jsonl"
  : >"$work/plain-$world.jsonl"
  for _ in $(seq "$reps"); do
    ring_bench akka-stream "$world" "$sizes" "${certs[@]}" >>"$work/stream-$world.jsonl"
    ring_bench akka "$world" "$sizes" "${certs[@]}" >>"$work/akka-$world.jsonl"; echo "akka $(cat "$work/rss")" >>"$work/rss-$world"
    ring_bench akka "$world" "$sizes" >>"$work/plain-$world.jsonl"
    ring_bench tcp "$world" "$sizes" >>"$work/tcp-$world.jsonl"; echo "tcp $(cat "$work/rss")" >>"$work/rss-$world"
    [ "$have_torch" = 1 ] && gloo_bench "$world" "$sizes" >>"$work/gloo-$world.jsonl"
  done
  printf '%-6s %10s %10s %10s %10s %10s %14s %14s %11s %11s\n' MiB akka tcp gloo akka/gloo tcp/gloo akka-stream akka/stream akka-plain akka/plain
  for mib in ${sizes//,/ }; do
    a=$(jfield busbwGBs "$mib" "$work/akka-$world.jsonl" | median); t=$(jfield busbwGBs "$mib" "$work/tcp-$world.jsonl" | median)
    g=$(jfield busbwGBs "$mib" "$work/gloo-$world.jsonl" | median); st=$(jfield busbwGBs "$mib" "$work/stream-$world.jsonl" | median)
    pl=$(jfield busbwGBs "$mib" "$work/plain-$world.jsonl" | median)
    printf '%-6s %10s %10s %10s %10s %10s %14s %14s %11s %11s\n' "$mib" "${a:-n/a}" "${t:-n/a}" "${g:-n/a}" "$(ratio "$a" "$g")" "$(ratio "$t" "$g")" \
      "${st:-n/a}" "$(ratio "$a" "$st")" "${pl:-n/a}" "$(ratio "$a" "$pl")"
  done
  echo "akka and akka-stream over TLS (as clusters run); akka-plain: the akka link without TLS. akka-stream: the same bytes per rank streamed over Akka Remote in the akka link's chunks and window, with no all-reduce: what Akka Remote itself carries here"
  echo "peak RSS per process, MiB (rank 0/rank 1/...; last run): $(grep '^akka' "$work/rss-$world" | tail -1), $(grep '^tcp' "$work/rss-$world" | tail -1)," \
    "gloo rank 0 $(jfield rssMiB "${sizes##*,}" "$work/gloo-$world.jsonl" | tail -1)"
done
# Compression (allReduce.compression): the same values with 16 bits each on the wire; busbw counts float32-equivalent
# bytes, so the ratios say how much faster the same gradient is summed. Against gloo float32 of the world-2 runs
# above (measured in the same run), and gloo with float16 tensors where it takes them.
echo
echo "== 2b. compression, 2 processes (GB/s of float32-equivalent busbw; median of $reps runs) =="
: >"$work/akka-bf16.jsonl"; : >"$work/tcp-bf16.jsonl"; : >"$work/gloo-fp16.jsonl"
for _ in $(seq "$reps"); do
  ring_bench akka 2 "$sizes" "${certs[@]}" --compression bf16 >>"$work/akka-bf16.jsonl"
  ring_bench tcp 2 "$sizes" --compression bf16 >>"$work/tcp-bf16.jsonl"
  [ "$have_torch" = 1 ] && gloo_bench 2 "$sizes" float16 >>"$work/gloo-fp16.jsonl"
done
printf '%-6s %10s %10s %10s %10s %14s %14s %12s\n' MiB akka-bf16 tcp-bf16 gloo-f32 gloo-fp16 akka-bf16/gloo tcp-bf16/gloo akka-bf16/f32
for mib in ${sizes//,/ }; do
  a=$(jfield busbwGBs "$mib" "$work/akka-bf16.jsonl" | median); t=$(jfield busbwGBs "$mib" "$work/tcp-bf16.jsonl" | median)
  g=$(jfield busbwGBs "$mib" "$work/gloo-2.jsonl" | median); h=$(jfield busbwGBs "$mib" "$work/gloo-fp16.jsonl" | median)
  a32=$(jfield busbwGBs "$mib" "$work/akka-2.jsonl" | median)
  printf '%-6s %10s %10s %10s %10s %14s %14s %12s\n' "$mib" "${a:-n/a}" "${t:-n/a}" "${g:-n/a}" "${h:-n/a}" "$(ratio "$a" "$g")" "$(ratio "$t" "$g")" "$(ratio "$a" "$a32")"
done
big="${sizes##*,}"
echo "allocated per $big MiB all-reduce, rank 0 (MiB, median): akka $(jfield allocMiBPerRun "$big" "$work/akka-2.jsonl" | median)," \
  "akka bf16 $(jfield allocMiBPerRun "$big" "$work/akka-bf16.jsonl" | median), tcp $(jfield allocMiBPerRun "$big" "$work/tcp-2.jsonl" | median)," \
  "tcp bf16 $(jfield allocMiBPerRun "$big" "$work/tcp-bf16.jsonl" | median)"
fi

if want 3; then
echo
echo "== 3. training on a local cluster (batch 32 per worker; samples/s over all workers; median of $reps) =="
cluster_dir="$work/cluster"
"$ORCH_ROOT/scripts/local-cluster.sh" up --workers 2 --dir "$cluster_dir" >/dev/null
clusters+=("$cluster_dir")
# bench_job <model> <workers> <transport> [compression]: median samples/s and communication share of $reps runs.
bench_job() {
  local model="$1" workers="$2" transport="$3" compression="${4:-none}" steps id
  steps=$(steps_of "$model")
  if [ "$model" = transformer ]; then transformer_job "bench-transformer-$workers-$transport" "$workers" "$steps" 8 "$transport" "$compression" >"$work/dp.json"
  else cat >"$work/dp.json" <<JOB
{ "name": "bench-$model-$workers-$transport", "model": "$model", "dataset": { "name": "fashion-mnist" }, "workers": $workers,
  "epochs": 1, "maxSteps": $steps, "batchSizePerDevice": 32, "optimizer": { "type": "sgd", "lr": 0.05, "momentum": 0.9 },
  "allReduce": { "transport": "$transport", "compression": "$compression" } }
JOB
  fi
  : >"$work/dp.txt"
  for _ in $(seq "$reps"); do
    id=$(ORCHESTRATOR_RUN_DIR="$cluster_dir" "$ORCH_ROOT/scripts/orchestrator" submit "$work/dp.json" 2>/dev/null)
    ORCHESTRATOR_RUN_DIR="$cluster_dir" "$ORCH_ROOT/scripts/orchestrator" watch "$id" >/dev/null
    ORCHESTRATOR_RUN_DIR="$cluster_dir" "$ORCH_ROOT/scripts/orchestrator" status "$id" --json | "$python" -c 'import json,sys
d=json.load(sys.stdin); w=d["workerStats"]
print(sum(x["samplesPerSecond"] for x in w), sum(x["communicationShare"] for x in w)/len(w))' >>"$work/dp.txt"
  done
  echo "$(cut -d' ' -f1 "$work/dp.txt" | median) $(cut -d' ' -f2 "$work/dp.txt" | median)"
}
ddp() {  # ddp <model> <processes> [fp16]: median global samples/s of PyTorch DDP (gloo), batch 32 per process
  local model="$1" world="$2" hook="${3:-}" steps port batch=32 source_data="$data"
  steps=$(steps_of "$model")
  [ "$model" = transformer ] && { batch=8; source_data="$corpus"; }
  ddp_rank() { "$python" "$ORCH_ROOT/scripts/bench/ddp_train.py" "$1" "$world" "$port" "$model" "$steps" "$batch" "$source_data" $hook 2>/dev/null; }
  for _ in $(seq "$reps"); do
    port=$(free_port)
    on_ranks "$world" ddp_rank | field samplesPerSecond
  done | median
}
printf '%-7s %-22s %14s %11s %12s %8s\n' model workers orchestrator comm-share "ddp (gloo)" ratio
for model in mlp lenet transformer; do
  theirs1="n/a"; theirs2="n/a"
  if [ "$have_torch" = 1 ]; then theirs1=$(ddp "$model" 1); theirs2=$(ddp "$model" 2); fi
  for config in "1 tcp" "2 akka" "2 tcp"; do
    set -- $config
    read -r ours share < <(bench_job "$model" "$1" "$2")
    theirs=$([ "$1" = 1 ] && echo "$theirs1" || echo "$theirs2")
    label=$([ "$1" = 1 ] && echo "1 (no all-reduce)" || echo "2 on the $2 link")
    printf '%-7s %-22s %14.0f %11.2f %12.0f %8s\n' "$model" "$label" "$ours" "$share" "$theirs" "$(ratio "$ours" "$theirs")"
  done
done
# Compression: the mlp and the transformer with bf16 on the wire on each link, against DDP plain and with its fp16 hook.
printf '%-7s %-22s %14s %11s %12s %8s %12s %8s\n' model workers orchestrator comm-share "ddp (gloo)" ratio "ddp fp16" ratio
for model in mlp transformer; do
  theirs="n/a"; theirs16="n/a"
  if [ "$have_torch" = 1 ]; then theirs=$(ddp "$model" 2); theirs16=$(ddp "$model" 2 fp16); fi
  for config in "akka none" "akka bf16" "tcp none" "tcp bf16"; do
    set -- $config
    read -r ours share < <(bench_job "$model" 2 "$1" "$2")
    printf '%-7s %-22s %14.0f %11.2f %12s %8s %12s %8s\n' "$model" "2 on $1, $2" "$ours" "$share" "$theirs" "$(ratio "$ours" "$theirs")" \
      "$theirs16" "$(ratio "$ours" "$theirs16")"
  done
done
echo "worker peak RSS (MiB, whole section): $(for n in worker-1 worker-2; do awk '/VmHWM/ {printf "%d", $2/1024}' "/proc/$(cat "$cluster_dir/nodes/$n.pid")/status"; echo; done | paste -sd/)"
# What an untraced job pays for `orchestrator trace`: the same job on a second cluster whose workers have no trace hooks
# at all (orchestrator.worker.step-trace=off), against this one's idle hooks.
notrace_dir="$work/cluster-notrace"
"$ORCH_ROOT/scripts/local-cluster.sh" up --workers 2 --dir "$notrace_dir" --set orchestrator.worker.step-trace=off >/dev/null
clusters+=("$notrace_dir")
# On the tcp link (the akka link's own spread is wider than anything the hooks could cost), one run each in turn,
# BENCH_TRACE_PAIRS times (5), after an untimed run on the new cluster (a fresh cluster's first job runs slower).
reps=1 cluster_dir="$notrace_dir" bench_job mlp 2 tcp >/dev/null
: >"$work/trace-ab.txt"
for _ in $(seq "${BENCH_TRACE_PAIRS:-5}"); do
  read -r hooked _ < <(reps=1 bench_job mlp 2 tcp)
  read -r bare _ < <(reps=1 cluster_dir="$notrace_dir" bench_job mlp 2 tcp)
  echo "$hooked $bare" >>"$work/trace-ab.txt"
done
hooked=$(cut -d' ' -f1 "$work/trace-ab.txt" | median); bare=$(cut -d' ' -f2 "$work/trace-ab.txt" | median)
printf 'step-trace hooks, idle: mlp, 2 on the tcp link: %.0f samples/s with them, %.0f without (ratio %s; runs: %s)\n' "$hooked" "$bare" \
  "$(ratio "$hooked" "$bare")" "$(paste -sd';' "$work/trace-ab.txt")"
"$ORCH_ROOT/scripts/local-cluster.sh" down --dir "$notrace_dir" >/dev/null
fi

if want 4; then
echo
soak="${BENCH_SOAK_SECONDS:-60}"
echo "== 4. ${soak} s of back-to-back 64 MiB all-reduces on the akka link =="
ring_bench akka 2 64 --seconds "$soak" >"$work/soak.jsonl"
"$python" -c 'import json,sys
d=[json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")][-1]
print("%s all-reduces in %s s, median %s s each (%s GB/s busbw); members marked unreachable: %s" % (d["runs"], d["soakSeconds"], d["seconds"], d["busbwGBs"], d["unreachable"]))' "$work/soak.jsonl" \
  || echo "soak failed; see the ranks' stderr"
fi

if want 5; then
echo
echo "== 5. recovery after kill -9 of a worker (2-worker job, spare worker up, shipped timings; median of $reps) =="
rec_dir="$work/recovery"
"$ORCH_ROOT/scripts/local-cluster.sh" up --workers 3 --dir "$rec_dir" >/dev/null
clusters+=("$rec_dir")
cat >"$work/recover.json" <<JOB
{ "name": "bench-recover", "model": "mlp", "dataset": { "name": "fashion-mnist" }, "workers": 2, "epochs": 3,
  "batchSizePerDevice": 32, "optimizer": { "type": "sgd", "lr": 0.05, "momentum": 0.9 },
  "checkpoint": { "everySteps": 100, "keep": 2, "metric": "accuracy" } }
JOB
orch() { ORCHESTRATOR_RUN_DIR="$rec_dir" "$ORCH_ROOT/scripts/orchestrator" "$@"; }
log_ms() {  # the UTC time of the first coordinator log line matching $1, in ms since the epoch
  grep -m1 -E "$1" "$rec_dir/logs/coordinator.log" | sed -n 's/.*\]\[\([0-9/]* [0-9:.]*\)Z\].*/\1/p' |
    { read -r t && date -u -d "$(echo "$t" | awk -F'[/ ]' '{print $3"-"$1"-"$2" "$4}')" +%s%3N; }
}
printf '%-4s %22s %26s %22s\n' rep "detected after (s)" "training again after (s)" "resumed from step"
: >"$work/recovery.txt"
for rep in $(seq "$reps"); do
  id=$(orch submit "$work/recover.json")
  until orch status "$id" --json | "$python" -c 'import json,sys; d=json.load(sys.stdin); sys.exit(0 if d["state"]=="Running" and d["step"]>250 else 1)'; do sleep 1; done
  seed="$(cat "$rec_dir/nodes/worker-1.address")"
  victim=$(orch status "$id" --json | "$python" -c 'import json,sys; print([w for w in json.load(sys.stdin)["workers"] if w != sys.argv[1]][0])' "$seed")
  name=$(grep -l -x -F "$victim" "$rec_dir"/nodes/*.address | xargs -n1 basename | sed 's/\.address$//')
  pid="$(cat "$rec_dir/nodes/$name.pid")"; orch_pid_alive "$pid" "$rec_dir" || { echo "bench: $name ($pid) is not a node of $rec_dir" >&2; exit 1; }
  killed=$(date -u +%s%3N); kill -9 "$pid"
  until grep -q "job $id: generation 2 training" "$rec_dir/logs/coordinator.log"; do sleep 0.5; done
  detected=$(log_ms "job $id: generation 1 interrupted"); again=$(log_ms "job $id: generation 2 training")
  step=$(grep -m1 -o "job $id: generation 2 resumes from the checkpoint at step [0-9]*" "$rec_dir/logs/coordinator.log" | grep -o '[0-9]*$')
  d=$(awk -v a="$detected" -v k="$killed" 'BEGIN {printf "%.1f", (a-k)/1000}'); t=$(awk -v a="$again" -v k="$killed" 'BEGIN {printf "%.1f", (a-k)/1000}')
  printf '%-4s %22s %26s %22s\n' "$rep" "$d" "$t" "$step"; echo "$d $t" >>"$work/recovery.txt"
  orch cancel "$id" >/dev/null
  "$ORCH_ROOT/scripts/start-node.sh" worker --dir "$rec_dir" >/dev/null   # the next spare
done
echo "median: detected after $(cut -d' ' -f1 "$work/recovery.txt" | median) s, training again after $(cut -d' ' -f2 "$work/recovery.txt" | median) s (target <= 15 s)"
fi

if want 6; then
echo
mbs="${BENCH_THROTTLE_MBS:-180}"
echo "== 6. reduction overlapped with backward: the transformer on 2 ranks, tcp link throttled to $mbs MB/s and 1 ms, 1 MiB buckets (median of $reps) =="
# after: reduced once backward is over; during: while backward runs. With -1 one bucket is on the ring at a time (as
# before collectives could overlap); without, two may be (the default).
configs="after-1 after during-1 during"
for cfg in $configs; do
  overlap=$(case "$cfg" in after*) echo false ;; *) echo true ;; esac)
  inflight=$(case "$cfg" in *-1) echo 1 ;; *) echo 2 ;; esac)
  cat >"$work/overlap-$cfg.json" <<JOB
{ "name": "bench-overlap", "workload": { "package": "$ORCH_ROOT/examples/CharTransformer/bin/Release/net10.0",
  "type": "Examples.CharTransformer.CharLanguageModel", "args": { "text": "$corpus" } },
  "workers": 2, "epochs": 100, "maxSteps": 60, "batchSizePerDevice": 8,
  "optimizer": { "type": "adamw", "lr": 0.002, "weightDecay": 0.01, "clipGradNorm": 1.0 },
  "allReduce": { "transport": "tcp", "bucketBytes": 1048576, "overlap": $overlap, "inFlight": $inflight } }
JOB
  : >"$work/overlap-$cfg.jsonl"
done
for _ in $(seq "$reps"); do   # the configurations take turns, so drift touches them alike
  for cfg in $configs; do
    ring_bench tcp 2 1 --train "$work/overlap-$cfg.json" --throttle-mbs "$mbs" --latency-ms 1 >>"$work/overlap-$cfg.jsonl"
  done
done
ofield() { "$python" -c "import json,sys
for line in open(sys.argv[1]):
    if line.startswith('{'): print(json.loads(line)[sys.argv[2]])" "$1" "$2" | median; }
printf '%-34s %12s %11s %16s\n' reduction samples/s comm-share "buckets early"
for cfg in $configs; do
  f="$work/overlap-$cfg.jsonl"
  case "$cfg" in
    after-1) label="after backward, 1 bucket at once" ;;
    after) label="after backward, 2 buckets at once" ;;
    during-1) label="during backward, 1 bucket at once" ;;
    *) label="during backward, 2 buckets at once" ;;
  esac
  printf '%-34s %12s %11s %16s\n' "$label" "$(ofield "$f" samplesPerSecond)" "$(ofield "$f" communicationShare)" "$(ofield "$f" bucketsEarly)/$(ofield "$f" buckets)"
done
echo "step time, during/after backward (2 at once): $(ratio "$(ofield "$work/overlap-after.jsonl" samplesPerSecond)" "$(ofield "$work/overlap-during.jsonl" samplesPerSecond)"); during (2 at once)/after (1 at once, as before buckets could overlap): $(ratio "$(ofield "$work/overlap-after-1.jsonl" samplesPerSecond)" "$(ofield "$work/overlap-during.jsonl" samplesPerSecond)") (target <= 0.8)"
fi
