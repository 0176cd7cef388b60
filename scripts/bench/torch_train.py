"""PyTorch baseline for scripts/bench.sh: the same model, data, batch and optimizer as an
Orchestrator job, trained for the same number of steps in one process; prints samples/s as JSON.
Usage: torch_train.py <fashion-mnist folder> <mlp|lenet> <batch> <steps> <threads>"""
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


def load(folder):
    """Fashion-MNIST's training split as the product feeds it: normalized [N,1,28,28] floats, int64 labels."""
    images = torch.from_numpy(idx(f"{folder}/train-images-idx3-ubyte.gz").copy()).float().div_(255)
    labels = torch.from_numpy(idx(f"{folder}/train-labels-idx1-ubyte.gz").astype(np.int64))
    return ((images - images.mean()) / images.std()).unsqueeze(1), labels


def main():
    folder, model_name, batch, steps, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    torch.set_num_threads(threads)
    torch.manual_seed(42)
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
