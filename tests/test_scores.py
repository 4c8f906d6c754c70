"""Pruning scores (engine.pruning.scores): random and gradient-magnitude rank like torch.nn.utils.prune
given the same `importance_scores`; l1 is the default and unchanged (tests/test_pruning.py)."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_pruning import Small, small_with_zeros
from torch.nn.utils import prune

from engine.checkpoints.io import read_checkpoint
from engine.config import SweepConfig
from engine.errors import ConfigError
from engine.methods import SCORES
from engine.models.resnets import build_model
from engine.operations import export_config_from_run, export_from_run
from engine.options import parse_levels
from engine.pruning.pruner import Pruner, amount_to_prune, measure_sparsity, prunable_layers
from engine.pruning.scores import SCORES as SCORE_CLASSES
from engine.pruning.scores import (
    GradientScore,
    RandomScore,
    ScoreInputs,
    make_score,
    training_batch,
)
from engine.runs.record import read_json, read_jsonl
from engine.sweep.run import run_sweep

METHODS = ("layerwise", "global", "structured")
LEVELS = (0, 5, 12.5, 33.3, 50, 90, 97.5, 100)


class Smooth(Small):
    """Small with GELU: no unit is dead for a whole batch, so no gradient is exactly 0 and the
    scores have no ties."""

    def forward(self, x):
        x = self.conv2(F.gelu(self.bn(self.conv1(x)))).mean(dim=(2, 3))
        return self.head(F.gelu(self.fc(x)))


def batch_for(seed: int = 0, n: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 10, 10, generator=g), torch.randint(0, 10, (n,), generator=g)


def random_score(seed: int = 0) -> RandomScore:
    return RandomScore(ScoreInputs(seed))


def gradient_score(batch) -> GradientScore:
    return GradientScore(ScoreInputs(0, lambda: batch))


def reference_gradient(model, layers, batch):
    """|w * dL/dw| by plain backward on a copy in eval mode: what the score must equal."""
    twin = copy.deepcopy(model).eval()
    twin.zero_grad()
    F.cross_entropy(twin(batch[0]), batch[1]).backward()
    modules = dict(twin.named_modules())
    return [(modules[n].weight * modules[n].weight.grad).abs().detach() for n, _ in layers]


def torch_masks(model, method, include_classifier, level, scores):
    ref = copy.deepcopy(model)
    layers = prunable_layers(ref, include_classifier)
    importance = {name: s for (name, _), s in zip(layers, scores, strict=True)}
    if method == "layerwise":
        for name, module in layers:
            prune.l1_unstructured(module, "weight", level / 100, importance_scores=importance[name])
    elif method == "global":
        prune.global_unstructured(
            [(m, "weight") for _, m in layers],
            pruning_method=prune.L1Unstructured,
            amount=level / 100,
            importance_scores={(m, "weight"): importance[n] for n, m in layers},
        )
    else:
        for name, module in layers:
            prune.ln_structured(
                module, "weight", level / 100, n=1, dim=0, importance_scores=importance[name]
            )
    return {name: module.weight_mask.bool() for name, module in layers}


def assert_masks_equal_torch(model, method, include_classifier, score, scores):
    pruner = Pruner(copy.deepcopy(model), method, include_classifier, score=score)
    for level in LEVELS:
        pruner.set_level(level)
        expected = torch_masks(model, method, include_classifier, level, scores)
        ours = pruner.masks()
        assert list(ours) == list(expected)
        for name in expected:
            assert torch.equal(ours[name], expected[name]), (method, level, name)


def test_registry_names_match_the_config_choices():
    assert tuple(SCORE_CLASSES) == SCORES == ("l1", "random", "gradient", "group")
    assert all(cls.name == name for name, cls in SCORE_CLASSES.items())
    with pytest.raises(ConfigError, match="score"):
        make_score("gradient")  # no batch: refused, naming the option
    with pytest.raises(ConfigError, match="score"):
        make_score("nope")


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("include_classifier", [False, True])
def test_random_masks_equal_torch_with_the_same_scores(method, include_classifier):
    torch.manual_seed(0)
    for model in (Small(), build_model("resnet20")):
        layers = prunable_layers(model, include_classifier)
        scores = random_score(7)(model, [m.weight for _, m in layers])
        assert all(
            s.shape == m.weight.shape and (s >= 0).all()
            for s, (_, m) in zip(scores, layers, strict=True)
        )
        assert_masks_equal_torch(model, method, include_classifier, random_score(7), scores)


def test_random_counts_nesting_and_seeds():
    torch.manual_seed(1)
    model = build_model("resnet20")
    pruner = Pruner(copy.deepcopy(model), "layerwise", score=random_score(3))
    previous = None
    for level in (10, 30, 50, 70, 90):
        pruner.set_level(level)
        masks = pruner.masks()
        for name, module in pruner.layers:
            assert int((~masks[name]).sum()) == amount_to_prune(level, module.weight.numel())
        if previous is not None:  # nested: kept at a higher level => kept at a lower one
            assert all(not (masks[n] & ~previous[n]).any() for n in masks)
        previous = masks
    again = Pruner(copy.deepcopy(model), "layerwise", score=random_score(3))
    other = Pruner(copy.deepcopy(model), "layerwise", score=random_score(4))
    l1 = Pruner(copy.deepcopy(model), "layerwise")
    for p in (again, other, l1):
        p.set_level(90)
    assert all(torch.equal(again.masks()[n], previous[n]) for n in previous)
    assert any(not torch.equal(other.masks()[n], previous[n]) for n in previous)
    assert any(not torch.equal(l1.masks()[n], previous[n]) for n in previous)


def test_random_masks_do_not_depend_on_the_memory_layout():
    torch.manual_seed(2)
    model = build_model("resnet20")
    twin = copy.deepcopy(model).to(memory_format=torch.channels_last)
    a = Pruner(model, "global", score=random_score(5))
    b = Pruner(twin, "global", score=random_score(5))
    a.set_level(70)
    b.set_level(70)
    for name in a.masks():
        assert torch.equal(a.masks()[name], b.masks()[name])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("include_classifier", [False, True])
def test_gradient_masks_equal_torch_with_w_times_grad(method, include_classifier):
    torch.manual_seed(3)
    model = Smooth()
    batch = batch_for(3)
    layers = prunable_layers(model, include_classifier)
    scores = reference_gradient(model, layers, batch)
    for s in scores:  # no ties, so torch's unspecified tie order cannot matter
        assert s.unique().numel() == s.numel()
    ours = gradient_score(batch)(model, [m.weight for _, m in layers])
    for a, b in zip(ours, scores, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=0)
    assert_masks_equal_torch(model, method, include_classifier, gradient_score(batch), ours)


def test_gradient_score_leaves_the_model_exactly_as_it_was():
    torch.manual_seed(4)
    model = Small().train()
    before = copy.deepcopy(model.state_dict())
    model.fc.weight.requires_grad_(False)
    cudnn = torch.backends.cudnn
    settings = (cudnn.deterministic, cudnn.benchmark)
    Pruner(model, "global", score=gradient_score(batch_for(4))).release()
    assert (cudnn.deterministic, cudnn.benchmark) == settings
    assert model.training  # mode restored; BatchNorm ran in eval mode: statistics untouched
    assert not model.fc.weight.requires_grad and model.conv1.weight.requires_grad
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("score", [s for s in SCORES if s != "group"])  # group: channels only
@pytest.mark.parametrize("method", METHODS)
def test_bookkept_sparsity_equals_a_scan_for_every_score(score, method):
    """Zeros already there rank anywhere under random or gradient scores; the pruner's counts
    still equal a scan, going up and down."""
    model = small_with_zeros()
    batch = batch_for(5)
    scorer = make_score(score, ScoreInputs(9, lambda: batch))
    pruner = Pruner(model, method, True, 0.1 * (method == "global"), score=scorer)
    for level in (0, 3, 40, 12.5, 90, 100, 0, 65):
        pruner.set_level(level)
        assert pruner.sparsity() == measure_sparsity(model, pruner.layers), (score, level)
    pruner.set_layer_level("conv2", 30)
    assert pruner.sparsity() == measure_sparsity(model, pruner.layers)


# --------------------------------------------------------------------------------------------
# Sweeps and exports with a score


def sweep_config(checkpoint, tmp_path, **changes) -> SweepConfig:
    base = dict(
        checkpoint=checkpoint,
        dataset="synthetic",
        test_subset=100,
        train_subset=200,
        batch_size=32,
        device="cpu",
        levels=parse_levels("0,60"),
        run_dir=str(tmp_path / "runs"),
        eval_batch_size=50,
        seed=11,
    )
    return SweepConfig(**{**base, **changes})


def test_old_configs_without_a_score_read_as_l1():
    data = SweepConfig(checkpoint="x").to_dict()
    del data["score"]
    assert SweepConfig.from_dict(data).score == "l1"


@pytest.mark.parametrize("score", ["random", "gradient"])
def test_export_of_a_scored_sweep_gives_the_sweeps_masks(trained_checkpoint, tmp_path, score):
    config = sweep_config(trained_checkpoint, tmp_path, score=score, method="global")
    sweep = run_sweep(config)
    assert sweep.score == score and sweep.pruning == f"global, {score}"
    assert read_json(Path(sweep.run_dir) / "run.json")["summary"]["score"] == score
    result = export_from_run(sweep.run_dir, 60, "dense", output=str(tmp_path / "x.pth"))
    assert result.score == score
    exported = read_checkpoint(result.path).state_dict
    model = build_model("resnet20")
    model.load_state_dict(read_checkpoint(trained_checkpoint).state_dict)
    model.eval()
    layers = prunable_layers(model)
    if score == "random":
        scores = random_score(11)(model, [m.weight for _, m in layers])
    else:  # the sweep's own batch: 32 training images drawn with its seed
        saved = SweepConfig.from_dict(read_json(Path(sweep.run_dir) / "config.json"))
        scores = reference_gradient(model, layers, training_batch(saved, 32))
    expected = torch_masks(model, "global", False, 60, scores)
    for name, _ in layers:
        assert torch.equal(exported[f"{name}.weight"] != 0, expected[name]), name
    swept = read_jsonl(Path(sweep.run_dir) / "sweep.jsonl")[-1]
    assert result.sparsity_percent == pytest.approx(swept["sparsity_percent"])
    saved_export = export_config_from_run(sweep.run_dir, 60)
    assert (saved_export.score, saved_export.seed) == (score, 11)


def test_gradient_needs_the_training_split(trained_checkpoint, tmp_path):
    from PIL import Image

    for name in ("cat", "dog"):  # a test split only
        folder = tmp_path / "images" / "test" / name
        folder.mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(folder / "0.png")
    config = sweep_config(
        trained_checkpoint,
        tmp_path,
        score="gradient",
        dataset="imagefolder",
        data_dir=str(tmp_path / "images"),
        test_subset=0,
    )
    with pytest.raises(ConfigError, match="gradient needs the training split") as caught:
        run_sweep(config)
    assert caught.value.field == "score"
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made


# --------------------------------------------------------------------------------------------
# The CLI


def test_cli_sweeps_with_random_and_gradient_scores_name_them(trained_checkpoint, tmp_path):
    from test_cli import TINY, invoke

    for score in ("random", "gradient"):
        root = tmp_path / score
        args = ["sweep", trained_checkpoint, *TINY, "--levels", "0,50", "--run-dir", root]
        result = invoke([*args, "--score", score])
        assert result.exit_code == 0, result.output
        out = result.clean_stdout
        assert f"layerwise, {score} sweep of resnet20" in out  # the table's title
        assert f"(layerwise, {score}, 2 levels," in out.strip().splitlines()[-1]  # the answer
        (run,) = root.iterdir()
        assert read_json(run / "config.json")["score"] == score
        listing = invoke(["runs", "--run-dir", root])
        assert f"{score} score: " in listing.clean_stdout  # the run's headline, first
    found = invoke(["find", trained_checkpoint, *TINY, "--score", "random", "--run-dir", tmp_path])
    assert found.exit_code == 0, found.output
    assert "method=layerwise score=random" in found.stdout


def test_cli_gradient_without_a_training_split_is_one_usage_line(trained_checkpoint, tmp_path):
    from PIL import Image
    from test_cli import invoke, one_line_error

    for name in ("cat", "dog"):
        folder = tmp_path / "images" / "test" / name
        folder.mkdir(parents=True)
        Image.new("RGB", (32, 32)).save(folder / "0.png")
    args = ["--dataset", "imagefolder", "--data-dir", tmp_path / "images", "--device", "cpu"]
    result = invoke(
        ["sweep", trained_checkpoint, *args, "--score", "gradient", "--run-dir", tmp_path / "r"]
    )
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "--score" in line and "gradient needs the training split" in line
    export = invoke(
        [
            "export",
            trained_checkpoint,
            "--level",
            "50",
            "--score",
            "gradient",
            "--run-dir",
            tmp_path,
        ]
    )
    assert export.exit_code == 2
    assert "--score" in one_line_error(export)


def test_finetune_prunes_with_the_score_it_is_given(trained_checkpoint, tmp_path):
    from test_finetune import tiny_finetune

    from engine.pruning.masks import unpack_bits
    from engine.runs.lifecycle import read_run_info
    from engine.training.finetune import finetune

    config = tiny_finetune(tmp_path, trained_checkpoint, score="random", seed=5, epochs=1)
    result = finetune(config)
    assert result.status == "completed" and result.score == "random"
    assert "(70% global, random)" in read_run_info(result.run_dir).headline()
    assert "global-random" in Path(result.checkpoint).name  # never an l1 run's file
    saved = read_checkpoint(result.checkpoint).extra["masks"]
    model = build_model("resnet20")
    model.load_state_dict(read_checkpoint(trained_checkpoint).state_dict)
    pruner = Pruner(model, "global", score=random_score(5))
    pruner.set_level(70)
    for name, mask in pruner.masks().items():
        pruned = unpack_bits(saved[name], mask.numel()).view(mask.shape)
        assert torch.equal(pruned, ~mask), name
