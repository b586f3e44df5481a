"""Shared test set-up: no network, small thread count, shared fixtures."""

import os
import sys

# Must be set before open_clip / huggingface_hub are imported anywhere.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Test tensors are tiny: one thread avoids oversubscribing the 2-core machines (much faster).
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(__file__))

pytest_plugins = ["fixtures_clip"]
