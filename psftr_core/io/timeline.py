"""Timeline images for ``psftr detect --timeline DIR``: one PNG per video.

Layout (pixels, see :func:`timeline_size`)::

    +--------------------------------------------------------------+
    | title: video id, duration, number of segments                |  TITLE_H
    | action 1      | [0.91]      [ 0.40 ]                         |  LANE_H per lane
    | action 2      |        [0.77]                                |
    | ...                                                          |
    |               |----|----|----|----|----  time axis (seconds) |  AXIS_H
    | note (only when lanes were left out)                         |  NOTE_H
    +--------------------------------------------------------------+

Each action gets a lane; a detected segment is a box from start to end, shaded by its
score (pale = low, saturated = high) with the score printed inside when it fits; longer
segments are drawn first, so one nested in another stays visible on top of it. With
more than ``max_lanes`` actions only the actions detected in that video get a lane (the
``max_lanes`` with the highest scores, in vocabulary order) and a note says how many
were left out, so a 1000-action vocabulary still gives a readable image.

Drawn with Pillow (already a dependency through open_clip/torchvision): exact pixel
sizes, no display or backend set-up, fast import, deterministic output.
"""

from __future__ import annotations

import math
import os
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

from psftr_core.io.atomic import atomic_open
from psftr_core.io.output_dir import safe_stem, stem_key

TITLE_H = 28
LANE_H = 22
AXIS_H = 30
NOTE_H = 18
LABEL_W = 180
RIGHT_PAD = 16
DEFAULT_WIDTH = 1200
MIN_WIDTH = LABEL_W + RIGHT_PAD + 100

# Colour-blind-friendly qualitative palette (Okabe-Ito), cycled over lanes.
PALETTE = [
    (0, 114, 178),
    (230, 159, 0),
    (0, 158, 115),
    (204, 121, 167),
    (86, 180, 233),
    (213, 94, 0),
    (240, 228, 66),
    (0, 0, 0),
]
_TICK_STEPS = [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200]


def timeline_size(num_lanes: int, width: int = DEFAULT_WIDTH, with_note: bool = False) -> tuple[int, int]:
    """(width, height) in pixels of a timeline with ``num_lanes`` lanes (at least 1)."""
    width = max(int(width), MIN_WIDTH)
    height = TITLE_H + max(num_lanes, 1) * LANE_H + AXIS_H + (NOTE_H if with_note else 0)
    return width, height


def choose_lanes(
    actions: Sequence[str], segments: Sequence[Mapping[str, Any]], max_lanes: int = 40
) -> tuple[list[str], int]:
    """Actions that get a lane, and how many actions were left out.

    All actions when there are at most ``max_lanes``; otherwise the detected actions with
    the highest best score (at most ``max_lanes``), kept in vocabulary order.
    """
    if len(actions) <= max_lanes:
        return list(actions), 0
    best: dict[str, float] = {}
    for seg in segments:
        best[seg["label"]] = max(best.get(seg["label"], -math.inf), float(seg["score"]))
    ranked = sorted(best, key=lambda name: -best[name])[:max_lanes]
    keep = set(ranked)
    lanes = [name for name in actions if name in keep]
    return lanes, len(actions) - len(lanes)


def tick_step(duration: float, plot_width: int, min_spacing: int = 70) -> float:
    """Smallest 'nice' tick step (seconds) whose ticks are at least ``min_spacing`` px apart."""
    for step in _TICK_STEPS:
        if duration / step * min_spacing <= plot_width:
            return float(step)
    return float(_TICK_STEPS[-1] * math.ceil(duration / (_TICK_STEPS[-1] * plot_width / min_spacing)))


def format_time(seconds: float, step: float) -> str:
    """Tick label: ``12.5s`` for short videos, ``m:ss`` / ``h:mm:ss`` from one minute on."""
    if step < 60 and seconds < 60:
        return f"{seconds:.1f}s" if step < 1 else f"{seconds:.0f}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


