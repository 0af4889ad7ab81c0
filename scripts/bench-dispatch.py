# The PyTorch side of scripts/bench-dispatch.ts: the cost of one tiny eager op
# (4x8 float32), the overhead every op of a model pays whatever its size, on the CPU
# or a GPU. Prints one JSON line of microseconds per op.
#   python3 bench-dispatch.py OPS THREADS [cpu|cuda]
import json, sys, time
import torch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else 2)
device = sys.argv[3] if len(sys.argv) > 3 else "cpu"
a, b = torch.randn(4, 8, device=device), torch.randn(4, 8, device=device)


def sync():
    if device != "cpu":
        torch.cuda.synchronize()


def best(fn, reps=5):
    fn()
    sync()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append((time.perf_counter() - t0) * 1e6 / n)
    return sorted(out)[len(out) // 2]


def chain():
    c = a
    for _ in range(n):
        c = torch.add(c, b)
    c.sum(0).sum(0).item()


def roundtrip():
    for _ in range(n // 10):
        torch.add(a, b).sum(0).sum(0).item()


w = torch.randn(4, 8, device=device, requires_grad=True)


def grad_chain():
    # n ops forward (mul and add alternating), then their backward.
    c = a
    for _ in range(n // 2):
        c = torch.add(torch.mul(c, w), b)
    c.sum(0).sum(0).backward()
    w.grad = None


with torch.no_grad():
    chain_us = best(chain)
rt_us = best(roundtrip) * 10 / 3  # three ops (add, sum, sum) per round trip
grad_us = best(grad_chain)
print(json.dumps({"chain_us": chain_us, "roundtrip_us": rt_us, "grad_us": grad_us, "torch": torch.__version__, "device": device}))
