"""engine.data.sources: CIFAR-10 reading, subsets, checksums, safe unpickling, augmentation, loaders."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from cifar_fixture import CLASSES, write_cifar10, write_imagefolder
from PIL import Image

from benchmarks.reference_data import reference_dataset
from engine.config import NORMALIZATIONS, DataOptions
from engine.data.imageset import ImageSet
from engine.data.loader import BatchLoader, augment_batch, normalization_tensors
from engine.data.sources import load_split
from engine.errors import DataError


def options(data_dir: str, **kw) -> DataOptions:
    kw.setdefault("skip_checksum", True)
    return DataOptions(data_dir=data_dir, **kw)


def coordinate_images(n: int) -> ImageSet:
    """Images whose pixels name their own position: channel 0 = row + 1, channel 1 = col + 1."""
    rows = torch.arange(1, 33, dtype=torch.uint8).view(32, 1).expand(32, 32)
    cols = torch.arange(1, 33, dtype=torch.uint8).view(1, 32).expand(32, 32)
    one = torch.stack([rows, cols, torch.full((32, 32), 200, dtype=torch.uint8)])
    return ImageSet(
        images=one.expand(n, 3, 32, 32).contiguous(),
        labels=torch.arange(n) % 10,
        classes=CLASSES,
        source="coordinates",
    )


# ---------------------------------------------------------------------------------- CIFAR-10


def test_cifar_fixture_loads(cifar_dir):
    train = load_split(options(cifar_dir), train=True)
    test = load_split(options(cifar_dir), train=False)
    assert len(train) == 100 and len(test) == 40
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64 and train.labels.shape == (100,)
    assert train.classes == CLASSES and test.classes == CLASSES
    assert torch.bincount(train.labels, minlength=10).tolist() == [10] * 10
    assert torch.bincount(test.labels, minlength=10).tolist() == [4] * 10
    assert not train.synthetic
    assert train.source.startswith("CIFAR-10 train split") and "100 images" in train.source
    # class-dependent images: per-class mean colours differ clearly
    means = torch.stack(
        [train.images[train.labels == c].float().mean((0, 2, 3)) for c in range(10)]
    )
    assert torch.cdist(means, means).add(torch.eye(10) * 1e3).min() > 30


def test_reader_matches_torchvision(cifar_dir, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    for train in (True, False):
        ours = load_split(options(cifar_dir), train=train)
        theirs = tv_cifar.CIFAR10(cifar_dir, train=train)
        assert np.array_equal(ours.images.permute(0, 2, 3, 1).numpy(), theirs.data)
        assert ours.labels.tolist() == list(theirs.targets)
        assert list(ours.classes) == theirs.classes


def test_bytes_keys_accepted(tmp_path, cifar_dir):
    """Files re-pickled by Python 3 (bytes keys, _codecs.encode) read the same."""
    copy = tmp_path / "cifar-10-batches-py"
    shutil.copytree(Path(cifar_dir) / "cifar-10-batches-py", copy)
    with open(copy / "test_batch", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert b"data" in batch
    with open(copy / "test_batch", "wb") as f:
        pickle.dump(batch, f, protocol=2)
    a = load_split(options(cifar_dir), train=False)
    b = load_split(options(str(tmp_path)), train=False)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_subsets_are_balanced_seeded_and_recorded(cifar_dir):
    full = load_split(options(cifar_dir), train=True)
    some = load_split(options(cifar_dir, train_subset=25), train=True)
    assert len(some) == 25
    counts = torch.bincount(some.labels, minlength=10).tolist()
    assert sorted(counts) == [2] * 5 + [3] * 5  # balanced, the remainder spread by the seed
    assert some.selection is not None and some.selection.per_class == dict(
        zip(full.classes, counts, strict=True)
    )
    assert "25 of 100 images (balanced 25, seed 0, indices " in some.source
    # each kept image is the full split's image at a recorded, sorted index
    again = load_split(options(cifar_dir, train_subset=25), train=True)
    assert torch.equal(again.images, some.images) and again.selection == some.selection
    other = load_split(options(cifar_dir, train_subset=25, seed=1), train=True)
    assert other.selection.index_hash != some.selection.index_hash
    per = load_split(options(cifar_dir, train_subset=3, subset_per_class=True), train=True)
    assert torch.bincount(per.labels, minlength=10).tolist() == [3] * 10
    assert "3 per class, seed 0" in per.source
    rows = {bytes(img.numpy()) for img in full.images}
    assert all(bytes(img.numpy()) in rows for img in per.images)
    test = load_split(options(cifar_dir, test_subset=7), train=False)
    assert len(test) == 7
    # larger than the split: everything
    assert len(load_split(options(cifar_dir, train_subset=10_000), train=True)) == 100
    big = load_split(options(cifar_dir, test_subset=50, subset_per_class=True), train=False)
    assert len(big) == 40


def test_checksum_mismatch_reported(cifar_dir):
    with pytest.raises(DataError) as err:
        load_split(DataOptions(data_dir=cifar_dir), train=False)
    message = str(err.value)
    assert "test_batch" in message or "batches.meta" in message
    assert "--skip-checksum" in message and "--download" in message


def test_missing_dir_message(tmp_path):
    data_dir = str(tmp_path / "nowhere")
    with pytest.raises(DataError) as err:
        load_split(DataOptions(data_dir=data_dir), train=True)
    message = str(err.value)
    assert os.path.join(data_dir, "cifar-10-batches-py") in message
    assert "--download" in message and "synthetic" in message
    assert not Path(data_dir).exists()  # nothing was downloaded or created


def test_incomplete_folder(tmp_path, cifar_dir):
    copy = tmp_path / "cifar-10-batches-py"
    shutil.copytree(Path(cifar_dir) / "cifar-10-batches-py", copy)
    (copy / "data_batch_3").unlink()
    with pytest.raises(DataError, match="data_batch_3"):
        load_split(options(str(tmp_path)), train=True)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("skip_checksum", [True, False])
def test_malicious_pickle_refused(tmp_path, cifar_dir, skip_checksum):
    copy = tmp_path / "cifar-10-batches-py"
    shutil.copytree(Path(cifar_dir) / "cifar-10-batches-py", copy)
    marker = tmp_path / "pwned"
    with open(copy / "test_batch", "wb") as f:
        pickle.dump({"data": _Evil(marker), "labels": [0]}, f, protocol=2)
    with pytest.raises(DataError) as err:
        load_split(options(str(tmp_path), skip_checksum=skip_checksum), train=False)
    assert "test_batch" in str(err.value)
    assert not marker.exists()


def test_garbage_file_is_data_error(tmp_path, cifar_dir):
    copy = tmp_path / "cifar-10-batches-py"
    shutil.copytree(Path(cifar_dir) / "cifar-10-batches-py", copy)
    (copy / "test_batch").write_bytes(b"\x80\x02not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_split(options(str(tmp_path)), train=False)


# ---------------------------------------------------------------------------------- other sources


def test_imagefolder(tmp_path):
    root = write_imagefolder(tmp_path / "folder", per_class=3)
    train = load_split(DataOptions(dataset="imagefolder", data_dir=str(root)), train=True)
    test = load_split(DataOptions(dataset="imagefolder", data_dir=str(root)), train=False)
    assert train.classes == ("bird", "cat", "dog") and test.classes == train.classes
    assert train.images.shape == (9, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    png = np.asarray(Image.open(root / "train" / "cat" / "0001.png").convert("RGB"))
    assert np.array_equal(train.images[4].permute(1, 2, 0).numpy(), png)


def test_a_jpeg_folder_is_labelled_jpeg(tmp_path):
    """JPEG copies of CIFAR-10 are lossy: their accuracies are labelled, never passed off as
    CIFAR-10's own."""
    png = write_imagefolder(tmp_path / "png", per_class=2)
    jpeg = write_imagefolder(tmp_path / "jpeg", per_class=2, suffix=".jpg")
    as_png = load_split(DataOptions(dataset="imagefolder", data_dir=str(png)), train=False)
    as_jpeg = load_split(DataOptions(dataset="imagefolder", data_dir=str(jpeg)), train=False)
    assert as_png.source.startswith("image folder test split")
    assert as_jpeg.source.startswith("JPEG image folder test split")


