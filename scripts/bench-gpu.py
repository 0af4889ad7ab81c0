#!/usr/bin/env python3
"""The PyTorch side of scripts/bench-gpu.ts: the same measurements with torch on the
same GPU, printed as one JSON object on stdout (progress on stderr).

  python3 scripts/bench-gpu.py --config CONFIG.json

CONFIG.json (written by bench-gpu.ts) lists the GEMM sizes, the attention shapes and
the model configurations (HF PerceiverConfig fields) with their batch sizes. float32
matmuls run without TF32 (as the engine does by default). Models are HF's
transformers classes with random weights (no download), eval mode, no_grad.
"""
import json
import sys
import time

import torch


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def timed(fn, warmup, runs, inner=1, warm_ms=0):
    """Seconds per call: the median of `runs` samples of `inner` calls and one
    synchronisation, after `warmup` calls and more until warm_ms has passed
    (bench-gpu.ts's timeIt, which says why GEMMs take 5 and 300 ms, attention 5)."""
    w0 = time.perf_counter()
    i = 0
    while i < warmup or (time.perf_counter() - w0) * 1e3 < warm_ms:
        fn()
        if i >= warmup:
            torch.cuda.synchronize()
        i += 1
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) / inner)
    times.sort()
    return times[len(times) // 2]


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def main():
    cfg = json.load(open(sys.argv[sys.argv.index("--config") + 1]))
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "gemm": [], "attention": [], "models": []}
    try:
        import transformers
        out["transformers"] = transformers.__version__
    except Exception as e:  # reported, not fatal: GEMM and attention still run
        transformers = None
        out["transformers_error"] = repr(e)

    x = torch.randn(1, device=dev)
    round_trip = timed(lambda: x + 1, 10, 50)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(1000):
        x + 1
    torch.cuda.synchronize()
    out["latency"] = {"round_trip": round_trip, "per_op": (time.perf_counter() - t0) / 1000}
    log(f"torch latency {out['latency']}")

    for g in cfg["gemm"]:
        m, n, k, dt = g["m"], g["n"], g["k"], DTYPES[g["dtype"]]
        a = torch.randn(m, k, device=dev, dtype=dt)
        b = torch.randn(k, n, device=dev, dtype=dt)
        s = timed(lambda: torch.matmul(a, b), 3, 10, 5, 300)
        out["gemm"].append({**g, "seconds": s, "tflops": 2 * m * n * k / s / 1e12})
        log(f"torch gemm {g}: {2 * m * n * k / s / 1e12:.1f} TFLOP/s")

    F = torch.nn.functional
    for at in cfg["attention"]:
        b, nq, nk, h, d, dt = at["batch"], at["nq"], at["nk"], at["heads"], at["dim"], DTYPES[at["dtype"]]
        q = torch.randn(b, h, nq, d, device=dev, dtype=dt)
        k = torch.randn(b, h, nk, d, device=dev, dtype=dt)
        v = k if at.get("kv") else torch.randn(b, h, nk, d, device=dev, dtype=dt)
        row = dict(at)
        try:
            row["sdpa_seconds"] = timed(lambda: F.scaled_dot_product_attention(q, k, v), 2, 5, 5)
        except Exception as e:  # some backends refuse head dims like 261
            row["sdpa_error"] = str(e).splitlines()[0][:200]
        try:
            scale = d ** -0.5
            row["matmul_softmax_seconds"] = timed(lambda: torch.softmax((q @ k.transpose(-1, -2)) * scale, -1) @ v, 2, 5, 5)
        except Exception as e:
            row["matmul_softmax_error"] = str(e).splitlines()[0][:200]
        out["attention"].append(row)
        log(f"torch attention {at}: {row}")

    if transformers is not None:
        from transformers import PerceiverConfig
        for mdl in cfg["models"]:
            cls = getattr(transformers, mdl["config"]["architectures"][0])
            conf = PerceiverConfig(**{k: v for k, v in mdl["config"].items() if k != "architectures"})
            dt = DTYPES[mdl["dtype"]]
            try:
                model = cls(conf).to(dev, dt).eval()
            except Exception as e:
                out["models"].append({**{k: v for k, v in mdl.items() if k != "config"}, "error": repr(e)[:300]})
                continue
            for batch in mdl["batches"]:
                if mdl["input"] == "pixels":
                    x = torch.randn(batch, 3, 224, 224, device=dev, dtype=dt)
                else:
                    x = torch.randint(6, 262, (batch, mdl["config"]["max_position_embeddings"]), device=dev)
                row = {"name": mdl["name"], "dtype": mdl["dtype"], "batch": batch}
                try:
                    with torch.no_grad():
                        s = timed(lambda: model(inputs=x), 1, 3)
                    row.update(seconds=s, per_second=batch / s)
                except Exception as e:
                    row["error"] = repr(e)[:300]
                out["models"].append(row)
                log(f"torch model {row}")
            del model
            torch.cuda.empty_cache()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
