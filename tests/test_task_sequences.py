"""The sequences and texts tasks: a user's labelled files trained, evaluated beside baselines, predicted."""

import json

import pytest
import torch

import zoo
from conftest import write_texts, write_ts, zoo_cli
from zoo_plugins.sequences import classify


def quiet(line):
    pass


@pytest.fixture
def tiny(tmp_path):
    return write_ts(tmp_path / "train.ts", n=60), write_ts(tmp_path / "test.ts", n=30, seed=1)


def test_unequal_multivariate_sequences_are_learned_and_beat_the_majority(tiny):
    train, test = tiny
    net = zoo.train("gru", "sequences", {"train": train, "test": test, "hidden_size": 16, "epochs": 40,
                                         "patience": 0}, out=False, log=quiet)
    metrics = net.zoo.metrics
    assert metrics["split"] == "test"
    assert metrics["accuracy"] >= 0.9, metrics
    assert metrics["baselines"]["majority class"]["accuracy"] < 0.5
    assert set(metrics["baselines"]) == {"majority class", "1-NN DTW (unconstrained)"}
    assert len(metrics["confusion_matrix"]) == 3 and sum(map(sum, metrics["confusion_matrix"])) == 30
    assert 0 <= metrics["macro_f1"] <= 1 and set(metrics["per_class_accuracy"]) == {"a", "b", "c"}