def test_imagefolder_errors(tmp_path):
    with pytest.raises(DataError) as err:
        load_split(DataOptions(dataset="imagefolder", data_dir=str(tmp_path / "none")), train=False)
    assert "train" in str(err.value) and "<class>" in str(err.value)


def test_synthetic_deterministic_and_learnable():
    a = load_split(DataOptions(dataset="synthetic"), train=True)
    b = load_split(DataOptions(dataset="synthetic", seed=7), train=True)
    test = load_split(DataOptions(dataset="synthetic"), train=False)
    assert a.synthetic and test.synthetic
    assert a.source.startswith("SYNTHETIC") and test.source.startswith("SYNTHETIC")
    assert len(a) == 10_000 and len(test) == 2_000 and a.classes == CLASSES
    assert a.images.shape == (10_000, 3, 32, 32) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    # learnable: nearest class mean classifies held-out images well
    flat = a.images.flatten(1).float()
    centroids = torch.stack([flat[a.labels == c].mean(0) for c in range(10)])
    predicted = torch.cdist(test.images.flatten(1).float(), centroids).argmin(1)
    assert (predicted == test.labels).float().mean() > 0.9
    sub = load_split(DataOptions(dataset="synthetic", train_subset=5, subset_per_class=True), True)
    assert len(sub) == 50 and sub.synthetic and sub.source.startswith("SYNTHETIC")


