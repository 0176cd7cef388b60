"""gloo's ring all-reduce (PyTorch's torch.distributed on CPU), the baseline for scripts/bench.sh.

Usage: python3 gloo_allreduce.py RANK WORLD PORT MIB[,MIB...] REPS [float32|float16]
Rank 0 prints one JSON line per size: median seconds per all-reduce and busbw (as NCCL's tests define it),
in float32-equivalent bytes: with float16 the same number of values, so half the bytes travel.
Where gloo refuses float16 rank 0 prints nothing for it.
"""
import json, os, resource, sys, time

import torch
import torch.distributed as dist

rank, world, port = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
mibs = sys.argv[4].split(",")   # fractions allowed (0.2); rounded down to whole floats, as orchestrator-bench does
reps = int(sys.argv[5])
dtype = {"float32": torch.float32, "float16": torch.float16}[sys.argv[6] if len(sys.argv) > 6 else "float32"]
torch.set_num_threads(1)
os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
for mib in mibs:
    nbytes = int(float(mib) * 1024 * 1024) // 4 * 4
    data = torch.full((nbytes // 4,), float(rank + 1), dtype=dtype)
    times = []
    for r in range(reps + 2):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(data)
        if r >= 2:
            times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    if rank == 0:
        busbw = nbytes / median * 2 * (world - 1) / world / 1e9
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        print(json.dumps({"transport": "gloo", "dtype": str(dtype).replace("torch.", ""), "mib": mib, "world": world, "bytes": nbytes, "seconds": round(median, 5), "busbwGBs": round(busbw, 3), "rssMiB": rss}), flush=True)
dist.destroy_process_group()
