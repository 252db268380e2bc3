"""Real handwritten digits: a small bundled set, and MNIST downloaded on demand.

Two data sets, both as float64 arrays of pixels in [0, 1] (one image a row) plus int64 labels:

``load_digits()``
    1797 images of 8x8 pixels (the UCI "Optical Recognition of Handwritten Digits" test set,
    CC BY 4.0, credited in ``data/README.md``). The file ships inside the package, so this
    works offline. Each pixel is a count 0..16 (how many of 16 cells of a 4x4 block were ink);
    ``load_digits(raw=True)`` gives those counts as integers.

``load_mnist(split)``
    60000 training or 10000 test images of 28x28 pixels. The four files are downloaded once
    from a public mirror, checked against their known SHA-256 sums and kept in a cache
    directory. They use the IDX format, which ``parse_idx`` reads with a few lines of our own.

Files are never trusted blindly: every load checks the SHA-256 of what it reads, and a
download is written to a temporary file in the cache directory and renamed into place
(``os.replace``, atomic) only after its checksum matched, so an interrupted or corrupted
download never leaves a half-written file behind.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import math
import os
import socket
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple, Union

import numpy as np

from tinygrad_reparam import checks

# ----------------------------------------------------------------------------------------------
# The bundled digits
# ----------------------------------------------------------------------------------------------

DIGITS_PATH = Path(__file__).resolve().parent / "data" / "digits.csv.gz"
# sha256 of data/digits.csv.gz, computed from the file when it was added (see data/README.md).
DIGITS_SHA256 = "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
DIGITS_MAX_COUNT = 16  # pixel values are counts 0..16


def load_digits(raw: bool = False) -> Tuple[np.ndarray, np.ndarray]:
    """The bundled 1797 handwritten digits: ``(images, labels)``.

    ``images`` has shape (1797, 64), one 8x8 image a row in reading order. By default it is
    float64 in [0, 1] (the pixel counts divided by 16); with ``raw=True`` it is the int64
    counts 0..16 themselves. ``labels`` is int64 with shape (1797,), the digit 0..9.

    To binarize as the VAE demo does, keep pixels with count >= 8, i.e. ``images >= 0.5``.
    """
    raw = checks.flag(raw, "load_digits: raw")
    if not DIGITS_PATH.is_file():
        raise FileNotFoundError(
            f"the bundled digits file is missing: {DIGITS_PATH}. "
            f"Reinstall tinygrad_reparam (the file ships as package data)."
        )
    blob = DIGITS_PATH.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != DIGITS_SHA256:
        raise ValueError(
            f"{DIGITS_PATH} is damaged: its sha256 is {actual}, expected {DIGITS_SHA256}"
        )
    text = gzip.decompress(blob).decode("ascii")
    table = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.int64, ndmin=2)
    if table.shape != (1797, 65):
        raise ValueError(f"{DIGITS_PATH}: expected 1797 rows of 65 numbers, got {table.shape}")
    counts = table[:, :64]
    labels = table[:, 64].copy()
    if raw:
        return counts.copy(), labels
    return counts / float(DIGITS_MAX_COUNT), labels


# ----------------------------------------------------------------------------------------------
# The IDX format
# ----------------------------------------------------------------------------------------------
#
# An IDX file is a 4-byte magic number, then one big-endian int32 per dimension, then the
# values in C order, big-endian:
#
#     byte 0, 1   always 0
#     byte 2      the type of the values (table below)
#     byte 3      the number of dimensions
#
# MNIST's images are "0x00 0x00 0x08 0x03" (ubyte, 3 dims: n, 28, 28), its labels
# "0x00 0x00 0x08 0x01" (ubyte, 1 dim: n). The files are usually served gzip-compressed.

IDX_DTYPES = {
    0x08: np.dtype(">u1"),  # unsigned byte
    0x09: np.dtype(">i1"),  # signed byte
    0x0B: np.dtype(">i2"),  # short, 2 bytes
    0x0C: np.dtype(">i4"),  # int, 4 bytes
    0x0D: np.dtype(">f4"),  # float, 4 bytes
    0x0E: np.dtype(">f8"),  # double, 8 bytes
}

GZIP_MAGIC = b"\x1f\x8b"


def load_binarized_digits(threshold: int = 8, train_size: int = 1437) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The VAE demos' data: ``(x_train, x_test, labels_test)``, pixels as 0.0/1.0 floats.

    A pixel is 1 when its count is at least ``threshold`` (of 16). The 1797 images are shuffled
    with ``np.random.default_rng(0).permutation(1797)``; the first ``train_size`` are for training
    and the rest (360 by default) for testing, so every demo uses the same split.
    """
    threshold = checks.number(threshold, "load_binarized_digits: threshold", 0, DIGITS_MAX_COUNT)
    counts, labels = load_digits(raw=True)
    if checks.count(train_size, "load_binarized_digits: train_size") >= len(counts):
        raise ValueError(f"load_binarized_digits: train_size must be in 1..{len(counts) - 1} (the "
                         f"rest of the {len(counts)} images are for testing), got {train_size}")
    pixels = (counts >= threshold).astype(np.float64)
    order = np.random.default_rng(0).permutation(len(pixels))
    train, test = order[:train_size], order[train_size:]
    return pixels[train], pixels[test], labels[test]


