"""What `zoo inspect` shows for each built-in task, beside the views every task gets from the trace.

Each function is a task's `inspect(model, inputs, **options)`: it reads the inputs as `zoo predict`
does (none: a few examples of the task's own), traces the model on each with `zoo.trace`, and adds
its own views made with `zoo.View`. Imported on first use only, so that `zoo list` stays torch-free.
"""

from __future__ import annotations

import os
import re

import torch
from torch.nn import functional as F

import zoo

MAX_CHARS = 20_000  # charlm: a longer text is cut to its first MAX_CHARS characters, saying so
RANKED = 8  # units listed per feature
TOPK_STEPS = 200  # per-step top-k tables show at most this many steps
TEXT_BYTES = 3_500_000  # charlm's coloured text holds as many of the top layer's units as fit, at 4 bits each


def _no_file_input(card, field: str, what: str):
    raise zoo.ZooError(f"this model was trained on {card.sources[field]!r}: give {what} to inspect (zoo does not "
                       f"open files a weights file names)")


# -- hihello ------------------------------------------------------------------------------------

def hihello(model, inputs: tuple[str, ...]) -> list:
    from zoo import encode

    vocab = model.zoo.meta["vocab"]
    examples = []
    for text in inputs or (model.zoo.task_config.word[:-1],):
        if not text:
            raise zoo.ZooError("the input is empty: give some characters to continue, such as hihell")
        ids = torch.tensor([encode(text, vocab, "the input")])
        found = zoo.trace(model, ids)
        p = torch.softmax(found.output[0].float(), -1)  # (steps, vocab)
        steps = list(text)
        made = "".join(vocab[i] for i in p.argmax(-1).tolist())
        examples.append(zoo.InspectExample(
            label=text, trace=found, steps=steps, summary=f"reads {text!r} and predicts {made!r}, a character a step",
            views=[zoo.View.heatmap("input: each character one-hot", F.one_hot(ids[0], len(vocab)).T, 0, 1,
                                    rows=vocab, cols=steps, row_name="character"),
                   zoo.View.heatmap("output: softmax over the vocabulary at each step", p.T, 0, 1, rows=vocab,
                                    cols=steps, row_name="character"),
                   zoo.View.topk("the likeliest next characters at each step", p, vocab, steps, k=len(vocab))]))
    return examples


# -- charlm -------------------------------------------------------------------------------------

def _depth(text: str, opening: str, closing: str) -> torch.Tensor:
    """Bracket depth after reading each character (never below 0)."""
    depth, out = 0, []
    for ch in text:
        depth = depth + 1 if ch in opening else max(0, depth - 1) if ch in closing else depth
        out.append(depth)
    return torch.tensor(out, dtype=torch.float32)


def _line_position(text: str) -> torch.Tensor:
    position, out = 0, []
    for ch in text:
        position = 0 if ch == "\n" else position + 1
        out.append(position)
    return torch.tensor(out, dtype=torch.float32)


def _quotes(text: str) -> torch.Tensor:
    """1 inside "..." (an odd number of straight quotes so far) or inside “...” (curly ones, as books print them)."""
    straight = curly = False
    out = []
    for ch in text:
        straight = not straight if ch == '"' else straight
        curly = True if ch == "“" else False if ch == "”" else curly
        out.append(straight or curly)
    return torch.tensor(out, dtype=torch.float32)


FEATURES = {  # value after reading each character: what the state could know by then
    "quotes": ("inside double quotes, straight or curly", _quotes),
    "brackets": ("inside any bracket ( [ {", lambda t: (_depth(t, "([{", ")]}") > 0).float()),
    "bracket-depth": ("depth of nested brackets ( [ {", lambda t: _depth(t, "([{", ")]}")),
    "parentheses": ("inside parentheses", lambda t: (_depth(t, "(", ")") > 0).float()),
    "line-position": ("characters since the start of the line", _line_position),
}


def _spans(pattern: re.Pattern, text: str) -> torch.Tensor:
    """1 from the first character of each match up to the one before its last: after reading those, the
    reader is inside the span."""
    values = torch.zeros(len(text))
    for match in pattern.finditer(text):
        values[match.start(): max(match.start() + 1, match.end() - 1)] = 1
    return values


