"""The rows of the bad-input matrix (``test_bad_inputs.py``) and the set-ups they use.

A row (:class:`Case`) is one command line on one bad condition, with what the user must
get: the exit code, words that name the culprit on stderr, files that must be unchanged
byte for byte, files that must be written, and an optional known-answer check.

``argv`` is a shell-like template: ``{name}`` is a path made by the row's set-up (or a
standard one, see :class:`Scene`), quoted before the line is split, so names with
spaces or accents stay one argument. ``{clip}`` is the tiny-CLIP flags.

Decisions encoded here (the issue leaves them open):

- An output that cannot be written is bad input: exit 2 before any work, naming the path.
- An unusable cache is not an error: the run goes on without it (exit 0), one warning.
- Inside a folder, a file that is not a regular file (FIFO) or a symlink loop is skipped
  with a note naming it (exit 0 when the rest succeeds). Named on the command line, the
  same path is bad input, like a missing path (exit 2, named).
- A video the decoder returns odd frames for (1-2 px wide) fails alone: exit 3, the
  other videos written.
- Ground truth that ends before 0 s is dropped with a warning, like end <= start.
- Re-extracting some videos with other settings into a folder that holds other videos
  made with the old settings is refused before any work (exit 2, naming them): the
  folder would otherwise stop listing them.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from fixtures_clip import encode_frames

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"
DEMO_TEST_VIDEO = "synth_test_0000"  # a video of the demo's test subset (validation)
DEMO_UNSEEN_VIDEO = "synth_test_0002"  # its first instance is of a class unseen in split 75_25/0

# Text of third-party errors that must never reach the user as is.
RAW_TEXT = ("Traceback", "TypeError", "RuntimeError", "UserWarning", "DECORDError", "av_read_frame",
            "Error reading", "moov atom")
FFMPEG_LOG_LINE = r"\[[\w,]+ @ 0x[0-9a-f]+\]"  # "[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d0...] ..."


@dataclass
class Result:
    """What one command did: exit code, stdout, stderr (fd level, native logs included)."""

    code: int
    out: str
    err: str
    opened_fifo: bool = False  # the command opened a FIFO for reading (it would hang forever)


@dataclass
class Scene:
    """The files of one row: ``paths`` feeds the ``{name}`` templates.

    Standard names: ``tmp`` (this row's folder), ``videos`` (``alpha.mp4`` 50 frames and
    ``beta.mp4`` 36 frames at 25 fps, shared: read-only by convention), ``demo`` (the
    demo feature dataset, read-only), ``cache`` (this row's cache, also $PSFTR_CACHE_DIR).
    """

    tmp: Path
    paths: dict[str, Path]
    fixture: Callable[[str], Any]  # pytest's request.getfixturevalue
    make_immutable: Callable[[Path], None]  # chattr +i on a folder, undone at teardown (skips if unavailable)
    monkeypatch: Any
    env: dict[str, str] = field(default_factory=dict)
    fifos: list[Path] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)  # set-up -> check hand-over

    def new(self, name: str, path: Path) -> Path:
        self.paths[name] = path
        return path

    def __getitem__(self, name: str) -> Path:
        return self.paths[name]


@dataclass(frozen=True)
class Case:
    id: str
    argv: str
    exit: int
    says: Sequence[str] = ()  # stderr contains each (templates)
    never_says: Sequence[str] = ()  # stderr contains none of these (templates)
    setup: Sequence[Callable[[Scene], None]] = ()
    env: dict[str, str] = field(default_factory=dict)  # templates
    intact: Sequence[str] = ()  # files or folders unchanged byte for byte (templates)
    written: Sequence[str] = ()  # files that exist afterwards (templates)
    check: Callable[[Scene, Result], None] | None = None
    fails_today: str | None = None  # issue 13: why the current code fails this row


def expand(template: str, scene: Scene) -> str:
    quoted = {name: shlex.quote(str(path)) for name, path in scene.paths.items()}
    quoted["clip"] = " ".join(shlex.quote(str(a)) for a in clip_flags(scene))
    quoted["train"] = " ".join(shlex.quote(a) for a in tiny_train_flags())
    return template.format_map(quoted)


def expand_argv(template: str, scene: Scene) -> list[str]:
    return shlex.split(expand(template, scene))


def expand_text(template: str, scene: Scene) -> str:
    """A template with plain (unquoted) paths: for messages and file names."""
    return template.format_map({name: str(path) for name, path in scene.paths.items()})


def clip_flags(scene: Scene) -> list[str]:
    clip = scene.fixture("tiny_clip_files")
    return ["--clip-config", str(clip.config), "--clip-pretrained", str(clip.weights), "--device", "cpu"]


def tiny_train_flags() -> list[str]:
    from train_helpers import TINY_OVERRIDES

    flags = ["--epochs", "1", "--device", "cpu", "--seed", "0"]
    for override in TINY_OVERRIDES:
        flags += ["--set", override]
    return flags


# ----------------------------------------------------------------------------- set-ups


def readonly_dir(name: str) -> Callable[[Scene], None]:
    """An empty folder nobody can write into (``chattr +i``: root ignores permissions)."""

    def setup(scene: Scene) -> None:
        path = scene.new(name, scene.tmp / name)
        path.mkdir()
        scene.make_immutable(path)

    return setup


def regular_file(name: str) -> Callable[[Scene], None]:
    def setup(scene: Scene) -> None:
        scene.new(name, scene.tmp / name).write_text("a regular file, not a folder\n", encoding="utf-8")

    return setup


def folder_with_file(name: str) -> Callable[[Scene], None]:
    def setup(scene: Scene) -> None:
        path = scene.new(name, scene.tmp / name)
        path.mkdir()
        (path / "keep.txt").write_text("already here\n", encoding="utf-8")

    return setup


def previous_results(name: str) -> Callable[[Scene], None]:
    """A results file from an earlier run (must survive a failed run that targets it)."""

    def setup(scene: Scene) -> None:
        results = {"version": "earlier run", "results": {"old": []}, "external_data": {"used": False, "details": ""}}
        scene.new(name, scene.tmp / name).write_text(json.dumps(results), encoding="utf-8")

    return setup


def one_good_video_and(kind: str, name: str = "mixed") -> Callable[[Scene], None]:
    """A folder with ``alpha.mp4`` (good) and one bad entry of ``kind``."""

    def setup(scene: Scene) -> None:
        folder = scene.new(name, scene.tmp / name)
        folder.mkdir()
        shutil.copy(scene["videos"] / "alpha.mp4", folder / "alpha.mp4")
        make_bad_entry(kind, folder, scene)

    return setup


def make_bad_entry(kind: str, folder: Path, scene: Scene) -> None:
    if kind == "1px":
        write_narrow_video(folder / "thin.mp4", width=1)
    elif kind == "2px":
        write_narrow_video(folder / "thin.mp4", width=2)
    elif kind == "short":  # 3 frames: fewer than one stride of 8
        from fixtures_clip import write_video

        write_video(folder / "short.mp4", 3)
    elif kind == "symlink-loop":
        os.symlink("b.mp4", folder / "a.mp4")
        os.symlink("a.mp4", folder / "b.mp4")
    elif kind == "fifo":
        os.mkfifo(folder / "pipe.mp4")
        scene.fifos.append(folder / "pipe.mp4")
    elif kind == "random-bytes":
        (folder / "bad.mp4").write_bytes(np.random.default_rng(0).bytes(20000))
    elif kind == "no-index":  # cut before the index at the end (plain mp4 writes it last)
        data = (scene["videos"] / "beta.mp4").read_bytes()
        (folder / "cut.mp4").write_bytes(data[: len(data) // 2])
    elif kind == "cut-data":  # index first (faststart), frame data cut off
        write_faststart_video(scene.tmp / "whole.mp4")
        data = (scene.tmp / "whole.mp4").read_bytes()
        (folder / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])
    elif kind == "non-ascii":
        shutil.copy(scene["videos"] / "beta.mp4", folder / "vidéo 1.mp4")
    elif kind == "symlinked":
        store = scene.tmp / "store"
        store.mkdir()
        shutil.copy(scene["videos"] / "beta.mp4", store / "a1b2c3.mp4")
        os.symlink(store / "a1b2c3.mp4", folder / "clip.mp4")
    else:
        raise ValueError(kind)


def write_narrow_video(path: Path, width: int, height: int = 64, num_frames: int = 24) -> Path:
    """H.264 4:4:4 video ``width`` px wide (4:2:0 needs even sizes; 4:4:4 allows 1 px)."""
    images = [np.full((height, width, 3), 40 + 5 * i, dtype=np.uint8) for i in range(num_frames)]
    return encode_frames(path, images, pix_fmt="yuv444p", options={"preset": "ultrafast"})


def write_faststart_video(path: Path, num_frames: int = 150) -> Path:
    """A 6 s noisy video with its index at the start, so a cut file still opens."""
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(num_frames)]  # noise: large frames
    return encode_frames(path, images, options={"preset": "ultrafast", "crf": "10", "g": "25"},
                         container_options={"movflags": "faststart"})


def named_fifo(name: str) -> Callable[[Scene], None]:
    def setup(scene: Scene) -> None:
        folder = scene.tmp / "fifo"
        folder.mkdir()
        path = scene.new(name, folder / "pipe.mp4")
        os.mkfifo(path)
        scene.fifos.append(path)

    return setup


def named_symlink_loop(name: str) -> Callable[[Scene], None]:
    def setup(scene: Scene) -> None:
        folder = scene.tmp / "links"  # a name without "loop": the message must say it
        folder.mkdir()
        make_bad_entry("symlink-loop", folder, scene)
        scene.new(name, folder / "a.mp4")

    return setup


def demo_copy(name: str, change: Callable[[Path], None] | None = None) -> Callable[[Scene], None]:
    """A copy of the demo feature dataset, changed by ``change(folder)``."""

    def setup(scene: Scene) -> None:
        folder = scene.new(name, scene.tmp / name)
        shutil.copytree(DEMO, folder)
        if change is not None:
            change(folder)

    return setup


def poison_features(folder: Path, video: str = DEMO_TEST_VIDEO) -> None:
    """One NaN and one Inf in ``features/<video>.npy``."""
    path = folder / "features" / f"{video}.npy"
    features = np.load(path)
    features[3, 5], features[7, 1] = np.nan, np.inf
    np.save(path, features)


def gt_before_zero(folder: Path) -> None:
    """One more instance of an unseen class (split 75_25/0), entirely before 0 s."""
    path = folder / "annotations.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    annotations = data["database"][DEMO_UNSEEN_VIDEO]["annotations"]
    annotations.append({"segment": [-12.0, -4.0], "label": annotations[0]["label"]})
    path.write_text(json.dumps(data), encoding="utf-8")


def evil_yaml_dataset(folder: Path) -> None:
    marker = folder.parent / "PWNED"
    text = (folder / "dataset.yaml").read_text(encoding="utf-8")
    text = text.replace("name: psftr-demo", f'name: !!python/object/apply:os.system ["touch {marker}"]')
    (folder / "dataset.yaml").write_text(text, encoding="utf-8")


def tiny_dataset(name: str, poison: bool = False) -> Callable[[Scene], None]:
    """A synthetic training dataset (D = 32, 2 splits); ``poison`` puts NaN/Inf in a training video."""

    def setup(scene: Scene) -> None:
        from train_helpers import make_tiny_dataset

        root = make_tiny_dataset(scene.tmp / name, num_splits=1, train_videos=4, test_videos=2)
        scene.new(name, root)
        if poison:
            database = json.loads((root / "annotations.json").read_text(encoding="utf-8"))["database"]
            video = sorted(v for v, r in database.items() if r["subset"] == "training")[0]
            path = root / "features" / f"{video}.npy"
            features = np.load(path)
            features[2, 0], features[4, 3] = np.nan, np.inf
            np.save(path, features)
            scene.new("poisoned", Path(path.name))  # the name only: a message may show the path relative

    return setup


def tiny_checkpoint(name: str = "ckpt") -> Callable[[Scene], None]:
    """A real checkpoint of a tiny PSFTR (32-d synthetic features), trained once per session."""

    def setup(scene: Scene) -> None:
        scene.new(name, scene.fixture("bad_inputs_checkpoint"))

    return setup


def damaged_checkpoint(name: str, how: str) -> Callable[[Scene], None]:
    def setup(scene: Scene) -> None:
        path = scene.new(name, scene.tmp / f"{how}.pt")
        if how == "empty":
            path.write_bytes(b"")
        elif how == "truncated":
            data = Path(scene.fixture("bad_inputs_checkpoint")).read_bytes()
            path.write_bytes(data[: len(data) // 2])
        elif how == "random":
            path.write_bytes(np.random.default_rng(1).bytes(4096))
        elif how == "text":
            path.write_text("not a checkpoint\n" * 20, encoding="utf-8")
        else:
            raise ValueError(how)

    return setup


class _Exploit:
    """Unpickling this creates the file ``marker`` (if anything ever unpickles it)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


def evil_checkpoint(name: str) -> Callable[[Scene], None]:
    """A torch.save file whose pickle runs a shell command when loaded without weights_only."""

    def setup(scene: Scene) -> None:
        import torch

        path = scene.new(name, scene.tmp / "evil.pt")
        torch.save({"format": "psftr-checkpoint", "payload": _Exploit(scene.tmp / "PWNED")}, path)
        scene.new("evil_pickle", scene.tmp / "evil.pkl")
        scene["evil_pickle"].write_bytes(pickle.dumps(_Exploit(scene.tmp / "PWNED")))

    return setup


def evil_yaml_config(name: str) -> Callable[[Scene], None]:
    def setup(scene: Scene) -> None:
        path = scene.new(name, scene.tmp / "evil.yaml")
        path.write_text(f'train: !!python/object/apply:os.system ["touch {scene.tmp / "PWNED"}"]\n', encoding="utf-8")

    return setup


def extracted(name: str = "feats", inputs: str = "{videos}") -> Callable[[Scene], None]:
    """``psftr extract`` already run (float16) into ``name``, through the library."""

    def setup(scene: Scene) -> None:
        from psftr_core.features.extract import ExtractOptions, extract_features

        clip = scene.fixture("tiny_clip_files")
        out = scene.new(name, scene.tmp / name)
        options = ExtractOptions(clip_config=str(clip.config), clip_pretrained=str(clip.weights), device="cpu")
        extract_features([expand_text(inputs, scene)], out, options).raise_for_failures()

    return setup


def count_clip_loads(scene: Scene) -> None:
    """Counts open_clip model creations (a re-run with nothing to do needs none)."""
    import open_clip

    calls = scene.notes.setdefault("clip_loads", [])
    for name in ("create_model_and_transforms", "create_model"):
        original = getattr(open_clip, name)

        def counted(*args, _original=original, **kwargs):
            calls.append(args[:1])
            return _original(*args, **kwargs)

        scene.monkeypatch.setattr(open_clip, name, counted)


def interrupt_training(scene: Scene) -> None:
    """Ctrl-C as soon as training starts (before any epoch ends)."""

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    scene.monkeypatch.setattr("psftr_core.train.run.train", interrupted)


def actions_file(name: str, text: str) -> Callable[[Scene], None]:
    def setup(scene: Scene) -> None:
        scene.new(name, scene.tmp / f"{name}.txt").write_text(text, encoding="utf-8")

    return setup


def gt_and_predictions(scene: Scene) -> None:
    """Class A: one true instance at [0, 10] s found exactly, plus one before 0 s.

    Dropping the instance before 0 s gives AP 1; counting it as a miss gives 0.5.
    """
    gt = {"database": {"v1": {"subset": "test", "annotations": [
        {"segment": [0, 10], "label": "A"}, {"segment": [-8, -2], "label": "A"}]}}}
    predictions = {"version": "t", "results": {"v1": [{"segment": [0, 10], "label": "A", "score": 0.9}]},
                   "external_data": {"used": False, "details": ""}}
    scene.new("gt", scene.tmp / "gt.json").write_text(json.dumps(gt), encoding="utf-8")
    scene.new("preds", scene.tmp / "preds.json").write_text(json.dumps(predictions), encoding="utf-8")


# ----------------------------------------------------------------------------- checks


def results_of(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def check_results_videos(*videos: str, output: str = "out.json") -> Callable[[Scene, Result], None]:
    """The results file lists exactly ``videos``."""

    def check(scene: Scene, result: Result) -> None:
        assert sorted(results_of(scene.tmp / output)["results"]) == sorted(videos)

    return check


def check_nothing_cached(scene: Scene, result: Result) -> None:
    """Refused before the work: no video was decoded into the feature cache."""
    assert not list(scene["cache"].rglob("*.npz")), "videos were decoded before the refusal"


def check_no_checkpoint(scene: Scene, result: Result) -> None:
    assert not list(scene.tmp.rglob("*.pt")), "a checkpoint was written"


def check_one_warning(scene: Scene, result: Result) -> None:
    warnings = [line for line in result.err.splitlines() if "warning" in line.lower()]
    assert len(warnings) == 1, warnings


def check_details_name_custom_clip(scene: Scene, result: Result) -> None:
    details = results_of(scene.tmp / "out.json")["external_data"]["details"]
    assert "psftr-tiny-clip" in details and "ViT-B-16" not in details, details


def check_not_pwned(scene: Scene, result: Result) -> None:
    assert not (scene.tmp / "PWNED").exists(), "untrusted input executed code"


def check_dataset_lists(*videos: str, name: str = "feats") -> Callable[[Scene, Result], None]:
    def check(scene: Scene, result: Result) -> None:
        info = results_of(scene[name] / "feature_info.json")
        database = results_of(scene[name] / "annotations.json")["database"]
        assert sorted(info) == sorted(videos) and sorted(database) == sorted(videos)

    return check


def check_gt_before_zero_dropped(scene: Scene, result: Result) -> None:
    assert json.loads(result.out)["average"] == 1.0, "the instance before 0 s was counted as a miss"


def check_same_map_as_clean_demo(scene: Scene, result: Result) -> None:
    """The instance before 0 s changes nothing: the mAP of the unchanged demo."""
    from psftr_core.data.datasets import load_dataset
    from psftr_core.evaluation.protocol import evaluate_localizer

    clean = evaluate_localizer(load_dataset(str(DEMO)), "75_25", 0).result.to_dict()["average"]
    assert json.loads(result.out)["average"] == clean, "the instance before 0 s changed the mAP"


def check_no_model_loaded(scene: Scene, result: Result) -> None:
    assert scene.notes["clip_loads"] == [], "the CLIP model was loaded with nothing to extract"


def check_checkpoint_message_complete(scene: Scene, result: Result) -> None:
    """The error line says what is wrong in psftr's words: no empty "()", no bare "(101)",
    not cut mid-sentence, and none of torch's loader text (which ends by suggesting
    ``weights_only=False``, the unsafe way to load a file from elsewhere)."""
    import re

    line = next(line for line in result.err.splitlines() if line.startswith("psftr: error:"))
    assert not re.search(r"\(\s*\)|\(\d+\)\s*$|\b(is|the|a|of|to|and)\)\s*$", line), line
    for torch_text in ("weights_only", "PytorchStreamReader", "miniz"):
        assert torch_text not in line, line


def check_stdout_lists_checkpoints(scene: Scene, result: Result) -> None:
    written = sorted(str(p) for p in (scene.tmp / "run").rglob("*.pt"))
    assert sorted(result.out.split()) == written, (result.out, written)


def check_short_summary(scene: Scene, result: Result) -> None:
    assert len(result.err) < 3000, f"{len(result.err)} characters on stderr"


def all_of(*checks: Callable[[Scene, Result], None]) -> Callable[[Scene, Result], None]:
    def check(scene: Scene, result: Result) -> None:
        for one in checks:
            one(scene, result)

    return check


# ----------------------------------------------------------------------------- the matrix

D = "detect {videos} -a walking {clip}"  # the plain detect run most rows start from
OUT = "-o {tmp}/out.json"
ONE_WARNING_BOTH_VIDEOS = all_of(check_one_warning, check_results_videos("alpha", "beta"))

CASES: list[Case] = [
    # --- 1. outputs that cannot be written: refused before the work, the path named
    Case("detect-output-in-readonly-folder", f"{D} -o {{ro}}/out.json", 2, says=["{ro}"],
         setup=[readonly_dir("ro")], check=check_nothing_cached),
    Case("detect-output-under-a-file", f"{D} -o {{file}}/out.json", 2, says=["{file}"],
         setup=[regular_file("file")], intact=["{file}"], check=check_nothing_cached),
    Case("detect-timeline-in-readonly-folder", f"{D} -o {{prev}} --timeline {{ro}}", 2, says=["{ro}"],
         setup=[readonly_dir("ro"), previous_results("prev")], intact=["{prev}"], check=check_nothing_cached),
    Case("detect-timeline-under-a-file", f"{D} -o {{prev}} --timeline {{file}}/timelines", 2, says=["{file}"],
         setup=[regular_file("file"), previous_results("prev")], intact=["{file}", "{prev}"],
         check=check_nothing_cached),
    Case("detect-cache-dir-readonly", f"{D} --cache-dir {{ro}} {OUT}", 0, says=["warning", "{ro}"],
         setup=[readonly_dir("ro")], written=["{tmp}/out.json"], check=ONE_WARNING_BOTH_VIDEOS),
    Case("detect-cache-dir-is-a-file", f"{D} --cache-dir {{file}} {OUT}", 0, says=["warning", "{file}"],
         setup=[regular_file("file")], intact=["{file}"], written=["{tmp}/out.json"], check=ONE_WARNING_BOTH_VIDEOS),
    Case("detect-cache-env-readonly", f"{D} {OUT}", 0, says=["warning", "{ro}"], env={"PSFTR_CACHE_DIR": "{ro}"},
         setup=[readonly_dir("ro")], written=["{tmp}/out.json"], check=ONE_WARNING_BOTH_VIDEOS),
    Case("extract-output-readonly", "extract {videos} -o {ro} {clip}", 2, says=["{ro}"],
         setup=[readonly_dir("ro")]),
    Case("extract-output-under-a-file", "extract {videos} -o {file}/feats {clip}", 2, says=["{file}"],
         setup=[regular_file("file")], intact=["{file}"]),
    Case("evaluate-save-predictions-in-readonly-folder",
         "evaluate --baseline --dataset {demo} --split 75_25 --save-predictions {ro}/preds.json", 2, says=["{ro}"],
         setup=[readonly_dir("ro")]),
    Case("evaluate-save-predictions-onto-a-folder",
         "evaluate --baseline --dataset {demo} --split 75_25 --save-predictions {existing}", 2, says=["{existing}"],
         setup=[folder_with_file("existing")], intact=["{existing}"]),
    # outputs added with the per-video files, the review page, logging and text embeddings
    Case("detect-output-dir-under-a-file", f"{D} --output-dir {{file}}/out", 2, says=["{file}"],
         setup=[regular_file("file")], intact=["{file}"], check=check_nothing_cached),
    Case("detect-output-dir-readonly", f"{D} --output-dir {{ro}}", 2, says=["{ro}"],
         setup=[readonly_dir("ro")], check=check_nothing_cached),
    Case("detect-report-onto-a-folder", f"{D} {OUT} --report {{existing}}", 2, says=["{existing}"],
         setup=[folder_with_file("existing")], intact=["{existing}"], check=check_nothing_cached),
    Case("detect-report-in-readonly-folder", f"{D} {OUT} --report {{ro}}/page.html", 2, says=["{ro}"],
         setup=[readonly_dir("ro")], check=check_nothing_cached),
    Case("log-file-under-a-file", f"--log-file {{file}}/log.txt {D} {OUT}", 2, says=["--log-file"],
         setup=[regular_file("file")], intact=["{file}"], check=check_nothing_cached),
    Case("text-embeddings-output-in-readonly-folder",
         "text-embeddings --dataset {demo} --output {ro}/text.npz", 2, says=["{ro}"], setup=[readonly_dir("ro")]),
    Case("text-embeddings-missing-dataset", "text-embeddings --dataset {tmp}/nope", 2, says=["nope"]),
    Case("detect-unknown-decoder", f"{D} {OUT} --decoder ffmpeg", 2, says=["--decoder"],
         check=check_nothing_cached),
    Case("detect-unknown-dtype", f"{D} {OUT} --dtype bf16", 2, says=["--dtype", "bf16"],
         check=check_nothing_cached),
    Case("extract-unknown-dtype", "extract {videos} -o {tmp}/feats {clip} --dtype half", 2,
         says=["--dtype", "half"]),
    Case("extract-int8-with-bfloat16", "extract {videos} -o {tmp}/feats {clip} --quantize int8 --dtype bfloat16",
         2, says=["--quantize int8", "--dtype bfloat16"]),
    Case("text-embeddings-unknown-dtype", "text-embeddings --dataset {demo} --output {tmp}/text.npz --dtype fp8",
         2, says=["--dtype", "fp8"]),
    Case("train-missing-clip-config", "train --dataset {ds} --split 75_25 --output {tmp}/run --clip-config "
         "{tmp}/nope.json", 2, says=["nope.json"], setup=[tiny_dataset("ds")], check=check_no_checkpoint),
    Case("train-output-is-a-file", "train --dataset {ds} --split 75_25 --output {file} {train}", 2, says=["{file}"],
         setup=[tiny_dataset("ds"), regular_file("file")], intact=["{file}"], check=check_no_checkpoint),
    Case("train-output-readonly", "train --dataset {ds} --split 75_25 --output {ro} {train}", 2, says=["{ro}"],
         setup=[tiny_dataset("ds"), readonly_dir("ro")], check=check_no_checkpoint),
    # --- 2. a 1-2 px wide video fails alone
    Case("detect-1px-wide-video", f"detect {{mixed}} -a walking {{clip}} {OUT}", 0,
         setup=[one_good_video_and("1px")], check=check_results_videos("alpha", "thin")),
    Case("detect-2px-wide-video", f"detect {{mixed}} -a walking {{clip}} {OUT}", 0,
         setup=[one_good_video_and("2px")], check=check_results_videos("alpha", "thin")),
    Case("extract-1px-wide-video", "extract {mixed} -o {tmp}/feats {clip}", 0,
         setup=[one_good_video_and("1px")],
         written=["{tmp}/feats/features/alpha.npy", "{tmp}/feats/features/thin.npy"]),
    # --- 3. symlink loops
    Case("detect-symlink-loop-in-folder", f"detect {{mixed}} -a walking {{clip}} {OUT}", 0, says=["a.mp4", "loop"],
         setup=[one_good_video_and("symlink-loop")], check=check_results_videos("alpha")),
    Case("extract-symlink-loop-in-folder", "extract {mixed} -o {tmp}/feats {clip}", 0, says=["a.mp4", "loop"],
         setup=[one_good_video_and("symlink-loop")], written=["{tmp}/feats/features/alpha.npy"]),
    Case("detect-symlink-loop-named", "detect {videos}/alpha.mp4 {loop} -a walking {clip}", 2,
         says=["{loop}", "loop"], setup=[named_symlink_loop("loop")]),
    # --- 4. FIFOs (run with a hang guard: a FIFO opened for reading fails the row)
    Case("detect-fifo-in-folder", f"detect {{mixed}} -a walking {{clip}} {OUT}", 0, says=["pipe.mp4"],
         setup=[one_good_video_and("fifo")], check=check_results_videos("alpha")),
    Case("extract-fifo-in-folder", "extract {mixed} -o {tmp}/feats {clip}", 0, says=["pipe.mp4"],
         setup=[one_good_video_and("fifo")], written=["{tmp}/feats/features/alpha.npy"]),
    Case("detect-fifo-named", "detect {videos}/alpha.mp4 {fifo} -a walking {clip}", 2,
         says=["{fifo}", "not a regular file"], setup=[named_fifo("fifo")]),
    # --- 5. provenance names the custom CLIP architecture
    Case("detect-details-name-custom-clip", f"{D} {OUT}", 0, check=check_details_name_custom_clip),
    Case("detect-width-mismatch-names-custom-clip", f"{D} --checkpoint {{ckpt}}", 2, says=["psftr-tiny-clip"],
         never_says=["ViT-B-16"], setup=[tiny_checkpoint()]),
    # --- 6. re-extracting some videos with other settings keeps the others
    Case("extract-other-settings-keeps-other-videos", "extract {videos}/alpha.mp4 -o {feats} {clip} --dtype float32",
         2, says=["{feats}", "beta"], setup=[extracted()],
         intact=["{feats}/feature_info.json", "{feats}/annotations.json", "{feats}/features"]),
    # --- 7. ground truth before 0 s: dropped with a warning
    Case("evaluate-gt-before-zero-file", "evaluate --predictions {preds} --ground-truth {gt} --json", 0,
         says=["warning", "dropped 1", "before 0"], setup=[gt_and_predictions], check=check_gt_before_zero_dropped),
    Case("evaluate-gt-before-zero-dataset", "evaluate --baseline --dataset {data} --split 75_25 --json", 0,
         says=["warning", "dropped 1", "before 0"], setup=[demo_copy("data", gt_before_zero)],
         check=check_same_map_as_clean_demo),
    # --- 8. messages
    Case("checkpoint-truncated", f"{D} --checkpoint {{bad}}", 2, says=["{bad}"],
         setup=[damaged_checkpoint("bad", "truncated")], check=check_checkpoint_message_complete),
    Case("checkpoint-empty", f"{D} --checkpoint {{bad}}", 2, says=["{bad}"], setup=[damaged_checkpoint("bad", "empty")],
         check=check_checkpoint_message_complete),
    Case("checkpoint-random-bytes", f"{D} --checkpoint {{bad}}", 2, says=["{bad}"],
         setup=[damaged_checkpoint("bad", "random")], check=check_checkpoint_message_complete),
    Case("checkpoint-text-file", f"{D} --checkpoint {{bad}}", 2, says=["{bad}"],
         setup=[damaged_checkpoint("bad", "text")], check=check_checkpoint_message_complete),
    Case("detect-random-bytes-video", f"detect {{mixed}} -a walking {{clip}} {OUT}", 3, says=["bad.mp4"],
         setup=[one_good_video_and("random-bytes")], check=check_results_videos("alpha")),
    Case("detect-video-without-index", f"detect {{mixed}} -a walking {{clip}} {OUT}", 3, says=["cut.mp4"],
         setup=[one_good_video_and("no-index")], check=check_results_videos("alpha")),
    Case("detect-video-cut-mid-data", f"detect {{mixed}} -a walking {{clip}} {OUT}", 3, says=["cut.mp4"],
         setup=[one_good_video_and("cut-data")], check=check_results_videos("alpha")),
    Case("extract-video-without-index", "extract {mixed} -o {tmp}/feats {clip}", 3, says=["cut"],
         setup=[one_good_video_and("no-index")], written=["{tmp}/feats/features/alpha.npy"]),
    Case("detect-too-short-video", f"detect {{mixed}} -a walking {{clip}} {OUT}", 3, says=["short.mp4", "too short"],
         setup=[one_good_video_and("short")], check=check_results_videos("alpha")),
    Case("detect-nan-features", f"detect --features {{data}} -a diving {OUT}", 3, says=[f"{DEMO_TEST_VIDEO}.npy"],
         setup=[demo_copy("data", poison_features)], written=["{tmp}/out.json"]),
    Case("train-nan-features", "train --dataset {ds} --split 75_25 --output {tmp}/run {train}", 2,
         says=["{poisoned}"], setup=[tiny_dataset("ds", poison=True)], check=check_no_checkpoint),
    Case("detect-actions-file-is-a-folder", "detect {videos} --actions-file {tmp} {clip}", 2, says=["{tmp}", "folder"],
         never_says=["not found"]),
    Case("train-ctrl-c-before-first-epoch", "train --dataset {ds} --split 75_25 --output {tmp}/run {train}", 130,
         says=["interrupted"], never_says=["intact"], setup=[tiny_dataset("ds"), interrupt_training],
         check=check_no_checkpoint),
    Case("detect-fps-above-native", f"{D} --fps 50 {OUT}", 0, says=["warning", "alpha", "25"],
         written=["{tmp}/out.json"]),
    Case("extract-fps-above-native", "extract {videos} -o {tmp}/feats {clip} --fps 50", 0,
         says=["warning", "alpha", "25"], written=["{tmp}/feats/features/alpha.npy"]),
    Case("extract-rerun-skips-without-loading-model", "extract {videos} -o {feats} {clip}", 0,
         setup=[extracted(), count_clip_loads], intact=["{feats}/features", "{feats}/feature_info.json"],
         check=check_no_model_loaded),
    # --- 9. what the README says
    Case("train-stdout-lists-each-checkpoint",
         "train --dataset {ds} --split 75_25 --output {tmp}/run {train} --eval-every 1", 0,
         setup=[tiny_dataset("ds")], check=check_stdout_lists_checkpoints),
    Case("detect-timeline-non-ascii-id", f"detect {{mixed}} -a walking {{clip}} {OUT} --timeline {{tmp}}/tl", 0,
         setup=[one_good_video_and("non-ascii")], written=["{tmp}/tl/vidéo 1.png", "{tmp}/tl/alpha.png"]),
    Case("detect-symlinked-video-keeps-link-name", f"detect {{mixed}} -a walking {{clip}} {OUT}", 0,
         setup=[one_good_video_and("symlinked")], check=check_results_videos("alpha", "clip")),
    Case("detect-10000-char-action-name", f"detect {{videos}} -a {'x' * 10000},walking {{clip}} {OUT}", 0,
         written=["{tmp}/out.json"], check=check_short_summary),
    # --- already right: keep them so
    Case("detect-malicious-checkpoint", f"{D} --checkpoint {{evil}}", 2, says=["{evil}"],
         setup=[evil_checkpoint("evil")], check=check_not_pwned),
    Case("detect-malicious-plain-pickle", f"{D} --checkpoint {{evil_pickle}}", 2, says=["{evil_pickle}"],
         setup=[evil_checkpoint("evil")], check=check_not_pwned),
    Case("evaluate-malicious-checkpoint", "evaluate --checkpoint {evil} --dataset {demo} --split 75_25", 2,
         says=["{evil}"], setup=[evil_checkpoint("evil")], check=check_not_pwned),
    Case("detect-malicious-dataset-yaml", "detect --features {data} -a diving", 2, says=["dataset.yaml"],
         setup=[demo_copy("data", evil_yaml_dataset)], check=check_not_pwned),
    Case("train-malicious-config-yaml", "train --dataset {ds} --split 75_25 --output {tmp}/run --config {evil}", 2,
         says=["{evil}"], setup=[tiny_dataset("ds"), evil_yaml_config("evil")], check=check_not_pwned),
    Case("detect-missing-video", "detect {tmp}/nope.mp4 -a walking", 2, says=["nope.mp4"]),
    Case("extract-missing-video", "extract {tmp}/nope.mp4 -o {tmp}/feats", 2, says=["nope.mp4"]),
    Case("evaluate-missing-predictions",
         "evaluate --predictions {tmp}/nope.json --ground-truth {demo}/annotations.json", 2, says=["nope.json"]),
    Case("train-missing-dataset", "train --dataset {tmp}/nope --split 75_25 --output {tmp}/run", 2, says=["nope"]),
    Case("detect-empty-actions", "detect {videos} -a ' , '", 2, says=["action"]),
    Case("detect-actions-file-only-comments", "detect {videos} --actions-file {acts}", 2, says=["{acts}"],
         setup=[actions_file("acts", "# nothing here\n\n")]),
]
