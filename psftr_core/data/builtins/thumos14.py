"""THUMOS14, as released with CLIP features by GAP (the protocol of its data pipeline).

20 classes (package data); train on subset ``val``, test on ``test``; ``Ambiguous``
instances dropped; five test videos excluded; instances no longer than one snippet
(8 frames at the video's fps) dropped; one feature per 8 frames at native fps. The
annotations and GAP's 8-frame feature info ship with psftr, so a data root needs only
the features.
"""

from __future__ import annotations

from psftr_core.data.dataset_kind import BuiltinDataset, BuiltinLayout, ClipProvenance, LoadingRules, PackagedSplits

# The published zero-shot pipelines skip these THUMOS14 test videos (wrong or
# unusable annotations, e.g. segments past the end of video_test_0000814).
THUMOS14_EXCLUDED_VIDEOS = (
    "video_test_0000270",
    "video_test_0001292",
    "video_test_0001496",
    "video_test_0000814",
    "video_test_0000504",
)

THUMOS14 = BuiltinDataset(
    name="thumos14",
    layout=BuiltinLayout(
        feature_dirs=("features", "CLIP_feature_8frame"),
        annotation_files=("Thumos14_annotations.json", "annotations.json"),
        packaged_annotations="thumos14_annotations.json",
        info_files=("feature_info.json", "Thumos14_info_8frame.json"),
        packaged_info="thumos14_feature_info_8frame.json",
        classes_file="thumos14_classes.txt",
        subset_pairs=(("val", "test"),),
        feature_source="the published GAP release or `psftr extract`",
    ),
    rules=LoadingRules(
        ignore_labels=frozenset({"Ambiguous"}),
        excluded_videos=frozenset(THUMOS14_EXCLUDED_VIDEOS),
        min_instance_frames=8,
        frames_per_feature=8,
    ),
    standard_splits=PackagedSplits("THUMOS14"),
    tious=(0.3, 0.4, 0.5, 0.6, 0.7),
    clip=ClipProvenance("ViT-B-16", "openai", "tag:openai"),  # GAP's release
    preset={},  # the default config holds THUMOS14's values of Table 5
)
