"""PyTorch DDP (gloo, CPU) training throughput, the baseline for 2-worker training in scripts/bench.sh.

Usage: python3 ddp_train.py RANK WORLD PORT MODEL STEPS BATCH_PER_RANK DATA_DIR [fp16]
Each rank trains the same model as Orchestrator's (mlp 784-256-128-10, or LeNet-5) with SGD momentum 0.9
on its DistributedSampler-style shard of Fashion-MNIST; rank 0 prints global samples/s over the timed steps.
MODEL transformer: the example character transformer with AdamW and clipping on windows of DATA_DIR (a text file).
fp16: DDP's fp16 compression communication hook (gradients travel as float16, as Orchestrator's compression does).
"""
import json, os, sys, time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

rank, world, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model_name, steps, batch, data_dir = sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
compress = len(sys.argv) > 8 and sys.argv[8] == "fp16"
torch.set_num_threads(1)
torch.manual_seed(42)
# The same data loading and models as the single-process baseline (scripts/bench/torch_train.py).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import CharTransformer, LeNet, Mlp, load, transformer_step, windows  # noqa: E402

if model_name == "transformer":
    images, vocabulary = windows(data_dir)
    labels = None
    net = CharTransformer(vocabulary)
else:
    images, labels = load(data_dir)
    net = Mlp() if model_name == "mlp" else LeNet()

dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
model = DDP(net)
if compress:
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    model.register_comm_hook(None, default_hooks.fp16_compress_hook)
opt = (torch.optim.AdamW(model.parameters(), lr=0.002, weight_decay=0.01) if model_name == "transformer"
       else torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(42))
warmup = 20
for step in range(steps + warmup):
    if step == warmup:
        dist.barrier()
        start = time.perf_counter()
    base = (step * batch * world) % (images.shape[0] - batch * world)
    ix = order[base + rank: base + batch * world: world]
    if labels is None:
        transformer_step(model, opt, images[ix])
        continue
    opt.zero_grad()
    F.cross_entropy(model(images[ix]), labels[ix]).backward()
    opt.step()
dist.barrier()
elapsed = time.perf_counter() - start
if rank == 0:
    print(json.dumps({"model": model_name, "steps": steps, "samplesPerSecond": round(steps * batch * world / elapsed, 1)}), flush=True)
dist.destroy_process_group()
