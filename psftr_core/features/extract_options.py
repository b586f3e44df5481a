"""The settings of one ``psftr extract`` run (``ExtractOptions``).

Its own module because two others read it: ``extract`` runs with it and
``feature_folder`` describes it in the folder's manifest and ``dataset.yaml``; kept in
either of them, the other would import back into it (an import cycle).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from psftr_core.defaults import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED
from psftr_core.features.compute_dtype import storage_dtype
from psftr_core.features.pipeline import PipelineOptions


@dataclass
class ExtractOptions(PipelineOptions):
    """Settings of one run: the ``psftr extract`` flags, i.e. the pipeline's
    (``PipelineOptions``: sampling, decoding, batch, compute dtype) plus these."""

    clip_model: str = DEFAULT_CLIP_MODEL
    clip_pretrained: str | None = DEFAULT_CLIP_PRETRAINED
    clip_config: str | None = None
    device: str = "auto"
    shard: str | None = None  # "I/N"; None -> RANK/WORLD_SIZE or 0/1

    def pipeline(self) -> PipelineOptions:
        """The pipeline's part of these options."""
        return PipelineOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(PipelineOptions)})

    def validate(self) -> None:
        super().validate()
        if self.device == "cpu":
            self.for_device("cpu")  # --quantize int8 with a 16-bit --dtype: say so before loading the model

    @property
    def storage_dtype(self) -> str:
        """The feature files' dtype: float32 with ``--dtype float32``, float16 otherwise."""
        return storage_dtype(self.dtype)

    @property
    def sampling(self) -> dict:
        if self.fps is not None:
            return {"fps": float(self.fps), "frame": "nearest to the window centre"}
        return {"stride": int(self.stride), "frame": "centre of each stride window (i*stride + stride//2)"}
