"""ActivityNet1.3, as released with CLIP features by GAP (the protocol of its data pipeline).

200 classes (package data); train on ``train`` (or ``training``), test on ``val`` (or
``validation``); instances of 1 s or less dropped; one feature per 16 frames at native
fps; annotation keys without the ``v_`` prefix of the official file are matched to
``v_<id>.npy`` feature files (and ``v_`` keys to ``<id>.npy``); the video id is the
feature file's name. The annotations are not shipped: a data root needs GAP's or the
official file; GAP's 16-frame feature info is shipped.
"""

from __future__ import annotations

from psftr_core.data.dataset_kind import BuiltinDataset, BuiltinLayout, ClipProvenance, LoadingRules, PackagedSplits

ANET = BuiltinDataset(
    name="anet",
    aliases=("activitynet", "activitynet13"),
    layout=BuiltinLayout(
        feature_dirs=("features", "CLIP_feature"),
        annotation_files=("ActivityNet13_annotations.json", "activity_net.v1-3.min.json", "annotations.json"),
        annotation_origins=("GAP's release", "official ActivityNet 1.3"),
        info_files=("feature_info.json", "ActivityNet13_info.json"),
        packaged_info="activitynet13_feature_info.json.gz",
        classes_file="activitynet13_classes.txt",
        subset_pairs=(("train", "val"), ("training", "validation")),
        feature_source="the published GAP release or `psftr extract`",
    ),
    rules=LoadingRules(min_instance_seconds=1.0, frames_per_feature=16, v_prefix=True),
    standard_splits=PackagedSplits("ActivityNet"),
    tious=(0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
    clip=ClipProvenance("ViT-B-16", "openai", "tag:openai"),  # GAP's release
    # Table 5; resize_length 128 = slice_size: every video is one window of 128 snippets.
    preset={
        "model": {"dec_layers": 2, "num_queries": 30},
        "train": {"lr": 5e-5, "epochs": 20, "lr_drop_epochs": (16,), "salient_loss_coef": 2.0},
        "data": {"resize_length": 128},
    },
)
