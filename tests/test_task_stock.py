"""The stock task: both CSV formats, scaling without a look at the future, download, reports, bad files."""

import hashlib

import pytest
import torch

import zoo
from conftest import one_line_error, write_course_prices, write_yahoo_prices, zoo_cli
from zoo_plugins import stock


def quiet(line):
    pass


def data(path, **settings):
    task = zoo.get_task("stock")
    return task.data(task.config(data=str(path), **settings), None)


@pytest.mark.parametrize("mode", ["return", "change", "level"])
def test_both_formats_give_the_same_days_in_date_order(tmp_path, mode):
    course = data(write_course_prices(tmp_path / "course.csv"), target_mode=mode)
    yahoo = data(write_yahoo_prices(tmp_path / "yahoo.csv"), target_mode=mode)  # shuffled rows, sorted by Date
    assert course.meta["columns"] == ["Open", "High", "Low", "Volume", "Close", "Close"]
    for key in ("min", "max") if mode != "return" else ("mean", "std", "scale"):
        assert course.meta[key] == pytest.approx(yahoo.meta[key], abs=1e-6)
    x_course, y_course = course.train.batch(torch.arange(len(course.train)))
    x_yahoo, y_yahoo = yahoo.train.batch(torch.arange(len(yahoo.train)))
    assert torch.allclose(x_course, x_yahoo, atol=1e-5) and torch.allclose(y_course, y_yahoo, atol=1e-5)


def test_level_windows_split_and_scaling_follow_the_course_without_the_leak(tmp_path):
    d = data(write_course_prices(tmp_path / "p.csv", days=80), target_mode="level")
    # 80 days: 56 train; train windows predict days 7..55, test windows days 56..79
    assert (len(d.train), len(d.test)) == (49, 24)
    x, y = d.train.batch(torch.arange(len(d.train)))
    assert x.shape == (49, 7, 5) and y.shape == (49, 1)
    # scaling is fitted on the training days: they span [0, 1] exactly, the test days need not
    assert x.min().item() == pytest.approx(0, abs=1e-6) and x.max().item() == pytest.approx(1, abs=1e-6)
    x_test, _ = d.test.batch(torch.arange(len(d.test)))
    assert x_test.max().item() != pytest.approx(1) or x_test.min().item() != pytest.approx(0)


def test_return_mode_reads_log_changes_scaled_on_the_training_days(tmp_path):
    import numpy as np

    path = write_course_prices(tmp_path / "p.csv", days=80)
    d = data(path)
    rows = np.loadtxt(path, delimiter=",")[::-1]
    close = rows[:, -1]
    # a window also needs the day before it: train origins 7..54 (targets inside the 56 training days)
    assert (len(d.train), len(d.test)) == (48, 24) and d.train.origins[0] == 7 and d.test.origins[0] == 55
    steps = np.diff(np.log(rows), axis=0)[:55]  # the training days' changes
    x, y = d.train.batch(torch.arange(len(d.train)))
    expected = (np.log(rows[1:8]) - np.log(rows[:7]) - steps.mean(0)) / steps.std(0)
    assert x[0].numpy() == pytest.approx(expected, abs=1e-5)
    returns = np.log(close[1:56]) - np.log(close[:55])
    assert y[0].item() == pytest.approx((np.log(close[8]) - np.log(close[7])) / returns.std(), abs=1e-5)
    assert d.meta["scale"] == pytest.approx([returns.std()])


def test_reproduces_the_course_script_number_for_number(tmp_path):
    """zoo's defaults are the course's: same init order, same full batch, same 500 Adam steps."""
    import numpy as np

    path = write_course_prices(tmp_path / "p.csv")
    net = zoo.train("lstm", "stock", {"data": path, "epochs": 50, "target_mode": "level"}, out=False, log=quiet)
    xy = np.loadtxt(path, delimiter=",")[::-1]
    train = xy[: int(len(xy) * 0.7)]
    scaled = (xy - train.min(0)) / (train.max(0) - train.min(0))
    x = torch.tensor(np.array([scaled[i:i + 7] for i in range(len(train) - 7)]), dtype=torch.float32)
    y = torch.tensor(scaled[7:len(train), [-1]], dtype=torch.float32)
    torch.manual_seed(0)
    rnn, fc = torch.nn.LSTM(5, 10, batch_first=True), torch.nn.Linear(10, 1)
    optimizer = torch.optim.Adam([*rnn.parameters(), *fc.parameters()], lr=0.01)
    for _ in range(50):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(fc(rnn(x)[0][:, -1]), y).backward()
        optimizer.step()
    with torch.no_grad():
        assert torch.allclose(net(x), fc(rnn(x)[0][:, -1]), atol=1e-5)