def parse_idx(source: Union[bytes, bytearray, memoryview, str, os.PathLike],
              name: Optional[str] = None) -> np.ndarray:
    """Read an IDX file (or its bytes) into a NumPy array in native byte order.

    ``source`` is a path or the file's bytes; gzip-compressed input (starting with the bytes
    1f 8b) is decompressed first. ``name`` is what error messages call the input (default: the
    path, or "IDX data"). Raises ValueError for a bad magic number, an unknown type code, a
    truncated file (naming expected and actual byte counts) and extra bytes after the data.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        blob = bytes(source)
        name = name or "IDX data"
    elif isinstance(source, (str, os.PathLike)):
        blob = Path(source).read_bytes()
        name = name or str(source)
    else:
        raise TypeError(f"parse_idx: source must be a path (str or os.PathLike) or the file's bytes, "
                        f"got {type(source).__name__}")

    if blob[:2] == GZIP_MAGIC:
        try:
            blob = gzip.decompress(blob)
        except (EOFError, OSError, zlib.error) as err:
            raise ValueError(f"{name}: damaged or truncated gzip data ({err})") from None

    if len(blob) < 4:
        raise ValueError(f"{name}: too short for an IDX header: {len(blob)} bytes, need 4")
    zero0, zero1, type_code, ndim = blob[0], blob[1], blob[2], blob[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"{name}: not an IDX file: magic number {blob[:4].hex(' ')} should start 00 00"
        )
    if type_code not in IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX type code 0x{type_code:02X} (known: {known})")

    header_size = 4 + 4 * ndim
    if len(blob) < header_size:
        raise ValueError(
            f"{name}: truncated IDX header: {ndim} dimensions need {header_size} bytes, "
            f"got {len(blob)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(blob, dtype=">i4", count=ndim, offset=4))
    if any(d < 0 for d in shape):
        raise ValueError(f"{name}: negative dimension in IDX header: {shape}")

    dtype = IDX_DTYPES[type_code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = len(blob) - header_size
    if actual < expected:
        raise ValueError(
            f"{name}: truncated IDX data: shape {shape} of {dtype.itemsize}-byte values needs "
            f"{expected} bytes after the {header_size}-byte header, got {actual}"
        )
    if actual > expected:
        raise ValueError(
            f"{name}: {actual - expected} extra bytes after the IDX data: shape {shape} needs "
            f"{expected} bytes after the {header_size}-byte header, got {actual}"
        )
    values = np.frombuffer(blob, dtype=dtype, count=expected // dtype.itemsize,
                           offset=header_size)
    # astype copies into native byte order, so the result is an ordinary writable array.
    return values.astype(dtype.newbyteorder("=")).reshape(shape)


# ----------------------------------------------------------------------------------------------
# MNIST: download, verify, cache
# ----------------------------------------------------------------------------------------------

# The mirror torchvision downloads from (it checks the same files there and at LeCun's site).
MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_URL_ENV = "TINYGRAD_REPARAM_MNIST_URL"  # set it to use another mirror

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# SHA-256 of the .gz files as served (sizes 9912422, 28881, 1648877, 4542 bytes). The same
# sums are published by TensorFlow Datasets (url_checksums/mnist.txt) and by torchvision-ruby,
# which checks them against the ossci-datasets mirror used above.
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

CHUNK_SIZE = 1 << 16


def mnist_cache_dir() -> Path:
    """Where MNIST is kept by default: ``$XDG_CACHE_HOME/tinygrad_reparam/mnist``, with
    ``XDG_CACHE_HOME`` defaulting to ``~/.cache``."""
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache_home) / "tinygrad_reparam" / "mnist"


def load_mnist(split: str = "train", cache_dir: Optional[Union[str, os.PathLike]] = None,
               base_url: Optional[str] = None, checksums: Optional[Dict[str, str]] = None,
               timeout: float = 60.0) -> Tuple[np.ndarray, np.ndarray]:
    """MNIST as ``(images, labels)``: images float64 (n, 784) in [0, 1] (the bytes / 255),
    labels int64 (n,); n = 60000 for ``split="train"``, 10000 for ``split="test"``.

    The two files of the split are looked for in ``cache_dir`` (default ``mnist_cache_dir()``)
    and downloaded from ``base_url`` (default: the environment variable
    TINYGRAD_REPARAM_MNIST_URL, else ``MNIST_URL``) when missing. Every file, cached or fresh,
    must match its SHA-256 in ``checksums`` (default ``MNIST_SHA256``, a dict from file name to
    hex digest). Without network access, download the four files in ``MNIST_FILES`` by any
    means and put them in the cache directory: the error message says exactly where.
    """
    if not isinstance(split, str) or split not in MNIST_FILES:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    timeout = checks.number(timeout, "load_mnist: timeout (seconds)", 0, math.inf, lower_open=True,
                            upper_open=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else mnist_cache_dir()
    if base_url is None:
        base_url = os.environ.get(MNIST_URL_ENV) or MNIST_URL
    if checksums is None:
        checksums = MNIST_SHA256

    images_name, labels_name = MNIST_FILES[split]
    images_path = fetch_file(images_name, cache_dir, base_url, checksums[images_name], timeout)
    labels_path = fetch_file(labels_name, cache_dir, base_url, checksums[labels_name], timeout)

    images = parse_idx(images_path)
    labels = parse_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected uint8 images (n, rows, cols), "
                         f"got {images.dtype} {images.shape}")
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: expected {images.shape[0]} labels, got shape {labels.shape}"
        )
    return images.reshape(images.shape[0], -1) / 255.0, labels.astype(np.int64)


def sha256_of_file(path: Union[str, os.PathLike]) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_file(filename: str, cache_dir: Path, base_url: str, sha256: str,
               timeout: float = 60.0) -> Path:
    """Path of ``cache_dir/filename`` with the given SHA-256, downloading it if missing.

    A file already in the cache is checked too: a wrong checksum raises ValueError rather than
    being used (or silently replaced, since it may be a file someone placed by hand).
    """
    path = Path(cache_dir) / filename
    if path.exists():
        actual = sha256_of_file(path)
        if actual != sha256:
            raise ValueError(
                f"cached file {path} has the wrong checksum: sha256 {actual}, expected "
                f"{sha256}. Delete it to download it again, or replace it with the right file."
            )
        return path

    os.makedirs(cache_dir, exist_ok=True)
    url = base_url.rstrip("/") + "/" + filename
    # Download into a temporary file next to the target (same file system, so os.replace is an
    # atomic rename), hashing as we go. The `finally` removes it unless it was renamed into place.
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=f".{filename}.", suffix=".part")
    try:
        digest = hashlib.sha256()
        received, announced = 0, None
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    announced = response.headers.get("Content-Length")
                    for chunk in iter(lambda: response.read(CHUNK_SIZE), b""):
                        digest.update(chunk)
                        out.write(chunk)
                        received += len(chunk)
            except (urllib.error.URLError, http.client.HTTPException, socket.timeout,
                    ConnectionError) as err:
                raise ConnectionError(
                    _download_failed_message(url, _reason(err), cache_dir)) from err
        if announced is not None and announced.isdigit() and received != int(announced):
            reason = f"the connection closed after {received} of {announced} bytes"
            raise ConnectionError(_download_failed_message(url, reason, cache_dir))
        actual = digest.hexdigest()
        if actual != sha256:
            raise ValueError(
                f"downloaded {filename} from {url} has the wrong checksum: sha256 {actual}, "
                f"expected {sha256}. The file was discarded; try again or use another mirror."
            )
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
    return path


def _reason(err: Exception) -> str:
    """A download error in a few words: "HTTP 404 Not Found", "[Errno 111] Connection refused"."""
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, urllib.error.URLError):
        return str(err.reason)
    return f"{type(err).__name__}: {err}"


def _download_failed_message(url: str, reason: str, cache_dir: Path) -> str:
    """What failed, why, and how to get the files in by hand."""
    names = "\n".join(f"    {name}  sha256 {MNIST_SHA256[name]}" for name in MNIST_SHA256)
    return (
        f"could not download {url}: {reason}\n"
        f"To use MNIST without this download, get these four files from any MNIST mirror and "
        f"put them, still gzip-compressed, in {cache_dir}:\n{names}\n"
        f"Or point base_url= (or the environment variable {MNIST_URL_ENV}) at a mirror you can "
        f"reach."
    )
