"""Output modes, exit codes and expected failures of every command.

`Output` sends results to a person (live bars on a TTY, plain lines otherwise), as one JSON
document (`--json`), as JSON lines (`--json-lines`), or as only the final line (`--quiet`).
`output_options` gives a command those options plus `--debug` and runs it inside `failures`, which
turns expected errors into one line on stderr and an exit code: 0 done; 1 an expected failure;
2 bad usage; 130 interrupted by Ctrl-C after what was done was saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import math
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from engine.errors import ConfigError, ModelMismatch, PrunelabError
from tui import sweep_chart
from tui.cli.options import OUTPUT_PANEL, ConfigProblems, option_name
from tui.safe import plain, printable, safe_table

EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130
PIPE_WIDTH = 120  # console width when stdout is not a terminal and COLUMNS is unset


def error_line(text: str) -> None:
    """One plain line on stderr (never wrapped, never styled, never a terminal escape)."""
    print(f"error: {printable(text)}", file=sys.stderr, flush=True)


def config_error_line(problem: ConfigError) -> str:
    return f"invalid value for {option_name(problem.field)}: {problem.message}"


@contextlib.contextmanager
def failures(debug: bool) -> Iterator[None]:
    """Turn expected failures into one line and an exit code; `--debug` adds the traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except ConfigProblems as exc:
        for problem in exc.problems:
            error_line(config_error_line(problem))
        raise typer.Exit(EXIT_USAGE) from None
    except ConfigError as exc:
        if debug:
            traceback.print_exc()
        error_line(config_error_line(exc))
        raise typer.Exit(EXIT_USAGE) from None
    except ModelMismatch as exc:  # the checkpoint is fine; --model names the wrong network
        if debug:
            traceback.print_exc()
        error_line(f"invalid value for {option_name(exc.field)}: {exc}")
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
    except BrokenPipeError:
        quiet_stdout()  # the reader (e.g. `| head`) has what it wanted: end quietly
        raise typer.Exit(0) from None
    except Exception as exc:
        if debug:
            traceback.print_exc()
            raise typer.Exit(EXIT_FAILURE) from None
        error_line(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        raise typer.Exit(EXIT_FAILURE) from None


def quiet_stdout() -> None:
    """Point stdout at /dev/null, so flushing at exit after a closed pipe raises nothing."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


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
        columns = os.environ.get("COLUMNS", "")
        if columns and not (columns.isdigit() and int(columns) > 0):
            os.environ.pop("COLUMNS")  # COLUMNS=0 or junk: as if unset, never zero-width output
        self.console = Console(highlight=False)
        if not self.console.is_terminal and "COLUMNS" not in os.environ:
            # A pipe or a file has no width: keep tables readable instead of squeezing to 80.
            self.console = Console(highlight=False, width=PIPE_WIDTH)
        self.human = not (self.json or self.json_lines or self.quiet)
        self.live = self.human and self.console.is_terminal and not self.console.is_dumb_terminal

    @property
    def soft_wrap(self) -> bool:
        """Prose lines stay one line each in a pipe or file (grep, copy-paste); on a terminal
        they wrap at word boundaries instead of the terminal cutting words at column 80."""
        return not self.live

    def line(self, text: str, style: str | None = None) -> None:
        """A human line (not in --quiet or JSON modes)."""
        if self.human:
            self.console.print(plain(text, style or "", one_line=False), soft_wrap=self.soft_wrap)

    def renderable(self, item: Any) -> None:
        """A rich table or chart. A table's title is printed as a line of its own: inside the
        table it would wrap to the table's width (a one-column table broke its title into
        ten-letter pieces)."""
        if not self.human:
            return
        if isinstance(item, Table):
            safe_table(item)  # names, reasons and paths in cells are text, never markup
        if isinstance(item, Table) and item.title is not None:
            title, item.title = item.title, None
            self.console.print(plain(title, "table.title"), soft_wrap=self.soft_wrap)
        self.console.print(item)

    def final(self, text: str) -> None:
        """The last line: shown in human and --quiet modes."""
        if self.human or self.quiet:
            self.console.print(plain(text, one_line=False), soft_wrap=self.soft_wrap)

    def document(self, data: Any) -> None:
        """The one JSON document of --json, or the closing `Result` line of --json-lines."""
        if self.json:
            print(dump_json(data, indent=2), flush=True)
        elif self.json_lines:
            print(dump_json({"event": "Result", **jsonable(data)}), flush=True)

    def chart(
        self, series: list[sweep_chart.Series], baselines: list[sweep_chart.Baseline]
    ) -> None:
        if not self.human or not any(s.x for s in series):
            return
        width = max(60, min(self.console.width, 120))
        text = sweep_chart.accuracy_chart(
            series, baselines, width=width, height=20, color=self.live
        )
        self.console.print(Text.from_ansi(text) if self.live else Text(text), soft_wrap=True)


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


def finish(
    out: Output, status: str, line: str, resume_hint: str | None, *, synthetic: bool = False
) -> None:
    """Print the final line (labelled when its numbers come from synthetic data); exit 130 when
    the run was stopped (after saying how to resume)."""
    if synthetic:
        line = "SYNTHETIC data: " + line
    if status == "stopped":
        text = "stopped: " + line + (f"; resume with: {resume_hint}" if resume_hint else "")
        out.final(text)
        if not out.human and not out.quiet:
            print(text, file=sys.stderr, flush=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    out.final(line)
