"""The torch half of the sequence and text tasks: splits of variable length, baselines, metrics, predictions.

A split stores its sequences end to end in one tensor (a few bytes a step, whatever the spread of
lengths) and gathers a right-padded batch with the lengths per batch; the network reads each
sequence to its own end (zoo.nn.nets.RecurrentNet), so the padding never changes a result.
Training batches are bucketed by length: pools of 50 batches are sorted by length and cut, and the
batches shuffled.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

import zoo

POOL = 50  # batches per bucketing pool: lengths sorted within a pool, so batches stay random across pools
EVAL_BATCH = 256
DTW_BUDGET = 3e10  # cell updates x channels a 1-NN DTW baseline may cost; above it, Euclidean (said)


class Sequences:
    """Labelled sequences of different lengths: `batch(index) -> ((x, lengths), labels)`, x right-padded
    with zeros (token id 0, <pad>) to the batch's longest. `packed=False` is naive padding, for
    comparison: x alone, which the network reads to the end, padding included."""

    def __init__(self, flat: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor, packed: bool = True,
                 bucket: bool = True, words: list | None = None):
        self.flat, self.lengths, self.labels = flat, lengths, labels
        self.starts = torch.cumsum(lengths, 0) - lengths
        self.packed, self.bucket = packed, bucket
        self.words = words  # texts: the words, for the bag-of-words baseline
        self.cpu_lengths = lengths.cpu()

    def __len__(self) -> int:
        return len(self.labels)

    def inputs(self, index: torch.Tensor):
        lengths = self.lengths[index]
        steps = torch.arange(int(lengths.max()), device=self.flat.device)
        real = steps[None, :] < lengths[:, None]
        x = self.flat[torch.where(real, self.starts[index, None] + steps, 0)]
        x = x * (real[..., None] if x.dim() == 3 else real)  # zeros (or <pad>) past each end
        return (x, lengths) if self.packed else x

    def batch(self, index: torch.Tensor):
        return self.inputs(index), self.labels[index]

    def to(self, device) -> "Sequences":
        return Sequences(self.flat.to(device), self.lengths.to(device), self.labels.to(device), self.packed,
                         self.bucket, self.words)

    def buckets(self, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
        """An epoch's batches (zoo.loop.data.epoch_order asks): shuffled, then bucketed by length."""
        order = torch.randperm(len(self), generator=generator)
        if not self.bucket:
            return list(order.split(batch_size))
        batches = []
        for pool in order.split(batch_size * POOL):
            pool = pool[self.cpu_lengths[pool].argsort(stable=True)]
            batches += list(pool.split(batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def by_length(self, batch_size: int = EVAL_BATCH) -> list[torch.Tensor]:
        """Every example once, in batches of similar length (evaluation)."""
        return list(self.cpu_lengths.argsort(stable=True).split(batch_size))

    def joined(self, other: "Sequences | None") -> "Sequences":
        """These examples and `other`'s in one split (the baselines learn from training and validation)."""
        if other is None:
            return self
        words = self.words + other.words if self.words is not None else None
        return Sequences(torch.cat([self.flat, other.flat.to(self.flat.device)]),
                         torch.cat([self.lengths, other.lengths.to(self.lengths.device)]),
                         torch.cat([self.labels, other.labels.to(self.labels.device)]), self.packed, False, words)

    def series(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All sequences right-padded, (n, longest, channels), and their lengths (the 1-NN baseline)."""
        index = torch.arange(len(self), device=self.flat.device)
        x = self.inputs(index)
        return (x[0] if isinstance(x, tuple) else x), self.lengths


def stack(items: list, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(item) for item in items], dtype=torch.long)
    if dtype is torch.long:
        flat = torch.tensor([t for item in items for t in item], dtype=torch.long)
    else:
        flat = torch.tensor([step for item in items for step in item], dtype=dtype)
    return flat, lengths


def standardizer(flat: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation over every real step (missing values left out)."""
    known = ~torch.isnan(flat)
    count = known.sum(0).clamp(min=1)
    values = torch.where(known, flat, 0.0).double()
    mean = values.sum(0) / count
    var = (torch.where(known, flat.double() - mean, 0.0) ** 2).sum(0) / count
    std = var.sqrt()
    return mean.tolist(), torch.where(std > 0, std, torch.ones_like(std)).tolist()


def standardized(flat: torch.Tensor, meta: dict) -> torch.Tensor:
    """The training part's statistics applied; a missing value becomes 0, the channel's mean."""
    if meta.get("standardize", True):
        flat = (flat - torch.tensor(meta["mean"])) / torch.tensor(meta["std"])
    return torch.nan_to_num(flat, nan=0.0)


# -- inference and metrics ------------------------------------------------------------------------

@torch.no_grad()
def probabilities(model, split: Sequences) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities (n, classes), labels) for every example in order, batched by length, eval mode."""
    from zoo import device_of

    was = model.training
    model.eval()
    split = split.to(device_of(model))
    try:
        parts = []
        for index in split.by_length():
            inputs, _ = split.batch(index.to(split.flat.device))
            logits = model(*inputs) if isinstance(inputs, tuple) else model(inputs)
            parts.append((index, torch.softmax(logits.float(), -1).cpu()))
    finally:
        model.train(was)
    out = torch.zeros(len(split), parts[0][1].shape[1])
    for index, p in parts:
        out[index] = p
    return out, split.labels.cpu()


def scores(predicted: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> dict:
    """Accuracy, macro-F1 (classes present in the truth or the predictions), per-class accuracy, confusion."""
    n = len(classes)
    confusion = torch.bincount(labels * n + predicted, minlength=n * n).view(n, n)  # rows: truth
    true, guessed, hits = confusion.sum(1), confusion.sum(0), confusion.diag()
    f1 = 2 * hits / (true + guessed).clamp(min=1)
    present = (true + guessed) > 0
    return {"accuracy": hits.sum().item() / max(len(labels), 1),
            "macro_f1": f1[present].mean().item() if present.any() else 0.0,
            "per_class_accuracy": {c: (hits[i] / true[i]).item() if true[i] else None for i, c in enumerate(classes)},
            "confusion_matrix": confusion.tolist()}


def resampled(x: torch.Tensor, lengths: torch.Tensor, length: int) -> torch.Tensor:
    """Each series stretched linearly to `length` steps (Euclidean distance between unequal lengths)."""
    out = torch.empty(len(x), length, x.shape[2])
    for i, n in enumerate(lengths.tolist()):
        out[i] = F.interpolate(x[i, :n].T[None], size=length, mode="linear", align_corners=True)[0].T
    return out


def dtw(queries, q_len, refs, r_len, window: float) -> torch.Tensor:
    """Dependent DTW distances (n_queries, n_refs): squared Euclidean over channels per matched pair of
    steps, within a Sakoe-Chiba band of `window` x the longer length (at least the length difference).

    The step costs come from one matrix product; the dynamic programme runs over anti-diagonals, each
    a single tensor operation over every pair (L1 + L2 of them, not L1 x L2 cell updates).
    """
    Q, R, L1, L2 = len(queries), len(refs), queries.shape[1], refs.shape[1]
    inf = float("inf")
    # steps first, pairs last: each anti-diagonal is a gather of whole contiguous rows
    cost = ((queries ** 2).sum(-1).T[:, None, :, None] + (refs ** 2).sum(-1).T[None, :, None, :]
            - 2 * torch.einsum("qic,rjc->ijqr", queries, refs)).clamp(min=0).reshape(L1, L2, Q * R)
    longer = torch.maximum(q_len[:, None], r_len[None, :])
    band = torch.maximum((window * longer).ceil().long(), (q_len[:, None] - r_len[None, :]).abs()).reshape(-1)
    gap = (torch.arange(L1)[:, None] - torch.arange(L2)[None, :]).abs()
    cost = cost.masked_fill(gap[:, :, None] > band[None, None, :], inf)
    D = torch.full(((L1 + 1) * (L2 + 1), Q * R), inf)  # cell (i, j) is row i * (L2 + 1) + j
    D[0] = 0.0
    cost = cost.view(L1 * L2, Q * R)
    row = L2 + 1
    for d in range(2, L1 + L2 + 1):  # cells (i, j), 1-based, with i + j = d: rows picked by index_select
        i = torch.arange(max(1, d - L2), min(L1, d - 1) + 1)
        at = i * row + (d - i)
        best = torch.minimum(torch.minimum(D.index_select(0, at - row - 1), D.index_select(0, at - row)),
                             D.index_select(0, at - 1))
        D.index_copy_(0, at, cost.index_select(0, (i - 1) * L2 + (d - i - 1)) + best)
    at = (q_len[:, None] * row + r_len[None, :]).reshape(-1)
    return D[at, torch.arange(Q * R)].view(Q, R)


def nearest_neighbour(train: Sequences, test: Sequences, metric: str, window: float) -> tuple[torch.Tensor, str]:
    """1-NN predictions and the name of the baseline (DTW falls back to Euclidean, said in the name,
    when it would cost more than DTW_BUDGET).

    The series are those the network reads: each channel standardized with the training part's
    statistics, not each series on its own. The UCR univariate files are z-normalised per series
    already; doing it to JapaneseVowels' cepstra (whose levels tell the speakers apart) takes 1-NN DTW
    from 0.957 to 0.649 accuracy, far below the archive's figure.
    """
    (ref, r_len), (query, q_len) = ((x.cpu().float(), n.cpu()) for x, n in (train.series(), test.series()))
    labels = train.labels.cpu()
    cost = len(ref) * len(query) * query.shape[1] * ref.shape[1] * min(1.0, 2 * window + 0.01) * query.shape[2]
    name = f"1-NN DTW (window {window:g})" if window < 1 else "1-NN DTW (unconstrained)"
    if metric == "dtw" and cost > DTW_BUDGET:
        metric, name = "euclidean", f"1-NN Euclidean (DTW would cost {cost:.1e} step pairs)"
    if metric == "euclidean":
        if name.startswith("1-NN DTW"):
            name = "1-NN Euclidean"
        length = int(max(r_len.max(), q_len.max()))
        same = bool((r_len == length).all() and (q_len == length).all())
        a = ref if same else resampled(ref, r_len, length)
        b = query if same else resampled(query, q_len, length)
        if not same:
            name += " (series stretched to one length)"
        a, b = a.flatten(1), b.flatten(1)
        picks = [torch.cdist(part, a).argmin(1) for part in b.split(1024)]
        return labels[torch.cat(picks)], name
    picks = []
    chunk = max(1, int(2e7 // (len(ref) * query.shape[1] * ref.shape[1])))  # about 80 MB of step costs at once
    for start in range(0, len(query), chunk):
        part = slice(start, start + chunk)
        picks.append(dtw(query[part], q_len[part], ref, r_len, window).argmin(1))
    return labels[torch.cat(picks)], name


def naive_bayes(train: Sequences, test: Sequences, classes: int) -> torch.Tensor:
    """Multinomial naive Bayes on bags of words, add-one smoothing (the texts' baseline)."""
    vocab: dict[str, int] = {}
    for words in train.words:
        for w in words:
            vocab.setdefault(w, len(vocab))

    def bags(split):
        ids = [[vocab[w] for w in words if w in vocab] for words in split.words]
        flat = torch.tensor([i for doc in ids for i in doc], dtype=torch.long)
        offsets = torch.tensor([0] + [len(doc) for doc in ids[:-1]], dtype=torch.long).cumsum(0)
        return flat, offsets

    flat, offsets = bags(train)
    labels = train.labels.cpu()
    per_doc = torch.tensor([sum(1 for w in words if w in vocab) for words in train.words])
    counts = torch.zeros(classes, len(vocab))
    counts.index_put_((labels.repeat_interleave(per_doc), flat), torch.ones(len(flat)), accumulate=True)
    log_word = (counts + 1).log() - (counts.sum(1, keepdim=True) + len(vocab)).log()  # (classes, vocab)
    log_prior = torch.bincount(labels, minlength=classes).clamp(min=1).double().log().float()
    flat, offsets = bags(test)
    return (F.embedding_bag(flat, log_word.T.contiguous(), offsets, mode="sum") + log_prior).argmax(1)


def baselines(data: zoo.TaskData, split: str) -> dict:
    """The majority class and the non-neural classifier on `split`, computed once per split. They learn
    from every training example, the validation split's too (the network's early stopping watches
    those): 1-NN as the archive runs it, on the whole training file."""
    test = data.split(split)
    cached = getattr(test, "baseline_scores", None)
    if cached is not None:
        return cached
    classes = data.meta["classes"]
    labels = test.labels.cpu()
    learn = data.train.joined(data.val)
    majority = torch.bincount(learn.labels.cpu(), minlength=len(classes)).argmax()
    out = {"majority class": scores(majority.expand(len(labels)), labels, classes)}
    if data.meta["kind"] == "texts":
        out["bag-of-words naive Bayes"] = scores(naive_bayes(learn, test, len(classes)), labels, classes)
    elif data.meta.get("baseline", "dtw") != "none":
        predicted, name = nearest_neighbour(learn, test, data.meta["baseline"], data.meta["window"])
        out[name] = scores(predicted, labels, classes)
    summary = {name: {k: v for k, v in s.items() if k in ("accuracy", "macro_f1")} for name, s in out.items()}
    test.baseline_scores = summary
    return summary


def evaluate(model, data: zoo.TaskData, split: str) -> dict:
    p, labels = probabilities(model, data.split(split))
    metrics = scores(p.argmax(1), labels, data.meta["classes"])
    if split == "test":  # the baselines on the same split; not per epoch (validation)
        metrics["baselines"] = baselines(data, split)
    return metrics


def headline(metrics: dict) -> str:
    """One line saying honestly whether the network beats every baseline on accuracy and macro-F1."""
    base = metrics.get("baselines") or {}
    if not base:
        return ""
    best = max(base, key=lambda k: base[k]["accuracy"])
    acc, f1 = metrics["accuracy"], metrics["macro_f1"]
    beats = all(acc > b["accuracy"] for b in base.values())
    if beats:
        return f"the network beats every baseline: accuracy {acc:.4f} against {base[best]['accuracy']:.4f} ({best})"
    if acc == base[best]["accuracy"]:
        return f"the network ties the best baseline, {best}, at accuracy {acc:.4f}"
    return (f"the network does NOT beat {best}: accuracy {acc:.4f} against {base[best]['accuracy']:.4f} "
            f"(macro-F1 {f1:.4f} against {base[best]['macro_f1']:.4f})")


def report(metrics: dict) -> str:
    """Headline, the network beside the baselines, per-class accuracy and the confusion matrix."""
    classes = list(metrics["per_class_accuracy"])
    lines = []
    if metrics.get("baselines"):
        lines += [headline(metrics), ""]
    rows = [("network", metrics)] + list((metrics.get("baselines") or {}).items())
    width = max(len(name) for name, _ in rows)
    lines += [f"{'':<{width}}  accuracy  macro-F1"]
    lines += [f"{name:<{width}}  {m['accuracy']:8.4f}  {m['macro_f1']:8.4f}" for name, m in rows]
    names = [f"{i} {c}" for i, c in enumerate(classes)]
    w = max(len(c) for c in names + ["class"])
    lines += ["", f"{'class':<{w}}  accuracy"]
    lines += [f"{c:<{w}}  {'-' if a is None else f'{a:.4f}':>8}" for c, a in
              zip(names, metrics["per_class_accuracy"].values())]
    cells = max(len(str(v)) for row in metrics["confusion_matrix"] for v in row)
    cells = max(cells, len(str(len(classes) - 1)))
    lines += ["", "confusion matrix (rows: true class, columns: predicted class)",
              f"{'':<{w}}  " + " ".join(f"{j:>{cells}}" for j in range(len(classes)))]
    lines += [f"{c:<{w}}  " + " ".join(f"{v:>{cells}}" for v in row)
              for c, row in zip(names, metrics["confusion_matrix"])]
    return "\n".join(lines)


def top(model, split: Sequences, k: int, names: list[str]) -> str:
    """The k likeliest classes of each example, with probabilities."""
    p, _ = probabilities(model, split)
    classes = model.zoo.meta["classes"]
    k = min(k, len(classes))
    lines = []
    for i, row in enumerate(p):
        best = row.argsort(descending=True)[:k].tolist()
        picks = "  ".join(f"{classes[j]} {row[j]:.3f}" for j in best)
        lines.append(f"{names[i]}{picks}" if names else picks)
    return "\n".join(lines)
