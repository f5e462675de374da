"""/thumbnail.jpg and /preview.gif: the stills while they exist, else the logo, always max-age=20."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from robyn import Response

from owncast_fast.config.runtime import Settings
from owncast_fast.media.stills import stills_directory
from owncast_fast.web.routes.config import DEFAULT_LOGO
from owncast_fast.web.routes.images import StillFiles


def services(data_path: Path, **settings: Any) -> Any:
    return SimpleNamespace(
        options=SimpleNamespace(data_path=data_path), settings=SimpleNamespace(current=Settings(**settings))
    )


def served(response: Response) -> tuple[int, str, str, bytes]:
    headers = response.headers
    return (
        response.status_code,
        headers.get("Content-Type"),
        headers.get("Cache-Control"),
        bytes(response.description),
    )


def test_stills_are_served_while_they_exist(tmp_path: Path) -> None:
    files, svc = StillFiles(), services(tmp_path)
    directory = stills_directory(tmp_path)
    directory.mkdir()
    (directory / "thumbnail.jpg").write_bytes(b"\xff\xd8 first")
    (directory / "preview.gif").write_bytes(b"GIF89a")
    assert served(files.response(svc, "thumbnail.jpg", "image/jpeg")) == (
        200, "image/jpeg", "public, max-age=20", b"\xff\xd8 first"
    )  # fmt: skip
    assert served(files.response(svc, "preview.gif", "image/gif")) == (
        200,
        "image/gif",
        "public, max-age=20",
        b"GIF89a",
    )
    (directory / "thumbnail.jpg").write_bytes(b"\xff\xd8 the next one")  # the maker replaced it
    assert served(files.response(svc, "thumbnail.jpg", "image/jpeg"))[3] == b"\xff\xd8 the next one"


def test_without_stills_the_logo_stands_in(tmp_path: Path) -> None:
    files = StillFiles()
    # No logo file (the default setting names logo.svg, never uploaded): the default logo.
    default = files.response(services(tmp_path), "thumbnail.jpg", "image/jpeg")
    assert served(default) == (200, "image/svg+xml", "public, max-age=20", DEFAULT_LOGO)
    assert default.headers.get("Content-Security-Policy") == "script-src 'none'"
    (tmp_path / "logo.png").write_bytes(b"\x89PNG uploaded")
    uploaded = files.response(services(tmp_path, logo_path="logo.png"), "preview.gif", "image/gif")
    assert served(uploaded) == (200, "image/png", "public, max-age=20", b"\x89PNG uploaded")
    (tmp_path / "logo.bmp").write_bytes(b"BM")  # a type Owncast does not know is served as JPEG
    assert served(files.response(services(tmp_path, logo_path="logo.bmp"), "thumbnail.jpg", "image/jpeg"))[1] == (
        "image/jpeg"
    )
    # A stream ended: the maker removed its stills, the logo is back.
    directory = stills_directory(tmp_path)
    directory.mkdir()
    (directory / "thumbnail.jpg").write_bytes(b"\xff\xd8 live")
    assert served(files.response(services(tmp_path), "thumbnail.jpg", "image/jpeg"))[3] == b"\xff\xd8 live"
    (directory / "thumbnail.jpg").unlink()
    assert served(files.response(services(tmp_path), "thumbnail.jpg", "image/jpeg"))[3] == DEFAULT_LOGO
