"""Regenerate the embedded offline demo dataset in ``examples/demo/``.

    python examples/make_demo.py            # rewrites examples/demo/
    python examples/make_demo.py OUT_DIR    # writes a copy elsewhere
    python examples/make_demo.py --docs     # and docs/sample_segments.csv, timeline_example.png

The demo is a small synthetic CLIP-like feature dataset (``psftr_core.data.synthetic``):
18 videos of 30-60 s (12 "training", 6 "validation"), 12 classes in 4 related groups,
256-dimensional features at 3.75 features/s, with its text embeddings, in an easier
setting than the benchmark defaults (see ``demo_config``), so that

    psftr detect --features examples/demo --actions-file examples/demo/actions.txt

runs without CLIP weights, videos or network. The class names are readable labels for
synthetic classes (the vectors are random, not CLIP's): only names present in
``text_embeddings.npz`` can be detected on this data. Deterministic: the same seed gives
byte-identical files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from psftr_core.io.atomic import write_text
from psftr_core.data.synthetic import SyntheticConfig, generate_dataset

# Class k belongs to group k % 4 (see SyntheticConfig.class_names); related classes share
# a group, so their texts are related too.
DEMO_NAMES = [
    "diving", "high jump", "javelin throw", "basketball dunk",
    "swimming", "long jump", "shot put", "volleyball spike",
    "rowing", "pole vault", "hammer throw", "tennis serve",
]


class DemoConfig(SyntheticConfig):
    """The synthetic generator with readable class names instead of ``group<g> action<k>``."""

    def class_names(self) -> list[str]:
        return list(DEMO_NAMES[: self.num_classes])


def demo_config() -> DemoConfig:
    """Small and easier than the benchmark defaults (less scene context, fewer class-like
    backgrounds, less noise), so the training-free localizer's output is readable."""
    return DemoConfig(
        seed=7,
        name="psftr-demo",
        num_classes=len(DEMO_NAMES),
        num_groups=4,
        feature_dim=256,
        num_train_videos=12,
        num_test_videos=6,
        video_seconds=(30.0, 60.0),
        scene_weight=0.2,
        scene_class_likeness=0.3,
        background_class_likeness=0.3,
        noise_weight=0.3,
    )


def make_demo(out_dir: str | Path) -> Path:
    """Write the demo dataset and its ``actions.txt`` into ``out_dir``; returns the folder."""
    out = generate_dataset(out_dir, demo_config())
    header = "# Actions of the psftr demo dataset (one per line; '#' starts a comment line)\n"
    write_text(out / "actions.txt", header + "\n".join(DEMO_NAMES) + "\n")
    return out


DOC_VIDEOS = [f"synth_test_{i:04d}" for i in range(6)]
DOC_TIMELINE_VIDEO = "synth_test_0002"


def make_docs_samples(demo: str | Path, docs: str | Path) -> None:
    """Write ``docs/sample_segments.csv``, ``docs/timeline_example.png`` and the CSV excerpt
    in ``docs/detect.md``: the output of

        psftr detect --features examples/demo --actions-file examples/demo/actions.txt \
            synth_test_0000 ... synth_test_0005 -o docs/sample_segments.csv --timeline DIR

    (the timeline of ``synth_test_0002``)."""
    import shutil
    import tempfile

    from psftr_core.infer.detect import detect
    from psftr_core.io.export import write_results_csv
    from psftr_core.io.timeline import write_timelines
    from psftr_core.data.vocabulary import parse_vocabulary

    demo, docs = Path(demo), Path(docs)
    report = detect(DOC_VIDEOS, parse_vocabulary(None, demo / "actions.txt"), features_dir=demo)
    write_results_csv(docs / "sample_segments.csv", report.results())
    with tempfile.TemporaryDirectory() as tmp:
        written = write_timelines(tmp, report.results(), report.actions, report.durations())
        shutil.copyfile(written[DOC_TIMELINE_VIDEO], docs / "timeline_example.png")
    # The excerpt in docs/detect.md: the header and first 8 rows, in the fence after "Sample output".
    page = docs / "detect.md"
    if page.is_file():
        text = page.read_text(encoding="utf-8")
        head = (docs / "sample_segments.csv").read_text(encoding="utf-8").replace("\r\n", "\n").splitlines()[:9]
        start = text.index("```text\n", text.index("Sample output")) + len("```text\n")
        end = text.index("```", start)
        write_text(page, text[:start] + "\n".join(head) + "\n" + text[end:])


if __name__ == "__main__":
    # python examples/make_demo.py [OUT_DIR] [--docs]: --docs also rewrites the samples in docs/.
    args = [a for a in sys.argv[1:] if a != "--docs"]
    here = Path(__file__).resolve().parent
    target = Path(args[0]) if args else here / "demo"
    print(make_demo(target))
    if "--docs" in sys.argv[1:]:
        make_docs_samples(target, here.parent / "docs")
        print(here.parent / "docs" / "sample_segments.csv", here.parent / "docs" / "timeline_example.png")
