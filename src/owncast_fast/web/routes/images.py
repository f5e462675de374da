"""/thumbnail.jpg and /preview.gif: the live stills, else the logo (reference/owncast-behavior.md §4.8).

`media/stills.StillMaker` makes both when they are asked for and the ones it holds are more than
20 s of stream older than the live picture (Owncast makes them every 20 s whether asked or not);
here they are served with Owncast's `max-age=20`. Without a file, Owncast's handlers call its logo handler: the
configured logo, else the default one. One difference, on purpose: the fallback keeps the
20-second lifetime instead of the logo's week, or a cache would show the logo for days after the
stream went live.
"""

from __future__ import annotations

from robyn import Response, SubRouter

from owncast_fast.config.validation import IMAGE_TYPES
from owncast_fast.lifecycle import Services, ServicesHolder
from owncast_fast.web.routes.config import DEFAULT_LOGO, LogoFiles, image_response, logo_file

STILL_CACHE_SECONDS = 20  # Owncast's GetCacheDurationSecondsForPath for thumbnail.jpg / preview.gif


class StillFiles:
    """The live stills, else the logo (read from the data directory, cached by modification time)."""

    def __init__(self) -> None:
        self._files = LogoFiles()

    async def response(self, services: Services, *, preview: bool) -> Response:
        """/preview.gif when `preview`, else /thumbnail.jpg."""
        stills = await services.stills.current() if services.stills is not None else None
        if stills is None:
            return self.logo(services)
        if preview:
            return image_response(stills.gif, "image/gif", STILL_CACHE_SECONDS)
        return image_response(stills.jpeg, "image/jpeg", STILL_CACHE_SECONDS)

    def logo(self, services: Services) -> Response:
        path = logo_file(services)
        data = self._files.read(path) if path is not None else None
        if path is None or data is None:
            return image_response(DEFAULT_LOGO, "image/svg+xml", STILL_CACHE_SECONDS)
        # Owncast serves a logo type it does not recognise as JPEG (as /logo does).
        return image_response(data, IMAGE_TYPES.get(path.suffix.lower(), "image/jpeg"), STILL_CACHE_SECONDS)


def router(holder: ServicesHolder) -> SubRouter:
    web = SubRouter(prefix="")
    files = StillFiles()

    # Async: a stale still is made on the stills worker thread while the request waits on the loop.
    @web.get("/thumbnail.jpg")
    async def get_thumbnail() -> Response:
        return await files.response(holder.current, preview=False)

    @web.get("/preview.gif")
    async def get_preview() -> Response:
        return await files.response(holder.current, preview=True)

    return web
