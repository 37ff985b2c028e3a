"""Files that appear complete or not at all, and content digests of files (pure Python, no bpy, no torch).

Every writer of the project that must not leave a half-written file behind (volumes, checkpoints, rendered
frames, videos, job artefacts) writes to a temporary name in the target's folder and renames it over the target:
a rename within one file system is atomic, so readers see the old file or the new one, never a part::

    with atomic_path("out/volume.npz") as tmp:   # out/.volume.npz.<pid>-<random>.tmp.npz
        np.savez_compressed(tmp, **arrays)        # any writer that takes a path
    write_bytes_atomic("frames/frame_0001.png", data)

The temporary name keeps the target's extension (writers that choose the format by extension, such as numpy's
``savez``, OpenCV's ``imwrite`` and ffmpeg, still work) and holds the process id and a random part (concurrent
writers never share one). It starts with a dot, so folder listings and globs for the real files skip it.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from typing import Iterator

DIGEST_CHUNK = 1 << 20


def temporary_path(path) -> str:
    """A fresh temporary name next to ``path``, with the same extension: ``<dir>/.<name>.<pid>-<hex>.tmp<ext>``."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    ext = os.path.splitext(name)[1]
    return os.path.join(folder, f".{name}.{os.getpid()}-{secrets.token_hex(4)}.tmp{ext}")


@contextlib.contextmanager
def atomic_path(path) -> Iterator[str]:
    """Yield a temporary path next to ``path``; when the block ends without an exception the temporary file
    replaces ``path`` (``os.replace``), otherwise it is removed and ``path`` stays as it was. The folder must
    exist. A block that writes nothing to the temporary path leaves ``path`` untouched."""
    tmp = temporary_path(path)
    try:
        yield tmp
        if os.path.exists(tmp):
            os.replace(tmp, os.fspath(path))
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes_atomic(path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that it appears complete or not at all."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def file_digest(path, length: int = 12) -> str:
    """The first ``length`` hex digits of the SHA-256 of a file's bytes (read in 1 MiB chunks): content ids of
    checkpoints and data cards."""
    h = hashlib.sha256()
    with open(os.fspath(path), "rb") as fh:
        for chunk in iter(lambda: fh.read(DIGEST_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()[:length]
