"""Resolution of external files: cache, mirror, verified atomic download, clear failures."""

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from cxrsr_utils.external import registry, sources
from cxrsr_utils.external.registry import FileSource
from cxrsr_utils.external.sources import SourceError

PAYLOAD = b"pretend weights " * 4096


def _fake(url: str, payload: bytes = PAYLOAD, **kw) -> FileSource:
    return FileSource(
        name="fake",
        filename="fake.pth",
        url=url,
        size=len(payload),
        sha256=hashlib.sha256(payload).hexdigest(),
        licence="test",
        citation="test",
        **kw,
    )


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty cache and mirror of our own."""
    monkeypatch.setenv("CXRSR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXRSR_MIRROR", str(tmp_path / "mirror"))
    (tmp_path / "mirror").mkdir()
    return tmp_path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/www."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(www), **k)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_registry_has_the_issue_hashes():
    w = registry.WEIGHTS
    assert w["RealESRGAN_x4plus"].sha256.startswith("4fa0d389")
    assert w["RealESRGAN_x4plus"].size == 67_040_989
    assert w["RealESRNet_x4plus"].sha256.startswith("a820b9bd")
    assert w["realesr-general-x4v3"].size == 4_885_111
    assert w["RealESRGAN_x4plus_netD"].sha256 is None
    assert "no published hash" in w["RealESRGAN_x4plus_netD"].check_text()
    assert w["vgg19"].sha256_prefix == "dcbbabf1"
    for s in w.values():
        assert s.url.startswith("https://") and s.licence and s.citation


def test_mirror_hit(isolated, monkeypatch):
    monkeypatch.setitem(registry.WEIGHTS, "fake", _fake("http://127.0.0.1:9/none"))
    target = isolated / "mirror" / "weights" / "fake.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert sources.resolve("fake") == target


def test_cache_wins_over_mirror(isolated, monkeypatch):
    monkeypatch.setitem(registry.WEIGHTS, "fake", _fake("http://127.0.0.1:9/none"))
    for base in ("cache", "mirror"):
        (isolated / base / "weights").mkdir(parents=True)
        (isolated / base / "weights" / "fake.pth").write_bytes(PAYLOAD)
    assert sources.resolve("fake").parent.parent.name == "cache"


def test_hash_mismatch_names_file_hash_and_url(isolated, monkeypatch):
    fake = _fake("https://example.invalid/fake.pth")
    monkeypatch.setitem(registry.WEIGHTS, "fake", fake)
    bad = isolated / "mirror" / "weights" / "fake.pth"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(PAYLOAD[:-1] + b"X")  # same size, other bytes
    with pytest.raises(SourceError) as err:
        sources.resolve("fake")
    msg = str(err.value)
    assert str(bad) in msg and fake.sha256 in msg and fake.url in msg and "mirror" in msg


def test_stand_ins_only_inside_the_test_switch(isolated, monkeypatch):
    """A file that fails its hash resolves only inside allow_unverified_for_tests(), and is
    reported as UNVERIFIED there; a matching file is verified, one with no hash unpinned."""
    monkeypatch.setitem(registry.WEIGHTS, "fake", _fake("https://example.invalid/fake.pth"))
    stand_in = isolated / "mirror" / "weights" / "fake.pth"
    stand_in.parent.mkdir(parents=True)
    stand_in.write_bytes(PAYLOAD[:-1] + b"X")
    monkeypatch.delenv(sources.ENV_ALLOW_UNVERIFIED, raising=False)
    with sources.allow_unverified_for_tests():
        assert sources.resolve("fake") == stand_in
        assert sources.check("fake", stand_in).startswith("UNVERIFIED: sha256 ")
    with pytest.raises(SourceError, match="does not match"):
        sources.resolve("fake")  # the switch does not outlive its block
    stand_in.write_bytes(PAYLOAD)
    assert sources.check("fake", stand_in) == "verified"
    assert sources.check("RealESRGAN_x4plus_netD", stand_in) == "unpinned"


def test_missing_file_offline(isolated, monkeypatch):
    fake = _fake(f"http://127.0.0.1:{_closed_port()}/fake.pth")
    monkeypatch.setitem(registry.WEIGHTS, "fake", fake)
    with pytest.raises(SourceError) as err:
        sources.resolve("fake")
    msg = str(err.value)
    assert "fake.pth" in msg and fake.sha256 in msg and fake.url in msg and "CXRSR_MIRROR" in msg
    assert not (isolated / "cache" / "weights" / "fake.pth").exists()


def test_download_off(isolated, monkeypatch):
    monkeypatch.setitem(registry.WEIGHTS, "fake", _fake("http://127.0.0.1:9/x"))
    with pytest.raises(SourceError, match="downloading is off"):
        sources.resolve("fake", download=False)


def test_atomic_download_into_the_cache(isolated, monkeypatch, server):
    www, base = server
    (www / "fake.pth").write_bytes(PAYLOAD)
    monkeypatch.setitem(registry.WEIGHTS, "fake", _fake(f"{base}/fake.pth"))
    path = sources.resolve("fake")
    assert path == isolated / "cache" / "weights" / "fake.pth"
    assert path.read_bytes() == PAYLOAD
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake.pth"]  # no .part left


def test_download_with_wrong_bytes_leaves_nothing(isolated, monkeypatch, server):
    www, base = server
    (www / "fake.pth").write_bytes(PAYLOAD[:-10])  # truncated on the server
    monkeypatch.setitem(registry.WEIGHTS, "fake", _fake(f"{base}/fake.pth"))
    with pytest.raises(SourceError, match="does not match"):
        sources.resolve("fake")
    assert list((isolated / "cache" / "weights").iterdir()) == []


def test_unknown_source():
    with pytest.raises(SourceError, match="known sources"):
        sources.resolve("nope")


def test_package_source_is_checked():
    files = sources.resolve_package_files()
    assert {p.suffix for p in files.values()} == {".param", ".bin"}


def test_dataset_found_in_mirror(mirror, monkeypatch, tmp_path):
    monkeypatch.setenv("CXRSR_CACHE", str(tmp_path))
    assert sources.resolve_dataset("nih") == mirror / "data" / "nih-sample"
    assert sources.resolve_dataset("kermany") == mirror / "data" / "chest_xray"


def test_dataset_missing_says_where_to_get_it(isolated):
    with pytest.raises(SourceError) as err:
        sources.resolve_dataset("kermany")
    assert "10.17632/rscbjbr9sj" in str(err.value) and "NORMAL" in str(err.value)


def test_dataset_with_wrong_layout(tmp_path):
    (tmp_path / "k").mkdir()
    with pytest.raises(SourceError, match="lacks train/NORMAL"):
        sources.resolve_dataset("kermany", Path(tmp_path / "k"))


def test_missing_mirror_folder_is_said_before_falling_through(tmp_path, monkeypatch):
    monkeypatch.setenv("CXRSR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CXRSR_MIRROR", str(tmp_path / "no-such-mirror"))
    monkeypatch.setitem(registry.WEIGHTS, "fake", _fake("http://127.0.0.1:9/x"))
    with pytest.warns(UserWarning, match="no-such-mirror does not exist"):
        with pytest.raises(SourceError):
            sources.resolve("fake", download=False)


def test_a_killed_download_leftover_is_cleaned(isolated, monkeypatch, server):
    import os
    import time

    www, base = server
    (www / "fake.pth").write_bytes(PAYLOAD)
    monkeypatch.setitem(registry.WEIGHTS, "fake", _fake(f"{base}/fake.pth"))
    weights = isolated / "cache" / "weights"
    weights.mkdir(parents=True)
    stale = weights / ".fake.pth.killed99.part"
    stale.write_bytes(PAYLOAD[:100])
    old = time.time() - 2 * sources.STALE_DOWNLOAD_SECONDS
    os.utime(stale, (old, old))
    sources.resolve("fake")
    assert sorted(p.name for p in weights.iterdir()) == ["fake.pth"]


def test_pretrained_fallback_to_ncnn_is_said_on_stderr(isolated, monkeypatch):
    from cxrsr_utils.sr import networks as models

    bad = isolated / "mirror" / "weights" / "RealESRGAN_x4plus.pth"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not the official file")
    monkeypatch.setattr(models, "ncnn_generator_state", lambda: ({}, models._ncnn_info(bad, "x")))
    with pytest.warns(UserWarning, match="RealESRGAN_x4plus.pth not used.*does not match"):
        models.pretrained_generator_state(download=False)


def test_wrong_architecture_and_empty_weights_name_the_file(tmp_path):
    import torch

    from cxrsr_utils.sr import networks as models

    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty\.pth: the weights file is empty"):
        models.load_generator_file(tmp_path / "empty.pth")
    models.save_torch({"params_ema": {"conv.weight": torch.zeros(1)}}, tmp_path / "other.pth")
    with pytest.raises(SourceError, match=r"other\.pth: weights do not fit RRDBNet"):
        models.load_generator_file(tmp_path / "other.pth")
    models.save_torch({}, tmp_path / "nothing.pth")
    with pytest.raises(SourceError, match=r"nothing\.pth does not hold a state dict"):
        models.load_generator_file(tmp_path / "nothing.pth")