def test_train_eval_plot_predict(runner, tmp_path):
    prices = write_yahoo_prices(tmp_path / "goog.csv", shuffle=False)
    out = tmp_path / "stock.safetensors"
    result = zoo_cli(runner, "train", "lstm", "stock", "--data", prices, "-e", "30", "--out", out)
    assert result.exit_code == 0, result.output
    assert "final (test split): rmse" in result.output and "persistence_rmse" in result.output
    assert "--data PATH" in one_line_error(zoo_cli(runner, "eval", out))  # an export's paths are not followed
    shown = zoo_cli(runner, "eval", out, "--data", prices, "--plot", tmp_path / "plot.png")
    assert shown.exit_code == 0, shown.output
    assert "best: " in shown.output and "linear AR" in shown.output
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    guess = zoo_cli(runner, "predict", out, "--data", prices)
    assert guess.exit_code == 0, guess.output
    assert guess.output.startswith("next Close after 2020-03-20: ")
    assert "give --data" in one_line_error(zoo_cli(runner, "predict", out))  # never the file the export names


def test_metrics_are_in_price_units(tmp_path):
    prices = write_course_prices(tmp_path / "p.csv")
    for mode in ("return", "change", "level"):
        net = zoo.train("gru", "stock", {"data": prices, "epochs": 20, "target_mode": mode}, out=False, log=quiet)
        m = net.zoo.metrics
        # a random walk with unit steps: persistence misses by about a dollar a day
        assert 0.5 < m["persistence_rmse"] < 2 and m["rmse"] > 0
        assert m["rmse_vs_persistence"] == pytest.approx(m["rmse"] / m["persistence_rmse"])


def test_plot_without_matplotlib_says_how_to_get_it(runner, tmp_path, monkeypatch):
    out = tmp_path / "s.safetensors"
    zoo_cli(runner, "train", "lstm", "stock", "--data", write_course_prices(tmp_path / "p.csv"), "-e", "2", "-q",
            "--out", out)
    monkeypatch.setitem(__import__("sys").modules, "matplotlib", None)
    assert "pip install 'rnn-zoo[plot]'" in one_line_error(zoo_cli(runner, "eval", out, "--data", tmp_path / "p.csv",
                                                                   "--plot", tmp_path / "p.png"))


def test_first_run_downloads_and_verifies(runner, tmp_path, monkeypatch, server):
    folder, url = server
    body = write_course_prices(folder / "goog.csv").read_bytes()
    monkeypatch.setattr(stock, "URL", f"{url}/goog.csv")
    monkeypatch.setattr(stock, "SHA256", hashlib.sha256(body).hexdigest())
    root = tmp_path / "root"
    result = zoo_cli(runner, "train", "lstm", "stock", "--root", root, "-e", "2", "-q", "--out", tmp_path / "s.st")
    assert result.exit_code == 0, result.output
    assert (root / "stock" / "goog_daily.csv").read_bytes() == body
    (folder / "goog.csv").unlink()  # cached now: no second download
    assert zoo_cli(runner, "train", "lstm", "stock", "--root", root, "-e", "1", "-q", "--out",
                   tmp_path / "s2.st").exit_code == 0


def test_a_download_with_the_wrong_checksum_leaves_nothing(runner, tmp_path, monkeypatch, server):
    folder, url = server
    write_course_prices(folder / "goog.csv")
    monkeypatch.setattr(stock, "URL", f"{url}/goog.csv")
    monkeypatch.setattr(stock, "SHA256", "0" * 64)
    root = tmp_path / "root"
    line = one_line_error(zoo_cli(runner, "train", "lstm", "stock", "--root", root))
    assert "not the expected 0000" in line and "nothing was saved" in line
    assert not root.exists()  # not even the folders made for it


def test_offline_without_a_cached_file_says_what_to_do(runner, tmp_path, monkeypatch):
    monkeypatch.setattr(stock, "URL", "http://127.0.0.1:9/goog.csv")
    line = one_line_error(zoo_cli(runner, "train", "lstm", "stock", "--root", tmp_path))
    assert "could not be downloaded" in line and "--data FILE" in line and str(tmp_path / "stock") in line


