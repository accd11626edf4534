"""Bounded work for any file: zoo reads only regular files under a size bound (a FIFO, /dev/zero or a
200 MB sparse file is one line, before any read), checks an export's meta before use, checks a vocabulary
in linear time, and refuses a run whose longest batch cannot fit. Each case runs in a capped subprocess."""

import json
import os
import random

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import zoo
from conftest import tiny_mnist, write_course_prices
from hostile_kit import one_line, run_cases, snapshot


def with_meta(export, out, **changes):
    with safe_open(export, "pt") as f:
        metadata = dict(f.metadata())
    metadata["meta"] = json.dumps({**json.loads(metadata["meta"]), **changes})
    save_file(load_file(export), out, metadata=metadata)
    return out


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """Tiny hihello, stock and mnist exports: every command below runs on one of them."""
    from zoo.contract import registry as registry_module

    folder = tmp_path_factory.mktemp("exports")
    old = os.environ.get(registry_module.LOAD_ENV)
    os.environ[registry_module.LOAD_ENV] = ""
    registry_module.reset()
    quiet = {"log": lambda line: None}
    here = os.getcwd()
    os.chdir(folder)  # the runs these exports come from go to this folder's checkpoints/, not the checkout's
    try:
        zoo.train("lstm", "hihello", {"epochs": 2}, out=folder / "hi.safetensors", **quiet)
        prices = write_course_prices(folder / "prices.csv", days=30)
        zoo.train("lstm", "stock", {"epochs": 2, "data": str(prices)}, out=folder / "stock.safetensors", **quiet)
        root = tiny_mnist(folder, "MNIST")
        zoo.train("lstm", "mnist", {"epochs": 1, "root": str(root), "val_size": 10, "download": False,
                                    "hidden_size": 4}, out=folder / "mnist.safetensors", **quiet)
    finally:
        os.chdir(here)
        if old is None:
            del os.environ[registry_module.LOAD_ENV]
        else:
            os.environ[registry_module.LOAD_ENV] = old
        registry_module.reset()
    return folder


