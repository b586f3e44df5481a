"""Outputs of a fixed set of ``psftr`` commands, to compare against a saved copy.

The file ``tests/data/reference_outputs.json`` was written by this module before the
package was reorganised (``python tests/reference_outputs.py --write``); the test in
``tests/test_reference_outputs.py`` runs the same commands on the current code and
checks that the predictions, losses and mAP are unchanged. Commands go through the CLI
(a fixed contract), so the check does not depend on where library code lives.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAVED = REPO / "tests" / "resources" / "reference_outputs.json"

TINY_MODEL = [
    "model.hidden_dim=32", "model.num_heads=4", "model.num_groups=8", "model.dim_feedforward=64",
    "model.enc_layers=1", "model.dec_layers=2", "model.num_queries=8", "model.enc_points=2",
    "model.dec_points=2", "model.roi_size=4", "train.batch_size=4", "train.lr=3e-4", "data.slice_size=64",
    # The saved outputs predate the visual→text map and text-to-vision's default off: they pin the
    # paper's architecture, and the calibration's held-out argmax (margins 0) where they calibrate.
    "model.use_visual_text_map=false", "model.use_text_to_vision=true",
    "train.calibration_prior_margin=0", "train.calibration_localizer_margin=0",
]


def psftr(*args: str) -> str:
    """``psftr ARGS`` in this process (as the console script runs it); returns its stdout."""
    from psftr_cli.main import run

    argv, out, err = sys.argv, io.StringIO(), io.StringIO()
    sys.argv = ["psftr", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    if code != 0:
        raise RuntimeError(f"psftr {' '.join(map(str, args))} exited {code}: {err.getvalue()[-2000:]}")
    return out.getvalue()


def make_synthetic(root: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    from train_helpers import make_tiny_dataset

    return make_tiny_dataset(root, num_splits=1, train_videos=8, test_videos=4)


def collect(work: Path, clip_files=None, video: Path | None = None) -> dict:
    """Run every command under ``work``; return {name: parsed output}."""
    out: dict = {}
    demo = REPO / "examples" / "demo"
    out["detect_demo_localizer"] = json.loads(
        psftr("detect", "--features", demo, "--actions-file", demo / "actions.txt", "--format", "json", "-q",
              "--keep-nested"))  # the saved outputs predate dropping nested segments
    out["evaluate_demo_baseline"] = json.loads(
        psftr("evaluate", "--baseline", "--dataset", demo, "--split", "75_25", "--split-index", "0", "--json"))

    data = make_synthetic(work / "synthetic")
    run = work / "run"
    sets = [x for kv in TINY_MODEL for x in ("--set", kv)]
    # --no-calibrate: the saved outputs predate calibration (the config's own inference settings).
    psftr("train", "--dataset", data, "--split", "75_25", "--split-index", "0", "--output", run, "--epochs", "2",
          "--seed", "0", "--device", "cpu", "--log-every", "1", "--no-calibrate", *sets)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    out["train_losses"] = [{k: v for k, v in m.items() if k not in ("time", "seconds", "elapsed", "wall_s")}
                           for m in metrics if "loss" in m or "losses" in m]
    ckpt = run / "last.pt"
    preds = work / "preds.json"
    out["evaluate_checkpoint"] = json.loads(
        psftr("evaluate", "--checkpoint", ckpt, "--dataset", data, "--split", "75_25", "--split-index", "0",
              "--device", "cpu", "--json", "--save-predictions", preds))
    out["evaluate_checkpoint_predictions"] = json.loads(preds.read_text())
    out["evaluate_checkpoint_paper_inference"] = json.loads(
        psftr("evaluate", "--checkpoint", ckpt, "--dataset", data, "--split", "75_25", "--split-index", "0",
              "--device", "cpu", "--json", "--set", "inference.scoring=model", "--set", "inference.nms=cross_window"))
    classes = json.loads((data / "annotations.json").read_text())["classes"] if (data / "annotations.json").exists() else None
    actions = ",".join(classes[:4]) if classes else "c0,c1"
    out["detect_checkpoint_features"] = json.loads(
        psftr("detect", "--features", data, "--checkpoint", ckpt, "--actions", actions, "--threshold", "0",
              "--top-k", "5", "--format", "json", "--device", "cpu", "-q", "--keep-nested"))
    if clip_files is not None and video is not None:
        out["detect_video_tiny_clip"] = json.loads(
            psftr("detect", video, "--clip-config", clip_files.config, "--clip-pretrained", clip_files.weights,
                  "--actions", "riding a bike,walking,a car", "--threshold", "0", "--format", "json", "--device",
                  "cpu", "--cache-dir", work / "cache", "-q", "--keep-nested"))
    return strip_volatile(out)


VOLATILE = {"time", "seconds", "elapsed", "wall_s", "created", "date", "timestamp", "version", "checkpoint",
            "path", "run_dir", "dataset", "details", "psftr_version"}


def strip_volatile(obj):
    """Drop wall times, versions and absolute paths, which differ between runs."""
    if isinstance(obj, dict):
        return {k: strip_volatile(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [strip_volatile(v) for v in obj]
    return obj


def compare(expected, actual, where: str = "", tol: float = 1e-5) -> list[str]:
    """Differences between two parsed outputs (numbers within ``tol``, relative or absolute)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        problems = [f"{where}: keys {sorted(set(expected) ^ set(actual))}"] if set(expected) != set(actual) else []
        for key in sorted(set(expected) & set(actual)):
            problems += compare(expected[key], actual[key], f"{where}.{key}", tol)
        return problems
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: length {len(expected)} != {len(actual)}"]
        problems = []
        for i, (a, b) in enumerate(zip(expected, actual)):
            problems += compare(a, b, f"{where}[{i}]", tol)
        return problems
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)) and not isinstance(expected, bool):
        if abs(expected - actual) <= tol * max(1.0, abs(expected)):
            return []
        return [f"{where}: {expected} != {actual}"]
    return [] if expected == actual else [f"{where}: {expected!r} != {actual!r}"]


if __name__ == "__main__":
    import os
    import tempfile

    # As under pytest (tests/conftest.py): offline, one torch thread.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from types import SimpleNamespace

    if "--write" not in sys.argv:
        sys.exit("usage: python tests/reference_outputs.py --write  (only before an intended behaviour change)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sys.path.insert(0, str(REPO / "tests"))
        import open_clip
        import torch
        from fixtures_clip import TINY_CLIP_CONFIG, write_video

        config = work / "psftr-tiny-clip.json"
        config.write_text(json.dumps(TINY_CLIP_CONFIG))
        open_clip.add_model_config(config)
        torch.manual_seed(0)
        model = open_clip.create_model("psftr-tiny-clip", pretrained=None)
        torch.save(model.state_dict(), work / "psftr-tiny-clip.pt")
        clip_files = SimpleNamespace(config=config, weights=work / "psftr-tiny-clip.pt")
        video = write_video(work / "clip.mp4", 60)
        result = collect(work, clip_files, video)
    SAVED.parent.mkdir(parents=True, exist_ok=True)
    SAVED.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    print(f"wrote {SAVED} ({SAVED.stat().st_size} bytes)")
