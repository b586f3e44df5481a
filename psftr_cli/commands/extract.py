"""``psftr extract``: CLIP features from videos into a feature dataset folder."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from psftr_cli import options
from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED, DEFAULT_STRIDE


def extract(
    videos: List[str] = typer.Argument(
        ..., metavar="VIDEOS", help="Video files, folders (recursive), glob patterns or @list.txt files."
    ),
    output: Path = typer.Option(..., "--output", "-o", metavar="DIR", help="Output dataset folder (created if needed)."),
    clip_model: str = options.clip_model(DEFAULT_CLIP_MODEL, help="open_clip architecture name."),
    clip_pretrained: str = options.clip_pretrained(DEFAULT_CLIP_PRETRAINED),
    clip_config: Optional[Path] = options.clip_config(),
    stride: Optional[int] = options.stride(help="Frames per feature (the THUMOS14 convention); the centre frame "
                                                "is encoded."),
    fps: Optional[float] = options.fps(),
    dtype: str = options.compute_dtype(),
    batch_size: int = options.batch_size(),
    device: str = options.device(),
    quantize: Optional[str] = typer.Option(
        None, "--quantize", metavar="int8", show_default=False,
        help="Dynamic int8 quantization of the image tower (CPU); reports the drift from fp32.",
    ),
    precision: Optional[str] = typer.Option(None, "--precision", hidden=True,
                                            help="Deprecated spelling of --dtype."),
    decoder: str = options.decoder(),
    decode_workers: int = typer.Option(
        0, "--decode-workers", metavar="N", show_default=True,
        help="Videos decoded at once (0: 1 on CPU, up to 4 with a GPU).",
    ),
    shard: Optional[str] = typer.Option(
        None, "--shard", metavar="I/N|auto", show_default="RANK/WORLD_SIZE when set",
        help="Process the I-th of N parts of the videos; auto: this Slurm array task's part "
             "(SLURM_ARRAY_TASK_ID/COUNT), and/or RANK/WORLD_SIZE.",
    ),
    quiet: bool = options.quiet(help="No progress bar (the summary and failures still go to stderr)."),
    engine: str = options.engine("encoded"),
    address: Optional[str] = options.ray_address(),
    workers: Optional[int] = options.ray_workers(),
    gpus_per_worker: Optional[float] = options.ray_gpus_per_worker(),
) -> None:
    """Extract CLIP image features from videos; re-running skips finished videos."""
    from psftr_cli.extract_render import ExtractProgress, print_summary
    from psftr_cli.render import stderr_console
    from psftr_core.errors import InputError
    from psftr_core.features.extract import ExtractOptions, extract_features

    if stride is not None and fps is not None:
        raise InputError("give either --stride or --fps, not both")
    if precision is not None:
        if dtype != "auto" and dtype != precision:
            raise InputError(f"--precision is the old name of --dtype: give one of them, not --dtype {dtype} "
                             f"--precision {precision}")
        typer.echo("psftr: --precision is deprecated; use --dtype", err=True)
        dtype = precision
    extract_options = ExtractOptions(
        clip_model=clip_model,
        clip_pretrained=clip_pretrained,
        clip_config=str(clip_config) if clip_config is not None else None,
        stride=stride if stride is not None else (None if fps is not None else DEFAULT_STRIDE),
        fps=fps,
        dtype=dtype,
        batch_size=batch_size,
        device=device,
        quantize=quantize,
        shard=shard,
        decoder=decoder,
        decode_workers=decode_workers,
    )
    ray_options = options.ray_options(engine, address, workers, gpus_per_worker)  # before anything is read
    if ray_options is not None:
        from psftr_core.features.ray_extract import RayEngine

        ray_engine = RayEngine(ray_options)  # imports ray: exit 2 with the install command when missing
    else:
        ray_engine = None
    console = stderr_console()
    try:
        with ExtractProgress(console, show_bar=not quiet) as progress:
            summary = extract_features(videos, output, extract_options, listener=progress, engine=ray_engine)
    except KeyboardInterrupt:
        typer.echo(
            "psftr: interrupted; finished videos are saved, run the same command again to resume", err=True
        )
        raise typer.Exit(130) from None
    print_summary(summary, console)
    summary.raise_for_failures()
