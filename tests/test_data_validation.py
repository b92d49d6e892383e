"""Data that makes no sense is refused with one clear line; junk files are skipped and counted; a bound
source that cannot be read is an error; genuine datasets are named by their content."""
import hashlib
import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from harness import plugin
from harness.run import data, formats, sources as sources_module
from harness.run.data import DataError, Sources


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _tree(classes=("a", "b"), n=(2, 1), size=(8, 8), test_size=None, test_classes=None) -> dict[str, bytes]:
    """rel path -> bytes of an ImageFolder tree; image i of class k is filled with 10 * k + i."""
    files = {}
    for split, count, names, (h, w) in (("train", n[0], classes, size),
                                        ("test", n[1], test_classes or classes, test_size or size)):
        for k, cls in enumerate(names):
            for i in range(count):
                files[f"{split}/{cls}/{i}.png"] = _png(np.full((h, w, 3), 10 * k + i, np.uint8))
    return files


def _write(tmp_path, files: dict[str, bytes], kind: str = "zip", stem: str = "toy"):
    """The tree as a .zip or a folder under tmp_path; returns its path."""
    if kind == "zip":
        path = tmp_path / f"{stem}.zip"
        with zipfile.ZipFile(path, "w") as zf:
            for rel, blob in files.items():
                zf.writestr(rel, blob)
        return path
    for rel, blob in files.items():
        (tmp_path / stem / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / stem / rel).write_bytes(blob)
    return tmp_path / stem


def _load(path, tmp_path, name="toy"):
    return data.load(name, Sources(bindings=((name, str(path)),), allow_download=False), tmp_path / "cache")


@pytest.fixture(autouse=True)
def fresh_memo():
    data._LOADED.clear()
    yield
    data._LOADED.clear()


# ---- sense checks, before anything is cached ------------------------------------------------------------
@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_mismatched_class_folders_name_the_classes_in_one_split_only_and_nothing_is_cached(kind, tmp_path):
    path = _write(tmp_path, _tree(classes=("a", "b", "c"), test_classes=("a", "b", "d")), kind)
    with pytest.raises(DataError, match=r"different class folders \(only in train: c; only in test: d\)"):
        _load(path, tmp_path)
    assert not list((tmp_path / "cache").rglob("*.pt"))


def test_a_single_class_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"toy.zip: only one class \('a'\) .*at least 2 classes"):
        _load(_write(tmp_path, _tree(classes=("a",))), tmp_path)


def test_one_pixel_images_are_refused(tmp_path):
    with pytest.raises(DataError, match=r"images are 1x1 px with 3 channels, below 8 px per side.*at least 8x8"):
        _load(_write(tmp_path, _tree(size=(1, 1))), tmp_path)
    assert not list((tmp_path / "cache").rglob("*.pt"))


def test_a_test_split_at_another_resolution_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"test images are 16x16 px .* training images are 8x8 px"):
        _load(_write(tmp_path, _tree(test_size=(16, 16))), tmp_path)


def test_images_of_mixed_sizes_within_a_split_name_two_files(tmp_path):
    files = _tree()
    files["train/b/0.png"] = _png(np.zeros((9, 8, 3), np.uint8))
    with pytest.raises(DataError, match=r"train images differ in size: .*toy.zip:train/a/0.png is 8x8 px with 3 "
                                        r"channels, .*toy.zip:train/b/0.png is 9x8 px"):
        _load(_write(tmp_path, files), tmp_path)


def test_idx_test_labels_that_training_lacks_are_refused(tmp_path):
    import gzip
    folder = tmp_path / "idx"
    folder.mkdir()
    x = np.zeros((4, 8, 8), np.uint8)
    for stem, arr in zip(data.IDX_FILES, (x, np.array([0, 1, 0, 1], np.uint8), x[:2], np.array([1, 7], np.uint8))):
        header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
        (folder / f"{stem}.gz").write_bytes(gzip.compress(header + arr.tobytes()))
    with pytest.raises(DataError, match="test labels 7 never occur in the training split"):
        _load(folder, tmp_path)


