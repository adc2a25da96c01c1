"""A local data mirror: the providers' files written from the synthetic climate, served on 127.0.0.1.

:func:`write_mirror` lays out a folder as the providers do: COBE-SST GRIB1 in
the Tokyo Climate Center's decade folders, ERSST netCDF files, CPC's monthly
Niño 3.4 table and (on request) CPC's monthly relative Niño 3.4 table, computed
from the same fields by :mod:`enso.relative`. :func:`write_grid_mirror` does the same for given (for instance
real) grids and a real index file. :class:`MirrorServer` serves such a folder over real HTTP, as
a provider's web server does (``ETag`` and ``Last-Modified`` on every file, conditional
GET answered ``304 Not Modified``), with faults that tests and the demo switch on while
it runs (error statuses, slow answers, bodies cut short, wrong content, a trickling
server, gzip bombs, endless junk, an unreachable server) and a log of the requests it
saw. Point the settings at it with :meth:`MirrorServer.settings_overrides`.

Command line::

    python -m enso.mirror write ROOT --start 1891-01 --end 2020-12 [--seed N] [--ersst] [--relative-index] [--progress]
    python -m enso.mirror serve ROOT [--port P]
"""

from __future__ import annotations

import argparse
import email.utils
import fnmatch
import functools
import html
import mimetypes
import shutil
import struct
import sys
import threading
import time
import urllib.parse
import zlib
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterable, NamedTuple, Sequence

import pandas as pd
from tqdm import tqdm

from enso.files import atomic_write
from enso.grids import SSTGrid
from enso.months import Month, month_arg, month_range
from enso.nino34 import DEFAULT_BASE_PERIOD
from enso.relative import DEFAULT_SCALE_PERIOD, relative_index_from_grids
from enso.sources import cobe, ersst
from enso.sources.index import format_cpc_monthly, format_cpc_rnino34
from enso.synthetic import synthetic_climate

COBE_DIR = "cobe"
ERSST_DIR = "ersst"
#: Where CPC's monthly table lies below the mirror root (the same file name as CPC's).
INDEX_FILE = "index/ersst5.nino.mth.91-20.ascii"
#: Where CPC's monthly relative Niño 3.4 table lies below the mirror root (CPC's file name).
RELATIVE_INDEX_FILE = "index/Rnino34.ascii.txt"
#: Grid spacing of each SST source the mirror can write (the generator's 2° grid is ERSST's).
SOURCE_RESOLUTION_DEG = {"cobe": 1.0, "ersst": 2.0}
SST_SOURCES = tuple(SOURCE_RESOLUTION_DEG)
FAULT_KINDS = ("status", "delay", "truncate", "body", "trickle", "bomb", "junk")


# ----------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class MirrorManifest:
    """What :func:`write_mirror` or :func:`write_grid_mirror` produced: the files and how many changed."""

    root: Path
    start: Month
    end: Month
    #: The synthetic climate's seed; None for a mirror of given grids.
    seed: int | None
    cobe_files: tuple[Path, ...]
    ersst_files: tuple[Path, ...]
    index_file: Path | None
    written: int
    unchanged: int
    relative_index_file: Path | None = None

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.cobe_files + self.ersst_files + ((self.index_file,) if self.index_file else ())
                + ((self.relative_index_file,) if self.relative_index_file else ()))


def cobe_path(month: Month) -> str:
    """Path of a month's COBE-SST file below the mirror root (the provider's own layout)."""
    return f"{COBE_DIR}/{cobe.cobe_url(month, '').lstrip('/')}"


def ersst_path(month: Month, template: str = ersst.DEFAULT_TEMPLATE) -> str:
    """Path of a month's ERSST file below the mirror root."""
    return f"{ERSST_DIR}/{ersst.ersst_url(month, '', template).lstrip('/')}"


