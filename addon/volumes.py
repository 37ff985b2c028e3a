"""Spectral volume files of photo planes: read and validate them, keep the last few in memory (by path and
modification time, so pokes, wind arrows and the motion overlay re-use one read), and the message a user gets for a
file that is not a volume."""
from __future__ import annotations

import os

import bpy

from .core import spectral

_CACHE: dict = {}  # abspath -> (mtime_ns, size, SpectralVolume)
CACHE_SIZE = 4


class VolumeUnavailable(RuntimeError):
    """A plane's volume cannot be read; the message says what to do."""


def read_volume(filepath: str) -> spectral.SpectralVolume:
    """Load and validate a volume; SpectralVolumeError (with the field at fault) when the file is wrong."""
    if not filepath:
        raise spectral.SpectralVolumeError("file", "no file chosen")
    return spectral.load_npz(bpy.path.abspath(filepath))


def volume_error_message(exc: spectral.SpectralVolumeError) -> str:
    return (f"Not a usable spectral volume: {exc}. Choose an .npz written by 'image-dynamics extract clip.mp4 "
            "-o v.npz' or by the backend")


def summary(volume: spectral.SpectralVolume) -> str:
    return (f"K={volume.k} bands, {volume.num_frames} frames @ {volume.fps:g} fps, map {volume.width}x"
            f"{volume.height}, for a {volume.source_size[0]}x{volume.source_size[1]} image")


def plane_volume(plane, purpose: str = "wind arrows and Pin Edges re-bake from it") -> tuple:
    """``(volume, source)`` of a plane's volume file, read once per file version; ``source`` identifies that
    version (path and modification time). VolumeUnavailable when the plane has none, the file is gone or wrong;
    ``purpose`` ("pokes need it to simulate") completes the message."""
    path = plane.imagedyn.volume_path
    if not path:
        raise VolumeUnavailable(f"'{plane.name}' has no spectral volume: use 'Load Spectral Volume' (or Animate "
                                "Photo) first")
    full = bpy.path.abspath(path)
    try:
        st = os.stat(full)
    except OSError:
        raise VolumeUnavailable(f"The spectral volume '{path}' of '{plane.name}' is missing: {purpose}; load it "
                                "again with 'Load Spectral Volume'") from None
    cached = _CACHE.get(full)
    if cached is not None and cached[:2] == (st.st_mtime_ns, st.st_size):
        return cached[2], f"{full}@{st.st_mtime_ns}"
    try:
        volume = read_volume(path)
    except spectral.SpectralVolumeError as exc:
        raise VolumeUnavailable(volume_error_message(exc)) from None
    if len(_CACHE) >= CACHE_SIZE:
        _CACHE.clear()
    _CACHE[full] = (st.st_mtime_ns, st.st_size, volume)
    return volume, f"{full}@{st.st_mtime_ns}"


def version(path: str) -> str:
    """Identifies one version of a volume file (absolute path and modification time); '' when it is missing."""
    full = bpy.path.abspath(path) if path else ""
    try:
        return f"{full}@{os.stat(full).st_mtime_ns}" if full else ""
    except OSError:
        return ""


def forget() -> None:
    """Drop every cached volume (unregister, benchmarks)."""
    _CACHE.clear()
