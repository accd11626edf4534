"""Bad sequence and text files: one clear line each, naming the file and line, and nothing written."""

import pytest

from conftest import one_line_error, write_texts, write_ts, zoo_cli

HEADER = ("@problemName T\n@timeStamps false\n@missing {missing}\n@univariate false\n@dimensions 2\n"
          "@equalLength false\n@classLabel true a b\n@data\n")
GOOD = "1,2,3:4,5,6:a\n2,3:1,1:b\n1,1,1:2,2,2:a\n3,2:1,0:b\n"


def ts(body: str, missing: str = "false") -> str:
    return HEADER.format(missing=missing) + body


CASES = [
    ("no-data.ts", ts("").replace("@data\n", ""), "no @data line"),
    ("dimensions.ts", ts(GOOD + "1,2,3:a\n"), "line 13: 1 dimensions, but @dimensions says 2"),
    ("ragged.ts", ts(GOOD + "1,2,3:4,5:a\n"), "line 13: its dimensions have different lengths (3, 2)"),
    ("label.ts", ts(GOOD + "1,2:3,4:c\n"), "line 13: label 'c' is not one of @classLabel's: a b"),
    ("missing.ts", ts(GOOD + "1,?,3:4,5,6:a\n"), "line 13: a missing value ('?') but the file says @missing false"),
    ("nan.ts", ts(GOOD + "1,NaN,3:4,5,6:a\n"), "line 13: a missing value ('NaN') but the file says @missing false"),
    ("one.ts", ts("1,2,3:4,5,6:a\n2,3:1,1:b\n1,1,1:2,2,2:a\n"), "line 10: class 'b' has one example"),
    ("empty-line.ts", ts("1,2,3:4,5,6:a\n\n2,3:1,1:b\n"), "line 10: an empty line in @data"),
    ("word.ts", ts(GOOD + "1,x:3,4:a\n"), "line 13: 'x' is not a number"),
    ("header.ts", "@problemName T\n@colour red\n@data\n", "line 2: unknown header @colour"),
    ("nolabels.ts", ts(GOOD).replace("@classLabel true a b", "@classLabel false"), "no @classLabel true"),
    ("stamps.ts", ts(GOOD).replace("@timeStamps false", "@timeStamps true"), "@timeStamps true is not supported"),
    ("table.txt", "a,b\n", "expected a .ts file"),
    ("rows.csv", "id,label,x\n1,a,0.5\n2,b,1\n1,a,2\n", "line 4: id '1' again after other ids"),
    ("labels.csv", "id,label,x\n1,a,0.5\n1,b,1\n", "line 3: id '1' has two labels, 'a' and 'b'"),
    ("columns.csv", "id,label,x\n1,a,0.5,3\n", "line 2: 4 columns, but the header has 3"),
    ("noid.csv", "label,x\na,0.5\n", "line 1: the header must name an 'id' column"),
]


@pytest.mark.parametrize("name, text, message", CASES, ids=[c[0] for c in CASES])
def test_bad_sequence_files_are_one_line_and_nothing_is_written(runner, tmp_path, monkeypatch, name, text, message):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    path.write_text(text)
    line = one_line_error(zoo_cli(runner, "train", "gru", "sequences", "--train", path))
    assert message in line and name in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no run folder, no export


TEXTS = [
    ("notab.tsv", "pos\tgood film\nneg bad film\n", "line 2: no tab: expected label<TAB>text"),
    ("blank.tsv", "pos\tgood film\n\nneg\tbad film\n", "line 2: an empty line"),
    ("emptytext.tsv", "pos\tgood film\nneg\t  \n", "line 2: an empty text"),
    ("single.tsv", "pos\tgood\nneg\tbad\npos\tfine\n", "class 'neg' has one example"),
    ("onlyone.tsv", "pos\tgood\npos\tfine\n", "one class only ('pos')"),
    ("latin1.tsv", None, "is not UTF-8 text"),
]


