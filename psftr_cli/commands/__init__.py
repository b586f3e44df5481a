"""One module per command. Each exposes a plain function registered by ``main``.

Modules here must not import torch or open_clip at import time.
"""

from psftr_cli.commands.detect import detect
from psftr_cli.commands.evaluate import evaluate
from psftr_cli.commands.extract import extract
from psftr_cli.commands.text_embeddings import text_embeddings
from psftr_cli.commands.train import train

COMMANDS: list = [
    ("extract", extract),
    ("train", train),
    ("evaluate", evaluate),
    ("detect", detect),
    ("text-embeddings", text_embeddings),
]
