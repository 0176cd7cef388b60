"""PyTorch baseline for scripts/bench.sh: the same model, data, batch and optimizer as an
Orchestrator job, trained for the same number of steps in one process; prints samples/s as JSON.
Usage: torch_train.py <fashion-mnist folder> <mlp|lenet> <batch> <steps> <threads>
       torch_train.py <text file> transformer <batch> <steps> <threads>
The transformer is examples/CharTransformer's (4 layers, width 128, 4 heads, context 64, PyTorch's
default initialisation, which TorchSharp's modules share), trained with AdamW (lr 0.002, weight
decay 0.01) and gradient clipping to norm 1, as the bench's job file asks."""
import gzip, json, struct, sys, time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


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
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x.flatten(1))))))


class Block(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv, self.attn_proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
        self.fc, self.proj = nn.Linear(width, 4 * width), nn.Linear(4 * width, width)

    def attention(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        future = torch.ones(t, t, dtype=torch.bool).triu(1)
        w = torch.softmax((q @ k.transpose(-2, -1) * (c // self.heads) ** -0.5).masked_fill(future, float("-inf")), -1)
        return self.attn_proj((w @ v).transpose(1, 2).reshape(b, t, c))

    def forward(self, x):
        x = x + self.attention(self.ln1(x))
        return x + self.proj(F.gelu(self.fc(self.ln2(x))))


class CharTransformer(nn.Module):
    def __init__(self, vocabulary, context=64, layers=4, width=128, heads=4):
        super().__init__()
        self.tok, self.pos = nn.Embedding(vocabulary, width), nn.Embedding(context, width)
        self.blocks = nn.ModuleList([Block(width, heads) for _ in range(layers)])
        self.ln_f, self.head = nn.LayerNorm(width), nn.Linear(width, vocabulary)

    def forward(self, ids):
        x = self.tok(ids) + self.pos(torch.arange(ids.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def windows(path, context=64):
    """The text's characters as ids, cut into windows of context + 1 at a stride of context (the example's samples)."""
    text = open(path, encoding="utf-8").read()
    vocabulary = sorted(set(text))
    ids = torch.tensor([vocabulary.index(c) for c in text[: int(len(text) * 0.9)]], dtype=torch.int64)
    count = (ids.shape[0] - 1) // context
    return torch.stack([ids[i * context: i * context + context + 1] for i in range(count)]), len(vocabulary)


def transformer_step(model, opt, batch):
    """One step as the job takes it: the loss per character, clipped gradients, AdamW."""
    opt.zero_grad()
    logits = model(batch[:, :-1])
    F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1)).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def load(folder):
    """Fashion-MNIST's training split as the product feeds it: normalized [N,1,28,28] floats, int64 labels."""
    images = torch.from_numpy(idx(f"{folder}/train-images-idx3-ubyte.gz").copy()).float().div_(255)
    labels = torch.from_numpy(idx(f"{folder}/train-labels-idx1-ubyte.gz").astype(np.int64))
    return ((images - images.mean()) / images.std()).unsqueeze(1), labels


def main():
    folder, model_name, batch, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    torch.manual_seed(42)
    if model_name == "transformer":
        samples, vocabulary = windows(folder)
        model = CharTransformer(vocabulary)
        opt = torch.optim.AdamW(model.parameters(), lr=0.002, weight_decay=0.01)
        order = torch.randperm(samples.shape[0])
        start = time.perf_counter()
        for s in range(steps):
            i = order[(s * batch) % (samples.shape[0] - batch):][:batch]
            transformer_step(model, opt, samples.index_select(0, i))
        elapsed = time.perf_counter() - start
        print(json.dumps({"samplesPerSecond": steps * batch / elapsed, "torch": torch.__version__}))
        return
    images, labels = load(folder)
    model = Mlp() if model_name == "mlp" else LeNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    order = torch.randperm(images.shape[0])
    start = time.perf_counter()
    for s in range(steps):
        i = order[(s * batch) % (images.shape[0] - batch):][:batch]
        opt.zero_grad()
        loss = F.cross_entropy(model(images.index_select(0, i)), labels.index_select(0, i))
        loss.backward()
        opt.step()
    elapsed = time.perf_counter() - start
    print(json.dumps({"samplesPerSecond": steps * batch / elapsed, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
