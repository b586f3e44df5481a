"""The README's "Train on your own videos", command by command (issue 16).

The commands are read from that README section and run as written, in a folder holding
``my_videos/`` (generated videos), with the test's additions: the tiny CLIP (config +
weights saved to local files, so nothing is downloaded) for ``extract`` and ``detect``,
a tiny model and one epoch for ``train``, CPU and JSON where the test reads the output.
The labelling step edits ``annotations.json`` the way the README says.

``evaluate`` runs in a fresh process after the CLIP config file has been deleted: the
text tower is rebuilt from what the checkpoint recorded.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures_clip import TINY_CLIP_CONFIG
from train_helpers import TINY_OVERRIDES, psftr_main as psftr

REPO = Path(__file__).resolve().parents[2]
SECTION = "## Train on your own videos"
CLASSES = ["jump", "wave", "clap", "spin"]
# video -> (subset, its two actions): every class has instances in both subsets.
LABELS = {
    "clip01": ("train", "jump", "wave"),
    "clip02": ("train", "clap", "spin"),
    "clip03": ("train", "wave", "clap"),
    "clip04": ("train", "spin", "jump"),
    "clip05": ("test", "jump", "wave"),
    "clip06": ("test", "clap", "spin"),
}
FRAMES = 200  # 8 s at 25 fps: 25 features at the default stride of 8 frames


def readme_commands() -> list[list[str]]:
    """The ``psftr`` command lines of the README section, in order, as argument lists."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```bash\n(.*?)^```", section, re.S | re.M)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("psftr ")]


def label(annotations: Path) -> None:
    """Step 2 of the README: classes, each video's subset, its actions in seconds."""
    data = json.loads(annotations.read_text(encoding="utf-8"))
    data["classes"] = list(CLASSES)
    for video, (subset, first, second) in LABELS.items():
        entry = data["database"][video]
        entry["subset"] = subset
        entry["annotations"] = [{"segment": [0.5, 3.5], "label": first}, {"segment": [4.5, 7.5], "label": second}]
    annotations.write_text(json.dumps(data, indent=2), encoding="utf-8")


def test_readme_commands_are_the_four_steps():
    assert [argv[0] for argv in readme_commands()] == ["extract", "train", "evaluate", "detect", "text-embeddings"]


