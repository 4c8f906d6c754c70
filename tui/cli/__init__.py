"""The `prunelab` console script: a typer app over the engine, for scripts, CI and tmux.

With no sub-command in a terminal it opens the Textual app (`prunelab tui` does too). Every
sub-command builds a config, calls one engine function with an event callback and a stop signal,
and renders the events as live bars in a terminal, plain lines in a pipe, JSON with `--json` /
`--json-lines`, or only the final line with `--quiet`. No training or pruning logic lives here.

The package, by idea:
- `options`: config dataclass fields become options (names, defaults, help, allowed values);
- `output`: output modes, exit codes, one line per expected failure;
- `reporter`: engine events rendered in a terminal, Ctrl-C as the stop signal;
- `*_cmd`: the commands, one module per group. To add a command, write a function in one of them
  (or a new one) and register it below with one `app.command()` line.

Exit codes: 0 done; 1 an expected failure (one line on stderr, `--debug` adds the traceback);
2 bad usage; 130 interrupted by Ctrl-C after the checkpoint or the finished sweep points were
written (a second Ctrl-C aborts at once).
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

import typer
from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from tui.cli import (
    export_cmd,
    finetune_cmd,
    prune_cmd,
    runs_cmd,
    train_cmd,
)
from tui.cli.options import canonical_args, option_name
from tui.cli.output import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    error_line,
    quiet_stdout,
)

__all__ = ["app", "main", "option_name"]


class _OneLineErrors(TyperGroup):
    """Usage errors (an unreadable value, an unknown option) as one `error:` line, exit 2,
    like every other bad input, instead of click's multi-line box."""

    def main(
        self, args: list[str] | None = None, *rest: Any, standalone_mode: bool = True, **kwargs: Any
    ) -> Any:
        args = canonical_args(sys.argv[1:] if args is None else list(args))
        if not standalone_mode:
            return super().main(args, *rest, standalone_mode=False, **kwargs)
        try:
            code = super().main(args, *rest, standalone_mode=False, **kwargs)
        except NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except UsageError as exc:
            message = " ".join(exc.format_message().split())
            hint = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
            error_line(message[:1].lower() + message[1:] + hint)
            sys.exit(EXIT_USAGE)
        except ClickException as exc:
            error_line(" ".join(exc.format_message().split()))
            sys.exit(exc.exit_code)
        except typer.Abort:
            error_line("aborted")
            sys.exit(EXIT_FAILURE)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="prunelab",
    cls=_OneLineErrors,
    help=(
        "Train ResNets on CIFAR-10 and measure what L1 magnitude pruning removes. "
        "With no command in a terminal, opens the terminal app."
    ),
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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


def short_help(command: Callable[..., Any]) -> str:
    """The first paragraph of a command's docstring as one line. In rich markup mode typer's
    command list keeps the docstring's own line breaks, which at 80 columns broke sentences in
    the middle ("...: pruned" / "weights stay exactly 0")."""
    first = inspect.cleandoc(command.__doc__ or "").split("\n\n")[0]
    return " ".join(first.split())


def long_help(command: Callable[..., Any]) -> str:
    """A command's docstring with each paragraph as one line, for its `--help`: rich markup
    mode keeps the source's line breaks, which at 80 columns broke sentences mid-line."""
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


# The commands, in the order `prunelab --help` lists them.
for _name, _command in (
    ("train", train_cmd.train),
    ("finetune", finetune_cmd.finetune),
    ("sweep", prune_cmd.sweep),
    ("find", prune_cmd.find),
    ("sensitivity", prune_cmd.sensitivity),
    ("export", export_cmd.export),
    ("runs", runs_cmd.runs),
    ("report", runs_cmd.report),
):
    app.command(_name, short_help=short_help(_command), help=long_help(_command))(_command)


def main() -> None:
    """The console script `prunelab`: usage errors in the one-line style of every other error,
    a closed pipe ends quietly (Ctrl-C outside a run: tui.entry's handler)."""
    try:
        code = app(standalone_mode=False)
    except UsageError as exc:
        error_line(usage_line(exc))
        code = EXIT_USAGE
    except typer.Abort:
        code = EXIT_INTERRUPTED
    except BrokenPipeError:
        quiet_stdout()
        code = 0
    sys.exit(code if isinstance(code, int) else 0)


def console() -> None:
    """The console script `prunelab` (and `python -m tui.cli`): `main`, then `leave`."""
    try:
        main()
    except SystemExit as done:
        code = done.code
    if isinstance(code, str):  # sys.exit("message"): said on stderr, status 1
        print(code, file=sys.stderr)
    leave(code if isinstance(code, int) else int(code is not None))


def leave(code: int) -> None:
    """Exit with `code`, skipping the interpreter's teardown once torch is loaded: unloading it
    cost half a second of every command that used it (0.6 s of a 2.7 s one-level sweep on a
    2-core CPU), and nothing waits for it: run files are written, renamed and closed before a
    command returns, and output is flushed here. Where another thread still runs (the app's
    workers), torch was never imported, or a profiler or tracer (cProfile, coverage) is watching
    and writes its results at exit, the normal exit happens instead."""
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    watched = sys.getprofile() is not None or sys.gettrace() is not None
    if "torch" not in sys.modules or watched or any(not t.daemon for t in others):
        sys.exit(code)
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        quiet_stdout()
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


def usage_line(exc: UsageError) -> str:
    """click's "Invalid value for '--lr' / '--learning-rate': ..." as our one line."""
    text = exc.format_message().rstrip(".")
    text = re.sub(r"'(--?[\w-]+)'", r"\1", text)
    text = re.sub(r"(--?[\w-]+)(?: / --?[\w-]+)+", r"\1", text)  # the first spelling only
    text = text[:1].lower() + text[1:]
    ctx = exc.ctx
    command = f"prunelab {ctx.info_name}" if ctx is not None and ctx.parent else "prunelab"
    return f"{text} (see {command} --help)"


if __name__ == "__main__":
    console()
