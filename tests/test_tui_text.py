"""Fitting text at 80 columns: paths keep their distinguishing end, lines lose whole parts."""

from __future__ import annotations

from tui.screens.common import form_words
from tui.widgets.text import cut_words, elide_middle, fit_line, plural

CKPT = "checkpoints/synthetic_resnet20_ckpt_epoch2.pth"


def test_elide_middle_keeps_the_file_name_from_a_word_start():
    assert elide_middle(CKPT, 60) == CKPT
    short = elide_middle(CKPT, 26)
    assert short == "…resnet20_ckpt_epoch2.pth" and len(short) <= 26
    for width in range(2, len(CKPT)):
        text = elide_middle(CKPT, width)
        assert len(text) <= width and "…" in text
        tail = text.split("…")[1]
        start = len(CKPT) - len(tail)
        assert CKPT.endswith(tail) and (start == 0 or CKPT[start - 1] in "/_-. " or width < 8)


def test_fit_line_drops_whole_parts_and_elides_paths():
    line = f"epoch 1/60 · batch 5/391 · loss 2.3026 · ETA 3m05s · 1,234 img/s · saved {CKPT}"
    assert fit_line(line, 200) == line
    fitted = fit_line(line, 52)
    assert fitted == "epoch 1/60 · batch 5/391 · loss 2.3026 · ETA 3m05s"
    assert fit_line(f"run runs/x · saved {CKPT}", 46).endswith("resnet20_ckpt_epoch2.pth")
    assert cut_words("checkpoint not found: it moved", 24) == "checkpoint not found…"


def test_plural():
    assert plural(1, "level") == "1 level" and plural(2, "epoch") == "2 epochs"
    assert plural(0, "epoch") == "0 epochs"


def test_form_words_names_fields_not_flags():
    fields = {"dataset": False, "download": True, "data-dir": False, "model": False}
    said = form_words(
        "CIFAR-10 not found: download it with `prunelab train --download --data-dir data` "
        "(or use --dataset synthetic for a demo)",
        fields,
    )
    assert said == (
        "CIFAR-10 not found: download it: turn download on and set data-dir to data "
        "(or set dataset to synthetic for a demo)"
    )
    assert form_words("looks like resnet20: pass --model resnet20", fields).endswith(
        "set model to resnet20"
    )
    assert form_words("see --json-lines", fields) == "see --json-lines", "unknown flags stay"


def test_form_words_for_the_options_only_some_runs_need():
    fields = {"overwrite": True, "checkpoint-dir": False, "allow-nonfinite": True}
    said = form_words("ck.pth exists; pass --overwrite or another --checkpoint-dir", fields)
    assert said == "ck.pth exists; turn overwrite on or another checkpoint-dir"
    nan = form_words("x.pth diverged (pass --allow-nonfinite to use it anyway)", fields)
    assert nan == "x.pth diverged (turn allow-nonfinite on to use it anyway)"


def test_png_title_says_when_the_test_images_were_not_cifar10s_own():
    from types import SimpleNamespace

    from tui.cli.runs_cmd import _png_title

    sweep = SimpleNamespace(x="level")
    jpeg = {"kind": "sweep", "synthetic": False, "data": "JPEG image folder test split, d, 9"}
    png = {**jpeg, "data": "image folder test split, d, 9"}
    fake = {**png, "synthetic": True}
    assert _png_title([sweep], [jpeg]).endswith("(JPEG test images)")
    assert _png_title([sweep], [fake]).endswith("(SYNTHETIC data)")
    assert _png_title([sweep, sweep], [jpeg, png]) == "top-1 accuracy vs sparsity"


def test_a_sweep_series_carries_each_points_interval():
    from types import SimpleNamespace

    from tui.sweep_chart import sweep_series

    point = SimpleNamespace(
        evaluated=True, accuracy=50.0, level_percent=0.0, sparsity_percent=0.0,
        accuracy_ci95=(48.0, 52.0),
    )  # fmt: skip
    result = SimpleNamespace(points=[point], model="resnet20", method="layerwise")
    assert sweep_series(result).band == [(48.0, 52.0)]


def test_a_flat_accuracy_chart_still_spans_a_few_points():
    """One level (or a flat curve) gave the y axis a 0.1-point range: labels 36.000, 35.983."""
    from tui.sweep_chart import MIN_Y_SPAN, Baseline, Series, draw_accuracy_chart

    class Recorder:
        def __getattr__(self, name):
            return lambda *args, **kwargs: self.calls.append((name, args))

        calls: list = []

    plt = Recorder()
    plt.calls = []
    draw_accuracy_chart(plt, [Series("a", [0.0], [35.95])], [Baseline("dense", 35.95)])
    (low, high) = next(args for name, args in plt.calls if name == "ylim")
    assert high - low >= MIN_Y_SPAN and low < 35.95 < high
    plt.calls = []
    draw_accuracy_chart(plt, [Series("a", [0.0, 50.0], [99.5, 10.0])], [])
    (low, high) = next(args for name, args in plt.calls if name == "ylim")
    assert low < 10.0 and high == 100.0  # a real curve keeps its own range, capped at 100
