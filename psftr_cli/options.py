"""Typer options shared by the commands: one name, metavar and help style each.

Metavars say what a value looks like (``NAME``, ``TAG|PATH``, ``FILE.json``, ``DIR``,
``auto|cpu|cuda``, ``N``, ``F``); an option that has a default shows it, as a value or, when
it depends on other inputs, as a short text (``show_default="..."``). Each factory
returns a fresh ``typer.Option`` to use as a parameter default::

    def detect(device: str = options.device(), quiet: bool = options.quiet()): ...

No torch or open_clip import here (``psftr --help`` stays fast).
"""

from __future__ import annotations

from typing import Any, Callable

import typer

from psftr_core.data.builtins import builtin_names
from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, DEFAULT_PROMPT, DEFAULT_STRIDE

# The built-in datasets as help texts name them (the registry of psftr_core.data.builtins).
BUILTIN_DATASETS_TEXT = ", ".join(builtin_names())


def clip_model(default: str | None = None, default_text: str | None = None, help: str = "open_clip model name.") -> Any:
    """``--clip-model NAME``; ``default_text`` when the default depends on other inputs."""
    return typer.Option(default, "--clip-model", metavar="NAME", help=help,
                        show_default=default_text or (default if default is not None else DEFAULT_CLIP_MODEL))


def clip_pretrained(
    default: str | None = None, default_text: str | None = None,
    help: str = "open_clip weights tag, or a local weights file (.pt/.bin/.safetensors).",
) -> Any:
    """``--clip-pretrained TAG|PATH``."""
    return typer.Option(default, "--clip-pretrained", metavar="TAG|PATH", help=help,
                        show_default=default_text or (default if default is not None else DEFAULT_CLIP_PRETRAINED))


def clip_config(help: str = "open_clip model-config JSON of a custom architecture (named by its file stem).") -> Any:
    """``--clip-config FILE.json``."""
    return typer.Option(None, "--clip-config", metavar="FILE.json", help=help, show_default=False)


def choices(*values: str) -> Callable[[str], list[str]]:
    """Shell completion of an option's value (``psftr --install-completion``): the
    ``values`` that start with what was typed."""
    def complete(incomplete: str) -> list[str]:
        return [value for value in values if value.startswith(incomplete)]

    return complete


def device(help: str = "Where the models run (auto: the GPU if there is one).") -> Any:
    """``--device auto|cpu|cuda``."""
    return typer.Option("auto", "--device", metavar="auto|cpu|cuda", help=help, show_default=True,
                        autocompletion=choices("auto", "cpu", "cuda"))


def cache_dir(help: str = "Feature and text cache folder.") -> Any:
    """``--cache-dir DIR``."""
    return typer.Option(None, "--cache-dir", metavar="DIR", help=help,
                        show_default="$PSFTR_CACHE_DIR or ~/.cache/psftr")


def stride(default_text: str = str(DEFAULT_STRIDE), help: str = "Frames per feature (one frame every N is encoded).") -> Any:
    """``--stride N``."""
    return typer.Option(None, "--stride", metavar="N", help=help, show_default=default_text)


def fps(help: str = "Features per second, instead of --stride.") -> Any:
    """``--fps F``."""
    return typer.Option(None, "--fps", metavar="F", help=help, show_default=False)


def batch_size(help: str = "Frames per CLIP image-tower call.") -> Any:
    """``--batch-size N``."""
    return typer.Option(16, "--batch-size", metavar="N", help=help, show_default=True)


def compute_dtype(help: str = "What the image tower computes in; auto: float16 on CUDA, bfloat16 on a CPU "
                                "that computes it natively, else float32. Feature files are float32 with "
                                "float32, float16 otherwise.") -> Any:
    """``--dtype``: the CLIP tower's compute dtype."""
    return typer.Option("auto", "--dtype", metavar="auto|float32|bfloat16|float16", help=help, show_default=True,
                        autocompletion=choices("auto", "float32", "bfloat16", "float16"))


def decoder(help: str = "Video decoder: decord where installed and able, else PyAV.") -> Any:
    """``--decoder auto|decord|pyav``."""
    return typer.Option("auto", "--decoder", metavar="auto|decord|pyav", help=help, show_default=True,
                        autocompletion=choices("auto", "decord", "pyav"))


