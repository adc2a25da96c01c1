"""Downloading one provider file: bounded in time and size, retried, checksummed, replaced atomically.

The body is streamed into a temporary file beside the destination while its
sha256 is computed, optionally checked, then flushed to disk and moved over the
destination (:func:`enso.files.atomic_write`): a reader sees the old file or the new one, never half of one,
and a failed download leaves the destination as it was and no temporary file.
Safe to call from several threads at once (one temporary file per call).

Every download is bounded three ways, so a hostile or broken server cannot hold
a run or fill a disk:

* ``timeout``: seconds to connect and for each read;
* ``deadline``: seconds for the whole file, every try and backoff wait included
  (a server trickling one byte every few seconds never trips the per-read
  timeout, but it meets the deadline);
* ``max_bytes``: the most bytes the file may have, counted on the wire
  (compressed) and after ``Content-Encoding`` gzip/deflate decoding, while
  streaming: a decompression bomb stops at the limit, not at the end of memory.

Conditional GET: given the ``ETag`` / ``Last-Modified`` of the copy already held
(:class:`Validators`), the request carries ``If-None-Match`` /
``If-Modified-Since`` and a ``304 Not Modified`` answer returns
:class:`NotModified` without a body.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from enso.files import atomic_write
from enso.months import Month
from enso.sources import DownloadFailed, InvalidFile, NotPublished

_CHUNK = 1 << 16
#: Defaults of :func:`download` for callers that do not pass their own (the system passes the settings').
DEFAULT_MAX_BYTES = 64 * 2**20
DEFAULT_DEADLINE = 600.0


@dataclass(frozen=True)
class Validators:
    """The HTTP cache validators of the copy already held: sent as If-None-Match / If-Modified-Since."""

    etag: str | None = None
    last_modified: str | None = None

    def __bool__(self) -> bool:
        return bool(self.etag or self.last_modified)

    def headers(self) -> dict[str, str]:
        out = {}
        if self.etag:
            out["If-None-Match"] = self.etag
        if self.last_modified:
            out["If-Modified-Since"] = self.last_modified
        return out


@dataclass(frozen=True)
class Downloaded:
    """A file now at ``path``, as fetched from ``url`` at ``fetched_at`` (UTC), with the server's validators."""

    url: str
    path: Path
    sha256: str
    size: int
    fetched_at: datetime
    validators: Validators = Validators()


@dataclass(frozen=True)
class NotModified:
    """The server answered 304: the copy held (described by ``validators``) is still current; no body came."""

    url: str
    fetched_at: datetime
    validators: Validators


class _Transient(Exception):
    """A failure worth another try: 5xx/429, timeout, connection error, body cut short."""


