"""``psftr extract``: CLIP features from videos into a feature dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from psftr_cli import options
from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED


def extract(
    videos: List[str] = typer.Argument(
        ..., metavar="VIDEOS", help="Video files, folders (recursive), glob patterns or @list.txt files."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output dataset folder (created if needed)."),
    clip_model: str = typer.Option(DEFAULT_CLIP_MODEL, "--clip-model", help="open_clip architecture name."),
    clip_pretrained: str = typer.Option(
        DEFAULT_CLIP_PRETRAINED, "--clip-pretrained", help="open_clip weights tag (e.g. openai) or a local weights file."
    ),
    clip_config: Optional[Path] = typer.Option(
        None, "--clip-config", help="open_clip model-config JSON of a custom architecture (named by its file stem)."
    ),
    stride: Optional[int] = typer.Option(
        None, "--stride", help="Frames per feature (default 8, the THUMOS14 convention); the centre frame is encoded."
    ),
    fps: Optional[float] = typer.Option(None, "--fps", help="Features per second instead of --stride."),
    dtype: str = typer.Option("float16", "--dtype", help="Feature file dtype: float16 or float32."),
    batch_size: int = options.batch_size(),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    quantize: Optional[str] = typer.Option(
        None, "--quantize", help="int8: dynamic quantization of the image tower (CPU); reports drift from fp32."
    ),
    precision: str = typer.Option(
        "auto", "--precision", help="auto, float32 or float16 (CUDA autocast); auto: float16 on CUDA, float32 on CPU."
    ),
    decoder: str = options.decoder(),
    decode_workers: int = typer.Option(
        0, "--decode-workers", help="Videos decoded at once (0: 1 on CPU, up to 4 with a GPU)."
    ),
    shard: Optional[str] = typer.Option(
        None, "--shard", help="I/N: process the I-th of N parts (default: RANK/WORLD_SIZE when set)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Extract CLIP image features from videos; re-running skips finished videos."""
    from psftr_cli.extract_render import ExtractProgress, print_summary, stderr_console
    from psftr_core.errors import InputError
    from psftr_core.features.extract import ExtractOptions, extract_features

    if stride is not None and fps is not None:
        raise InputError("give either --stride or --fps, not both")
    options = ExtractOptions(
        clip_model=clip_model,
        clip_pretrained=clip_pretrained,
        clip_config=str(clip_config) if clip_config is not None else None,
        stride=stride if stride is not None else (None if fps is not None else 8),
        fps=fps,
        dtype=dtype,
        batch_size=batch_size,
        device=device,
        quantize=quantize,
        shard=shard,
        decoder=decoder,
        decode_workers=decode_workers,
        precision=precision,
    )
    console = stderr_console()
    try:
        with ExtractProgress(console, show_bar=not quiet) as progress:
            summary = extract_features(videos, output, options, listener=progress)
    except KeyboardInterrupt:
        typer.echo(
            "psftr: interrupted; finished videos are saved, run the same command again to resume", err=True
        )
        raise typer.Exit(130) from None
    print_summary(summary, console)
    summary.raise_for_failures()
