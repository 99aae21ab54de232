"""Path segments built from untrusted text (provider file names, artifact keys): never a separator, never ``..``."""

from __future__ import annotations

import re

from artifact_harvest.core.errors import FatalProviderError

_MAX_SEGMENT = 200  # leaves room for ".part" / temp suffixes under the usual 255-byte name limit
_UNSAFE = re.compile(r"[^\w.\-+=@,() ]")


def safe_segment(value: str, what: str = "path segment") -> str:
    """One path segment built from untrusted text: separators and odd characters become ``_``."""
    cleaned = _UNSAFE.sub("_", str(value).replace("/", "_").replace("\\", "_")).strip()
    if cleaned in ("", ".", "..") or len(cleaned) > _MAX_SEGMENT:
        raise FatalProviderError("download", f"unusable {what} {value!r}")
    return cleaned


def safe_filename(name: str) -> str:
    """The basename of an untrusted file name (``../../etc/passwd`` -> ``passwd``), made safe."""
    return safe_segment(str(name).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1], "file name")