# ---------------------------------------------------------------------------------- augmentation


def test_normalization_tensors():
    for name, (mean, std) in NORMALIZATIONS.items():
        m, s = normalization_tensors(name)
        assert m.shape == (3,) and s.shape == (3,) and m.dtype == torch.float32
        assert torch.allclose(m, torch.tensor(mean)) and torch.allclose(s, torch.tensor(std))


def test_augment_batch_matches_torchvision():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=g)
    dx = torch.tensor([0, 8, 4, 1, 7, 3])
    dy = torch.tensor([0, 8, 2, 6, 0, 5])
    flip = torch.tensor([False, True, True, False, True, False])
    out = augment_batch(images, dx, dy, flip)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    for k in range(6):
        expected = TF.crop(TF.pad(images[k], [4]), int(dy[k]), int(dx[k]), 32, 32)
        if flip[k]:
            expected = TF.hflip(expected)
        assert torch.equal(out[k], expected), k
        # and the PIL path torchvision's RandomCrop takes on real data
        pil = Image.fromarray(images[k].permute(1, 2, 0).numpy())
        pil = TF.crop(TF.pad(pil, [4]), int(dy[k]), int(dx[k]), 32, 32)
        if flip[k]:
            pil = TF.hflip(pil)
        assert torch.equal(out[k], torch.from_numpy(np.array(pil)).permute(2, 0, 1))


def _decode(x: torch.Tensor, normalization: str = "cifar") -> torch.Tensor:
    mean, std = normalization_tensors(normalization)
    return (x * std.view(1, 3, 1, 1) + mean.view(1, 3, 1, 1)).mul(255).round().to(torch.uint8)


def test_loader_offsets_uniform_and_flips_half():
    data = coordinate_images(500)
    loader = BatchLoader(data, 128, augment=True, shuffle=True, seed=3)
    dxs, dys, flips = [], [], []
    for epoch in range(4):
        loader.set_epoch(epoch)
        for x, _ in loader:
            img = _decode(x).long()
            # pixel (16, 16) holds original row dy + 12 -> value dy + 13
            dys.append(img[:, 0, 16, 16] - 13)
            increasing = img[:, 1, 16, 17] > img[:, 1, 16, 16]
            col = img[:, 1, 16, 16]  # dx + 13 unflipped, dx + 12 flipped
            dxs.append(torch.where(increasing, col - 13, col - 12))
            flips.append(~increasing)
    dx, dy, flip = torch.cat(dxs), torch.cat(dys), torch.cat(flips)
    n = len(dx)
    assert n == 2000
    for values in (dx, dy):
        counts = torch.bincount(values, minlength=9)
        assert len(counts) == 9
        assert counts.min() > 0.7 * n / 9 and counts.max() < 1.3 * n / 9
    assert 0.44 < flip.float().mean() < 0.56


