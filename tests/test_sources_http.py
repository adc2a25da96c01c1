"""Downloads and McNoldy discovery against a real HTTP server on 127.0.0.1 that misbehaves on request."""

from __future__ import annotations

import gzip
import hashlib
import socket
import threading
import zlib
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from enso.months import Month
from enso.sources import DownloadFailed, InvalidFile, NotPublished
from enso.sources.http import HttpSession, NotModified, Validators, download
from enso.sources.index import discover_mcnoldy_url, mcnoldy_candidate_urls

BODY = b"GRIB" + bytes(range(256)) * 400 + b"7777"
FAST = {"timeout": 2.0, "retries": 2, "backoff": 0.01}


@dataclass
class Server:
    """A loopback server whose routes are functions of (handler, how many times the path was asked)."""

    url: str
    routes: dict[str, Callable[[BaseHTTPRequestHandler, int], None]] = field(default_factory=dict)
    hits: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def send(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"", length: int | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.hits[self.path] += 1
                count = state.hits[self.path]
            route = state.routes.get(self.path)
            if route is None:
                send(self, 404, b"not found")
            else:
                route(self, count)

        do_HEAD = do_GET

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def ok(body: bytes = BODY) -> Callable[[BaseHTTPRequestHandler, int], None]:
    return lambda handler, count: send(handler, 200, body)


def only_leftovers(folder: Path, *expected: str) -> None:
    """The folder holds exactly ``expected``: no temporary file was left behind."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(expected)


def test_download_writes_file_and_reports_checksum(server: Server, tmp_path: Path) -> None:
    server.routes["/sst202001.grb"] = ok()
    before = datetime.now(timezone.utc)
    got = download(f"{server.url}/sst202001.grb", tmp_path / "sub" / "sst202001.grb", **FAST)
    assert got.path.read_bytes() == BODY and got.size == len(BODY)
    assert got.sha256 == hashlib.sha256(BODY).hexdigest()
    assert got.url == f"{server.url}/sst202001.grb"
    assert before <= got.fetched_at <= datetime.now(timezone.utc) and got.fetched_at.tzinfo is not None
    only_leftovers(tmp_path / "sub", "sst202001.grb")


def test_404_is_not_published_without_retry(server: Server, tmp_path: Path) -> None:
    month = Month.of(2026, 8)
    with pytest.raises(NotPublished) as caught:
        download(f"{server.url}/sst202608.grb", tmp_path / "sst202608.grb", month=month, **FAST)
    assert caught.value.month == month and caught.value.file == f"{server.url}/sst202608.grb"
    assert str(caught.value).startswith(f"{server.url}/sst202608.grb: 2026-08: HTTP 404")
    assert server.hits["/sst202608.grb"] == 1
    only_leftovers(tmp_path)


def test_server_error_then_success_is_retried(server: Server, tmp_path: Path) -> None:
    server.routes["/flaky"] = lambda handler, count: send(handler, 500, b"oops") if count == 1 else send(
        handler, 200, BODY)
    got = download(f"{server.url}/flaky", tmp_path / "flaky.grb", **FAST)
    assert got.path.read_bytes() == BODY and server.hits["/flaky"] == 2


def test_persistent_server_error_fails_after_bounded_retries(server: Server, tmp_path: Path) -> None:
    server.routes["/down"] = lambda handler, count: send(handler, 503, b"busy")
    month = Month.of(2020, 1)
    with pytest.raises(DownloadFailed) as caught:
        download(f"{server.url}/down", tmp_path / "down.grb", month=month, **FAST)
    message = str(caught.value)
    assert message.startswith(f"{server.url}/down: 2020-01: failed 3 time(s)") and "HTTP 503" in message
    assert server.hits["/down"] == 3


def test_other_client_errors_fail_at_once(server: Server, tmp_path: Path) -> None:
    server.routes["/forbidden"] = lambda handler, count: send(handler, 403, b"no")
    with pytest.raises(DownloadFailed, match="HTTP 403"):
        download(f"{server.url}/forbidden", tmp_path / "x", **FAST)
    assert server.hits["/forbidden"] == 1


def test_backoff_doubles_between_tries(server: Server, tmp_path: Path) -> None:
    server.routes["/down"] = lambda handler, count: send(handler, 500)
    start = time.perf_counter()
    with pytest.raises(DownloadFailed):
        download(f"{server.url}/down", tmp_path / "x", timeout=2.0, retries=2, backoff=0.1)
    assert time.perf_counter() - start >= 0.1 + 0.2


def test_slow_response_times_out(server: Server, tmp_path: Path) -> None:
    def slow(handler: BaseHTTPRequestHandler, count: int) -> None:
        time.sleep(1.0)
        send(handler, 200, BODY)

    server.routes["/slow"] = slow
    start = time.perf_counter()
    with pytest.raises(DownloadFailed, match="timeout") as caught:
        download(f"{server.url}/slow", tmp_path / "slow.grb", timeout=0.2, retries=1, backoff=0.01)
    assert time.perf_counter() - start < 1.5
    assert "0.2 s" in str(caught.value) and server.hits["/slow"] == 2


def test_body_cut_short_is_retried_then_fails_and_keeps_the_old_file(server: Server, tmp_path: Path) -> None:
    def short(handler: BaseHTTPRequestHandler, count: int) -> None:
        send(handler, 200, BODY[:1000], length=len(BODY))
        handler.close_connection = True

    server.routes["/short"] = short
    dest = tmp_path / "sst202001.grb"
    dest.write_bytes(b"the previous good file")
    with pytest.raises(DownloadFailed, match="cut short") as caught:
        download(f"{server.url}/short", dest, month=Month.of(2020, 1), **FAST)
    assert caught.value.month == Month.of(2020, 1)
    assert server.hits["/short"] == 3
    assert dest.read_bytes() == b"the previous good file"
    only_leftovers(tmp_path, "sst202001.grb")


def test_failed_check_keeps_the_old_file(server: Server, tmp_path: Path) -> None:
    server.routes["/bad"] = ok(b"<html>maintenance</html>")
    dest = tmp_path / "sst202001.grb"
    dest.write_bytes(b"old")

    def check(path: Path) -> None:
        # the temporary file: dest's name, in a private folder beside it (enso.files.atomic_write)
        assert path.parent.parent == tmp_path and path != dest and path.read_bytes() == b"<html>maintenance</html>"
        raise InvalidFile(str(path), Month.of(2020, 1), "not GRIB")

    with pytest.raises(InvalidFile, match="not GRIB"):
        download(f"{server.url}/bad", dest, check=check, **FAST)
    assert dest.read_bytes() == b"old" and server.hits["/bad"] == 1
    only_leftovers(tmp_path, "sst202001.grb")


def test_concurrent_downloads_from_a_thread_pool(server: Server, tmp_path: Path) -> None:
    bodies = {f"/sst2020{m:02d}.grb": BODY + bytes([m]) * m for m in range(1, 13)}
    for path, body in bodies.items():
        server.routes[path] = ok(body)
    with requests.Session() as session, ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(
            lambda path: download(server.url + path, tmp_path / path.lstrip("/"), session=session, **FAST),
            bodies))
    for got, (path, body) in zip(results, bodies.items()):
        assert got.path.read_bytes() == body and got.sha256 == hashlib.sha256(body).hexdigest()
    only_leftovers(tmp_path, *(path.lstrip("/") for path in bodies))


# ----------------------------------------------------------------------------- bounds, encodings, validators


def encoded(body: bytes, encoding: str) -> Callable[[BaseHTTPRequestHandler, int], None]:
    """A route serving ``body`` with a Content-Encoding (gzip, zlib-wrapped deflate, or raw 'deflate-raw')."""
    if encoding == "gzip":
        wire = gzip.compress(body)
    elif encoding == "deflate":
        wire = zlib.compress(body)
    else:
        packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        wire, encoding = packer.compress(body) + packer.flush(), "deflate"

    def route(handler: BaseHTTPRequestHandler, count: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Encoding", encoding)
        handler.send_header("Content-Length", str(len(wire)))
        handler.end_headers()
        handler.wfile.write(wire)

    return route


def chunked(body: bytes) -> Callable[[BaseHTTPRequestHandler, int], None]:
    """A route sending ``body`` with chunked transfer encoding: no Content-Length to refuse it by."""
    def route(handler: BaseHTTPRequestHandler, count: int) -> None:
        handler.protocol_version = "HTTP/1.1"
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for start in range(0, len(body), 1 << 16):
            piece = body[start:start + (1 << 16)]
            handler.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")
        handler.close_connection = True

    return route


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "deflate-raw"])
def test_compressed_bodies_are_decoded_and_checksummed_as_the_file(server: Server, tmp_path: Path,
                                                                  encoding: str) -> None:
    server.routes["/z.grb"] = encoded(BODY, encoding)
    got = download(f"{server.url}/z.grb", tmp_path / "z.grb", **FAST)
    assert got.path.read_bytes() == BODY and got.sha256 == hashlib.sha256(BODY).hexdigest()


@pytest.mark.parametrize("path, route, problem", [
    ("/announced", ok(b"x" * 200_000), "announces 200,000 bytes"),
    ("/chunked", chunked(b"y" * 300_000), "sent more than 100,000 bytes"),
    ("/bomb", encoded(bytes(50_000_000), "gzip"), "sent a body that decodes to more than 100,000 bytes"),
])
def test_a_body_over_the_limit_is_refused_while_streaming(server: Server, tmp_path: Path, path: str,
                                                          route: Callable, problem: str) -> None:
    server.routes[path] = route
    with pytest.raises(InvalidFile) as caught:
        download(f"{server.url}{path}", tmp_path / "x", max_bytes=100_000, **FAST)
    assert f"{problem}, over the limit of 100,000 bytes" in str(caught.value)
    assert caught.value.file == f"{server.url}{path}" and server.hits[path] == 1, "refused at once, not retried"
    only_leftovers(tmp_path)


def test_an_encoding_not_asked_for_is_refused(server: Server, tmp_path: Path) -> None:
    def brotli(handler: BaseHTTPRequestHandler, count: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Encoding", "br")
        handler.send_header("Content-Length", "4")
        handler.end_headers()
        handler.wfile.write(b"abcd")

    server.routes["/br"] = brotli
    with pytest.raises(DownloadFailed, match="Content-Encoding 'br', which was not asked for"):
        download(f"{server.url}/br", tmp_path / "x", **FAST)


def test_the_deadline_bounds_a_trickle_and_every_retry(server: Server, tmp_path: Path) -> None:
    def trickle(handler: BaseHTTPRequestHandler, count: int) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", "100")
        handler.end_headers()
        for _ in range(100):
            handler.wfile.write(b"x")
            handler.wfile.flush()
            time.sleep(0.3)

    server.routes["/trickle"] = trickle
    start = time.perf_counter()
    with pytest.raises(DownloadFailed, match=r"failed 1 time\(s\) within the 1.5 s deadline.*too slow"):
        download(f"{server.url}/trickle", tmp_path / "x", timeout=1.0, retries=3, backoff=0.01, deadline=1.5)
    assert time.perf_counter() - start < 1.5 + 0.5
    only_leftovers(tmp_path)


def test_a_conditional_get_answered_304_returns_not_modified(server: Server, tmp_path: Path) -> None:
    def cached(handler: BaseHTTPRequestHandler, count: int) -> None:
        if handler.headers.get("If-None-Match") == '"v1"':
            handler.send_response(304)
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("ETag", '"v1"')
        handler.send_header("Last-Modified", "Wed, 02 Dec 2026 10:00:00 GMT")
        handler.send_header("Content-Length", str(len(BODY)))
        handler.end_headers()
        handler.wfile.write(BODY)

    server.routes["/c.grb"] = cached
    first = download(f"{server.url}/c.grb", tmp_path / "c.grb", **FAST)
    assert first.validators == Validators('"v1"', "Wed, 02 Dec 2026 10:00:00 GMT")
    again = download(f"{server.url}/c.grb", tmp_path / "c2.grb", validators=first.validators, **FAST)
    assert isinstance(again, NotModified) and again.validators.etag == '"v1"'
    only_leftovers(tmp_path, "c.grb")


def test_the_session_reads_proxies_from_the_environment_once_per_server(server: Server, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    server.routes["/p.grb"] = ok()
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    proxy = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with HttpSession() as session, pytest.raises(DownloadFailed, match="ProxyError|Connection refused"):
        download(f"{server.url}/p.grb", tmp_path / "p.grb", session=session, **FAST)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with HttpSession() as session:
        assert download(f"{server.url}/p.grb", tmp_path / "p.grb", session=session, **FAST).size == len(BODY)


# ----------------------------------------------------------------------------- McNoldy discovery


def test_mcnoldy_candidates_are_this_year_then_last() -> None:
    assert mcnoldy_candidate_urls("https://h/tropics/oni/", 2026) == [
        "https://h/tropics/oni/ONI_NINO34_1854-2026.txt", "https://h/tropics/oni/ONI_NINO34_1854-2025.txt"]


def test_mcnoldy_discovery_reads_the_index_page(server: Server) -> None:
    page = ('<html><a href="ONI_NINO34_1854-2024.txt">ONI_NINO34_1854-2024.txt</a>'
            '<a href="ONI_NINO34_1854-2025.txt">ONI_NINO34_1854-2025.txt</a><a href="x.png">x</a></html>')
    server.routes["/oni/"] = ok(page.encode())
    with requests.Session() as session:
        url = discover_mcnoldy_url(f"{server.url}/oni", session, 2026, timeout=2.0)
    assert url == f"{server.url}/oni/ONI_NINO34_1854-2025.txt"


def test_mcnoldy_discovery_tries_this_year_then_last_without_index_page(server: Server) -> None:
    server.routes["/oni/ONI_NINO34_1854-2025.txt"] = ok(b"table")
    with requests.Session() as session:
        url = discover_mcnoldy_url(f"{server.url}/oni/", session, 2026, timeout=2.0)
        assert url == f"{server.url}/oni/ONI_NINO34_1854-2025.txt"
        assert server.hits["/oni/ONI_NINO34_1854-2026.txt"] == 1

        server.routes["/oni/ONI_NINO34_1854-2026.txt"] = ok(b"newer table")
        assert discover_mcnoldy_url(f"{server.url}/oni/", session, 2026, timeout=2.0).endswith("1854-2026.txt")

        with pytest.raises(NotPublished, match="neither ONI_NINO34_1854-2028.txt nor ONI_NINO34_1854-2027.txt"):
            discover_mcnoldy_url(f"{server.url}/oni/", session, 2028, timeout=2.0)
        server.routes["/oni/ONI_NINO34_1854-2030.txt"] = lambda handler, count: send(handler, 503)
        with pytest.raises(DownloadFailed, match="HTTP 503"):
            discover_mcnoldy_url(f"{server.url}/oni/", session, 2030, timeout=2.0)
