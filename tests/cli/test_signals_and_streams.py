"""SIGTERM and broken stdout in a real ``psftr`` process (issue 27, mechanisms 2 and 3).

A pipe whose reader is gone, a closed fd 1, the interpreter's last flush at exit and the
exit status of a signalled process exist only in a process of their own, so most tests
run ``psftr`` as a child. Where the child must stop at a known point (after its first
video), a few lines before ``psftr_cli.main.run()`` wrap one call to write a marker file
and wait; the test sends SIGTERM once the marker is there. Everything else is the real
command. ``extract`` is signalled in-process instead (the test process signals itself):
a child would spend seconds importing open_clip.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cli_runner import run_cli
from fault_cases_streams import full_device_at

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "examples" / "demo"
DETECT_DEMO = ["detect", "--features", str(DEMO), "--actions-file", str(DEMO / "actions.txt"), "-q"]
WAIT_SECONDS = 60  # the child's wait at the marker; SIGTERM ends it long before

# ``python -c PAUSING_PSFTR PATCH MARKER ARGV...`` runs ``psftr ARGV``; the first time the
# method PATCH ("module:Class.method") returns, it creates the file MARKER and waits.
PAUSING_PSFTR = textwrap.dedent("""
    import importlib, sys, time
    from pathlib import Path
    module, _, attribute = sys.argv[1].partition(":")
    owner_name, method = attribute.split(".")
    owner = getattr(importlib.import_module(module), owner_name)
    original = getattr(owner, method)
    marker = Path(sys.argv[2])

    def pause_after_first(*args, **kwargs):
        result = original(*args, **kwargs)
        if not marker.exists():
            marker.touch()
            time.sleep({wait})
        return result

    setattr(owner, method, pause_after_first)
    from psftr_cli.main import run
    sys.argv = ["psftr", *sys.argv[3:]]
    run()
