"""Model specs: the one string that names a network, recorded with every run and checkpoint.

A spec is one of
- a shipped name (`resnet20`, `resnet50`, ...: engine.config.MODEL_NAMES, built by
  engine.models.resnets exactly as before);
- `tv:NAME`: a torchvision classification builder (`torchvision.models.list_models(
  module=torchvision.models)`), always built with `weights=None` (nothing is ever downloaded);
- `PATH.py:FUNCTION` or `package.module:FUNCTION`: a factory in the user's own code that returns
  an `nn.Module`.
The last two take keyword arguments written as a call: `tv:efficientnet_b0(dropout=0.1)`,
`nets/my.py:build(width=32, depth=3)`; values are Python literals (numbers, strings, booleans,
None, tuples, lists), read with `ast.literal_eval`, never executed. `num_classes` comes from the
data: a factory receives it when it has a `num_classes` parameter (or `**kwargs`).

Checkpoints never hold code: a run records the spec and, for a file, its SHA-256; loading builds
the module from the spec and then loads the weights (`weights_only`). `spec_problem` checks a spec
without running any user code (the form field and the CLI show its message); `build_model` runs
the factory and reports what goes wrong there (no such function, not a module) as one line.
"""

from __future__ import annotations

import ast
import copy
import difflib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError
from engine.models.inputs import MODEL_NAMES

TV_PREFIX = "tv:"
# source ':' function, then an optional '(keyword=literal, ...)'; the source may hold ':' itself
# (C:\nets\my.py:build), so the function is the last identifier before the end or '('.
_FACTORY = re.compile(r"^(?P<source>.+):(?P<function>[A-Za-z_]\w*)(?P<args>\(.*\))?$", re.S)
_TV = re.compile(r"^tv:(?P<function>[A-Za-z_]\w*)(?P<args>\(.*\))?$", re.S)
_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_MEMORY = re.compile(r"^memory:\w+-\d+$")  # a module handed to the Python API (register_module)
_CLOSEST = 3
_MODULES: dict[str, Any] = {}

if TYPE_CHECKING:
    from torch import nn


class ModelSpecError(ConfigError):
    """A spec that names nothing buildable: reported against --model (exit 2)."""

    def __init__(self, message: str) -> None:
        super().__init__("model", message)


@dataclass(frozen=True)
class ModelSpec:
    """A parsed spec. `kind` is shipped, torchvision, file, module or memory."""

    text: str
    kind: str
    function: str  # the shipped name, the torchvision builder or the factory's name
    source: str = ""  # the file path or module name of a factory
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path | None:
        """The factory's file, resolved against the working directory."""
        return Path(self.source).expanduser() if self.kind == "file" else None


def is_file_source(source: str) -> bool:
    """`nets/my.py` is a file, `nets.my` a module."""
    return source.endswith(".py") or "/" in source or "\\" in source


def parse_spec(text: str) -> ModelSpec:
    """The parts of a spec, checked for form only (no import, no file read)."""
    text = str(text).strip()
    if not text:
        raise ModelSpecError("must not be empty; " + SPEC_FORMS)
    if text in MODEL_NAMES:
        return ModelSpec(text, "shipped", text)
    if _MEMORY.match(text):
        return ModelSpec(text, "memory", text)
    tv = _TV.match(text)
    if tv:
        return ModelSpec(text, "torchvision", tv["function"], "", _kwargs(tv["args"], text))
    m = _FACTORY.match(text)
    if _MODULE.match(text):  # a bare name: a shipped one mistyped, or a torchvision one
        raise ModelSpecError(
            f"{text!r} is not a shipped model (one of {', '.join(MODEL_NAMES)}); a torchvision "
            "model is tv:NAME, your own FILE.py:FUNCTION"
        )
    if not m or text.startswith(TV_PREFIX):
        raise ModelSpecError(f"{text!r} is not a model spec; {SPEC_FORMS}")
    source = m["source"].strip()
    kind = "file" if is_file_source(source) else "module"
    if kind == "module" and not _MODULE.match(source):
        raise ModelSpecError(f"{source!r} is neither a .py file nor a module name (pkg.mod)")
    return ModelSpec(text, kind, m["function"], source, _kwargs(m["args"], text))


SPEC_FORMS = (
    "give a shipped name (" + ", ".join(MODEL_NAMES[:3]) + ", ...), tv:NAME (a torchvision "
    "model), FILE.py:FUNCTION or package.module:FUNCTION, optionally with keyword arguments "
    "as in FILE.py:build(width=32)"
)