def prompt(default_text: str = f'"{DEFAULT_PROMPT}"',
           help: str = "Text prompt template ({} is the action); repeat it for several templates, whose "
                       "embeddings (and the actions file's descriptions) are averaged per action.") -> Any:
    """``--prompt TEMPLATE`` (repeatable: the parameter is a list)."""
    return typer.Option(None, "--prompt", metavar="TEMPLATE", help=help, show_default=default_text)


def quiet(help: str = "No progress bar or summary on stderr.") -> Any:
    """``-q/--quiet``."""
    return typer.Option(False, "--quiet", "-q", help=help, show_default=True)


# The commands that encode class names (train, evaluate, text-embeddings) default to the
# CLIP model that made the features (psftr_core.runtime.clip_source).
TEXT_TOWER_MODEL_DEFAULT = f"the features' model; ViT-B-16 for {BUILTIN_DATASETS_TEXT}"
TEXT_TOWER_PRETRAINED_DEFAULT = "the features'; openai"


def text_tower_options() -> tuple[Any, Any, Any]:
    """``--clip-model``, ``--clip-pretrained``, ``--clip-config`` of the class-name text tower."""
    return (
        clip_model(default_text=TEXT_TOWER_MODEL_DEFAULT, help="open_clip model of the class-name text tower."),
        clip_pretrained(default_text=TEXT_TOWER_PRETRAINED_DEFAULT,
                        help="Its weights: an open_clip tag, or a local weights file (works offline)."),
        clip_config(help="open_clip model-config JSON of a custom architecture [default: the one recorded in "
                         "manifest.json]."),
    )


def check_inputs_first(dataset: str, files: list[tuple[str, Any]]) -> None:
    """Before the slow imports (torch): ``dataset`` names a dataset folder or a built-in,
    and each ``(flag, path)`` given is a file; InputError (exit 2) naming the first that is
    not (``--config file not found: PATH``)."""
    from pathlib import Path

    from psftr_core.data.datasets import dataset_location
    from psftr_core.errors import InputError

    dataset_location(dataset)
    for flag, path in files:
        if path is not None and not Path(path).expanduser().is_file():
            raise InputError(f"{flag} file not found: {path}")


# --engine ray (psftr extract, psftr detect): a Ray actor pool, optional extra psftr[ray].
def engine(what: str) -> Any:
    """``--engine local|ray``; ``what``: what the pool's actors do, for the help."""
    return typer.Option(
        "local", "--engine", metavar="local|ray", show_default=True, autocompletion=choices("local", "ray"),
        help=f"Where videos are {what}: this process, or a Ray actor pool (pip install 'psftr[ray]'; "
             "every node must read the videos, the model files and the outputs under the same paths).",
    )


def ray_address() -> Any:
    return typer.Option(None, "--address", metavar="ADDR", show_default="a local Ray",
                        help="With --engine ray: the cluster to join (auto, ray://HOST:10001).")


def ray_workers() -> Any:
    return typer.Option(None, "--workers", metavar="N", show_default="one per GPU, else one per 4 CPUs",
                        help="With --engine ray: actors in the pool, each with its own CLIP.")


def ray_gpus_per_worker() -> Any:
    return typer.Option(None, "--gpus-per-worker", metavar="G", show_default="1 with GPUs, else 0",
                        help="With --engine ray: GPUs reserved per actor (0.5 puts two on a GPU).")


def ray_options(engine: str, address: str | None, workers: int | None, gpus_per_worker: float | None) -> Any:
    """None for ``--engine local``, else the pool's ``RayOptions``; InputError naming a Ray
    flag given without ``--engine ray``, or an unknown engine. Does not import ray."""
    from psftr_core.errors import InputError
    from psftr_core.features.ray_pool import RayOptions

    if engine not in ("local", "ray"):
        raise InputError(f"--engine {engine}: expected local or ray")
    given = [flag for flag, value in (("--address", address), ("--workers", workers),
                                      ("--gpus-per-worker", gpus_per_worker)) if value is not None]
    if engine != "ray":
        if given:
            raise InputError(f"{given[0]} is for --engine ray (got --engine {engine})")
        return None
    return RayOptions(address=address, workers=workers, gpus_per_worker=gpus_per_worker)
