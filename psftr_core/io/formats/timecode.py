"""SMPTE timecodes for the editor formats (``--format edl``): frame rates, drop frame.

A timecode counts frames at a whole number of frames per "timecode second" (the
nominal rate: 24, 25, 30, 60, ...). The NTSC rates (23.976, 29.97, 59.94: the nominal
rate x 1000/1001) run slower than their labels, so at 29.97 and 59.94 the timecode
skips frame numbers to stay with the clock: drop frame, written with ``;`` before the
frames (``00:01:00;02``). Frame numbers 0 and 1 (0-3 at 59.94) are skipped at the start
of every minute except minutes 0, 10, 20, ... 23.976 has no drop-frame form.

Hours are not wrapped at 24: a time past a day keeps counting (``100:00:00:06``), so a
timecode never goes back in time.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_FPS = 25.0  # when the video's frame rate is unknown (a feature dataset's video)
_RATE_TOLERANCE = 0.01  # frames per second; 29.97 vs 30 differ by 0.03


@dataclass(frozen=True)
class TimecodeRate:
    """How a video's frames are counted as timecode.

    ``nominal``: frames per timecode second; ``fps``: the real frames per second
    (``nominal * 1000/1001`` for the NTSC rates); ``drop_frame``: 29.97 / 59.94 counting;
    ``exact``: False when the video's rate is no timecode rate and was rounded to
    ``nominal`` (its timecodes then run at ``nominal`` frames per second).
    """

    nominal: int
    fps: float
    drop_frame: bool = False
    exact: bool = True

    @property
    def dropped_per_minute(self) -> int:
        """Frame numbers skipped at each minute not a multiple of ten (2 at 29.97, 4 at 59.94)."""
        return self.nominal // 15 if self.drop_frame else 0


def timecode_rate(fps: float | None) -> TimecodeRate:
    """The timecode rate of a video of ``fps`` frames per second (None: ``DEFAULT_FPS``).

    A rate within 0.01 of a whole number counts at that number; within 0.01 of an NTSC
    rate (n x 1000/1001), at ``n`` with drop frame for 29.97 and 59.94; any other rate is
    rounded to the nearest whole number (``exact=False``).
    """
    if fps is None or not fps > 0:
        return TimecodeRate(int(DEFAULT_FPS), DEFAULT_FPS)
    whole = round(fps)
    if whole >= 1 and abs(fps - whole) < _RATE_TOLERANCE:
        return TimecodeRate(whole, float(whole))
    ntsc = round(fps * 1.001)
    if ntsc >= 1 and abs(fps - ntsc * 1000 / 1001) < _RATE_TOLERANCE:
        return TimecodeRate(ntsc, ntsc * 1000 / 1001, drop_frame=ntsc in (30, 60))
    nominal = max(whole, 1)
    return TimecodeRate(nominal, float(nominal), exact=False)


def seconds_to_frame(seconds: float, rate: TimecodeRate) -> int:
    """The frame shown at ``seconds`` (nearest frame boundary), at the real rate."""
    return max(round(seconds * rate.fps), 0)


def frame_to_timecode(frame: int, rate: TimecodeRate) -> str:
    """``HH:MM:SS:FF`` of frame number ``frame`` (``HH:MM:SS;FF`` in drop frame)."""
    counted = frame + _skipped_numbers(frame, rate)
    seconds, frames = divmod(counted, rate.nominal)
    minutes, sec = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    mark = ";" if rate.drop_frame else ":"
    return f"{hours:02d}:{minute:02d}:{sec:02d}{mark}{frames:02d}"


def timecode_to_frame(timecode: str, rate: TimecodeRate) -> int:
    """The frame number of ``HH:MM:SS:FF`` (``;`` or ``:`` before the frames), the inverse
    of :func:`frame_to_timecode`. Raises ValueError on a malformed timecode."""
    parts = timecode.replace(";", ":").split(":")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a timecode: {timecode!r}")
    hours, minutes, seconds, frames = (int(p) for p in parts)
    total_minutes = hours * 60 + minutes
    counted = (total_minutes * 60 + seconds) * rate.nominal + frames
    return counted - rate.dropped_per_minute * (total_minutes - total_minutes // 10)


def _skipped_numbers(frame: int, rate: TimecodeRate) -> int:
    """How many frame numbers drop frame has skipped before real frame ``frame``."""
    drop = rate.dropped_per_minute
    if not drop:
        return 0
    per_minute = rate.nominal * 60 - drop  # real frames in a minute that drops numbers
    per_ten_minutes = per_minute * 10 + drop  # the tenth minute keeps its numbers
    tens, rest = divmod(frame, per_ten_minutes)
    minutes_dropped = (rest - drop) // per_minute if rest >= drop else 0
    return drop * (9 * tens + minutes_dropped)