class HttpSession(requests.Session):
    """A :class:`requests.Session` that reads the proxy, ``.netrc`` and CA-bundle environment once per server.

    requests looks these up on every request when ``trust_env`` is on (about a
    millisecond each: the environment scanned for proxies, ``~/.netrc`` stat-ed),
    which dominated re-downloads that are answered 304. Here the lookup is done
    once per scheme and host with requests' own functions (``HTTPS_PROXY``,
    ``NO_PROXY``, ``REQUESTS_CA_BUNDLE`` keep working) and reused.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        self.headers["Accept-Encoding"] = "gzip, deflate"
        self._environment: dict[tuple[str, str], dict[str, object]] = {}

    def request(self, method: str, url: str, **kwargs: object) -> requests.Response:  # type: ignore[override]
        for key, value in self._environment_for(url).items():
            if kwargs.get(key) is None:
                kwargs[key] = value
        return super().request(method, url, **kwargs)  # type: ignore[arg-type]

    def _environment_for(self, url: str) -> dict[str, object]:
        parts = urlsplit(url)
        origin = (parts.scheme, parts.netloc)
        if origin not in self._environment:
            environment: dict[str, object] = {"proxies": requests.utils.get_environ_proxies(url)}
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if bundle:
                environment["verify"] = bundle
            auth = requests.utils.get_netrc_auth(url)
            if auth:
                environment["auth"] = auth
            self._environment[origin] = environment
        return self._environment[origin]


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
    max_bytes: int = DEFAULT_MAX_BYTES,
    deadline: float = DEFAULT_DEADLINE,
    validators: Validators | None = None,
) -> Downloaded | NotModified:
    """Fetch ``url`` into ``dest``, retrying transient failures up to ``retries`` times within ``deadline``.

    ``timeout`` bounds the connection and each read (seconds); ``deadline`` the
    whole file, tries and waits included. After the k-th failed try the wait is
    ``backoff * 2**k`` (cut short by the deadline). HTTP 404 raises
    :class:`NotPublished` at once; other 4xx raise :class:`DownloadFailed` at
    once; 5xx, 429, timeouts, connection errors and bodies shorter than their
    Content-Length are retried, then raise :class:`DownloadFailed` naming the
    URL, the month and the last problem. A body over ``max_bytes`` (wire or
    decoded) raises :class:`InvalidFile` at once. ``check`` is called with the
    complete temporary file before it replaces ``dest`` (e.g. decode and
    validate); if it raises, the exception propagates and ``dest`` is left
    unchanged. With ``validators`` the request is conditional, and a 304 returns
    :class:`NotModified` (``dest`` untouched).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    own_session = session is None
    session = session or HttpSession()
    give_up_at = time.monotonic() + deadline
    try:
        problem, tries = "", 0
        while tries <= retries and time.monotonic() < give_up_at:
            if tries:
                wait = backoff * 2 ** (tries - 1)
                if time.monotonic() + wait >= give_up_at:
                    break
                time.sleep(wait)
            tries += 1
            try:
                return _fetch_once(url, dest, timeout=timeout, month=month, session=session, check=check,
                                   max_bytes=max_bytes, give_up_at=give_up_at, deadline=deadline,
                                   validators=validators)
            except _Transient as exc:
                problem = str(exc)
        raise DownloadFailed(
            url, month,
            f"failed {tries} time(s) within the {deadline:g} s deadline (ENSO_HTTP_DEADLINE); "
            f"last problem: {problem}. The server or network may be down or too slow: rerun later",
        )
    finally:
        if own_session:
            session.close()


def _fetch_once(url: str, dest: Path, *, timeout: float, month: Month | None, session: requests.Session,
                check: Callable[[Path], None] | None, max_bytes: int, give_up_at: float, deadline: float,
                validators: Validators | None) -> Downloaded | NotModified:
    connect = max(0.001, min(timeout, give_up_at - time.monotonic()))
    try:
        with session.get(url, stream=True, timeout=(connect, timeout),
                         headers=validators.headers() if validators else None) as response:
            if response.status_code == 304 and validators:
                return NotModified(url, datetime.now(timezone.utc), _validators_of(response) or validators)
            _raise_for_status(response, url, month)
            return _stream_to(response, url, dest, check, month=month, timeout=timeout, max_bytes=max_bytes,
                              give_up_at=give_up_at, deadline=deadline)
    except requests.RequestException as exc:
        raise _Transient(_describe(exc, timeout)) from exc


def _raise_for_status(response: requests.Response, url: str, month: Month | None) -> None:
    status = f"HTTP {response.status_code} {response.reason or ''}".strip()
    if response.status_code == 404:
        raise NotPublished(url, month, f"{status}: not published yet; try again later")
    if response.status_code == 429 or response.status_code >= 500:
        raise _Transient(status)
    if not 200 <= response.status_code < 300 or response.status_code == 206:
        raise DownloadFailed(url, month, f"{status}: check the URL and the server's access rules")


def _validators_of(response: requests.Response) -> Validators:
    return Validators(etag=response.headers.get("ETag"), last_modified=response.headers.get("Last-Modified"))


