"""The `prunelab` console script: a typer app over the engine, for scripts, CI and tmux.

With no sub-command in a terminal it opens the Textual app (`prunelab tui` does too). Every
sub-command builds a config, calls one engine function with an event callback and a stop signal,
and renders the events (tui.render) as live bars in a terminal, plain lines in a pipe, JSON with
`--json` / `--json-lines`, or only the final line with `--quiet`. No training or pruning logic
lives here.

Options come from the config dataclasses (engine.config): their names, defaults, help, allowed
values and help panels, so the CLI, the TUI and the engine cannot disagree. Values are checked by
the config's `problems()`; a bad one exits 2 naming the option and what is allowed.

Exit codes: 0 done; 1 an expected failure (one line on stderr, `--debug` adds the traceback);
2 bad usage; 130 interrupted by Ctrl-C after the checkpoint or the finished sweep points were
written (a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
import typing
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text
from typer.models import OptionInfo

from engine.config import (
    EXPORT_FORMATS,
    FIND_COARSE_STEP,
    SENSITIVITY_LEVELS,
    DataOptions,
    SweepConfig,
    TrainConfig,
    describe_allowed,
    field_default,
    parse_levels,
)
from engine.errors import ConfigError, PrunelabError
from engine.events import (
    BatchProgress,
    CheckpointSaved,
    EpochEnded,
    Notice,
    RunStarted,
    SensitivityPoint,
    SweepPoint,
    event_to_dict,
)
from tui import render

app = typer.Typer(
    name="prunelab",
    help=(
        "Train ResNets on CIFAR-10 and measure what L1 magnitude pruning removes. "
        "With no command in a terminal, opens the terminal app."
    ),
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
PIPE_WIDTH = 120  # console width when stdout is not a terminal and COLUMNS is unset
PLAIN_PROGRESS_EVERY_S = 30.0  # without a TTY, a batch line at most this often
OUTPUT_PANEL = "Output"
PANEL_ORDER = ("Model", "Data", "Training", "Pruning", "Device", "Checkpoints", "Run", OUTPUT_PANEL)

# The seed's own spellings, accepted beside the dashed names (its --epochs and --momentum are
# already the dashed names).
SEED_ALIASES: dict[str, tuple[str, ...]] = {
    "batch_size": ("--batch_size",),
    "lr": ("--learning-rate", "--learning_rate"),
    "weight_decay": ("--weight_decay",),
    "t_max": ("--T_max",),
}
# Config fields that are positional arguments rather than options.
ARGUMENT_NAMES = {"checkpoint": "CHECKPOINT"}
DEFAULT_RUN_DIR = field_default(DataOptions, "run_dir")
_SWEEP_FIELDS = {f.name: f for f in fields(SweepConfig)}


def option_name(field_name: str) -> str:
    """The option that sets a config field: `batch_size` -> `--batch-size`."""
    if field_name in ARGUMENT_NAMES:
        return ARGUMENT_NAMES[field_name]
    return "--" + field_name.replace("_", "-")


# --------------------------------------------------------------------------------------------
# Options built from the config dataclasses


def _config_parameter(cls: type, f: dataclasses.Field, default: Any = None) -> inspect.Parameter:
    meta = f.metadata
    py_type = typing.get_type_hints(cls)[f.name]
    if py_type not in (str, int, float, bool):
        py_type = str  # levels: `start:stop:step` or a comma list, parsed by parse_levels
    value = f.default if default is None else default
    if f.name == "levels" and not isinstance(value, str):
        value = render.levels_text(value)
    help_text = meta.get("help", "")
    if describe_allowed(meta):
        help_text += f" ({describe_allowed(meta)})"
    info = typer.Option(
        option_name(f.name),
        *SEED_ALIASES.get(f.name, ()),
        help=escape(help_text),
        rich_help_panel=meta.get("group") or "Options",
        show_default=py_type is not bool,
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
        raise _ConfigProblems(found)
    return config


def check_config(config: Any) -> None:
    problems = config.problems()
    if problems:
        raise _ConfigProblems(problems)


class _ConfigProblems(PrunelabError):
    def __init__(self, problems: list[ConfigError]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


# --------------------------------------------------------------------------------------------
# Output modes and errors


def error_line(text: str) -> None:
    """One plain line on stderr (never wrapped, never styled)."""
    print(f"error: {text}", file=sys.stderr, flush=True)


def config_error_line(problem: ConfigError) -> str:
    return f"invalid value for {option_name(problem.field)}: {problem.message}"


@contextlib.contextmanager
def failures(debug: bool) -> Iterator[None]:
    """Turn expected failures into one line and an exit code; `--debug` adds the traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except _ConfigProblems as exc:
        for problem in exc.problems:
            error_line(config_error_line(problem))
        raise typer.Exit(EXIT_USAGE) from None
    except ConfigError as exc:
        if debug:
            traceback.print_exc()
        error_line(config_error_line(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except PrunelabError as exc:
        if debug:
            traceback.print_exc()
        error_line(str(exc))
        raise typer.Exit(EXIT_FAILURE) from None
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        error_line("aborted by a second Ctrl-C; files written so far are kept")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:
        if debug:
            traceback.print_exc()
            raise typer.Exit(EXIT_FAILURE) from None
        error_line(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        raise typer.Exit(EXIT_FAILURE) from None


def jsonable(value: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, NaN/inf to null, mapping keys to strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {
            (f"{k:g}" if isinstance(k, float) else str(k)): jsonable(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def dump_json(data: Any, *, indent: int | None = None) -> str:
    return json.dumps(jsonable(data), indent=indent)


class Output:
    """Where results go: human (live bars on a TTY, plain lines otherwise), JSON, or quiet."""

    def __init__(self, *, json_out: bool = False, json_lines: bool = False, quiet: bool = False):
        if json_out and json_lines:
            error_line("give either --json or --json-lines, not both")
            raise typer.Exit(EXIT_USAGE)
        self.json = json_out
        self.json_lines = json_lines
        self.quiet = quiet and not (json_out or json_lines)
        self.console = Console(highlight=False)
        if not self.console.is_terminal and "COLUMNS" not in os.environ:
            # A pipe or a file has no width: keep tables readable instead of squeezing to 80.
            self.console = Console(highlight=False, width=PIPE_WIDTH)
        self.human = not (self.json or self.json_lines or self.quiet)
        self.live = self.human and self.console.is_terminal and not self.console.is_dumb_terminal

    def line(self, text: str, style: str | None = None) -> None:
        """A human line (not in --quiet or JSON modes)."""
        if self.human:
            self.console.print(Text(text, style=style or ""), soft_wrap=True)

    def renderable(self, item: Any) -> None:
        if self.human:
            self.console.print(item)

    def final(self, text: str) -> None:
        """The last line: shown in human and --quiet modes."""
        if self.human or self.quiet:
            self.console.print(Text(text), soft_wrap=True)

    def document(self, data: Any) -> None:
        """The one JSON document of --json, or the closing `Result` line of --json-lines."""
        if self.json:
            print(dump_json(data, indent=2), flush=True)
        elif self.json_lines:
            print(dump_json({"event": "Result", **jsonable(data)}), flush=True)

    def chart(self, series: list[render.Series], baselines: list[render.Baseline]) -> None:
        if not self.human or not any(s.x for s in series):
            return
        width = max(60, min(self.console.width, 120))
        text = render.accuracy_chart(series, baselines, width=width, height=20, color=self.live)
        self.console.print(Text.from_ansi(text) if self.live else Text(text), soft_wrap=True)


class Reporter:
    """The `on_event` callback: live bars and lines, plain lines, or JSON lines."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.started: RunStarted | None = None
        self.baseline: float | None = None
        self.progress: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self._last_plain = time.monotonic()

    def __enter__(self) -> Reporter:
        if self.out.live:
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=self.out.console,
                transient=True,
            )
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def _print(self, text: str, style: str | None = None) -> None:
        if self.progress is not None:
            self.progress.console.print(Text(text, style=style or ""), soft_wrap=True)
        else:
            self.out.line(text, style)

    def _task(self, key: str, description: str, total: float) -> TaskID:
        assert self.progress is not None
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(description, total=total, info="")
        return self.tasks[key]

    def __call__(self, event: Any) -> None:
        if isinstance(event, RunStarted):
            self.started = event
        if isinstance(event, SweepPoint) and event.level_percent == 0 and event.evaluated:
            self.baseline = event.accuracy
        if self.out.json_lines:
            print(dump_json(event_to_dict(event)), flush=True)
            return
        if not self.out.human:
            return
        if isinstance(event, BatchProgress):
            self._batch(event)
            return
        text = render.event_line(event, self.baseline)
        if isinstance(event, RunStarted):
            self._print(text, "bold")
            if event.synthetic:
                self._print(render.SYNTHETIC_WARNING, "bold yellow")
        elif isinstance(event, Notice):
            self._print(text, "yellow" if event.level == "warning" else None)
        elif isinstance(event, (EpochEnded, CheckpointSaved, SweepPoint, SensitivityPoint)):
            self._print(text)
            self._advance(event)

    def _batch(self, event: BatchProgress) -> None:
        info = f"loss {event.loss:.4f}  {event.images_per_s:,.0f} img/s"
        if self.progress is None:
            now = time.monotonic()
            if now - self._last_plain >= PLAIN_PROGRESS_EVERY_S:
                self._last_plain = now
                self._print(render.batch_line(event))
            return
        epochs = self._task("epochs", "epochs", event.epochs)
        batches = self._task("batches", f"epoch {event.epoch}", event.batches)
        self.progress.update(epochs, completed=event.epoch - 1 + event.batch / event.batches)
        self.progress.update(
            batches,
            description=f"epoch {event.epoch}",
            total=event.batches,
            completed=event.batch,
            info=info,
        )

    def _advance(self, event: Any) -> None:
        if self.progress is None:
            return
        if isinstance(event, EpochEnded):
            epochs = self._task("epochs", "epochs", event.epochs)
            self.progress.update(
                epochs,
                completed=event.epoch,
                info=f"test acc {render.fmt_pct(event.test_acc)}  lr {event.lr:.4g}",
            )
        elif isinstance(event, (SweepPoint, SensitivityPoint)) and event.total:
            label = "levels" if isinstance(event, SweepPoint) else "layer x level"
            task = self._task("points", label, event.total)
            info = (
                f"level {render.fmt_level(event.level_percent)}"
                if isinstance(event, SweepPoint)
                else event.layer
            )
            self.progress.update(task, total=event.total, completed=event.index, info=info)


@contextlib.contextmanager
def stop_on_ctrl_c() -> Iterator[threading.Event]:
    """The first Ctrl-C asks the engine to stop (it saves first); a second one aborts at once."""
    stop = threading.Event()
    installed = False
    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.getsignal(signal.SIGINT)
        if previous is not signal.SIG_IGN:

            def on_sigint(signum: int, frame: Any) -> None:
                stop.set()
                signal.signal(signal.SIGINT, signal.default_int_handler)
                print(
                    "\nstopping: saving what is done; press Ctrl-C again to abort at once",
                    file=sys.stderr,
                    flush=True,
                )

            signal.signal(signal.SIGINT, on_sigint)
            installed = True
    try:
        yield stop
    finally:
        if installed:
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)


# --------------------------------------------------------------------------------------------
# Shared option types

JsonOpt = Annotated[
    bool,
    typer.Option(
        "--json", help="print one JSON document and nothing else", rich_help_panel=OUTPUT_PANEL
    ),
]
JsonLinesOpt = Annotated[
    bool,
    typer.Option(
        "--json-lines",
        help="print one JSON object per event while running, then a `Result` object",
        rich_help_panel=OUTPUT_PANEL,
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="print only the final line", rich_help_panel=OUTPUT_PANEL),
]
DebugOpt = Annotated[
    bool,
    typer.Option("--debug", help="show the traceback of any failure", rich_help_panel=OUTPUT_PANEL),
]
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


_OUTPUT_OPTIONS = {
    "json_out": JsonOpt,
    "json_lines": JsonLinesOpt,
    "quiet": QuietOpt,
    "debug": DebugOpt,
}


def output_options(*names: str):
    """Give a command the Output options `names` (of json_out, json_lines, quiet) and --debug.

    The command takes `out: Output` instead of them and runs inside `failures(debug)`; the options
    come after its own parameters (before `**options`), in the Output help panel.
    """

    def decorate(func):
        signature = inspect.signature(func, eval_str=True)
        own = [p for p in signature.parameters.values() if p.name != "out"]
        added = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=False,
                annotation=_OUTPUT_OPTIONS[name],
            )
            for name in (*names, "debug")
        ]
        at = len([p for p in own if p.kind is not p.VAR_KEYWORD])

        @functools.wraps(func)
        def command(*args: Any, debug: bool = False, **kwargs: Any) -> None:
            out = Output(**{name: kwargs.pop(name) for name in names})
            with failures(debug):
                func(*args, out=out, **kwargs)

        command.__signature__ = signature.replace(parameters=own[:at] + added + own[at:])
        return command

    return decorate


def run_engine(out: Output, entry: Any, config: Any, **kwargs: Any) -> tuple[Any, bool]:
    """Call an engine entry point with `out`'s reporter and Ctrl-C as its stop signal.

    Returns its result and whether the run used synthetic data.
    """
    reporter = Reporter(out)
    with stop_on_ctrl_c() as stop, reporter:
        result = entry(config, reporter, stop, **kwargs)
    return result, bool(reporter.started and reporter.started.synthetic)


def _finished(out: Output, status: str, line: str, resume_hint: str | None) -> None:
    """Print the final line; exit 130 when the run was stopped (after saying how to resume)."""
    if status == "stopped":
        text = "stopped: " + line + (f"; resume with: {resume_hint}" if resume_hint else "")
        out.final(text)
        if not out.human and not out.quiet:
            print(text, file=sys.stderr, flush=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    out.final(line)


# --------------------------------------------------------------------------------------------
# Commands


@app.callback(invoke_without_command=True)
def root(ctx: typer.Context) -> None:
    """Opens the terminal app when run with no command in a terminal."""
    if ctx.invoked_subcommand is not None:
        return
    if interactive():
        open_tui()
        return
    typer.echo(ctx.get_help())
    raise typer.Exit(0)


def interactive() -> bool:
    """A person at a terminal (not a pipe, CI or nohup)."""
    return sys.stdin.isatty() and sys.stdout.isatty()


@app.command()
def tui() -> None:
    """Open the terminal app (the same as `prunelab` with no command)."""
    open_tui()


def open_tui() -> None:
    try:
        from tui.app import PrunelabApp
    except ImportError as exc:
        error_line(f"the terminal app cannot start ({exc}); the commands work: prunelab --help")
        raise typer.Exit(EXIT_FAILURE) from None
    PrunelabApp().run()


@app.command()
@config_options(TrainConfig)
@output_options("json_out", "json_lines", "quiet")
def train(
    ctx: typer.Context,
    out: Output,
    resume: Annotated[
        Optional[str],  # noqa: UP045 - typer needs a runtime type here
        typer.Option(
            "--resume",
            metavar="CHECKPOINT",
            help="continue from this checkpoint with its saved config; only the options "
            "you type override it (e.g. more --epochs)",
            rich_help_panel="Checkpoints",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Train a model with the seed's recipe (SGD + cosine lr per epoch), checkpointing as it goes.

    The defaults are the seed's recommended values. Ctrl-C saves a resumable checkpoint and exits 130.
    """
    from engine.train import resume_config
    from engine.train import train as run_train

    if resume is not None:
        explicit = {k: v for k, v in options.items() if k in typed_by_user(ctx, options)}
        config = resume_config(resume, **explicit)
        check_config(config)
    else:
        config = make_config(TrainConfig, options)
    result, synthetic = run_engine(out, run_train, config, resume=resume)
    out.document({**dataclasses.asdict(result), "synthetic": synthetic})
    if result.history:
        title = f"training {config.model}: {result.run_dir}"
        out.renderable(render.train_table(result.history, "SYNTHETIC " * synthetic + title))
    line = (
        f"{result.epochs_completed}/{config.epochs} epochs done, test accuracy "
        f"{render.fmt_pct(result.final_test_acc)} (best {render.fmt_pct(result.best_test_acc)})"
        f", checkpoint {result.checkpoint or 'none'}, run {result.run_dir}"
    )
    if synthetic:
        line = "SYNTHETIC data: " + line
    hint = f"prunelab train --resume {result.checkpoint}" if result.checkpoint else None
    _finished(out, result.status, line, hint)


def _sweep_output(out: Output, result: Any, *, chart: bool = True) -> None:
    out.document(
        {**dataclasses.asdict(result), "sentence": result.sentence()}
        if hasattr(result, "sentence")
        else result
    )
    if result.points:
        out.renderable(render.sweep_table(result))
        if chart:
            series, baselines = render.chart_data([result])
            out.chart(series, baselines)


@app.command()
@config_options(SweepConfig, skip=("checkpoint",))
@output_options("json_out", "json_lines", "quiet")
def sweep(
    out: Output,
    checkpoint: Annotated[
        Optional[str],  # noqa: UP045 - typer needs a runtime type here
        typer.Argument(
            metavar="CHECKPOINT",
            help="the checkpoint to prune (not needed with --resume)",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--resume",
            metavar="RUN",
            help="finish an interrupted sweep run (its folder or name under --run-dir) with "
            "its own checkpoint and settings; only missing levels are computed",
            rich_help_panel="Run",
        ),
    ] = None,
    **options: Any,
) -> None:
    """Prune a checkpoint at each level and evaluate: accuracy vs sparsity, sizes, the answer.

    Levels are percents of the original prunable weights removed, as start:stop:step with stop included (e.g. 0:50:10) or a list (e.g. 0,40,60.5).

    Ctrl-C keeps every finished level and exits 130; --resume RUN computes only the missing ones.
    """
    from engine.runs import load_run, resolve_run
    from engine.sweep import run_sweep

    run = None
    if resume is not None:
        run = str(resolve_run(options["run_dir"], resume))
        kind = load_run(run).kind
        if kind != "sweep":
            raise PrunelabError(f"cannot resume {run}: it is a {kind} run, not a sweep")
    elif checkpoint is None:
        error_line("missing argument CHECKPOINT (or --resume RUN)")
        raise typer.Exit(EXIT_USAGE)
    config = make_config(SweepConfig, options, checkpoint=checkpoint or "(resumed)")
    result, _ = run_engine(out, run_sweep, config, resume_run=run)
    _sweep_output(out, result)
    _finished(
        out,
        result.status,
        render.sweep_line(result),
        f"prunelab sweep --resume {result.run_dir}",
    )


@app.command()
@config_options(SweepConfig, skip=("checkpoint", "levels", "refine", "early_stop"))
@output_options("json_out", "json_lines", "quiet")
def find(
    out: Output,
    checkpoint: CheckpointArg,
    coarse_step: Annotated[
        float,
        typer.Option(
            "--coarse-step",
            help="scan 0, step, 2*step, ... % until the first level outside the tolerance, "
            "then bisect down to --resolution",
            rich_help_panel="Pruning",
        ),
    ] = FIND_COARSE_STEP,
    **options: Any,
) -> None:
    """The best-sparsity answer alone: the highest level within --tolerance of the dense baseline.

    Prints it as one line a script can read, e.g. best_level_percent=62.5 accuracy=92.31 baseline=93.10 tolerance=1 method=layerwise run=...
    """
    from engine.sweep import find_best

    if not (0 < coarse_step <= 100) or math.isnan(coarse_step):
        raise ConfigError("coarse_step", f"{coarse_step:g} is out of range; allowed > 0 to 100")
    config = make_config(SweepConfig, options, checkpoint=checkpoint)
    result, _ = run_engine(out, find_best, config, coarse_step=coarse_step)
    _sweep_output(out, result, chart=False)
    if result.synthetic and out.human:
        out.line(render.SYNTHETIC_WARNING, "bold yellow")
    _finished(out, result.status, render.find_line(result), None)


@app.command()
@config_options(
    SweepConfig,
    skip=(
        "checkpoint",
        "method",
        "refine",
        "resolution",
        "tolerance",
        "early_stop",
        "bn_recalibrate",
        "min_density",
    ),
    defaults={"levels": SENSITIVITY_LEVELS},
)
@output_options("json_out", "json_lines", "quiet")
def sensitivity(
    out: Output,
    checkpoint: CheckpointArg,
    layers: Annotated[
        str,
        typer.Option(
            "--layers",
            help="comma-separated layer names to test (default: every prunable layer)",
            rich_help_panel="Pruning",
        ),
    ] = "",
    **options: Any,
) -> None:
    """Per-layer sensitivity: prune one layer at a time (layerwise L1), the others dense.

    The layer x level accuracy table shows which layers tolerate pruning.
    """
    from engine.sweep import run_sensitivity

    config = make_config(SweepConfig, options, checkpoint=checkpoint)
    names = [n.strip() for n in layers.split(",") if n.strip()] or None
    result, synthetic = run_engine(out, run_sensitivity, config, layers=names)
    out.document(result)
    if result.layers:
        out.renderable(render.sensitivity_table(result))
    line = (
        f"{len(result.layers)} layers x {len(result.levels)} levels, baseline "
        f"{render.fmt_pct(result.baseline_accuracy)}, run {result.run_dir}"
    )
    if synthetic:
        line = "SYNTHETIC data: " + line
    _finished(out, result.status, line, None)


@app.command()
@output_options("json_out", "quiet")
def export(
    out: Output,
    checkpoint: CheckpointArg,
    level: Annotated[
        float,
        typer.Option(
            "--level",
            help="percent of the prunable weights to remove (from 0 to 100)",
            show_default=False,
        ),
    ],
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help=escape(
                _SWEEP_FIELDS["method"].metadata["help"]
                + " ("
                + describe_allowed(_SWEEP_FIELDS["method"].metadata)
                + ")"
            ),
        ),
    ] = field_default(SweepConfig, "method"),
    include_classifier: Annotated[
        bool,
        typer.Option(
            "--include-classifier",
            help=escape(_SWEEP_FIELDS["include_classifier"].metadata["help"]),
        ),
    ] = field_default(SweepConfig, "include_classifier"),
    fmt: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--format",
            metavar="FORMAT",
            help=escape(
                "sparse = compact file (bitmask + values, compressed), dense = plain state "
                f"dict the seed's code loads [default: {EXPORT_FORMATS[0]}]"
            ),
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--model",
            help="architecture, when the checkpoint does not record it "
            f"({describe_allowed(_SWEEP_FIELDS['model'].metadata)})",
            show_default=False,
        ),
    ] = None,
    min_density: Annotated[
        float,
        typer.Option(
            "--min-density",
            help=escape(
                _SWEEP_FIELDS["min_density"].metadata["help"]
                + f" ({describe_allowed(_SWEEP_FIELDS['min_density'].metadata)})"
            ),
        ),
    ] = field_default(SweepConfig, "min_density"),
    output: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="where to write (default: beside the checkpoint, "
            "<name>_<method><level>.<format>.pth)",
        ),
    ] = None,
    run_dir: Annotated[
        str,
        typer.Option("--run-dir", help=_SWEEP_FIELDS["run_dir"].metadata["help"]),
    ] = field_default(SweepConfig, "run_dir"),
) -> None:
    """Write the model pruned at one level, with masks made permanent, and print its sizes.

    The file is itself a checkpoint every other command accepts.
    """
    from engine.export import export_pruned

    # The config checks the values it shares with export (exit 2 naming the option).
    shared = {"method": method, "min_density": min_density}
    if model is not None:
        shared["model"] = model
    probe = SweepConfig(checkpoint=checkpoint, **shared)
    problems = [p for p in probe.problems() if p.field in shared]
    if problems:
        raise _ConfigProblems(problems)
    kwargs: dict[str, Any] = {
        "method": method,
        "include_classifier": include_classifier,
        "model": model,
        "min_density": min_density,
    }
    if fmt is not None:
        kwargs["fmt"] = fmt
    result = export_pruned(checkpoint, level, output=output, run_dir=run_dir, **kwargs)
    out.document({**dataclasses.asdict(result), "ratio": result.ratio})
    out.renderable(render.export_table(result))
    out.final(
        f"wrote {result.path}: {render.fmt_bytes(result.file_bytes)}, "
        f"{100 * result.ratio:.1f}% of the dense file "
        f"({render.fmt_bytes(result.dense_file_bytes)}); "
        f"sparsity {render.fmt_level(result.sparsity_percent)}"
    )


