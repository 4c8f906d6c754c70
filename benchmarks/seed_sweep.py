"""The seed's pruning loop as a command of its own, so it can be timed as a whole process.

Per level, as the seed's run.py does: `torch.load` the checkpoint from disk and `load_state_dict`,
`torch.nn.utils.prune.l1_unstructured(amount=level)` on every Conv2d and Linear (the classifier
spared unless --include-classifier, like prunelab's default), then the seed's `calculate_accuracy`
over a `DataLoader` on a torchvision `ImageFolder` of the test images (ToTensor + Normalize, batch
100, no workers, fp32, contiguous, `eval()` + `no_grad()`), with `prune.remove` after each level
(the published loop cannot reload into hooked modules; removing them is cheaper than the seed's
commented-out rebuild, so it favours the seed). Only the test images listed in --indices are
read (a `Subset`: the DataLoader decodes just those, as a seed user subsetting by hand would).

Prints one JSON object: {"levels": [...], "accuracy": [...], "seconds": wall time inside}.
Run by benchmarks/whole_command.py; usable alone:

    python benchmarks/seed_sweep.py CKPT --model resnet20 --data-dir DIR --indices idx.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

STARTED = time.perf_counter()
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.utils.prune as prune  # noqa: E402
from torch import nn  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from engine.config import NORMALIZATIONS  # noqa: E402
from engine.models.resnets import build_model, classifier_name  # noqa: E402
from engine.options import parse_levels  # noqa: E402


def seed_state_dict(payload: object) -> dict[str, torch.Tensor]:
    """state['net'] as the seed reads it; also 'state_dict' or a bare dict, `module.` stripped."""
    if isinstance(payload, dict) and isinstance(payload.get("net"), dict):
        payload = payload["net"]
    elif isinstance(payload, dict) and isinstance(payload.get("state_dict"), dict):
        payload = payload["state_dict"]
    return {k.removeprefix("module."): v for k, v in payload.items()}  # type: ignore[union-attr]


def calculate_accuracy(model: nn.Module, loader, num_classes: int) -> float:
    """The seed's calculate_accuracy, per-image confusion-matrix loop included."""
    model.eval()
    correct = total = 0
    confusion = [[0] * num_classes for _ in range(num_classes)]
    with torch.no_grad():
        for images, labels in loader:
            outputs = model(images)
            _, predicted = torch.max(outputs.data, 1)
            total += labels.size(0)
            correct += (predicted == labels).sum().item()
            for i, label in enumerate(labels):
                confusion[label.item()][predicted[i].item()] += 1
    return 100.0 * correct / max(total, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint")
    p.add_argument("--model", required=True)
    p.add_argument("--data-dir", required=True, help="an image folder with test/<class>/*")
    p.add_argument("--indices", required=True, help="JSON list of test-image indices to use")
    p.add_argument("--levels", default="0:100:5")
    p.add_argument("--normalization", default="cifar", choices=sorted(NORMALIZATIONS))
    p.add_argument("--include-classifier", action="store_true")
    p.add_argument("--batch-size", type=int, default=100)
    args = p.parse_args(argv)

    mean, std = NORMALIZATIONS[args.normalization]
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    folder = datasets.ImageFolder(str(Path(args.data_dir) / "test"), transform=transform)
    indices = json.loads(Path(args.indices).read_text())
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(folder, indices), batch_size=args.batch_size, shuffle=False
    )
    model = build_model(args.model, num_classes=len(folder.classes))
    spared = "" if args.include_classifier else classifier_name(model)
    layers = [
        m
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and name != spared
    ]
    levels = parse_levels(args.levels)
    accuracy = []
    for level in levels:
        state = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(seed_state_dict(state))
        if level > 0:
            for module in layers:
                prune.l1_unstructured(module, name="weight", amount=level / 100.0)
        accuracy.append(calculate_accuracy(model, loader, len(folder.classes)))
        if level > 0:
            for module in layers:
                prune.remove(module, "weight")
    seconds = time.perf_counter() - STARTED
    print(json.dumps({"levels": list(levels), "accuracy": accuracy, "seconds": seconds}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
