"""MNIST-format datasets: IDX files, where to find or download them, random crops and batches."""
from __future__ import annotations

import gzip
import hashlib
import http.client
import numbers
import os
import tempfile
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from pipeline import atomic
from pipeline.paths import cache_root
from pipeline.errors import UserError

IMAGES_MAGIC = 0x00000803  # IDX: unsigned bytes, 3 dimensions (count, rows, cols)
LABELS_MAGIC = 0x00000801  # IDX: unsigned bytes, 1 dimension (count)
IMAGE_SIZE = 28            # MNIST and Fashion-MNIST are 28x28
CROP_SIZE = 26             # the article trains on random 26x26 crops
NUM_CLASSES = 10

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FILE_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
SPLIT_FILES = {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)}
SPLIT_SIZES = {"train": 60_000, "test": 10_000}  # the same for MNIST and Fashion-MNIST
SPLITS = ("all", "train", "test")

# SHA-256 of the published gzip files. The t10k values were computed from the
# copies whose md5 the MNIST site lists; the train values are the ones torchvision
# and other loaders publish (the same sources agree on the t10k values above).
MNIST_SHA256 = {
    TRAIN_IMAGES: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    TRAIN_LABELS: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    TEST_IMAGES: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    TEST_LABELS: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
# yann.lecun.com now refuses automated downloads, so only these mirrors are tried.
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DOWNLOAD_TIMEOUT = 15.0           # seconds without progress before a mirror is given up
MAX_DOWNLOAD_BYTES = 64 << 20     # the largest MNIST file is 9.9 MB; stop a runaway response

Progress = Callable[[str, int, "int | None"], None]  # (file name, bytes so far, total or None)


@dataclass(frozen=True)
class DatasetSpec:
    """Where one named dataset lives and how its downloaded files are checked."""
    name: str
    sha256: dict = field(default_factory=dict)  # file name -> published SHA-256 (empty: not checked)
    mirrors: tuple = ()                          # base URLs to download from, tried in order
    system_dirs: tuple = ()                      # read-only install locations searched before the cache


DATASETS = {
    "mnist": DatasetSpec("mnist", sha256=MNIST_SHA256, mirrors=MNIST_MIRRORS),
    # Debian's dataset-fashion-mnist package; there is nothing to download for it.
    "fashion-mnist": DatasetSpec("fashion-mnist", system_dirs=("/usr/share/datasets/fashion-mnist",)),
}


@dataclass
class Dataset:
    """Images and labels in memory, with where they came from."""
    images: torch.Tensor   # uint8 [N, 28, 28]
    labels: torch.Tensor   # int64 [N], 0..9
    name: str              # "mnist" or "fashion-mnist"
    files: dict            # file name -> SHA-256 hex of each file read
    note: str = ""         # a message for the user when the data is not what was asked for
    root: str = ""         # the directory the files were read from

    def __len__(self) -> int:
        return self.images.shape[0]


# ----------------------------------------------------------------------------- IDX files

def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}; check that it is a readable file") from None


def _decompress(path: Path, raw: bytes) -> bytes:
    # Decide by content, not by name: an IDX file starts with two zero bytes, gzip with 1f 8b.
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise UserError(f"{path} is a damaged gzip file ({e}); download it again") from None


def _parse_header(path: Path, data: bytes, magic: int, what: str) -> tuple[list[int], int]:
    """Check the magic number; return the declared dimensions and the header length."""
    if len(data) < 4:
        raise UserError(f"{path} is too short to be an IDX {what} file ({len(data)} bytes); download it again")
    got = int.from_bytes(data[:4], "big")
    if got != magic:
        other = {IMAGES_MAGIC: "an images file", LABELS_MAGIC: "a labels file"}.get(got)
        hint = f"it looks like {other}" if other else "it is not an MNIST-format IDX file"
        raise UserError(f"{path} has magic number 0x{got:08x}, expected 0x{magic:08x} for {what}: "
                        f"{hint}; check the file names")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise UserError(f"{path} is truncated inside its header ({len(data)} bytes); download it again")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return dims, header


def _check_payload(path: Path, data: bytes, header: int, count: int, item_bytes: int, what: str) -> None:
    expected = count * item_bytes
    actual = len(data) - header
    if actual < expected:
        raise UserError(f"{path} is truncated: its header declares {count:,} {what} ({expected:,} bytes) "
                        f"but only {actual:,} bytes follow; download it again")
    if actual > expected:
        raise UserError(f"{path} has {actual - expected:,} unexpected bytes after the {count:,} {what} "
                        f"its header declares; the file is corrupt, download it again")


