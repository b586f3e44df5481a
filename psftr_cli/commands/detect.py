"""``psftr detect``: videos (or a feature dataset) + actions → segments, written as each
video finishes.

Outputs, all fed one video at a time (``psftr_core.io.detect_outputs.DetectOutputs``):

- the data stream: stdout (no ``--output``, or ``--output -``) or ``--output FILE``
  (streamed to a temporary file, renamed at the end: atomic), in one format of the
  registry ``psftr_core.io.formats`` (some hold one video per file). Stream formats on
  stdout are flushed per video; json is one document, complete when the run ends;
- ``--output-dir DIR``: ``DIR/<video>.<ext>`` per video and format, each written
  atomically as the video finishes; a re-run with the same settings skips finished
  videos before loading their features (``psftr_core.io.output_dir``);
- ``--report FILE.html`` (the review page) and ``--timeline DIR`` (PNGs) at the end; an
  interrupted run still writes the report of the videos done.

Progress, warnings and the summary table go to stderr, so pipes stay clean. Exit codes:
0 ok, 2 bad input (e.g. a missing path, named), 3 some videos failed (the others are
written), 1 all failed, 130 interrupted, 143 SIGTERM. No torch import at module level.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path
from typing import Any, Iterator, List, Optional

import typer

from psftr_cli import options
from psftr_core.defaults import DEFAULT_STRIDE, DEFAULT_THRESHOLDS

SUMMARY_ACTION_ROWS = 20  # the summary lists at most this many actions


def _format_help() -> str:
    """The ``--format`` help, from the format registry (a format listed there shows up by itself)."""
    from psftr_core.io.formats import OUTPUT_FORMATS

    named = [f"{fmt.name} ({fmt.summary})" if fmt.summary else fmt.name for fmt in OUTPUT_FORMATS.values()]
    listing = " or ".join([", ".join(named[:-1]), named[-1]] if len(named) > 1 else named)
    single = [fmt.name for fmt in OUTPUT_FORMATS.values() if fmt.single_video]
    one_video = f" One video per file: {', '.join(single)}." if single else ""
    return f"{listing}.{one_video} With --output-dir: repeatable, or all."


def _complete_format(incomplete: str) -> list[str]:
    """Shell completion of ``--format``: the registry's formats (also those whose extra is
    missing: naming one says how to install it) and ``all``."""
    from psftr_core.io.formats import MISSING_FORMATS, OUTPUT_FORMATS

    return options.choices(*OUTPUT_FORMATS, *MISSING_FORMATS, "all")(incomplete)


def detect(
    ctx: typer.Context,
    inputs: Optional[List[str]] = typer.Argument(
        None,
        help="Video files, folders (recursive), glob patterns or @list.txt files. With --features: "
        "optional video ids of that dataset.",
        show_default=False,
        metavar="INPUTS",
    ),
    actions: Optional[List[str]] = typer.Option(
        None, "--actions", "-a", metavar="A,B", show_default=False,
        help='Comma-separated action names, e.g. "diving,pole vault" (repeatable).',
    ),
    actions_file: Optional[Path] = typer.Option(
        None, "--actions-file", metavar="FILE", show_default=False,
        help="Actions: one per line (names may contain commas; '#' lines are comments), or with descriptions: "
        "YAML (name: [description, ...]), TSV (name<TAB>description...) or GAP's description JSON.",
    ),
    checkpoint: Optional[str] = typer.Option(
        None, "--checkpoint", metavar="CKPT|REF", show_default="the training-free localizer",
        help="PSFTR checkpoint from psftr train: a file, hf:OWNER/REPO/FILE[@REVISION] (hub cache) or an "
        "https:// URL (with --checkpoint-sha256).",
    ),
    checkpoint_sha256: Optional[str] = typer.Option(
        None, "--checkpoint-sha256", metavar="HEX", show_default=False,
        help="The checkpoint's SHA-256, checked before it is loaded (required for a URL).",
    ),
    features: Optional[str] = typer.Option(
        None, "--features", metavar="DIR", show_default=False,
        help="Run on an extracted feature dataset (folder with dataset.yaml) instead of videos.",
    ),
    clip_model: Optional[str] = options.clip_model(default_text="ViT-B-16, or the checkpoint's"),
    clip_pretrained: Optional[str] = options.clip_pretrained(default_text="openai, or the checkpoint's"),
    clip_config: Optional[Path] = options.clip_config(),
    cache_dir: Optional[Path] = options.cache_dir(),
    fmt: Optional[List[str]] = typer.Option(
        None, "--format", metavar="FORMAT", show_default="csv if --output ends in .csv, else json",
        help=_format_help(), autocompletion=_complete_format,
    ),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", metavar="FILE|-", show_default="stdout, or none with --output-dir",
        help="Output file (written atomically at the end), or - for stdout.",
    ),
    output_dir: Optional[Path] = typer.Option(
        None, "--output-dir", metavar="DIR", show_default=False,
        help="Also write DIR/<video>.<format> per video as it finishes; a re-run with the same settings "
        "skips the finished videos.",
    ),
    report: Optional[Path] = typer.Option(
        None, "--report", metavar="FILE.html", show_default=False,
        help="Write an HTML review page: per video the player, one lane per action, score and action filters.",
    ),
    threshold: Optional[List[str]] = typer.Option(
        None,
        "--threshold",
        metavar="T|NAME=T",
        help="Minimum score: 0.3 for all actions, or name=0.3 for one action (repeatable).",
        show_default=f"{DEFAULT_THRESHOLDS['localizer']:g} training-free (0.6 with --score independent); a "
        "checkpoint's calibrated threshold, "
        f"else {DEFAULT_THRESHOLDS['psftr']:g}",
    ),
    top_k: Optional[int] = typer.Option(
        None, "--top-k", metavar="N", show_default="no limit", help="Keep at most N segments per video (best scores)."
    ),
    min_duration: float = typer.Option(
        0.0, "--min-duration", metavar="S", show_default=True, help="Drop segments shorter than S seconds."
    ),
    score: Optional[str] = typer.Option(
        None, "--score", metavar="relative|independent", show_default="relative",
        autocompletion=options.choices("relative", "independent"),
        help="Training-free localizer: score each action relative to the others asked for, or on its own "
        "(the same score whatever the other names; default threshold 0.6).",
    ),
    keep_nested: bool = typer.Option(
        False, "--keep-nested", show_default=True,
        help="Keep a segment that lies within (or holds) a stronger segment of its action (dropped by default).",
    ),
    nms_iou: Optional[float] = typer.Option(
        None, "--nms-iou", metavar="IOU",
        show_default="the model's: a checkpoint's inference.nms_iou (0.4 unless trained otherwise), 0.5 training-free",
        help="tIoU threshold of the class-wise NMS (1 keeps overlapping segments).",
    ),
    clips: Optional[Path] = typer.Option(
        None, "--clips", metavar="DIR", show_default=False,
        help="Cut each segment into its own video, DIR/<video>/<label>_<start>.mp4 (stream copy from a keyframe, "
        "else re-encoded); a re-run skips the clips already there.",
    ),
    clip_padding: float = typer.Option(
        0.0, "--clip-padding", metavar="S", show_default=True,
        help="With --clips: seconds added before and after each segment (clamped to the video).",
    ),
    timeline: Optional[Path] = typer.Option(
        None, "--timeline", metavar="DIR", show_default=False, help="Write one timeline PNG per video into DIR."
    ),
    device: str = options.device(),
    stride: Optional[int] = options.stride(default_text=f"{DEFAULT_STRIDE}, or the checkpoint's rate"),
    fps: Optional[float] = options.fps(),
    batch_size: int = options.batch_size(),
    decoder: str = options.decoder(),
    dtype: str = options.compute_dtype("What the image tower computes in (video inputs); auto: float16 on CUDA, "
                                       "bfloat16 on a CPU that computes it natively, else float32."),
    prompt: Optional[List[str]] = options.prompt(),
    quiet: bool = options.quiet(),
    engine: str = options.engine("decoded, encoded and detected"),
    address: Optional[str] = options.ray_address(),
    workers: Optional[int] = options.ray_workers(),
    gpus_per_worker: Optional[float] = options.ray_gpus_per_worker(),
) -> None:
    """Find actions of a custom vocabulary in videos; write segments as each video finishes."""
    from psftr_cli.render import print_lines, stderr_console
    from psftr_core.infer.detect import Failure, start_detection
    from psftr_core.data.vocabulary import parse_action_texts, parse_thresholds

    # prompt: None or one template as before; several templates or descriptions: a TextRecipe (averaged)
    vocabulary, prompt = parse_action_texts(actions, actions_file, prompt)
    global_threshold, per_action = parse_thresholds(threshold)
    _check_checkpoint_options(checkpoint, checkpoint_sha256)
    ray_options = options.ray_options(engine, address, workers, gpus_per_worker)
    from psftr_core.io.detect_outputs import DetectOutputs, output_formats
    from psftr_core.io.paths import prepare_output_dir, prepare_output_file

    _check_clip_options(clips, clip_padding, features)
    dir_formats, stream_format = output_formats(fmt, output, output_dir)
    stream_to = output if output is not None else (None if output_dir is not None else "-")
    _refuse_outputs_over_inputs(
        {"--output": None if stream_to in (None, "-") else stream_to, "--report": report,
         "--output-dir": _folder_outputs(output_dir, dir_formats), "--timeline": _folder_outputs(timeline, ["png"]),
         "--clips": _folder_outputs(clips, ["mp4"])},
        inputs, features, [actions_file, checkpoint, clip_config, clip_pretrained],
    )
    # Every output is checked before any work: an unwritable path costs no decoding.
    if stream_to not in (None, "-"):
        stream_to = str(prepare_output_file(stream_to, "--output"))
    if output_dir is not None:
        output_dir = prepare_output_dir(output_dir, "--output-dir")
    if timeline is not None:
        timeline = prepare_output_dir(timeline, "--timeline")
    if clips is not None:
        clips = prepare_output_dir(clips, "--clips")
    if report is not None:
        report = prepare_output_file(report, "--report")

    checkpoint = _checkpoint_file(checkpoint, checkpoint_sha256, cache_dir)  # may download: after the checks
    pool = None
    if ray_options is not None:
        from psftr_core.infer.ray_detect import RayDetectEngine

        pool = RayDetectEngine(ray_options)  # imports ray: exit 2 with the install command when missing
    console = stderr_console()
    run = start_detection(
        list(inputs or []), vocabulary, checkpoint=checkpoint, features_dir=features, clip_model=clip_model,
        clip_pretrained=clip_pretrained, clip_config=clip_config, cache_dir=cache_dir, threshold=global_threshold,
        per_action_thresholds=per_action, top_k=top_k, min_duration=min_duration, keep_nested=keep_nested,
        score=score, nms_iou=nms_iou, stride=stride, fps=fps, device=device, prompt=prompt, batch_size=batch_size,
        decoder=decoder, dtype=dtype, engine=pool,
        **_injected(ctx),
    )
    print_lines(console, "warning", run.warnings)
    warned = len(run.warnings)
    with contextlib.ExitStack() as stack:
        if pool is not None:
            stack.callback(pool.close)  # also when an output is refused before any video runs
        outputs = DetectOutputs(run, functools.partial(_open_stream, stack, stream_to), stream_to=stream_to,
                                stream_format=stream_format, output_dir=output_dir,
                                dir_formats=dir_formats, collect=report is not None or timeline is not None,
                                clips_dir=clips, clip_padding=clip_padding)
        if outputs.rerun_note:
            print_lines(console, "note", ["finished videos in --output-dir are processed again (from the feature "
                                           "cache) for the other outputs: add --format jsonl to read them back"])
        try:
            with _progress(console, quiet) as on_progress:
                # Decoding reads ahead, so the finished videos are forecast up front; their saved
                # outputs are passed on (resume) at each one's turn, keeping the stream in id order.
                for result in run.results(skip=outputs.resume, will_skip=outputs.will_skip, on_progress=on_progress,
                                          files=outputs.file_targets):
                    if isinstance(result, Failure):
                        print_lines(console, "failed", [f"{result.input}: {result.reason}"])
                    else:
                        outputs.add(result, files_written=pool is not None)  # a Ray worker wrote its files
        except BaseException:
            if report is not None and outputs.results:  # Ctrl-C or a crash: keep what is done
                _write_report(report, outputs, run, partial=True)
                console.print(f"wrote {report} ({len(outputs.results)} of {len(run.inputs)} videos)",
                              markup=False, soft_wrap=True)
            raise
        final = run.report()
        if not final.videos and not final.stats["skipped"]:
            final.raise_for_failures()  # all failed: nothing to write (the output file is not created)
        outputs.close()
    print_lines(console, "warning", run.warnings[warned:])
    if timeline is not None:
        from psftr_core.io.timeline import write_timelines

        write_timelines(timeline, outputs.results, run.actions, outputs.durations)
    if report is not None:
        _write_report(report, outputs, run, partial=False)
    if not quiet:
        _print_summary(console, final, outputs, output, output_dir, timeline, report)
        print_lines(console, "note", [hint] if (hint := run.zero_segments_hint()) else [])
        if clips is not None:
            _print_clips(console, outputs.clips, clips)
    print_lines(console, "failed", [f"clips of {failure}" for failure in outputs.clip_failures])
    final.raise_for_failures()
    if outputs.clip_failures:
        from psftr_core.errors import PartialFailure

        raise PartialFailure(f"the clips of {len(outputs.clip_failures)} video(s) could not be cut; the other "
                             "outputs were written")


def _check_clip_options(clips: Optional[Path], padding: float, features: Optional[str]) -> None:
    import math

    from psftr_core.errors import InputError

    if not math.isfinite(padding) or padding < 0:
        raise InputError(f"--clip-padding must be a number of seconds >= 0, got {padding}")
    if clips is None and padding:
        raise InputError("--clip-padding applies to --clips DIR: give both")
    if clips is not None and features is not None:
        raise InputError("--clips cuts the video files; --features DIR has features, no videos to cut")


def _print_clips(console: Any, records: list, folder: Path) -> None:
    """``clips: N in DIR (K stream-copied, M re-encoded, S already there)``."""
    written = [r for r in records if r.status == "written"]
    copied = sum(r.method == "copy" for r in written)
    parts = [f"{copied} stream-copied", f"{len(written) - copied} re-encoded"]
    if len(records) > len(written):
        parts.append(f"{len(records) - len(written)} already there")
    console.print(f"clips: {len(records)} in {folder} ({', '.join(parts)})", markup=False, soft_wrap=True)


def _check_checkpoint_options(checkpoint: Optional[str], sha256: Optional[str]) -> None:
    """A malformed reference or checksum is refused before any work (no download yet)."""
    from psftr_core.errors import InputError
    from psftr_core.runtime.checkpoint_ref import check_reference, normalise_sha256

    if sha256 is not None and checkpoint is None:
        raise InputError("--checkpoint-sha256 applies to --checkpoint: give both")
    if checkpoint is not None:
        check_reference(checkpoint)
        normalise_sha256(sha256)


def _checkpoint_file(checkpoint: Optional[str], sha256: Optional[str], cache_dir: Optional[Path]) -> Optional[Path]:
    """The local checkpoint file of ``--checkpoint`` (a hub reference or URL fetched into its cache)."""
    from psftr_core.runtime.checkpoint_ref import resolve_checkpoint_ref

    return None if checkpoint is None else resolve_checkpoint_ref(checkpoint, sha256, cache_dir=cache_dir)


def _folder_outputs(folder: Optional[Path], extensions: List[str]) -> List[Path]:
    """An output folder and the files in it that a run may replace (those with its extensions)."""
    from psftr_core.io.paths import files_in

    return [] if folder is None else [folder, *files_in(folder, extensions)]


def _refuse_outputs_over_inputs(outputs: dict, inputs: Optional[List[str]], features: Optional[str],
                                others: List[Any]) -> None:
    """Exit 2 naming both when an output is one of the files this run reads: the videos
    (or every file of the ``--features`` dataset) and the actions file, checkpoint and
    CLIP files."""
    from psftr_core.features.video import collect_videos
    from psftr_core.io.paths import files_under, refuse_outputs_over_inputs

    if features is not None:
        read = files_under(features) if Path(features).is_dir() else []
    else:
        read = collect_videos(list(inputs or []))[0] if inputs else []
    refuse_outputs_over_inputs(outputs, [*read, *(Path(p) for p in others if p is not None)])


def _injected(ctx: typer.Context) -> dict[str, Any]:
    """Options a caller passes in the click context, not on the command line: an
    ``extractor`` (``app(obj={"extractor": fake})``, as the tests' fake decoder)."""
    obj = ctx.obj if isinstance(ctx.obj, dict) else {}
    return {"extractor": obj["extractor"]} if obj.get("extractor") is not None else {}


def _open_stream(stack: contextlib.ExitStack, target: str, fmt: str) -> Any:
    """stdout, or ``target`` through a temporary file renamed when the stack closes."""
    newline = None if fmt == "json" else ""  # writers put their own line ends (JSON: the platform's)
    if target == "-":
        if hasattr(sys.stdout, "reconfigure"):  # data is UTF-8 whatever the locale
            sys.stdout.reconfigure(encoding="utf-8", newline=newline)
        return sys.stdout
    from psftr_core.io.atomic import atomic_open

    return stack.enter_context(atomic_open(target, "w", encoding="utf-8", newline=newline))


def _write_report(path: Path, outputs: Any, run: Any, partial: bool) -> None:
    from psftr_core.io.report import DEFAULT_TITLE, write_report

    title = DEFAULT_TITLE
    if partial:
        title += f" (interrupted: {len(outputs.results)} of {len(run.inputs)} videos)"
    # an interrupted run writes its page at once: no frames decoded for posters
    write_report(path, outputs.report_videos(), run.actions, title=title, details=run.details, posters=not partial)


def _print_summary(console: Any, report: Any, outputs: Any, output: Optional[str],
                   output_dir: Optional[Path], timeline_dir: Optional[Path], report_path: Optional[Path]) -> None:
    from rich.table import Table
    from rich.text import Text

    from psftr_core.data.vocabulary import display_name

    stats = report.stats
    per_action = report.segments_per_action()
    table = Table(title="psftr detect", title_justify="left", show_edge=False)
    table.add_column("action", overflow="fold")
    table.add_column("segments", justify="right")
    ranked = sorted(per_action.items(), key=lambda kv: (-kv[1], report.actions.index(kv[0])))
    for name, count in ranked[:SUMMARY_ACTION_ROWS]:
        table.add_row(Text(display_name(name)), str(count))  # Text: a name like "[red]" is not markup
    if len(ranked) > SUMMARY_ACTION_ROWS:
        rest = ranked[SUMMARY_ACTION_ROWS:]
        table.add_row(f"... {len(rest)} more actions", str(sum(c for _, c in rest)))
    console.print(table)
    cache = ""
    if stats.get("decoded") or stats.get("cache_hits"):
        cache = f", {stats['decoded']} decoded, {stats['cache_hits']} from cache"
    skipped = f", already done: {stats['skipped']}" if stats.get("skipped") else ""
    console.print(
        f"videos: {stats['videos']}, failed: {stats['failed']}{skipped}, segments: {stats['segments']}, "
        f"model: {stats['model']}, threshold: {stats['threshold']:g}{cache}, time: {stats['seconds']:.1f} s",
        markup=False,
        soft_wrap=True,
    )
    written = []
    if output and output != "-":
        written.append(str(output))
    if output_dir is not None:
        written.append(f"{output_dir}/ ({', '.join(outputs.dir_formats)})")
    if report_path is not None:
        written.append(str(report_path))
    if written:
        console.print(f"wrote {', '.join(written)}", markup=False, soft_wrap=True)
    if timeline_dir is not None:
        console.print(f"timelines in {timeline_dir}", markup=False, soft_wrap=True)


@contextlib.contextmanager
def _progress(console: Any, quiet: bool) -> Iterator[Any]:
    """An ``on_progress`` callback feeding a rich progress bar on stderr (None: no bar).

    The bar is shown on a terminal only and starts with the first video, so argument
    errors print no empty bar.
    """
    if quiet or not console.is_terminal:  # a bar in a log file is noise
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    state: dict[str, Any] = {}

    def on_progress(done: int, total: int, video: str, status: str) -> None:
        if "progress" not in state:
            progress = Progress(
                TextColumn("detect"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=console,
                transient=True,
            )
            progress.start()
            state["progress"], state["task"] = progress, progress.add_task("", total=total)
        label = f"{video} ..." if status == "started" else f"{video} ({status})"
        state["progress"].update(state["task"], completed=done, description=label)

    try:
        yield on_progress
    finally:
        if "progress" in state:
            state["progress"].stop()