def _kwargs(args: str | None, text: str) -> dict[str, Any]:
    """`(a=1, b='x')` as a dict of literals; positional arguments and expressions refused."""
    if not args:
        return {}
    try:
        call = ast.parse(f"f{args}", mode="eval").body
    except SyntaxError:
        raise ModelSpecError(f"cannot read the arguments of {text!r}: {args}") from None
    if not isinstance(call, ast.Call) or call.args:
        raise ModelSpecError(f"{text!r}: give arguments by keyword, e.g. (width=32)")
    values: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ModelSpecError(f"{text!r}: give arguments by keyword, e.g. (width=32)")
        try:
            values[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise ModelSpecError(
                f"{text!r}: {keyword.arg}= must be a literal (number, string, True/False/None, "
                "tuple or list)"
            ) from None
    for reserved in ("weights", "num_classes"):
        if reserved in values:
            why = (
                "weights come from a checkpoint or --init"
                if reserved == "weights"
                else ("the number of classes comes from the data")
            )
            raise ModelSpecError(f"{text!r}: {reserved}= cannot be set here ({why})")
    return values


@functools.cache
def torchvision_names() -> tuple[str, ...]:
    """Every torchvision classification builder (for checks and the app's suggestions)."""
    import torchvision.models

    return tuple(torchvision.models.list_models(module=torchvision.models))


def closest(name: str, names: tuple[str, ...]) -> str:
    near = difflib.get_close_matches(name, names, n=_CLOSEST, cutoff=0.5)
    return f" (closest: {', '.join(near)})" if near else ""


def spec_problem(text: str) -> str | None:
    """Why a spec cannot be built, checked without running user code; None when it may be.

    The engine's one rule for the model field: the config's `problems()` (CLI, exit 2) and the
    app's form both show this message."""
    try:
        spec = parse_spec(text)
    except ModelSpecError as exc:
        bare = str(text).strip()
        if _MODULE.match(bare) and bare in torchvision_names():
            return f"{exc.message} (did you mean tv:{bare}?)"
        return exc.message
    if spec.kind == "torchvision" and spec.function not in torchvision_names():
        return f"no torchvision model {spec.function!r}" + closest(
            spec.function, torchvision_names()
        )
    if spec.kind == "file":
        return _file_problem(spec)
    if spec.kind == "memory" and spec.text not in _MODULES:
        return f"{spec.text} names a network given to the Python API in another process"
    return None


def register_module(model: nn.Module) -> str:
    """A spec for a network in memory (engine.api): every engine function builds it by copying
    it, so the same code paths serve a module, a torchvision name and a factory file."""
    key = f"memory:{type(model).__name__}-{id(model)}"
    _MODULES[key] = model
    return key


def release_module(key: str) -> None:
    _MODULES.pop(key, None)


def _file_problem(spec: ModelSpec) -> str | None:
    """A missing file, or a function the file does not define (read as text, not run)."""
    path = spec.path
    assert path is not None
    if not path.exists():
        return f"file not found: {spec.source}"
    if not path.is_file():
        return f"{spec.source} is not a file"
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        return f"{spec.source} cannot be read as Python: {exc}"
    defined = _top_level_names(tree)
    if spec.function not in defined:
        return f"{spec.source} defines no function {spec.function!r}" + closest(
            spec.function, tuple(sorted(defined))
        )
    return None


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def build_model(spec: str | ModelSpec, num_classes: int = 10) -> nn.Module:
    """A freshly initialised network from its spec, with `num_classes` outputs.

    Shipped names go through engine.models.resnets unchanged. Raises ModelSpecError (one line,
    against --model) for anything the spec cannot build."""
    if not isinstance(spec, ModelSpec):
        problem = spec_problem(spec)
        if problem:
            raise ModelSpecError(problem)
        spec = parse_spec(spec)
    from torch import nn

    if spec.kind == "shipped":
        from engine.models.resnets import build_model as build_shipped

        return build_shipped(spec.function, num_classes)
    if spec.kind == "memory":
        return copy.deepcopy(_MODULES[spec.text])
    factory = _factory(spec)
    kwargs = dict(spec.kwargs)
    if spec.kind == "torchvision":
        kwargs.update(weights=None, num_classes=num_classes)
    elif _takes_num_classes(factory):
        kwargs["num_classes"] = num_classes
    try:
        model = factory(**kwargs)
    except Exception as exc:
        raise ModelSpecError(
            f"{spec.text} failed to build: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"{spec.text} returned a value of type {type(model).__name__}, not a torch.nn.Module"
        )
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _takes_num_classes(factory: Any) -> bool:
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "num_classes" or p.kind is p.VAR_KEYWORD for p in parameters)