def parse_features(names: list[str]) -> list[tuple[str, str, object]]:
    """(name, what it is, text -> values) for each --feature; an unknown name or a bad regex is one line."""
    found = []
    for name in names:
        if name.startswith("regex:"):
            try:
                pattern = re.compile(name[len("regex:"):])
            except re.error as e:
                raise zoo.ZooError(f"--feature {name!r}: the regular expression does not compile ({e})") from None
            if not pattern.pattern:
                raise zoo.ZooError("--feature regex: needs a pattern, e.g. 'regex:\"[^\"]*\"'")
            found.append((name, f"inside matches of {pattern.pattern}", lambda t, p=pattern: _spans(p, t)))
        elif name in FEATURES:
            found.append((name, *FEATURES[name]))
        else:
            raise zoo.ZooError(f"unknown feature {name!r}{zoo.suggest(name, FEATURES)}; the built-in ones are "
                               f"{', '.join(FEATURES)}, or regex:PATTERN for spans of a regular expression")
    return found


def read_input(arg: str, echo) -> tuple[str, str]:
    """(label, text): a file's text when `arg` names a file (its first MAX_CHARS characters), else `arg`."""
    if os.path.isfile(arg):
        size = os.path.getsize(arg)
        with open(arg, "rb") as f:
            head = f.read(MAX_CHARS * 4 + 4)  # enough bytes for MAX_CHARS characters of UTF-8, never the whole file
        text = head.decode("utf-8", errors="ignore") if len(head) < size else None
        if text is None:
            try:
                text = head.decode("utf-8")
            except UnicodeDecodeError as e:
                raise zoo.ZooError(f"{arg} is not UTF-8 text ({e.reason} at byte {e.start})") from None
        if len(text) > MAX_CHARS or len(head) < size:
            echo(f"note: {arg} has {size:,} bytes; inspecting its first {MAX_CHARS:,} characters")
            text = text[:MAX_CHARS]
        return os.path.basename(arg), text
    if len(arg) > MAX_CHARS:
        echo(f"note: the text has {len(arg):,} characters; inspecting its first {MAX_CHARS:,}")
        arg = arg[:MAX_CHARS]
    return (arg[:24] + "..." if len(arg) > 24 else arg), arg


