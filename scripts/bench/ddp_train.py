"""PyTorch DDP (gloo, CPU) training throughput, the baseline for 2-worker training in scripts/bench.sh.

Usage: python3 ddp_train.py RANK WORLD PORT MODEL STEPS BATCH_PER_RANK DATA_DIR
Each rank trains the same model as Orchestrator's (mlp 784-256-128-10, or LeNet-5) with SGD momentum 0.9
on its DistributedSampler-style shard of Fashion-MNIST; rank 0 prints global samples/s over the timed steps.
"""
import gzip, json, os, struct, sys, time

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

rank, world, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
model_name, steps, batch, data_dir = sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), sys.argv[7]
torch.set_num_threads(1)
torch.manual_seed(42)


def idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def find(name):
    for suffix in (".gz", ""):
        p = os.path.join(data_dir, name + suffix)
        if os.path.exists(p):
            return p
    raise SystemExit(f"missing {name} in {data_dir}")


images = idx(find("train-images-idx3-ubyte")).float().div(255.0)
labels = idx(find("train-labels-idx1-ubyte")).long()
images = (images - images.mean()) / images.std()
images = images.unsqueeze(1)


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 256), nn.Linear(256, 128), nn.Linear(128, 10)

    def forward(self, x):
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x.flatten(1))))))


class LeNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(16 * 5 * 5, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x.flatten(1))))))


dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
model = DDP(Mlp() if model_name == "mlp" else LeNet())
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
order = torch.randperm(images.shape[0], generator=torch.Generator().manual_seed(42))
warmup = 20
for step in range(steps + warmup):
    if step == warmup:
        dist.barrier()
        start = time.perf_counter()
    base = (step * batch * world) % (images.shape[0] - batch * world)
    ix = order[base + rank: base + batch * world: world]
    opt.zero_grad()
    F.cross_entropy(model(images[ix]), labels[ix]).backward()
    opt.step()
dist.barrier()
elapsed = time.perf_counter() - start
if rank == 0:
    print(json.dumps({"model": model_name, "steps": steps, "samplesPerSecond": round(steps * batch * world / elapsed, 1)}), flush=True)
dist.destroy_process_group()