# ---- junk is skipped and counted; a broken image is named ----------------------------------------------
@pytest.mark.parametrize("kind", ["zip", "folder"])
def test_macos_windows_and_text_files_are_skipped_and_counted(kind, tmp_path):
    files = _tree()
    files.update({"__MACOSX/train/a/._0.png": b"\x00\x05\x16\x07 resource fork",  # an image's name, not an image
                  "train/a/.DS_Store": b"\x00\x00\x00\x01Bud1", "test/b/Thumbs.db": b"\xd0\xcf\x11\xe0",
                  "train/b/README.txt": b"these are b images\n", "README.md": b"# toy\n"})
    ds = _load(_write(tmp_path, files, kind), tmp_path)
    assert ds.train_x.shape == (4, 3, 8, 8) and ds.test_x.shape == (2, 3, 8, 8) and ds.num_classes == 2
    assert ds.skipped_files == 5
    assert len(ds.notes) == 1 and ds.notes[0].startswith("skipped 5 files that are not training images (")
    assert "1 under __MACOSX/" in ds.notes[0] and "1 Thumbs.db" in ds.notes[0] and "2 not an image" in ds.notes[0]
    data._LOADED.clear()
    again = _load(_write(tmp_path, files, kind), tmp_path)  # from the decoded-data cache: the count survives
    assert again.skipped_files == 5 and again.notes == ds.notes


def test_a_truncated_png_is_named_as_corrupt(tmp_path):
    files = _tree()
    files["train/b/1.png"] = files["train/b/1.png"][:40]
    with pytest.raises(DataError, match=r"toy.zip:train/b/1.png is not a readable image \(.*\): the file is "
                                        r"corrupt; replace it or delete it"):
        _load(_write(tmp_path, files), tmp_path)


@pytest.mark.parametrize("rel, why", [
    ("train/cat/0001.png", None), ("data/test/cat/x.JPG", None),
    ("__MACOSX/train/cat/._0001.png", "under __MACOSX/"), ("train/cat/.DS_Store", "hidden"),
    ("train/cat/Thumbs.db", "Thumbs.db"), ("train/cat/notes.txt", "not an image"),
    ("train/0001.png", "outside train/<class>/ and test/<class>/"),
])
def test_which_files_are_training_images(rel, why):
    assert formats.skip_reason(rel) == why


# ---- the decoded-data cache is never trusted blindly ---------------------------------------------------
def test_a_cache_file_that_fails_validation_or_is_garbage_is_decoded_again(tmp_path, monkeypatch):
    path = _write(tmp_path, _tree())
    first = _load(path, tmp_path)
    cached, = (tmp_path / "cache" / "data").glob("*.pt")
    entry = torch.load(cached, weights_only=True)
    entry["train_y"] = torch.zeros_like(entry["train_y"])  # intact file, nonsense content: one class
    data.store.save_tensors(cached, entry)
    decoded = []
    real = formats.read_zip
    monkeypatch.setattr(formats, "read_zip", lambda p: decoded.append(p) or real(p))
    for damage in (None, b"garbage"):
        if damage:
            cached.write_bytes(damage)
        data._LOADED.clear()
        second = _load(path, tmp_path)
        assert torch.equal(second.train_y, first.train_y) and torch.equal(second.train_x, first.train_x)
    assert len(decoded) == 2


def test_moving_an_image_to_another_class_folder_changes_the_fingerprint(tmp_path):
    path = _write(tmp_path, _tree(n=(2, 1)), "folder")
    before = _load(path, tmp_path)
    (path / "train/a/1.png").rename(path / "train/b/1.png")  # same name and bytes, another label
    data._LOADED.clear()
    after = _load(path, tmp_path)
    assert after.fingerprint != before.fingerprint and after.train_y.tolist() == [0, 1, 1]


# ---- bound sources must be readable; substitution only when nothing wanted is at hand -------------------
def test_a_bound_path_that_does_not_exist_is_an_error_even_where_substitution_is_allowed(tmp_path):
    sources = Sources(bindings=(("cifar10", str(tmp_path / "nonexistent.zip")),), data_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"data source cifar10=.*nonexistent.zip does not exist: fix the path"):
        data.resolve(("cifar10",), sources, substitute=True)


def test_a_bound_file_that_is_not_a_zip_is_an_error_at_resolution(tmp_path):
    (tmp_path / "c.zip").write_bytes(b"PK\x03\x04 not a zip")
    sources = Sources(bindings=(("cifar10", str(tmp_path / "c.zip")),), data_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"cifar10=.*c.zip is not a valid zip file.*replace it"):
        data.resolve(("cifar10",), sources, substitute=True)


def test_substitution_happens_only_when_nothing_wanted_is_bound_and_says_what_replaced_what(tmp_path):
    toy = str(_write(tmp_path, _tree()))
    bound = data.resolve(("cifar10",), Sources(bindings=(("cifar10", toy),), data_dir=str(tmp_path)), True)
    assert bound == data.Resolution(("cifar10",), substituted=False, note="")
    other = data.resolve(("cifar10", "cifar100"), Sources(bindings=(("toy", toy),), data_dir=str(tmp_path)), True)
    assert other.names == ("toy",) and other.substituted
    assert other.note == (f"ran on toy in place of cifar10, cifar100 (not bound, not found under {tmp_path}): "
                          f"bind the real data with --data-source cifar10=PATH")