def test_loader_matches_reference_without_augment(cifar_dir):
    data = load_split(options(cifar_dir), train=False)
    for normalization in ("cifar", "imagenet"):
        loader = BatchLoader(data, 16, normalization=normalization)
        reference = reference_dataset(data, normalization, augment=False)
        assert len(loader) == 3 and loader.num_images == 40
        xs, ys = zip(*loader, strict=True)
        x, y = torch.cat(xs), torch.cat(ys)
        assert x.dtype == torch.float32 and x.shape == (40, 3, 32, 32) and y.dtype == torch.int64
        expected = torch.stack([reference[i][0] for i in range(40)])
        assert torch.allclose(x, expected, atol=1e-6)
        assert y.tolist() == [reference[i][1] for i in range(40)]


def test_reference_augment_is_a_crop_and_flip(cifar_dir):
    data = load_split(options(cifar_dir, test_subset=3), train=False)
    reference = reference_dataset(data, "cifar", augment=True)
    mean, std = normalization_tensors("cifar")
    candidates = [(dx, dy, f) for dx in range(9) for dy in range(9) for f in (False, True)]
    dx, dy, flip = (torch.tensor(v) for v in zip(*candidates, strict=True))
    for i in range(3):
        got, label = reference[i]
        assert label == int(data.labels[i])
        options_ = augment_batch(data.images[i].expand(len(candidates), 3, 32, 32), dx, dy, flip)
        normed = (options_.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        assert (normed - got).abs().flatten(1).amax(1).min() < 1e-5


def test_loader_determinism(cifar_dir):
    data = load_split(options(cifar_dir), train=True)

    def epoch_batches(seed: int, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        loader = BatchLoader(data, 32, augment=True, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return list(loader)

    a, b = epoch_batches(0, 1), epoch_batches(0, 1)
    assert len(a) == 4 and a[-1][0].shape[0] == 4
    assert all(
        torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b, strict=True)
    )
    c = epoch_batches(0, 2)
    assert not torch.equal(a[0][1], c[0][1]) or not torch.equal(a[0][0], c[0][0])
    d = epoch_batches(1, 1)
    assert not torch.equal(a[0][0], d[0][0])
    # each epoch still sees every image exactly once
    assert sorted(torch.cat([y for _, y in c]).tolist()) == sorted(data.labels.tolist())


def test_loader_options(cifar_dir):
    data = load_split(options(cifar_dir), train=True)
    loader = BatchLoader(data, 32, drop_last=True, channels_last=True)
    batches = list(loader)
    assert len(loader) == len(batches) == 3
    assert all(x.shape == (32, 3, 32, 32) for x, _ in batches)
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)
    plain = BatchLoader(data, 32)
    assert len(plain) == 4
    assert torch.equal(next(iter(plain))[0], batches[0][0])


def test_download_only_when_asked_and_missing(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    class FakeCIFAR10(torchvision.datasets.CIFAR10):
        def __init__(self, root, train=True, download=False):
            calls.append((root, train, download))
            write_cifar10(Path(root))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    data_dir = str(tmp_path / "d")
    with pytest.raises(DataError):
        load_split(options(data_dir), train=False)
    assert calls == []
    data = load_split(options(data_dir, download=True), train=False)
    assert calls == [(data_dir, False, True)] and len(data) == 40
    load_split(options(data_dir, download=True), train=False)
    assert len(calls) == 1  # present now: no second download


def test_md5_cached_per_size_and_mtime(tmp_path, monkeypatch):
    import hashlib

    from engine.data import readers as data_module

    path = tmp_path / "f"
    path.write_bytes(b"abc")
    first = data_module.file_md5(path)
    assert first == hashlib.md5(b"abc").hexdigest()
    monkeypatch.setattr(data_module.hashlib, "md5", None)  # a cache hit never hashes again
    assert data_module.file_md5(path) == first
    monkeypatch.undo()
    path.write_bytes(b"abcd")
    assert data_module.file_md5(path) == hashlib.md5(b"abcd").hexdigest()
