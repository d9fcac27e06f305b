"""Atomic file writes: nothing half-written is ever left in ``results/``.

Every writer creates a temporary file in the destination directory and moves it into place
with :func:`os.replace`, which is atomic on POSIX and Windows when source and destination are
on the same file system.  A job that is killed mid-write therefore leaves either the old file
or no file, never a truncated one.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_bytes", "write_text", "write_json", "write_csv", "dumps_json",
           "remove_stale_temporaries"]


def write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same directory + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def write_text(path, text: str) -> Path:
    """Write UTF-8 ``text`` atomically."""
    return write_bytes(path, text.encode("utf-8"))


def _clean(v: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python numbers, so the JSON is standard."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return _clean(v.tolist())
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def dumps_json(obj: Any) -> str:
    """Deterministic JSON text (sorted keys, 2-space indent, NaN as null, trailing newline)."""
    return json.dumps(_clean(obj), indent=2, sort_keys=True, allow_nan=False) + "\n"


def write_json(path, obj: Any) -> Path:
    """Write ``obj`` as deterministic JSON (see :func:`dumps_json`) atomically."""
    return write_text(path, dumps_json(obj))


def write_csv(path, frame, **kwargs) -> Path:
    """Write a pandas DataFrame as CSV atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    kwargs.setdefault("lineterminator", "\n")
    return write_text(path, frame.to_csv(**kwargs))


def remove_stale_temporaries(path) -> int:
    """Delete the temporary files a killed writer of ``path`` left (``.{name}.XXXX.tmp`` beside it).

    A job calls this for its own outputs before it writes them, so a rerun after a kill leaves no
    debris; it never touches another file.  Returns how many were removed.
    """
    path = Path(path)
    n = 0
    if path.parent.is_dir():
        for p in path.parent.glob(f".{path.name}.*.tmp"):
            try:
                p.unlink()
                n += 1
            except FileNotFoundError:
                pass
    return n
