"""Unknown `/api/...` paths answer 404 with Owncast's error helper shape, `{"error": "..."}`."""

from __future__ import annotations

import json

import pytest
from tests.conftest import ADMIN_PASSWORD, ServerProcess

from owncast_fast.web.app import ROUTERS
from owncast_fast.web.routes import fallback

pytestmark = pytest.mark.integration


def test_the_fallback_is_registered_last() -> None:
    assert ROUTERS[-1] is fallback


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/nope"),
        ("GET", "/api/admin/nope"),
        ("GET", "/api/a/b/c/d"),
        ("GET", "/api/statusx"),
        ("GET", "/api"),
        ("GET", "/api/"),
        ("POST", "/api/nope"),
        ("PUT", "/api/admin/config/nope"),
        ("DELETE", "/api/nope"),
        ("PATCH", "/api/nope"),
        ("OPTIONS", "/api/nope"),
        ("POST", "/api/status"),  # routed for GET only
    ],
)
def test_unknown_api_path_is_404_json(module_server: ServerProcess, method: str, path: str) -> None:
    status, headers, body = module_server.request(path, method=method, body=b"{}" if method != "GET" else None)
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": f"no such API endpoint: {method} {path.rstrip('/')}"}


def test_unknown_admin_path_is_404_with_or_without_credentials(module_server: ServerProcess) -> None:
    """Nothing is behind an unknown path, so there is nothing to guard: 404, never 401."""
    for admin in (None, ADMIN_PASSWORD, "wrong"):
        status, _, body = module_server.request("/api/admin/nope", admin=admin)
        assert (status, json.loads(body)) == (404, {"error": "no such API endpoint: GET /api/admin/nope"})


def test_head_of_an_unknown_path_is_404_without_a_body(module_server: ServerProcess) -> None:
    status, headers, body = module_server.request("/api/nope", method="HEAD")
    assert (status, body) == (404, b"")
    assert headers["content-type"] == "application/json"


def test_routed_paths_are_not_shadowed(module_server: ServerProcess) -> None:
    assert module_server.request("/api/status")[0] == 200
    assert module_server.request("/api/admin/status", admin=ADMIN_PASSWORD)[0] == 200
    assert module_server.request("/api/admin/status")[0] == 401
    assert module_server.request("/api/admin/status", method="OPTIONS")[0] == 204
    assert module_server.request("/hls/stream.m3u8")[0] == 404  # not /api: HLS's own answer, offline
