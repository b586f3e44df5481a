"""The HTML review page: one self-contained file to look through detections by eye.

``write_report(path, videos, actions)`` writes one HTML file with inline CSS and
JavaScript and no network use (no external script, style, font or image; a Content
Security Policy that allows only the page's own script and style, by hash, and media
from the local disk). Per video a collapsible ``<details>`` section holds:

- the ``<video>`` player when the video is a local file (``src`` relative to the HTML
  file's folder, URL-escaped, so the folder can be moved as a whole), with a poster: a
  JPEG of the frame at 10 % of the video, at most 320 px wide, in the page as a
  ``data:`` URI (:func:`poster_uri`; none for a file PyAV cannot decode);
- one lane per action that has segments in the video, with each segment as a box at
  its place in time (tooltip: label, times, score); a click on a box seeks the player
  to the segment's start and plays; a line follows the playback position;
- for feature-only runs (no video file) the lanes alone.

At the top: a minimum-score slider (segments below it are hidden), one checkbox per
action (unchecked actions are hidden), a video-id search box, and a count of the
segments shown. Sections are drawn when first opened (the first is open), so pages with
hundreds of videos stay quick.

The data goes into the page as JSON in a ``<script type="application/json">`` with
``<``, ``>`` and ``&`` written as ``\\u003c``-style escapes, so no label can end the
element; ids and labels reach the page only through HTML escaping (server side) or
``textContent`` / ``title`` (script side), never as markup.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from psftr_core.io.atomic import write_text
from psftr_core.io.formats.base import detection_dicts
from psftr_core.io.video_rotation import frame_rotation

DEFAULT_TITLE = "psftr detections"
POSTER_WIDTH = 320  # px, the poster JPEG's width at most (a narrower video keeps its own)
POSTER_AT = 0.1  # where the poster frame is, as a fraction of the duration
POSTER_MAX_FRAMES = 250  # decoded after the seek at most (x264's default keyframe interval)
POSTER_QUALITY = 80  # JPEG quality: 2-20 KB for 320 x 180 (a flat frame, camera noise)

logger = logging.getLogger(__name__)


@dataclass
class ReportVideo:
    """One video of the report.

    ``detections``: ActivityNet detection dicts or ``Segment`` objects; ``duration`` in
    seconds (None: the last segment end); ``source``: the video file, or None for a
    feature-only input (a path that is not a file counts as None).
    """

    video: str
    detections: Sequence[Any]
    duration: float | None = None
    source: str | os.PathLike | None = None


def report_videos(
    results: Mapping[str, Sequence[Any]],
    durations: Mapping[str, float | None] | None = None,
    sources: Mapping[str, str | os.PathLike | None] | None = None,
) -> list[ReportVideo]:
    """:class:`ReportVideo` list from a results mapping ``{video: detections}``, in its order."""
    durations = durations or {}
    sources = sources or {}
    return [ReportVideo(video, dets, durations.get(video), sources.get(video)) for video, dets in results.items()]


def video_url(source: str | os.PathLike | None, base_dir: str | os.PathLike) -> str | None:
    """URL of a local video file relative to ``base_dir`` (percent-escaped), else None.

    A file on another drive than ``base_dir`` (Windows) gets an absolute ``file:`` URL.
    """
    if source is None:
        return None
    path = Path(source)
    if not path.is_file():
        return None
    path = path.resolve()
    try:
        relative = os.path.relpath(path, Path(base_dir).resolve())
    except ValueError:
        return path.as_uri()
    # the file system's bytes, so a name that is not UTF-8 (surrogate escapes) stays addressable
    return "/".join(quote(os.fsencode(part), safe="") for part in Path(relative).parts)


def json_for_script(data: Any) -> str:
    """JSON text that is safe inside ``<script type="application/json">``."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def poster_uri(source: str | os.PathLike, duration: float | None = None) -> str | None:
    """A ``data:image/jpeg;base64,...`` URI of the video's frame at ``POSTER_AT`` of
    ``duration`` (seconds; None: the container's), upright (display rotation applied) and
    at most ``POSTER_WIDTH`` px wide with the aspect kept; None when ``source`` is not a
    video that PyAV decodes (the page then has no poster for it, and no error)."""
    try:
        image = _poster_image(Path(source), duration)
    except Exception as err:  # any file the decoder or Pillow refuses: no poster, never a failed page
        logger.debug("no poster frame for %s: %s", source, err)
        return None
    if image is None:
        return None
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=POSTER_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _poster_image(path: Path, duration: float | None) -> Any:
    """The poster frame as a PIL image, scaled to the poster's size (None: no video frame)."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # frame threads: the decode up to the target is the cost
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
        if duration is None or not math.isfinite(duration) or duration <= 0:
            duration = container.duration / av.time_base if container.duration else 0.0
        target = start + POSTER_AT * duration
        if target > start:
            container.seek(int(target / stream.time_base), stream=stream)  # to the keyframe at or before
        frame = None
        for count, decoded in enumerate(container.decode(stream)):
            frame = decoded
            if decoded.time is None or decoded.time >= target or count >= POSTER_MAX_FRAMES:
                break
        if frame is None:
            return None
        aspect = float(stream.sample_aspect_ratio or 1) or 1.0  # non-square pixels (anamorphic): as shown
        image = frame.to_image()
        if abs(aspect - 1.0) > 1e-3:
            image = image.resize((max(1, round(image.width * aspect)), image.height))
        image = _upright(image, frame_rotation(frame, stream))
    width = min(POSTER_WIDTH, image.width)
    return image.resize((width, max(1, round(image.height * width / image.width))))


def _upright(image: Any, rotation: int) -> Any:
    from PIL import Image

    turns = {90: Image.Transpose.ROTATE_90, 180: Image.Transpose.ROTATE_180, 270: Image.Transpose.ROTATE_270}
    return image.transpose(turns[rotation]) if rotation in turns else image


def csp_hash(text: str) -> str:
    """A CSP ``'sha256-...'`` source for an inline ``<script>`` / ``<style>`` body."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def report_data(
    videos: Iterable[ReportVideo], actions: Sequence[str], base_dir: str | os.PathLike, posters: bool = True
) -> dict[str, Any]:
    """The page's JSON: ``{"actions": [names], "videos": [{"id", "src", "duration",
    "span", "lanes": [action index], "segments": [[start, end, action index, score]]}]}``,
    and with a ``src`` a ``"poster"``: :func:`poster_uri` (None without ``posters`` or a
    frame).

    ``actions`` keeps its order; labels not in it are appended. ``span`` is the length
    of the drawn time axis (the duration, or the last end when that is later).
    """
    names = list(dict.fromkeys(actions))
    index = {name: i for i, name in enumerate(names)}
    out = []
    for item in videos:
        dets = detection_dicts(item.video, item.detections)
        for det in dets:
            if det["label"] not in index:
                index[det["label"]] = len(names)
                names.append(det["label"])
        segments = sorted(
            [det["segment"][0], det["segment"][1], index[det["label"]], det["score"]] for det in dets
        )
        duration = float(item.duration) if item.duration is not None and math.isfinite(item.duration) else None
        last_end = max((s[1] for s in segments), default=0.0)
        span = max(duration or 0.0, last_end)
        entry = {
            "id": item.video,
            "src": video_url(item.source, base_dir),
            "duration": duration,
            "span": span if span > 0 else 1.0,
            "lanes": sorted({s[2] for s in segments}),
            "segments": segments,
        }
        if entry["src"] is not None:
            entry["poster"] = poster_uri(item.source, duration) if posters else None
        out.append(entry)
    return {"actions": names, "videos": out}