def write_mirror(root: str | Path, start: Month | str, end: Month | str, seed: int = 0, *,
                 sst_sources: Sequence[str] = ("cobe",), index: bool = True, relative_index: bool = False,
                 ersst_template: str = ersst.DEFAULT_TEMPLATE, progress: bool = False) -> MirrorManifest:
    """Write the synthetic climate of ``start``..``end`` as the providers publish it.

    * ``cobe``: ``root/cobe/<decade>/sst<YYYYMM>.grb`` (1° GRIB1), from 1891-01
      only, as the provider;
    * ``ersst``: ``root/ersst/ersst.v5.<YYYYMM>.nc`` (2° netCDF);
    * ``index``: ``root/index/ersst5.nino.mth.91-20.ascii``, the Niño 3.4 of the
      1° fields with anomalies against the synthetic 1991-2020 climatology;
    * ``relative_index``: ``root/index/Rnino34.ascii.txt``, the relative Niño 3.4
      of the same 1° fields (:func:`synthetic_relative_index`; a few seconds).

    Rerunning is cheap and safe: each file is written beside its destination,
    kept if it differs from what is there and moved in place atomically, else
    discarded (``unchanged`` counts those).
    """
    root = Path(root)
    start, end = Month.parse(start), Month.parse(end)
    if end < start:
        raise ValueError(f"mirror range {start}..{end} is empty: the end comes before the start")
    unknown = sorted(set(sst_sources) - set(SST_SOURCES))
    if unknown:
        raise ValueError(f"unknown SST source(s) {unknown}; choose from {', '.join(SST_SOURCES)}")
    counts = {True: 0, False: 0}
    files: dict[str, list[Path]] = {"cobe": [], "ersst": []}
    first_cobe = Month.of(cobe.FIRST_YEAR, 1)
    jobs = [(source, month) for month in month_range(start, end) for source in SST_SOURCES
            if source in sst_sources and (source != "cobe" or month >= first_cobe)]
    for source, month in tqdm(jobs, desc="mirror", unit="file", disable=not progress):
        grid = synthetic_climate(seed, SOURCE_RESOLUTION_DEG[source]).grid(month)
        path, changed = _write_grid_file(root, source, grid, ersst_template)
        counts[changed] += 1
        files[source].append(path)
    index_file = None
    if index:
        index_file = root / INDEX_FILE
        text = format_cpc_monthly(synthetic_climate(seed, SOURCE_RESOLUTION_DEG["cobe"]).index_table(start, end))
        counts[_replace_if_changed(index_file, lambda tmp: tmp.write_text(text, encoding="ascii"))] += 1
    relative_file = None
    if relative_index:
        relative_file = root / RELATIVE_INDEX_FILE
        relative = format_cpc_rnino34(synthetic_relative_index(seed, start, end))
        counts[_replace_if_changed(relative_file, lambda tmp: tmp.write_text(relative, encoding="ascii"))] += 1
    return MirrorManifest(root=root, start=start, end=end, seed=seed, cobe_files=tuple(files["cobe"]),
                          ersst_files=tuple(files["ersst"]), index_file=index_file,
                          written=counts[True], unchanged=counts[False], relative_index_file=relative_file)


def synthetic_relative_index(seed: int, start: Month | str, end: Month | str) -> pd.Series:
    """The monthly relative Niño 3.4 anomaly of the synthetic 1° fields, start..end.

    Computed as CPC does (:func:`enso.relative.relative_index_from_grids`: 1991-2020
    base, scaled over 1950-2020) from the fields of every month that needs,
    whatever range is asked for, as the traditional index's anomalies are. The
    index of a span is computed once per process (several seconds for 1950-2020).
    """
    start, end = Month.parse(start), Month.parse(end)
    periods = (DEFAULT_BASE_PERIOD, DEFAULT_SCALE_PERIOD)
    first = min(start, Month.of(min(p[0] for p in periods), 1))
    last = max(end, Month.of(max(p[1] for p in periods), 12))
    return _synthetic_relative_span(seed, first, last).loc[str(start):str(end)]


@functools.lru_cache(maxsize=4)
def _synthetic_relative_span(seed: int, first: Month, last: Month) -> pd.Series:
    climate = synthetic_climate(seed, SOURCE_RESOLUTION_DEG["cobe"])
    return relative_index_from_grids(climate.grids(first, last)).table["relative_anomaly"]


