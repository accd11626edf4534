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


def test_both_formats_give_the_same_days_in_date_order(tmp_path):
    course = data(write_course_prices(tmp_path / "course.csv"))
    yahoo = data(write_yahoo_prices(tmp_path / "yahoo.csv"))  # shuffled rows, sorted back by Date
    assert course.meta["columns"] == ["Open", "High", "Low", "Volume", "Close", "Close"]
    for a, b in ((course.meta["min"], yahoo.meta["min"]), (course.meta["max"], yahoo.meta["max"])):
        assert a == pytest.approx(b, abs=1e-6)
    x_course, y_course = course.train.batch(torch.arange(len(course.train)))
    x_yahoo, y_yahoo = yahoo.train.batch(torch.arange(len(yahoo.train)))
    assert torch.allclose(x_course, x_yahoo, atol=1e-5) and torch.allclose(y_course, y_yahoo, atol=1e-5)


def test_windows_split_and_scaling_follow_the_course_without_the_leak(tmp_path):
    d = data(write_course_prices(tmp_path / "p.csv", days=80))
    # 80 days: 56 train; train windows predict days 7..55, test windows days 56..79
    assert (len(d.train), len(d.test)) == (49, 24)
    x, y = d.train.batch(torch.arange(len(d.train)))
    assert x.shape == (49, 7, 5) and y.shape == (49, 1)
    # scaling is fitted on the training days: they span [0, 1] exactly, the test days need not
    assert x.min().item() == pytest.approx(0, abs=1e-6) and x.max().item() == pytest.approx(1, abs=1e-6)
    assert d.test.level[56:].max().item() != pytest.approx(1)


def test_reproduces_the_course_script_number_for_number(tmp_path):
    """zoo's defaults are the course's: same init order, same full batch, same 500 Adam steps."""
    import numpy as np

    path = write_course_prices(tmp_path / "p.csv")
    net = zoo.train("lstm", "stock", {"data": path, "epochs": 50}, out=False, log=quiet)
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
    assert "persistence_rmse" in shown.output and (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    guess = zoo_cli(runner, "predict", out, "--data", prices)
    assert guess.exit_code == 0, guess.output
    assert guess.output.startswith("next Close after 2020-03-20: ")
    assert "give --data" in one_line_error(zoo_cli(runner, "predict", out))  # never the file the export names


def test_metrics_are_in_price_units(tmp_path):
    prices = write_course_prices(tmp_path / "p.csv")
    for change in (False, True):
        net = zoo.train("gru", "stock", {"data": prices, "epochs": 20, "change": change}, out=False, log=quiet)
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
    ("too few rows", HEADER + "".join(GOOD.splitlines(True)[:8]), {}, "has 8 days; windows of 7 need at least 9"),
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
