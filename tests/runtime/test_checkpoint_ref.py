"""Checkpoints by reference: hub references resolved offline from a hub cache laid out
here, URLs fetched once from a local HTTP server, checksums refused before loading."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from psftr_core.errors import InputError
from psftr_core.runtime import checkpoint_ref as cr

COMMIT = "0123456789abcdef0123456789abcdef01234567"
PAYLOAD = b"not really a checkpoint, but bytes with a known hash"
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def lay_out_hub_cache(root: Path, files: dict[str, bytes], repo: str = "owner/repo", commit: str = COMMIT) -> Path:
    """The layout huggingface_hub reads: models--OWNER--REPO/{refs/main, snapshots/<commit>/FILE}."""
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    for name, data in files.items():
        target = repo_dir / "snapshots" / commit / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return repo_dir / "snapshots" / commit


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch) -> Path:
    """A hub cache with owner/repo: last.pt and split_0/last.pt; HF_HUB_CACHE points at it (offline)."""
    root = tmp_path / "hub"
    snapshot = lay_out_hub_cache(root, {"last.pt": PAYLOAD, "split_0/last.pt": PAYLOAD + b"0"})
    monkeypatch.setenv("HF_HUB_CACHE", str(root))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return snapshot


def test_the_layout_is_what_huggingface_hub_reads(hub_cache):
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache("owner/repo", "last.pt", cache_dir=hub_cache.parents[2])
    assert Path(found) == hub_cache / "last.pt"


@pytest.mark.parametrize("ref, name", [
    ("hf:owner/repo/last.pt", "last.pt"),
    (f"hf:owner/repo/last.pt@{COMMIT}", "last.pt"),
    ("hf:owner/repo/split_0/last.pt", "split_0/last.pt"),  # FILE may hold slashes
    ("hf://owner/repo/last.pt@main", "last.pt"),
])
def test_hub_reference_resolved_offline_from_the_cache(hub_cache, ref, name):
    assert cr.resolve_checkpoint_ref(ref) == hub_cache / name


def test_hub_reference_checked_against_its_sha256(hub_cache):
    assert cr.resolve_checkpoint_ref("hf:owner/repo/last.pt", PAYLOAD_SHA.upper()) == hub_cache / "last.pt"
    with pytest.raises(InputError, match=f"SHA-256 is {PAYLOAD_SHA}, not the --checkpoint-sha256 0{{64}}"):
        cr.resolve_checkpoint_ref("hf:owner/repo/last.pt", "0" * 64)
    assert (hub_cache / "last.pt").read_bytes() == PAYLOAD  # the cache's file is left as it is


@pytest.mark.parametrize("ref", ["hf:owner/repo/missing.pt", "hf:owner/other/last.pt",
                                 "hf:owner/repo/last.pt@ffffffffffffffffffffffffffffffffffffffff"])
def test_hub_reference_missing_offline_is_one_line(hub_cache, ref):
    with pytest.raises(InputError, match="not in the local hub cache .* HF_HUB_OFFLINE is set; run once online"):
        cr.resolve_checkpoint_ref(ref)


@pytest.mark.parametrize("ref", ["hf:onlyowner", "hf:owner/repo", "hf:owner/repo/", "hf:owner//last.pt",
                                 "hf:owner/repo/last.pt@", "hf:owner/repo/../x.pt"])
def test_malformed_hub_references(ref):
    with pytest.raises(InputError, match=r"--checkpoint .*: a hub reference is hf:OWNER/REPO/FILE\[@REVISION\]"):
        cr.check_reference(ref)


def test_hub_reference_parts():
    assert cr.parse_hub_ref("hf:me/psftr/split_0/last.pt@v1") == cr.HubRef("me/psftr", "split_0/last.pt", "v1")
    assert str(cr.parse_hub_ref("hf:me/psftr/last.pt")) == "hf:me/psftr/last.pt"


def test_unknown_scheme_and_bad_sha256_are_refused():
    with pytest.raises(InputError, match=r"unknown scheme 's3://'"):
        cr.resolve_checkpoint_ref("s3://bucket/last.pt")
    with pytest.raises(InputError, match=r"--checkpoint-sha256 'abc' is not a SHA-256"):
        cr.normalise_sha256("abc")
    assert not cr.is_remote("C:/runs/last.pt") and not cr.is_remote("runs/a:b.pt")


def test_local_file_checked_when_a_sha256_is_given(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(PAYLOAD)
    assert cr.resolve_checkpoint_ref(path, PAYLOAD_SHA) == path
    with pytest.raises(InputError, match="it was not loaded"):
        cr.resolve_checkpoint_ref(path, "f" * 64)


# --------------------------------------------------------------------------- URL


class _Server:
    """A local HTTP server (localhost is not the network) serving ``files``, counting requests."""

    def __init__(self, files: dict[str, bytes]):
        self.requests: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server(monkeypatch):
    """Online for the download (the suite runs with HF_HUB_OFFLINE=1), a local server."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    serving = _Server({"/models/last.pt": PAYLOAD})
    yield serving
    serving.close()


def test_url_downloaded_once_then_read_from_the_cache(server, tmp_path):
    url = server.url("/models/last.pt")
    first = cr.resolve_checkpoint_ref(url, PAYLOAD_SHA, cache_dir=tmp_path)
    second = cr.resolve_checkpoint_ref(url, PAYLOAD_SHA, cache_dir=tmp_path)
    assert first == second == tmp_path / "checkpoints" / PAYLOAD_SHA / "last.pt"
    assert first.read_bytes() == PAYLOAD
    assert server.requests == ["/models/last.pt"]  # the second run used the cache
    assert [p.name for p in first.parent.iterdir()] == ["last.pt"]  # no temporary file left


def test_url_with_a_wrong_sha256_leaves_nothing(server, tmp_path):
    with pytest.raises(InputError, match=f"SHA-256 is {PAYLOAD_SHA}, not the --checkpoint-sha256 e{{64}}; "
                                         "nothing was loaded or kept"):
        cr.resolve_checkpoint_ref(server.url("/models/last.pt"), "e" * 64, cache_dir=tmp_path)
    assert server.requests == ["/models/last.pt"]
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_url_errors(server, tmp_path):
    with pytest.raises(InputError, match="a URL needs --checkpoint-sha256"):
        cr.resolve_checkpoint_ref(server.url("/models/last.pt"), cache_dir=tmp_path)
    with pytest.raises(InputError, match="the server answered HTTP 404"):
        cr.resolve_checkpoint_ref(server.url("/nothing.pt"), PAYLOAD_SHA, cache_dir=tmp_path)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_url_offline_needs_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match="not in the psftr cache .* HF_HUB_OFFLINE is set"):
        cr.resolve_checkpoint_ref("https://example.invalid/last.pt", PAYLOAD_SHA, cache_dir=tmp_path)