class _Body:
    """Reads a response body within the deadline and the size limit, decoding gzip/deflate itself."""

    def __init__(self, response: requests.Response, url: str, month: Month | None, *, timeout: float,
                 max_bytes: int, give_up_at: float, deadline: float) -> None:
        self.raw: urllib3.HTTPResponse = response.raw
        self.url, self.month = url, month
        self.timeout, self.max_bytes = timeout, max_bytes
        self.give_up_at, self.deadline = give_up_at, deadline
        self.wire = 0
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            self.decoder = None
        elif encoding in ("gzip", "x-gzip"):
            self.decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self.decoder = zlib.decompressobj()
        else:
            raise DownloadFailed(url, month, f"the server sent Content-Encoding {encoding[:40]!r}, which was not "
                                             "asked for (only gzip and deflate are accepted)")
        self.encoding = encoding or "identity"
        self.started = False
        length = response.headers.get("Content-Length", "")
        self.announced = int(length) if length.isdigit() else None
        if self.announced is not None and self.announced > max_bytes:
            self._too_large(f"announces {self.announced:,} bytes")

    def chunks(self):  # type: ignore[no-untyped-def]
        """The decoded body, piece by piece."""
        while True:
            data = self._read()
            if not data:
                break
            self.wire += len(data)
            if self.wire > self.max_bytes:
                self._too_large(f"sent more than {self.max_bytes:,} bytes")
            yield from self._decode(data)
        if self.announced is not None and self.wire != self.announced:
            raise _Transient(f"body cut short: received {self.wire} of {self.announced} bytes")
        if self.decoder is not None:
            if not self.decoder.eof and self.wire:
                raise _Transient(f"body cut short: the {self.encoding} stream ends early")
            yield from self._decode(b"")

    def _read(self) -> bytes:
        remaining = self.give_up_at - time.monotonic()
        if remaining <= 0:
            raise _Transient(f"no complete file within the {self.deadline:g} s deadline "
                             f"(received {self.wire:,} bytes so far: the server is too slow)")
        connection = self.raw.connection
        sock = getattr(connection, "sock", None)
        if isinstance(sock, socket.socket):
            sock.settimeout(min(self.timeout, remaining))
        try:
            return self.raw.read1(_CHUNK, decode_content=False)
        except (TimeoutError, socket.timeout, urllib3.exceptions.ReadTimeoutError):
            if time.monotonic() >= self.give_up_at:
                raise _Transient(f"no complete file within the {self.deadline:g} s deadline "
                                 f"(received {self.wire:,} bytes so far: the server is too slow)") from None
            raise _Transient(f"timeout (no data within {self.timeout:g} s)") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise _Transient(f"body cut short; {type(exc).__name__}: {exc}") from None

    def _decode(self, data: bytes):  # type: ignore[no-untyped-def]
        """Decoded pieces of ``data``, never more than the limit at once (a bomb stops here)."""
        if self.decoder is None:
            yield data
            return
        budget = self.max_bytes + 1
        try:
            if self.encoding == "deflate" and not self.started:
                self.started = True
                try:  # deflate is zlib-wrapped by the standard, raw by some servers
                    self.decoder.copy().decompress(data[:2])
                except zlib.error:
                    self.decoder = zlib.decompressobj(-zlib.MAX_WBITS)
            piece = self.decoder.decompress(data, budget) if data else self.decoder.flush()
            while piece:
                yield piece
                tail = self.decoder.unconsumed_tail
                if not tail:
                    break
                piece = self.decoder.decompress(tail, budget)
        except zlib.error as exc:
            raise InvalidFile(self.url, self.month, f"the {self.encoding}-encoded body is corrupt ({exc})") from None

    def _too_large(self, what: str) -> None:
        raise InvalidFile(
            self.url, self.month,
            f"the server {what}, over the limit of {self.max_bytes:,} bytes for this kind of file "
            "(ENSO_HTTP_MAX_BYTES): not the file expected; if the provider's files really grew, raise the limit",
        )


def _stream_to(response: requests.Response, url: str, dest: Path, check: Callable[[Path], None] | None, *,
               month: Month | None, timeout: float, max_bytes: int, give_up_at: float, deadline: float
               ) -> Downloaded:
    """Write the body to a temporary file beside ``dest``, check it, and move it in place (:func:`atomic_write`)."""
    body = _Body(response, url, month, timeout=timeout, max_bytes=max_bytes, give_up_at=give_up_at,
                 deadline=deadline)
    digest, size = hashlib.sha256(), 0

    def write(temp: Path) -> None:
        nonlocal size
        with open(temp, "wb") as out:
            for chunk in body.chunks():
                size += len(chunk)
                if size > max_bytes:
                    body._too_large(f"sent a body that decodes to more than {max_bytes:,} bytes")
                out.write(chunk)
                digest.update(chunk)
        if check is not None:
            check(temp)

    atomic_write(dest, write)
    return Downloaded(url=url, path=dest, sha256=digest.hexdigest(), size=size,
                      fetched_at=datetime.now(timezone.utc), validators=_validators_of(response))


def _describe(exc: requests.RequestException, timeout: float) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
        return f"timeout (no answer within {timeout:g} s); {text}"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return f"body cut short; {text}"
    return text
