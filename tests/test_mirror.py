"""The synthetic data mirror: the providers' layout on disk, real HTTP on loopback, injected faults."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from enso.mirror import INDEX_FILE, Fault, MirrorServer, cobe_path, ersst_path, write_grid_mirror, write_mirror
from enso.months import Month, month_range
from enso.sources.cobe import cobe_url, decode_cobe
from enso.sources.ersst import decode_ersst, ersst_url, read_ersst_stack
from enso.sources.index import parse_cpc_monthly
from enso.synthetic import synthetic_climate, synthetic_index_table
from tests.realdata import ERSST_ORIGINALS, REALDATA, need

SEED = 5
START, END = Month.of(2019, 11), Month.of(2020, 2)
JMA_BASE = "https://ds.data.jma.go.jp/tcc/tcc/products/elnino/cobesst/gpvdata"
TIMEOUT = 5.0


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mirror")
    write_mirror(root, START, END, SEED, sst_sources=("cobe", "ersst"))
    return root


@pytest.fixture
def server(mirror_root: Path):
    with MirrorServer(mirror_root) as srv:
        yield srv


def grb_url(srv: MirrorServer, month: Month) -> str:
    return cobe_url(month, srv.cobe_base_url)


def test_cobe_tree_has_the_tcc_layout(tmp_path: Path) -> None:
    real = need(REALDATA / "tcc_cobesst_grb_urls_1891-01_2020-12.txt").read_text().split()
    months = [Month.of(1891, 1), Month.of(1899, 12), Month.of(1900, 1), Month.of(2009, 12), Month.of(2010, 1)]
    for month in months:
        write_mirror(tmp_path, month, month, SEED, index=False)
    written = sorted(p.relative_to(tmp_path / "cobe").as_posix() for p in (tmp_path / "cobe").rglob("*.grb"))
    expected = sorted(real[month.months_since(Month.of(1891, 1))].removeprefix(JMA_BASE + "/") for month in months)
    assert written == expected
    assert written[0] == "1891-1899/sst189101.grb"


def test_written_files_decode_to_the_synthetic_climate(mirror_root: Path) -> None:
    fine, coarse = synthetic_climate(SEED, 1.0), synthetic_climate(SEED, 2.0)
    for month in month_range(START, END):
        cobe = decode_cobe(mirror_root / cobe_path(month), month)
        assert np.array_equal(cobe.land_mask, fine.land_mask)
        assert np.nanmax(np.abs(cobe.values - fine.grid(month).values)) < 2e-3  # 16-bit GRIB packing
        ersst = decode_ersst(mirror_root / "ersst" / ersst_url(month, "").lstrip("/"), month)
        np.testing.assert_array_equal(ersst.values, coarse.grid(month).values)
    index = parse_cpc_monthly((mirror_root / INDEX_FILE).read_text(), INDEX_FILE)
    expected = synthetic_index_table(START, END, SEED)
    assert list(index.index) == list(expected.index)
    np.testing.assert_allclose(index["nino34"], expected["nino34"], atol=0.005)
    np.testing.assert_allclose(index["anomaly"], expected["anomaly"], atol=0.005)


def test_rewriting_changes_only_what_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = write_mirror(tmp_path, "2020-01", "2020-03", SEED)
    assert first.written == 4 and first.unchanged == 0 and len(first.files) == 4
    stamps = {p: p.stat().st_mtime_ns for p in first.files}
    time.sleep(0.01)
    assert capsys.readouterr().err == ""  # no progress bar unless asked
    again = write_mirror(tmp_path, "2020-01", "2020-03", SEED, progress=True)
    assert again.written == 0 and again.unchanged == 4
    assert "3/3" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in again.files} == stamps
    other = write_mirror(tmp_path, "2020-01", "2020-03", SEED + 1)
    assert other.written == 4
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        ["cobe", "2020-2029", "sst202001.grb", "sst202002.grb", "sst202003.grb", "index",
         "ersst5.nino.mth.91-20.ascii"])  # no temporary files left behind
    with pytest.raises(ValueError, match="unknown SST source"):
        write_mirror(tmp_path, "2020-01", "2020-03", sst_sources=("hadisst",))


def test_a_mirror_of_real_grids_decodes_to_them_and_serves_a_real_index(tmp_path: Path) -> None:
    original = need(ERSST_ORIGINALS / "ersst.v5.185401.nc")
    grids = list(read_ersst_stack(original))
    index = need(REALDATA / "mcnoldy_ONI_NINO34_1854-2022.txt")
    first = write_grid_mirror(tmp_path, grids, "ersst", index_file=index)
    month = Month.of(1854, 1)
    assert first.ersst_files == (tmp_path / ersst_path(month),) and first.cobe_files == ()
    assert (first.start, first.end, first.seed, first.written) == (month, month, None, 2)
    decoded = decode_ersst(tmp_path / ersst_path(month), month)
    np.testing.assert_array_equal(decoded.values, grids[0].values)
    assert first.index_file == tmp_path / "index" / index.name
    assert first.index_file.read_bytes() == index.read_bytes()
    again = write_grid_mirror(tmp_path, grids, "ersst", index_file=index)
    assert (again.written, again.unchanged) == (0, 2)
    with MirrorServer(tmp_path) as srv:
        served = requests.get(f"{srv.url}/index/{index.name}", timeout=TIMEOUT)
        assert served.content == index.read_bytes()
    with pytest.raises(ValueError, match="no grid"):
        write_grid_mirror(tmp_path, [], "ersst")


def test_serves_files_with_length_and_head_and_404(server: MirrorServer, mirror_root: Path) -> None:
    assert server.url.startswith("http://127.0.0.1:") and server.server_address[1] > 0
    assert server.settings_overrides()["index_url"] == server.index_url
    response = requests.get(grb_url(server, START), timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == (mirror_root / cobe_path(START)).read_bytes()
    assert int(response.headers["Content-Length"]) == len(response.content)
    head = requests.head(grb_url(server, START), timeout=TIMEOUT)
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["Content-Length"]) == len(response.content)
    assert requests.get(grb_url(server, END + 1), timeout=TIMEOUT).status_code == 404
    index = requests.get(server.index_url, timeout=TIMEOUT)
    assert index.text.startswith(" YR   MON  NINO1+2")
    ersst = requests.get(ersst_url(START, server.ersst_base_url), timeout=TIMEOUT)
    assert ersst.status_code == 200 and ersst.content[:3] == b"CDF"
    assert server.requests == [
        "/" + cobe_path(START), "/" + cobe_path(START), "/" + cobe_path(END + 1), "/" + INDEX_FILE,
        "/ersst/" + ersst_url(START, "").lstrip("/")]
    assert [r.method for r in server.request_log] == ["GET", "HEAD", "GET", "GET", "GET"]
    assert [r.status for r in server.request_log] == [200, 200, 404, 200, 200]


def test_never_serves_outside_its_root(server: MirrorServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=TIMEOUT)
    connection.request("GET", "/cobe/../../../etc/passwd")
    response = connection.getresponse()
    assert response.status == 404 and b"root:" not in response.read()
    connection.close()


def test_folder_listing_names_the_files(server: MirrorServer) -> None:
    listing = requests.get(f"{server.cobe_base_url}/2020-2029/", timeout=TIMEOUT).text
    assert 'href="/cobe/2020-2029/sst202001.grb"' in listing and "sst201912.grb" not in listing


def test_status_faults_are_consumed_in_order(server: MirrorServer) -> None:
    server.faults.add("*/sst202001.grb", "status:503", times=1)
    server.faults.add("cobe/*", "status:500", times=2)
    url = grb_url(server, Month.of(2020, 1))
    assert [requests.get(url, timeout=TIMEOUT).status_code for _ in range(4)] == [503, 500, 500, 200]
    assert [r.fault for r in server.request_log] == ["status:503", "status:500", "status:500", None]
    assert server.faults.pending() == []
    server.faults.add("*.grb", "status:404", times=None)
    assert {requests.get(grb_url(server, m), timeout=TIMEOUT).status_code for m in month_range(START, END)} == {404}
    assert server.faults.pending() == [("*.grb", "status:404", None)]
    server.faults.clear()
    assert requests.get(url, timeout=TIMEOUT).status_code == 200


def test_delay_makes_a_client_time_out(server: MirrorServer) -> None:
    server.faults.add("*/sst202002.grb", "delay:1.5", times=1)
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        requests.get(grb_url(server, END), timeout=0.3)
    assert time.monotonic() - started < 1.2
    assert server.request_log[-1].fault == "delay:1.5"  # logged on arrival, not when the answer goes out
    assert requests.get(grb_url(server, END), timeout=TIMEOUT).status_code == 200


def test_truncate_announces_the_full_length_but_cuts_the_body(server: MirrorServer, mirror_root: Path) -> None:
    full = (mirror_root / cobe_path(START)).read_bytes()
    server.faults.add("*/sst201911.grb", "truncate:1000", times=1)
    with requests.get(grb_url(server, START), timeout=TIMEOUT, stream=True) as response:
        assert int(response.headers["Content-Length"]) == len(full)
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            _ = response.content
    raw = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=TIMEOUT)
    server.faults.add("*/sst201911.grb", "truncate:1000", times=1)
    raw.request("GET", "/" + cobe_path(START))
    with pytest.raises(http.client.IncompleteRead) as cut:
        raw.getresponse().read()
    assert cut.value.partial == full[:1000]
    raw.close()
    assert requests.get(grb_url(server, START), timeout=TIMEOUT).content == full


def test_body_fault_serves_other_content(server: MirrorServer) -> None:
    server.faults.add("*/sst201912.grb", "body:<html>Service moved</html>", times=1)
    response = requests.get(grb_url(server, Month.of(2019, 12)), timeout=TIMEOUT)
    assert response.status_code == 200 and response.content == b"<html>Service moved</html>"
    assert response.headers["Content-Length"] == str(len(b"<html>Service moved</html>"))


def test_down_drops_connections_until_back_up(server: MirrorServer) -> None:
    with requests.Session() as session:
        assert session.get(server.index_url, timeout=TIMEOUT).status_code == 200  # a kept-alive connection
        server.down = True
        with pytest.raises(requests.ConnectionError):
            session.get(server.index_url, timeout=TIMEOUT)
    with pytest.raises(requests.ConnectionError):
        requests.get(server.index_url, timeout=TIMEOUT)
    server.down = False
    assert requests.get(server.index_url, timeout=TIMEOUT).status_code == 200
    assert server.requests == ["/" + INDEX_FILE, "/" + INDEX_FILE]


def test_concurrent_requests_are_all_answered_and_logged(server: MirrorServer) -> None:
    server.faults.add("*.grb", "delay:0.3", times=8)
    codes: list[int] = []
    threads = [threading.Thread(target=lambda: codes.append(requests.get(grb_url(server, START),
                                                                          timeout=TIMEOUT).status_code))
               for _ in range(8)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 8 and len(server.requests) == 8
    assert time.monotonic() - started < 2.0  # served in parallel, not one after another


def test_files_carry_validators_and_conditional_gets_answer_304(server: MirrorServer, mirror_root: Path) -> None:
    url = grb_url(server, START)
    first = requests.get(url, timeout=TIMEOUT)
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert etag.startswith('"') and modified.endswith("GMT")
    assert requests.get(url, headers={"If-None-Match": etag}, timeout=TIMEOUT).status_code == 304
    assert requests.get(url, headers={"If-Modified-Since": modified}, timeout=TIMEOUT).status_code == 304
    assert requests.get(url, headers={"If-None-Match": '"other"', "If-Modified-Since": modified},
                        timeout=TIMEOUT).status_code == 200, "If-None-Match decides when both are sent"
    path = mirror_root / cobe_path(START)
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))  # the provider replaced the file
    try:
        changed = requests.get(url, headers={"If-None-Match": etag, "If-Modified-Since": modified}, timeout=TIMEOUT)
        assert changed.status_code == 200 and changed.headers["ETag"] != etag and changed.content == first.content
    finally:
        os.utime(path, (path.stat().st_atime, path.stat().st_mtime - 10))
    not_modified = [r for r in server.request_log if r.status == 304]
    assert len(not_modified) == 2


def test_bomb_junk_and_trickle_faults(server: MirrorServer, mirror_root: Path) -> None:
    import zlib

    server.faults.add("*/sst2020*", "bomb:50000000", times=1)
    bomb = requests.get(grb_url(server, Month.of(2020, 1)), stream=True, timeout=TIMEOUT)
    wire = bomb.raw.read(decode_content=False)
    assert bomb.headers["Content-Encoding"] == "gzip" and len(wire) < 100_000
    assert len(zlib.decompress(wire, 16 + zlib.MAX_WBITS)) == 50_000_000
    server.faults.add("*/sst2020*", "junk:300000", times=1)
    junk = requests.get(grb_url(server, Month.of(2020, 1)), timeout=TIMEOUT)
    assert len(junk.content) == 300_000 and junk.content != (mirror_root / cobe_path(Month.of(2020, 1))).read_bytes()
    server.faults.add("*/sst2020*", "trickle:0.2", times=1)
    started = time.monotonic()
    trickle = requests.get(grb_url(server, Month.of(2020, 1)), stream=True, timeout=TIMEOUT)
    assert trickle.raw.read(3) and time.monotonic() - started >= 0.4
    trickle.close()


def test_bad_fault_specifications_are_rejected(server: MirrorServer) -> None:
    for spec in ("explode:1", "status:abc", "status:99", "delay", "truncate:x"):
        with pytest.raises(ValueError, match="fault"):
            server.faults.add("*", spec)
    assert Fault.parse("delay:0.5") == Fault("delay", 0.5)
    with pytest.raises(ValueError, match="times"):
        server.faults.add("*", "status:500", times=0)


def test_command_line_writes_and_serves(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    done = subprocess.run([sys.executable, "-m", "enso.mirror", "write", str(tmp_path), "--start", "2020-11",
                           "--end", "2021-01", "--seed", "3", "--ersst"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "7 files" in done.stdout and (tmp_path / "cobe" / "2020-2029" / "sst202101.grb").is_file()
    assert (tmp_path / "ersst" / "ersst.v6.202101.nc").is_file()  # NCEI's current version
    serving = subprocess.Popen([sys.executable, "-m", "enso.mirror", "serve", str(tmp_path)],
                               stdout=subprocess.PIPE, text=True, env=env)
    try:
        first_line = serving.stdout.readline()
        url = first_line.split(" at ")[1].split(";")[0]
        response = requests.get(f"{url}/cobe/2020-2029/sst202011.grb", timeout=TIMEOUT)
        assert response.content == (tmp_path / "cobe" / "2020-2029" / "sst202011.grb").read_bytes()
        assert f"ENSO_COBE_BASE_URL={url}/cobe" in serving.stdout.readline()
    finally:
        serving.terminate()
        serving.wait(timeout=10)
