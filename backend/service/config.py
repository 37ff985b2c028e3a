"""Settings of the backend service (one frozen dataclass; ``image-dynamics serve`` fills it from its options)."""
from __future__ import annotations

import dataclasses
import os

from addon.core.protocol import is_loopback
from backend.paths import user_cache_dir

MiB = 1024 * 1024
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def default_cache_dir() -> str:
    """``$XDG_CACHE_HOME/image-dynamics/service`` (``~/.cache/...`` when unset)."""
    return user_cache_dir("service")


@dataclasses.dataclass(frozen=True)
class ServiceConfig:
    """Everything the service needs. Defaults are safe for a laptop: loopback only, small queue, bounded uploads."""

    host: str = "127.0.0.1"
    port: int = 8765
    device: str = "auto"  # where models run: auto (CUDA when present), cpu, cuda, cuda:N
    model: str | None = None  # checkpoint path, "tiny" (random tiny model, for tests), None = shipped default
    cache_dir: str | None = None  # results cache + job work folders; None = default_cache_dir()
    cache_max_bytes: int = 2048 * MiB  # least recently used results are removed beyond this
    max_upload_bytes: int = 32 * MiB  # request body limit (413)
    max_pixels: int = 50_000_000  # decoded image limit, width x height (413)
    max_side: int = 1024  # photos are downscaled to this longest side before queueing (bounded queue memory)
    max_queue: int = 8  # jobs waiting (not counting the running one); beyond this: 429
    max_jobs_kept: int = 200  # finished jobs remembered for status/result; older ones are forgotten
    token: str | None = None  # when set, every /v1 route but health needs "Authorization: Bearer <token>"
    allowed_origins: tuple = ()  # browser origins allowed to call the API (none by default)
    allowed_hosts: tuple = ()  # extra Host header names accepted while bound to loopback (DNS-rebinding guard)

    def __post_init__(self):
        for name in ("cache_max_bytes", "max_upload_bytes", "max_pixels", "max_side", "max_jobs_kept"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be 0 or more, got {self.max_queue}")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")

    @property
    def resolved_cache_dir(self) -> str:
        return os.path.abspath(self.cache_dir or default_cache_dir())

    @property
    def loopback_only(self) -> bool:
        return is_loopback(self.host)