def test_without_substitution_every_wanted_dataset_must_be_at_hand(tmp_path, monkeypatch):
    toy = str(_write(tmp_path, _tree()))
    sources = Sources(bindings=(("cifar10", toy),), data_dir=str(tmp_path), allow_download=False)
    assert data.resolve(("cifar10",), sources, False).names == ("cifar10",)
    with pytest.raises(DataError, match=r"cifar100 not found under .* put torchvision's cifar100 files "
                                        r"\(cifar-100-python/\) under --data-dir, or bind a copy with "
                                        r"--data-source cifar100=PATH"):
        data.resolve(("cifar10", "cifar100"), sources, False)
    monkeypatch.setattr(sources_module, "DEBIAN_FASHION_MNIST", tmp_path / "none")
    with pytest.raises(DataError, match="cifar100 not found under"):  # nothing at all to substitute
        data.resolve(("cifar100",), Sources(data_dir=str(tmp_path), allow_download=False), True)


# ---- genuine data is named by its content, whatever the container --------------------------------------
def _indexed_tree(labels: list[int], pixels: np.ndarray) -> dict[str, bytes]:
    """Image i (original index) in class folder labels[i], named by its index, as the CIFAR-10 PNG zip."""
    return {f"{split}/c{labels[i]}/{i:05d}.png": _png(pixels[i]) for split in ("train", "test")
            for i in range(len(labels))}


def test_a_dataset_whose_content_is_a_known_original_is_named_after_it(tmp_path, monkeypatch):
    labels = [1, 0, 1, 0, 0, 1]  # interleaved: the class folders' order is not the original order
    pixels = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    fingerprints = [hashlib.sha256(pixels.tobytes()).hexdigest(),
                    hashlib.sha256(np.array(labels, np.uint8).tobytes()).hexdigest()] * 2
    monkeypatch.setattr(data, "GENUINE", {"tinyset": tuple(fingerprints)})
    genuine = _write(tmp_path, _indexed_tree(labels, pixels), stem="tinyset-png")
    ds = _load(genuine, tmp_path)
    assert ds.name == "tinyset" and "content identical to the original tinyset" in ds.notes[-1]
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1]  # the arrays stay in folder order
    data._LOADED.clear()
    assert _load(genuine, tmp_path).name == "tinyset"  # also when read back from the decoded-data cache

    lossy = pixels.copy()
    lossy[0, 0, 0, 0] ^= 1  # one level of one pixel: a lossy copy is not the original
    lossy_copy = _write(tmp_path, _indexed_tree(labels, lossy), stem="tinyset-jpeg")
    assert _load(lossy_copy, tmp_path).name == "tinyset-jpeg"  # named by its file, as cifar10-jpeg75


def test_a_known_name_bound_to_other_content_is_not_reported_as_the_original(tmp_path):
    """A zip called cifar10.zip whose images are not CIFAR-10's reads `cifar10-unverified`, so a case on it
    counts as bound in place of cifar10 (reduced); a name the suite has no reference for keeps its own."""
    files = _tree(size=(32, 32))
    assert _load(_write(tmp_path, files, stem="cifar10"), tmp_path, name="cifar10").name == "cifar10-unverified"
    data._LOADED.clear()
    assert _load(_write(tmp_path, files, stem="mine"), tmp_path, name="cifar10").name == "mine"
    data._LOADED.clear()
    assert _load(_write(tmp_path, files, stem="toy"), tmp_path).name == "toy"


def test_an_original_without_a_copy_here_is_recognised_by_its_published_facts(tmp_path, monkeypatch):
    """CIFAR-100's check, on a stand-in whose facts are made up the same way: split sizes, 3x32x32, equal
    classes, and the training pixels' per-channel sum and sum of squares; one level of one pixel breaks it."""
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    files = {f"train/c{i % 2}/{i}.png": _png(train[i]) for i in range(4)}
    files.update({f"test/c{i}/{i}.png": _png(np.full((32, 32, 3), i, np.uint8)) for i in range(2)})
    x = train.transpose(3, 0, 1, 2).reshape(3, -1).astype(np.int64)
    monkeypatch.setattr(data, "PUBLISHED", {"cifar100": ((4, 2), 2, tuple(x.sum(1)), tuple((x * x).sum(1)))})
    ds = _load(_write(tmp_path, files, stem="cifar100-png"), tmp_path, name="cifar100")
    assert ds.name == "cifar100" and "content identical to the original cifar100" in ds.notes[-1]
    train[0, 0, 0, 0] ^= 1
    files["train/c0/0.png"] = _png(train[0])
    data._LOADED.clear()
    assert _load(_write(tmp_path, files, stem="cifar100"), tmp_path, name="cifar100").name == "cifar100-unverified"


