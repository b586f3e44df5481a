"""Small user-visible CLI fixes, each with a known answer: ``psftr -V``, the global
``-q/--quiet``, count + noun in the number it takes, and ``psftr evaluate``'s table title
saying what was scored, on which dataset and split."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
import typer
from rich.console import Console

from cli_runner import run_cli
from psftr_cli.main import app, quiet_defaults
from psftr_cli.render import counted, psftr_words, render_aggregate, split_title
from psftr_core import __version__
from psftr_core.config import InferenceConfig

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"
DEMO_DETECT = ["--features", DEMO, "--actions-file", DEMO / "actions.txt", "--format", "csv"]


def console_text() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, width=200, color_system=None, highlight=False), buffer


# --------------------------------------------------------------------------- -V


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_short_and_long_version_print_the_version(flag, capsys, monkeypatch):
    code, out, err = run_cli([], capsys, monkeypatch, command=flag)
    assert (code, out, err) == (0, f"psftr {__version__}\n", "")


# --------------------------------------------------------------------------- global -q


def test_quiet_defaults_name_the_commands_that_have_a_quiet_option():
    group = typer.main.get_command(app)
    # The global -q's help names these two: a new command with -q must be added there.
    assert quiet_defaults(group, click.Context(group)) == {"extract": {"quiet": True}, "detect": {"quiet": True}}


def test_global_quiet_is_the_detect_option(capsys, monkeypatch):
    plain = run_cli(DEMO_DETECT, capsys, monkeypatch, command="detect")[1:]
    own = run_cli([*DEMO_DETECT, "-q"], capsys, monkeypatch, command="detect")
    code, out, err = run_cli(["detect", *DEMO_DETECT], capsys, monkeypatch, command="-q")
    assert code == own[0] == 0
    assert "videos: 18, failed: 0" in plain[1]  # the summary the quiet runs leave out
    assert (out, err) == own[1:] and err == ""
    assert out == plain[0] and out.splitlines()[0] == "video,label,start,end,score"


def test_global_quiet_leaves_an_explicit_value_and_other_defaults(capsys, monkeypatch):
    """``psftr -q detect -q`` is as quiet; ``-q`` before a command without one changes nothing."""
    code, out, err = run_cli(["detect", *DEMO_DETECT, "--quiet"], capsys, monkeypatch, command="-q")
    assert code == 0 and err == "" and out.count("\n") > 10
    code, out, err = run_cli(["checkpoint", "--help"], capsys, monkeypatch, command="-q")
    assert code == 0 and "info" in out


# --------------------------------------------------------------------------- plurals


@pytest.mark.parametrize("number, noun, text", [
    (1, "held-out seen class", "1 held-out seen class"),
    (2, "held-out seen class", "2 held-out seen classes"),
    (0, "held-out training video", "0 held-out training videos"),
    (1, "epoch", "1 epoch"), (3, "epoch", "3 epochs"), (2, "box", "2 boxes"),
])
def test_counted(number, noun, text):
    assert counted(number, noun) == text


def test_calibration_table_title_says_one_class(capsys):
    from psftr_cli.commands.train import render_calibration

    record = {"held_out_classes": ["jump"], "held_out_videos": ["v1"], "seconds": 3,
              "grid": [{"name": "CLIP contrast", "average_map": 0.5}],
              "chosen": {"name": "CLIP contrast", "method": "psftr"}, "score_threshold": 0.25}
    console, buffer = console_text()
    render_calibration(console, record, False, "75_25/0")
    assert "calibration of split 75_25/0: 1 held-out seen class, 1 held-out training video\n" in buffer.getvalue()
    record.update(held_out_classes=["jump", "run"], held_out_videos=["v1", "v2"])
    console, buffer = console_text()
    render_calibration(console, record, False, "75_25/0")
    assert "2 held-out seen classes, 2 held-out training videos\n" in buffer.getvalue()


def test_a_kept_prior_says_which_setting_led_on_the_held_out_classes():
    from psftr_cli.commands.train import prior_note

    grid = [{"name": "CLIP contrast", "average_map": 0.40}, {"name": "learned logits", "average_map": 0.45}]
    record = {"prior_margin": 1.0, "prior": "CLIP contrast", "grid": grid,
              "chosen": {"name": "CLIP contrast", "average_map": 0.40}}
    note = prior_note(record)
    assert note.startswith("note: learned logits led CLIP contrast by 5.0 points on the held-out classes; "
                           "the calibration always keeps it against the model's other settings "
                           "(train.calibration_prior_margin=1;")
    localizer_led = {**record, "localizer_margin": 0.2,
                     "grid": [grid[0], {"name": "training-free localizer", "method": "localizer", "average_map": 0.5}]}
    assert "keeps it unless the localizer leads by more than 20 points (train.calibration_localizer_margin=0.2;" in (
        prior_note(localizer_led))
    assert "keeps it unless another leads by more than 10 points" in prior_note({**record, "prior_margin": 0.1})
    assert prior_note({**record, "prior_margin": 0.0}) is None  # the argmax: nothing was kept
    assert prior_note({**record, "grid": grid[:1]}) is None  # the prior led anyway
    assert prior_note({"grid": grid, "chosen": {"name": "learned logits"}}) is None  # a record before the prior


def test_train_progress_says_one_epoch():
    from psftr_cli.commands.train import TrainProgress

    console, buffer = console_text()
    TrainProgress(console, "75_25")(SimpleNamespace(kind="already_trained", split_index=0, epoch=1,
                                                    checkpoint="run/last.pt"))
    assert buffer.getvalue() == "split 75_25/0: already trained for 1 epoch (run/last.pt)\n"


def test_checkpoint_info_lines_say_one_class():
    from psftr_cli.commands import checkpoint

    assert checkpoint._vocabulary({"size": 1, "names": ["jump"]}, False) == "1 seen class: jump"
    record = {"status": "chosen", "chosen": "CLIP contrast", "held_out_average_map": 0.5, "held_out_classes": 1,
              "score_threshold": None}
    assert checkpoint._calibration(record) == ("chose CLIP contrast (held-out average mAP 0.5000 on 1 held-out seen "
                                               "class), detect threshold none")


# --------------------------------------------------------------------------- evaluate's title


def evaluation(checkpoint="run/last.pt", inference=None, split_index=0, epoch=7, selection="last"):
    """A CheckpointEvaluation's fields, its weights resolved as the protocol does (default model)."""
    from psftr_core.config import ModelConfig
    from psftr_core.infer.scoring import resolved_weights

    weights = None if inference is None else resolved_weights(ModelConfig(), inference)
    return SimpleNamespace(checkpoint=None if checkpoint is None else Path(checkpoint), inference=inference,
                           split_index=split_index, epoch=epoch, selection=selection, weights=weights)


