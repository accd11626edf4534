"""Every figure zoo draws, looked at as a person would: dates on a stock plot's x axis, no flat
baseline panels, y axes that do not magnify noise, whole epochs, labels inside their axes."""

import pytest

from conftest import write_course_prices, write_yahoo_prices, zoo_cli

pytest.importorskip("matplotlib")


@pytest.fixture
def figures(monkeypatch):
    """The figures zoo saves, drawn and kept open for the test to inspect (the PNG is written too)."""
    import matplotlib.pyplot

    from zoo.front import bench
    from zoo.store import runs
    from zoo_plugins.stock import forecasts

    kept = []

    def keep(figure, path, dpi=110):
        figure.canvas.draw()
        figure.savefig(path, dpi=dpi)
        kept.append(figure)

    for module in (bench, runs, forecasts):
        monkeypatch.setattr(module, "save_figure", keep)
    yield kept
    for figure in kept:
        matplotlib.pyplot.close(figure)


def titles(figure):
    return [axis.get_title() for axis in figure.axes if axis.get_visible()]


def test_a_stock_runs_curves_have_no_flat_baselines_and_a_sane_rmse_axis(runner, tmp_path, figures):
    prices = write_course_prices(tmp_path / "p.csv", days=80)
    assert zoo_cli(runner, "train", "lstm", "stock", "--data", prices, "-e", "60", "-q").exit_code == 0
    assert zoo_cli(runner, "plot", "lstm-stock", "--out", tmp_path / "c.png").exit_code == 0
    (figure,) = figures
    shown = titles(figure)
    assert "train rmse" in shown and shown[1] == "train rmse"  # the headline metric first
    assert not any("persistence_rmse" in t or "persistence_mae" in t for t in shown)  # fitted once: flat
    for axis in figure.axes:
        if axis.get_visible():
            low, high = axis.get_ylim()
            assert high - low >= 0.0199 * max(abs(low), abs(high)), (axis.get_title(), low, high)
            assert axis.yaxis.get_offset_text().get_text() == ""  # no "+9.95" offset above the axis


def test_a_short_run_has_whole_epochs_on_its_axis(runner, tmp_path, figures):
    assert zoo_cli(runner, "train", "rnn", "hihello", "-e", "2", "-q").exit_code == 0
    assert zoo_cli(runner, "plot", "rnn-hihello", "--out", tmp_path / "c.png").exit_code == 0
    (figure,) = figures
    for axis in (a for a in figure.axes if a.get_visible()):
        ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_a_stock_forecast_plot_has_dates_on_its_x_axis(runner, tmp_path, figures):
    import matplotlib.dates

    prices = write_yahoo_prices(tmp_path / "p.csv", days=120)
    out = tmp_path / "s.safetensors"
    assert zoo_cli(runner, "train", "lstm", "stock", "--data", prices, "-e", "3", "-q", "--out", out).exit_code == 0
    assert zoo_cli(runner, "eval", out, "--data", prices, "--plot", tmp_path / "f.png").exit_code == 0
    (figure,) = figures
    axis = figure.axes[0]
    assert axis.get_xlabel() == "date"
    assert isinstance(axis.xaxis.get_major_formatter(), (matplotlib.dates.AutoDateFormatter,
                                                         matplotlib.dates.ConciseDateFormatter))
    first = matplotlib.dates.num2date(axis.lines[0].get_xdata(orig=False)[0]).date().isoformat()
    assert first.startswith("2020-")  # the file's dates (from 2020-01-01), not a day index


def test_bench_plot_labels_stay_inside_their_axes(runner, tmp_path, figures):
    result = zoo_cli(runner, "bench", "rnn,gru,lstm-stacked", "hihello", "--seeds", "0", "-e", "2", "--plot")
    assert result.exit_code == 0, result.output
    (figure,) = figures
    renderer = figure.canvas.get_renderer()
    for axis in figure.axes:
        box = axis.get_window_extent(renderer)
        for text in axis.texts:
            label = text.get_window_extent(renderer)
            assert box.x0 <= label.x0 and label.x1 <= box.x1 and box.y0 <= label.y0 and label.y1 <= box.y1, \
                text.get_text()