def _count(number: int, noun: str) -> str:
    """``1 video``, ``2 videos``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "duration unknown"
    minutes, sec = divmod(float(seconds), 60.0)
    return f"{int(minutes)}:{sec:04.1f}"


def report_html(
    videos: Iterable[ReportVideo],
    actions: Sequence[str],
    base_dir: str | os.PathLike,
    *,
    title: str = DEFAULT_TITLE,
    details: str = "",
    min_score: float = 0.0,
    posters: bool = True,
) -> str:
    """The page as text; video ``src`` URLs are relative to ``base_dir``; ``posters``:
    decode a poster frame per video file (False: none, e.g. for a quick partial page)."""
    data = report_data(videos, actions, base_dir, posters)
    esc = html.escape
    num_segments = sum(len(v["segments"]) for v in data["videos"])
    max_score = max((s[3] for v in data["videos"] for s in v["segments"]), default=1.0)
    slider_max = max(1.0, math.ceil(max_score * 100) / 100)
    slider_min = min(0.0, math.floor(min((s[3] for v in data["videos"] for s in v["segments"]), default=0.0) * 100) / 100)
    start_score = min(max(float(min_score), slider_min), slider_max)

    filters = "\n".join(
        f'<label class="action"><input type="checkbox" checked data-action="{i}">'
        f'<span class="swatch" data-action="{i}"></span>{esc(name)}</label>'
        for i, name in enumerate(data["actions"])
    )
    sections = []
    for i, video in enumerate(data["videos"]):
        count = len(video["segments"])
        kind = "" if video["src"] else " · no video file"
        sections.append(
            f'<details class="video" data-index="{i}"{" open" if i == 0 else ""}>'
            f'<summary><span class="vid">{esc(video["id"])}</span>'
            f'<span class="meta">{_count(count, "segment")} · '
            f'{_format_seconds(video["duration"])}{kind}</span></summary>'
            f'<div class="body"></div></details>'
        )
    csp = (
        "default-src 'none'; img-src data:; media-src 'self' file: blob:; "
        f"style-src {csp_hash(_STYLE)}; script-src {csp_hash(_SCRIPT)}"
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">
<title>{esc(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<header>
<h1>{esc(title)}</h1>
<p class="details">{esc(details)}</p>
<p class="summary">{_count(len(data["videos"]), "video")} · {_count(num_segments, "segment")} · {_count(len(data["actions"]), "action")}</p>
<div class="controls">
<label>Minimum score <input type="range" id="score-slider" min="{slider_min:g}" max="{slider_max:g}" step="0.01" value="{start_score:g}">
<output id="score-value" for="score-slider">{start_score:.2f}</output></label>
<label>Find video <input type="search" id="video-search" placeholder="video id"></label>
<span id="visible-count">{num_segments} of {num_segments} segments shown</span>
</div>
<div class="filter-head">Actions <button type="button" id="all-actions">all</button> <button type="button" id="no-actions">none</button></div>
<div id="action-filter" class="action-filter">
{filters}
</div>
</header>
<main id="videos">
<noscript><p>This page needs JavaScript to draw the timelines.</p></noscript>
{chr(10).join(sections)}
</main>
<script type="application/json" id="psftr-data">{json_for_script(data)}</script>
<script>{_SCRIPT}</script>
</body>
</html>
"""