@pytest.mark.parametrize("settings, words", [
    ({}, "PSFTR (w_c 1)"),  # the default contrast scoring: w_r has no effect
    ({"scoring": "model", "roi_weight": 0.5, "nms": "cross_window"}, "PSFTR (w_r 0.5, w_c 0, cross-window NMS)"),
    ({"contrast_weight": 0.25, "roi_weight": 1.0}, "PSFTR (w_r 1, w_c 0.25)"),
    ({"method": "localizer"}, "Training-free localizer (the checkpoint's inference.method)"),
])
def test_scored_by_names_the_scoring(settings, words):
    from psftr_cli.commands.evaluate import scored_by

    assert scored_by(evaluation(inference=InferenceConfig(**settings))) == words
    assert scored_by(evaluation(checkpoint=None)) == "Training-free localizer"


def test_split_titles():
    ev = evaluation(inference=InferenceConfig())
    assert (split_title("75_25", ev, "thumos14", psftr_words(0.5, 0.0))
            == "PSFTR (w_r 0.5, w_c 0) zero-shot mAP (%) on thumos14, split 75_25/0, last epoch (7)")
    assert (split_title("50_50", evaluation(checkpoint=None, split_index=3), "demo")
            == "Training-free localizer zero-shot mAP (%) on demo, split 50_50/3")


def test_aggregate_title_or_column_says_what_scored_each_split():
    result = SimpleNamespace(mAP=[0.5], average=0.5)
    agg = SimpleNamespace(tious=[0.5], mean=[0.5], std=[0.0], average_mean=0.5, average_std=0.0, selection="last",
                          per_split=[SimpleNamespace(checkpoint=Path("a"), split_index=k, result=result)
                                     for k in (0, 1)])
    console, buffer = console_text()
    render_aggregate(agg, console, "75_25", "demo", ["PSFTR (w_c 1)"] * 2)
    assert buffer.getvalue().splitlines()[0] == ("PSFTR (w_c 1) zero-shot mAP (%) on demo over 2 splits of 75_25, "
                                                 "last epoch of each split")
    console, buffer = console_text()
    render_aggregate(agg, console, "75_25", "demo", ["PSFTR (w_c 1)", "Training-free localizer"])
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("PSFTR (each split's inference) zero-shot mAP (%) on demo over 2 splits")
    assert "inference" in lines[2] and "Training-free localizer" in lines[5]