@app.command()
@output_options("json_out")
def runs(
    out: Output,
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    kind: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--kind", help="only runs of this kind (train, sweep, find, sensitivity)"),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=0, help="show at most N runs (0 = all)")] = 0,
) -> None:
    """The past runs, newest first: kind, model, date, status, best accuracy or best sparsity."""
    from engine.runs import list_runs

    listings = [r for r in list_runs(run_dir) if kind is None or r.record.kind == kind]
    if limit:
        listings = listings[:limit]
    if out.json:
        out.document(
            [
                {
                    "run": item.path.name,
                    "path": str(item.path),
                    **dataclasses.asdict(item.record),
                    "best": render.run_best(item.record),
                }
                for item in listings
            ]
        )
        return
    if not listings:
        out.line(f"no runs under {run_dir}")
        return
    out.renderable(render.runs_table(listings, out.console.width))


@app.command()
@output_options("json_out", "quiet")
def report(
    out: Output,
    names: Annotated[
        list[str],
        typer.Argument(
            metavar="RUN...", help="run folders, or their names (or unique prefixes) in --run-dir"
        ),
    ],
    run_dir: RunDirOpt = DEFAULT_RUN_DIR,
    png: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--png",
            metavar="FILE",
            help="also write the chart as an image (needs matplotlib: pip install 'prunelab[png]')",
        ),
    ] = None,
) -> None:
    """A table per run and one chart of accuracy vs sparsity with every sweep overlaid."""
    from engine.runs import load_run, read_jsonl, resolve_run
    from engine.sweep import read_sensitivity, read_sweep

    if png is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            error_line("--png needs matplotlib: pip install 'prunelab[png]'")
            raise typer.Exit(EXIT_FAILURE) from None
    sweeps, labels, documents, lines = [], [], [], []
    for name in names:
        path = resolve_run(run_dir, name)
        record = load_run(path)
        entry: dict[str, Any] = {"run": path.name, "path": str(path), "kind": record.kind}
        entry["status"], entry["synthetic"] = record.status, record.synthetic
        if record.kind in ("sweep", "find"):
            result = read_sweep(path)
            sweeps.append(result)
            labels.append(f"{path.name} ({result.method})")
            entry["result"] = {**dataclasses.asdict(result), "sentence": result.sentence()}
            out.renderable(render.sweep_table(result))
            lines.append(render.sweep_line(result))
        elif record.kind == "train":
            history = read_jsonl(path / "metrics.jsonl")
            entry["history"] = history
            title = f"training {record.model}: {path}"
            out.renderable(render.train_table(history, "SYNTHETIC " * record.synthetic + title))
            lines.append(f"{path.name}: " + render.run_best(record))
        elif record.kind == "sensitivity":
            result = read_sensitivity(path)
            entry["result"] = result
            out.renderable(render.sensitivity_table(result))
            lines.append(f"{path.name}: " + render.run_best(record))
        else:
            lines.append(f"{path.name}: {record.kind} run, nothing to tabulate")
        documents.append(entry)
    series, baselines = render.chart_data(sweeps, labels if len(sweeps) > 1 else None)
    out.chart(series, baselines)
    if png is not None:
        if not sweeps:
            raise PrunelabError("--png needs at least one sweep or find run among RUN...")
        render.write_png(png, series, baselines)
        lines.append(f"chart written to {png}")
    out.document({"runs": documents, "png": png})
    for line in lines[:-1]:
        out.line(line)
    out.final(lines[-1])


def main() -> None:
    """The console script `prunelab`."""
    app()


if __name__ == "__main__":
    main()
