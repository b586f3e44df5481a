"""Class dropout of the training vocabulary (``train.vocab_dropout``).

Training normally shows the model the same text vocabulary (all seen classes) at every
step; at test time it meets a new one (the unseen classes). With ``train.vocab_dropout
= p > 0`` each training step uses a random subset of the seen classes instead:

- every class present in the (global) batch's ground truth is kept;
- every other seen class is dropped independently with probability ``p``;
- if that leaves a single class while absent classes exist, one absent class (chosen
  uniformly) is kept too, so the class softmax is never over one class (a trivially zero
  classification loss). With p = 1 and at least two classes present, the vocabulary is
  exactly the present classes.

The kept classes stay in their original order; the text tensor is cut to their rows and
every target label is remapped to its position in the subset (``labels`` of class k ->
index of k among the kept classes), so the model, the matcher and the criterion see an
ordinary K'-class problem. Draws come from a ``torch.Generator`` seeded by (seed,
epoch), a fixed number of draws per step, so a run (and a resumed run) is reproducible.
Under DistributedDataParallel the present classes are summed over ranks and every rank
draws the same numbers, so all ranks use the global batch's vocabulary. With p = 0
nothing is drawn and nothing changes.
"""

from __future__ import annotations

from typing import Any

import torch

_SALT = 0x5F3759DF  # keeps the vocabulary draws apart from the window order's generator


def vocabulary_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of one epoch's vocabulary draws, seeded by (seed, epoch) only."""
    return torch.Generator().manual_seed((int(seed) * 1_000_003 + int(epoch) + _SALT) % (2**63))


def sample_vocabulary(present: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Kept class indices (sorted, int64) given ``present`` [K] bool (classes in the
    batch's ground truth) and the drop probability ``p``; see the module docstring."""
    present = present.detach().cpu().bool()
    num_classes = present.numel()
    draws = torch.rand(num_classes, generator=generator)  # always K draws + 1 below
    fallback = torch.rand(1, generator=generator)
    keep = present | (draws >= p)
    absent = (~present).nonzero().flatten()
    if int(keep.sum()) < 2 and absent.numel() > 0 and not bool(keep[absent].any()):
        keep[absent[min(int(fallback.item() * absent.numel()), absent.numel() - 1)]] = True
    return keep.nonzero().flatten()


def remap_targets(targets: list[dict], vocabulary: torch.Tensor, num_classes: int) -> list[dict]:
    """Copies of ``targets`` with ``labels`` remapped to positions in ``vocabulary``."""
    table = torch.full((num_classes,), -1, dtype=torch.int64)
    table[vocabulary] = torch.arange(vocabulary.numel(), dtype=torch.int64)
    out = []
    for target in targets:
        labels = target["labels"]
        mapped = table.to(labels.device)[labels]
        if bool((mapped < 0).any()):
            raise ValueError("a ground-truth class was dropped from the vocabulary")
        out.append({**target, "labels": mapped})
    return out


class VocabularyDropout:
    """Per-step class dropout with drop probability ``p`` and draws from ``generator``."""

    def __init__(self, p: float, generator: torch.Generator) -> None:
        self.p = float(p)
        self.generator = generator

    def apply(self, targets: list[dict], text: torch.Tensor, dist: Any = None,
              device: str = "cpu") -> tuple[list[dict], torch.Tensor, torch.Tensor]:
        """(remapped targets, text rows of the kept classes, kept class indices) for one
        step; ``text`` [K, D]. ``dist`` (a ``DistributedContext`` or None) unites the
        present classes over ranks."""
        num_classes = text.shape[0]
        present = torch.zeros(num_classes, dtype=torch.float64)
        for target in targets:
            present[target["labels"].cpu()] = 1.0
        if dist is not None and dist.enabled:
            present = torch.tensor(dist.all_sum(present.tolist(), device), dtype=torch.float64)
        vocabulary = sample_vocabulary(present > 0, self.p, self.generator)
        return remap_targets(targets, vocabulary, num_classes), text[vocabulary.to(text.device)], vocabulary


def build_vocabulary_dropout(train_cfg: Any, epoch: int) -> VocabularyDropout | None:
    """The epoch's class dropout from the ``train`` section, or None when it is off (p = 0)."""
    p = float(getattr(train_cfg, "vocab_dropout", 0.0))
    if p <= 0.0:
        return None
    return VocabularyDropout(p, vocabulary_generator(train_cfg.seed, epoch))
