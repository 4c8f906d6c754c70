"""Top-1 evaluation shared by training and pruning: one host sync per pass, not per batch.

Besides the confusion matrix it keeps whether each image was right, in the loader's order: a
sweep compares levels image by image (paired intervals) and stores these bits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from engine.events import StopSignal, stop_requested
from engine.runtime.device import Placement

if TYPE_CHECKING:
    from engine.runtime.distributed import Group


@dataclass
class EvalResult:
    loss: float
    accuracy: float  # top-1, percent
    correct: int
    total: int
    confusion: list[list[int]]  # [true class][predicted class]
    per_image: torch.Tensor | None = None  # bool (total,) on the CPU: right or wrong, in order


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    placement: Placement,
    num_classes: int = 10,
    stop: StopSignal = None,
) -> EvalResult | None:
    """Mean cross-entropy and top-1 accuracy of `model` over `batches` in inference mode.

    Checks `stop` before every batch and returns None when it fired: a full test pass of
    ResNet50 on a CPU takes minutes, and Stop must not wait for it."""
    was_training = model.training
    model.eval()
    device = placement.device
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    confusion = torch.zeros(num_classes * num_classes, dtype=torch.int64, device=device)
    hits: list[torch.Tensor] = []
    with torch.inference_mode(), placement.autocast():
        for images, labels in batches:
            if stop_requested(stop):
                model.train(was_training)
                return None
            logits = model(images).float()
            loss_sum += F.cross_entropy(logits, labels, reduction="sum").double()
            predicted = logits.argmax(dim=1)
            hits.append(predicted == labels)
            confusion += torch.bincount(labels * num_classes + predicted, minlength=num_classes**2)
    model.train(was_training)
    matrix = confusion.view(num_classes, num_classes).cpu()
    total = int(matrix.sum())
    correct = int(matrix.diagonal().sum())
    return EvalResult(
        loss=float(loss_sum) / max(total, 1),
        accuracy=100.0 * correct / max(total, 1),
        correct=correct,
        total=total,
        confusion=matrix.tolist(),
        per_image=torch.cat(hits).cpu() if hits else torch.zeros(0, dtype=torch.bool),
    )


def reduce_eval(result: EvalResult, group: Group) -> EvalResult:
    """One evaluation from every rank's share of the test set: counts and loss sums added
    (training keeps no per-image results, so they are not gathered)."""
    matrix = torch.tensor(result.confusion, dtype=torch.float64)
    numbers = torch.cat([matrix.flatten(), torch.tensor([result.loss * result.total])])
    numbers = group.sum_(numbers.to(group.device)).cpu()
    k = matrix.shape[0]
    confusion = numbers[:-1].round().long().view(k, k)
    total, correct = int(confusion.sum()), int(confusion.diagonal().sum())
    return EvalResult(
        loss=float(numbers[-1]) / max(total, 1),
        accuracy=100.0 * correct / max(total, 1),
        correct=correct,
        total=total,
        confusion=confusion.tolist(),
    )
