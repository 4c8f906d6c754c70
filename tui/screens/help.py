"""Help (F1 or ?): the keys and what each screen does."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown, Static

from engine.measure.stats import BEST_LEVEL_RULE, PASSED_OVER_MARK

HELP_MARKDOWN = f"""\
# prunelab

Train a CIFAR ResNet, then measure how many weights L1 magnitude pruning can remove.
Runs are recorded under `runs/` exactly as the `prunelab` CLI records them.

## Everywhere

| key | action |
|---|---|
| F1 | help on the focused field (description, range, default); elsewhere this help |
| ? | this help (outside a text field) |
| ctrl+s | save the chart as a PNG (`pip install 'prunelab[png]'`); says where it went |
| F2 / F3 / F4 | Train / Sweep / Runs screen |
| F7 | Fine-tune screen: prune a checkpoint, then train it with the mask fixed |
| ctrl+p | command palette (every action by name) |
| Tab, shift+Tab | next / previous field |
| ctrl+q | quit (asks first while a run is going; stopping leaves a resumable checkpoint) |

## Train

A form for every training option, with the seed's values filled in. A field the engine
refuses shows why in red and Start stays disabled.

| key | action |
|---|---|
| F5 | start (or resume, when a checkpoint is picked) |
| F6 | stop after the current batch; a resumable `*_stopped.pth` is written |
| ctrl+o | pick a checkpoint to resume from: only resumable ones, with model, data, epoch, accuracy |
| ctrl+f | hide / show the form (it hides itself while running below 110 columns) |
| f | the charts on the whole screen, and back |

The epoch table shows the learning rate per epoch: the seed's cosine schedule cycles
(T_max 20 over 60 epochs: lr is 0 at epoch 21 and back up by epoch 41).

## Sweep

Prunes a checkpoint level by level and plots accuracy against measured sparsity: the
dense baseline, the tolerance band below it, the best level (X) and the answer in words,
with the 95% interval of the best level. {BEST_LEVEL_RULE} A level marked
{PASSED_OVER_MARK} is one whose own accuracy the rule overruled.

| key | action |
|---|---|
| F5 / F6 | start / stop (finished levels are kept; the level being measured is dropped) |
| Enter | fine-tune the selected level: the Fine-tune form, filled from this sweep (F5 starts) |
| f | the chart on the whole screen, and back |
| ctrl+o | pick the checkpoint (the newest is the default; dataset `auto` evaluates on the data it was trained on) |
| ctrl+f | hide / show the form |
| z | chart y axis: zoomed on the baseline and tolerance band, or 0-100 |
| x | chart x axis (structured and coupled sweeps), in turn: sparsity, measured speedup over dense (when Latency batch is set), times fewer MACs, times fewer parameters; structured and coupled levels count the slim network, masked ones run on dense kernels (no speedup) |
| l | the selected level layer by layer (pruned share of each layer) |
| s | per-layer sensitivity: one layer pruned at a time, at the form's levels and score |

## Fine-tune (F7)

Prunes a checkpoint once to a level, then trains it with the mask fixed: what pruning cost and
what fine-tuning won back. The form starts with the newest checkpoint; Enter on a Sweep level
row fills it from that sweep (checkpoint, method, score, data) at that level.

| key | action |
|---|---|
| F5 / F6 | start / stop (a resumable checkpoint is written) |
| ctrl+o | resume a stopped fine-tuning run |
| e | export the finished fine-tuned model (the Runs screen's export of this run) |
| f | the charts on the whole screen, and back |

## Runs

| key | action |
|---|---|
| up / down | select a run; its details show below |
| space | mark / unmark a run for the overlay chart (sweeps, or training runs) |
| e | export the selected sweep at a level (the best one by default) |
| c | continue an interrupted (stopped or failed) sweep in its own folder |
| l | the per-layer view of the selected sweep's best level |
| r | re-read the run folder |

## Over SSH

Start it inside `tmux` (or `screen`) so a dropped link does not stop training:
`tmux new -s prune prunelab`, detach with ctrl+b d, come back with `tmux attach -t prune`.
Charts redraw once per epoch or sweep point, so a slow link keeps up. `NO_COLOR=1` turns colour off.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q,question_mark", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            with VerticalScroll(id="help-scroll"):
                yield Markdown(HELP_MARKDOWN, id="help-text")
            yield Static("↑/↓ PgUp/PgDn scroll · Esc closes", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
