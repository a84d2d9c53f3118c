"""Local HTTP engine for Deep Image Analogy: jobs, progress, cancel, token-guarded (see API.md)."""

from __future__ import annotations

from importlib import metadata


def _version() -> str:
    try:
        return metadata.version("deep-image-analogy")
    except metadata.PackageNotFoundError:  # running from a checkout that was never installed
        return "0.0.0+unknown"


__version__ = _version()
