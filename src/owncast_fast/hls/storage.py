"""Where HLS files live: served from memory, optionally mirrored to disk or object storage.

`HlsStore` is the serving store: every playlist, init segment, part and segment by its path
(`"0/stream.m3u8"`, `"0/a1b2c3-17.m4s"`), in memory, read by the web layer on any thread.
Mirrors (`StorageMirror`) get a copy of every change; they must never block the caller (the
event loop): the disk mirror hands work to one writer thread through a bounded queue, the S3
mirror to an upload task. A mirror that falls behind drops work and counts it; serving never
depends on a mirror.
"""

from __future__ import annotations

import logging
import os
import queue
import shutil
import threading
from enum import Enum
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class FileKind(Enum):
    PLAYLIST = "playlist"
    INIT = "init"
    PART = "part"
    SEGMENT = "segment"


CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
}


def content_type(path: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(path)[1], "application/octet-stream")


class StorageMirror(Protocol):
    def put(self, path: str, data: bytes, kind: FileKind) -> None: ...
    def delete(self, path: str) -> None: ...
    def close(self) -> None: ...


class HlsStore:
    def __init__(self, mirrors: list[StorageMirror] | None = None) -> None:
        self._files: dict[str, bytes] = {}
        self.mirrors = list(mirrors or ())

    def __len__(self) -> int:
        return len(self._files)

    def get(self, path: str) -> bytes | None:
        return self._files.get(path)

    def put(self, path: str, data: bytes, kind: FileKind) -> None:
        self._files[path] = data
        for mirror in self.mirrors:
            mirror.put(path, data, kind)

    def delete(self, path: str) -> None:
        if self._files.pop(path, None) is not None:
            for mirror in self.mirrors:
                mirror.delete(path)

    def paths(self) -> list[str]:
        return list(self._files)

    def close(self) -> None:
        for mirror in self.mirrors:
            mirror.close()


# Files waiting for the disk writer: about 30 s of a 6 Mbit/s stream's parts and segments.
DISK_QUEUE_LIMIT = 512


class DiskMirror:
    """Copies the HLS files under `root` (e.g. data/hls), on one writer thread.

    Like Owncast, the directory is wiped when the mirror starts: its files belong to the
    stream being served, not to an earlier run.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dropped = 0
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        self._queue: queue.Queue[tuple[str, bytes | None] | None] = queue.Queue(DISK_QUEUE_LIMIT)
        self._thread = threading.Thread(target=self._run, name="hls-disk-mirror", daemon=True)
        self._thread.start()

    def _offer(self, item: tuple[str, bytes | None]) -> None:
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("HLS disk copy is falling behind: %d files not written", self.dropped)

    def put(self, path: str, data: bytes, kind: FileKind) -> None:
        self._offer((path, data))

    def delete(self, path: str) -> None:
        self._offer((path, None))

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            path, data = item
            target = self.root / path
            try:
                if data is None:
                    target.unlink(missing_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                # Write then rename: a reader never sees half a playlist or segment.
                partial = target.with_name(target.name + ".tmp")
                partial.write_bytes(data)
                partial.replace(target)
            except OSError as exc:
                log.warning("HLS disk copy of %s failed: %s", path, exc.strerror)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=5)