def _images_from_bytes(path: Path, data: bytes, size: int = IMAGE_SIZE) -> torch.Tensor:
    (n, rows, cols), header = _parse_header(path, data, IMAGES_MAGIC, "images")
    if (rows, cols) != (size, size):
        raise UserError(f"{path} holds {rows}x{cols} images, expected {size}x{size} (MNIST format)")
    _check_payload(path, data, header, n, rows * cols, "images")
    # Copy: np.frombuffer over bytes is read-only, and torch wants writable memory.
    arr = np.frombuffer(data, dtype=np.uint8, count=n * rows * cols, offset=header)
    return torch.from_numpy(arr.reshape(n, rows, cols).copy())  # uint8 [N, 28, 28]


def _labels_from_bytes(path: Path, data: bytes) -> torch.Tensor:
    (n,), header = _parse_header(path, data, LABELS_MAGIC, "labels")
    _check_payload(path, data, header, n, 1, "labels")
    arr = np.frombuffer(data, dtype=np.uint8, count=n, offset=header)
    bad = np.flatnonzero(arr >= NUM_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise UserError(f"{path} has label {int(arr[i])} at index {i:,} ({bad.size:,} in all) outside "
                        f"0..{NUM_CLASSES - 1}; the file is corrupt or not a digit-class labels file")
    return torch.from_numpy(arr.astype(np.int64))  # int64 [N]


def read_idx_images(path: str | os.PathLike, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Read an IDX images file (gzip or raw) -> uint8 [N, size, size]; any problem is a UserError."""
    path = Path(path)
    return _images_from_bytes(path, _decompress(path, _read_bytes(path)), size)


def read_idx_labels(path: str | os.PathLike) -> torch.Tensor:
    """Read an IDX labels file (gzip or raw) -> int64 [N] in 0..9; any problem is a UserError."""
    path = Path(path)
    return _labels_from_bytes(path, _decompress(path, _read_bytes(path)))


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array).tobytes()
    if path.name.endswith(".gz"):
        data = gzip.compress(data, mtime=0)  # mtime=0: the same arrays give the same bytes (and SHA-256)
    atomic.write_bytes(path, data)


def _as_uint8(values, what: str) -> np.ndarray:
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError(f"{what} must be in 0..255 to be stored as unsigned bytes")
    return arr.astype(np.uint8)


def write_idx_images(path: str | os.PathLike, images) -> None:
    """Write uint8 images [N, H, W] as an IDX file (gzip when the name ends in .gz)."""
    arr = _as_uint8(images, "images")
    if arr.ndim != 3:
        raise ValueError(f"images must be [N, H, W], got shape {arr.shape}")
    _write_idx(Path(path), IMAGES_MAGIC, arr)


def write_idx_labels(path: str | os.PathLike, labels) -> None:
    """Write labels [N] (0..255) as an IDX file (gzip when the name ends in .gz)."""
    arr = _as_uint8(labels, "labels")
    if arr.ndim != 1:
        raise ValueError(f"labels must be [N], got shape {arr.shape}")
    _write_idx(Path(path), LABELS_MAGIC, arr)


# ----------------------------------------------------------------------------- finding the files

def data_cache_dir(name: str = "mnist") -> Path:
    """Where downloaded files live: $CPPN_VIDEO_DATA/<name>, else <cache_root()>/<name> (~/.cache/cppn-video/<name>)."""
    root = os.environ.get("CPPN_VIDEO_DATA")
    if root:
        return Path(root).expanduser() / name
    return cache_root() / name


def find_file(directory: Path, name: str) -> Path | None:
    """The file as published (.gz) or uncompressed (name without .gz)."""
    for candidate in (name, name[: -len(".gz")]):
        path = directory / candidate
        if path.is_file():
            return path
    return None


def _complete_splits(directory: Path, wanted: tuple[str, ...]) -> list[str]:
    """The wanted splits whose images and labels are both present; a half pair is an error."""
    complete = []
    for split in wanted:
        images, labels = (find_file(directory, f) for f in SPLIT_FILES[split])
        if images and labels:
            complete.append(split)
        elif images or labels:
            have, lack = (images, SPLIT_FILES[split][1]) if images else (labels, SPLIT_FILES[split][0])
            raise UserError(f"{directory} has {have.name} but not {lack} (or {lack[:-3]}); "
                            f"add the missing file or remove the other one")
    return complete


def _missing_message(directory: Path, wanted: tuple[str, ...]) -> str:
    names = ", ".join(f for s in wanted for f in SPLIT_FILES[s])
    return f"no MNIST-format files in {directory}: expected {names} (gzip or uncompressed)"


def _download(spec: DatasetSpec, directory: Path, name: str, progress: Progress | None) -> None:
    """Fetch one file into directory from the first mirror that serves the published bytes."""
    expected = spec.sha256[name]
    failures, mismatch = [], False
    for base in spec.mirrors:
        url = base + name
        tmp = None
        try:
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
                digest, done = hashlib.sha256(), 0
                with os.fdopen(fd, "wb") as f:
                    while chunk := response.read(1 << 16):
                        done += len(chunk)
                        if done > MAX_DOWNLOAD_BYTES:
                            raise OSError(f"response larger than {MAX_DOWNLOAD_BYTES >> 20} MB")
                        f.write(chunk)
                        digest.update(chunk)
                        if progress:
                            progress(name, done, total)
            if digest.hexdigest() != expected:
                mismatch = True
                failures.append(f"{url} served a file with SHA-256 {digest.hexdigest()[:16]}..., "
                                f"expected {expected[:16]}...")
                continue
            os.replace(tmp, directory / name)
            tmp = None
            return
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            failures.append(f"{url}: {reason}")
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
    what = "does not match its published SHA-256 (deleted)" if mismatch else "could not be downloaded"
    raise UserError(f"{name} {what}: {'; '.join(failures)}")


def _read_split(directory: Path, split: str, verify: dict) -> tuple[torch.Tensor, torch.Tensor, dict]:
    images_path, labels_path = (find_file(directory, f) for f in SPLIT_FILES[split])
    files = {}
    tensors = []
    for path, reader in ((images_path, _images_from_bytes), (labels_path, _labels_from_bytes)):
        raw = _read_bytes(path)
        digest = hashlib.sha256(raw).hexdigest()
        # Only the published .gz bytes have a known hash; uncompressed copies are read as they are.
        if path.name in verify and digest != verify[path.name]:
            raise UserError(f"{path} does not match the published file (SHA-256 {digest[:16]}..., expected "
                            f"{verify[path.name][:16]}...); delete it to download it again, or pass --data DIR")
        files[path.name] = digest
        tensors.append(reader(path, _decompress(path, raw)))
    images, labels = tensors
    if images.shape[0] != labels.shape[0]:
        raise UserError(f"{images_path} holds {images.shape[0]:,} images but {labels_path} holds "
                        f"{labels.shape[0]:,} labels; both files must come from the same set")
    return images, labels, files


def load_dataset(name: str = "mnist", data_dir: str | os.PathLike | None = None, split: str = "all",
                 limit: int | None = None, download: bool = True,
                 progress: Progress | None = None) -> Dataset:
    """Load an MNIST-format dataset into memory.

    name: "mnist" or "fashion-mnist". data_dir: read only there; None looks in the
    system install (Fashion-MNIST from Debian), then the cache (see data_cache_dir), and
    downloads missing MNIST files into the cache when `download` is true, checking
    each file's SHA-256. split: "all" (train then test, as the article trains on all
    70,000), "train" or "test"; for "all", a directory with only one of the two pairs
    is used as it is and `note` says so. limit: keep the first N images.
    progress(file name, bytes so far, total or None) is called while downloading.
    """
    spec = DATASETS.get(name)
    if spec is None:
        raise UserError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 1):
        raise UserError(f"limit must be a positive whole number of images, got {limit!r}")
    wanted = ("train", "test") if split == "all" else (split,)

    download_failure = ""
    verify: dict = {}
    if data_dir is not None:
        directory = Path(data_dir).expanduser()
        if not directory.is_dir():
            raise UserError(f"data directory {directory} does not exist; pass --data with the folder that "
                            f"holds {', '.join(FILE_NAMES)}")
        found = _complete_splits(directory, wanted)
        if not found:
            raise UserError(_missing_message(directory, wanted) + "; put them there or pass another --data DIR")
    else:
        cache = data_cache_dir(name)
        candidates = [Path(d) for d in spec.system_dirs] + [cache]
        directory, found = None, []
        for d in candidates:  # first, a place that has everything asked for
            if d.is_dir() and len(_complete_splits(d, wanted)) == len(wanted):
                directory, found = d, list(wanted)
                break
        if directory is None and download and spec.mirrors:
            try:
                cache.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot create the data cache {cache}: {e.strerror or e}; "
                                f"set CPPN_VIDEO_DATA to a writable folder or pass --data DIR") from None
            try:
                for s in wanted:
                    for f in SPLIT_FILES[s]:
                        if find_file(cache, f) is None:
                            _download(spec, cache, f, progress)
                directory, found = cache, list(wanted)
            except UserError as e:
                download_failure = str(e)
        if directory is None:  # then, whatever complete pair exists
            for d in candidates:
                if d.is_dir() and (found := _complete_splits(d, wanted)):
                    directory = d
                    break
        if directory is None:
            where = " or ".join(str(d) for d in candidates)
            reason = f" and downloading failed ({download_failure})" if download_failure else ""
            raise UserError(f"no {name} files found in {where}{reason}; put {', '.join(FILE_NAMES)} in "
                            f"{cache} or pass --data DIR")
        if directory == cache:
            verify = spec.sha256  # the cache is ours: its .gz files must be the published ones

    parts = [_read_split(directory, s, verify) for s in found]
    images = torch.cat([p[0] for p in parts])  # [N, 28, 28]
    labels = torch.cat([p[1] for p in parts])  # [N]
    files = {k: v for p in parts for k, v in p[2].items()}

    notes = []
    if len(found) < len(wanted):
        missing = next(s for s in wanted if s not in found)
        usual = images.shape[0] + SPLIT_SIZES[missing]
        notes.append(f"only the {found[0]} files were found in {directory}: using {images.shape[0]:,} images "
                     f"instead of {usual:,}" + (f" (download failed: {download_failure})" if download_failure else ""))
    if limit is not None:
        if limit > images.shape[0]:
            notes.append(f"limit {limit:,} is more than the {images.shape[0]:,} images available: using all")
        images, labels = images[:limit], labels[:limit]
    return Dataset(images=images, labels=labels, name=name, files=files, note="; ".join(notes),
                   root=str(directory))


# ----------------------------------------------------------------------------- crops and batches

def _check_images(images: torch.Tensor, size: int) -> tuple[int, int, int]:
    if images.dim() != 3 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 [B, H, W], got {images.dtype} {tuple(images.shape)}")
    B, H, W = images.shape
    if not 1 <= size <= min(H, W):
        raise ValueError(f"crop size {size} does not fit {H}x{W} images")
    return B, H, W


def random_crops(images: torch.Tensor, generator: torch.Generator, size: int = CROP_SIZE) -> torch.Tensor:
    """uint8 [B, H, W] -> float32 [B, size, size] in [0, 1], each image at its own random offset.

    Offsets are uniform in 0..H-size (0..2 for 28 -> 26) per axis, drawn from `generator`
    (rows, then columns), so the crops depend only on the generator state and the batch.
    """
    B, H, W = _check_images(images, size)
    dev = generator.device
    top = torch.randint(0, H - size + 1, (B, 1), generator=generator, device=dev).to(images.device)
    left = torch.randint(0, W - size + 1, (B, 1), generator=generator, device=dev).to(images.device)
    steps = torch.arange(size, device=images.device)
    rows = top + steps   # [B, size]
    cols = left + steps  # [B, size]
    batch = torch.arange(B, device=images.device).view(B, 1, 1)
    crops = images[batch, rows.view(B, size, 1), cols.view(B, 1, size)]  # [B, size, size]
    return crops.float() / 255.0


def center_crops(images: torch.Tensor, size: int = CROP_SIZE) -> torch.Tensor:
    """uint8 [B, H, W] -> float32 [B, size, size] in [0, 1], cut from the middle (for evaluation)."""
    B, H, W = _check_images(images, size)
    top, left = (H - size) // 2, (W - size) // 2
    return images[:, top:top + size, left:left + size].float() / 255.0


def epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A random permutation of range(n) split into batches (the last may be smaller)."""
    if n < 0 or batch_size < 1:
        raise ValueError(f"need n >= 0 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    perm = torch.randperm(n, generator=generator, device=generator.device)  # [n]
    return list(perm.split(batch_size)) if n else []  # split() of an empty tensor gives one empty batch