@pytest.mark.parametrize("name, text, message", TEXTS, ids=[c[0] for c in TEXTS])
def test_bad_text_files_are_one_line_and_nothing_is_written(runner, tmp_path, monkeypatch, name, text, message):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    if text is None:
        path.write_bytes("pos\tcaf\u00e9\n".encode("latin-1"))
    else:
        path.write_text(text)
    line = one_line_error(zoo_cli(runner, "train", "gru", "texts", "--train", path))
    assert message in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_a_test_class_never_seen_in_training(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = tmp_path / "train.ts"
    train.write_text(ts(GOOD))
    test = tmp_path / "test.ts"
    test.write_text(ts("1,2:3,4:a\n").replace("@classLabel true a b", "@classLabel true a b z") + "5,5:6,6:z\n")
    line = one_line_error(zoo_cli(runner, "train", "gru", "sequences", "--train", train, "--test", test))
    assert "test.ts line 10: class 'z' never appears in the training file" in line, line
    texts = write_texts(tmp_path / "train.tsv", n=10)
    other = tmp_path / "other.tsv"
    other.write_text("pos\tfine\nmeh\tso so\n")
    line = one_line_error(zoo_cli(runner, "train", "gru", "texts", "--train", texts, "--test", other))
    assert "other.tsv line 2: class 'meh' never appears" in line, line


def test_a_sequence_longer_than_the_bound(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "long.ts"
    path.write_text(ts(GOOD + ",".join(["1"] * 12) + ":" + ",".join(["2"] * 12) + ":a\n"))
    line = one_line_error(zoo_cli(runner, "train", "gru", "sequences", "--train", path, "--max-length", "10"))
    assert "long.ts line 13: a sequence of 12 steps, longer than max_length 10" in line, line
    assert "max_length must be in [1, 100,000]" in one_line_error(
        zoo_cli(runner, "train", "gru", "sequences", "--train", path, "--max-length", "1000000"))
    texts = tmp_path / "long.tsv"
    texts.write_text("pos\tgood\nneg\tbad\npos\tfine\nneg\t" + "x " * 30 + "\n")
    line = one_line_error(zoo_cli(runner, "train", "gru", "texts", "--train", texts, "--max-length", "20"))
    assert "long.tsv line 4: a text of 30 tokens, longer than max_length 20" in line, line


def test_too_many_lines_are_refused_in_one_line(runner, tmp_path, monkeypatch):
    """The bound on a file's lines (2,000,000; a 10^6-line file is read: docs/sequences.md gives its time and
    memory), tried with a smaller bound."""
    from zoo_plugins.sequences import files

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(files, "MAX_ITEMS", 5)
    path = write_texts(tmp_path / "many.tsv", n=6)
    assert "6 lines; at most 5 are read" in one_line_error(zoo_cli(runner, "train", "gru", "texts", "--train", path))
    path = write_ts(tmp_path / "many.ts", n=6)
    assert "6 sequences; at most 5 are read" in one_line_error(
        zoo_cli(runner, "train", "gru", "sequences", "--train", path))


def test_no_train_file_and_mismatched_channels(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert "give the labelled examples to learn: --train FILE" in one_line_error(
        zoo_cli(runner, "train", "gru", "sequences"))
    train = write_ts(tmp_path / "train.ts", n=9)
    test = write_ts(tmp_path / "test.ts", n=9, channels=3)
    assert "test.ts has 3 channels, " in one_line_error(
        zoo_cli(runner, "train", "gru", "sequences", "--train", train, "--test", test))
    assert "sequence file " in one_line_error(zoo_cli(runner, "train", "gru", "sequences", "--train", "nope.ts"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.ts", "train.ts"]


def test_missing_values_are_allowed_where_the_file_says_so(tmp_path):
    import zoo

    path = tmp_path / "gaps.ts"
    path.write_text(ts(GOOD + "1,?,3:4,NaN,6:a\n", missing="true"))
    net = zoo.train("gru", "sequences", {"train": path, "test_fraction": 0.4, "val_fraction": 0, "epochs": 1,
                                         "hidden_size": 4, "baseline": "euclidean"}, out=False, log=lambda line: None)
    assert 0 <= net.zoo.metrics["accuracy"] <= 1
    assert all(v == v for v in net.zoo.meta["mean"] + net.zoo.meta["std"])  # no NaN statistics


def test_a_bad_predict_input_is_one_line(runner, tmp_path, monkeypatch):
    import zoo

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "m.safetensors"
    zoo.train("gru", "sequences", {"train": write_ts(tmp_path / "t.ts", n=12), "epochs": 1, "hidden_size": 4,
                                   "baseline": "none"}, out=out, run_dir=tmp_path / "run", log=lambda line: None)
    assert "the model reads 2 channels a step; 1,2,3 has 1" in one_line_error(zoo_cli(runner, "predict", out, "1,2,3"))
    assert "is neither a file nor a sequence" in one_line_error(zoo_cli(runner, "predict", out, "hello"))
