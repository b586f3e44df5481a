"""The HTML review page (io/report.py) without a browser: structure, escaping, no network.

The page is parsed with ``html.parser``; the embedded JSON is read back; the CSP hashes
are checked against the inline script and style. The browser behaviour (seek on click,
slider, filter) is tested in test_report_browser.py.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from psftr_core.errors import InputError
from psftr_core.infer.detect import Segment
from psftr_core.io.report import (
    ReportVideo,
    csp_hash,
    json_for_script,
    report_data,
    report_videos,
    video_url,
    write_report,
)

EVIL_LABEL = "</script><script>alert(1)</script><!--"
EVIL_ID = '<img src=x onerror="alert(2)">&amp;'
VOID = {"meta", "input", "br", "img", "link", "hr", "source", "wbr"}


class Page(HTMLParser):
    """Elements, attributes, text of script/style elements, and nesting errors."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.raw: dict[str, list[str]] = {"script": [], "style": []}
        self.text: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, name, value) for name, value in attrs]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:]}")
        else:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] in self.raw:
            self.raw[self.stack[-1]].append(data)
        else:
            self.text.append(data)


def sample_videos(tmp_path):
    clips = tmp_path / "my clips é"
    clips.mkdir()
    clip = clips / "run #1?.mp4"
    clip.write_bytes(b"not really a video")  # only its path matters here
    return [
        ReportVideo(
            EVIL_ID,
            [
                {"segment": [6.0, 8.0], "label": "Diving", "score": 0.4},
                {"segment": [2.0, 4.5], "label": EVIL_LABEL, "score": 0.9},
                Segment(EVIL_ID, "Diving", 1.0, 1.5, 0.2),
            ],
            duration=10.0,
            source=clip,
        ),
        ReportVideo("features only", [{"segment": [0.0, 3.0], "label": "Unlisted", "score": 0.5}], None, None),
        ReportVideo("gone", [], 4.0, tmp_path / "missing.mp4"),
    ]


@pytest.fixture()
def written(tmp_path):
    path = write_report(tmp_path / "out" / "report.html", sample_videos(tmp_path), ["Diving", EVIL_LABEL, "Archery"],
                        title="Review <b>me</b>", details="model & co")
    return path, path.read_text(encoding="utf-8")


def embedded_data(page: Page) -> dict:
    (data_text,) = [t for t in page.raw["script"] if t.lstrip().startswith("{")]
    return json.loads(data_text)


def test_page_is_well_formed_and_escapes_untrusted_text(written):
    path, text = written
    page = Page(text)
    assert page.errors == [] and page.stack == []
    assert text.startswith("<!DOCTYPE html>")
    # Exactly our elements: the label and id did not add a script or an img.
    assert page.tags.count("script") == 2 and "img" not in page.tags
    assert [v for t, n, v in page.attrs if n == "type" and t == "script"] == ["application/json"]
    assert not any(n.startswith("on") for _, n, _ in page.attrs)  # no inline handlers
    body_text = "".join(page.text)
    assert EVIL_ID in body_text  # shown as text, once escaped
    assert EVIL_LABEL in body_text  # the action filter's label
    assert "Review <b>me</b>" in body_text and "model & co" in body_text
    assert "</script><script>" not in text.split('id="psftr-data">', 1)[1].split("</script>", 1)[0]


def test_embedded_json_reads_back(written, tmp_path):
    _, text = written
    data = embedded_data(Page(text))
    assert data["actions"] == ["Diving", EVIL_LABEL, "Archery", "Unlisted"]
    first, features, gone = data["videos"]
    assert first["id"] == EVIL_ID
    assert first["segments"] == [[1.0, 1.5, 0, 0.2], [2.0, 4.5, 1, 0.9], [6.0, 8.0, 0, 0.4]]
    assert first["lanes"] == [0, 1] and first["span"] == 10.0
    # Relative to the page's folder, percent-escaped (space, é, #, ?).
    assert first["src"] == "../my%20clips%20%C3%A9/run%20%231%3F.mp4"
    assert features == {"id": "features only", "src": None, "duration": None, "span": 3.0,
                        "lanes": [3], "segments": [[0.0, 3.0, 3, 0.5]]}
    assert gone["src"] is None and gone["span"] == 4.0 and gone["segments"] == []


def test_no_network_and_csp_matches_inline_code(written):
    _, text = written
    page = Page(text)
    assert not re.search(r"https?:|//[a-z]|url\(|@import|@font-face", text, re.IGNORECASE)
    assert not {"link", "img", "iframe", "object", "embed"} & set(page.tags)
    for _, name, value in page.attrs:
        if name in ("src", "href", "action", "poster"):
            pytest.fail(f"static URL attribute {name}={value!r}")
    (csp,) = [v for t, n, v in page.attrs if t == "meta" and n == "content" and "default-src" in (v or "")]
    assert "default-src 'none'" in csp
    code = [t for t in page.raw["script"] if not t.lstrip().startswith("{")]
    assert len(code) == 1 and f"script-src {csp_hash(code[0])}" in csp
    assert f"style-src {csp_hash(''.join(page.raw['style']))}" in csp


def test_json_for_script_cannot_close_the_element():
    text = json_for_script({"a": EVIL_LABEL, "b": "&<>"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"a": EVIL_LABEL, "b": "&<>"}


def test_video_url(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    clip = tmp_path / "a" / "b" / "x y.webm"
    clip.write_bytes(b"")
    assert video_url(clip, tmp_path) == "a/b/x%20y.webm"
    assert video_url(clip, tmp_path / "a" / "b") == "x%20y.webm"
    assert video_url(clip, tmp_path / "c") == "../a/b/x%20y.webm"
    assert video_url(tmp_path / "a", tmp_path) is None  # a folder is no video
    assert video_url(None, tmp_path) is None


def test_report_videos_and_validation(tmp_path):
    videos = report_videos({"v": [{"segment": [1, 2], "label": "A", "score": 0.5}], "w": []},
                           durations={"v": 3.0}, sources={"w": tmp_path})
    assert [(v.video, v.duration, v.source) for v in videos] == [("v", 3.0, None), ("w", None, tmp_path)]
    data = report_data(videos, ["A"], tmp_path)
    assert [v["span"] for v in data["videos"]] == [3.0, 1.0]  # empty and unknown length: 1 s axis
    with pytest.raises(InputError, match="entry 0"):
        report_data([ReportVideo("v", [{"segment": [2, 1], "label": "A", "score": 0.5}])], ["A"], tmp_path)


def test_slider_range_covers_scores(tmp_path):
    path = write_report(tmp_path / "r.html", [ReportVideo("v", [{"segment": [0, 1], "label": "A", "score": 2.345}])],
                        ["A"], min_score=0.3)
    slider = re.search(r'<input type="range" id="score-slider"[^>]*>', path.read_text(encoding="utf-8")).group(0)
    assert 'min="0"' in slider and 'max="2.35"' in slider and 'value="0.3"' in slider
