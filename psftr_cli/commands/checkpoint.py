"""``psftr checkpoint info FILE|REF``: what a checkpoint is, without running it.

The facts come from ``psftr_core.runtime.checkpoint.describe_checkpoint`` (the file is
read by the validated ``load_checkpoint``, ``weights_only``); a hub reference or URL is
resolved as ``--checkpoint`` is (``psftr_core.runtime.checkpoint_ref``). Text on stdout,
or with ``--json`` the description as one JSON document (docs/formats.md). Registered
as a sub-app by ``psftr_cli.main``. No torch import at module level.
"""

from __future__ import annotations

import json
from typing import Any, Optional

import typer

HELP = "Inspect checkpoints: psftr checkpoint info FILE|hf:OWNER/REPO/FILE[@REV]|URL."
NAMES_SHOWN = 10  # without --names, the vocabulary line shows this many


def info(
    checkpoint: str = typer.Argument(
        ..., metavar="FILE|REF",
        help="Checkpoint file, run directory (its last.pt), hf:OWNER/REPO/FILE[@REVISION] or https:// URL.",
    ),
    checkpoint_sha256: Optional[str] = typer.Option(
        None, "--checkpoint-sha256", metavar="HEX", show_default=False,
        help="The file's SHA-256, checked before it is loaded (required for a URL).",
    ),
    names: bool = typer.Option(False, "--names", help="List every class of the vocabulary."),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON on stdout."),
) -> None:
    """Print what a checkpoint is: data, split, vocabulary, CLIP, features, inference, size."""
    from pathlib import Path

    from psftr_core.runtime.checkpoint import describe_checkpoint, load_checkpoint
    from psftr_core.runtime.checkpoint_ref import is_remote, resolve_checkpoint_ref

    path = resolve_checkpoint_ref(checkpoint, checkpoint_sha256, option="checkpoint")
    if not is_remote(checkpoint) and path.is_dir() and (path / "last.pt").is_file():
        path = Path(path) / "last.pt"  # a run directory: its reported checkpoint
    facts = {"checkpoint": str(path), "reference": checkpoint if is_remote(checkpoint) else None,
             **describe_checkpoint(load_checkpoint(path))}
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
        return
    for label, value in _lines(facts, names):
        typer.echo(f"{label:<12} {value}")


def _lines(facts: dict, all_names: bool) -> list[tuple[str, str]]:
    """(label, text) rows of the text output."""
    from psftr_cli.render import counted  # rich: not at import time (psftr --help stays fast)

    split, feats, epochs = facts["split"], facts["features"], facts["epochs"]
    lines = [("checkpoint", facts["checkpoint"])]
    if facts["reference"]:
        lines.append(("reference", facts["reference"]))
    lines += [
        ("dataset", f"{facts['dataset']}, split {split['ratio']}/{split['index']} "
                    f"({split['seen']} seen, {counted(split['unseen'], 'unseen class')})"),
        ("vocabulary", _vocabulary(facts["vocabulary"], all_names)),
        ("CLIP", _clip(facts["clip"])),
        ("features", _features(feats)),
        ("inference", _settings(facts["inference"])),
        ("calibration", _calibration(facts["calibration"])),
        ("epochs", f"{epochs['completed']} of {epochs['total']}" + (", resumable" if facts["resumable"] else "")),
        ("model", f"{facts['parameters']:,} tensor values ({facts['bytes'] / 2**20:.1f} MiB), "
                  f"preset {facts['preset'] or 'unknown'}"),
        ("versions", f"psftr {facts['psftr_version'] or 'unknown'}, torch {facts['torch_version'] or 'not recorded'}, "
                     f"format {facts['format_version']}"),
    ]
    return lines


def _vocabulary(vocabulary: dict, all_names: bool) -> str:
    from psftr_cli.render import counted

    names = vocabulary["names"]
    shown = names if all_names else names[:NAMES_SHOWN]
    more = "" if len(shown) == len(names) else f", ... (--names lists all {len(names)})"
    return f"{counted(vocabulary['size'], 'seen class')}: {', '.join(shown)}{more}"


def _clip(clip: dict) -> str:
    if not clip["model"]:
        return "not recorded (only the feature width is checked)"
    weights = clip["weights_id"] or clip["pretrained"] or "unknown weights"
    return f"{clip['model']}, weights {weights}"


def _features(feats: dict) -> str:
    rate = f", {feats['fps']:g} features/s" if feats["fps"] else ""
    frames = f", {feats['frames_per_feature']} frames per feature" if feats["frames_per_feature"] else ""
    return f"{feats['dim']}-d{rate}{frames}, class text from {feats['text_source'] or 'clip'}"


def _settings(settings: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in settings.items() if value is not None)


def _calibration(record: dict) -> str:
    from psftr_cli.render import counted

    if record["status"] == "none":
        return "not calibrated (the config's inference settings)"
    if record["status"] == "skipped":
        return f"skipped: {record['skipped']}"
    score: Any = record["held_out_average_map"]
    threshold: Any = record["score_threshold"]
    return (f"chose {record['chosen']} (held-out average mAP {'?' if score is None else f'{score:.4f}'} on "
            f"{counted(record['held_out_classes'], 'held-out seen class')}), detect threshold "
            f"{'none' if threshold is None else f'{threshold:g}'}")


COMMANDS: list = [("info", info)]