def write_grid_mirror(root: str | Path, grids: Iterable[SSTGrid], source: str = "ersst", *,
                      index_file: str | Path | None = None, ersst_template: str = ersst.DEFAULT_TEMPLATE,
                      progress: bool = False) -> MirrorManifest:
    """Write given grids (e.g. the real ERSSTv5 record) in ``source``'s file format and layout below ``root``.

    The paths are those of :func:`write_mirror`. ``index_file``, a real index
    file (any format the system reads), is copied to ``root/index/<its name>``
    and served at ``<mirror url>/index/<its name>``. Reruns keep unchanged
    files, as :func:`write_mirror` does.
    """
    root = Path(root)
    if source not in SST_SOURCES:
        raise ValueError(f"unknown SST source {source!r}; choose from {', '.join(SST_SOURCES)}")
    counts = {True: 0, False: 0}
    months, paths = [], []
    for grid in tqdm(grids, desc=f"mirror {source}", unit="file", disable=not progress):
        path, changed = _write_grid_file(root, source, grid, ersst_template)
        counts[changed] += 1
        months.append(grid.month)
        paths.append(path)
    if not paths:
        raise ValueError(f"no grid to write to the mirror {root}")
    index_copy = None
    if index_file is not None:
        index_copy = root / Path(INDEX_FILE).parent / Path(index_file).name
        counts[_replace_if_changed(index_copy, lambda tmp: shutil.copyfile(index_file, tmp))] += 1
    return MirrorManifest(root=root, start=min(months), end=max(months), seed=None,
                          cobe_files=tuple(paths) if source == "cobe" else (),
                          ersst_files=tuple(paths) if source == "ersst" else (), index_file=index_copy,
                          written=counts[True], unchanged=counts[False])


def _write_grid_file(root: Path, source: str, grid: SSTGrid, ersst_template: str) -> tuple[Path, bool]:
    """Write one grid where ``source`` publishes its month; returns the path and whether it changed."""
    if source == "cobe":
        path, writer = root / cobe_path(grid.month), cobe.write_cobe_grib
    else:
        path, writer = root / ersst_path(grid.month, ersst_template), ersst.write_ersst_netcdf
    return path, _replace_if_changed(path, lambda tmp: writer(grid, tmp))


def _replace_if_changed(path: Path, write: Callable[[Path], None]) -> bool:
    """Write via ``write(tmp)`` and move it in place if the content differs; True if it did.

    Not fsynced: the mirror is a stand-in for the providers, rewritten at will.
    """
    return atomic_write(path, write, only_if_changed=True, durable=False)


# ----------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class Fault:
    """One injected misbehaviour.

    * ``status:<code>``: answer with that HTTP status;
    * ``delay:<seconds>``: wait before answering;
    * ``truncate:<nbytes>``: announce the full length, send only the first bytes, close;
    * ``body:<text>``: serve that text instead of the file;
    * ``trickle:<seconds>``: send the file one byte every that many seconds;
    * ``bomb:<nbytes>``: serve, ``Content-Encoding: gzip``, a small body that decompresses to that many zero bytes;
    * ``junk:<nbytes>``: serve that many bytes of junk (streamed, never held in memory).
    """

    kind: str
    value: int | float | bytes

    @classmethod
    def parse(cls, spec: str) -> "Fault":
        kind, sep, argument = spec.partition(":")
        if kind not in FAULT_KINDS or not sep:
            raise ValueError(f"fault {spec!r}: expected one of {', '.join(k + ':<value>' for k in FAULT_KINDS)}")
        try:
            if kind == "status":
                code = int(argument)
                if not 100 <= code <= 599:
                    raise ValueError(f"{code} is not an HTTP status")
                return cls(kind, code)
            if kind == "delay":
                return cls(kind, float(argument))
            if kind == "trickle":
                return cls(kind, float(argument))
            if kind in ("truncate", "bomb", "junk"):
                return cls(kind, int(argument))
        except ValueError as exc:
            raise ValueError(f"fault {spec!r}: {exc}") from exc
        return cls(kind, argument.encode("utf-8"))

    def __str__(self) -> str:
        value = self.value.decode("utf-8", "replace") if isinstance(self.value, bytes) else self.value
        return f"{self.kind}:{value}"


