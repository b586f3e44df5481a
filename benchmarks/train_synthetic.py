"""Train PSFTR on a generated synthetic dataset on CPU and report seen / unseen mAP.

The synthetic generator (``psftr_core.data.synthetic``) plants learnable structure: a shared
text→visual map, a class-agnostic actionness direction and class-like backgrounds. A
model trained on the seen classes should localize them well (high seen mAP on the test
videos) and transfer to the unseen classes (clearly above the untrained model, which is
chance level).

    python -m benchmarks.train_synthetic --out /tmp/psftr_synth --epochs 10

Prints one JSON object: training time, loss per epoch, and seen / unseen mAP (THUMOS
thresholds 0.3-0.7 and their average) on the test videos of

- the trained model with its default inference (chosen by the run's calibration on
  held-out seen classes; ``--no-calibrate``: the config's, ``inference.scoring=contrast``), and
  with the paper's (``scoring=model``, ``nms=cross_window``: learned logits mixed with
  ROI-CLIP logits by ``model.roi_logit_weight``), with learned logits only, and with ROI
  weights 0.8 / 1.0;
- the trained model with every class (seen + unseen) in the vocabulary, AP of the
  seen / unseen classes (generalized zero-shot: actions of the other group can take
  their own label instead of being forced onto a class of the scored group);
- the untrained (initial) model, default inference: a "no training" reference;
- the training-free localizer (``psftr_core.infer.localizer``);
- a chance detector: 100 random segments per video with random labels and scores.

``--set`` overrides config keys like ``psftr train``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

from benchmarks.zero_shot import SMALL_MODEL, add_synthetic_run_arguments  # the benchmark's model, so the numbers compare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_synthetic_run_arguments(parser, out="/tmp/psftr_synth_bench", feature_dim=512)
    parser.add_argument("--lr-drop", type=int, default=None, help="epoch of the ×0.1 lr drop (default: last-1)")
    parser.add_argument("--no-calibrate", action="store_true", help="skip the calibration (psftr train --no-calibrate)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from psftr_core.evaluation.protocol import default_tious, evaluate_model
    from psftr_core.runtime.inputs import class_text
    from psftr_core.train.run import TrainRequest, train
    from psftr_core.runtime.checkpoint import build_model, load_checkpoint
    from psftr_core.data.datasets import load_dataset
    from psftr_core.data.splits import Split
    from psftr_core.data.synthetic import SyntheticConfig, generate_dataset

    out = Path(args.out)
    shutil.rmtree(out / "run", ignore_errors=True)
    data_dir = generate_dataset(out / "data", SyntheticConfig(
        feature_dim=args.feature_dim, num_train_videos=args.train_videos, num_test_videos=args.test_videos))
    dataset = load_dataset(data_dir)
    drop = args.lr_drop if args.lr_drop is not None else max(1, args.epochs - 1)
    overrides = list(SMALL_MODEL) + [f"train.lr_drop_epochs={drop}"] + args.overrides
    request = TrainRequest(dataset=str(data_dir), ratio=args.split, split_index=args.split_index,
                           output=out / "run", epochs=args.epochs, seed=args.seed, overrides=overrides, device="cpu",
                           calibrate=not args.no_calibrate)
    started = time.time()
    (result,) = train(request)
    train_seconds = time.time() - started

    split = dataset.split(args.split, args.split_index)
    ckpt = load_checkpoint(result.checkpoint)
    trained, cfg = build_model(ckpt)
    torch.manual_seed(args.seed)
    from psftr_core.model import PSFTR

    untrained = PSFTR(cfg.model).eval()
    tower = None  # the dataset's text_embeddings

    import dataclasses

    def score(model, classes, **inference):
        """mAP of ``classes`` with the vocabulary = ``classes``; ``inference`` overrides cfg.inference."""
        view = Split(split.ratio, split.index, seen=[], unseen=list(classes))
        used = dataclasses.replace(cfg, inference=dataclasses.replace(cfg.inference, **inference))
        t0 = time.time()
        res = evaluate_model(model, used, dataset, view, tower, "cpu", default_tious("thumos14"))
        return {"mAP": [round(100 * v, 2) for v in res.mAP], "average": round(100 * res.average, 2),
                "seconds": round(time.time() - t0, 1)}

    from psftr_core.infer.localizer import localize
    from psftr_core.evaluation.detection_map import evaluate_detections

    def score_predictions(predictions, classes):
        view = Split(split.ratio, split.index, seen=[], unseen=list(classes))
        res = evaluate_detections(dataset.ground_truth(view), predictions, tious=default_tious("thumos14"),
                                  classes=list(classes))
        return {"mAP": [round(100 * v, 2) for v in res.mAP], "average": round(100 * res.average, 2)}

    def baseline(classes):
        view = Split(split.ratio, split.index, seen=[], unseen=list(classes))
        text = class_text(dataset, classes, tower).numpy()
        preds = {}
        for video in dataset.eval_videos(view):
            feats = dataset.load_features(video.video_id)
            preds[video.video_id] = localize(feats, dataset.snippet_times(video.video_id), text, list(classes),
                                             duration=video.duration)
        return score_predictions(preds, classes)

    def chance(classes):
        import numpy as np

        rng = np.random.default_rng(0)
        view = Split(split.ratio, split.index, seen=[], unseen=list(classes))
        preds = {}
        for video in dataset.eval_videos(view):
            starts = rng.uniform(0, video.duration, 100)
            lengths = np.exp(rng.uniform(np.log(2.0), np.log(30.0), 100))
            preds[video.video_id] = [
                {"segment": [float(s), float(min(s + l, video.duration))], "label": str(rng.choice(classes)),
                 "score": float(rng.random())} for s, l in zip(starts, lengths)]
        return score_predictions(preds, classes)

    from psftr_core.data.windows import WindowDataset, windowing_from_config
    from psftr_core.infer.predict import predict_dataset

    all_classes = list(dataset.classes)
    all_text = class_text(dataset, all_classes, tower)

    def score_full_vocabulary(model, classes):
        """Vocabulary = every class (seen + unseen); AP of ``classes`` only."""
        view = Split(split.ratio, split.index, seen=[], unseen=list(classes))
        windows = WindowDataset(dataset, dataset.eval_videos(view), all_classes, windowing_from_config(cfg.data),
                                training=False)
        preds = predict_dataset(model, windows, all_text, inference=cfg.inference)
        return score_predictions(preds, classes)

    PAPER = {"scoring": "model", "contrast_weight": None, "roi_weight": None, "nms": "cross_window",
             "method": "psftr"}
    learned_only = PSFTR(dataclasses.replace(cfg.model, use_roi_logits=False)).eval()
    learned_only.load_state_dict(trained.state_dict())

    def with_roi_weight(weight):
        model = PSFTR(dataclasses.replace(cfg.model, use_roi_logits=True, roi_logit_weight=weight)).eval()
        model.load_state_dict(trained.state_dict())
        return model

    report = {
        "dataset": {"feature_dim": args.feature_dim, "train_videos": args.train_videos,
                    "test_videos": args.test_videos, "split": f"{args.split}/{args.split_index}",
                    "seen": len(split.seen), "unseen": len(split.unseen)},
        "overrides": overrides,
        "epochs": args.epochs,
        "train_seconds": round(train_seconds, 1),
        "epoch_losses": [round(v, 4) for v in result.epoch_losses],
        "calibration": (ckpt.get("calibration") or {}).get("chosen"),
        "trained": {"seen": score(trained, split.seen), "unseen": score(trained, split.unseen)},
        "trained_paper_inference": {"seen": score(trained, split.seen, **PAPER),
                                    "unseen": score(trained, split.unseen, **PAPER)},
        "trained_paper_inference_learned_logits_only": {"seen": score(learned_only, split.seen, **PAPER),
                                                        "unseen": score(learned_only, split.unseen, **PAPER)},
        **{f"trained_paper_inference_roi_weight_{w}": {"seen": score(with_roi_weight(w), split.seen, **PAPER),
                                                        "unseen": score(with_roi_weight(w), split.unseen, **PAPER)}
           for w in (0.8, 1.0)},
        "trained_full_vocabulary": {"seen": score_full_vocabulary(trained, split.seen),
                                    "unseen": score_full_vocabulary(trained, split.unseen)},
        "untrained": {"seen": score(untrained, split.seen), "unseen": score(untrained, split.unseen)},
        "training_free_baseline": {"seen": baseline(split.seen), "unseen": baseline(split.unseen)},
        "chance": {"seen": chance(split.seen), "unseen": chance(split.unseen)},
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
