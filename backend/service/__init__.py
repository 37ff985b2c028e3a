"""The local backend service: ``image-dynamics serve`` (FastAPI + one worker thread).

Versioned HTTP routes under ``/v1`` (health, models, jobs), jobs run one at a time with per-job progress, ETA and
cancel, and results are cached on disk by content hash. Job kinds are pluggable (:func:`jobs.register_job_kind`).
See docs/service.md.
"""

API_VERSION = "1.1"  # major.minor: a client needs the same major; minor grows with backwards-compatible additions
SERVICE_NAME = "image-dynamics"


def package_version() -> str:
    """Installed version of the image-dynamics package (``0+unknown`` when run from a bare source tree)."""
    from importlib import metadata

    try:
        return metadata.version("image-dynamics")
    except metadata.PackageNotFoundError:
        return "0+unknown"
