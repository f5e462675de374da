"""A real server per test module: setters and fuzzing change its settings, so no module sees another's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.conftest import ServerProcess, free_port


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("conformance") / "data", free_port(), free_port(), variants=None)
    with pytest.MonkeyPatch.context() as patch:
        # Under systemd, /api/admin/update/forcequit really quits (metrics.py): not in these tests.
        patch.delenv("INVOCATION_ID", raising=False)
        server.start()
    yield server
    server.stop()
