"""Markers and fixtures shared by every bench module.

`quick` marks the benches CI runs (`bench/run.py --quick`); `ratio` marks every side-by-side bar,
and any test named `test_ratio_bar*` gets it automatically, so each module's bar is in the CI subset
without having to remember the marker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from _integration import load
from _server import ProcessLauncher

RATIO_BAR_PREFIX = "test_ratio_bar"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "quick: part of the CI bench subset (bench/run.py --quick)")
    config.addinivalue_line(
        "markers", "ratio: a bar asserted as a ratio against a reference measured side by side in one run"
    )


# Before the `-m` selection (also a collection hook) runs, or "-m 'quick or ratio'" would miss them.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.name.startswith(RATIO_BAR_PREFIX):
            item.add_marker(pytest.mark.ratio)


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[ProcessLauncher]:
    """Server processes for one bench; all are stopped at teardown, even if the bench failed."""
    made = ProcessLauncher(tmp_path)
    try:
        yield made
    finally:
        made.stop_all()


@pytest.fixture(scope="session")
def clip_1080p(tmp_path_factory: pytest.TempPathFactory) -> Callable[[int], Path]:
    """`clip_1080p(seconds)`: the benches' 1080p30 6 Mbit/s H.264 (keyframe every 2 s) + AAC FLV,
    made with ffmpeg once per length per session (no committed media)."""
    directory = tmp_path_factory.mktemp("clips")
    made: dict[int, Path] = {}

    def clip(seconds: int) -> Path:
        if seconds not in made:
            path: Path = load("media").make_flv(
                directory / f"1080p30_6M_{seconds}s.flv",
                seconds=seconds,
                size="1920x1080",
                gop=60,
                bframes=0,
                video_options=("-preset", "ultrafast", "-b:v", "6M", "-maxrate", "6M", "-bufsize", "12M"),
                audio_options=("-b:a", "128k"),
            )
            made[seconds] = path
        return made[seconds]

    return clip
