"""Command-line options built from the config dataclasses (engine.config).

A config field's name, default, help, allowed values and help panel become a typer option, so the
CLI, the app's forms and the engine cannot disagree. `config_options` adds them to a command (which
takes them as `**options`); `make_config` builds and validates the config (exit 2 naming the
option). Option types shared by several commands that are not config fields live here too.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from dataclasses import fields
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.models import OptionInfo

from engine.config import DataOptions, SweepConfig
from engine.errors import ConfigError, PrunelabError
from engine.options import describe_allowed, field_default, format_levels, parse_levels

OUTPUT_PANEL = "Output"
PANEL_ORDER = (
    "Model",
    "Data",
    "Training",
    "Pruning",
    "Cost",
    "Export",
    "Device",
    "Checkpoints",
    "Run",
    OUTPUT_PANEL,
)
# Other spellings accepted beside the dashed names: the original project's (its --epochs and
# --momentum are already the dashed names) and short forms. The long ones are said in the
# option's help and turned into the option's name before parsing (`canonical_args`): as names
# of their own they made the names column too wide for 80 columns (`--lr,--learning-rate,--le…`).
OPTION_ALIASES: dict[str, tuple[str, ...]] = {
    "batch_size": ("--batch_size",),
    "lr": ("--learning-rate", "--learning_rate"),
    "weight_decay": ("--weight_decay",),
    "t_max": ("--T_max",),
    "output": ("-o",),
}
# Config fields that are positional arguments rather than options.
ARGUMENT_NAMES = {"checkpoint": "CHECKPOINT"}
DEFAULT_RUN_DIR = field_default(DataOptions, "run_dir")
_SWEEP_FIELDS = {f.name: f for f in fields(SweepConfig)}


def canonical_args(args: list[str]) -> list[str]:
    """The command line with each long alias (`--learning_rate 0.05`, `--T_max=7`) replaced by
    its option's name; values and everything after `--` are left as they are."""
    names = {
        alias: option_name(field)
        for field, aliases in OPTION_ALIASES.items()
        for alias in aliases
        if alias.startswith("--")
    }
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        flag, equals, value = arg.partition("=")
        out.append(names[flag] + equals + value if flag in names else arg)
    return out


def option_name(field_name: str) -> str:
    """The option that sets a config field: `batch_size` -> `--batch-size`."""
    if field_name in ARGUMENT_NAMES:
        return ARGUMENT_NAMES[field_name]
    return "--" + field_name.replace("_", "-")


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    """A config class's resolved annotations, once per class (not once per field)."""
    return typing.get_type_hints(cls)


def _config_parameter(cls: type, f: dataclasses.Field, default: Any = None) -> inspect.Parameter:
    meta = f.metadata
    py_type = _type_hints(cls)[f.name]
    if py_type not in (str, int, float, bool):
        py_type = str  # levels: `start:stop:step` or a comma list, parsed by parse_levels
    value = f.default if default is None else default
    if f.name == "levels" and not isinstance(value, str):
        value = format_levels(value)
    help_text = meta.get("help", "")
    if describe_allowed(meta):
        help_text += f" ({describe_allowed(meta)})"
    aliases = OPTION_ALIASES.get(f.name, ())
    spelled = [a for a in aliases if a.startswith("--")]
    if spelled:
        help_text += f"; also {', '.join(spelled)}"
    name = option_name(f.name)
    switch_on = py_type is bool and value is True
    if switch_on:  # on unless turned off: `--control/--no-control`, the default shown
        name = f"{name}/--no-{name[2:]}"
    info = typer.Option(
        name,
        *(a for a in aliases if not a.startswith("--")),
        help=escape(help_text),
        rich_help_panel=meta.get("group") or "Options",
        show_default=py_type is not bool or switch_on,
    )
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, default=value, annotation=Annotated[py_type, info]
    )


def config_options(
    cls: type, *, skip: tuple[str, ...] = (), defaults: dict[str, Any] | None = None
):
    """Add an option for every field of `cls` (but `skip`) to a command.

    The command takes them as `**options`; its own parameters come first in the signature.
    """
    defaults = defaults or {}

    def decorate(func):
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
        taken = {p.name for p in own}
        extra = [
            _config_parameter(cls, f, defaults.get(f.name))
            for f in fields(cls)
            if f.name not in skip and f.name not in taken
        ]
        # Keyword-only, so they can be ordered freely: by help panel (stable within a panel).
        merged = [p.replace(kind=p.KEYWORD_ONLY) for p in own + extra]
        merged.sort(key=_panel_rank)
        func.__signature__ = signature.replace(parameters=merged)
        return func

    return decorate


def _panel_rank(parameter: inspect.Parameter) -> int:
    """Arguments first, then options in PANEL_ORDER (unknown panels before Output)."""
    infos = [
        a for a in getattr(parameter.annotation, "__metadata__", ()) if isinstance(a, OptionInfo)
    ]
    if not infos:
        return -1  # the context or an argument
    panel = infos[0].rich_help_panel
    return PANEL_ORDER.index(panel) if panel in PANEL_ORDER else len(PANEL_ORDER) - 1


def typed_by_user(ctx: typer.Context, names: typing.Iterable[str]) -> set[str]:
    """The parameters given on the command line (or by environment), not left at defaults."""
    given = set()
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT", "PROMPT"):
            given.add(name)
    return given


def make_config(cls: type, options: dict[str, Any], **fixed: Any):
    """A validated config; every invalid value is reported (exit 2) before anything runs."""
    values = {**options, **fixed}
    found: list[ConfigError] = []
    if "levels" in values:
        try:
            values["levels"] = parse_levels(values["levels"])
        except ValueError as exc:
            found.append(ConfigError("levels", str(exc)))
            values["levels"] = field_default(cls, "levels")
    config = cls(**values)
    found += config.problems()
    if found:
        raise ConfigProblems(found)
    return config


def check_config(config: Any) -> None:
    problems = config.problems()
    if problems:
        raise ConfigProblems(problems)


class ConfigProblems(PrunelabError):
    """Every invalid value of a config, reported together (exit 2)."""

    def __init__(self, problems: list[ConfigError]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


CheckpointArg = Annotated[
    str,
    typer.Argument(
        metavar="CHECKPOINT",
        help="a checkpoint file (ours, the seed's, a bare state dict or an exported one)",
        show_default=False,
    ),
]
RunDirOpt = Annotated[
    str,
    typer.Option(
        "--run-dir",
        help=escape(_SWEEP_FIELDS["run_dir"].metadata["help"]),
        rich_help_panel="Run",
    ),
]