def test_standardization_comes_from_the_training_part_only(tiny, tmp_path):
    from zoo.loop.plan import plan

    train, _ = tiny
    p = plan("gru", "sequences", {"train": train, "val_fraction": 0.2})  # small data: none held out unless asked
    data = p.task.data(p.task_config, None)
    x, lengths = data.train.series()
    real = torch.arange(x.shape[1])[None, :] < lengths[:, None]
    steps = x[real]  # the training part, standardized: mean 0, deviation 1 per channel
    torch.testing.assert_close(steps.mean(0), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(steps.std(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    assert len(data.train) + len(data.val) + len(data.test) == 60
    held = data.val.series()[0]
    assert held.shape[0] == len(data.val) and json.loads(json.dumps(data.meta))["mean"] == data.meta["mean"]


def test_padded_batches_give_each_sequence_its_own_logits_and_naive_padding_does_not(tiny):
    from zoo.loop.plan import plan

    train, _ = tiny
    for packing, same in (("packed", True), ("padded", False)):
        p = plan("lstm", "sequences", {"train": train, "packing": packing, "hidden_size": 8})
        data = p.task.data(p.task_config, None)
        torch.manual_seed(0)
        net = p.model.build(p.model_config, data.problem).eval()
        index = torch.arange(len(data.train))
        inputs, _ = data.train.batch(index)
        with torch.no_grad():
            together = net(*inputs) if packing == "packed" else net(inputs)
            alone = torch.cat([net(data.train.batch(i[None])[0][0][:, :int(data.train.lengths[i])])
                               if packing == "packed" else net(data.train.batch(i[None])[0]) for i in index])
        assert torch.allclose(together, alone, atol=1e-5) == same


def test_buckets_cover_every_example_once_and_cut_the_padding(tiny):
    from zoo.loop.plan import plan

    p = plan("gru", "sequences", {"train": tiny[0]})
    split = plan and p.task.data(p.task_config, None).train
    batches = split.buckets(4, torch.Generator().manual_seed(0))
    assert sorted(torch.cat(batches).tolist()) == list(range(len(split)))
    shuffled = split.buckets.__func__(type("S", (), {"__len__": lambda s: len(split), "bucket": False,
                                                      "cpu_lengths": split.cpu_lengths})(), 4,
                                      torch.Generator().manual_seed(0))

    def padding(parts):
        return sum(int(split.lengths[b].max()) * len(b) - int(split.lengths[b].sum()) for b in parts)

    assert padding(batches) < padding(shuffled)


def test_texts_words_and_characters_beside_naive_bayes(tmp_path):
    path = write_texts(tmp_path / "reviews.tsv", n=200)
    for level, epochs in (("word", 15), ("char", 30)):
        net = zoo.train("gru", "texts", {"train": path, "level": level, "hidden_size": 24, "embed_dim": 16,
                                         "epochs": epochs, "lr": 0.01, "patience": 0}, out=False, log=quiet)
        metrics = net.zoo.metrics
        assert metrics["accuracy"] >= 0.8, (level, metrics)
        assert metrics["baselines"]["bag-of-words naive Bayes"]["accuracy"] >= 0.8
    assert net.zoo.meta["vocab"][:4] == list(zoo.SPECIAL_TOKENS)


def test_the_vocabulary_cap_reads_rare_words_as_unk(tmp_path):
    from zoo.loop.plan import plan

    path = write_texts(tmp_path / "reviews.tsv", n=40)
    p = plan("gru", "texts", {"train": path, "max_vocab": 7})
    data = p.task.data(p.task_config, None)
    assert len(data.meta["vocab"]) == 7 and data.problem.vocab_size == 7
    assert (data.train.flat == zoo.UNK).any()


def test_train_eval_predict_from_the_command_line(runner, tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train, test = tiny
    out = tmp_path / "seq.safetensors"
    result = zoo_cli(runner, "train", "gru", "sequences", "--train", train, "--test", test, "--epochs", "15",
                     "--out", out)
    assert result.exit_code == 0, result.output
    assert "defaults for this data: hidden_size=32" in result.output and "3 classes" in result.output
    assert "val_fraction=0.0" in result.output  # small data: no validation hold-out
    result = zoo_cli(runner, "eval", out, "--train", train, "--test", test)
    assert result.exit_code == 0, result.output
    for part in ("network", "majority class", "1-NN DTW", "macro-F1", "confusion matrix", "the network"):
        assert part in result.output
    result = zoo_cli(runner, "eval", out)
    assert result.exit_code != 0 and "--train PATH" in result.output
    result = zoo_cli(runner, "predict", out, test, "--top", "2")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 30 and lines[0].startswith("line 10: ") and len(lines[0].split()) == 6
    result = zoo_cli(runner, "predict", out, "0.1,0.2,0.3:1,1,1", "--top", "3")
    assert result.exit_code == 0, result.output
    probabilities = [float(v) for v in result.output.split()[1::2]]
    assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)


def test_predict_a_line_of_text(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_texts(tmp_path / "reviews.tsv", n=60)
    out = tmp_path / "t.safetensors"
    result = zoo_cli(runner, "train", "gru", "texts", "--train", path, "--epochs", "25", "--out", out)
    assert result.exit_code == 0, result.output
    assert "embed_dim=64" in result.output
    result = zoo_cli(runner, "predict", out, "the film was lovely")
    assert result.exit_code == 0, result.output
    assert result.output.split()[0] == "pos"
    result = zoo_cli(runner, "predict", out, "an awful plot", "--top", "2")
    assert result.output.split()[0] == "neg" and len(result.output.split()) == 4


def test_bench_compares_cells_on_the_users_data(runner, tmp_path, monkeypatch):
    """`zoo bench '*' sequences -o train=FILE` (here two cells, to stay fast: each is a process)."""
    monkeypatch.chdir(tmp_path)
    train = write_ts(tmp_path / "train.ts", n=30)
    result = zoo_cli(runner, "bench", "gru,lstm-bi", "sequences", "-o", f"train={train}", "-o", "baseline=none",
                     "--epochs", "2", "--seeds", "0", "--workers", "1", "--out", tmp_path / "results")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "results" / "results.jsonl").read_text().splitlines()]
    assert sorted(row["model"] for row in rows) == ["gru", "lstm-bi"]
    for row in rows:
        assert row["metric"] == "accuracy" and 0 <= row["value"] <= 1, row
        assert f"-o train={train}" in row["command"]


def test_dtw_matches_the_textbook_recurrence():
    import math

    def reference(a, b, w):
        n, m = len(a), len(b)
        r = max(math.ceil(w * max(n, m)), abs(n - m))
        D = [[math.inf] * (m + 1) for _ in range(n + 1)]
        D[0][0] = 0
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                if abs(i - j) <= r:
                    D[i][j] = float(((a[i - 1] - b[j - 1]) ** 2).sum()) + min(D[i - 1][j - 1], D[i - 1][j],
                                                                             D[i][j - 1])
        return D[n][m]

    g = torch.Generator().manual_seed(0)
    q_len, r_len = torch.tensor([5, 3, 7]), torch.tensor([4, 7, 2, 6])
    q, r = torch.randn(3, 7, 2, generator=g), torch.randn(4, 7, 2, generator=g)
    for w in (1.0, 0.2, 0.0):
        expected = torch.tensor([[reference(q[i, :q_len[i]], r[j, :r_len[j]], w) for j in range(4)]
                                 for i in range(3)])
        torch.testing.assert_close(classify.dtw(q, q_len, r, r_len, w), expected)
