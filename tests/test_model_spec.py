"""Model specs (engine.models.spec): shipped names, tv:NAME, FILE.py:FUNCTION and pkg.mod:FUNCTION,
built with the data's number of classes, recorded with the run and the checkpoint, refused in
one line each (exit 2 on the CLI)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from test_cli import TINY, invoke, one_line_error
from tiny_runs import tiny_train_config

from engine.checkpoints.io import load_state, read_checkpoint
from engine.config import SweepConfig, TrainConfig
from engine.errors import ModelMismatch
from engine.events import Notice
from engine.models.spec import (
    ModelSpecError,
    build_for_state,
    build_model,
    parse_spec,
    spec_problem,
)
from engine.runs.record import folder_label
from engine.training.train import train

NET = Path(__file__).parent / "nets" / "custom_block.py"


@pytest.fixture
def net_file(tmp_path: Path) -> Path:
    path = tmp_path / "net.py"
    shutil.copy(NET, path)
    return path


def test_specs_parse_into_their_parts() -> None:
    assert parse_spec("resnet20").kind == "shipped"
    tv = parse_spec("tv:efficientnet_b0(dropout=0.1)")
    assert (tv.kind, tv.function, tv.kwargs) == ("torchvision", "efficientnet_b0", {"dropout": 0.1})
    f = parse_spec("nets/my.py:build(width=32, names=('a', 'b'))")
    assert (f.kind, f.source, f.function) == ("file", "nets/my.py", "build")
    assert f.kwargs == {"width": 32, "names": ("a", "b")}
    m = parse_spec("pkg.mod:make")
    assert (m.kind, m.source, m.function) == ("module", "pkg.mod", "make")
    assert parse_spec(r"C:\nets\my.py:build").source == r"C:\nets\my.py"


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("tv:resnt18", "no torchvision model 'resnt18' (closest: resnet18"),
        ("missing/net.py:build", "file not found: missing/net.py"),
        ("resnet9999", "is not a shipped model (one of resnet50, resnet18"),
        ("vgg16", "(did you mean tv:vgg16?)"),
        ("nets/my.py", "is not a model spec"),
        ("tv:resnet18(weights='DEFAULT')", "weights= cannot be set here"),
        ("tv:resnet18(3)", "give arguments by keyword"),
        ("tv:resnet18(width=len('x'))", "must be a literal"),
    ],
)
def test_bad_specs_are_one_line_each(spec: str, words: str) -> None:
    problem = spec_problem(spec)
    assert problem is not None and words in problem
    assert "\n" not in problem


def test_a_missing_function_is_found_without_running_the_file(tmp_path: Path) -> None:
    path = tmp_path / "net.py"
    path.write_text("raise SystemExit('ran')\ndef build(num_classes=10):\n    pass\n")
    assert "defines no function 'buidl' (closest: build)" in spec_problem(f"{path}:buidl")
    assert spec_problem(f"{path}:build") is None


def test_a_factory_not_returning_a_module_is_refused(net_file: Path) -> None:
    with pytest.raises(ModelSpecError, match="returned a value of type int, not a torch.nn.Module"):
        build_model(f"{net_file}:not_a_module")


def test_torchvision_builds_without_weights_with_the_datas_classes() -> None:
    model = build_model("tv:resnet18", num_classes=7)
    assert model.fc.out_features == 7
    assert build_model("tv:mobilenet_v3_small", 5)(torch.randn(2, 3, 32, 32)).shape == (2, 5)


def test_a_factory_file_gets_its_keywords_and_the_classes(net_file: Path) -> None:
    model = build_model(f"{net_file}:build(width=4)", num_classes=3)
    assert model.head.out_features == 3 and model.stem.out_channels == 4


def test_a_module_factory_is_imported(monkeypatch: pytest.MonkeyPatch, net_file: Path) -> None:
    monkeypatch.syspath_prepend(str(net_file.parent))
    monkeypatch.delitem(sys.modules, "net", raising=False)
    assert build_model("net:build", 4).head.out_features == 4
    assert "no module named 'nosuchpkg'" in str(
        pytest.raises(ModelSpecError, build_model, "nosuchpkg.mod:build").value
    )


def test_build_for_state_reads_the_classes_from_the_weights(net_file: Path) -> None:
    state = build_model(f"{net_file}:build", 13).state_dict()
    assert build_for_state(f"{net_file}:build", state).head.out_features == 13


def test_config_checks_the_spec_with_the_engines_rule() -> None:
    problems = TrainConfig(model="tv:resnt18").problems()
    assert [(p.field, p.message) for p in problems][0][0] == "model"
    assert "closest: resnet18" in problems[0].message
    assert not SweepConfig(checkpoint="x.pth", model="auto").problems()
    assert TrainConfig(model="auto").problems()[0].field == "model"


def test_folder_labels_are_file_names() -> None:
    assert folder_label("tv:resnet18") == "tv-resnet18"
    assert folder_label("nets/my.py:build(width=3)") == "my.py-build"
    assert folder_label("resnet20") == "resnet20"


@pytest.mark.slow
def test_train_records_the_spec_and_hash_and_sweep_warns_on_change(
    tmp_path: Path, net_file: Path
) -> None:
    spec = f"{net_file}:build(width=4)"
    result = train(tiny_train_config(tmp_path, model=spec, epochs=1))
    assert result.checkpoint is not None
    checkpoint = read_checkpoint(result.checkpoint)
    assert checkpoint.model == spec
    assert len(checkpoint.extra["config"]["model_sha256"]) == 64
    assert "block1.depthwise.weight" in checkpoint.state_dict  # its own names, unmapped
    net = build_for_state(spec, checkpoint.state_dict)
    assert load_state(net, checkpoint, "x") == []

    from engine.checkpoints.source import resolve_source

    events: list = []
    config = SweepConfig(checkpoint=result.checkpoint, run_dir=str(tmp_path / "runs"))
    resolve_source(config, events.append)
    assert not [e for e in events if isinstance(e, Notice) and e.level == "warning"]
    net_file.write_text(net_file.read_text() + "\n# edited\n")
    resolve_source(config, events.append)
    warnings = [e.text for e in events if isinstance(e, Notice) and e.level == "warning"]
    assert len(warnings) == 1 and str(net_file) in warnings[0] and "changed" in warnings[0]


def test_weights_of_another_network_do_not_fit_the_spec(net_file: Path) -> None:
    state = build_model(f"{net_file}:build(width=4)").state_dict()
    with pytest.raises(ModelMismatch, match="does not fit CustomNet"):
        load_state(build_model(f"{net_file}:build(width=8)"), state, "weights.pth")


def test_cli_names_a_bad_spec_in_one_line(tmp_path: Path, net_file: Path) -> None:
    args = [a if a != "resnet20" else "tv:resnt18" for a in TINY]
    result = invoke(["train", *args, "--run-dir", tmp_path / "runs", "--epochs", "1"])
    assert result.exit_code == 2
    line = one_line_error(result)
    assert "--model" in line and "closest: resnet18" in line
    args = [a if a != "resnet20" else f"{net_file}:not_a_module" for a in TINY]
    result = invoke(["train", *args, "--run-dir", tmp_path / "runs", "--epochs", "1"])
    assert result.exit_code == 2
    assert "not a torch.nn.Module" in one_line_error(result)


def test_a_torchvision_state_dict_keeps_its_names(tmp_path: Path) -> None:
    """Bare torchvision weights (fc., downsample.) load into tv:resnet18 as they are, though the
    shipped ResNets map those names to theirs."""
    source = build_model("tv:resnet18", 10)
    path = tmp_path / "weights.pth"
    torch.save({f"module.{k}": v for k, v in source.state_dict().items()}, path)
    target = build_model("tv:resnet18", 10)
    assert load_state(target, read_checkpoint(path), str(path)) == []
    assert torch.equal(target.fc.weight, source.fc.weight)


@pytest.mark.slow
def test_train_init_starts_from_the_users_weights(tmp_path: Path, net_file: Path) -> None:
    spec = f"{net_file}:build(width=4)"
    torch.manual_seed(3)
    source = build_model(spec, 10)
    path = tmp_path / "mine.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    config = tiny_train_config(tmp_path, model=spec, epochs=1, init=str(path), lr=0.0)
    config.weight_decay = 0.0
    result = train(config)
    trained = read_checkpoint(result.checkpoint).state_dict
    assert torch.equal(trained["stem.weight"], source.stem.weight)
    args = [a if a != "resnet20" else f"{net_file}:build(width=8)" for a in TINY]
    result = invoke(["train", *args, "--run-dir", tmp_path / "r", "--epochs", "1", "--init", path])
    assert result.exit_code == 2
    assert "mine.pth does not fit CustomNet" in one_line_error(result)
