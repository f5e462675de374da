"""Custom chat emoji: image files under <data-dir>/emoji, served at /img/emoji/<file>.

Owncast also ships built-in emoji; we ship none, so the list holds only what the admin uploads.
Uploads are checked by content (PNG, GIF, JPEG or WebP signature matching the file extension);
SVG is refused because it can carry script. Names are plain file names (no folders).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MAX_EMOJI_BYTES = 1024 * 1024  # a chat emoji is a few KiB; a megabyte bounds what one upload stores
URL_PREFIX = "/img/emoji/"

_NAME = re.compile(r"^[A-Za-z0-9_\-+]{1,64}\.(png|gif|jpg|jpeg|webp)$", re.IGNORECASE)
_CONTENT_TYPES = {
    "png": "image/png",
    "gif": "image/gif",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}


def image_kind(data: bytes) -> str | None:
    """The image format by signature: png, gif, jpeg or webp; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None


def content_type(name: str) -> str:
    return _CONTENT_TYPES.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")


class EmojiError(ValueError):
    """An upload or delete that cannot be done; the message is shown to the admin."""


class EmojiStore:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.urls: dict[str, str] = {}  # lower-case shortcode → URL
        self._files: dict[str, str] = {}  # file name → shortcode

    def scan(self) -> None:
        """Read the folder (blocking: run it in a thread)."""
        files = {}
        if self.folder.is_dir():
            for entry in sorted(os.scandir(self.folder), key=lambda e: e.name):
                if entry.is_file() and _NAME.match(entry.name):
                    files[entry.name] = entry.name.rsplit(".", 1)[0]
        self._set(files)

    def _set(self, files: dict[str, str]) -> None:
        self._files = files
        self.urls = {code.lower(): URL_PREFIX + name for name, code in files.items()}

    def listing(self) -> list[dict[str, str]]:
        return [{"name": code, "url": URL_PREFIX + name} for name, code in self._files.items()]

    def path_of(self, name: str) -> Path | None:
        return self.folder / name if name in self._files else None

    def save(self, name: str, data: bytes) -> None:
        """Validate and write (blocking: run it in a thread)."""
        match = _NAME.match(name)
        if match is None:
            raise EmojiError("emoji name must be a file name like party.png (png, gif, jpg or webp)")
        if len(data) > MAX_EMOJI_BYTES:
            raise EmojiError(f"emoji image is larger than the limit of {MAX_EMOJI_BYTES} bytes")
        kind = image_kind(data)
        extension = match.group(1).lower().replace("jpg", "jpeg")
        if kind is None or kind != extension:
            raise EmojiError(f"emoji data is not a {extension} image")
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{name}.partial"
        partial.write_bytes(data)
        partial.replace(self.folder / name)
        self._set({**self._files, name: name.rsplit(".", 1)[0]})

    def delete(self, name: str) -> None:
        if name not in self._files:
            raise EmojiError(f"no emoji named {name}")
        (self.folder / name).unlink(missing_ok=True)
        self._set({key: code for key, code in self._files.items() if key != name})
