"""Benchmark ``psftr extract``: each stage's speed, end to end against the bare model, memory.

Generates 640x360 H.264 test videos with PyAV (default 1 and 10 minutes at 30 fps) and a
ViT-B-16 with random weights (saved to a local file and loaded through the real
``--clip-pretrained PATH`` path). Subprocesses measure:

* decode: one backend alone on the sampled frames (stride 8), frames/s; then the
  batched preprocessing of those frames, frames/s;
* forward and end to end, per dtype (fp32, int8) in one process that loads the model
  once (and quantizes it for int8, reporting the cosine of its features to fp32's):
  rounds of [the image tower alone on preprocessed frames of the video, batch size as
  in extraction; then ``extract_features`` on the whole video (decode + preprocess +
  model + writes) with each backend]. Interleaving puts the forward and the end-to-end
  runs under the same load; the fastest run of each counts (the least disturbed by
  other processes). The peak RSS while extracting is sampled every 10 ms;
* memory: the long and the short video extracted in their own processes (auto decoder);
* detect on a folder of videos (three short ones) against extract on the same folder, in
  one process (fp32, auto decoder, a fresh feature cache per detect run so that it
  decodes): rounds of [``extract_features``, then ``psftr detect``'s video path
  (``start_detection(...).results()``)], frames/s of each (model loading and text
  encoding not counted), the fastest of each counts.

Targets (issue 14): end to end >= 0.95 x forward in fp32 and >= 0.9 x the int8 tower's
own throughput, for both backends; int8 cosine to fp32 >= 0.99; peak RSS of the long
video within 10% of the short one's; detect on a folder >= 0.95 x extract on it (one
pipeline). The machine load (1-minute average) is printed
next to each number.

    python -m benchmarks.extract            # 1 and 10 minutes (tens of minutes on 2 cores)
    python -m benchmarks.extract --quick    # 20 s and 1 minute, fewer forward frames
"""

from __future__ import annotations

import argparse
import json
import os
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


def child_compare(args: argparse.Namespace) -> dict:
    """Rounds of [bare forward, end to end with each backend], one model load (see the module docstring)."""
    import torch

    from psftr_core.features.clip import encode_images, load_clip, quantize_image_tower
    from psftr_core.features.decoders import open_video
    from psftr_core.features.extract import ExtractOptions, extract_features
    from psftr_core.features.pipeline import feature_drift
    from psftr_core.features.preprocess import FramePreprocess

    handle = load_clip(args.model, args.weights, device=args.device)
    prep = FramePreprocess(handle.preprocess)
    source = open_video(args.video, "pyav", short_side=prep.decode_short_side)
    indices = source.plan(stride=args.stride).indices[: args.forward_frames]
    batches = [prep.to_model_input(f, device=handle.device) for f in source.iter_frames(indices, args.batch_size)]
    result: dict = {"forward": [], "loads": [], "backends": {b: [] for b in args.backends.split(",")}, "peak_mb": {}}
    if args.quantize:  # quantized before any clock starts (extraction would do it on its first batch)
        reference = encode_images(handle, batches[0])
        quantize_image_tower(handle)
        result["drift"] = feature_drift(reference, encode_images(handle, batches[0]))
    encode_images(handle, batches[0][:2])  # warm-up
    rss = PeakRSS()
    for round_ in range(args.repeat):
        result["loads"].append(load_average())
        if handle.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        frames = sum(len(encode_images(handle, batch)) for batch in batches)
        if handle.device.type == "cuda":
            torch.cuda.synchronize()
        result["forward"].append(frames / (time.perf_counter() - start))
        for backend, runs in result["backends"].items():
            options = ExtractOptions(clip_model=args.model, clip_pretrained=args.weights, stride=args.stride,
                                     batch_size=args.batch_size, device=args.device, decoder=backend)
            rss.start()
            summary = extract_features([args.video], Path(args.out) / f"{backend}-{round_}", options, handle=handle)
            result["peak_mb"][backend] = max(result["peak_mb"].get(backend, 0.0), rss.peak)
            runs.append(summary.frames_per_second)
            result["frames"] = summary.frames
    rss.stop()
    return result