def _factory(spec: ModelSpec) -> Any:
    """The callable a spec names (the file or module is imported: the user's own code)."""
    if spec.kind == "torchvision":
        import torchvision.models

        return torchvision.models.get_model_builder(spec.function)
    module = _load_file(spec) if spec.kind == "file" else _import_module(spec)
    factory = getattr(module, spec.function, None)
    if factory is None:
        names = tuple(n for n in dir(module) if not n.startswith("_"))
        raise ModelSpecError(
            f"{spec.source} has no function {spec.function!r}" + closest(spec.function, names)
        )
    if not callable(factory):
        raise ModelSpecError(f"{spec.source}:{spec.function} is not a function")
    return factory


def _import_module(spec: ModelSpec) -> Any:
    try:
        return importlib.import_module(spec.source)
    except ModuleNotFoundError as exc:
        raise ModelSpecError(f"no module named {exc.name or spec.source!r}") from None
    except Exception as exc:
        raise ModelSpecError(
            f"importing {spec.source} failed: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def _load_file(spec: ModelSpec) -> Any:
    """Import a factory file under a name made from its path and content: the same file is run
    once per process, a changed one again. Its folder is importable while it runs (so it can
    import its neighbours)."""
    path = spec.path
    assert path is not None
    digest = file_digest(path)
    name = f"prunelab_model_{path.stem}_{digest[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    loaded = importlib.util.spec_from_file_location(name, path)
    if loaded is None or loaded.loader is None:
        raise ModelSpecError(f"{spec.source} cannot be imported as Python")
    module = importlib.util.module_from_spec(loaded)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        loaded.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise ModelSpecError(
            f"running {spec.source} failed: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spec_record(text: str) -> dict[str, str]:
    """What a run and a checkpoint record beside the spec: a factory file's SHA-256."""
    try:
        spec = parse_spec(text)
    except ModelSpecError:
        return {}
    path = spec.path
    if path is None or not path.is_file():
        return {}
    return {"model_sha256": file_digest(path)}


def changed_file_warning(text: str, recorded_sha256: str | None) -> str | None:
    """A warning naming the factory file when it differs from the one the weights were trained
    with (the network built now may not be the one the checkpoint holds)."""
    if not recorded_sha256:
        return None
    now = spec_record(text).get("model_sha256")
    if now is None or now == recorded_sha256:
        return None
    return (
        f"{parse_spec(text).source} has changed since this checkpoint was written (SHA-256 "
        f"{recorded_sha256[:12]}... then, {now[:12]}... now): the network built from it may "
        "differ from the one the weights were trained with"
    )


def recorded_spec(text: str | None) -> str | None:
    """A spec a checkpoint recorded, if it is one we can build from (another tool's 'ResNet20'
    is not)."""
    if not text:
        return None
    try:
        spec = parse_spec(text)
    except ModelSpecError:
        return None
    return spec.text


def build_for_state(spec: str | ModelSpec, state_dict: dict[str, Any]) -> nn.Module:
    """The spec's network with as many classes as the weights have (a checkpoint read without
    its data: export, the per-layer view): read from the classifier's weight."""
    model = build_model(spec, 10)
    classes = _classes_in(model, state_dict)
    return model if classes in (None, 10) else build_model(spec, classes)


def _classes_in(model: nn.Module, state_dict: dict[str, Any]) -> int | None:
    """The output size the weights give the network's last Linear (or, with none, last conv)."""
    from torch import nn

    last = [
        name for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and name
    ]
    linear = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    name = (linear or last or [""])[-1]
    weight = state_dict.get(f"{name}.weight")
    shape = getattr(weight, "shape", None)
    return int(shape[0]) if shape else None


def is_shipped(text: str) -> bool:
    """A name of engine.models.resnets (today's exact path), not a spec of another network."""
    return text in MODEL_NAMES


def model_suggestions() -> list[str]:
    """What a model field completes: the shipped names, then tv:NAME for every torchvision
    classifier (a factory is typed as FILE.py:FUNCTION)."""
    return [*MODEL_NAMES, *(TV_PREFIX + name for name in torchvision_names())]


def model_problems(model: str, *, auto: bool = False) -> list[ConfigError]:
    """The model field's one rule (spec_problem): a spec that can be built,
    or auto (`auto`: where a checkpoint names it)."""
    if auto and model == "auto":
        return []
    problem = spec_problem(model)
    return [ConfigError("model", problem)] if problem else []
