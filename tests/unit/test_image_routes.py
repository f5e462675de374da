"""/thumbnail.jpg and /preview.gif: the live stills while there are any, else the logo, always max-age=20."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from robyn import Response

from owncast_fast.config.runtime import Settings
from owncast_fast.media.stills import Stills
from owncast_fast.web.routes.config import DEFAULT_LOGO
from owncast_fast.web.routes.images import StillFiles


class LiveStills:
    """What the routes ask `StillMaker` for: the current stills, or None when no stream is live."""

    def __init__(self) -> None:
        self.stills: Stills | None = None

    async def current(self) -> Stills | None:
        return self.stills


def services(data_path: Path, stills: LiveStills | None = None, **settings: Any) -> Any:
    return SimpleNamespace(
        options=SimpleNamespace(data_path=data_path),
        settings=SimpleNamespace(current=Settings(**settings)),
        stills=stills,
    )


def get(files: StillFiles, svc: Any, name: str) -> Response:
    return asyncio.run(files.response(svc, preview=name == "preview.gif"))


def served(response: Response) -> tuple[int, str, str, bytes]:
    headers = response.headers
    return (
        response.status_code,
        headers.get("Content-Type"),
        headers.get("Cache-Control"),
        bytes(response.description),
    )


def test_stills_are_served_while_they_exist(tmp_path: Path) -> None:
    live = LiveStills()
    files, svc = StillFiles(), services(tmp_path, live)
    live.stills = Stills(b"\xff\xd8 first", b"GIF89a")
    assert served(get(files, svc, "thumbnail.jpg")) == (200, "image/jpeg", "public, max-age=20", b"\xff\xd8 first")
    assert served(get(files, svc, "preview.gif")) == (200, "image/gif", "public, max-age=20", b"GIF89a")
    live.stills = Stills(b"\xff\xd8 the next one", b"GIF89a")  # the maker made a fresher one
    assert served(get(files, svc, "thumbnail.jpg"))[3] == b"\xff\xd8 the next one"


def test_without_stills_the_logo_stands_in(tmp_path: Path) -> None:
    files = StillFiles()
    # No logo file (the default setting names logo.svg, never uploaded): the default logo.
    default = get(files, services(tmp_path), "thumbnail.jpg")
    assert served(default) == (200, "image/svg+xml", "public, max-age=20", DEFAULT_LOGO)
    assert default.headers.get("Content-Security-Policy") == "script-src 'none'"
    (tmp_path / "logo.png").write_bytes(b"\x89PNG uploaded")
    uploaded = get(files, services(tmp_path, logo_path="logo.png"), "preview.gif")
    assert served(uploaded) == (200, "image/png", "public, max-age=20", b"\x89PNG uploaded")
    (tmp_path / "logo.bmp").write_bytes(b"BM")  # a type Owncast does not know is served as JPEG
    assert served(get(files, services(tmp_path, logo_path="logo.bmp"), "thumbnail.jpg"))[1] == "image/jpeg"
    # A stream ended: the maker has no stills, the logo is back.
    live = LiveStills()
    live.stills = Stills(b"\xff\xd8 live", b"GIF89a")
    assert served(get(files, services(tmp_path, live), "thumbnail.jpg"))[3] == b"\xff\xd8 live"
    live.stills = None
    assert served(get(files, services(tmp_path, live), "thumbnail.jpg"))[3] == DEFAULT_LOGO
