"""/thumbnail.jpg and /preview.gif: the live stills, else the logo (reference/owncast-behavior.md §4.8).

`media/stills.StillMaker` writes both files into `<data>/tmp/` while a stream is live and removes
them when it ends; here they are read (cached until the file changes, as the logo) and served
with Owncast's `max-age=20`. Without a file, Owncast's handlers call its logo handler: the
configured logo, else the default one. One difference, on purpose: the fallback keeps the
20-second lifetime instead of the logo's week, or a cache would show the logo for days after the
stream went live.
"""

from __future__ import annotations

from robyn import Response, SubRouter

from owncast_fast.config.validation import IMAGE_TYPES
from owncast_fast.lifecycle import Services, ServicesHolder
from owncast_fast.media.stills import PREVIEW_NAME, THUMBNAIL_NAME, stills_directory
from owncast_fast.web.routes.config import DEFAULT_LOGO, LogoFiles, image_response, logo_file

STILL_CACHE_SECONDS = 20  # Owncast's GetCacheDurationSecondsForPath for thumbnail.jpg / preview.gif


class StillFiles:
    """The stills and the logo, read from the data directory and cached by modification time."""

    def __init__(self) -> None:
        self._files = LogoFiles()

    def response(self, services: Services, name: str, content_type: str) -> Response:
        data = self._files.read(stills_directory(services.options.data_path) / name)
        if data is not None:
            return image_response(data, content_type, STILL_CACHE_SECONDS)
        return self.logo(services)

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

    # Sync handlers without a request parameter: Robyn's worker threads serve them from the cache.
    @web.get("/thumbnail.jpg")
    def get_thumbnail() -> Response:
        return files.response(holder.current, THUMBNAIL_NAME, "image/jpeg")

    @web.get("/preview.gif")
    def get_preview() -> Response:
        return files.response(holder.current, PREVIEW_NAME, "image/gif")

    return web