def bad(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
GOOD = "".join(f"2020-01-{d:02d},{d}.5,{d + 1},{d - 1}.5,{d},{d},{1000 + d}\n" for d in range(1, 21))


NO_VOLUME = "Date,Open,High,Low,Close\n" + "".join(",".join(r.split(",")[:5]) + "\n" for r in GOOD.splitlines())
BAD = [
    ("missing column", NO_VOLUME, {}, "has no column 'Volume'"),
    ("unknown column", HEADER + GOOD, {"target": "Clsoe"}, "has no column 'Clsoe'; did you mean 'Close'"),
    ("non-numeric", HEADER + GOOD.replace("2020-01-05,5.5", "2020-01-05,five"), {},
     "line 6: Open is 'five', not a number"),
    ("empty cell", HEADER + GOOD.replace("2020-01-09,9.5,10,", "2020-01-09,9.5,,"), {}, "line 10: High is empty"),
    ("null row", HEADER + GOOD + "2020-01-21,null,null,null,null,null,null\n", {}, "line 22: Open is empty"),
    ("too few rows", HEADER + "".join(GOOD.splitlines(True)[:8]), {},
     "has 8 days; windows of 7 forecasting 1 day ahead need at least 13"),
    ("constant column", HEADER + "".join(r.rsplit(",", 1)[0] + ",5000\n" for r in GOOD.splitlines()), {},
     "column Volume is constant over the training days"),
    ("ragged", HEADER + GOOD + "2020-01-22,1,2\n", {}, "line 22 has 3 cells, the header has 7"),
    ("bad date", HEADER + GOOD.replace("2020-01-03", "03/01/2020"), {}, "Date '03/01/2020' is not a YYYY-MM-DD date"),
    ("no rows", "# nothing here\n", {}, "has no data rows"),
]


@pytest.mark.parametrize("name,text,settings,message", BAD, ids=[b[0] for b in BAD])
def test_bad_price_files_are_one_line(runner, tmp_path, name, text, settings, message):
    args = ["train", "lstm", "stock", "--data", bad(tmp_path, text)]
    for key, value in settings.items():
        args += ["-o", f"{key}={value}"]
    assert message in one_line_error(zoo_cli(runner, *args))


def write_series(path, close, seed=0):
    """Course-format prices around a given close series (oldest first in `close`)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = [f"{c * (1 + rng.normal(0, 0.002)):.6f},{c * 1.01:.6f},{c * 0.99:.6f},"
            f"{rng.integers(10**6, 2 * 10**6)},{c:.6f}" for c in close]
    path.write_text("# Open,High,Low,Volume,Close\n" + "\n".join(reversed(rows)) + "\n")
    return path


def trending(days, drift, seed=0):
    import numpy as np

    return 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(drift, 0.01, days)))


def test_the_default_survives_a_trend_that_breaks_the_level_target(tmp_path):
    prices = write_series(tmp_path / "up.csv", trending(400, 0.004))  # the test days lie far above the training days
    ratio = {mode: zoo.train("lstm", "stock", {"data": prices, "target_mode": mode}, out=False, log=quiet)
             .zoo.metrics["rmse_vs_persistence"] for mode in ("return", "level")}
    assert ratio["return"] <= 1.05 and ratio["level"] > 2, ratio


def test_the_default_learns_returns_that_can_be_predicted(tmp_path):
    import numpy as np

    rng, returns = np.random.default_rng(1), np.zeros(600)
    for t in range(1, len(returns)):  # AR(1) returns: today's return says half of tomorrow's
        returns[t] = 0.6 * returns[t - 1] + rng.normal(0, 0.01)
    prices = write_series(tmp_path / "ar.csv", 100 * np.exp(np.cumsum(returns)))
    m = zoo.train("lstm", "stock", {"data": prices}, out=False, log=quiet).zoo.metrics
    assert m["rmse_vs_persistence"] < 0.9 and m["linear_ar_rmse"] < 0.9 * m["persistence_rmse"], m


def test_baselines_are_computed_on_the_same_days(tmp_path):
    import numpy as np

    path = write_course_prices(tmp_path / "p.csv", days=100)
    net = zoo.train("lstm", "stock", {"data": path, "epochs": 3, "target_mode": "level"}, out=False, log=quiet)
    m = net.zoo.metrics
    rows = np.loadtxt(path, delimiter=",")[::-1]
    close, cut = rows[:, -1], 70
    truth, today = close[cut:], close[cut - 1:-1]
    assert m["persistence_rmse"] == pytest.approx(np.sqrt(np.mean((today - truth) ** 2)))
    drift = (close[cut - 1] - close[0]) / (cut - 1)
    assert m["drift_mae"] == pytest.approx(np.mean(np.abs(today + drift - truth)))
    low, high = rows[:cut].min(0), rows[:cut].max(0)
    scaled = (rows - low) / (high - low)

    def flat(origins):
        return np.array([np.append(scaled[t - 6:t + 1].ravel(), 1) for t in origins])

    coefficients = np.linalg.lstsq(flat(range(6, cut - 1)), scaled[7:cut, -1], rcond=None)[0]
    linear = flat(range(cut - 1, 99)) @ coefficients * (high[-1] - low[-1]) + low[-1]
    assert m["linear_ar_rmse"] == pytest.approx(np.sqrt(np.mean((linear - truth) ** 2)), rel=1e-4)
    best = min(("model", "persistence", "drift", "linear AR"),
               key=lambda n: m[{"model": "rmse", "linear AR": "linear_ar_rmse"}.get(n, f"{n}_rmse")])
    assert m["best"] == best


def test_horizons_train_eval_and_predict(runner, tmp_path):
    prices = write_yahoo_prices(tmp_path / "p.csv", days=120, shuffle=False)
    out = tmp_path / "h.safetensors"
    result = zoo_cli(runner, "train", "lstm", "stock", "--data", prices, "--horizon", "3", "-e", "20", "-q",
                     "--out", out)
    assert result.exit_code == 0, result.output
    card = zoo.load(out).zoo
    assert card.problem.output_size == 3 and [h["horizon"] for h in card.metrics["horizons"]] == [1, 2, 3]
    # day 3's persistence error is larger than day 1's on a random walk
    assert card.metrics["horizons"][2]["persistence_rmse"] > card.metrics["horizons"][0]["persistence_rmse"]
    assert card.metrics["persistence_rmse"] == card.metrics["horizons"][2]["persistence_rmse"]
    shown = zoo_cli(runner, "eval", out, "--data", prices)
    assert shown.exit_code == 0 and "rmse by horizon" in shown.output and "(3 days ahead)" in shown.output
    guess = zoo_cli(runner, "predict", out, "--data", prices)
    assert guess.exit_code == 0 and guess.output.startswith("Close 1 to 3 trading days after 2020-04-29: ")
    assert len(guess.output.split(":")[1].split(",")) == 3
    assert "trained with horizon 3" in one_line_error(zoo_cli(runner, "eval", out, "--data", prices, "--horizon", "1"))


def test_walk_forward_backtest(runner, tmp_path):
    prices = write_yahoo_prices(tmp_path / "p.csv", days=100, shuffle=False)
    out = tmp_path / "s.safetensors"
    assert zoo_cli(runner, "train", "lstm", "stock", "--data", prices, "-e", "5", "-q", "--out", out).exit_code == 0
    before = out.read_bytes()
    result = zoo_cli(runner, "eval", out, "--data", prices, "--backtest", "3", "--json")
    assert result.exit_code == 0, result.output
    import json

    m = json.loads(result.stdout)  # the folds' progress lines go to stderr
    assert "backtest fold 1 of 3" in result.stderr and "backtest fold 3 of 3" in result.stderr
    folds = m["folds"]
    # 30 test days in three blocks, each fold trained on everything before its block
    assert [(f["train_days"], f["test_days"]) for f in folds] == [(70, 10), (80, 10), (90, 10)]
    # overall: every test day once, so the pooled squared errors are the folds' average
    pooled = (sum(f["persistence_rmse"] ** 2 for f in folds) / 3) ** 0.5
    assert m["persistence_rmse"] == pytest.approx(pooled)
    assert out.read_bytes() == before
    # fold 2 is a fresh run of the same recipe on the first 90 days: 80 train, 10 test
    lines = prices.read_text().splitlines()
    first90 = tmp_path / "first90.csv"
    first90.write_text("\n".join(lines[:1] + lines[1:91]) + "\n")
    again = zoo.train("lstm", "stock", {"data": first90, "epochs": 5, "train_fraction": 0.889}, out=False,
                      log=quiet).zoo.metrics
    assert folds[1]["rmse"] == pytest.approx(again["rmse"], rel=1e-6)
    assert folds[1]["linear_ar_rmse"] == pytest.approx(again["linear_ar_rmse"], rel=1e-6)
    text = zoo_cli(runner, "eval", out, "--data", prices, "--backtest", "3").output
    assert "walk-forward backtest over 3 folds" in text and "rmse by fold" in text


BAD_OPTIONS = [
    ("horizon 0", ["--horizon", "0"], "horizon must be at least 1 trading day ahead, got 0"),
    ("horizon past the test days", ["--horizon", "25"], "horizon 25 is longer than the test period: 24 days"),
    ("backtest in training", ["--backtest", "2"], "backtest is an option of zoo eval"),
    ("sha256 of a local file", ["--sha256", "a" * 64], "sha256 checks the file of a --data https://... URL"),
    ("negative price", None, "log returns need positive prices: use --target-mode change"),
]


@pytest.mark.parametrize("name,options,message", BAD_OPTIONS, ids=[b[0] for b in BAD_OPTIONS])
def test_bad_options_are_one_line(runner, tmp_path, name, options, message):
    prices = write_course_prices(tmp_path / "p.csv")
    if options is None:  # a close below zero, as a spread or a detrended series can have
        prices = write_series(tmp_path / "n.csv", [100 - day for day in range(120)])
        options = []
    assert message in one_line_error(zoo_cli(runner, "train", "lstm", "stock", "--data", prices, *options))
    assert not (tmp_path / "checkpoints").exists()  # nothing written, not even a folder


def test_a_backtest_with_too_many_folds_is_one_line(runner, tmp_path):
    out, prices = tmp_path / "s.safetensors", write_course_prices(tmp_path / "p.csv")
    zoo_cli(runner, "train", "lstm", "stock", "--data", prices, "--horizon", "2", "-e", "2", "-q", "--out", out)
    line = one_line_error(zoo_cli(runner, "eval", out, "--data", prices, "--backtest", "13"))
    assert "a backtest of 13 folds needs at least 26 test days" in line and "use at most 12 folds" in line


def test_data_from_a_url_is_downloaded_once_and_checked(runner, tmp_path, server):
    folder, url = server
    body = write_yahoo_prices(folder / "prices.csv").read_bytes()
    root = tmp_path / "root"
    args = ["train", "lstm", "stock", "--data", f"{url}/prices.csv", "--root", root, "-e", "2", "-q"]
    result = zoo_cli(runner, *args, "--out", tmp_path / "a.st")
    assert result.exit_code == 0, result.output
    [saved] = (root / "stock" / "downloads").iterdir()
    assert saved.name.endswith("-prices.csv") and saved.read_bytes() == body
    (folder / "prices.csv").unlink()  # kept: no second download, and zoo eval finds it too
    assert zoo_cli(runner, *args, "--out", tmp_path / "b.st").exit_code == 0
    assert zoo_cli(runner, "eval", tmp_path / "b.st", "--data", f"{url}/prices.csv", "--root", root).exit_code == 0
    sha = hashlib.sha256(body).hexdigest()
    (folder / "again.csv").write_bytes(body)
    ok = zoo_cli(runner, "train", "lstm", "stock", "--data", f"{url}/again.csv", "--sha256", sha, "--root",
                 tmp_path / "r2", "-e", "1", "-q", "--out", tmp_path / "c.st")
    assert ok.exit_code == 0, ok.output


BAD_URLS = [
    ("unreachable", "http://127.0.0.1:9/prices.csv", "could not download http://127.0.0.1:9/prices.csv ("),
    ("missing", "{url}/nothing.csv", "nothing.csv (File not found)"),
    ("html", "{url}/page.html", "is not a price file zoo can read (the file has no column 'Open'"),
    ("binary", "{url}/data.bin", "is not a price file zoo can read (the file is not UTF-8 text"),
    ("wrong sha256", "{url}/prices.csv --sha256 " + "0" * 64, "not the expected 0000"),
]


@pytest.mark.parametrize("name,address,message", BAD_URLS, ids=[b[0] for b in BAD_URLS])
def test_bad_urls_are_one_line_and_leave_nothing(runner, tmp_path, server, name, address, message):
    folder, url = server
    write_yahoo_prices(folder / "prices.csv")
    (folder / "page.html").write_text("<!DOCTYPE html>\n<html><body>Not found, sorry</body></html>\n")
    (folder / "data.bin").write_bytes(bytes(range(256)) * 4)
    root = tmp_path / "root"
    line = one_line_error(zoo_cli(runner, "train", "lstm", "stock", "--data", *address.format(url=url).split(),
                                  "--root", root))
    assert message in line and "nothing was saved" in line
    assert not root.exists() and not (tmp_path / "checkpoints").exists()
