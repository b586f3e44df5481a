"""Shared test set-up: no network, small thread count, shared fixtures."""

import os
import shutil
import subprocess
import sys

import pytest

# Must be set before open_clip / huggingface_hub are imported anywhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Test tensors are tiny: one thread avoids oversubscribing the 2-core machines (much faster).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Features are compared with float32 references: tests run the towers in float32 whatever the
# CPU, unless a test asks for bfloat16 (monkeypatch.setenv or --dtype bfloat16).
os.environ["PSFTR_CPU_BFLOAT16"] = "0"
sys.path.insert(0, os.path.dirname(__file__))

pytest_plugins = ["fixtures_clip", "fixtures_ray"]


@pytest.fixture()
def make_immutable():
    """``make(path)``: ``chattr +i`` (undone at teardown); skips where that has no effect."""
    made = []

    def make(path):
        if shutil.which("chattr") is None:
            pytest.skip("chattr is not available")
        done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"chattr +i failed here: {done.stderr.strip()}")
        made.append(path)
        probe = path / "probe" if path.is_dir() else path
        try:
            with open(probe, "a"):
                pass
        except OSError:
            return
        if path.is_dir():
            probe.unlink()
        pytest.skip("chattr +i has no effect on this file system")

    yield make
    for path in made:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True)