def test_own_videos_extract_label_train_evaluate_detect(tmp_path, monkeypatch, capsys, make_video, tiny_clip_files,
                                                        torch_one_thread):
    monkeypatch.chdir(tmp_path)
    for video in LABELS:
        make_video(tmp_path / "my_videos" / f"{video}.mp4", FRAMES)
    # The tiny CLIP under a name of its own, as a user's custom architecture would be.
    config, weights = tmp_path / "my-clip.json", tmp_path / "my-clip.pt"
    config.write_text(json.dumps(TINY_CLIP_CONFIG), encoding="utf-8")
    weights.write_bytes(tiny_clip_files.weights.read_bytes())
    tiny = ["--clip-config", config, "--clip-pretrained", weights]
    extract, train, evaluate, detect, text_embeddings = readme_commands()

    # 1. extract
    assert psftr([*extract, *tiny, "--device", "cpu", "-q"]) == 0
    data = tmp_path / "my_data"
    annotations = data / "annotations.json"
    unlabelled = json.loads(annotations.read_text(encoding="utf-8"))
    assert unlabelled["classes"] == [] and sorted(unlabelled["database"]) == sorted(LABELS)
    assert unlabelled["database"]["clip01"] == {"subset": "test", "duration": 8.0, "fps": 25.0, "annotations": []}
    manifest = json.loads((data / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["clip"]["model_name"] == "my-clip" and manifest["clip"]["config"] == TINY_CLIP_CONFIG

    # 2. label; running extract again keeps the labels
    label(annotations)
    labelled = annotations.read_bytes()
    assert psftr([*extract, *tiny, "--device", "cpu", "-q"]) == 0
    assert annotations.read_bytes() == labelled

    # 3. train: the CLIP (config included) comes from manifest.json, no --clip-* needed
    os.remove(config)
    sets = [x for kv in TINY_OVERRIDES for x in ("--set", kv)]
    assert psftr([*train, "--epochs", "1", "--seed", "0", "--device", "cpu", *sets]) == 0
    ckpt = torch.load(tmp_path / "runs" / "mine" / "last.pt", weights_only=True)
    assert ckpt["text_clip"]["model_name"] == "my-clip" and ckpt["text_clip"]["config"] == TINY_CLIP_CONFIG
    assert ckpt["text_clip"]["weights_id"] == manifest["clip"]["weights_id"]
    assert len(ckpt["vocabulary"]) == 2 and set(ckpt["vocabulary"]) < set(CLASSES)  # 50_50: two seen classes

    # ... evaluate, in a fresh process without the config file: rebuilt from the checkpoint
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "psftr_cli", *evaluate, "--device", "cpu", "--json",
                           "--save-predictions", "preds.json"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["model"] == "psftr" and result["split_index"] == 0
    from psftr_core.evaluation.protocol import evaluate_checkpoint

    unseen = sorted(set(CLASSES) - set(ckpt["vocabulary"]))
    in_process = evaluate_checkpoint(tmp_path / "runs" / "mine" / "last.pt", str(data), "50_50", 0, device="cpu")
    assert sorted(result["per_class"]) == unseen
    assert result["mAP"] == pytest.approx(in_process.result.mAP, abs=1e-6)
    saved = json.loads((tmp_path / "preds.json").read_text())["results"]
    # the test videos with unseen-class instances
    assert sorted(saved) == [v for v, (subset, *acts) in LABELS.items() if subset == "test" and set(acts) & set(unseen)]
    assert {v: [d["label"] for d in saved[v]] for v in saved} == {
        v: [d["label"] for d in in_process.predictions[v]] for v in saved}

    # 4. detect on the raw videos: the same features as the extracted folder, so the same segments
    # (the config file is gone: the checkpoint's record of the custom architecture is used)
    more = ["--device", "cpu", "--cache-dir", tmp_path / "cache", "--threshold", "0",
            "--top-k", "5", "-q"]
    assert psftr([*detect, *more]) == 0
    assert psftr(["detect", "--features", data, *detect[detect.index("--checkpoint"):], *more[:-1],
                  "--output", "from_features.csv", "-q"]) == 0
    output = Path(detect[detect.index("--output") + 1])
    from_videos = list(csv.DictReader(output.open(encoding="utf-8", newline="")))
    from_features = list(csv.DictReader(Path("from_features.csv").open(encoding="utf-8", newline="")))
    assert len(from_videos) == 5 * len(LABELS) and {row["video"] for row in from_videos} == set(LABELS)
    assert [(r["video"], r["label"], r["start"], r["end"]) for r in from_videos] == [
        (r["video"], r["label"], r["start"], r["end"]) for r in from_features]
    np.testing.assert_allclose([float(r["score"]) for r in from_videos], [float(r["score"]) for r in from_features],
                               rtol=1e-4, atol=1e-6)

    # "No CLIP weights where you train?": the class names encoded once, with the recorded CLIP
    capsys.readouterr()
    assert psftr([*text_embeddings, "--device", "cpu"]) == 0
    out = capsys.readouterr()
    assert Path(out.out.strip()).resolve() == (data / "text_embeddings.npz").resolve()
    assert "add 'text_embeddings: text_embeddings.npz'" in out.err
    from psftr_core.features.text import TextTower, encode_class_names

    expected = encode_class_names(CLASSES, TextTower("my-clip", str(weights), config=TINY_CLIP_CONFIG))
    with np.load(data / "text_embeddings.npz") as table:
        np.testing.assert_allclose(np.stack([table[name] for name in CLASSES]), expected, rtol=1e-5, atol=1e-6)


def test_asking_for_another_clip_than_the_features_is_exit_2(tmp_path, monkeypatch, capsys, make_video,
                                                              tiny_clip_files, torch_one_thread):
    monkeypatch.chdir(tmp_path)
    for video in LABELS:
        make_video(tmp_path / "my_videos" / f"{video}.mp4", FRAMES)
    extract, train, *_ = readme_commands()
    tiny = ["--clip-config", tiny_clip_files.config, "--clip-pretrained", tiny_clip_files.weights]
    assert psftr([*extract, *tiny, "--device", "cpu", "-q"]) == 0
    label(tmp_path / "my_data" / "annotations.json")
    capsys.readouterr()
    assert psftr([*train, "--clip-model", "ViT-B-32", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "psftr: error: --clip-model ViT-B-32 differs from CLIP psftr-tiny-clip of the features' manifest" in err
    assert not (tmp_path / "runs").exists()
