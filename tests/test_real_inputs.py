"""Inputs prunelab did not make itself, end to end through the CLI: a legacy pretrained file,
class-sorted image folders, and numbers that match a plain torch loop."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from cifar_fixture import CLASSES, write_imagefolder
from test_checkpoints_wild import _randomised, write_legacy_resnet
from typer.testing import CliRunner

from engine.config import NORMALIZATIONS
from engine.models.resnets import build_model
from tui import cli

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None, "TTY_COMPATIBLE": None}


def invoke(*args: object):
    return CliRunner(env=ENV).invoke(cli.app, [str(a) for a in args])


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A class-sorted image folder of the ten CIFAR-10 classes, 6 PNGs each per split."""
    return write_imagefolder(tmp_path_factory.mktemp("folder"), per_class=6, classes=CLASSES)


def _imagenet_folder(folder: Path, split: str):
    from torchvision import datasets, transforms

    mean, std = NORMALIZATIONS["imagenet"]
    return datasets.ImageFolder(
        str(folder / split),
        transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)]),
    )


def _fitted_resnet20(folder: Path) -> nn.Module:
    """Random features, classifier set to the class means of the training images' features
    (nearest centroid): well above chance, so pruning has something to change."""
    model = _randomised("resnet20", seed=11)
    images, labels = next(iter(torch.utils.data.DataLoader(_imagenet_folder(folder, "train"), 999)))
    features: list[torch.Tensor] = []
    hook = model.linear.register_forward_hook(lambda m, i, o: features.append(i[0]))
    with torch.no_grad():
        model(images)
    hook.remove()
    centroids = torch.stack([features[0][labels == c].mean(0) for c in range(len(CLASSES))])
    with torch.no_grad():
        model.linear.weight.copy_(centroids)
        model.linear.bias.copy_(-0.5 * (centroids**2).sum(1))
    return model


def _plain_torch_accuracy(path: Path, folder: Path, level: float) -> float:
    """What a user would write: torchvision ImageFolder, ToTensor + Normalize, torch's own
    loader for the legacy file, torch.nn.utils.prune on every conv, a plain loop."""
    from torch.nn.utils import prune

    dataset = _imagenet_folder(folder, "test")
    state = torch.load(path, weights_only=True)["state_dict"]
    model = build_model("resnet20")
    model.load_state_dict({k.removeprefix("module."): v for k, v in state.items()})
    if level:
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                prune.l1_unstructured(module, "weight", amount=level / 100)
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, labels in torch.utils.data.DataLoader(dataset, batch_size=16):
            correct += int((model(images).argmax(1) == labels).sum())
            total += len(labels)
    return 100.0 * correct / total


def test_legacy_resnet20_sweeps_like_a_plain_torch_loop(tmp_path: Path, folder: Path) -> None:
    path = tmp_path / "resnet20-12fca82f.th"
    write_legacy_resnet(path, _fitted_resnet20(folder))
    result = invoke(
        "sweep",
        path,
        "--dataset",
        "imagefolder",
        "--data-dir",
        folder,
        "--normalization",
        "imagenet",
        "--levels",
        "0,50,80",
        "--device",
        "cpu",
        "--run-dir",
        tmp_path / "runs",
        "--json",
    )
    assert result.exit_code == 0, result.output
    points = {p["level_percent"]: p["accuracy"] for p in json.loads(result.stdout)["points"]}
    expected = {level: _plain_torch_accuracy(path, folder, level) for level in (0.0, 50.0, 80.0)}
    assert points == expected
    assert expected[0.0] >= 50 and len(set(expected.values())) > 1  # a test that can fail


