"""Session-scoped media and certificates for the integration tests, generated once per run."""

from __future__ import annotations

from pathlib import Path

import pytest
from media import ProbedPacket, make_flv, make_self_signed_cert, probe_packets


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_4s(media_dir: Path) -> Path:
    """4 s of 320x240 30 fps H.264 with two B-frames (so pts != dts) and 44.1 kHz mono AAC."""
    return make_flv(media_dir / "clip_4s.flv", seconds=4, bframes=2, gop=30)


@pytest.fixture(scope="session")
def clip_4s_packets(clip_4s: Path) -> list[ProbedPacket]:
    return probe_packets(clip_4s)


@pytest.fixture(scope="session")
def clip_15s(media_dir: Path) -> Path:
    """A longer clip for a publisher that must stay live while a test does other things."""
    return make_flv(media_dir / "clip_15s.flv", seconds=15, video_options=("-preset", "ultrafast"))


@pytest.fixture(scope="session")
def tls_cert(media_dir: Path) -> tuple[Path, Path]:
    """(certificate, key) of a self-signed certificate for 127.0.0.1."""
    return make_self_signed_cert(media_dir)