@dataclass
class _Planned:
    pattern: str
    fault: Fault
    remaining: int | None


class FaultPlan:
    """Faults per path pattern (fnmatch), consumed in the order they were added. Thread-safe.

    A pattern matches the request path with or without its leading slash, so
    ``"*/sst202012.grb"`` and ``"cobe/*"`` both work.
    """

    def __init__(self) -> None:
        self._planned: list[_Planned] = []
        self._lock = threading.Lock()

    def add(self, pattern: str, fault: str | Fault, times: int | None = 1) -> None:
        """Answer the next ``times`` matching requests (every one if None) with ``fault``."""
        if times is not None and times < 1:
            raise ValueError(f"times must be at least 1 (or None for always), got {times}")
        planned = _Planned(pattern, fault if isinstance(fault, Fault) else Fault.parse(fault), times)
        with self._lock:
            self._planned.append(planned)

    def clear(self) -> None:
        with self._lock:
            self._planned.clear()

    def pending(self) -> list[tuple[str, str, int | None]]:
        """(pattern, fault, remaining uses) of the faults not yet consumed."""
        with self._lock:
            return [(p.pattern, str(p.fault), p.remaining) for p in self._planned]

    def take(self, path: str) -> Fault | None:
        """The fault for this request path, consuming one use; None when none applies."""
        with self._lock:
            for planned in self._planned:
                if fnmatch.fnmatchcase(path, planned.pattern) or fnmatch.fnmatchcase(path.lstrip("/"),
                                                                                      planned.pattern):
                    if planned.remaining is not None:
                        planned.remaining -= 1
                        if planned.remaining == 0:
                            self._planned.remove(planned)
                    return planned.fault
        return None


# ----------------------------------------------------------------------------- serving


class RequestRecord(NamedTuple):
    """One request the mirror answered: method, path, status sent, and the fault applied (if any)."""

    method: str
    path: str
    status: int
    fault: str | None


class MirrorServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 (ephemeral port by default) serving the files below ``root``.

    Use as a context manager (``with MirrorServer(root) as srv: srv.url``) or
    call :meth:`start` / :meth:`stop`. Missing files answer 404, folders a plain
    listing; HEAD, Content-Length, ETag / Last-Modified and conditional GET
    (If-None-Match, If-Modified-Since: 304 without a body) are supported. ``faults`` injects
    misbehaviour per path; ``down = True`` drops every connection without an
    answer (an unreachable mirror). ``requests`` lists the paths asked for and
    ``request_log`` the full :class:`RequestRecord` of each answered request.
    """

    daemon_threads = True

    def __init__(self, root: str | Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"mirror root {self.root} is not a folder")
        self.faults = FaultPlan()
        self.down = False
        self.request_log: list[RequestRecord] = []
        self._log_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        super().__init__((host, port), _MirrorHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def cobe_base_url(self) -> str:
        return f"{self.url}/{COBE_DIR}"

    @property
    def ersst_base_url(self) -> str:
        return f"{self.url}/{ERSST_DIR}"

    @property
    def index_url(self) -> str:
        return f"{self.url}/{INDEX_FILE}"

    @property
    def relative_index_url(self) -> str:
        """CPC's monthly relative Niño 3.4 table (written with ``relative_index=True``)."""
        return f"{self.url}/{RELATIVE_INDEX_FILE}"

    @property
    def requests(self) -> list[str]:
        """Paths of the requests answered so far, in order."""
        with self._log_lock:
            return [record.path for record in self.request_log]

    def settings_overrides(self) -> dict[str, str]:
        """Settings fields that point the system at this mirror (for ``load_settings(**...)``); the relative
        index file when the mirror has one, else none (the system then computes it from the grids)."""
        relative = self.relative_index_url if self.resolve(RELATIVE_INDEX_FILE) is not None else ""
        return {"cobe_base_url": self.cobe_base_url, "ersst_base_url": self.ersst_base_url,
                "index_url": self.index_url, "index_format": "cpc-monthly", "relative_index_url": relative}

    def clear_log(self) -> None:
        with self._log_lock:
            self.request_log.clear()

    def start(self) -> "MirrorServer":
        """Serve in a background (daemon) thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"mirror {self.url}", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (requests still sleeping in a delay are abandoned)."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self) -> "MirrorServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up (timeouts, cut connections) are expected here; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def record(self, record: RequestRecord) -> None:
        with self._log_lock:
            self.request_log.append(record)

    def resolve(self, path: str) -> Path | None:
        """The file or folder below ``root`` that a URL path names; None if missing or outside root."""
        candidate = (self.root / path.lstrip("/")).resolve()
        if candidate != self.root and self.root not in candidate.parents:
            return None
        return candidate if candidate.exists() else None


class _MirrorHandler(BaseHTTPRequestHandler):
    """Answers GET and HEAD from the mirror's files, applying the server's faults."""

    server: MirrorServer
    protocol_version = "HTTP/1.1"

    def handle_one_request(self) -> None:
        if self.server.down:
            self.close_connection = True
            return
        super().handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 (the http.server naming)
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(with_body=False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the server's request log replaces stderr lines."""

    def _answer(self, *, with_body: bool) -> None:
        if self.server.down:  # went down while this kept-alive connection waited for the request
            self.close_connection = True
            return
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        fault = self.server.faults.take(path)
        headers: dict[str, str] = {}
        if fault is not None and fault.kind == "status":
            status = int(fault.value)
            body: bytes | Iterable[bytes] = f"{status} injected fault for {path}\n".encode()
        elif fault is not None and fault.kind in ("bomb", "junk"):
            status = HTTPStatus.OK
            body = _gzip_bomb(int(fault.value)) if fault.kind == "bomb" else _junk(int(fault.value))
            headers["Content-Encoding"] = "gzip" if fault.kind == "bomb" else "identity"
        else:
            status, body, headers = self._content(path)
            if fault is not None and fault.kind == "body" and status == HTTPStatus.OK:
                body = bytes(fault.value)  # type: ignore[arg-type]
                headers = {}
        self.server.record(RequestRecord(self.command, path, status, str(fault) if fault else None))
        if fault is not None and fault.kind == "delay":
            time.sleep(float(fault.value))
        length = len(body) if isinstance(body, bytes) else int(fault.value)  # type: ignore[union-attr]
        self.send_response(status)
        self.send_header("Content-Type", _content_type(path, status))
        if status != HTTPStatus.NOT_MODIFIED:
            self.send_header("Content-Length", str(length))
        for name, value in headers.items():
            self.send_header(name, value)
        if fault is not None and fault.kind == "truncate":
            body = bytes(body)[:int(fault.value)]  # type: ignore[arg-type]
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not with_body or status == HTTPStatus.NOT_MODIFIED:
            return
        if fault is not None and fault.kind == "trickle":
            self.close_connection = True
            for byte in bytes(body):  # type: ignore[arg-type]
                if self.server.down:
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(float(fault.value))
        elif isinstance(body, bytes):
            self.wfile.write(body)
        else:
            self.close_connection = True
            for piece in body:
                self.wfile.write(piece)

    def _content(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        """Status, body and validator headers of a path; 304 without a body when the client's copy is current."""
        found = self.server.resolve(path)
        if found is None:
            return HTTPStatus.NOT_FOUND, f"404 {path} is not on this mirror\n".encode(), {}
        if found.is_dir():
            return HTTPStatus.OK, _listing(path, sorted(found.iterdir())), {}
        stat = found.stat()
        etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
        headers = {"ETag": etag, "Last-Modified": email.utils.formatdate(stat.st_mtime, usegmt=True)}
        if _not_modified(self.headers.get("If-None-Match"), self.headers.get("If-Modified-Since"), etag,
                         int(stat.st_mtime)):
            return HTTPStatus.NOT_MODIFIED, b"", headers
        return HTTPStatus.OK, found.read_bytes(), headers


def _not_modified(if_none_match: str | None, if_modified_since: str | None, etag: str, mtime: int) -> bool:
    """RFC 9110: If-None-Match decides when present; else If-Modified-Since against the whole-second mtime."""
    if if_none_match is not None:
        tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
        return "*" in tags or etag in tags
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since)
        except (TypeError, ValueError):
            return False
        return since is not None and mtime <= since.timestamp()
    return False


