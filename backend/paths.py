"""Where the backend keeps files of its own."""
from __future__ import annotations

import os


def user_cache_dir(*parts: str) -> str:
    """``$XDG_CACHE_HOME/image-dynamics/<parts>`` (``~/.cache/...`` when the variable is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "image-dynamics", *parts)
