"""Downloading one provider file: timeouts, bounded retries, checksum, atomic replacement.

The body is streamed into a temporary file beside the destination while its
sha256 is computed, optionally checked, then moved over the destination with
``os.replace``: a reader sees the old file or the new one, never half of one,
and a failed download leaves the destination as it was and no temporary file.
Safe to call from several threads at once (one temporary file per call).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import requests

from enso.months import Month
from enso.sources import DownloadFailed, NotPublished

_CHUNK = 1 << 16


@dataclass(frozen=True)
class Downloaded:
    """A file now at ``path``, as fetched from ``url`` at ``fetched_at`` (UTC)."""

    url: str
    path: Path
    sha256: str
    size: int
    fetched_at: datetime


class _Transient(Exception):
    """A failure worth another try: 5xx/429, timeout, connection error, body cut short."""


def download(
    url: str,
    dest: Path,
    *,
    timeout: float,
    retries: int,
    backoff: float,
    month: Month | None = None,
    session: requests.Session | None = None,
    check: Callable[[Path], None] | None = None,
) -> Downloaded:
    """Fetch ``url`` into ``dest``, retrying transient failures up to ``retries`` times.

    ``timeout`` bounds the connection and each read (seconds). After the k-th
    failed try the wait is ``backoff * 2**k``. HTTP 404 raises
    :class:`NotPublished` at once; other 4xx raise :class:`DownloadFailed` at
    once; 5xx, 429, timeouts, connection errors and bodies shorter than their
    Content-Length are retried, then raise :class:`DownloadFailed` naming the
    URL, the month and the last problem. ``check`` is called with the complete
    temporary file before it replaces ``dest`` (e.g. decode and validate); if it
    raises, the exception propagates and ``dest`` is left unchanged.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    own_session = session is None
    session = session or requests.Session()
    try:
        problem = ""
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            try:
                return _fetch_once(url, dest, timeout=timeout, month=month, session=session, check=check)
            except _Transient as exc:
                problem = str(exc)
        raise DownloadFailed(
            url, month,
            f"failed {retries + 1} time(s); last problem: {problem}. "
            "The server or network may be down: rerun later",
        )
    finally:
        if own_session:
            session.close()


def _fetch_once(url: str, dest: Path, *, timeout: float, month: Month | None,
                session: requests.Session, check: Callable[[Path], None] | None) -> Downloaded:
    try:
        with session.get(url, stream=True, timeout=(timeout, timeout)) as response:
            _raise_for_status(response, url, month)
            return _stream_to(response, url, dest, check)
    except requests.RequestException as exc:
        raise _Transient(_describe(exc, timeout)) from exc


def _raise_for_status(response: requests.Response, url: str, month: Month | None) -> None:
    status = f"HTTP {response.status_code} {response.reason or ''}".strip()
    if response.status_code == 404:
        raise NotPublished(url, month, f"{status}: not published yet; try again later")
    if response.status_code == 429 or response.status_code >= 500:
        raise _Transient(status)
    if response.status_code >= 400:
        raise DownloadFailed(url, month, f"{status}: check the URL and the server's access rules")


def _stream_to(response: requests.Response, url: str, dest: Path,
               check: Callable[[Path], None] | None) -> Downloaded:
    """Write the body to a temporary file beside ``dest``, check it, and move it in place."""
    fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    temp = Path(name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            for chunk in response.iter_content(_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
        expected = _expected_size(response)
        if expected is not None and size != expected:
            raise _Transient(f"body cut short: received {size} of {expected} bytes")
        if check is not None:
            check(temp)
        os.chmod(temp, 0o644)
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return Downloaded(url=url, path=dest, sha256=digest.hexdigest(), size=size,
                      fetched_at=datetime.now(timezone.utc))


def _expected_size(response: requests.Response) -> int | None:
    """Content-Length when it counts the bytes we receive (no content encoding)."""
    length = response.headers.get("Content-Length")
    encoding = response.headers.get("Content-Encoding", "identity").lower()
    if length is None or encoding != "identity" or not length.isdigit():
        return None
    return int(length)


def _describe(exc: requests.RequestException, timeout: float) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return f"timeout (no answer within {timeout:g} s); {text}"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"body cut short; {text}"
    return text
