"""How far a player turns a video's frames: one reading for the decoders (features) and
the review page's posters (io), from PyAV's frame and stream objects."""

from __future__ import annotations

from typing import Any


def normalise_rotation(degrees: float | None) -> int:
    """A display-matrix angle (counter-clockwise, -180..180) -> 0, 90, 180 or 270."""
    if not degrees:
        return 0
    return int(round(float(degrees) / 90.0)) % 4 * 90


def frame_rotation(frame: Any, stream: Any) -> int:
    """Degrees counter-clockwise (0, 90, 180, 270) a player turns the frames: the frame's
    display matrix, else the stream's old ``rotate`` tag (clockwise)."""
    rotation = getattr(frame, "rotation", 0)
    if not rotation and stream is not None:
        try:
            rotation = -float(stream.metadata.get("rotate", 0) or 0)
        except (TypeError, ValueError):  # a tag that is no number: as none
            rotation = 0
    return normalise_rotation(rotation)