def write_report(
    path: str | os.PathLike,
    videos: Iterable[ReportVideo],
    actions: Sequence[str],
    *,
    title: str = DEFAULT_TITLE,
    details: str = "",
    min_score: float = 0.0,
    posters: bool = True,
) -> Path:
    """Write the review page for ``videos`` to ``path`` (atomically); returns the path.

    ``actions`` orders the lanes and the filter; ``details`` is a line under the title
    (e.g. the model); ``min_score`` is where the score slider starts; ``posters``: a
    poster frame per video file (decoding one frame near 10 % of each).
    """
    path = Path(path)
    page = report_html(videos, actions, path.parent, title=title, details=details, min_score=min_score,
                       posters=posters)
    write_text(path, page)
    return path


_STYLE = """
:root { --lane-h: 20px; --label-w: 170px; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
body { margin: 0; color: #1d1f21; background: #f6f7f9; font-size: 14px; }
header { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid #d8dce1;
  padding: 8px 16px; }
h1 { font-size: 18px; margin: 0 0 2px; }
.details, .summary { margin: 0 0 4px; color: #555; }
.controls { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; margin: 6px 0; }
#score-slider { width: 220px; vertical-align: middle; }
#score-value { display: inline-block; min-width: 3em; font-variant-numeric: tabular-nums; }
.filter-head button { font-size: 12px; }
.action-filter { display: flex; flex-wrap: wrap; gap: 2px 12px; max-height: 72px; overflow-y: auto; margin-top: 4px; }
.action { white-space: nowrap; cursor: pointer; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin: 0 4px; }
main { padding: 8px 16px 40px; }
details.video { background: #fff; border: 1px solid #d8dce1; border-radius: 6px; margin: 6px 0; }
details.video > summary { cursor: pointer; padding: 6px 10px; display: flex; gap: 12px; align-items: baseline; }
.vid { font-weight: 600; overflow-wrap: anywhere; }
.meta { color: #666; font-size: 12px; }
.body { padding: 4px 10px 10px; }
.body video { display: block; max-width: 100%; max-height: 360px; margin: 0 0 8px; background: #000; }
.note { color: #666; font-style: italic; margin: 2px 0 6px; }
.timeline { position: relative; }
.row { display: flex; align-items: center; height: var(--lane-h); margin: 2px 0; }
.row[hidden] { display: none; }
.lane-name { width: var(--label-w); flex: none; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  padding-right: 8px; font-size: 12px; }
.track { position: relative; flex: 1; height: 100%; background: #eef0f3; border-radius: 3px; }
.seg { position: absolute; top: 2px; bottom: 2px; min-width: 3px; padding: 0; border: 0; border-radius: 2px;
  cursor: pointer; opacity: 0.85; }
.seg:hover, .seg:focus { opacity: 1; outline: 2px solid #1d1f21; z-index: 1; }
.seg.current { outline: 2px solid #e8590c; z-index: 1; }
.seg[hidden] { display: none; }
.axis { position: relative; height: 16px; margin-left: var(--label-w); font-size: 11px; color: #666; }
.tick { position: absolute; top: 0; transform: translateX(-50%); white-space: nowrap; }
.playhead { position: absolute; top: 0; bottom: 16px; width: 2px; background: #e8590c; pointer-events: none;
  display: none; }
"""

_SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("psftr-data").textContent);
  var slider = document.getElementById("score-slider");
  var scoreOut = document.getElementById("score-value");
  var countOut = document.getElementById("visible-count");
  var search = document.getElementById("video-search");
  var boxes = Array.prototype.slice.call(document.querySelectorAll("#action-filter input[type=checkbox]"));
  var sections = Array.prototype.slice.call(document.querySelectorAll("details.video"));
  var shown = data.actions.map(function () { return true; });
  var total = data.videos.reduce(function (n, v) { return n + v.segments.length; }, 0);

  function colour(i) { return "hsl(" + ((i * 137.508) % 360).toFixed(1) + ", 62%, 46%)"; }
  function clock(t) {
    var h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), s = t - 3600 * h - 60 * m;
    var ss = (s < 10 ? "0" : "") + s.toFixed(2);
    return (h ? h + ":" + (m < 10 ? "0" : "") : "") + m + ":" + ss;
  }
  function tickStep(span) {
    var steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
    for (var i = 0; i < steps.length; i++) { if (span / steps[i] <= 10) { return steps[i]; } }
    return 7200;
  }
  function visible(seg) { return seg[3] >= minScore() && shown[seg[2]]; }
  function minScore() { return parseFloat(slider.value); }

  document.querySelectorAll(".swatch").forEach(function (el) {
    el.style.background = colour(+el.getAttribute("data-action"));
  });

  function render(section) {
    if (section.getAttribute("data-rendered")) { return; }
    section.setAttribute("data-rendered", "1");
    var video = data.videos[+section.getAttribute("data-index")];
    var body = section.querySelector(".body");
    var player = null;
    if (video.src) {
      player = document.createElement("video");
      player.controls = true;
      player.preload = "metadata";
      if (video.poster) { player.poster = video.poster; }
      player.src = video.src;
      body.appendChild(player);
    } else {
      var note = document.createElement("p");
      note.className = "note";
      note.textContent = "No video file (features only): timeline only.";
      body.appendChild(note);
    }
    var timeline = document.createElement("div");
    timeline.className = "timeline";
    body.appendChild(timeline);
    if (!video.lanes.length) {
      var none = document.createElement("p");
      none.className = "note";
      none.textContent = "No segments.";
      timeline.appendChild(none);
    }
    var span = video.span;
    video.lanes.forEach(function (action) {
      var row = document.createElement("div");
      row.className = "row";
      row.setAttribute("data-action", action);
      var name = document.createElement("div");
      name.className = "lane-name";
      name.textContent = data.actions[action];
      name.title = data.actions[action];
      var track = document.createElement("div");
      track.className = "track";
      row.appendChild(name);
      row.appendChild(track);
      video.segments.forEach(function (seg) {
        if (seg[2] !== action) { return; }
        var box = document.createElement("button");
        box.type = "button";
        box.className = "seg";
        box.setAttribute("data-start", seg[0]);
        box.setAttribute("data-end", seg[1]);
        box.setAttribute("data-score", seg[3]);
        box.setAttribute("data-action", seg[2]);
        box.style.left = (100 * seg[0] / span) + "%";
        box.style.width = (100 * (seg[1] - seg[0]) / span) + "%";
        box.style.background = colour(seg[2]);
        box.title = data.actions[seg[2]] + "\n" + clock(seg[0]) + " \u2013 " + clock(seg[1]) +
          "\nscore " + seg[3].toFixed(3);
        box.segment = seg;
        box.addEventListener("click", function () {
          timeline.querySelectorAll(".seg.current").forEach(function (el) { el.classList.remove("current"); });
          box.classList.add("current");
          if (player) {
            player.currentTime = seg[0];
            var playing = player.play();
            if (playing && playing.catch) { playing.catch(function () {}); }
          }
        });
        track.appendChild(box);
      });
      timeline.appendChild(row);
    });
    var axis = document.createElement("div");
    axis.className = "axis";
    var step = tickStep(span);
    for (var t = 0; t <= span + 1e-9; t += step) {
      var tick = document.createElement("span");
      tick.className = "tick";
      tick.style.left = (100 * t / span) + "%";
      tick.textContent = clock(t).replace(/\.00$/, "");
      axis.appendChild(tick);
    }
    timeline.appendChild(axis);
    if (player) {
      var head = document.createElement("div");
      head.className = "playhead";
      timeline.appendChild(head);
      player.addEventListener("timeupdate", function () {
        var track = timeline.querySelector(".track");
        if (!track) { return; }
        var left = track.offsetLeft + track.offsetWidth * Math.min(player.currentTime / span, 1);
        head.style.left = left + "px";
        head.style.display = "block";
      });
    }
    apply(section);
  }

  function apply(scope) {
    scope.querySelectorAll(".seg").forEach(function (box) { box.hidden = !visible(box.segment); });
    scope.querySelectorAll(".row").forEach(function (row) {
      row.hidden = !shown[+row.getAttribute("data-action")];
    });
  }

  function update() {
    scoreOut.textContent = minScore().toFixed(2);
    var count = 0;
    data.videos.forEach(function (v) { v.segments.forEach(function (s) { if (visible(s)) { count++; } }); });
    countOut.textContent = count + " of " + total + " segments shown";
    apply(document);
  }

  boxes.forEach(function (box) {
    box.addEventListener("change", function () {
      shown[+box.getAttribute("data-action")] = box.checked;
      update();
    });
  });
  function setAll(value) {
    boxes.forEach(function (box) { box.checked = value; shown[+box.getAttribute("data-action")] = value; });
    update();
  }
  document.getElementById("all-actions").addEventListener("click", function () { setAll(true); });
  document.getElementById("no-actions").addEventListener("click", function () { setAll(false); });
  slider.addEventListener("input", update);
  search.addEventListener("input", function () {
    var query = search.value.trim().toLowerCase();
    sections.forEach(function (section) {
      var id = data.videos[+section.getAttribute("data-index")].id.toLowerCase();
      section.hidden = query !== "" && id.indexOf(query) < 0;
    });
  });
  sections.forEach(function (section) {
    section.addEventListener("toggle", function () { if (section.open) { render(section); } });
    if (section.open) { render(section); }
  });
  update();
})();
"""
