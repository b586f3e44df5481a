"""CUDA check: train, evaluate and detect on a GPU, and compare with the CPU.

    python -m benchmarks.cuda_check [--out DIR]

On a small synthetic dataset: trains 3 epochs with ``--device cuda`` (mixed precision),
evaluates the checkpoint on CUDA and on the CPU (the two mAPs should agree closely:
the same weights, float32 inference on both), runs ``detect --features`` with the
checkpoint on CUDA, and times the THUMOS14-preset model (batch 16, 128 snippets, 20
classes) forward and forward+backward. Prints one ``key: value`` line per number.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device")
    from psftr_core.evaluation.protocol import evaluate_checkpoint
    from psftr_core.train.run import TrainRequest, train
    from psftr_core.infer.detect import detect
    from psftr_core.data.synthetic import SyntheticConfig, generate_dataset

    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.out or tmp)
        data = generate_dataset(root / "data", SyntheticConfig(feature_dim=256, num_train_videos=60,
                                                               num_test_videos=30))
        started = time.time()
        (result,) = train(TrainRequest(
            dataset=str(data), ratio="75_25", split_index=0, output=root / "run", epochs=3, seed=0,
            device="cuda", overrides=["model.hidden_dim=128", "model.num_groups=8", "model.dim_feedforward=256",
                                      "model.num_queries=20", "train.lr=1e-3"]))
        print(f"train_seconds_3_epochs_cuda: {time.time() - started:.1f}")
        print(f"train_losses: {[round(x, 4) for x in result.epoch_losses]}")
        on_gpu = evaluate_checkpoint(result.checkpoint, str(data), "75_25", 0, device="cuda")
        on_cpu = evaluate_checkpoint(result.checkpoint, str(data), "75_25", 0, device="cpu")
        print(f"unseen_mAP_cuda: {100 * on_gpu.result.average:.3f}")
        print(f"unseen_mAP_cpu: {100 * on_cpu.result.average:.3f}")
        print(f"cuda_cpu_abs_diff: {100 * abs(on_gpu.result.average - on_cpu.result.average):.4f}")
        report = detect([], ["group0 action00", "group1 action01"], features_dir=data, checkpoint=result.checkpoint,
                        device="cuda", threshold=0.0)
        print(f"detect_cuda_segments: {len(report.segments)} ({report.details})")

    from psftr_core.config import preset
    from psftr_core.model import PSFTR

    model = PSFTR(preset("thumos14").model).cuda()
    features = torch.randn(16, 128, 512, device="cuda")
    text = torch.randn(20, 512, device="cuda")

    def timed(fn, iters: int = 10) -> float:
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        t0 = time.time()
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
        return (time.time() - t0) / iters

    def forward() -> None:
        with torch.no_grad():
            model.eval()
            model(features, None, text)

    def forward_backward() -> None:
        model.train()
        with torch.autocast("cuda", dtype=torch.float16):
            out = model(features, None, text)
        (out["pred_logits"].float().mean() + out["pred_segments"].float().mean()).backward()

    print(f"thumos14_forward_ms: {1000 * timed(forward):.1f}")
    print(f"thumos14_forward_backward_amp_ms: {1000 * timed(forward_backward):.1f}")


if __name__ == "__main__":
    main()