def test_evaluate_baseline_title_names_the_dataset(capsys, monkeypatch):
    code, out, err = run_cli(["--baseline", "--dataset", DEMO, "--split", "75_25"], capsys, monkeypatch,
                             command="evaluate")
    assert code == 0, err
    assert out.splitlines()[0] == "Training-free localizer zero-shot mAP (%) on psftr-demo, split 75_25/0"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A 1-epoch uncalibrated tiny checkpoint (model.roi_logit_weight 0.5, inference.roi_weight null)."""
    from train_helpers import tiny_checkpoint

    return tiny_checkpoint(tmp_path_factory.mktemp("small_fixes"))


def test_evaluate_checkpoint_title_has_the_model_s_own_roi_weight(trained, capsys, monkeypatch):
    """A null inference.roi_weight is read as the checkpoint's model.roi_logit_weight (0.5)."""
    args = ["--checkpoint", trained, "--dataset", trained.parents[1] / "data", "--split", "75_25",
            "--set", "inference.scoring=model"]
    code, out, err = run_cli(args, capsys, monkeypatch, command="evaluate")
    assert code == 0, err
    assert out.splitlines()[0] == "PSFTR (w_r 0.5, w_c 0) zero-shot mAP (%) on synthetic, split 75_25/0, last epoch (1)"


# ----------------------------------------------------------------------------- paths before torch

_NO_TORCH = ("import sys\nfrom psftr_cli.main import run\nsys.argv = ['psftr', *sys.argv[1:]]\n"
             "try:\n    run()\nexcept SystemExit as exc:\n    code = exc.code\n"
             "print('torch imported' if 'torch' in sys.modules else 'no torch', code)\n")


@pytest.mark.parametrize("argv, message", [
    (["train", "--dataset", "{tmp}/nope", "--split", "50_50", "-o", "{tmp}/run"], "nope has no dataset.yaml"),
    (["train", "--dataset", "examples/demo", "--split", "50_50", "-o", "{tmp}/run", "--config", "{tmp}/c.yaml"],
     "--config file not found"),
    (["train", "--dataset", "examples/demo", "--split", "50_50", "-o", "{tmp}/run", "--class-texts", "{tmp}/d.yaml"],
     "--class-texts file not found"),
    (["evaluate", "--checkpoint", "{tmp}/none.pt", "--dataset", "examples/demo", "--split", "50_50"],
     "none.pt does not exist"),
    (["evaluate", "--baseline", "--dataset", "{tmp}/nope", "--split", "50_50"], "nope has no dataset.yaml"),
])
def test_missing_files_are_said_before_torch_is_imported(tmp_path, argv, message):
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    (tmp_path / "nope").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run([sys.executable, "-c", _NO_TORCH, *args], capture_output=True, text=True, cwd=repo,
                          timeout=60)
    assert done.stdout.strip() == "no torch 2", done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr


def test_train_prompts_and_class_texts_go_into_the_run_config(tmp_path):
    import yaml

    from train_helpers import TINY_OVERRIDES, make_tiny_dataset, psftr_main

    data = make_tiny_dataset(tmp_path / "data", num_splits=1)
    (data / "descriptions.yaml").write_text("group0 action00: [a person dives]\n", encoding="utf-8")
    sets = [x for kv in TINY_OVERRIDES for x in ("--set", kv)]
    code = psftr_main(["train", "--dataset", data, "--split", "75_25", "-o", tmp_path / "run", "--epochs", "1",
                       "--no-calibrate", "--device", "cpu", "--preset", "thumos14", *sets,
                       "--prompt", "a video of {}", "--prompt", "{} in a clip",
                       "--class-texts", data / "descriptions.yaml"])
    assert code == 0
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text(encoding="utf-8"))
    assert config["data"]["prompts"] == ["a video of {}", "{} in a clip"]
    assert config["data"]["descriptions_file"] == "descriptions.yaml"  # in the dataset folder: relative


@pytest.mark.parametrize("command", [["detect"], ["extract"], ["train"], ["evaluate"], ["text-embeddings"],
                                     ["checkpoint", "info"]])
def test_help_names_arguments_without_python_types(command, capsys, monkeypatch):
    from cli_runner import run_cli

    code, out, _ = run_cli([*command[1:], "-h"], capsys, monkeypatch, command=command[0])
    assert code == 0 and "<list[str]>" not in out and "<str>" not in out
    if command == ["detect"]:
        assert "  INPUTS...  Video files, folders" in out
