"""Tests for tinygrad_reparam.data: the bundled digits, the IDX parser, and the MNIST download
path, which is exercised against a local http.server on 127.0.0.1 (never the real mirror)."""
import gzip
import hashlib
import http.server
import socket
import struct
import threading

import numpy as np
import pytest

from tinygrad_reparam import data
from tinygrad_reparam.data import load_digits, load_mnist, mnist_cache_dir, parse_idx


# ---------------------------------------------------------------------------------------------
# bundled digits
# ---------------------------------------------------------------------------------------------

def test_digits_file_matches_its_checksum_constant():
    assert hashlib.sha256(data.DIGITS_PATH.read_bytes()).hexdigest() == data.DIGITS_SHA256


def test_load_digits_shapes_range_and_class_counts():
    images, labels = load_digits()
    assert images.shape == (1797, 64) and images.dtype == np.float64
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    counts = np.bincount(labels, minlength=10)
    assert counts.tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_load_digits_raw_counts_are_integers_0_to_16_and_match_scaled():
    raw, labels_raw = load_digits(raw=True)
    images, labels = load_digits()
    assert raw.dtype == np.int64 and raw.shape == (1797, 64)
    assert raw.min() == 0 and raw.max() == 16
    np.testing.assert_array_equal(raw / 16.0, images)
    np.testing.assert_array_equal(labels_raw, labels)
    # the binarization the VAE demo uses: count >= 8 is the same as scaled >= 0.5
    np.testing.assert_array_equal(raw >= 8, images >= 0.5)
    # the first image of the file is a zero whose top row is 0 0 5 13 9 1 0 0
    assert labels[0] == 0 and raw[0, :8].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_load_digits_rejects_a_damaged_file(tmp_path, monkeypatch):
    damaged = bytearray(data.DIGITS_PATH.read_bytes())
    damaged[100] ^= 0xFF
    path = tmp_path / "digits.csv.gz"
    path.write_bytes(bytes(damaged))
    monkeypatch.setattr(data, "DIGITS_PATH", path)
    with pytest.raises(ValueError, match="sha256"):
        load_digits()


# ---------------------------------------------------------------------------------------------
# IDX parser
# ---------------------------------------------------------------------------------------------

def make_idx(array, type_code):
    """IDX bytes for ``array``, written independently of the parser (struct, big-endian)."""
    big_endian = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    return header + np.asarray(array).astype(big_endian[type_code]).tobytes()


@pytest.mark.parametrize("type_code, dtype", [
    (0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
    (0x0C, np.int32), (0x0D, np.float32), (0x0E, np.float64),
])
def test_parse_idx_round_trips_every_type(type_code, dtype):
    rng = np.random.default_rng(type_code)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        array = rng.integers(info.min, info.max, size=(3, 4, 5), endpoint=True).astype(dtype)
    else:
        array = rng.normal(size=(3, 4, 5)).astype(dtype)
    parsed = parse_idx(make_idx(array, type_code))
    assert parsed.dtype == dtype and parsed.dtype.isnative
    assert parsed.shape == (3, 4, 5)
    np.testing.assert_array_equal(parsed, array)


def test_parse_idx_reads_big_endian_by_hand():
    # 0x00 0x00 0x0B (short) 0x01 (1 dim), dim 2, values 0x0102 = 258 and 0xFFFE = -2
    blob = bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE])
    np.testing.assert_array_equal(parse_idx(blob), np.array([258, -2], dtype=np.int16))


def test_parse_idx_accepts_gzip_and_paths(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(make_idx(array, 0x08)))
    np.testing.assert_array_equal(parse_idx(path), array)
    np.testing.assert_array_equal(parse_idx(str(path)), array)
    np.testing.assert_array_equal(parse_idx(path.read_bytes()), array)


def test_parse_idx_result_is_writable():
    parsed = parse_idx(make_idx(np.zeros(3, dtype=np.uint8), 0x08))
    parsed[0] = 7
    assert parsed[0] == 7


def test_parse_idx_bad_magic():
    blob = bytearray(make_idx(np.zeros(3, dtype=np.uint8), 0x08))
    blob[0] = 0x12
    with pytest.raises(ValueError, match="not an IDX file"):
        parse_idx(bytes(blob))


def test_parse_idx_unknown_type_code():
    blob = bytearray(make_idx(np.zeros(3, dtype=np.uint8), 0x08))
    blob[2] = 0x0A
    with pytest.raises(ValueError, match="unknown IDX type code 0x0A"):
        parse_idx(bytes(blob))


