"""Benchmark ``psftr extract``: throughput against the pure model forward, and peak memory.

Generates 360p H.264 test videos with PyAV (default 1 and 10 minutes at 30 fps), makes a
ViT-B-16 with random weights (saved to a local file and loaded through the real
``--clip-pretrained PATH`` path), then for each video runs, each in its own subprocess:

* forward: the model alone on already decoded and preprocessed frames of that video
  (the first ``--forward-frames`` sampled frames), batch size as in extraction; run
  before and after the extraction and averaged (the load of a shared machine varies);
* extract: the full extraction (decode + preprocess + model + writes), whose peak RSS
  is the process's ``ru_maxrss``, so every video gets its own peak.

Targets (issue 5): extraction frames/s >= 0.9 x forward frames/s; peak RSS of the long
video <= 1.2 x that of the short one.

    python benchmarks/extract.py                       # 1 and 10 minutes
    python benchmarks/extract.py --minutes 1,3 --quantize   # quicker, plus int8
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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


def child_forward(args: argparse.Namespace) -> dict:
    """Pure model forward on preprocessed frames of the video (timed part: model only)."""
    import torch

    from psftr_core.features.clip import FramePreprocess, encode_images, load_clip
    from psftr_core.features.video import VideoSource

    handle = load_clip(args.model, args.weights, device=args.device)
    if args.quantize:
        from psftr_core.features.clip import quantize_image_tower

        quantize_image_tower(handle)
    prep = FramePreprocess(handle.preprocess)
    source = VideoSource(args.video)
    plan = source.plan(stride=args.stride)
    indices = plan.indices[: args.forward_frames]
    batches = [prep.to_model_input(prep.to_uint8(f)) for f in source.iter_frames(indices, args.batch_size)]
    encode_images(handle, batches[0][:2])  # warm-up
    if handle.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    frames = 0
    for batch in batches:
        frames += len(encode_images(handle, batch))
    seconds = time.perf_counter() - start
    return {"frames": frames, "seconds": seconds, "fps": frames / seconds}


def current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child_extract(args: argparse.Namespace) -> dict:
    """The real extraction of the whole video; peak RSS of this process.

    ``peak_rss_mb`` is the whole process (``ru_maxrss``; loading ViT-B-16 briefly holds
    the weights twice, so it is dominated by the load). ``extract_peak_rss_mb`` is the
    highest RSS sampled every 10 ms while extracting, after the model was loaded.
    """
    import threading

    from psftr_core.features.clip import load_clip
    from psftr_core.features.extract import ExtractOptions, extract_features

    options = ExtractOptions(
        clip_model=args.model,
        clip_pretrained=args.weights,
        stride=args.stride,
        batch_size=args.batch_size,
        device=args.device,
        quantize="int8" if args.quantize else None,
    )
    # int8: let extraction load (and quantize in place) as the CLI does; otherwise load
    # here so that the RSS after loading is known
    handle = None if args.quantize else load_clip(args.model, args.weights, device=args.device)
    baseline = current_rss_mb()
    peak = [baseline]
    done = threading.Event()

    def monitor() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], current_rss_mb())

    thread = threading.Thread(target=monitor, daemon=True)
    thread.start()
    summary = extract_features([args.video], args.out, options, handle=handle)
    done.set()
    thread.join()
    return {
        "status": summary.results[0].status,
        "frames": summary.frames,
        "seconds": summary.elapsed,  # decode + model + writes, model load excluded
        "fps": summary.frames_per_second,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_after_load_mb": baseline,
        "extract_peak_rss_mb": max(peak[0], current_rss_mb()),
        "drift": summary.quantize_drift,
    }


def run_child(kind: str, video: Path, weights: Path, out: Path, args: argparse.Namespace, quantize: bool) -> dict:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", kind,
        "--video", str(video), "--weights", str(weights), "--out", str(out),
        "--model", args.model, "--stride", str(args.stride), "--batch-size", str(args.batch_size),
        "--device", args.device, "--forward-frames", str(args.forward_frames),
    ]
    if quantize:
        cmd.append("--quantize")
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", default="1,10", help="comma-separated video lengths in minutes")
    parser.add_argument("--stride", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--forward-frames", type=int, default=160, help="frames for the pure forward timing")
    parser.add_argument("--quantize", action="store_true", help="also time --quantize int8 on the first video")
    parser.add_argument("--workdir", default=None, help="keep videos/weights here (default: a temp dir)")
    parser.add_argument("--child", choices=("forward", "extract"), help=argparse.SUPPRESS)
    parser.add_argument("--video", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = child_forward(args) if args.child == "forward" else child_extract(args)
        print(json.dumps(result))
        return

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="psftr-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    weights = work / f"{args.model}-random.pt"
    if not weights.exists():
        import open_clip
        import torch

        model = open_clip.create_model(args.model, pretrained=None)
        torch.save(model.state_dict(), weights)
        del model
    import torch

    print(f"# torch threads {torch.get_num_threads()}, cpu count {os.cpu_count()}, device {args.device}, "
          f"model {args.model} (random weights), stride {args.stride}, batch {args.batch_size}", flush=True)
    rows = []
    for minutes in [float(m) for m in args.minutes.split(",")]:
        video = work / f"bench_{minutes:g}min.mp4"
        if not video.exists():
            start = time.perf_counter()
            make_video(video, minutes * 60)
            print(f"# generated {video.name} in {time.perf_counter() - start:.0f} s", flush=True)
        out = Path(tempfile.mkdtemp(prefix="out-", dir=work))
        # forward before and after the extraction: the mean is fairer on a machine whose load varies
        before = run_child("forward", video, weights, out, args, quantize=False)
        extract = run_child("extract", video, weights, out, args, quantize=False)
        after = run_child("forward", video, weights, out, args, quantize=False)
        forward = {"fps": (before["fps"] + after["fps"]) / 2, "before": before["fps"], "after": after["fps"]}
        print(f"# forward before {before['fps']:.2f}, after {after['fps']:.2f} frames/s", flush=True)
        rows.append((f"{minutes:g} min", forward, extract))
        print(f"{minutes:g} min: forward {forward['fps']:.2f} frames/s, extract {extract['fps']:.2f} frames/s "
              f"({extract['frames']} frames, {extract['seconds']:.0f} s), ratio {extract['fps'] / forward['fps']:.3f}, "
              f"peak RSS {extract['peak_rss_mb']:.0f} MB (during extraction {extract['extract_peak_rss_mb']:.0f} MB, "
              f"after load {extract['rss_after_load_mb']:.0f} MB)", flush=True)
    if args.quantize:
        video = work / f"bench_{float(args.minutes.split(',')[0]):g}min.mp4"
        out = Path(tempfile.mkdtemp(prefix="out-q-", dir=work))
        forward = run_child("forward", video, weights, out, args, quantize=True)
        extract = run_child("extract", video, weights, out, args, quantize=True)
        rows.append(("int8 " + video.stem.split("_")[1], forward, extract))
        print(f"int8: forward {forward['fps']:.2f} frames/s, extract {extract['fps']:.2f} frames/s, "
              f"drift {extract['drift']}", flush=True)

    print("\n| video | forward frames/s | extract frames/s | ratio | frames | peak RSS MB | peak RSS while extracting MB |")
    print("|---|---|---|---|---|---|---|")
    for name, forward, extract in rows:
        print(f"| {name} | {forward['fps']:.2f} | {extract['fps']:.2f} | {extract['fps'] / forward['fps']:.3f} | "
              f"{extract['frames']} | {extract['peak_rss_mb']:.0f} | {extract['extract_peak_rss_mb']:.0f} |")
    plain = [r for r in rows if not r[0].startswith("int8")]
    if len(plain) >= 2:
        for key in ("peak_rss_mb", "extract_peak_rss_mb"):
            ratio = plain[-1][2][key] / plain[0][2][key]
            print(f"\n{key} {plain[-1][0]} / {plain[0][0]}: {ratio:.3f} (target <= 1.2)")
    worst = min(r[2]["fps"] / r[1]["fps"] for r in plain)
    print(f"lowest extract/forward ratio: {worst:.3f} (target >= 0.9)")


if __name__ == "__main__":
    main()