""").format(wait=WAIT_SECONDS)


def child_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PSFTR_CACHE_DIR": str(tmp_path / "cache"),
            "PYTHONPATH": str(REPO)}


def psftr(args: list[str], tmp_path: Path, **popen: object) -> subprocess.CompletedProcess:
    """``psftr ARGS`` as the console script runs it (``python -m psftr_cli``)."""
    popen.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "psftr_cli", *args], stderr=subprocess.PIPE, text=True,
                          cwd=REPO, env=child_env(tmp_path), timeout=60, **popen)


def sigterm_after_first(patch: str, args: list[str], tmp_path: Path) -> tuple[int, str]:
    """Run ``psftr ARGS``, SIGTERM it once ``patch``'s first call returned: (exit code, stderr)."""
    marker = tmp_path / "first-done"
    child = subprocess.Popen([sys.executable, "-c", PAUSING_PSFTR, patch, str(marker), *args], cwd=REPO,
                             env=child_env(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not marker.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if not marker.exists():
        child.kill()
        pytest.fail(f"psftr never finished its first item; stderr:\n{child.communicate()[1][-2000:]}")
    child.send_signal(signal.SIGTERM)
    try:
        _, stderr = child.communicate(timeout=20)  # a hung decode thread would keep it alive
    except subprocess.TimeoutExpired:
        child.kill()
        pytest.fail("psftr still running 20 s after SIGTERM")
    return child.returncode, stderr


def assert_clean(stderr: str) -> None:
    for text in ("Traceback", "Exception ignored", "Logging error", "Aborted"):
        assert text not in stderr, stderr[-2000:]


# ----------------------------------------------------------------------------- SIGTERM


def test_sigterm_to_extract_publishes_the_finished_videos(tmp_path, tiny_clip_files, video_folder, capsys,
                                                         monkeypatch, torch_one_thread):
    """In-process (the tiny CLIP is loaded already): the test process signals itself once
    the first video is done, and the handler ``run`` installed turns it into Terminated."""
    from psftr_cli.extract_render import ExtractProgress

    original = ExtractProgress.video_done

    def signal_after_first_video(self, result):
        original(self, result)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(WAIT_SECONDS)  # the handler interrupts this at once

    monkeypatch.setattr(ExtractProgress, "video_done", signal_after_first_video)
    out = tmp_path / "feats"
    clip = ["--clip-config", tiny_clip_files.config, "--clip-pretrained", tiny_clip_files.weights, "--device", "cpu"]
    with sigterm_recorded() as missed:  # if run() installed no handler, this one gets it (not pytest's death)
        code, _, stderr = run_cli([video_folder, "-o", out, "-q", *clip], capsys, monkeypatch, command="extract")

    assert not missed, "SIGTERM reached the test's handler: run() did not handle it"
    assert code == 143, stderr[-2000:]
    assert "interrupted" in stderr and "run the same command again" in stderr
    assert_clean(stderr)
    # the feature folder is a dataset of the finished video: what a re-run would start from
    assert json.loads((out / "feature_info.json").read_text(encoding="utf-8")).keys() == {"alpha"}
    assert json.loads((out / "annotations.json").read_text(encoding="utf-8"))["database"].keys() == {"alpha"}
    assert (out / "dataset.yaml").is_file()
    assert not [thread for thread in threading.enumerate() if thread.name == "psftr-decode"]


@contextlib.contextmanager
def sigterm_recorded():
    """A SIGTERM handler of the test's own while the block runs: records what reaches it."""
    missed: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: missed.append(signum))
    try:
        yield missed
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_sigterm_to_detect_writes_the_partial_report(tmp_path):
    report, output = tmp_path / "review.html", tmp_path / "out.json"
    code, stderr = sigterm_after_first("psftr_core.io.detect_outputs:DetectOutputs.add",
                                       [*DETECT_DEMO, "-o", str(output), "--report", str(report)], tmp_path)

    assert code == 143, stderr[-2000:]
    assert "psftr: interrupted by SIGTERM" in stderr
    assert_clean(stderr)
    videos = len(list((DEMO / "features").glob("*.npy")))
    assert f"(interrupted: 1 of {videos} videos)" in report.read_text(encoding="utf-8")
    assert not output.exists()  # the results file is atomic: all videos or none


def test_in_process_run_puts_back_the_sigterm_handler_and_stdout(capsys, monkeypatch):
    from psftr_cli.main import run

    def ours(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, ours)
    try:
        stdout = sys.stdout
        monkeypatch.setattr(sys, "argv", ["psftr", "--version"])
        with pytest.raises(SystemExit) as done:
            run()
        assert done.value.code == 0 and signal.getsignal(signal.SIGTERM) is ours and sys.stdout is stdout
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert capsys.readouterr().out.startswith("psftr ")


# ----------------------------------------------------------------------------- stdout


def test_stdout_reader_gone_is_silent_with_exit_141(tmp_path):
    """``psftr detect ... | head -0``: the pipe's read end is closed before the first write."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = psftr([*DETECT_DEMO, "--format", "jsonl"], tmp_path, stdout=write_end)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (141, "")


def test_stdout_on_a_full_disk_is_one_line_and_exit_1(tmp_path):
    full = full_device_at(tmp_path / "full")
    with open(full, "wb") as device:
        done = psftr(DETECT_DEMO, tmp_path, stdout=device)
    assert done.returncode == 1, done.stderr
    assert done.stderr.splitlines() == ["psftr: error: cannot write to stdout: no space left on the device"]


def test_closed_stdout_is_one_line_where_there_is_output(tmp_path):
    done = psftr(["--version"], tmp_path, stdout=None, preexec_fn=lambda: os.close(1))
    assert (done.returncode, done.stderr) == (1, "psftr: error: cannot write to stdout: it is closed\n")


def test_closed_stdout_is_no_error_where_output_goes_to_a_file(tmp_path):
    output = tmp_path / "out.json"
    done = psftr([*DETECT_DEMO, "-o", str(output)], tmp_path, stdout=None, preexec_fn=lambda: os.close(1))
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(output.read_text(encoding="utf-8"))["results"]