def child_extract(args: argparse.Namespace) -> dict:
    """One extraction of the whole video (auto decoder) in a fresh process: its peak RSS."""
    from psftr_core.features.clip import load_clip, quantize_image_tower
    from psftr_core.features.extract import ExtractOptions, extract_features

    handle = load_clip(args.model, args.weights, device=args.device)
    if args.quantize:
        quantize_image_tower(handle)
    options = ExtractOptions(clip_model=args.model, clip_pretrained=args.weights, stride=args.stride,
                             batch_size=args.batch_size, device=args.device)
    rss = PeakRSS()
    baseline = rss.start()
    summary = extract_features([args.video], args.out, options, handle=handle)
    peak = rss.stop()
    manifest = json.loads((Path(args.out) / "manifest.json").read_text())
    return {"decoders": manifest["decoding"]["videos_by_decoder"], "frames": summary.frames,
            "fps": summary.frames_per_second, "rss_after_load_mb": baseline, "extract_peak_rss_mb": peak}


def child_folder(args: argparse.Namespace) -> dict:
    """Rounds of [extract on the folder, detect on the folder]: frames/s of each."""
    from psftr_core.features.clip import load_clip
    from psftr_core.features.extract import ExtractOptions, extract_features
    from psftr_core.infer.detect import start_detection

    handle = load_clip(args.model, args.weights, device=args.device)
    options = ExtractOptions(clip_model=args.model, clip_pretrained=args.weights, stride=args.stride,
                             batch_size=args.batch_size, device=args.device)
    result: dict = {"extract": [], "detect": [], "loads": []}
    for round_ in range(args.repeat):
        result["loads"].append(load_average())
        summary = extract_features([args.video], Path(args.out) / f"feats-{round_}", options, handle=handle)
        result["extract"].append(summary.frames_per_second)
        result["frames"] = summary.frames
        run = start_detection([args.video], ["walking"], clip_model=args.model, clip_pretrained=args.weights,
                              cache_dir=Path(args.out) / f"cache-{round_}", stride=args.stride,
                              batch_size=args.batch_size, device=args.device)
        start = time.perf_counter()
        frames = sum(r.info.num_features for r in run.results() if hasattr(r, "info"))
        result["detect"].append(frames / (time.perf_counter() - start))
        result["detect_frames"] = frames
    return result


