"""Results cached on disk by content hash: the same image bytes + parameters + model id give the same file.

Entries are plain files ``<root>/<key[:2]>/<key><suffix>`` written atomically (``os.replace``); the least recently
used ones are removed when the folder grows past ``max_bytes``. Safe to share between threads of one process.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time

log = logging.getLogger(__name__)


def content_key(*parts) -> str:
    """SHA-256 hex digest of ``parts``: bytes are hashed as they are, everything else as canonical JSON."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, (bytes, bytearray, memoryview)):
            data = bytes(part)
            digest.update(b"B%d:" % len(data))
            digest.update(data)
        else:
            text = json.dumps(part, sort_keys=True, separators=(",", ":"), default=str).encode()
            digest.update(b"J%d:" % len(text))
            digest.update(text)
    return digest.hexdigest()


class ResultCache:
    def __init__(self, root: str, max_bytes: int):
        self.root = os.path.abspath(root)
        self.max_bytes = int(max_bytes)
        self._lock = threading.Lock()
        os.makedirs(self.root, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def path_for(self, key: str, suffix: str = "") -> str:
        if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"cache keys are hex digests, got {key!r}")
        return os.path.join(self.root, key[:2], key + suffix)

    def get(self, key: str, suffix: str = "") -> str | None:
        """Path of the cached result, or None. A hit refreshes the entry's age (LRU)."""
        path = self.path_for(key, suffix)
        with self._lock:
            if not os.path.isfile(path):
                self.misses += 1
                return None
            self.hits += 1
            now = time.time()
            os.utime(path, (now, now))
            return path

    def put(self, key: str, src: str, suffix: str = "") -> str:
        """Move the finished file ``src`` into the cache (atomic) and return its cache path."""
        path = self.path_for(key, suffix)
        with self._lock:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.replace(src, path)
            self._evict_locked(keep=path)
        return path

    def entries(self) -> list[tuple[float, int, str]]:
        """(mtime, size, path) of every cached file."""
        out = []
        for folder, _dirs, files in os.walk(self.root):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                out.append((st.st_mtime, st.st_size, path))
        return out

    def size_bytes(self) -> int:
        return sum(size for _t, size, _p in self.entries())

    def _evict_locked(self, keep: str) -> None:
        entries = sorted(self.entries())
        total = sum(size for _t, size, _p in entries)
        for _mtime, size, path in entries:
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            try:
                os.remove(path)
                total -= size
                log.info("cache: removed %s (%d bytes) to stay under %d bytes", path, size, self.max_bytes)
            except FileNotFoundError:
                continue