def test_cifar10s_published_mean_and_std_are_its_pixel_sums(real_dataset_name, sources, pytestconfig):
    """The derivation behind PUBLISHED, checked where an original is at hand: CIFAR-10's published per-channel
    mean and std (8 digits) are those of its training pixels' sums and sums of squares."""
    ds = data.load(real_dataset_name, sources, plugin.settings_of(pytestconfig).cache_dir)
    if ds.name != "cifar10":
        pytest.skip("needs the lossless CIFAR-10 bound: --data-source cifar10=PATH/cifar10-png.zip")
    counts, levels = data.levels_histogram(ds.train_x), torch.arange(256)
    n, sums, squares = counts.sum(1), counts @ levels, counts @ levels ** 2
    mean = sums.double() / n / 255
    std = ((squares - sums.double() ** 2 / n) / (n - 1)).sqrt() / 255
    assert mean.tolist() == pytest.approx([0.49139968, 0.48215841, 0.44653091], abs=5e-9)
    assert std.tolist() == pytest.approx([0.24703223, 0.24348513, 0.26158784], abs=5e-9)


# ---- image modes, linked folders, junk that comes and goes ---------------------------------------------
def _png16(arr: np.ndarray) -> bytes:
    """A 16-bit PNG (grey: H x W; RGB: H x W x 3), written by hand: Pillow writes 16-bit grey only."""
    import struct
    import zlib
    h, w = arr.shape[:2]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    header = struct.pack(">IIBBBBB", w, h, 16, 2 if arr.ndim == 3 else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_images_keep_their_high_byte_and_do_not_turn_white(channels, tmp_path):
    rng = np.random.default_rng(0)
    shape = (8, 8) if channels == 1 else (8, 8, 3)
    images = {f"{split}/{cls}/{i}.png": rng.integers(0, 65536, shape) for split in ("train", "test")
              for cls in ("a", "b") for i in range(2)}
    ds = _load(_write(tmp_path, {rel: _png16(a) for rel, a in images.items()}), tmp_path)
    assert ds.channels == channels
    first = images["train/a/0.png"] >> 8  # the high byte: as Pillow itself reads 16-bit colour
    assert torch.equal(ds.train_x[0], torch.from_numpy(first.astype(np.uint8).reshape(8, 8, channels)).permute(2, 0, 1))
    assert (ds.train_x == 255).float().mean() < 0.05  # Pillow's convert("RGB") clips 16-bit grey to white


def test_32_bit_integer_images_are_refused_naming_the_file(tmp_path):
    files = _tree()
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 70000, np.int32)).save(buf, format="TIFF")
    files["train/a/0.tif"] = buf.getvalue()
    with pytest.raises(DataError, match=r"toy.zip:train/a/0.tif is a 32-bit integer image \(mode I\), which has "
                                        r"no 8-bit range: convert the images to 8-bit PNG"):
        _load(_write(tmp_path, files), tmp_path)


def test_symlinked_class_folders_are_followed_and_a_link_loop_is_not(tmp_path):
    elsewhere = _write(tmp_path, _tree(), "folder", stem="elsewhere")
    tree = tmp_path / "tree"
    for split in ("train", "test"):
        (tree / split).mkdir(parents=True)
        for cls in ("a", "b"):
            (tree / split / cls).symlink_to(elsewhere / split / cls)
    (tree / "train" / "loop").symlink_to(tree)  # a link back up: listed once, not forever (and not a class)
    ds = _load(tree, tmp_path)
    direct = _load(elsewhere, tmp_path, name="direct")
    assert torch.equal(ds.train_x, direct.train_x) and torch.equal(ds.train_y, direct.train_y)
    assert ds.num_classes == 2


def test_the_skipped_file_count_follows_the_folder_not_the_decoded_cache(tmp_path):
    folder = _write(tmp_path, {**_tree(), "train/a/notes.txt": b"x"}, "folder")
    assert _load(folder, tmp_path).skipped_files == 1
    (folder / "train/a/notes.txt").unlink()  # the same images, so the same fingerprint and cache entry
    data._LOADED.clear()
    again = _load(folder, tmp_path)
    assert again.skipped_files == 0 and again.notes == ()
