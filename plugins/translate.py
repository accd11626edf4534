"""Translation, the course's seq2seq exercise: four English -> Korean pairs, or any tab-separated file.

`--pairs FILE` reads `source<TAB>target` lines (further columns, as in Tatoeba/Anki exports, are
ignored). Tokens are words split on spaces after lowercasing, as in the course, or characters
(`--level char`). The course's four pairs are all trained on and evaluated; a file's pairs are
shuffled once and split into training, validation and test pairs. Vocabularies come from the
training pairs and travel in the export; words never seen become <unk>.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click

import zoo

COURSE_PAIRS = (
    ("I feel hungry.", "나는 배가 고프다."),
    ("Pytorch is very easy.", "파이토치는 매우 쉽다."),
    ("Pytorch is a framework for deep learning.", "파이토치는 딥러닝을 위한 프레임워크이다."),
    ("Pytorch is very clear to use.", "파이토치는 사용하기 매우 직관적이다."),
)


@dataclass(frozen=True)
class TranslateConfig:
    pairs: str = zoo.param("", "a UTF-8 file of source<TAB>target lines; empty: the course's four pairs", path=True)
    level: Literal["word", "char"] = zoo.param("word", "tokens: words split on spaces (the course's), or characters")
    lowercase: bool = zoo.param(True, "lowercase both sides, as the course does")
    max_length: int = zoo.param(0, "drop pairs with more tokens than this on either side; 0 keeps every pair")
    test_fraction: float = zoo.param(0.1, "share of a file's pairs held out for the final test")
    val_fraction: float = zoo.param(0.05, "share of a file's pairs held out for the per-epoch validation")

    def __post_init__(self):
        zoo.absolute_paths(self, "pairs")
        zoo.require(self.max_length >= 0, f"max_length must be >= 0, got {self.max_length}")
        for name in ("test_fraction", "val_fraction"):
            zoo.require(0 <= getattr(self, name) < 0.5, f"{name} must be in [0, 0.5), got {getattr(self, name)}")


def tokenize(text: str, level: str, lowercase: bool) -> list[str]:
    text = text.strip().lower() if lowercase else text.strip()
    return list(text) if level == "char" else text.split()


def detokenize(tokens: list[str], level: str) -> str:
    return "".join(tokens) if level == "char" else " ".join(tokens)


def read_pairs(config: TranslateConfig) -> list[tuple[list[str], list[str]]]:
    if not config.pairs:
        lines = [(n, f"{s}\t{t}") for n, (s, t) in enumerate(COURSE_PAIRS, 1)]
        name = "the course's pairs"
    else:
        path = Path(config.pairs)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise zoo.ZooError(f"pairs file {path} not found") from None
        except UnicodeDecodeError as e:
            raise zoo.ZooError(f"{path} is not UTF-8 text (byte {e.start})") from None
        except OSError as e:
            raise zoo.ZooError(f"cannot read {path}: {e.strerror}") from None
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        name = str(path)
        if not lines:
            raise zoo.ZooError(f"{path} has no pairs: expected source<TAB>target lines")
    pairs = []
    for n, line in lines:
        if "\t" not in line:
            raise zoo.ZooError(f"{name} line {n} has no tab: expected source<TAB>target")
        source, target = line.split("\t")[:2]
        tokens = tokenize(source, config.level, config.lowercase), tokenize(target, config.level, config.lowercase)
        for side, sentence in zip(("source", "target"), tokens):
            if not sentence:
                raise zoo.ZooError(f"{name} line {n}: the {side} is empty")
        pairs.append(tokens)
    if config.max_length:
        pairs = [(s, t) for s, t in pairs if len(s) <= config.max_length and len(t) <= config.max_length]
        if not pairs:
            raise zoo.ZooError(f"no pair of {name} has at most {config.max_length} tokens on both sides")
    return pairs


def make_data(config: TranslateConfig, meta: dict | None) -> zoo.TaskData:
    import torch

    from zoo.data import PairSplit

    pairs = read_pairs(config)
    splits = {"train": pairs, "val": [], "test": []}
    if config.pairs:  # a real corpus: hold out pairs, the same ones every run
        order = torch.randperm(len(pairs), generator=torch.Generator().manual_seed(0)).tolist()
        test, val = int(len(pairs) * config.test_fraction), int(len(pairs) * config.val_fraction)
        splits = {name: [pairs[i] for i in part] for name, part in
                  (("test", order[:test]), ("val", order[test: test + val]), ("train", order[test + val:]))}
        if not splits["train"]:
            raise zoo.ZooError(f"{config.pairs} has too few pairs to hold out any")
    if meta is None:
        meta = {"source_vocab": vocabulary(s for s, _ in splits["train"]),
                "target_vocab": vocabulary(t for _, t in splits["train"]),
                "level": config.level, "lowercase": config.lowercase,
                "longest_target": max(len(t) for _, t in splits["train"])}
    index = [{token: i for i, token in enumerate(meta[key])} for key in ("source_vocab", "target_vocab")]

    def split(part):
        if not part:
            return None
        encoded = [[[ids.get(tok, zoo.UNK) for tok in side] for ids, side in zip(index, pair)] for pair in part]
        return PairSplit([s for s, _ in encoded], [t for _, t in encoded])

    problem = zoo.Problem(zoo.SEQ2SEQ, output_size=len(meta["target_vocab"]), vocab_size=len(meta["source_vocab"]))
    return zoo.TaskData(problem, train=split(splits["train"]), val=split(splits["val"]), test=split(splits["test"]),
                        meta=meta)


def vocabulary(sentences) -> list[str]:
    seen = dict.fromkeys(zoo.SPECIAL_TOKENS)
    for sentence in sentences:
        seen.update(dict.fromkeys(sentence))
    return list(seen)


def decoding_cap(meta: dict, source_length: int) -> int:
    return max(2 * meta["longest_target"], 2 * source_length) + 2


def evaluate(model, data: zoo.TaskData, split: str, beam: int = 1) -> dict:
    import sacrebleu
    import torch

    from zoo.data import batched_outputs, device_of

    pairs = data.split(split).to(device_of(model))
    correct = total = 0
    for logits, targets in batched_outputs(model, pairs, batch_size=256):
        real = targets != -100
        correct += (logits.argmax(-1)[real] == targets[real]).sum().item()
        total += real.sum().item()
    vocab, level = data.meta["target_vocab"], data.meta["level"]
    hypotheses, references, exact = [], [], 0
    for start in range(0, len(pairs), 256):
        index = torch.arange(start, min(start + 256, len(pairs)), device=pairs.src.device)
        (src, src_len, _), targets = pairs.batch(index)
        made = model.generate(src, src_len, decoding_cap(data.meta, src.shape[1]), beam)
        for guess, target in zip(made, targets.tolist()):
            truth = [t for t in target if t not in (-100, zoo.EOS)]
            exact += guess == truth
            hypotheses.append(detokenize([vocab[t] for t in guess], level))
            references.append(detokenize([vocab[t] for t in truth], level))
    bleu = sacrebleu.corpus_bleu(hypotheses, [references], tokenize="char" if level == "char" else "13a")
    return {"exact_match": exact / len(pairs), "token_accuracy": correct / total, "bleu": bleu.score}


def translate(model, sentences: list[str], beam: int = 1) -> list[str]:
    """Translations of `sentences` by a loaded seq2seq export; unknown tokens are read as <unk>."""
    import torch

    from zoo.data import PairSplit, device_of

    meta = model.zoo.meta
    index = {token: i for i, token in enumerate(meta["source_vocab"])}
    tokens = [tokenize(s, meta["level"], meta["lowercase"]) for s in sentences]
    if not all(tokens):
        raise zoo.ZooError("nothing to translate: the sentence is empty")
    split = PairSplit([[index.get(t, zoo.UNK) for t in sentence] for sentence in tokens], [[]] * len(tokens))
    (src, src_len, _), _ = split.to(device_of(model)).batch(torch.arange(len(tokens)))
    made = model.generate(src, src_len, decoding_cap(meta, src.shape[1]), beam)
    return [detokenize([meta["target_vocab"][t] for t in guess], meta["level"]) for guess in made]


def predict(model, sentence: str, beam: int) -> str:
    meta = model.zoo.meta
    unknown = [t for t in tokenize(sentence, meta["level"], meta["lowercase"]) if t not in meta["source_vocab"]]
    if unknown:
        click.echo(f"note: not in the training vocabulary, read as <unk>: {' '.join(unknown)}", err=True)
    return translate(model, [sentence], beam)[0]


@zoo.hookimpl
def register_tasks(register):
    register(zoo.Task(
        name="translate",
        description="seq2seq translation: the course's 4 English->Korean pairs, or a tab-separated file",
        shape=zoo.SEQ2SEQ,
        data=make_data,
        evaluate=evaluate,
        config=TranslateConfig,
        # the course's four pairs are learned exactly by every cell on seeds 0-9 in 100 epochs (one batch
        # each); a real corpus wants fewer epochs: see the README
        train_defaults={"epochs": 100, "lr": 0.01, "batch_size": 64},
        metric="exact_match",
        predict=predict,
        predict_params=(
            click.Argument(["sentence"]),
            click.Option(["--beam"], type=click.IntRange(min=1), default=1, show_default=True,
                         help="beam width; 1 decodes greedily"),
        ),
    ))
