"""Paths named in job files, checked so that they never leave the job's working directory."""

from __future__ import annotations

import posixpath
import re

# A path made of plain components (no ".", "..", empty or hidden ones), optionally after "./":
# already normal, checked by one match (jobs name hundreds of thousands of them).
PLAIN_PATH = re.compile(r"(?:\./)?([A-Za-z0-9_][A-Za-z0-9_.+\-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.+\-]*)*)")


class UnsafePath(ValueError):
    """A job path is absolute, empty, or climbs out of the job directory."""


def job_relative(path: str) -> str:
    """Normalise a job path (``./out/a.txt`` → ``out/a.txt``) or raise :class:`UnsafePath`.

    The original resolved ``./`` against an absolute install directory; sflow resolves every path
    against a per-job working directory, so only relative paths that stay inside it are accepted.
    """
    plain = PLAIN_PATH.fullmatch(path)
    if plain is not None:
        return plain.group(1)
    if not path or "\x00" in path:
        raise UnsafePath("empty path" if not path else "path contains a NUL byte")
    if path.startswith("/") or path.startswith("~"):
        raise UnsafePath(f"absolute path {path!r} is not allowed; use a path relative to the job directory")
    norm = posixpath.normpath(path)
    if norm == "." or norm == ".." or norm.startswith("../"):
        raise UnsafePath(f"path {path!r} escapes the job directory")
    return norm