def test_devices_fifos_and_huge_files_are_refused_before_reading(exports, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with open(tmp_path / "sparse.txt", "wb") as f:  # 200 MB on paper, nothing on disk
        f.truncate(200 * 2**20)
    (tmp_path / "text.txt").write_text("hello world " * 100_000)  # 1.2 MB
    run = tmp_path / "run"
    zoo_train = ["train", "lstm"]
    cases = [
        ("text-dev-zero", [*zoo_train, "charlm", "--text", "/dev/zero"], {}, "is a device"),
        ("pairs-urandom", ["train", "seq2seq", "translate", "--pairs", "/dev/urandom"], {}, "is a device"),
        ("data-dev-zero", [*zoo_train, "stock", "--data", "/dev/zero"], {}, "is a device"),
        ("text-fifo", [*zoo_train, "charlm", "--text", tmp_path / "fifo"], {}, "is a pipe (FIFO)"),
        ("text-200mb", [*zoo_train, "charlm", "--text", tmp_path / "sparse.txt"], {},
         "200.0 MB, over zoo's bound of 64 MB for a file it reads whole ($ZOO_MAX_READ_MB raises it)"),
        ("text-bound-1mb", [*zoo_train, "charlm", "--text", tmp_path / "text.txt"], {"ZOO_MAX_READ_MB": "1"},
         "over zoo's bound of 1 MB"),
        ("predict-data-fifo", ["predict", exports / "stock.safetensors", "--data", tmp_path / "fifo"], {},
         "is a pipe (FIFO)"),
        ("predict-image-fifo", ["predict", exports / "mnist.safetensors", tmp_path / "fifo"], {}, "is a pipe (FIFO)"),
        ("predict-image-dev-zero", ["predict", exports / "mnist.safetensors", "/dev/zero"], {}, "is a device"),
    ]
    results = run_cases([(name, args, env) for name, args, env, _ in cases] + [
        ("help-dev-zero", [*zoo_train, "charlm", "--text", "/dev/zero", "--help"], {})], tmp_path)
    for name, _, _, says in cases:
        one_line(results[name], says)
    assert results["help-dev-zero"]["code"] == 0 and "Hyperparameters" in results["help-dev-zero"]["out"]
    assert not run.exists()


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl"])
def test_a_fifo_in_a_run_folder_does_not_hang_runs_eval_or_resume(name, exports, tmp_path):
    import shutil

    run = tmp_path / "checkpoints" / "lstm-hihello"
    zoo.train("lstm", "hihello", {"epochs": 2}, run_dir=run, log=lambda line: None)
    (run / name).unlink()
    os.mkfifo(run / name)
    outside = snapshot(tmp_path, skip=(run,))
    commands = {"runs": ["runs"], "eval": ["eval", run], "resume": ["resume", run, "--epochs", "3"]}
    results = run_cases([(command, args, {}) for command, args in commands.items()], tmp_path)
    assert results["runs"]["code"] == 0 and "damaged" in results["runs"]["out"], results["runs"]
    for command in ("eval", "resume"):
        if name == "metrics.jsonl" and command == "eval":
            assert results[command]["code"] == 0, results[command]  # eval reads the export, not the log
            continue
        one_line(results[command], "is a pipe (FIFO)")
    assert snapshot(tmp_path, skip=(run,)) == outside
    shutil.rmtree(run)


def test_a_fifo_as_bench_recipe_does_not_hang_zoo_bench(tmp_path):
    (tmp_path / "results").mkdir()
    os.mkfifo(tmp_path / "results" / "bench.json")
    results = run_cases([("bench", ["bench", "lstm", "hihello", "--out", "results", "--seeds", "0"], {}),
                         ("merge", ["bench", "--merge", "results", "--out", "all"], {})], tmp_path)
    for result in results.values():
        one_line(result, "bench recipe", "is a pipe (FIFO)")


def test_a_vocabulary_of_a_million_entries_with_one_duplicate_is_checked_at_once(exports, tmp_path):
    vocab = [f"t{i}" for i in range(1_000_000)] + ["t0"]
    bad = with_meta(exports / "hi.safetensors", tmp_path / "dup.safetensors", vocab=vocab)
    results = run_cases([("info", ["info", bad], {}), ("eval", ["eval", bad], {})], tmp_path)
    for result in results.values():
        one_line(result, "damaged zoo metadata (meta.vocab has 't0' twice)")
        assert result["cpu"] < 60  # the quadratic check took hours on this
    chars = [chr(0x4E00 + i) for i in range(100_000)] + ["\u4e00"]
    with pytest.raises(zoo.ZooError, match="is in it twice"):
        zoo.encode("\u4e00", chars)


STOCK_METAS = [
    ("std-nan", {"std": [float("nan")] * 5}, "meta.std holds nan"),
    ("std-zero", {"std": [0.0] * 5}, "meta.std holds 0.0, not a positive finite number"),
    ("std-short", {"std": [1.0]}, "meta.std must be a list of 5 numbers, it has 1"),
    ("mean-huge", {"mean": [0.0] * 1_000_000}, "meta.mean must be a list of 5 numbers, it has 1,000,000"),
    ("scale-inf", {"scale": [float("inf")]}, "meta.scale holds inf"),
    ("scale-negative", {"scale": [-1.0]}, "meta.scale holds -1.0"),
    ("horizon-text", {"horizon": "1"}, "meta.horizon is '1', not a whole number"),
    ("mode-unknown", {"mode": "magic"}, "meta.mode is 'magic'"),
]


def test_stock_metadata_is_checked_before_any_number_is_made_from_it(exports, tmp_path):
    prices = exports / "prices.csv"
    cases, expected = [], {}
    for name, changes, says in STOCK_METAS:
        bad = with_meta(exports / "stock.safetensors", tmp_path / f"{name}.safetensors", **changes)
        cases += [(f"eval-{name}", ["eval", bad, "--data", prices], {}),
                  (f"predict-{name}", ["predict", bad, "--data", prices], {})]
        expected[f"eval-{name}"] = expected[f"predict-{name}"] = says
    zero = tmp_path / "std-zero.safetensors"
    cases.append(("init-from-std-zero", ["train", "lstm", "stock", "--data", prices, "--init-from", zero, "-e", "1",
                                         "--out", tmp_path / "new.safetensors"], {}))
    expected["init-from-std-zero"] = "meta.std holds 0.0"
    results = run_cases(cases, tmp_path)
    for name, says in expected.items():
        one_line(results[name], "stock metadata is damaged", says)
    assert not (tmp_path / "new.safetensors").exists()


MNIST_METAS = [
    ("box-huge", {"box": 80_000}, "meta.box is 80000"),
    ("box-negative", {"box": -5}, "meta.box is -5"),
    ("std-zero", {"std": 0}, "meta.std is 0"),
    ("std-nan", {"std": float("nan")}, "meta.std is nan"),
    ("classes-many", {"classes": [str(i) for i in range(1_000_000)]}, "meta.classes must be 10 class names"),
]


def test_mnist_metadata_and_pictures_are_bounded(exports, tmp_path):
    from PIL import Image

    Image.new("L", (40, 40), 255).save(tmp_path / "digit.png")
    Image.new("L", (6000, 6000), 255).save(tmp_path / "huge.png")  # 36 megapixels, a small file
    cases = [(name, ["predict", with_meta(exports / "mnist.safetensors", tmp_path / f"{name}.safetensors", **changes),
                     tmp_path / "digit.png"], {}) for name, changes, _ in MNIST_METAS]
    cases.append(("huge-picture", ["predict", exports / "mnist.safetensors", tmp_path / "huge.png"], {}))
    results = run_cases(cases, tmp_path)
    for name, _, says in MNIST_METAS:
        one_line(results[name], "metadata is damaged", says)
    one_line(results["huge-picture"], "6,000x6,000 pixels", "at most 25,000,000")


def test_the_memory_check_counts_the_sequence_length(tmp_path):
    words = [f"w{i}" for i in range(300)]
    rng = random.Random(0)
    line = lambda: " ".join(rng.choice(words) for _ in range(10_000))  # noqa: E731
    (tmp_path / "pairs.tsv").write_text("".join(f"{line()}\t{line()}\n" for _ in range(250)))
    results = run_cases([("long-pairs", ["train", "seq2seq", "translate", "--pairs", "pairs.tsv", "-e", "1",
                                         "--device", "cpu"], {})], tmp_path, gib=3)
    one_line(results["long-pairs"], "needs at least", "10,001 time steps", "--force tries anyway")
    assert not (tmp_path / "checkpoints").exists()
