"""Timeline PNGs (psftr_core.io.timeline): size, lanes, segment placement and shading."""

from __future__ import annotations

from PIL import Image

from psftr_core.io.timeline import (
    AXIS_H,
    LABEL_W,
    LANE_H,
    PALETTE,
    RIGHT_PAD,
    TITLE_H,
    choose_lanes,
    format_time,
    render_timeline,
    tick_step,
    timeline_filename,
    timeline_size,
    write_timelines,
)

SEGMENTS = [
    {"segment": [2.0, 4.0], "label": "diving", "score": 1.0},
    {"segment": [6.0, 9.0], "label": "=cmd", "score": 0.0},
]


def test_size_formula():
    assert timeline_size(3, 1200) == (1200, TITLE_H + 3 * LANE_H + AXIS_H)
    assert timeline_size(0, 1200)[1] == TITLE_H + LANE_H + AXIS_H  # at least one lane


def test_segments_are_drawn_in_their_lane_at_their_time_shaded_by_score():
    image = render_timeline("v1", 10.0, ["diving", "pole vault", "=cmd"], SEGMENTS, width=1000)
    assert image.size == (1000, TITLE_H + 3 * LANE_H + AXIS_H)
    plot_w = 1000 - RIGHT_PAD - LABEL_W

    def pixel(t: float, lane: int) -> tuple[int, int, int]:
        return image.getpixel((int(LABEL_W + t / 10.0 * plot_w), TITLE_H + lane * LANE_H + 6))

    # score 1.0 -> full lane colour (lane 0, away from the printed score text)
    assert pixel(2.2, 0) == PALETTE[0]
    # score 0.0 -> 20 % of lane 2's colour blended with white
    expected = tuple(int(round(255 * 0.8 + c * 0.2)) for c in PALETTE[2])
    assert pixel(6.2, 2) == expected
    # outside the segments the lane background stays (lane 0 grey stripe, lane 1 white)
    assert pixel(5.0, 0) == (245, 245, 245)
    assert pixel(3.0, 1) == (255, 255, 255)


def test_many_actions_only_detected_ones_get_lanes():
    actions = [f"a{i}" for i in range(1000)]
    segs = [{"segment": [i, i + 1.0], "label": f"a{i * 10}", "score": i / 100} for i in range(50)]
    lanes, hidden = choose_lanes(actions, segs, max_lanes=40)
    # the 40 best-scoring detected actions, in vocabulary order
    assert lanes == [f"a{i * 10}" for i in range(10, 50)]
    assert hidden == 960
    image = render_timeline("v", 60.0, actions, segs)
    assert image.size == timeline_size(40, with_note=True)


def test_ticks_and_labels():
    assert tick_step(10.0, 1000) == 1.0
    assert tick_step(3600.0, 1000) == 300.0
    assert format_time(2.5, 0.5) == "2.5s"
    assert format_time(125.0, 60) == "2:05"
    assert format_time(3725.0, 600) == "1:02:05"


def test_write_timelines_one_png_per_video_with_safe_unique_names(tmp_path):
    results = {"a/b": SEGMENTS, "a_b": [], "../x y": SEGMENTS[:1]}
    written = write_timelines(tmp_path, results, ["diving", "=cmd"], {"a/b": 10.0})
    assert sorted(p.name for p in written.values()) == ["_._x y.png", "a_b-2.png", "a_b.png"]
    for path in written.values():
        assert path.parent == tmp_path
        with Image.open(path) as img:
            assert img.format == "PNG"
            assert img.size == timeline_size(2)
    assert timeline_filename("...") == "___.png"


def test_file_names_keep_unicode_ids_like_other_per_video_outputs(tmp_path):
    assert timeline_filename("vidéo 1") == "vidéo 1.png"
    assert timeline_filename("a:b?") == "a_b_.png"
    assert timeline_filename("CON") == "_CON.png"
    # the same name up to case or Unicode normalisation (NFC "é" vs "e" + accent) gets a suffix
    written = write_timelines(tmp_path, {"Vidéo": [], "vide\u0301o": [], "vidéo": []}, ["diving"])
    assert sorted(p.name for p in written.values()) == sorted(["Vidéo.png", "vide\u0301o-2.png", "vidéo-3.png"])
    assert len(list(tmp_path.iterdir())) == 3


def test_a_10000_character_action_is_drawn_shortened_and_measured_briefly(monkeypatch):
    """The label is cut with an ellipsis, and only its first characters are measured
    (measuring one character less each time made such a timeline take seconds)."""
    from PIL import ImageDraw

    measured, drawn = [], []
    textlength, text = ImageDraw.ImageDraw.textlength, ImageDraw.ImageDraw.text

    def counting_textlength(self, string, *args, **kwargs):
        measured.append(len(string))
        return textlength(self, string, *args, **kwargs)

    def recording_text(self, xy, string, *args, **kwargs):
        drawn.append(string)
        return text(self, xy, string, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "textlength", counting_textlength)
    monkeypatch.setattr(ImageDraw.ImageDraw, "text", recording_text)
    long_name = "x" * 10000
    render_timeline("v1", 10.0, [long_name, "diving"], SEGMENTS)
    label = next(s for s in drawn if s.startswith("xxx"))
    assert label.endswith("…") and set(label[:-1]) == {"x"} and len(label) < LABEL_W
    assert sum(measured) < 5000, sum(measured)
