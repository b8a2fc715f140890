"""Tests for pipeline.data: IDX reading and validation, dataset lookup and download, crops, batches."""
import dataclasses
import gzip
import hashlib
import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from idx_helpers import synthetic_digits, write_idx_dataset
from pipeline import data
from pipeline.data import (FILE_NAMES, MNIST_SHA256, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS,
                           center_crops, epoch_batches, load_dataset, random_crops, read_idx_images,
                           read_idx_labels, write_idx_images, write_idx_labels)
from pipeline.errors import UserError

REAL_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Tests never touch the network or the user's cache; a test that wants a download fakes it."""
    def refuse(*args, **kwargs):
        raise AssertionError("a test tried to reach the network")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("CPPN_VIDEO_DATA", str(tmp_path / "cache"))


def one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"
    return msg


# ----------------------------------------------------------------------------- IDX round trip

@pytest.mark.parametrize("suffix", [".gz", ""])
def test_idx_round_trip(tmp_path, suffix):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    ipath, lpath = tmp_path / f"img{suffix}", tmp_path / f"lab{suffix}"
    write_idx_images(ipath, torch.from_numpy(images))
    write_idx_labels(lpath, labels)

    got_images, got_labels = read_idx_images(ipath), read_idx_labels(lpath)
    assert got_images.dtype == torch.uint8 and got_images.shape == (7, 28, 28)
    assert got_labels.dtype == torch.int64 and got_labels.shape == (7,)
    assert np.array_equal(got_images.numpy(), images)
    assert np.array_equal(got_labels.numpy(), labels.astype(np.int64))

    # The bytes follow the IDX spec, checked without our reader: big-endian magic and dims, then data.
    raw = ipath.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == (suffix == ".gz")
    if suffix:
        raw = gzip.decompress(raw)
    assert raw[:16] == bytes.fromhex("00000803" "00000007" "0000001c" "0000001c")
    assert raw[16:] == images.tobytes()
    assert set(tmp_path.iterdir()) == {ipath, lpath}  # no temp files left behind


def _image_bytes(n=3, rows=28, cols=28, magic=0x803):
    header = b"".join(v.to_bytes(4, "big") for v in (magic, n, rows, cols))
    return header + bytes(n * rows * cols)


def _label_bytes(values, magic=0x801):
    return magic.to_bytes(4, "big") + len(values).to_bytes(4, "big") + bytes(values)


BAD_IMAGE_FILES = {
    "wrong magic (a labels file)": (_label_bytes([1, 2, 3]), "looks like a labels file"),
    "wrong magic (garbage)": (b"\x12\x34\x56\x78" + bytes(100), "magic number 0x12345678"),
    "truncated payload": (_image_bytes(3)[:-100], "truncated"),
    "truncated header": (_image_bytes(3)[:10], "truncated"),
    "too short": (b"\x00\x00", "too short"),
    "wrong dims": (_image_bytes(2, 32, 32), "32x32"),
    "trailing bytes": (_image_bytes(2) + b"xx", "unexpected bytes"),
    "damaged gzip": (gzip.compress(_image_bytes(3))[:-20], "damaged gzip"),
    "gzip of truncated payload": (gzip.compress(_image_bytes(3)[:-1]), "truncated"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGE_FILES))
def test_bad_image_file_is_a_one_line_error_naming_the_file(tmp_path, case):
    content, needle = BAD_IMAGE_FILES[case]
    path = tmp_path / "broken-images-idx3-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(UserError) as excinfo:
        read_idx_images(path)
    one_line_error(excinfo, str(path), needle)


@pytest.mark.parametrize("content,needle", [
    (_label_bytes([0, 9, 10, 3]), "label 10 at index 2"),
    (_label_bytes([1, 2, 3])[:-1], "truncated"),
    (_image_bytes(1), "looks like an images file"),
])
def test_bad_label_file_is_a_one_line_error_naming_the_file(tmp_path, content, needle):
    path = tmp_path / "broken-labels-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(UserError) as excinfo:
        read_idx_labels(path)
    one_line_error(excinfo, str(path), needle)


def test_unreadable_path_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as excinfo:
        read_idx_images(tmp_path)  # a directory
    one_line_error(excinfo, str(tmp_path))


# ----------------------------------------------------------------------------- load_dataset

