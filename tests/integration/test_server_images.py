"""/thumbnail.jpg and /preview.gif through a real server: the logo while no still exists, the stills
from `<data>/tmp/` once the still maker has written them, Owncast's max-age=20 on both."""

from __future__ import annotations

import pytest
from tests.conftest import ServerFactory

pytestmark = pytest.mark.integration


def test_images_fall_back_to_the_logo_then_serve_the_stills(server_factory: ServerFactory) -> None:
    server = server_factory()
    logo = server.request("/logo")[2]
    for path in ("/thumbnail.jpg", "/preview.gif"):
        status, headers, body = server.request(path)
        assert (status, headers["content-type"], headers["cache-control"]) == (
            200, "image/svg+xml", "public, max-age=20"
        )  # fmt: skip
        assert body == logo

    stills = server.data_dir / "tmp"
    stills.mkdir(exist_ok=True)
    (stills / "thumbnail.jpg").write_bytes(b"\xff\xd8\xff\xe0 a still")
    (stills / "preview.gif").write_bytes(b"GIF89a a preview")
    status, headers, body = server.request("/thumbnail.jpg")
    assert (status, headers["content-type"], headers["cache-control"], body) == (
        200, "image/jpeg", "public, max-age=20", b"\xff\xd8\xff\xe0 a still"
    )  # fmt: skip
    status, headers, body = server.request("/preview.gif")
    assert (status, headers["content-type"], headers["cache-control"], body) == (
        200, "image/gif", "public, max-age=20", b"GIF89a a preview"
    )  # fmt: skip