def correlations(activations: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Pearson's r of each column of activations (chars, units) with values (chars,); 0 for a constant unit."""
    a = activations.double() - activations.double().mean(0)
    v = values.double() - values.double().mean()
    r = (a * v[:, None]).sum(0) / (a.pow(2).sum(0).sqrt() * v.pow(2).sum().sqrt())
    return torch.nan_to_num(r, nan=0.0).float()


def feature_values(features, text: str) -> list[tuple[str, str, torch.Tensor]]:
    """(name, what, value after each character) of each feature; one that never changes is one line."""
    found = []
    for name, what, function in features:
        values = function(text)
        if float(values.std()) == 0:
            raise zoo.ZooError(f"--feature {name!r} ({what}) matches nothing in the text" if float(values.max()) == 0
                               else f"--feature {name!r} ({what}) is the same at every character of the text")
        found.append((name, what, values))
    return found


def rank_units(found, features: list[tuple[str, str, torch.Tensor]]) -> tuple[list[str], torch.Tensor, list[dict]]:
    """Every unit's h (and c) of every layer as a column, and per feature the units ranked by |r|."""
    labels, columns = [], []
    for layer in found.layers:
        for name in ("h", "c"):
            if name in layer.tensors:
                values = layer.tensors[name][0].float()
                labels += [f"{layer.name} {name}{unit}" for unit in range(values.shape[1])]
                columns.append(values)
    activations = torch.cat(columns, 1)
    rankings = []
    for name, what, values in features:
        r = correlations(activations, values)
        best = r.abs().argsort(descending=True)[:RANKED].tolist()
        rankings.append({"feature": name, "what": what, "units": [[i, float(r[i])] for i in best]})
    return labels, activations, rankings


def charlm(model, inputs: tuple[str, ...], feature: list[str] = (), echo=print) -> list:
    from zoo import encode

    card = model.zoo
    vocab = card.meta["vocab"]
    features = parse_features(list(feature) or ["line-position"])
    if not inputs:
        if card.sources.get("text"):
            _no_file_input(card, "text", "a text, or a text file")
        from .charlm import SENTENCE

        inputs = (SENTENCE,)
    examples = []
    for arg in inputs:
        label, text = read_input(arg, echo)
        if len(text) < 2:
            raise zoo.ZooError(f"{label!r} is too short: give at least 2 characters")
        ids = torch.tensor([encode(text, vocab, repr(label))])
        values = feature_values(features, text)  # before the work: a feature that matches nothing is one line
        found = zoo.trace(model, ids)
        logp = torch.log_softmax(found.output[0].float(), -1)  # (chars, vocab): what comes after each character
        surprisal = torch.cat([torch.zeros(1), -logp[:-1].gather(1, ids[0, 1:, None])[:, 0]])
        top = logp.exp().topk(min(5, len(vocab)), -1)
        labels, activations, rankings = rank_units(found, values)
        # the text view embeds every unit of the top layer's h (as many as fit), and the ranked units
        last = found.layers[-1].name + " h"
        fit = max(1, int(TEXT_BYTES * 2 // len(text)))
        bank = [i for i, la in enumerate(labels) if la.startswith(last)][:fit]
        bank += [i for r in rankings for i, _ in r["units"] if i not in bank]
        bank = list(dict.fromkeys(bank))
        position = {column: k for k, column in enumerate(bank)}
        shown = [{"feature": f"{r['feature']} ({r['what']})",
                  "units": [[position[i], corr] for i, corr in r["units"]]} for r in rankings]
        columns = [(labels[i], activations[:, i]) for i in bank]
        steps = list(text)
        window = min(len(text), TOPK_STEPS)
        best_lines = [[r["feature"], labels[r["units"][0][0]], f"{r['units'][0][1]:+.3f}",
                       ", ".join(f"{labels[i]} {c:+.2f}" for i, c in r["units"][1:4])] for r in rankings]
        nats = float(surprisal[1:].mean())
        examples.append(zoo.InspectExample(
            label=label, trace=found, steps=steps,
            summary=f"{len(text):,} characters, {nats:.3f} nats per character on average (perplexity "
                    f"{torch.tensor(nats).exp():.2f})",
            views=[zoo.View.text("the text coloured by one unit: click a unit (ranked by correlation with each "
                                 "feature) to recolour; hover a character for its surprisal and the top next",
                                 text, columns, surprisal, top.indices, top.values, vocab, shown,
                                 note="r: Pearson correlation of the unit's activation after each character with "
                                      "the feature there (LSTMVis's select view, Karpathy et al.'s cells)"),
                   zoo.View.table("finding units: the best for each feature", ["feature", "best unit", "r",
                                                                              "next best"], best_lines),
                   zoo.View.topk("the likeliest next characters after each character", logp[:window].exp(),
                                 vocab, steps[:window],
                                 note=f"the first {window:,} of {len(text):,} characters" if window < len(text)
                                 else "")]))
    return examples


# -- mnist, fashion-mnist -----------------------------------------------------------------------

def _rows_probabilities(model, found):
    """Class probabilities after each row: the output layer applied to the state after that row (a
    network that reads one way, with zoo's RecurrentNet output layer), else None."""
    head = getattr(model, "head", None)
    if head is None or getattr(model, "directions", 1) != 1:
        return None
    with torch.no_grad():
        return torch.softmax(head(found.top().tensors["h"][0]).float(), -1)


def mnist(model, inputs: tuple[str, ...], count: int | None = None) -> list:
    from zoo import batched_outputs

    from .mnist import Normalize, read_picture

    card = model.zoo
    meta, classes = card.meta, card.meta["classes"]
    normalize = Normalize(meta["mean"], meta["std"])
    chosen = []  # (label, pixels, truth)
    test = None
    for arg in inputs:
        if re.fullmatch(r"test:\d+", arg):
            if test is None:
                test = zoo.get_task(card.task).load_data(card.task_config, meta).test
            number = int(arg[5:])
            if number >= len(test):
                raise zoo.ZooError(f"{arg}: the test split has {len(test):,} images (test:0 to test:{len(test) - 1})")
            chosen.append((arg, test.inputs[number], classes[int(test.targets[number])]))
        else:
            chosen.append((os.path.basename(arg), read_picture(arg, "auto", meta.get("box", 28)), None))
    if not inputs:
        test = zoo.get_task(card.task).load_data(card.task_config, meta).test
        count = count or 8
        predicted = torch.cat([logits.argmax(-1).cpu() for logits, _ in batched_outputs(model, test)])
        wrong = (predicted != test.targets).nonzero()[:, 0].tolist()
        picks = wrong[: count // 2]
        picks += [i for i in range(len(test)) if i not in picks][: count - len(picks)]
        chosen = [(f"test:{i}{' (wrong)' if i in wrong else ''}", test.inputs[i], classes[int(test.targets[i])])
                  for i in picks]
    examples = []
    device = next(model.parameters()).device
    for label, pixels, truth in chosen:
        found = zoo.trace(model, normalize(pixels[None].to(device)))
        final = torch.softmax(found.output[0].float().cpu(), -1)
        rows = _rows_probabilities(model, found)
        steps = [f"row {r + 1}" for r in range(pixels.shape[0])]
        guess = classes[int(final.argmax())]
        summary = f"predicted {guess} ({float(final.max()):.2f})" + (f", truth {truth}" if truth else "")
        views = []
        if rows is not None:
            settled = rows.argmax(-1)
            changes = (settled != settled[-1]).nonzero()
            first = int(changes[-1]) + 2 if len(changes) else 1
            summary += f"; the prediction stays {guess} from row {first} on"
            views += [zoo.View.image_rows("the image read row by row, beside the class probabilities after each row "
                                          "(move the slider)", pixels, rows.cpu(), classes, truth),
                      zoo.View.heatmap("class probabilities after each row", rows.T, 0, 1, rows=classes,
                                       cols=[str(r + 1) for r in range(len(steps))], row_name="class", col_name="row")]
            probs, note = rows, ""
        else:
            probs, note = final[None], "a network that reads both ways has one output, after the last row"
            steps = steps[-1:]
        views.append(zoo.View.topk("the likeliest classes after each row", probs, classes, steps, k=3, note=note))
        examples.append(zoo.InspectExample(label=label, trace=found, steps=[s.split()[1] for s in steps] if rows
                                           is not None else [], views=views, summary=summary))
    return examples


# -- translate ----------------------------------------------------------------------------------

def translate(model, inputs: tuple[str, ...], beam: int | None = None) -> list:
    from .translate import COURSE_PAIRS, checked_meta, decoding_cap, encode, tokenize

    card = model.zoo
    meta = checked_meta(card.meta, card.problem)
    if not inputs and card.sources.get("pairs"):
        _no_file_input(card, "pairs", "sentences")
    sentences = inputs or tuple(source for source, _ in COURSE_PAIRS)
    source_vocab, target_vocab = meta["source_vocab"], meta["target_vocab"]
    index = {token: i for i, token in enumerate(source_vocab)}
    device = next(model.parameters()).device
    examples = []
    for sentence in sentences:
        tokens = tokenize(sentence, meta["level"], meta["lowercase"])
        if not tokens:
            raise zoo.ZooError("nothing to translate: the sentence is empty")
        ids = encode(tokens, index, meta["fallback"])
        src = torch.tensor([ids], device=device)
        src_len = torch.tensor([len(ids)], device=device)
        logits = []  # the output layer's logits at each decoding step (Seq2SeqNet.out)
        hook = model.out.register_forward_hook(lambda module, args, out: logits.append(out[0].float().cpu()))
        try:
            found = zoo.trace(model.generate, src, src_len, decoding_cap(meta, len(ids)), 1)
        finally:
            hook.remove()
        made = found.output[0]
        p = torch.softmax(torch.stack(logits), -1)  # (decoding steps, target vocabulary)
        source = [source_vocab[i] for i in ids]
        written = [target_vocab[i] for i in p.argmax(-1).tolist()]
        inputs_read = ["<s>", *written[:-1]]
        steps = {part: source for part in found.parts() if part.startswith("encoders")}
        steps["decoder"] = inputs_read
        views = [zoo.View.topk("the likeliest next tokens at each decoding step", p, target_vocab, written, k=5)]
        if model.attention:
            with torch.no_grad():
                enc = model.encode(src, src_len)
                h = found.top("decoder").tensors["h"][0]
                attention = torch.softmax(h @ enc.keys[0].T, -1)  # as Seq2SeqNet.step scores each source position
            views.insert(0, zoo.View.heatmap("attention: where each target token looked in the source", attention,
                                             0, 1, rows=written, cols=source, row_name="target", col_name="source"))
        if beam:
            alternatives = []
            with torch.no_grad():
                enc = model.encode(src, src_len)
                model._beam(enc, decoding_cap(meta, len(ids)), beam, alternatives)
            from .translate import detokenize

            views.append(zoo.View.table(f"beam search, width {beam}: the finished hypotheses, best first",
                                        ["mean log-probability per token", "translation"],
                                        [[f"{score:.3f}", detokenize([target_vocab[t] for t in hyp], meta["level"])]
                                         for score, hyp in alternatives]))
        from .translate import detokenize

        summary = f"{sentence} -> {detokenize([target_vocab[t] for t in made], meta['level'])}"
        examples.append(zoo.InspectExample(label=sentence[:30], trace=found, steps=steps, views=views, summary=summary))
    return examples


# -- stock --------------------------------------------------------------------------------------

def stock(model, inputs: tuple[str, ...]) -> list:
    import dataclasses

    from .stock.forecasts import forecasts, scores

    card = model.zoo
    if len(inputs) > 1:
        raise zoo.ZooError(f"give one price file to inspect, not {len(inputs)}")
    if not inputs and card.sources.get("data"):
        _no_file_input(card, "data", "a price file")
    config = dataclasses.replace(card.task_config, data=os.path.abspath(inputs[0])) if inputs else card.task_config
    data = zoo.get_task(card.task).load_data(config, card.meta)
    truth, guesses = forecasts(model, data, "test")
    metrics = scores(truth, guesses)
    column = card.meta["columns"][-1]
    days = [f"test day {d + 1}" for d in range(len(truth))]
    windows = data.test
    x, _ = windows.batch(torch.tensor([len(windows) - 1], device=windows.windows.starts.device))
    found = zoo.trace(model, x.to(next(model.parameters()).device))
    prefix = {"model": "", "persistence": "persistence_", "drift": "drift_", "linear AR": "linear_ar_"}
    views = [zoo.View.lines(f"{column} over the test days: truth, the network and the baselines",
                            {"truth": truth[:, -1], **{n: g[:, -1] for n, g in guesses.items()}}, days, y_name=column),
             zoo.View.lines("residuals: forecast minus truth", {n: g[:, -1] - truth[:, -1] for n, g in guesses.items()},
                            days, y_name=column),
             zoo.View.table("errors over the test days", ["forecast", "rmse", "mae"],
                            [[n, f"{metrics[p + 'rmse']:.4f}", f"{metrics[p + 'mae']:.4f}"]
                             for n, p in prefix.items()])]
    window = x.shape[1]
    return [zoo.InspectExample(
        label="test days", trace=found, steps=[f"t-{window - 1 - s}" if s < window - 1 else "t" for s in range(window)],
        views=views, summary=f"{len(truth)} test days; best: {metrics['best']}; the network's rmse is "
                             f"{metrics['rmse_vs_persistence']:.3f}x persistence's. The cells below read the last "
                             f"test window.")]


# -- sequences, texts ---------------------------------------------------------------------------

def _labelled_inputs(card, inputs: tuple[str, ...]) -> list[tuple[str, list, str | None]]:
    """(name, items: steps or tokens, truth or None) of each input, read as `zoo predict` reads it: a .ts
    or .csv file (its labels, when it has them, are the truth), an inline sequence such as 1,2:3,4, a
    text file of label<TAB>text (or bare) lines, or a line of text."""
    from .sequences import inline_sequence, tokenizer
    from .sequences.files import read_sequences

    meta, classes = card.meta, card.meta["classes"]
    texts = meta.get("kind") == "texts"
    found = []
    for arg in inputs:
        name = os.path.basename(arg)
        if texts:
            tokenize = tokenizer(meta["level"], meta["lowercase"])
            if os.path.isfile(arg):
                lines = zoo.read_text(arg, "text file").splitlines()
                rows = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
                if not rows:
                    raise zoo.ZooError(f"{arg}: no texts in it")
                for n, line in rows:
                    label, tab, body = line.partition("\t")
                    tokens = tokenize(body if tab else line)
                    if not tokens:
                        raise zoo.ZooError(f"{arg} line {n}: an empty text")
                    truth = label.strip() if tab and label.strip() in classes else None
                    found.append((f"{name} line {n}", tokens, truth))
            else:
                tokens = tokenize(arg)
                if not tokens:
                    raise zoo.ZooError("nothing to inspect: the text is empty")
                found.append((arg[:24] + "..." if len(arg) > 24 else arg, tokens, None))
            continue
        if os.path.isfile(arg):
            read = read_sequences(arg, meta.get("max_length", card.task_config.max_length), labelled=False)
            items = [(f"{name} line {n}", item, label if label in classes else None)
                     for n, item, label in zip(read.lines, read.items, read.labels)]
        else:
            try:
                items = [(arg[:24] + "..." if len(arg) > 24 else arg, inline_sequence(arg), None)]
            except zoo.ZooError as e:
                raise zoo.ZooError(f"{arg!r} is neither a file nor a sequence like 1,2,3 or 1,2:3,4 ({e})") from None
        channels = sorted({len(step) for _, item, _ in items for step in item})
        if channels != [meta["channels"]]:
            raise zoo.ZooError(f"the model reads {meta['channels']} channel{'s' * (meta['channels'] > 1)} a step; "
                               f"{arg} has {', '.join(map(str, channels))}")
        found += items
    return found


def sequences(model, inputs: tuple[str, ...], count: int | None = None, echo=print) -> list:
    """sequences and texts: each sequence traced over its own length, the class probabilities after each step."""
    from .sequences.classify import Sequences, probabilities, stack, standardized

    card = model.zoo
    meta, classes = card.meta, card.meta["classes"]
    texts = meta.get("kind") == "texts"
    config = card.task_config
    count = count or 8
    if inputs:
        found = _labelled_inputs(card, inputs)
        names = [name for name, _, _ in found]
        tokens = [item for _, item, _ in found] if texts else None
        truth = torch.tensor([classes.index(t) if t is not None else -1 for _, _, t in found])
        if texts:
            index = {token: i for i, token in enumerate(meta["vocab"])}
            flat, lengths = stack([[index.get(t, zoo.UNK) for t in item] for _, item, _ in found], torch.long)
        else:
            flat, lengths = stack([item for _, item, _ in found])
            flat = standardized(flat, meta)
        split = Sequences(flat, lengths, truth.clamp(min=0), config.packing == "packed")
    else:
        if not config.train:
            given = " and ".join(f"--{k} {v!r}" for k, v in card.sources.items()) or "files of yours"
            raise zoo.ZooError(f"this model was trained on {given}: give a {'text' if texts else 'sequence'} or a "
                               f"file to inspect, or its files again (--train FILE, and --test FILE if it had one) "
                               f"for examples of its test split (zoo does not open files a weights file names)")
        split = zoo.get_task(card.task).load_data(config, meta).test
        if split is None or not len(split):
            raise zoo.ZooError("the test split is empty: give a sequence or a file to inspect")
        names = [f"test:{i}" for i in range(len(split))]
        truth = split.labels.cpu()
        tokens = None
        if texts:
            vocab = meta["vocab"]
            tokens = [[vocab[i] for i in split.flat[s: s + n].tolist()]
                      for s, n in zip(split.starts.tolist(), split.lengths.tolist())]
    p, _ = probabilities(model, split)
    predicted = p.argmax(-1)
    wrong = [i for i in range(len(split)) if truth[i] >= 0 and predicted[i] != truth[i]]
    if len(split) > count:  # misclassified first, as mnist does
        picks = wrong[: count // 2]
        picks += [i for i in range(len(split)) if i not in picks][: count - len(picks)]
        if inputs:
            given = f"{len(split):,} {'texts' if texts else 'sequences'} given"
            echo(f"note: {given}; inspecting {len(picks)} of them (--count), the misclassified first")
    else:
        picks = list(range(len(split)))
    device = next(model.parameters()).device
    flat, starts, lengths = split.flat.cpu(), split.starts.cpu().tolist(), split.lengths.cpu().tolist()
    examples = []
    for i in picks:
        x = flat[starts[i]: starts[i] + lengths[i]][None].to(device)  # one sequence at its own length: no padding
        found = zoo.trace(model, x)
        final = torch.softmax(found.output[0].float().cpu(), -1)
        steps = list(tokens[i]) if tokens else [str(t + 1) for t in range(lengths[i])]
        real = classes[int(truth[i])] if truth[i] >= 0 else None
        guess = classes[int(final.argmax())]
        label = names[i] + (" (wrong)" if i in wrong else "")
        summary = f"{lengths[i]:,} {'tokens' if texts else 'steps'}; predicted {guess} ({float(final.max()):.2f})" + \
            (f", truth {real}" if real else "")
        if texts:
            joined = ("" if meta["level"] == "char" else " ").join(tokens[i])
            summary = f"{joined[:80]!r}{'...' if len(joined) > 80 else ''}: " + summary
            vocab = set(meta["vocab"])
            unknown = list(dict.fromkeys(t for t in tokens[i] if t not in vocab or t == meta["vocab"][zoo.UNK]))
            if unknown:
                count_unknown = sum(1 for t in tokens[i] if t in unknown)
                summary += f"; {count_unknown} token{'s' * (count_unknown > 1)} outside the vocabulary, read as " \
                           f"<unk> ({', '.join(map(repr, unknown[:5]))}{', ...' if len(unknown) > 5 else ''})"
        views = []
        if not texts:
            x_cpu = x[0].float().cpu()
            shown = min(x_cpu.shape[1], 8)
            views.append(zoo.View.lines("the input as the network reads it (each channel standardized with the "
                                        "training part's statistics)" + (f": the first {shown} of "
                                                                         f"{x_cpu.shape[1]} channels"
                                                                         if shown < x_cpu.shape[1] else ""),
                                        {f"channel {c + 1}": x_cpu[:, c] for c in range(shown)}, steps,
                                        y_name="value"))
        rows = _rows_probabilities(model, found)
        what = "token" if texts else "step"
        if rows is not None:
            rows = rows.cpu()
            settled = rows.argmax(-1)
            changes = (settled != settled[-1]).nonzero()
            first = int(changes[-1]) + 2 if len(changes) else 1
            summary += f"; the prediction stays {guess} from {what} {first} on"
            if texts:
                summary += f" ({tokens[i][first - 1]!r})"
            order = ([classes.index(real)] if real else []) + [int(k) for k in final.argsort(descending=True)
                                                                 if classes[int(k)] != real]
            marked = [f"{c} (truth)" if c == real else c for c in classes]
            views += [zoo.View.lines(f"the probability of each class after each {what}" +
                                     (f" (the truth, {real}, darkest)" if real else ""),
                                     {marked[k]: rows[:, k] for k in order[:10]}, steps, y_name="probability",
                                     note="the output layer applied to the state after each step: how early does "
                                          "the network know?"),
                      zoo.View.heatmap(f"class probabilities after each {what}", rows.T, 0, 1, rows=marked,
                                       cols=steps, row_name="class", col_name=what)]
            window = min(len(steps), TOPK_STEPS)
            views.append(zoo.View.topk(f"the likeliest classes after each {what}", rows[:window], classes,
                                       steps[:window], k=min(3, len(classes)),
                                       note=f"the first {window:,} of {len(steps):,} {what}s"
                                       if window < len(steps) else ""))
        else:
            views.append(zoo.View.topk("the likeliest classes", final[None], classes, steps[-1:],
                                       k=min(3, len(classes)),
                                       note="a network that reads both ways has one output, after the whole "
                                            "sequence"))
        examples.append(zoo.InspectExample(label=label, trace=found, steps=steps, views=views, summary=summary))
    return examples