def test_all_concatenates_train_then_test_and_records_hashes(tmp_path):
    d = write_idx_dataset(tmp_path / "d", n_train=30, n_test=20, seed=3)
    ds = load_dataset(data_dir=d, download=False)
    images, labels = synthetic_digits(50, seed=3)
    assert ds.images.shape == (50, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.shape == (50,) and ds.labels.dtype == torch.int64
    assert np.array_equal(ds.images.numpy(), images) and np.array_equal(ds.labels.numpy(), labels)
    assert ds.note == "" and ds.name == "mnist" and ds.root == str(d) and len(ds) == 50
    assert set(ds.files) == set(FILE_NAMES)
    for name, digest in ds.files.items():
        assert digest == hashlib.sha256((d / name).read_bytes()).hexdigest()


def test_uncompressed_files_are_found_too(tmp_path):
    d = write_idx_dataset(tmp_path / "d", n_train=10, n_test=10, gz=False)
    ds = load_dataset(data_dir=d, download=False)
    assert len(ds) == 20 and set(ds.files) == {n[:-3] for n in FILE_NAMES}


def test_single_splits(tmp_path):
    d = write_idx_dataset(tmp_path / "d", n_train=30, n_test=20)
    train = load_dataset(data_dir=d, split="train", download=False)
    test = load_dataset(data_dir=d, split="test", download=False)
    both = load_dataset(data_dir=d, download=False)
    assert len(train) == 30 and len(test) == 20 and train.note == test.note == ""
    assert torch.equal(torch.cat([train.images, test.images]), both.images)
    assert set(test.files) == {TEST_IMAGES, TEST_LABELS}


def test_only_test_files_are_used_with_a_note(tmp_path):
    d = write_idx_dataset(tmp_path / "d", n_train=0, n_test=20)
    ds = load_dataset(data_dir=d, download=False)
    assert len(ds) == 20
    assert "only the test files" in ds.note and str(d) in ds.note and "20 images instead of 60,020" in ds.note
    with pytest.raises(UserError) as excinfo:
        load_dataset(data_dir=d, split="train", download=False)
    one_line_error(excinfo, TRAIN_IMAGES, TRAIN_LABELS, str(d))


def test_only_train_files_are_used_with_a_note(tmp_path):
    d = write_idx_dataset(tmp_path / "d", n_train=20, n_test=0)
    ds = load_dataset(data_dir=d, download=False)
    assert len(ds) == 20 and "only the train files" in ds.note


def test_limit_keeps_the_first_images(tmp_path):
    d = write_idx_dataset(tmp_path / "d", n_train=30, n_test=20)
    full = load_dataset(data_dir=d, download=False)
    ds = load_dataset(data_dir=d, limit=35, download=False)
    assert torch.equal(ds.images, full.images[:35]) and torch.equal(ds.labels, full.labels[:35])
    assert ds.note == ""
    big = load_dataset(data_dir=d, limit=1000, download=False)
    assert len(big) == 50 and "1,000" in big.note


def test_missing_dir_and_empty_dir(tmp_path):
    with pytest.raises(UserError) as excinfo:
        load_dataset(data_dir=tmp_path / "nope", download=False)
    one_line_error(excinfo, str(tmp_path / "nope"), "does not exist", *FILE_NAMES)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as excinfo:
        load_dataset(data_dir=tmp_path / "empty", download=False)
    one_line_error(excinfo, str(tmp_path / "empty"), *FILE_NAMES)


def test_half_a_pair_is_an_error(tmp_path):
    d = write_idx_dataset(tmp_path / "d", n_train=0, n_test=10)
    (d / TEST_LABELS).unlink()
    with pytest.raises(UserError) as excinfo:
        load_dataset(data_dir=d, download=False)
    one_line_error(excinfo, TEST_IMAGES, TEST_LABELS)


def test_image_and_label_counts_must_match(tmp_path):
    d = write_idx_dataset(tmp_path / "d", n_train=0, n_test=10)
    write_idx_labels(d / TEST_LABELS, np.zeros(9, dtype=np.uint8))
    with pytest.raises(UserError) as excinfo:
        load_dataset(data_dir=d, download=False)
    one_line_error(excinfo, str(d / TEST_IMAGES), str(d / TEST_LABELS), "10 images", "9 labels")


def test_corrupt_file_in_a_dataset_names_it(tmp_path):
    d = write_idx_dataset(tmp_path / "d", n_train=10, n_test=10)
    path = d / TRAIN_IMAGES
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(UserError) as excinfo:
        load_dataset(data_dir=d, download=False)
    one_line_error(excinfo, str(path))


@pytest.mark.parametrize("kwargs,needle", [
    ({"name": "cifar"}, "fashion-mnist"),
    ({"split": "val"}, "train"),
    ({"limit": 0}, "limit"),
    ({"limit": 2.5}, "limit"),
])
def test_bad_arguments(tmp_path, kwargs, needle):
    with pytest.raises(UserError) as excinfo:
        load_dataset(data_dir=tmp_path, download=False, **kwargs)
    one_line_error(excinfo, needle)


def test_no_data_offline_says_where_to_put_the_files(tmp_path):
    with pytest.raises(UserError) as excinfo:
        load_dataset(download=False)
    one_line_error(excinfo, str(tmp_path / "cache" / "mnist"), "--data", *FILE_NAMES)


def test_cache_uses_the_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("CPPN_VIDEO_DATA", str(tmp_path / "elsewhere"))
    assert data.data_cache_dir("mnist") == tmp_path / "elsewhere" / "mnist"
    monkeypatch.delenv("CPPN_VIDEO_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.data_cache_dir("fashion-mnist") == tmp_path / "xdg" / "cppn-video" / "fashion-mnist"


def test_cache_files_must_match_the_published_hashes(tmp_path):
    # Synthetic .gz files in the cache are not the published MNIST files: refused.
    write_idx_dataset(tmp_path / "cache" / "mnist", n_train=10, n_test=10)
    with pytest.raises(UserError) as excinfo:
        load_dataset(download=False)
    one_line_error(excinfo, TRAIN_IMAGES, "SHA-256", "delete it")


class FakeResponse(io.BytesIO):
    def __init__(self, payload):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def _serve(files, fail_hosts=()):
    """A stand-in for urlopen serving `files` (name -> bytes); hosts in fail_hosts are unreachable."""
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        assert timeout is not None and timeout <= 60
        if any(h in url for h in fail_hosts):
            raise urllib.error.URLError("no route to host")
        return FakeResponse(files[url.rsplit("/", 1)[1]])
    return urlopen, calls


def test_download_tries_the_next_mirror_and_verifies(tmp_path, monkeypatch):
    src = write_idx_dataset(tmp_path / "src", n_train=20, n_test=10)
    files = {n: (src / n).read_bytes() for n in FILE_NAMES}
    for n, payload in files.items():  # pretend the synthetic files are the published ones
        monkeypatch.setitem(MNIST_SHA256, n, hashlib.sha256(payload).hexdigest())
    urlopen, calls = _serve(files, fail_hosts=["amazonaws"])
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    seen = []
    ds = load_dataset(progress=lambda name, done, total: seen.append((name, done, total)))

    cache = tmp_path / "cache" / "mnist"
    assert len(ds) == 30 and ds.note == "" and ds.root == str(cache)
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILE_NAMES)  # no temp files left
    assert len(calls) == 8 and sum("googleapis" in c for c in calls) == 4
    assert {s[0] for s in seen} == set(FILE_NAMES) and all(done == total for _, done, total in seen[-1:])
    # Second call: everything is cached, nothing is fetched.
    load_dataset()
    assert len(calls) == 8


def test_download_with_a_wrong_hash_is_deleted_and_refused(tmp_path, monkeypatch):
    urlopen, _ = _serve({n: b"not mnist at all" for n in FILE_NAMES})
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(UserError) as excinfo:
        load_dataset(split="test")
    one_line_error(excinfo, TEST_IMAGES, "SHA-256", "--data")
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_offline_download_says_where_to_put_the_files(tmp_path, monkeypatch):
    urlopen, calls = _serve({}, fail_hosts=["amazonaws", "googleapis"])
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    with pytest.raises(UserError) as excinfo:
        load_dataset()
    cache = tmp_path / "cache" / "mnist"
    one_line_error(excinfo, str(cache), "--data", "could not be downloaded", "no route to host", *FILE_NAMES)
    assert len(calls) == 2 and list(cache.iterdir()) == []


def test_offline_with_test_files_in_cache_uses_them(tmp_path, monkeypatch):
    src = write_idx_dataset(tmp_path / "cache" / "mnist", n_train=0, n_test=10, gz=False)
    urlopen, _ = _serve({}, fail_hosts=["amazonaws", "googleapis"])
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    ds = load_dataset()
    assert len(ds) == 10 and "only the test files" in ds.note and "download failed" in ds.note
    assert ds.root == str(src)


def test_fashion_mnist_is_found_in_the_system_dir_before_the_cache(tmp_path, monkeypatch):
    system = write_idx_dataset(tmp_path / "usr-share", n_train=10, n_test=10, seed=5)
    spec = dataclasses.replace(data.DATASETS["fashion-mnist"], system_dirs=(str(system),))
    monkeypatch.setitem(data.DATASETS, "fashion-mnist", spec)
    ds = load_dataset("fashion-mnist")
    assert ds.name == "fashion-mnist" and len(ds) == 20 and ds.root == str(system) and ds.note == ""

    monkeypatch.setitem(data.DATASETS, "fashion-mnist",
                        dataclasses.replace(spec, system_dirs=(str(tmp_path / "absent"),)))
    with pytest.raises(UserError) as excinfo:
        load_dataset("fashion-mnist")
    one_line_error(excinfo, str(tmp_path / "absent"), str(tmp_path / "cache" / "fashion-mnist"), "--data")


def test_default_fashion_mnist_location_is_debians():
    assert data.DATASETS["fashion-mnist"].system_dirs == ("/usr/share/datasets/fashion-mnist",)


# ----------------------------------------------------------------------------- real MNIST

def test_real_mnist_full_set():
    """The complete set in ../shared/data/mnist: 70,000 digits, the published files' hashes, no note."""
    if not (REAL_MNIST / TRAIN_IMAGES).is_file():
        pytest.skip(f"real MNIST files not present at {REAL_MNIST} (only on the project's machines)")
    ds = load_dataset(data_dir=REAL_MNIST, download=False)
    assert ds.images.shape == (70_000, 28, 28) and ds.labels.shape == (70_000,)
    assert ds.files == {name: MNIST_SHA256[name] for name in (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)}
    assert ds.note == ""
    # The training labels' class counts as published (../shared/data/README.md).
    train_counts = torch.bincount(ds.labels[:60_000], minlength=10).tolist()
    assert train_counts == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    test = load_dataset(data_dir=REAL_MNIST, split="test", download=False)
    assert len(test) == 10_000 and torch.equal(test.images, ds.images[60_000:])
    # White digits on black: mostly-zero background, bright strokes.
    assert (ds.images == 0).float().mean() > 0.7 and ds.images.max() == 255


# ----------------------------------------------------------------------------- synthetic data is learnable

def test_synthetic_digits_are_learnable_by_nearest_centroid(tmp_path):
    d = write_idx_dataset(tmp_path / "d", n_train=300, n_test=200, seed=0)
    train = load_dataset(data_dir=d, split="train", download=False)
    test = load_dataset(data_dir=d, split="test", download=False)
    x_train = center_crops(train.images).flatten(1)  # [300, 676]
    x_test = center_crops(test.images).flatten(1)    # [200, 676]
    centroids = torch.stack([x_train[train.labels == k].mean(0) for k in range(10)])  # [10, 676]
    pred = torch.cdist(x_test, centroids).argmin(1)
    assert (pred == test.labels).float().mean() > 0.9
    again = write_idx_dataset(tmp_path / "again", 300, 200, seed=0)
    assert (again / TRAIN_IMAGES).read_bytes() == (d / TRAIN_IMAGES).read_bytes()  # same seed, same bytes


# ----------------------------------------------------------------------------- crops and batches

def test_random_crops_shape_range_and_determinism():
    images = torch.randint(0, 256, (16, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    a = random_crops(images, torch.Generator().manual_seed(7))
    b = random_crops(images, torch.Generator().manual_seed(7))
    c = random_crops(images, torch.Generator().manual_seed(8))
    assert a.shape == (16, 26, 26) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_crops_cover_every_offset_and_match_the_source_slice():
    B = 900
    images = torch.randint(0, 256, (B, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    crops = random_crops(images, torch.Generator().manual_seed(2))
    counts = {}
    for i in range(B):
        matches = [(dy, dx) for dy in range(3) for dx in range(3)
                   if torch.equal(crops[i], images[i, dy:dy + 26, dx:dx + 26].float() / 255)]
        assert len(matches) == 1, f"crop {i} matches {matches}"
        counts[matches[0]] = counts.get(matches[0], 0) + 1
    assert len(counts) == 9
    assert min(counts.values()) > B / 9 / 2  # roughly uniform


def test_center_crops():
    images = torch.randint(0, 256, (4, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    crops = center_crops(images)
    assert crops.dtype == torch.float32 and torch.equal(crops, images[:, 1:27, 1:27].float() / 255)
    with pytest.raises(ValueError):
        center_crops(images.float())
    with pytest.raises(ValueError):
        random_crops(images, torch.Generator(), size=30)


def test_epoch_batches():
    batches = epoch_batches(10, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    again = epoch_batches(10, 4, torch.Generator().manual_seed(0))
    assert all(torch.equal(x, y) for x, y in zip(batches, again))
    other = epoch_batches(1000, 1000, torch.Generator().manual_seed(1))
    assert not torch.equal(other[0], epoch_batches(1000, 1000, torch.Generator().manual_seed(0))[0])
    assert epoch_batches(0, 4, torch.Generator()) == []
    assert [len(b) for b in epoch_batches(8, 4, torch.Generator())] == [4, 4]
