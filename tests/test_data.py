"""Tests for siftdata.data: Fashion-MNIST loading, splits, label noise and WithIndex."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from siftdata.data import (
    FASHION_MNIST_CLASSES,
    FMNIST_CONFUSABLE,
    FMNIST_ENV_VAR,
    WithIndex,
    asymmetric_noise,
    find_fashion_mnist_dir,
    load_fashion_mnist,
    pool_holdout_split,
    read_idx,
    symmetric_noise,
    to_float_images,
)
from siftdata.data import fmnist as fmnist_module

STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as IDX: zero bytes, dtype 0x08, ndim, big-endian sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_fake_dir(directory: Path, *, n_train: int = 12, n_test: int = 5, gz: bool = True) -> Path:
    """Write a tiny fake Fashion-MNIST into ``directory``; pixel (0, 0) of image i is i."""
    directory.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("test", n_test)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = np.arange(n)
        write_idx(directory / (STEMS[split][0] + suffix), images)
        write_idx(directory / (STEMS[split][1] + suffix), np.arange(n, dtype=np.uint8) % 10)
    return directory


# --- real data -------------------------------------------------------------------------------


@pytest.mark.parametrize(("split", "n"), [("train", 60_000), ("test", 10_000)])
def test_real_fashion_mnist(split, n, monkeypatch):
    monkeypatch.delenv(FMNIST_ENV_VAR, raising=False)
    images, labels = load_fashion_mnist(split)
    assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert torch.equal(labels.unique(), torch.arange(10))
    assert len(FASHION_MNIST_CLASSES) == 10
    again = load_fashion_mnist(split)
    assert again[0] is images  # cached


def test_to_float_images_normalises_train_set(monkeypatch):
    monkeypatch.delenv(FMNIST_ENV_VAR, raising=False)
    images, _ = load_fashion_mnist("train")
    x = to_float_images(images[:10_000])
    assert x.shape == (10_000, 1, 28, 28) and x.dtype == torch.float32
    assert abs(float(x.mean())) < 0.02 and abs(float(x.std()) - 1.0) < 0.02


def test_to_float_images_rejects_float():
    with pytest.raises(ValueError, match="uint8"):
        to_float_images(torch.zeros(2, 28, 28))


# --- finding the files -----------------------------------------------------------------------


def test_find_order_root_beats_env_beats_default(tmp_path, monkeypatch):
    root, env = make_fake_dir(tmp_path / "root"), make_fake_dir(tmp_path / "env")
    monkeypatch.setattr(fmnist_module, "DEFAULT_FMNIST_DIR", str(make_fake_dir(tmp_path / "d")))
    monkeypatch.setenv(FMNIST_ENV_VAR, str(env))
    assert find_fashion_mnist_dir(root) == root
    assert find_fashion_mnist_dir() == env
    monkeypatch.delenv(FMNIST_ENV_VAR)
    assert find_fashion_mnist_dir() == tmp_path / "d"


def test_find_accepts_uncompressed_and_loads_fake(tmp_path):
    root = make_fake_dir(tmp_path, n_train=7, gz=False)
    images, labels = load_fashion_mnist("train", root=root)
    assert images.shape == (7, 28, 28) and labels.tolist() == list(range(7))
    assert images[:, 0, 0].tolist() == list(range(7))


def test_missing_everywhere_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv(FMNIST_ENV_VAR, raising=False)
    monkeypatch.setattr(fmnist_module, "DEFAULT_FMNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError) as info:
        find_fashion_mnist_dir()
    assert "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist" in str(info.value)
    assert FMNIST_ENV_VAR in str(info.value)


def test_explicit_root_or_env_lacking_files_is_named(tmp_path, monkeypatch):
    partial = make_fake_dir(tmp_path / "partial")
    (partial / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="root .*t10k-labels-idx1-ubyte"):
        find_fashion_mnist_dir(partial)
    monkeypatch.setenv(FMNIST_ENV_VAR, str(partial))
    with pytest.raises(FileNotFoundError, match=FMNIST_ENV_VAR):
        find_fashion_mnist_dir()


def test_count_mismatch_raises(tmp_path):
    root = make_fake_dir(tmp_path)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="counts must agree"):
        load_fashion_mnist("test", root=root)


def test_bad_split_raises(tmp_path):
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("val", root=make_fake_dir(tmp_path))


# --- IDX parsing -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_read_idx_roundtrip(tmp_path, name):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / name, array))
    assert out.dtype == np.uint8 and np.array_equal(out, array)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:-5], "truncated or corrupt"),
        (lambda b: b + b"\x00", "truncated or corrupt"),
        (lambda b: b"\x01" + b[1:], "magic"),
        (lambda b: b[:2] + b"\x0d" + b[3:], "dtype"),
        (lambda b: b[:2], "too short"),
        (lambda b: b[:6], "truncated IDX header"),
    ],
)
def test_read_idx_rejects_corrupt(tmp_path, mutate, message):
    good = idx_bytes(np.zeros((3, 4), dtype=np.uint8))
    path = tmp_path / "bad.idx"
    path.write_bytes(mutate(good))
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert "bad.idx" in str(info.value)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="bad.idx.gz"):
        read_idx(path)


# --- splits ----------------------------------------------------------------------------------


def test_split_disjoint_covering_sorted_reproducible():
    pool, holdout = pool_holdout_split(100, holdout_size=30, seed=0)
    assert pool.dtype == holdout.dtype == torch.int64
    assert len(holdout) == 30 and len(pool) == 70
    assert torch.equal(torch.cat([pool, holdout]).sort().values, torch.arange(100))
    assert torch.equal(pool, pool.sort().values) and torch.equal(holdout, holdout.sort().values)
    again = pool_holdout_split(100, holdout_size=30, seed=0)
    assert torch.equal(again[0], pool) and torch.equal(again[1], holdout)
    assert not torch.equal(pool_holdout_split(100, holdout_size=30, seed=1)[1], holdout)


@pytest.mark.parametrize("holdout_size", [0, 10, -1])
def test_split_rejects_bad_holdout_size(holdout_size):
    with pytest.raises(ValueError, match=r"holdout_size must be in \[1, 9\]"):
        pool_holdout_split(10, holdout_size=holdout_size, seed=0)


def test_split_does_not_touch_global_rng():
    state = torch.get_rng_state()
    pool_holdout_split(10, holdout_size=3, seed=0)
    assert torch.equal(state, torch.get_rng_state())


# --- label noise -----------------------------------------------------------------------------


def _labels(n=1000, seed=0):
    return torch.randint(0, 10, (n,), generator=torch.Generator().manual_seed(seed))


def test_symmetric_noise_exact_count_and_flags():
    clean = _labels()
    noisy = symmetric_noise(clean, 0.37, num_classes=10, seed=3)
    assert int(noisy.is_corrupted.sum()) == 370 and noisy.rate == pytest.approx(0.37)
    assert torch.equal(noisy.is_corrupted, noisy.labels != noisy.clean_labels)
    assert torch.equal(noisy.clean_labels, clean)
    assert noisy.labels.dtype == torch.int64
    assert int(noisy.labels.min()) >= 0 and int(noisy.labels.max()) < 10


def test_symmetric_noise_reproducible_and_seed_dependent():
    clean = _labels()
    a = symmetric_noise(clean, 0.2, num_classes=10, seed=5)
    b = symmetric_noise(clean, 0.2, num_classes=10, seed=5)
    c = symmetric_noise(clean, 0.2, num_classes=10, seed=6)
    assert torch.equal(a.labels, b.labels) and not torch.equal(a.labels, c.labels)


def test_symmetric_noise_zero_rate_is_identity():
    clean = _labels(50)
    noisy = symmetric_noise(clean, 0.0, num_classes=10, seed=0)
    assert torch.equal(noisy.labels, clean) and noisy.rate == 0.0


def test_symmetric_noise_spreads_over_other_classes():
    clean = torch.zeros(9000, dtype=torch.int64)
    noisy = symmetric_noise(clean, 0.5, num_classes=10, seed=0)
    counts = torch.bincount(noisy.labels[noisy.is_corrupted], minlength=10).double()
    assert counts[0] == 0
    expected = 4500 / 9
    chi2 = float(((counts[1:] - expected) ** 2 / expected).sum())
    assert chi2 < 26.1  # 8 degrees of freedom, p = 0.001


@pytest.mark.parametrize("rate", [-0.1, 1.0, 1.5])
def test_noise_rate_out_of_range(rate):
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        symmetric_noise(_labels(10), rate, num_classes=10, seed=0)
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        asymmetric_noise(_labels(10), rate, num_classes=10, seed=0)


def test_noise_rejects_labels_out_of_range():
    with pytest.raises(ValueError, match="labels must be in"):
        symmetric_noise(torch.tensor([0, 10]), 0.5, num_classes=10, seed=0)


def test_asymmetric_noise_respects_mapping_and_class_counts():
    clean = _labels(2000)
    noisy = asymmetric_noise(clean, 0.3, num_classes=10, seed=1)
    targets = torch.tensor(FMNIST_CONFUSABLE)
    flipped = noisy.is_corrupted
    assert torch.equal(noisy.labels[flipped], targets[clean[flipped]])
    for c in range(10):
        n_c = int((clean == c).sum())
        assert int(flipped[clean == c].sum()) == round(0.3 * n_c)
    assert torch.equal(noisy.is_corrupted, noisy.labels != noisy.clean_labels)
    again = asymmetric_noise(clean, 0.3, num_classes=10, seed=1)
    assert torch.equal(again.labels, noisy.labels)


def test_asymmetric_noise_custom_dict_mapping():
    clean = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])
    noisy = asymmetric_noise(clean, 0.5, mapping={0: 1, 1: 2, 2: 0}, num_classes=3, seed=0)
    assert noisy.labels[noisy.is_corrupted].tolist() == [1, 2, 0, 0]
    assert int(noisy.is_corrupted.sum()) == 4


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({0: 1, 1: 0}, "keys"),
        ({0: 1, 1: 1, 2: 0}, "to itself"),
        ([1, 2], "one target per class"),
        ([1, 2, 5], r"mapping\[2\]"),
        ([1, 2, 2], "to itself"),
    ],
)
def test_asymmetric_noise_invalid_mapping(mapping, message):
    with pytest.raises(ValueError, match=message):
        asymmetric_noise(torch.tensor([0, 1, 2]), 0.5, mapping=mapping, num_classes=3, seed=0)


def test_default_mapping_never_maps_to_itself():
    assert len(FMNIST_CONFUSABLE) == 10
    assert all(t != c for c, t in enumerate(FMNIST_CONFUSABLE))


# --- WithIndex -------------------------------------------------------------------------------


def test_with_index_through_dataloader():
    x = torch.arange(10.0).unsqueeze(1)
    y = torch.arange(10) % 3
    loader = DataLoader(
        WithIndex(TensorDataset(x, y)),
        batch_size=4,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    seen = []
    for ids, xb, yb in loader:
        assert ids.dtype == torch.int64
        assert torch.equal(xb[:, 0], ids.float()) and torch.equal(yb, ids % 3)
        seen += ids.tolist()
    assert sorted(seen) == list(range(10))


def test_with_index_non_tuple_items():
    wrapped = WithIndex([10, 20, 30])
    assert len(wrapped) == 3 and wrapped[1] == (1, 20)
    assert WithIndex([(1, 2)])[0] == (0, 1, 2)
