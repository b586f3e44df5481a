"""Parameter count and forward / forward+backward time of PSFTR.

Default workload: THUMOS14 preset, batch 16, 128 snippets, 20 classes, D = 512.

    python -m benchmarks.model_speed [--device cpu|cuda|auto] [--iters 5] [--warmup 2]
                                     [--preset thumos14|anet] [--batch 16] [--snippets 128]
                                     [--classes 20] [--threads N] [--dtype float32|bfloat16]
                                     [--set key=value ...]

Prints one ``key: value`` line per number on stdout. Times are means over ``--iters``
iterations after ``--warmup`` untimed ones: "forward" is inference (eval mode, no
gradient, including ROI-logit mixing); "forward+backward" is a training step without
the optimizer (train mode, a loss touching every output). ``--dtype bfloat16`` casts the
model and its inputs (weights, not autocast: on CPU autocast is slower than float32) and
prints how far its outputs are from float32's, to decide whether the model itself gains
from bfloat16 (docs/training.md).
"""

from __future__ import annotations

import argparse
import time

import torch

from psftr_core.config import apply_overrides, preset, preset_names
from psftr_core.infer.scoring import PostProcess
from psftr_core.model import PSFTR


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, iters: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--preset", default="thumos14", choices=preset_names())
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--snippets", type=int, default=128)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (CPU)")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="model.* overrides of the preset, e.g. model.hidden_dim=128")
    args = parser.parse_args()

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda requested but CUDA is not available")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)

    cfg = apply_overrides(preset(args.preset), args.overrides).model
    dtype = getattr(torch, args.dtype)
    model = PSFTR(cfg).to(device)
    features = torch.randn(args.batch, args.snippets, cfg.feature_dim, device=device)
    mask = torch.zeros(args.batch, args.snippets, dtype=torch.bool, device=device)
    text = torch.randn(args.classes, cfg.text_dim, device=device)
    if dtype != torch.float32:
        model.eval()
        with torch.no_grad():
            reference = model(features, mask, text)["pred_logits"]
        model = model.to(dtype)
        features, text = features.to(dtype), text.to(dtype)
        with torch.no_grad():
            cast = model(features, mask, text)["pred_logits"].float()
        print(f"pred_logits max abs difference to float32: {(cast - reference).abs().max():.4f} "
              f"(float32 range {reference.min():.2f} to {reference.max():.2f})")

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            out = model(features, mask, text)
            PostProcess.from_config(cfg).class_scores(out, features, mask, text)

    def forward_backward() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        out = model(features, mask, text)
        loss = out["saliency_logits"].mean()
        for layer in [out] + out["aux_outputs"]:
            loss = loss + layer["pred_logits"].mean() + layer["pred_segments"].mean()
            loss = loss + layer["pred_actionness"].mean()
        loss.backward()

    params = sum(p.numel() for p in model.parameters())
    print(
        f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, "
        f"{torch.get_num_threads()} threads)"
    )
    print(
        f"workload: preset={args.preset} batch={args.batch} snippets={args.snippets} "
        f"classes={args.classes} D={cfg.feature_dim} hidden={cfg.hidden_dim} dtype={args.dtype} "
        f"enc_layers={cfg.enc_layers} dec_layers={cfg.dec_layers} queries={cfg.num_queries}"
    )
    print(f"parameters: {params} ({params / 1e6:.2f} M)")
    fwd = _timed(forward, args.iters, args.warmup, device)
    print(f"forward_ms: {fwd * 1e3:.1f}")
    fwd_bwd = _timed(forward_backward, args.iters, args.warmup, device)
    print(f"forward_backward_ms: {fwd_bwd * 1e3:.1f}")
    if device.type == "cuda":
        print(f"cuda_max_memory_mb: {torch.cuda.max_memory_allocated(device) / 2**20:.0f}")


if __name__ == "__main__":
    main()
