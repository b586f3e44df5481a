"""``psftr text-embeddings``: encode a dataset's class names once into ``text_embeddings.npz``.

With that file in the dataset (``text_embeddings:`` in ``dataset.yaml``; for
``thumos14``/``anet``, ``text_embeddings.npz`` in the data root) ``psftr train`` and
``psftr evaluate`` need no CLIP weights: run this where the weights are, copy the file.
The CLIP model is chosen as for ``psftr train`` (the features' own, ``--clip-*`` checked
against it). Writes the file atomically and refuses to replace an existing one; prints
its path on stdout. No torch import at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from psftr_cli import options
from psftr_core.errors import InputError


_CLIP_MODEL, _CLIP_PRETRAINED, _CLIP_CONFIG = options.text_tower_options()

def text_embeddings(
    dataset: str = typer.Option(
        ..., "--dataset", help=f"Built-in dataset ({options.BUILTIN_DATASETS_TEXT}) or a dataset folder with a dataset.yaml.",
        metavar="NAME|DIR",
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="The .npz to write [default: text_embeddings.npz in the dataset folder].",
        metavar="FILE.npz",
    ),
    data_root: Optional[Path] = typer.Option(
        None, "--data-root", help="Folder with the built-in dataset's features (default $PSFTR_DATA/<name>).",
        metavar="DIR",
    ),
    clip_model: Optional[str] = _CLIP_MODEL,
    clip_pretrained: Optional[str] = _CLIP_PRETRAINED,
    clip_config: Optional[Path] = _CLIP_CONFIG,
    prompt: Optional[str] = typer.Option(
        None, "--prompt", help='Prompt template [default: "a video of a person doing {}", as psftr train].',
        metavar="TEMPLATE",
    ),
    device: str = options.device(),
    dtype: str = typer.Option("auto", "--dtype", metavar="auto|float32|bfloat16|float16", show_default=True,
                              help="What the text tower computes in; auto: float32 (milliseconds per name, "
                                   "and the same embeddings on every machine)."),
) -> None:
    """Encode a dataset's class names with CLIP into text_embeddings.npz (then training needs no CLIP)."""
    from psftr_cli.render import stderr_console
    from psftr_core.data.datasets import load_dataset
    from psftr_core.device import resolve_device
    from psftr_core.features.text import TEXT_EMBEDDINGS_NAME, dataset_text_embeddings, save_text_embeddings
    from psftr_core.features.compute_dtype import check_compute_dtype
    from psftr_core.runtime.clip_source import ClipRequest, dataset_text_tower

    check_compute_dtype(dtype)
    data = load_dataset(dataset, data_root=data_root)
    path = output if output is not None else Path(data.root) / TEXT_EMBEDDINGS_NAME
    if path.exists():
        raise InputError(f"{path} exists; remove it first or give another --output")
    from psftr_core.io.paths import prepare_output_file

    path = prepare_output_file(path, "--output")  # before loading CLIP: an unwritable path is exit 2 at once
    tower = dataset_text_tower(data, ClipRequest(clip_model, clip_pretrained, clip_config))
    table = dataset_text_embeddings(data, tower, prompt, device=resolve_device(device), dtype=dtype)
    save_text_embeddings(path, table)
    console = stderr_console()
    width = len(next(iter(table.values())))
    computed = f", computed in {dtype}" if dtype not in ("auto", "float32") else ""
    console.print(f"wrote {len(table)} class embeddings ({width}-d, {tower.describe()}{computed}) to {path}",
                  markup=False, soft_wrap=True)
    if (Path(data.root) / "dataset.yaml").is_file() and data.text_embeddings is None:
        console.print(f"to use them, add 'text_embeddings: {path.name}' to {Path(data.root) / 'dataset.yaml'} "
                      "(a copy next to it)", markup=False, soft_wrap=True)
    typer.echo(str(path))
