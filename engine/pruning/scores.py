"""Pruning scores: what makes a weight worth keeping. One small class per score.

A score maps the dense model to one non-negative tensor per pruned weight, shaped like it; the
`engine.pruning.pruner.Pruner` removes the lowest-scored units (single weights, or whole filters by the
sum of their weights' scores) per layer or globally. The score is the only thing that differs
between magnitude, random and gradient pruning, as `torch.nn.utils.prune`'s `importance_scores`
and Torch-Pruning's `Importance` separate it:

- `l1`: |w| (the seed's magnitude pruning);
- `random`: uniform in [0, 1), drawn from the run's seed: the floor any score must beat
  (Blalock et al. 2020, "What is the state of neural network pruning?");
- `gradient`: |w * dL/dw| of the cross-entropy on one batch of the TRAINING split (a first-order
  estimate of the loss change when w is removed), with the model in eval mode;
- `group` (channel methods): a channel scores the L1 of every weight that goes with it.

A new score is one class here and one line in `SCORES` (its name goes in engine.methods.SCORES).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import ConfigError, DataError
from engine.methods import SCORES as SCORE_NAMES

if TYPE_CHECKING:
    from engine.config import DataOptions

Batch = tuple[torch.Tensor, torch.Tensor]  # (images, labels), on the model's device


@dataclass(frozen=True)
class ScoreInputs:
    """What a score may draw on besides the weights: the run's seed, and one training batch
    (fetched only by a score that asks for it)."""

    seed: int = 0
    batch: Callable[[], Batch] | None = None


class Score:
    """Per-weight scores of the dense model: higher = more worth keeping."""

    name: ClassVar[str] = ""
    needs_batch: ClassVar[bool] = False  # True: needs `ScoreInputs.batch` (the training split)

    def __init__(self, inputs: ScoreInputs | None = None) -> None:
        self.inputs = inputs or ScoreInputs()

    def __call__(self, model: nn.Module, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError


class L1Score(Score):
    """|w|: magnitude pruning (`prune.l1_unstructured`, `ln_structured(n=1)` per filter)."""

    name = "l1"

    def __call__(self, model: nn.Module, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        return [w.detach().abs() for w in weights]


class RandomScore(Score):
    """Uniform in [0, 1) from a CPU generator seeded with the run's seed, drawn in each
    tensor's logical order (so CPU and CUDA, contiguous and channels_last weights get the same
    masks), in float64 so that ties practically never occur."""

    name = "random"

    def __call__(self, model: nn.Module, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(int(self.inputs.seed))
        return [
            torch.rand(w.shape, generator=generator, dtype=torch.float64).to(w.device)
            for w in weights
        ]


class GradientScore(Score):
    """|w * dL/dw| on one training batch, in eval mode (BatchNorm statistics untouched), in
    fp32 and with deterministic cuDNN kernels (a resumed sweep, and every rank of a distributed
    one, get the same scores on the same machine). The gradients are taken with
    `torch.autograd.grad`, so no `.grad` is written and the model is left exactly as it was.
    Weights with a zero gradient tie at 0 and, like tied magnitudes, go in memory order."""

    name = "gradient"
    needs_batch = True

    def __call__(self, model: nn.Module, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.inputs.batch is None:
            raise ConfigError("score", "gradient needs one batch of the training split")
        images, labels = self.inputs.batch()
        was_training = model.training
        wanted = [w.requires_grad for w in weights]
        cudnn = torch.backends.cudnn
        settings = (cudnn.deterministic, cudnn.benchmark)
        # The same scores every time: a resumed sweep and every rank rank alike.
        cudnn.deterministic, cudnn.benchmark = True, False
        model.eval()
        try:
            for w in weights:
                w.requires_grad_(True)
            with torch.enable_grad(), torch.autocast(images.device.type, enabled=False):
                loss = F.cross_entropy(model(images), labels)
                grads = torch.autograd.grad(loss, weights)
        finally:
            for w, flag in zip(weights, wanted, strict=True):
                w.requires_grad_(flag)
            model.train(was_training)
            cudnn.deterministic, cudnn.benchmark = settings
        return [(w.detach() * g).abs() for w, g in zip(weights, grads, strict=True)]


class GroupScore(L1Score):
    """The L1 of every member of a channel's dependency group: the producing filters, the
    BatchNorm scale and the consumers' input columns (Torch-Pruning's
    GroupMagnitudeImportance, with p = 1 and a sum). Per weight it is |w|; the channel pruners
    add the other members (engine.pruning.coupling, engine.pruning.group_pruner)."""

    name = "group"


SCORES: dict[str, type[Score]] = {
    "l1": L1Score,
    "random": RandomScore,
    "gradient": GradientScore,
    "group": GroupScore,
}
assert tuple(SCORES) == SCORE_NAMES, "engine.methods.SCORES names the same scores"


def make_score(name: str, inputs: ScoreInputs | None = None) -> Score:
    """The score called `name` (one of engine.methods.SCORES)."""
    if name not in SCORES:
        raise ConfigError("score", f"{name!r} is not one of {', '.join(SCORES)}")
    score = SCORES[name](inputs)
    if score.needs_batch and score.inputs.batch is None:
        raise ConfigError("score", f"{name} needs one batch of the training split")
    return score


def needs_batch(name: str) -> bool:
    """Whether the score called `name` ranks on a training batch."""
    return name in SCORES and SCORES[name].needs_batch


def training_batch(
    options: DataOptions,
    batch_size: int,
    *,
    device: torch.device | str = "cpu",
    channels_last=False,
) -> Batch:
    """The gradient score's batch: `batch_size` images of the training split, balanced across
    classes and drawn with `options.seed` (as --train-subset draws), normalised as `options`
    says. Only those images are read, and the same options give the same batch anywhere."""
    from engine.data.loader import BatchLoader
    from engine.data.sources import load_split

    wanted = min(options.train_subset or batch_size, batch_size)
    subset = dataclasses.replace(options, train_subset=wanted, subset_per_class=False)
    try:
        data = load_split(subset, train=True)
    except (ConfigError, DataError) as exc:
        reason = exc.message if isinstance(exc, ConfigError) else str(exc)
        raise ConfigError(
            "score", f"gradient needs the training split (one batch of it): {reason}"
        ) from None
    loader = BatchLoader(
        data,
        len(data),
        device=device,
        normalization=options.normalization,
        channels_last=channels_last,
    )
    return next(iter(loader))
