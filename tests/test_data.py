"""Data: every source format, the decoded-data cache, clear errors, and device-side augmentation."""
import gzip
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from harness.run import data
from harness.run.data import DataError, Sources


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")  # lossless: pixels come back exactly
    return buf.getvalue()


@pytest.fixture
def image_zip(tmp_path):
    """A 2-class ImageFolder zip with known pixels: class 'b' images are all 200, class 'a' all 10."""
    path = tmp_path / "toy-set.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for split, n in (("train", 3), ("test", 2)):
            for cls, value in (("b", 200), ("a", 10)):
                for i in range(n):
                    zf.writestr(f"{split}/{cls}/{i}.png", _png(np.full((8, 8, 3), value + i, np.uint8)))
    return path


@pytest.fixture(autouse=True)
def fresh_memo():
    data._LOADED.clear()
    yield
    data._LOADED.clear()


def test_image_zip_loads_exact_pixels_with_sorted_class_numbers(image_zip, tmp_path):
    ds = data.load("toy", Sources(bindings=(("toy", str(image_zip)),)), tmp_path / "cache")
    assert ds.name == "toy-set"  # the file's stem names what was used (e.g. cifar10-jpeg75)
    assert ds.train_x.shape == (6, 3, 8, 8) and ds.train_x.dtype == torch.uint8
    assert ds.test_x.shape == (4, 3, 8, 8) and ds.num_classes == 2
    for x, y in zip(ds.train_x, ds.train_y):
        assert x.unique().numel() == 1 and (x[0, 0, 0] >= 200) == (y == 1)  # 'a' -> 0, 'b' -> 1


def test_decoded_data_is_cached_by_content(image_zip, tmp_path, monkeypatch):
    sources = Sources(bindings=(("toy", str(image_zip)),))
    first = data.load("toy", sources, tmp_path / "cache")
    data._LOADED.clear()
    monkeypatch.setattr(data.formats, "read_zip", lambda path: pytest.fail("decoded twice"))
    second = data.load("toy", sources, tmp_path / "cache")
    assert torch.equal(first.train_x, second.train_x) and first.fingerprint == second.fingerprint


def test_corrupt_zip_names_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataError, match="broken.zip.*replace it"):
        data.load("x", Sources(bindings=(("x", str(bad)),)), tmp_path / "cache")


def test_missing_bound_path_names_the_path(tmp_path):
    with pytest.raises(DataError, match="does not exist.*--data-source"):
        data.load("cifar10", Sources(bindings=(("cifar10", str(tmp_path / "nope.zip")),)), tmp_path)


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'imagenet7'.*cifar10"):
        data.load("imagenet7", Sources(data_dir=str(tmp_path)), tmp_path)


def test_cifar_without_files_or_network_says_where_to_put_them(tmp_path):
    with pytest.raises(DataError, match="cifar100 not found under .*--data-source cifar100=PATH"):
        data.load("cifar100", Sources(data_dir=str(tmp_path), allow_download=False), tmp_path)


def _idx(path, arr: np.ndarray):
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    path.write_bytes(gzip.compress(header + arr.tobytes()))


def test_idx_folder_loads_grayscale(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 8, 8), dtype=np.uint8)
    folder = tmp_path / "my-idx"
    folder.mkdir()
    for stem, arr in zip(data.IDX_FILES, (imgs, np.arange(5, dtype=np.uint8), imgs[:2], np.arange(2, dtype=np.uint8))):
        _idx(folder / f"{stem}.gz", arr)
    ds = data.load("cifar10", Sources(bindings=(("cifar10", str(folder)),)), tmp_path / "cache")
    assert ds.train_x.shape == (5, 1, 8, 8) and torch.equal(ds.train_x[:, 0], torch.from_numpy(imgs))
    assert ds.num_classes == 5
    assert ds.name == "my-idx"  # the results say which files were used, not the name they were bound to


def test_truncated_idx_file_is_reported(tmp_path):
    for stem in data.IDX_FILES:
        _idx(tmp_path / f"{stem}.gz", np.zeros((2, 3, 3), np.uint8))
    raw = gzip.decompress((tmp_path / f"{data.IDX_FILES[0]}.gz").read_bytes())[:-5]
    (tmp_path / f"{data.IDX_FILES[0]}.gz").write_bytes(gzip.compress(raw))
    with pytest.raises(DataError, match="truncated or corrupt"):
        data.load("fm", Sources(bindings=(("fm", str(tmp_path)),)), tmp_path / "cache")


def test_real_dataset_has_the_expected_shape(real_dataset):
    ds = real_dataset
    assert ds.train_x.dtype == torch.uint8 and ds.train_x.shape[1:] in ((3, 32, 32), (1, 28, 28))
    assert ds.num_classes == 10 and set(ds.train_y.tolist()) <= set(range(10))
    assert ds.name in ("cifar10-jpeg75", "cifar10", "fashion-mnist")


@pytest.mark.skipif(not data._idx_folder(data.DEBIAN_FASHION_MNIST), reason="dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_is_found_without_configuration(tmp_path):
    sources = Sources(data_dir=str(tmp_path))
    assert data.first_reachable(("cifar10",), sources) == "fashion-mnist"
    ds = data.load("fashion-mnist", sources, tmp_path / "cache")
    assert ds.train_x.shape == (60000, 1, 28, 28) and ds.test_x.shape == (10000, 1, 28, 28)


def test_augment_crops_and_flips_within_the_padded_image():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.int64).remainder(251).add(1).to(torch.uint8).view(2, 3, 8, 8)
    out = data.augment(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (2,) * 4)
    for i in range(len(x)):
        windows = [w for dy in range(5) for dx in range(5) for w in
                   (padded[i, :, dy:dy + 8, dx:dx + 8], padded[i, :, dy:dy + 8, dx:dx + 8].flip(-1))]
        assert any(torch.equal(out[i], w) for w in windows)
    same = data.augment(x, 2, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)  # seeded: a resumed run draws the same crops


def test_fixed_subset_is_the_same_everywhere():
    assert torch.equal(data.fixed_subset(100, 10, 0), data.fixed_subset(100, 10, 0))
    assert not torch.equal(data.fixed_subset(100, 10, 0), data.fixed_subset(100, 10, 1))
    assert len(data.fixed_subset(100, None, 0)) == 100