# Scalable fonts tried in order (file names Pillow finds in the system font folders);
# DejaVu/Noto cover accented Latin, Greek and Cyrillic, unlike Pillow's built-in font.
_FONT_NAMES = [
    "DejaVuSans.ttf",
    "NotoSans-Regular.ttf",
    "NotoSansCJK-Regular.ttc",
    "Arial Unicode.ttf",
    "arialuni.ttf",
    "Arial.ttf",
    "arial.ttf",
    "segoeui.ttf",
]


def _font_candidates() -> list[str]:
    """Font files to try: ``$PSFTR_FONT``, system fonts, matplotlib's bundled DejaVu Sans."""
    names = [os.environ["PSFTR_FONT"]] if os.environ.get("PSFTR_FONT") else []
    names += _FONT_NAMES
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")  # locate only; importing it is slow
    for folder in (spec.submodule_search_locations or []) if spec else []:
        names.append(str(Path(folder) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf"))
    return names


@lru_cache(maxsize=8)
def _fonts(size: int) -> tuple[Any, ...]:
    """Available fonts at ``size`` px, best first; Pillow's built-in font is last."""
    from PIL import ImageFont, features

    found: list[Any] = []
    if features.check("freetype2"):
        seen: set[str] = set()
        for name in _font_candidates():
            try:
                font = ImageFont.truetype(name, size)
            except OSError:
                continue
            family = " ".join(font.getname())
            if family not in seen:  # the same font found twice (system + matplotlib copy)
                seen.add(family)
                found.append(font)
            if len(found) >= 3:
                break
        found.append(ImageFont.load_default(size=size))
    else:
        found.append(ImageFont.load_default())
    return tuple(found)


@lru_cache(maxsize=4096)
def _missing_glyph(font: Any, ch: str) -> bool:
    """True when ``font`` draws ``ch`` as its 'missing glyph' box."""
    if ch.isspace():
        return False
    try:
        probe = font.getmask(ch)
        notdef = font.getmask("\U0010fffd")  # private-use code point: never in a font
    except Exception:
        return True
    return probe.size == notdef.size and bytes(probe) == bytes(notdef)


def _font_for(text: str, size: int) -> Any:
    """The first font that has glyphs for every character of ``text`` (else the first)."""
    fonts = _fonts(size)
    for font in fonts:
        if not any(_missing_glyph(font, ch) for ch in set(text)):
            return font
    return fonts[0]


def _fit(draw: Any, text: str, font: Any, max_width: float) -> str:
    """``text`` shortened with an ellipsis so it fits ``max_width`` pixels: its longest
    prefix that fits with the ellipsis.

    Fast for any length (a 10,000-character action name): only the first
    ``max_width + 1`` characters are measured (no visible glyph is narrower than a
    pixel), and the prefix is found by bisection.
    """
    text = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)  # PIL draws one line only
    head = text[: int(max_width) + 1]
    if len(head) == len(text) and draw.textlength(text, font=font) <= max_width:
        return text
    if draw.textlength(head + "…", font=font) <= max_width:  # zero-width characters
        return head + "…"
    fits, too_long = 0, len(head)  # prefix lengths: text[:fits] + "…" fits (or is empty)
    while too_long - fits > 1:
        mid = (fits + too_long) // 2
        if draw.textlength(text[:mid] + "…", font=font) <= max_width:
            fits = mid
        else:
            too_long = mid
    return text[:fits] + "…"


def _shade(colour: tuple[int, int, int], score: float) -> tuple[int, int, int]:
    """Blend ``colour`` with white: score 0 → 20 % colour, score 1 → full colour."""
    alpha = 0.2 + 0.8 * min(max(score, 0.0), 1.0)
    return tuple(int(round(255 * (1 - alpha) + c * alpha)) for c in colour)  # type: ignore[return-value]


def render_timeline(
    video_id: str,
    duration: float | None,
    actions: Sequence[str],
    segments: Sequence[Mapping[str, Any]],
    width: int = DEFAULT_WIDTH,
    max_lanes: int = 40,
) -> Any:
    """Draw one video's detections; returns a ``PIL.Image`` (RGB) of :func:`timeline_size`.

    ``segments`` are ``{"segment": [start, end], "label", "score"}`` dicts of this video;
    labels not in ``actions`` are ignored. ``duration`` None or 0 → the last segment end.
    """
    from PIL import Image, ImageDraw

    lanes, hidden = choose_lanes(actions, segments, max_lanes)
    w, h = timeline_size(len(lanes), width, with_note=hidden > 0)
    ends = [float(s["segment"][1]) for s in segments]
    span = float(duration) if duration and duration > 0 else max(ends + [1.0])

    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    axis = _TimeAxis(LABEL_W, w - RIGHT_PAD, span)
    shown = sum(1 for s in segments if s["label"] in set(lanes))
    _draw_title(draw, f"{video_id}  ·  {span:.1f} s  ·  {shown} segments", w)
    _draw_lane_labels(draw, lanes, w)
    boxes = _draw_boxes(draw, segments, {name: i for i, name in enumerate(lanes)}, axis)
    _draw_scores(draw, boxes)
    _draw_axis(draw, axis, TITLE_H + max(len(lanes), 1) * LANE_H + 4)
    if hidden:
        _draw_note(draw, f"{hidden} of {len(actions)} actions not shown (only detected actions get a lane)", w, h)
    return image


class _TimeAxis:
    """Seconds to x pixels: ``[0, span]`` onto ``[x0, x1]``, clamped at both ends."""

    def __init__(self, x0: int, x1: int, span: float) -> None:
        self.x0, self.x1, self.span = x0, x1, span
        self.plot_w = x1 - x0

    def x_of(self, t: float) -> float:
        return self.x0 + min(max(t / self.span, 0.0), 1.0) * self.plot_w


def _small_font() -> Any:
    """The font of scores, tick labels and the note."""
    return _fonts(10)[0]


def _draw_title(draw: Any, title: str, w: int) -> None:
    font = _font_for(title, 12)
    draw.text((8, 7), _fit(draw, title, font, w - 16), fill=(0, 0, 0), font=font)


def _draw_lane_labels(draw: Any, lanes: Sequence[str], w: int) -> None:
    """Each lane's action name on alternately shaded rows; a placeholder when there are none."""
    for i, name in enumerate(lanes):
        top = TITLE_H + i * LANE_H
        if i % 2 == 0:
            draw.rectangle([0, top, w - 1, top + LANE_H - 1], fill=(245, 245, 245))
        font = _font_for(name, 12)
        draw.text((8, top + 4), _fit(draw, name, font, LABEL_W - 14), fill=(30, 30, 30), font=font)
    if not lanes:
        draw.text((8, TITLE_H + 4), "(no detections)", fill=(120, 120, 120), font=_fonts(12)[0])


class _Box(NamedTuple):
    """One drawn segment box: its score, lane, x extent, top y and fill colour."""

    score: float
    lane: int
    left: float
    right: float
    top: int
    fill: tuple[int, int, int]


def _draw_boxes(
    draw: Any, segments: Sequence[Mapping[str, Any]], lane_of: Mapping[str, int], axis: _TimeAxis
) -> list[_Box]:
    """One box per segment with a lane, longest first so a segment nested in a longer one
    stays visible on top of it; returns the boxes drawn."""
    drawn = []
    for seg in sorted(segments, key=lambda s: (float(s["segment"][0]) - float(s["segment"][1]), float(s["score"]))):
        lane = lane_of.get(seg["label"])
        if lane is None:
            continue
        start, end = float(seg["segment"][0]), float(seg["segment"][1])
        score = float(seg["score"])
        colour = PALETTE[lane % len(PALETTE)]
        left, right = axis.x_of(start), max(axis.x_of(end), axis.x_of(start) + 2)
        top = TITLE_H + lane * LANE_H + 3
        fill = _shade(colour, score)
        draw.rectangle([left, top, right, top + LANE_H - 7], fill=fill, outline=colour)
        drawn.append(_Box(score, lane, left, right, top, fill))
    return drawn


def _draw_scores(draw: Any, drawn: Sequence[_Box]) -> None:
    """Each box's score, best first, only where it fits its box and crosses no other
    score or box edge; dark or light ink by the box's shade."""
    small = _small_font()
    placed: list[tuple[int, float, float]] = []
    for score, lane, left, right, top, fill in sorted(drawn, key=lambda d: -d[0]):
        label = f"{score:.2f}"
        text_w = draw.textlength(label, font=small)
        x = (left + right - text_w) / 2
        fits = right - left >= text_w + 4
        clear = all(other != lane or x + text_w + 2 < a or x - 2 > b for other, a, b in placed) and not any(
            other == lane and x - 2 < edge < x + text_w + 2
            for _, other, l2, r2, _, _ in drawn
            if (l2, r2) != (left, right)
            for edge in (l2, r2)
        )
        if fits and clear:
            luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
            ink = (0, 0, 0) if luminance > 150 else (255, 255, 255)
            draw.text((x, top + 2), label, fill=ink, font=small)
            placed.append((lane, x, x + text_w))


def _draw_note(draw: Any, note: str, w: int, h: int) -> None:
    small = _small_font()
    draw.text((8, h - NOTE_H + 2), _fit(draw, note, small, w - 16), fill=(90, 90, 90), font=small)


def _draw_axis(draw: Any, axis: _TimeAxis, axis_y: float) -> None:
    """The time axis at ``axis_y``: a line, ticks at a 'nice' step and their labels."""
    small = _small_font()
    draw.line([axis.x0, axis_y, axis.x1, axis_y], fill=(0, 0, 0))
    step = tick_step(axis.span, axis.plot_w)
    n_ticks = int(math.floor(axis.span / step + 1e-9))
    for k in range(n_ticks + 1):
        t = k * step
        x = axis.x_of(t)
        draw.line([x, axis_y, x, axis_y + 4], fill=(0, 0, 0))
        text = format_time(t, step)
        text_w = draw.textlength(text, font=small)
        draw.text((min(max(x - text_w / 2, axis.x0 - 4), axis.x1 - text_w), axis_y + 6), text, fill=(0, 0, 0),
                  font=small)
    draw.text((8, axis_y + 6), "time", fill=(90, 90, 90), font=small)


def timeline_filename(video_id: str) -> str:
    """File name for a video's timeline: the id kept as it is (Unicode included) but for
    what file systems forbid, by the rule of per-video outputs (``safe_stem``), plus ``.png``."""
    return safe_stem(video_id) + ".png"


def write_timeline(path: str | os.PathLike, image: Any) -> Path:
    """Save a rendered timeline as PNG, atomically."""
    path = Path(path)
    with atomic_open(path, "wb") as handle:
        image.save(handle, format="PNG", optimize=True)
    return path


def write_timelines(
    out_dir: str | os.PathLike,
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    actions: Sequence[str],
    durations: Mapping[str, float | None] | None = None,
    width: int = DEFAULT_WIDTH,
    max_lanes: int = 40,
) -> dict[str, Path]:
    """One PNG per video of ``results`` (ActivityNet layout) in ``out_dir``; {video: path}.

    Names come from :func:`timeline_filename`; two ids that map to the same name (compared
    like :func:`~psftr_core.io.output_dir.stem_key`: case and Unicode normalisation
    ignored) get ``-2``, ``-3``... suffixes (in sorted video order, so names are stable).
    """
    out_dir = Path(out_dir)
    durations = durations or {}
    written: dict[str, Path] = {}
    used: set[str] = set()
    for video_id in sorted(results):
        name = timeline_filename(video_id)
        stem, k = name[:-4], 2
        while stem_key(name) in used:
            name, k = f"{stem}-{k}.png", k + 1
        used.add(stem_key(name))
        image = render_timeline(video_id, durations.get(video_id), actions, results[video_id], width, max_lanes)
        written[video_id] = write_timeline(out_dir / name, image)
    return written
