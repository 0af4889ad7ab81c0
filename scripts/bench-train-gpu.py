#!/usr/bin/env python3
"""The HF transformers + torch side of scripts/bench-train-gpu.ts: training steps
(forward, cross-entropy, backward, AdamW step) of PerceiverForImageClassificationFourier
with the released ImageNet Fourier configuration (deepmind/vision-perceiver-fourier,
written out below: no download), random weights, in float32 and with torch.autocast
bfloat16 (float32 weights and optimizer, as mixed-precision training runs).

  python3 scripts/bench-train-gpu.py [--batch 8] [--steps 5] [--warmup 2]
      [--precision float32|bfloat16|both] [--attention-dropout 0] [--device cuda|cpu] [--tiny]
      [--profile]

Progress goes to stderr; the last stdout line is one JSON object. Without transformers,
or without CUDA on --device cuda, that object is {"skipped": REASON} and the exit
status 0, so the TypeScript side can report why. float32 matmuls run without TF32, as
the engine's float32 does. --device cpu --tiny is a functional dry run. --profile
prints torch.profiler's table of one more step per precision to stderr.
"""
import argparse
import json
import sys
import time

# deepmind/vision-perceiver-fourier's config.json (the fields PerceiverConfig reads).
IMAGENET_FOURIER = dict(
    d_latents=1024,
    num_latents=512,
    num_blocks=8,
    num_self_attends_per_block=6,
    num_self_attention_heads=8,
    num_cross_attention_heads=1,
    qk_channels=None,
    v_channels=None,
    cross_attention_shape_for_attention="kv",
    self_attention_widening_factor=1,
    cross_attention_widening_factor=1,
    d_model=261,
    image_size=224,
    hidden_act="gelu",
    use_query_residual=True,
    num_labels=1000,
    initializer_range=0.02,
    attention_probs_dropout_prob=0.1,
)
# A small model with the same classes (the Fourier preprocessor fixes d_model = 261),
# for a dry run on a CPU.
TINY = dict(d_latents=64, num_latents=32, num_blocks=1, num_self_attends_per_block=2, num_self_attention_heads=2, image_size=32, num_labels=10)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def skipped(reason):
    print(json.dumps({"skipped": reason}))
    sys.exit(0)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=8, help="images per step (default 8, fits an 80 GB GPU in float32)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps (default 5); the median is reported")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (default 2)")
    ap.add_argument("--precision", choices=["float32", "bfloat16", "both"], default="both")
    ap.add_argument("--attention-dropout", type=float, default=0.0,
                    help="attention_probs_dropout_prob (default 0, the reference's ImageNet training; the released config says 0.1)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--profile", action="store_true", help="profile one more step per precision (stderr)")
    ap.add_argument("--tiny", action="store_true", help="a small model on 32x32 images (dry run)")
    a = ap.parse_args(argv)
    if a.batch < 1 or a.steps < 1 or a.warmup < 0:
        ap.error("--batch and --steps must be >= 1, --warmup >= 0")
    if not 0 <= a.attention_dropout < 1:
        ap.error("--attention-dropout must be in [0, 1)")
    return a


def main(argv):
    a = parse_args(argv)
    try:
        import torch
    except Exception as e:
        skipped(f"torch is not importable by {sys.executable}: {e!r}")
    try:
        import transformers
        from transformers import PerceiverConfig, PerceiverForImageClassificationFourier
    except Exception as e:
        skipped(f"transformers is not importable by {sys.executable} (torch {torch.__version__}): {e!r}")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        skipped(f"torch {torch.__version__} sees no CUDA device (--device {a.device})")
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)

    fields = {**IMAGENET_FOURIER, **(TINY if a.tiny else {}), "attention_probs_dropout_prob": a.attention_dropout}
    conf = PerceiverConfig(**fields)
    model = PerceiverForImageClassificationFourier(conf).to(dev).train()
    params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=a.weight_decay)
    size = fields["image_size"]
    x = torch.randn(a.batch, 3, size, size, device=dev)
    y = torch.arange(a.batch, device=dev) % fields["num_labels"]
    F = torch.nn.functional
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def run(precision):
        bf16 = precision == "bfloat16"

        def step():
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
                logits = model(inputs=x).logits
            loss = F.cross_entropy(logits.float(), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss

        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        for _ in range(a.warmup):
            step()
        sync()
        times = []
        for _ in range(a.steps):
            t0 = time.perf_counter()
            loss = step()
            sync()
            times.append(time.perf_counter() - t0)
        times.sort()
        ms = times[len(times) // 2] * 1000
        row = {"precision": precision, "ms_per_step": ms, "images_per_s": a.batch * 1000 / ms, "loss": float(loss)}
        if dev.type == "cuda":
            row["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
            # Held from the driver by the caching allocator: what our reserved figure measures too.
            row["reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
        log(f"torch {precision}: {ms:.1f} ms/step, {row['images_per_s']:.1f} images/s")
        if a.profile:
            from torch.profiler import ProfilerActivity, profile
            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
            with profile(activities=acts) as prof:
                step()
                sync()
            key = "self_cpu_time_total"
            if dev.type == "cuda":
                # torch 2.4 renamed the CUDA columns to "device"; older versions keep "cuda".
                names = {k for e in prof.key_averages() for k in dir(e)}
                key = "self_device_time_total" if "self_device_time_total" in names else "self_cuda_time_total"
            log(f"torch {precision} step profile (sorted by {key}):")
            log(prof.key_averages().table(sort_by=key, row_limit=40, max_name_column_width=60))
        return row

    out = {
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "params": params,
        "batch": a.batch,
        "steps": a.steps,
        "tiny": a.tiny,
        "attention_probs_dropout_prob": a.attention_dropout,
        "results": [],
    }
    for precision in (["float32", "bfloat16"] if a.precision == "both" else [a.precision]):
        try:
            out["results"].append(run(precision))
        except Exception as e:  # out of memory at a large batch: reported, the other precision still runs
            out["results"].append({"precision": precision, "error": repr(e)[:300]})
            opt.zero_grad(set_to_none=True)
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
