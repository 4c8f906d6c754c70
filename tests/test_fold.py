"""BatchNorm folded into the convolutions gives the model's numbers, at every pruning level."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from engine.measure.fold import fold_batchnorm
from engine.models.resnets import build_model
from engine.pruning.pruner import Pruner


def _with_real_statistics(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters (fresh ones fold to identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
    return model.eval()


@pytest.mark.parametrize(
    "channels_last, method", [(False, "layerwise"), (True, "layerwise"), (False, "structured")]
)
def test_folded_logits_equal_the_model_at_every_level(channels_last, method):
    # structured zeroes each removed filter's BatchNorm scale and shift too: the folded bias
    # must follow, or a removed channel would still emit its shift
    torch.manual_seed(0)
    model = _with_real_statistics(build_model("resnet20"))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    before = copy.deepcopy(model.state_dict())
    folded = fold_batchnorm(model)
    assert folded is not None
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert folded.folded_count == convs  # every conv of these ResNets is followed by a BN
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.randn(8, 3, 32, 32).contiguous(memory_format=fmt)
    pruner = Pruner(model, method, include_classifier=method == "layerwise")
    for level in (0, 70, 30, 95):
        pruner.set_level(level)
        folded.refresh()
        with torch.inference_mode():
            expected, got = model(x), folded(x)
        assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4), level
        assert torch.equal(got.argmax(1), expected.argmax(1)), level
    pruner.release()
    # The model itself is untouched: same weights, BatchNorm layers still there.
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_refresh_follows_only_changed_weights():
    model = _with_real_statistics(build_model("resnet20"))
    folded = fold_batchnorm(model)
    assert folded is not None
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        model.conv1.weight.zero_()  # an in-place change the folded copy must see
    folded.refresh()
    with torch.inference_mode():
        assert torch.allclose(folded(x), model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["layerwise", "structured"])
def test_sweep_accuracies_are_those_of_the_unfolded_model(tmp_path, method):
    """The sweep evaluates the folded copy; evaluating the model itself gives the same answer."""
    from engine.config import SweepConfig
    from engine.sweep.setup import Evaluator, prepare

    torch.manual_seed(1)
    model = _with_real_statistics(build_model("resnet20"), seed=1)
    config = SweepConfig(
        model="resnet20",
        dataset="synthetic",
        test_subset=48,
        device="cpu",
        precision="fp32",
        checkpoint="-",
        run_dir=str(tmp_path),
    )
    setup = prepare(config, model, lambda event: None)
    evaluator = Evaluator(setup, Pruner(setup.model, method))
    assert evaluator.folded is not None
    for level in (0, 60):
        evaluator.pruner.set_level(level)
        folded = evaluator.run_eval()
        plain = evaluator.run_eval(folded=False)
        assert folded.confusion == plain.confusion, level
        assert folded.loss == pytest.approx(plain.loss, rel=1e-5), level


class Mixed(nn.Module):
    """A conv with a bias, a conv read twice (not folded), a BatchNorm after a Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, bias=True)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3)
        self.bn2 = nn.BatchNorm2d(6)
        self.fc = nn.Linear(6, 5)
        self.bn3 = nn.BatchNorm1d(5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        y = self.conv2(x)
        x = self.bn2(y) + y
        return self.bn3(self.fc(x.mean(dim=(2, 3))))


def test_only_a_conv_read_by_its_batchnorm_alone_is_folded():
    torch.manual_seed(2)
    model = _with_real_statistics(Mixed())
    with torch.no_grad():
        model.bn3.running_var.fill_(2.0)
    folded = fold_batchnorm(model)
    assert folded is not None and folded.folded_count == 1
    x = torch.randn(4, 3, 12, 12)
    with torch.inference_mode():
        assert torch.allclose(folded(x), model(x), rtol=1e-5, atol=1e-5)


class Untraceable(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        if x.sum() > 0:
            return self.bn(self.conv(x))
        return x


def test_untraceable_or_unfoldable_models_are_left_alone():
    assert fold_batchnorm(Untraceable().eval()) is None
    assert fold_batchnorm(nn.Sequential(nn.Linear(3, 3), nn.ReLU())) is None