@functools.lru_cache(maxsize=4)
def _gzip_bomb(size: int) -> bytes:
    """A valid gzip stream of ``size`` zero bytes (about a thousandth of that on the wire), made in a second.

    1 MiB of zeros is compressed once, ended by a full flush (which resets the
    compressor's history, so every such block compresses to the same bytes), and
    that block repeated; the trailer carries the CRC and length of the whole.
    """
    block = bytes(2**20)
    blocks, rest = divmod(size, len(block))
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    head = packer.compress(b"") + packer.flush(zlib.Z_FULL_FLUSH)  # the gzip header
    repeated = packer.compress(block) + packer.flush(zlib.Z_FULL_FLUSH)
    last = packer.compress(block[:rest]) + packer.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(blocks):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(block[:rest], crc)
    return head + repeated * blocks + last[:-8] + struct.pack("<II", crc, size & 0xFFFFFFFF)


def _junk(size: int) -> Iterable[bytes]:
    """``size`` bytes of junk, 64 KiB at a time."""
    block = (b"this is not the file you asked for \x00\xff" * 2000)[: 1 << 16]
    while size > 0:
        yield block[:size]
        size -= len(block)


def _content_type(path: str, status: int) -> str:
    if status != HTTPStatus.OK:
        return "text/plain; charset=utf-8"
    if path.endswith("/") or "." not in path.rsplit("/", 1)[-1]:
        return "text/html; charset=utf-8"
    if path.endswith((".ascii", ".txt", ".data")):
        return "text/plain; charset=utf-8"
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def _listing(path: str, entries: Iterable[Path]) -> bytes:
    """A plain HTML folder index, as web servers generate (clients discover file names from it)."""
    base = path if path.endswith("/") else path + "/"
    links = "".join(f'<a href="{html.escape(base + e.name + ("/" if e.is_dir() else ""))}">'
                    f"{html.escape(e.name)}</a>\n" for e in entries if not e.name.startswith("."))
    return f"<html><body><h1>Index of {html.escape(path)}</h1>\n{links}</body></html>\n".encode()


# ----------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m enso.mirror", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write the synthetic climate's files below ROOT")
    write.add_argument("root", type=Path)
    write.add_argument("--start", required=True, type=month_arg, help="first month, YYYY-MM")
    write.add_argument("--end", required=True, type=month_arg, help="last month, YYYY-MM")
    write.add_argument("--seed", type=int, default=0)
    write.add_argument("--ersst", action="store_true", help="also write ERSST netCDF files (2°)")
    write.add_argument("--no-cobe", action="store_true", help="write no COBE-SST GRIB files")
    write.add_argument("--no-index", action="store_true", help="write no Niño 3.4 index file")
    write.add_argument("--relative-index", action="store_true",
                       help="also write CPC's monthly relative Niño 3.4 table (Rnino34.ascii.txt)")
    write.add_argument("--progress", action="store_true", help="show a progress bar")
    serve = commands.add_parser("serve", help="serve ROOT over HTTP until interrupted")
    serve.add_argument("root", type=Path)
    serve.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    serve.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    if args.command == "write":
        sources = [s for s, on in (("cobe", not args.no_cobe), ("ersst", args.ersst)) if on]
        manifest = write_mirror(args.root, args.start, args.end, args.seed, sst_sources=sources,
                                index=not args.no_index, relative_index=args.relative_index,
                                progress=args.progress)
        print(f"{len(manifest.files)} files below {manifest.root}: {manifest.written} written, "
              f"{manifest.unchanged} unchanged")
        return 0
    with MirrorServer(args.root, port=args.port, host=args.host) as server:
        print(f"serving {server.root} at {server.url}; settings:", flush=True)
        for name, value in server.settings_overrides().items():
            print(f"  ENSO_{name.upper()}={value}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
