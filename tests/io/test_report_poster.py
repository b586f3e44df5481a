"""Poster frames of the review page (io/report.py): a JPEG of the frame at 10 % of each
video, in the page as a data: URI, checked against videos whose frames are known solid
colours; an undecodable file gets none, without an error."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from fixtures_clip import encode_frames
from psftr_core.io.report import POSTER_WIDTH, ReportVideo, poster_uri, report_data, write_report

RED, GREEN, BLUE = (200, 30, 30), (30, 200, 30), (30, 30, 200)
PREFIX = "data:image/jpeg;base64,"


def coloured_video(path: Path, width: int = 480, height: int = 270, rotation: int = 0) -> Path:
    """4 s at 10 fps: frame 4 (0.4 s, 10 %) green, frames 0-3 red, the others blue."""
    colours = [RED] * 4 + [GREEN] + [BLUE] * 35
    images = [np.full((height, width, 3), colour, dtype=np.uint8) for colour in colours]
    return encode_frames(path, images, fps=10, rotation=rotation, options={"preset": "ultrafast", "crf": "10"})


def jpeg(uri: str):
    from PIL import Image

    assert uri.startswith(PREFIX)
    image = Image.open(io.BytesIO(base64.b64decode(uri[len(PREFIX):], validate=True)))
    assert image.format == "JPEG"
    return image


def mean_colour(image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return coloured_video(tmp_path_factory.mktemp("poster") / "colours.mp4")


def page_data(text: str) -> dict:
    return json.loads(re.search(r'<script type="application/json" id="psftr-data">(.*?)</script>', text, re.S).group(1))


def test_page_has_the_poster_of_the_frame_at_ten_percent(video, tmp_path):
    page = write_report(tmp_path / "report.html", [ReportVideo("colours", [], None, video)], [])
    (entry,) = page_data(page.read_text(encoding="utf-8"))["videos"]
    image = jpeg(entry["poster"])
    assert image.size == (POSTER_WIDTH, 180)  # 480 x 270 scaled to 320 px wide
    assert mean_colour(image) == pytest.approx(GREEN, abs=12)


def test_the_given_duration_places_the_frame(video, tmp_path):
    """A duration of 2 s puts 10 % at 0.2 s (red); 10 s at 1.0 s (blue)."""
    assert mean_colour(jpeg(poster_uri(video, 2.0))) == pytest.approx(RED, abs=12)
    data = report_data([ReportVideo("v", [], 10.0, video)], [], tmp_path)
    assert mean_colour(jpeg(data["videos"][0]["poster"])) == pytest.approx(BLUE, abs=12)


def test_a_narrow_video_keeps_its_size_and_a_rotated_one_is_upright(tmp_path):
    narrow = coloured_video(tmp_path / "narrow.mp4", width=96, height=64)
    assert jpeg(poster_uri(narrow)).size == (96, 64)
    turned = coloured_video(tmp_path / "turned.mp4", width=96, height=64, rotation=90)
    image = jpeg(poster_uri(turned))
    assert image.size == (64, 96) and mean_colour(image) == pytest.approx(GREEN, abs=12)


def test_non_square_pixels_are_shown_as_a_player_shows_them(tmp_path):
    """96 x 64 coded pixels of aspect 2:1 are a 192 x 64 picture."""
    from fractions import Fraction

    import av

    path = tmp_path / "anamorphic.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.sample_aspect_ratio = Fraction(2, 1)
        for _ in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), GREEN, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    image = jpeg(poster_uri(path))
    assert image.size == (192, 64) and mean_colour(image) == pytest.approx(GREEN, abs=12)


def test_no_poster_for_what_cannot_be_decoded(video, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert poster_uri(junk) is None and poster_uri(empty) is None and poster_uri(tmp_path / "gone.mp4") is None
    page = write_report(tmp_path / "r.html", [ReportVideo("junk", [], 4.0, junk), ReportVideo("feats", [], 4.0)], [])
    junk_entry, features = page_data(page.read_text(encoding="utf-8"))["videos"]
    assert junk_entry["src"] == "junk.mp4" and junk_entry["poster"] is None
    assert "poster" not in features  # no video file: no player, no poster
    data = report_data([ReportVideo("v", [], None, video)], [], tmp_path, posters=False)
    assert data["videos"][0]["poster"] is None


@pytest.mark.skipif(shutil.which("chromium") is None or not Path("/usr/bin/chromedriver").is_file(),
                    reason="Chromium and chromedriver are not installed")
def test_chromium_shows_the_poster_under_the_page_s_csp(video, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (test extra) is not installed")
    from selenium.webdriver.chrome.service import Service

    folder = tmp_path / "clips"
    folder.mkdir()
    shutil.copy(video, folder / "colours.mp4")
    page = write_report(tmp_path / "report.html", [ReportVideo("colours", [], None, folder / "colours.mp4")], [])
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        browser.get(page.as_uri())
        poster = browser.execute_script("var v = document.querySelector('video'); return v && v.poster;")
        assert poster.startswith(PREFIX)
        # the poster as an image the page's CSP lets load (img-src data:): its natural size
        size = browser.execute_async_script(
            "var done = arguments[0], img = new Image();"
            "img.onload = function () { done([img.naturalWidth, img.naturalHeight]); };"
            "img.onerror = function () { done(null); }; img.src = document.querySelector('video').poster;")
        assert size == [POSTER_WIDTH, 180]
        assert browser.get_log("browser") == []  # nothing blocked
    finally:
        browser.quit()
