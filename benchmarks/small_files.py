"""Benchmark a feature folder of many small ``.npy`` files against sharded archives.

For docs/scaling.md: what one folder of N per-video feature files costs to list, stat and
open, and what packing them into archives of K videos changes. Writes ``--count`` files
of ``[--rows, --dim]`` float16 (default 100 000 of [100, 512], 100 KB each: 10 GB) into
one folder under ``--root`` (default: the system temp folder), measures, and deletes
everything it wrote (also after Ctrl-C or an error).

Measured, in this order (seconds and per-file rates):

* write: ``np.save`` of every file (and an fsync of each, so that the cold reads below
  can drop the pages);
* list: ``os.scandir`` names only, and names plus ``stat`` of each entry;
* headers: open every file and read its ``.npy`` header (shape and dtype), as a reader
  that checks lengths (``feature_info.json``) does;
* load: ``np.load`` of a random sample of ``--sample`` files (default 1000), warm (in the
  page cache) and cold (each file's pages dropped first with
  ``posix_fadvise(DONTNEED)``, which touches only these files; the directory and inode
  caches stay warm: dropping those would need root and disturb other work);
* shards: the same arrays packed into uncompressed ``.npz`` archives of ``--shard-size``
  videos (default 1000) and the same random sample read from them, warm and cold: each
  read opening its archive (which parses the archive's zip directory every time), and
  with each archive opened once.

    python -m benchmarks.small_files                      # 100 000 files of 100 KB (10 GB)
    python -m benchmarks.small_files --count 10000 --rows 32   # a quick run
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np


def timed(label: str, count: int, action: Callable[[], object]) -> float:
    """Run ``action``, print its time and per-item rate; returns seconds."""
    start = time.perf_counter()
    action()
    seconds = time.perf_counter() - start
    rate = count / seconds if seconds > 0 else float("inf")
    print(f"{label:<44} {seconds:9.3f} s  {rate:12,.0f} /s  {1e6 * seconds / count:9.1f} us each", flush=True)
    return seconds


def file_names(count: int) -> list[str]:
    # Names like those of a real folder: video ids of mixed length.
    return [f"video_{i:07d}_{i * 2654435761 % 10**6:06d}.npy" for i in range(count)]


def write_files(folder: Path, names: list[str], array: np.ndarray) -> None:
    for name in names:
        with open(folder / name, "wb") as handle:
            np.save(handle, array)
            handle.flush()
            os.fsync(handle.fileno())  # clean pages, so DONTNEED can drop them later


def list_names(folder: Path) -> int:
    with os.scandir(folder) as entries:
        return sum(1 for _ in entries)


def list_and_stat(folder: Path) -> int:
    total = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            total += entry.stat().st_size
    return total


def read_headers(paths: Iterable[Path]) -> int:
    rows = 0
    for path in paths:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, _ = read_header(handle)
            rows += shape[0]
    return rows


def drop_pages(paths: Iterable[Path]) -> None:
    """Evict these files' pages from the page cache (Linux; a no-op elsewhere)."""
    if not hasattr(os, "posix_fadvise"):
        return
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def load_files(paths: Iterable[Path]) -> float:
    return float(sum(np.load(path)[0, 0] for path in paths))


def pack_shards(folder: Path, shard_folder: Path, names: list[str], shard_size: int) -> dict[str, tuple[Path, str]]:
    """Uncompressed .npz archives of ``shard_size`` arrays; returns name -> (archive, member)."""
    where = {}
    for start in range(0, len(names), shard_size):
        part = names[start:start + shard_size]
        archive = shard_folder / f"shard_{start // shard_size:05d}.npz"
        keys = [name[:-4] for name in part]
        np.savez(archive, **{key: np.load(folder / name) for key, name in zip(keys, part)})
        for name, key in zip(part, keys):
            where[name] = (archive, key)
    return where


def load_from_shards(members: Iterable[tuple[Path, str]]) -> float:
    total = 0.0
    for archive, key in members:
        with np.load(archive) as bundle:
            total += float(bundle[key][0, 0])
    return total


def load_from_open_shards(members: list[tuple[Path, str]]) -> float:
    """As a reader that opens each archive once (parsing its zip directory once) would."""
    bundles = {archive: np.load(archive) for archive in sorted({archive for archive, _ in members})}
    try:
        return float(sum(bundles[archive][key][0, 0] for archive, key in members))
    finally:
        for bundle in bundles.values():
            bundle.close()


def run(root: Path, count: int, rows: int, dim: int, sample: int, shard_size: int, seed: int) -> None:
    array = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float16)
    work = Path(tempfile.mkdtemp(prefix="psftr-small-files-", dir=root))
    folder, shard_folder = work / "features", work / "shards"
    folder.mkdir()
    shard_folder.mkdir()
    try:
        names = file_names(count)
        print(f"{count:,} files of [{rows}, {dim}] float16 in {folder}", flush=True)
        timed("write (np.save + fsync)", count, lambda: write_files(folder, names, array))
        size = (folder / names[0]).stat().st_size
        print(f"file size {size:,} bytes, total {size * count / 1e9:.2f} GB", flush=True)
        timed("list: scandir names", count, lambda: list_names(folder))
        timed("list: scandir + stat", count, lambda: list_and_stat(folder))
        paths = [folder / name for name in names]
        timed("open + read .npy header, every file", count, lambda: read_headers(paths))
        picked = random.Random(seed).sample(names, min(sample, count))
        picked_paths = [folder / name for name in picked]
        timed(f"np.load {len(picked)} random files, warm", len(picked), lambda: load_files(picked_paths))
        drop_pages(picked_paths)
        timed(f"np.load {len(picked)} random files, cold", len(picked), lambda: load_files(picked_paths))

        where = {}
        timed(f"pack into .npz shards of {shard_size}", count,
              lambda: where.update(pack_shards(folder, shard_folder, names, shard_size)))
        shards = sorted(shard_folder.iterdir())
        timed(f"list shards ({len(shards)} archives)", len(shards), lambda: list_and_stat(shard_folder))
        members = [where[name] for name in picked]
        timed(f"read {len(picked)} random arrays from shards, warm", len(picked),
              lambda: load_from_shards(members))
        timed("same, each archive opened once, warm", len(picked), lambda: load_from_open_shards(members))
        drop_pages(shards)
        timed(f"read {len(picked)} random arrays from shards, cold", len(picked),
              lambda: load_from_shards(members))
        drop_pages(shards)
        timed("same, each archive opened once, cold", len(picked), lambda: load_from_open_shards(members))
        timed("delete the folder of files", count, lambda: shutil.rmtree(folder))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(tempfile.gettempdir()),
                        help="folder to work in (default: the system temp folder)")
    parser.add_argument("--count", type=int, default=100_000, help="number of feature files")
    parser.add_argument("--rows", type=int, default=100, help="features per file")
    parser.add_argument("--dim", type=int, default=512, help="feature dimension")
    parser.add_argument("--sample", type=int, default=1000, help="random files loaded")
    parser.add_argument("--shard-size", type=int, default=1000, help="videos per .npz archive")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    free = shutil.disk_usage(args.root).free
    need = 2.1 * args.count * (args.rows * args.dim * 2 + 128)  # the files and their shards
    if need > 0.8 * free:
        parser.error(f"needs about {need / 1e9:.1f} GB in {args.root}, {free / 1e9:.1f} GB free: "
                     "lower --count or --rows")
    run(args.root, args.count, args.rows, args.dim, args.sample, args.shard_size, args.seed)


if __name__ == "__main__":
    main()