def _sweep_json(tmp_path: Path, *args: object) -> dict:
    result = invoke("sweep", *args, "--device", "cpu", "--run-dir", tmp_path / "runs", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_sweep_points_carry_intervals_and_report_recomputes_them(
    tmp_path: Path, folder: Path
) -> None:
    path = tmp_path / "resnet20-12fca82f.th"
    write_legacy_resnet(path, _fitted_resnet20(folder))
    data = ["--dataset", "imagefolder", "--data-dir", folder, "--normalization", "imagenet"]
    document = _sweep_json(tmp_path, path, *data, "--levels", "0,30,60,90")
    for point in document["points"]:
        low, high = point["accuracy_ci95"]
        assert low <= point["accuracy"] <= high
        low, high = point["delta_ci95"]
        assert low <= point["accuracy"] - document["baseline_accuracy"] <= high
        per_class = point["per_class_accuracy"]
        assert list(per_class) == list(CLASSES)
        assert sum(per_class.values()) / 10 == pytest.approx(point["accuracy"])  # 6 per class
    assert document["points"][0]["delta_ci95"] == [0.0, 0.0]
    assert document["best_level_percent"] in (0.0, 30.0, 60.0, 90.0)
    low, high = document["best_level_ci95"]
    assert low <= document["best_level_percent"] <= high
    assert document["rule"].startswith("Best level: the highest level whose accuracy")
    # 60 test images cannot resolve a 1-point tolerance: the answer says so
    assert "60 test images measure accuracy only to about +-" in document["note"]
    assert document["note"] in document["sentence"]
    run = Path(document["run_dir"])
    assert len((run / "correct.jsonl").read_text().splitlines()) == 4
    header = (run / "sweep.csv").read_text().splitlines()[0].split(",")
    assert "accuracy_ci95_low" in header and "accuracy_airplane" in header
    report = invoke("report", run, "--json")
    assert report.exit_code == 0, report.output
    (entry,) = json.loads(report.stdout)["runs"]
    again = entry["result"]
    assert again["best_level_ci95"] == document["best_level_ci95"]
    assert [p["passed_over"] for p in again["points"]] == [
        p["passed_over"] for p in document["points"]
    ]
    text = CliRunner(env={**ENV, "COLUMNS": "80"}).invoke(cli.app, ["report", str(run)])
    words = " ".join(text.stdout.split())  # the legend wraps at 80 columns wherever it falls
    assert "Best level: the highest level whose accuracy" in words
    assert "top-1 per class" in text.stdout
    # whole class names at 80 columns (they were cut to 8 letters: "automobi")
    header = next(line for line in text.stdout.splitlines() if "airplane" in line)
    assert "automobile" in header and len(header) <= 80


def _write_test_split(root: Path, per_class: int) -> Path:
    """Only a test split, class-sorted (files 0000.png.. per class folder), 32x32 PNGs."""
    from cifar_fixture import class_images
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        folder = root / "test" / name
        folder.mkdir(parents=True)
        for i, image in enumerate(class_images(np.full(per_class, c), rng)):
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i:04d}.png")
    return root


def test_always_class_0_scores_10_percent_on_a_balanced_subset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    root = _write_test_split(tmp_path / "sorted", per_class=120)
    model = build_model("resnet20")
    with torch.no_grad():
        model.linear.weight.zero_()
        model.linear.bias.copy_(torch.tensor([1.0] + [0.0] * 9))  # always "airplane"
    torch.save(model.state_dict(), tmp_path / "class0.pth")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(a[0]) or real_open(*a, **k))
    document = _sweep_json(
        tmp_path,
        tmp_path / "class0.pth",
        "--model",
        "resnet20",
        "--dataset",
        "imagefolder",
        "--data-dir",
        root,
        "--test-subset",
        1000,
        "--levels",
        "0",
    )
    (point,) = document["points"]
    assert point["accuracy"] == pytest.approx(10.0, abs=1.5)
    assert point["per_class_accuracy"]["airplane"] == 100.0
    chosen = document["test_images"]
    assert chosen["kept"] == 1000 and chosen["total"] == 1200
    assert chosen["per_class"] == dict.fromkeys(CLASSES, 100)
    assert len(chosen["index_hash"]) == 16
    assert len(opened) == 1000  # only the chosen files were decoded


def test_unreadable_subset_and_empty_test_set_exit_2_in_one_line(tmp_path: Path) -> None:
    result = invoke("sweep", tmp_path / "x.pth", "--test-subset", "1k")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid value for '--test-subset'")
    empty = tmp_path / "empty"
    for name in CLASSES:
        (empty / "test" / name).mkdir(parents=True)
    model = tmp_path / "m.pth"
    torch.save(build_model("resnet20").state_dict(), model)
    result = invoke(
        "sweep",
        model,
        "--dataset",
        "imagefolder",
        "--data-dir",
        empty,
        "--device",
        "cpu",
        "--run-dir",
        tmp_path / "runs",
    )
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: invalid value for --data-dir: ")
    assert "holds 0 images" in lines[0]


def test_a_jpeg_folder_is_labelled_in_the_sweep_and_the_runs_list(tmp_path: Path) -> None:
    jpeg = write_imagefolder(tmp_path / "jpeg", per_class=2, classes=CLASSES, suffix=".jpg")
    path = tmp_path / "resnet20-12fca82f.th"
    write_legacy_resnet(path, build_model("resnet20"))
    runs = tmp_path / "runs"
    args = ["--dataset", "imagefolder", "--data-dir", jpeg, "--model", "resnet20"]
    result = invoke("sweep", path, *args, "--levels", "0", "--device", "cpu", "--run-dir", runs)
    assert result.exit_code == 0, result.output
    assert "test images: JPEG image folder test split" in result.stdout
    listed = invoke("runs", "--run-dir", runs)
    assert "JPEG" in listed.stdout.splitlines()[-1]