def test_parse_idx_truncated_data_names_expected_and_actual_bytes():
    blob = make_idx(np.zeros((2, 5), dtype=np.int32), 0x0C)  # 40 bytes of data
    with pytest.raises(ValueError, match="truncated IDX data.*needs 40 bytes.*got 37"):
        parse_idx(blob[:-3], name="foo-idx2-int")
    with pytest.raises(ValueError, match="foo-idx2-int"):
        parse_idx(blob[:-3], name="foo-idx2-int")


def test_parse_idx_truncated_header():
    blob = make_idx(np.zeros((2, 5, 7), dtype=np.uint8), 0x08)
    with pytest.raises(ValueError, match="truncated IDX header"):
        parse_idx(blob[:9])
    with pytest.raises(ValueError, match="too short"):
        parse_idx(blob[:2])


def test_parse_idx_extra_trailing_bytes():
    blob = make_idx(np.zeros(4, dtype=np.uint8), 0x08)
    with pytest.raises(ValueError, match="2 extra bytes"):
        parse_idx(blob + b"\x00\x00")


def test_parse_idx_truncated_gzip():
    packed = gzip.compress(make_idx(np.arange(100, dtype=np.uint8), 0x08))
    with pytest.raises(ValueError, match="gzip"):
        parse_idx(packed[: len(packed) // 2])


# ---------------------------------------------------------------------------------------------
# MNIST download path, against a local server
# ---------------------------------------------------------------------------------------------

def small_mnist_files():
    """Tiny stand-ins for the four MNIST files: name -> gzipped IDX bytes, plus the arrays.
    The gzip header's timestamp is fixed (mtime=0) so every call gives the same bytes."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, size=(5, 28, 28)).astype(np.uint8),
        "train-labels-idx1-ubyte.gz": np.array([3, 1, 4, 1, 5], dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, size=(3, 28, 28)).astype(np.uint8),
        "t10k-labels-idx1-ubyte.gz": np.array([9, 2, 6], dtype=np.uint8),
    }
    files = {name: gzip.compress(make_idx(a, 0x08), mtime=0) for name, a in arrays.items()}
    return files, arrays


def sha256s(files):
    return {name: hashlib.sha256(blob).hexdigest() for name, blob in files.items()}


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``files`` (name -> bytes) from memory,
    counting the GET requests it receives."""

    def __init__(self, files):
        self.files = files
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass  # keep the test output quiet

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    files, _ = small_mnist_files()
    local = LocalServer(files)
    yield local
    local.close()


def leftovers(cache_dir):
    """Files in the cache that are not finished downloads (temporary or partial files)."""
    return sorted(p.name for p in cache_dir.iterdir()
                  if p.name.startswith(".") or p.name.endswith(".part"))


def test_download_then_cache_hit(server, tmp_path):
    files, arrays = small_mnist_files()
    cache = tmp_path / "cache"
    images, labels = load_mnist("train", cache_dir=cache, base_url=server.url,
                                checksums=sha256s(files))
    assert images.shape == (5, 784) and images.dtype == np.float64
    assert 0.0 <= images.min() and images.max() <= 1.0
    np.testing.assert_array_equal(images, arrays["train-images-idx3-ubyte.gz"].reshape(5, -1) / 255)
    assert labels.dtype == np.int64 and labels.tolist() == [3, 1, 4, 1, 5]
    assert sorted(server.requests) == ["/train-images-idx3-ubyte.gz", "/train-labels-idx1-ubyte.gz"]
    assert sorted(p.name for p in cache.iterdir()) == [
        "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert (cache / "train-labels-idx1-ubyte.gz").read_bytes() == files["train-labels-idx1-ubyte.gz"]

    # second call: served from the cache, the server sees no new request
    again, again_labels = load_mnist("train", cache_dir=cache, base_url=server.url,
                                     checksums=sha256s(files))
    assert len(server.requests) == 2
    np.testing.assert_array_equal(again, images)
    np.testing.assert_array_equal(again_labels, labels)

    test_images, test_labels = load_mnist("test", cache_dir=cache, base_url=server.url,
                                          checksums=sha256s(files))
    assert test_images.shape == (3, 784) and test_labels.tolist() == [9, 2, 6]
    assert len(server.requests) == 4


def test_base_url_from_environment_variable(server, tmp_path, monkeypatch):
    files, _ = small_mnist_files()
    monkeypatch.setenv("TINYGRAD_REPARAM_MNIST_URL", server.url)
    _, labels = load_mnist("test", cache_dir=tmp_path, checksums=sha256s(files))
    assert labels.tolist() == [9, 2, 6]
    assert len(server.requests) == 2


def test_checksum_mismatch_raises_and_leaves_no_file(server, tmp_path):
    files, _ = small_mnist_files()
    wrong = sha256s(files)
    wrong["train-images-idx3-ubyte.gz"] = "0" * 64
    with pytest.raises(ValueError) as info:
        load_mnist("train", cache_dir=tmp_path, base_url=server.url, checksums=wrong)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message
    assert "0" * 64 in message
    assert sha256s(files)["train-images-idx3-ubyte.gz"] in message
    assert list(tmp_path.iterdir()) == []


def test_default_checksums_reject_the_stand_in_files(server, tmp_path):
    # the module's real MNIST checksums must not match our tiny fake files
    with pytest.raises(ValueError, match=data.MNIST_SHA256["t10k-images-idx3-ubyte.gz"]):
        load_mnist("test", cache_dir=tmp_path, base_url=server.url)
    assert list(tmp_path.iterdir()) == []


def test_cached_file_with_wrong_checksum_is_reported_not_trusted(server, tmp_path):
    files, _ = small_mnist_files()
    checksums = sha256s(files)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not the real file")
    with pytest.raises(ValueError, match="cached file .*t10k-images-idx3-ubyte.gz.*wrong checksum"):
        load_mnist("test", cache_dir=tmp_path, base_url=server.url, checksums=checksums)
    assert server.requests == []


def test_truncated_idx_file_is_reported(tmp_path):
    # a served file whose checksum matches but whose IDX data is cut short
    files, _ = small_mnist_files()
    labels = np.array([9, 2, 6], dtype=np.uint8)
    files["t10k-labels-idx1-ubyte.gz"] = gzip.compress(make_idx(labels, 0x08)[:-1], mtime=0)
    local = LocalServer(files)
    try:
        with pytest.raises(ValueError, match="truncated IDX data.*needs 3 bytes.*got 2"):
            load_mnist("test", cache_dir=tmp_path, base_url=local.url, checksums=sha256s(files))
    finally:
        local.close()


def test_http_404_error_says_which_url_and_how_to_place_files(tmp_path):
    files, _ = small_mnist_files()
    del files["t10k-labels-idx1-ubyte.gz"]
    local = LocalServer(files)
    try:
        with pytest.raises(ConnectionError) as info:
            load_mnist("test", cache_dir=tmp_path, base_url=local.url,
                       checksums=sha256s(small_mnist_files()[0]))
    finally:
        local.close()
    message = str(info.value)
    assert local.url + "t10k-labels-idx1-ubyte.gz" in message
    assert "404" in message
    assert str(tmp_path) in message
    # the images file downloaded fine and stays; the failed one left nothing behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t10k-images-idx3-ubyte.gz"]


def closed_port():
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_explains_manual_placement(tmp_path):
    cache = tmp_path / "mnist"
    url = f"http://127.0.0.1:{closed_port()}/mirror/"
    with pytest.raises(ConnectionError) as info:
        load_mnist("train", cache_dir=cache, base_url=url, timeout=5)
    message = str(info.value)
    assert url + "train-images-idx3-ubyte.gz" in message
    assert "refused" in message.lower()
    assert str(cache) in message
    for name, digest in data.MNIST_SHA256.items():
        assert name in message and digest in message
    assert "TINYGRAD_REPARAM_MNIST_URL" in message
    assert leftovers(cache) == [] and list(cache.iterdir()) == []


def test_server_dropping_the_connection_leaves_no_partial_file(tmp_path):
    # the server promises 1000 bytes, sends 10 and hangs up: a network failure mid-download
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"\x1f\x8b" + b"\x00" * 8)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        with pytest.raises(ConnectionError, match="closed after 10 of 1000 bytes"):
            load_mnist("test", cache_dir=tmp_path,
                       base_url=f"http://127.0.0.1:{httpd.server_address[1]}/")
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert list(tmp_path.iterdir()) == []


def test_bad_split_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_mnist("validation", cache_dir=tmp_path)


def test_default_cache_dir_respects_xdg(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert mnist_cache_dir() == tmp_path / "tinygrad_reparam" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert mnist_cache_dir() == tmp_path / "home" / ".cache" / "tinygrad_reparam" / "mnist"


def test_data_readme_credits_the_digits_and_records_the_checksum():
    readme = (data.DIGITS_PATH.parent / "README.md").read_text()
    assert data.DIGITS_SHA256 in readme
    assert "Alpaydin, E. & Kaynak, C. (1998)" in readme
    assert "https://doi.org/10.24432/C50P49" in readme and "CC BY 4.0" in readme


def test_server_that_never_answers_times_out_with_a_clear_error(tmp_path):
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            release.wait(5)  # hold the request until the test is over

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        with pytest.raises(ConnectionError, match="timed out") as info:
            load_mnist("train", cache_dir=tmp_path, timeout=0.2,
                       base_url=f"http://127.0.0.1:{httpd.server_address[1]}/")
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert "train-images-idx3-ubyte.gz" in str(info.value)
    assert list(tmp_path.iterdir()) == []