def run_child(kind: str, video: Path, args: argparse.Namespace, *, quantize: bool = False,
              decoder: str = "auto", backends: str = "", out: Path | None = None) -> dict:
    cmd = [
        sys.executable, "-m", "benchmarks.extract", "--child", kind, "--video", str(video),
        "--weights", str(args.weights), "--out", str(out or args.work / "unused"), "--model", args.model,
        "--stride", str(args.stride), "--batch-size", str(args.batch_size), "--device", args.device,
        "--forward-frames", str(args.forward_frames), "--decoder", decoder, "--backends", backends,
        "--repeat", str(args.repeat),
    ]
    if quantize:
        cmd.append("--quantize")
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
    parser.add_argument("--dtypes", default=None, help="on CPU: fp32,int8 (default both)")
    parser.add_argument("--workdir", default=None, help="keep videos/weights here (default: a temp dir)")
    parser.add_argument("--child", choices=("decode", "compare", "extract", "folder"), help=argparse.SUPPRESS)
    parser.add_argument("--decoder", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default="", help=argparse.SUPPRESS)
    parser.add_argument("--quantize", action="store_true", help=argparse.SUPPRESS)
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
    dtypes = (args.dtypes or "fp32,int8").split(",") if args.device == "cpu" else ["auto"]
    print(f"# torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, device {args.device}, "
          f"model {args.model} (random weights), stride {args.stride}, batch {args.batch_size}", flush=True)
    videos = {}
    for length in minutes:
        video = args.work / f"bench_{length:g}min.mp4"
        if not video.exists():
            start = time.perf_counter()
            make_video(video, length * 60)
            print(f"# generated {video.name} in {time.perf_counter() - start:.0f} s", flush=True)
        videos[length] = video
    short, long = videos[minutes[0]], videos[minutes[-1]]
    folder = args.work / "folder"
    folder.mkdir(exist_ok=True)
    for index, seconds in enumerate((4, 6, 5) if args.quick else (20, 30, 25)):
        if not (folder / f"clip{index}.mp4").exists():
            make_video(folder / f"clip{index}.mp4", seconds)

    stages = {b: run_child("decode", short, args, decoder=b) for b in backends}
    for backend, stage in stages.items():
        print(f"# decode {backend}: {stage['decode_fps']:.0f} frames/s, preprocess {stage['preprocess_fps']:.0f} "
              f"frames/s (load {stage['load']:.1f})", flush=True)
    rows = []
    for dtype in dtypes:
        quantize = dtype == "int8"
        result = run_child("compare", short, args, quantize=quantize, backends=",".join(backends),
                           out=Path(tempfile.mkdtemp(prefix=f"out-{dtype}-", dir=args.work)))
        forward = max(result["forward"])
        drift = result.get("drift")
        cosine = f"; int8 cosine to fp32 mean {drift['cosine_mean']:.4f} min {drift['cosine_min']:.4f}" if drift else ""
        rounds = ", ".join(f"{f:.2f}" for f in result["forward"])
        loads = ", ".join(f"{x:.1f}" for x in result["loads"])
        print(f"# {dtype} forward per round {rounds} frames/s (load {loads}){cosine}", flush=True)
        for backend in backends:
            runs = result["backends"][backend]
            best = max(runs)
            rows.append((backend, dtype, stages[backend], forward, best, result["peak_mb"][backend], result["loads"]))
            print(f"# {backend} {dtype} end to end per round {', '.join(f'{r:.2f}' for r in runs)} frames/s "
                  f"({result['frames']} frames): best {best:.2f}, ratio to the best forward {best / forward:.3f}",
                  flush=True)

    print(f"\nvideo {short.name} (640x360, 30 fps), stride {args.stride}, batch {args.batch_size}, "
          f"best of {args.repeat} rounds\n")
    print("| backend | dtype | decode f/s | preprocess f/s | forward f/s | end-to-end f/s | e2e / forward | "
          "peak RSS MB | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for backend, dtype, stage, forward, best, peak, loads in rows:
        print(f"| {backend} | {dtype} | {stage['decode_fps']:.0f} | {stage['preprocess_fps']:.0f} | {forward:.2f} | "
              f"{best:.2f} | {best / forward:.3f} | {peak:.0f} | {min(loads):.1f}-{max(loads):.1f} |")

    both = run_child("folder", folder, args, out=Path(tempfile.mkdtemp(prefix="out-folder-", dir=args.work)))
    extract_best, detect_best = max(both["extract"]), max(both["detect"])
    print(f"\nfolder of 3 videos ({both['frames']} frames, fp32, best of {args.repeat}, load "
          f"{min(both['loads']):.1f}-{max(both['loads']):.1f}): extract {extract_best:.2f} frames/s, detect on a "
          f"folder of videos {detect_best:.2f} frames/s ({both['detect_frames']} frames): ratio "
          f"{detect_best / extract_best:.3f} (target >= 0.95)")

    if long != short:
        dtype = dtypes[-1]
        quantize = dtype == "int8"
        long_run = run_child("extract", long, args, quantize=quantize,
                             out=Path(tempfile.mkdtemp(prefix="out-long-", dir=args.work)))
        short_run = run_child("extract", short, args, quantize=quantize,
                              out=Path(tempfile.mkdtemp(prefix="out-short-", dir=args.work)))
        ratio = long_run["extract_peak_rss_mb"] / short_run["extract_peak_rss_mb"]
        print(f"\npeak RSS while extracting ({dtype}, auto decoder {long_run['decoders']}): "
              f"{long.name} {long_run['extract_peak_rss_mb']:.0f} MB ({long_run['frames']} frames, "
              f"{long_run['fps']:.2f} frames/s, load {long_run['load']:.1f}), {short.name} "
              f"{short_run['extract_peak_rss_mb']:.0f} MB: ratio {ratio:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
