"""Markers and fixtures shared by every bench module.

`quick` marks the benches CI runs (`bench/run.py --quick`); `ratio` marks every side-by-side bar,
and any test named `test_ratio_bar*` gets it automatically, so each module's bar is in the CI subset
without having to remember the marker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
