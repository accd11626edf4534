"""Translation, the course's seq2seq exercise: four English -> Korean pairs, or any tab-separated file.

`--pairs FILE` reads `source<TAB>target` lines (further columns, as in Tatoeba/Anki exports, are
ignored). Tokens are words split on spaces after lowercasing, as in the course, or characters
(`--level char`). The course's four pairs are all trained on and evaluated; a file's pairs are
shuffled once and split into training, validation and test pairs. Vocabularies come from the
training pairs and travel in the export. `--max-vocab N` keeps the N - 4 most frequent tokens of each
side (besides the special ones); a word outside the vocabulary is <unk>, or with `--fallback chars`
is spelled out in characters, WordPiece-style ("zebra" -> z ##e ##b ##r ##a), so nothing is lost.
Given a file of enough pairs, the task sizes the model and training to it (`fit_defaults`).
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import click

import zoo
from zoo import read_text

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
    max_vocab: int = zoo.param(0, "at most this many tokens per side, the 4 special ones included: the most "
                                  "frequent in training; 0: every token seen")
    fallback: Literal["unk", "chars"] = zoo.param("unk", "a word outside the vocabulary: <unk>, or spelled out in "
                                                        "characters (word level)")
    test_fraction: float = zoo.param(0.1, "share of a file's pairs held out for the final test")
    val_fraction: float = zoo.param(0.05, "share of a file's pairs held out for the per-epoch validation")

    def __post_init__(self):
        zoo.absolute_paths(self, "pairs")
        zoo.require(self.max_length >= 0, f"max_length must be >= 0, got {self.max_length}")
        zoo.require(self.max_vocab == 0 or self.max_vocab > len(zoo.SPECIAL_TOKENS),
                    f"max_vocab must be 0 (no cap) or more than the {len(zoo.SPECIAL_TOKENS)} special tokens "
                    f"({' '.join(zoo.SPECIAL_TOKENS)}), got {self.max_vocab}")
        for name in ("test_fraction", "val_fraction"):
            zoo.require(0 <= getattr(self, name) < 0.5, f"{name} must be in [0, 0.5), got {getattr(self, name)}")


def tokenize(text: str, level: str, lowercase: bool) -> list[str]:
    text = text.strip().lower() if lowercase else text.strip()
    return list(text) if level == "char" else text.split()


def detokenize(tokens: list[str], level: str) -> str:
    if level == "char":
        return "".join(tokens)
    return " ".join(tokens).replace(" " + PIECE, "")  # spelled-out words join up again


PIECE = "##"  # marks a character that continues a spelled-out word (--fallback chars)
MAX_DECODE = 1_000  # decoding steps at most, whatever an export's longest_target says
MAX_TOKENS = 100_000  # an export's vocabulary, at most (the network's tensors must agree as well)


def spelled(word: str) -> list[str]:
    return [word[0]] + [PIECE + ch for ch in word[1:]]


def encode(sentence: list[str], index: dict[str, int], fallback: str) -> list[int]:
    """Token ids; a word outside the vocabulary is <unk>, or its characters with --fallback chars."""
    ids = []
    for token in sentence:
        if token in index or fallback != "chars":
            ids.append(index.get(token, zoo.UNK))
        else:
            ids.extend(index.get(piece, zoo.UNK) for piece in spelled(token))
    return ids


def read_pairs(config: TranslateConfig) -> list[tuple[list[str], list[str]]]:
    if not config.pairs:
        lines = [(n, f"{s}\t{t}") for n, (s, t) in enumerate(COURSE_PAIRS, 1)]
        name = "the course's pairs"
    else:
        path = Path(config.pairs)
        text = read_text(path, "pairs file")
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


def fit_defaults(config: TranslateConfig) -> zoo.Fitted | None:
    """Settings sized to a user's file of p pairs (none for the course's pairs or a file under 200).

    Hidden 128 (256 from 10,000 pairs, 512 from 50,000), Luong attention, dropout 0.2; word level: the vocabulary of
    each side capped at the tokens seen at least twice (plus the special ones), rarer words spelled
    out in characters; Adam at 0.003 with the gradient norm clipped at 1, batches of 64, 1.2M pairs of
    training (10 to 50 epochs), early stopping on the validation BLEU after 5 epochs without a better
    one, the best weights kept; precision auto (bf16 autocast on CPUs with native bf16: on 3,869
    KJV -> Reina-Valera pairs, one thread, test BLEU 7.62 against fp32's 7.37 after 30 epochs, the
    training steps 1.14x as fast, but 1.81 against 4.04 after 10; one run each, bench/bf16.py,
    docs/day-one.md; the epochs kept were chosen by a validation BLEU then decoded with dropout on).
    """
    from collections import Counter

    if not config.pairs:
        return None
    pairs = read_pairs(config)
    if len(pairs) < 200:
        return None  # a handful of pairs: the course's small model learns them as they are
    task = {}
    if config.level == "word":
        twice = max(sum(1 for n in Counter(t for pair in pairs for t in pair[side]).values() if n >= 2)
                    for side in (0, 1))
        task = {"max_vocab": twice + len(zoo.SPECIAL_TOKENS), "fallback": "chars"}
    hidden = 128 if len(pairs) < 10_000 else 256 if len(pairs) < 50_000 else 512
    model = {"hidden_size": hidden, "attention": "luong", "dropout": 0.2}
    train = {"epochs": min(50, max(10, 1_200_000 // len(pairs))), "lr": 0.003, "batch_size": 64,
             "grad_clip": 1.0, "patience": 5, "precision": "auto"}
    return zoo.Fitted(f"{len(pairs):,} pairs", model=model, task=task, train=train)


def make_data(config: TranslateConfig, meta: dict | None) -> zoo.TaskData:
    import torch

    from zoo import PairSplit

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
        meta = {"source_vocab": vocabulary([s for s, _ in splits["train"]], config),
                "target_vocab": vocabulary([t for _, t in splits["train"]], config),
                "level": config.level, "lowercase": config.lowercase, "fallback": config.fallback}
        index = [{token: i for i, token in enumerate(meta[key])} for key in ("source_vocab", "target_vocab")]
        meta["longest_target"] = max(len(encode(t, index[1], config.fallback)) for _, t in splits["train"])
    meta = checked_meta(meta)
    index = [{token: i for i, token in enumerate(meta[key])} for key in ("source_vocab", "target_vocab")]

    def split(part):
        if not part:
            return None
        encoded = [[encode(side, ids, meta["fallback"]) for ids, side in zip(index, pair)] for pair in part]
        return PairSplit([s for s, _ in encoded], [t for _, t in encoded])

    problem = zoo.Problem(zoo.SEQ2SEQ, output_size=len(meta["target_vocab"]), vocab_size=len(meta["source_vocab"]))
    return zoo.TaskData(problem, train=split(splits["train"]), val=split(splits["val"]), test=split(splits["test"]),
                        meta=meta)


def vocabulary(sentences: list[list[str]], config: TranslateConfig) -> list[str]:
    """The special tokens, then the tokens kept (the `max_vocab` most frequent, in order of first
    appearance, so that an uncapped vocabulary is the course's), then the characters that spell out
    the others (--fallback chars)."""
    from collections import Counter

    counts = Counter(token for sentence in sentences for token in sentence)
    words = list(counts)  # first appearance
    if config.max_vocab:
        frequent = sorted(counts.items(), key=lambda kv: -kv[1])  # stable: ties keep first appearance
        kept = {w for w, _ in frequent[: config.max_vocab - len(zoo.SPECIAL_TOKENS)]}
        words = [w for w in words if w in kept]
    seen = dict.fromkeys([*zoo.SPECIAL_TOKENS, *words])
    if config.fallback == "chars" and config.level == "word":
        kept = set(seen)
        seen.update(dict.fromkeys(piece for w in counts if w not in kept for piece in spelled(w)))
    return list(seen)


def checked_meta(meta: dict, problem: zoo.Problem | None = None) -> dict:
    """An export's vocabularies and decoding length, checked: they drive the work of eval and predict."""
    meta = {"fallback": "unk", **meta}  # exports from before --fallback
    for key in ("source_vocab", "target_vocab"):
        vocab = meta.get(key)
        if not (isinstance(vocab, list) and len(zoo.SPECIAL_TOKENS) < len(vocab) <= MAX_TOKENS
                and all(isinstance(t, str) for t in vocab) and tuple(vocab[:4]) == zoo.SPECIAL_TOKENS):
            raise zoo.ZooError(f"the export's {key} is damaged (expected the special tokens, then at most "
                               f"{MAX_TOKENS:,} tokens)")
    if problem is not None and (len(meta["source_vocab"]), len(meta["target_vocab"])) != (problem.vocab_size,
                                                                                          problem.output_size):
        raise zoo.ZooError(f"the export's vocabularies ({len(meta['source_vocab'])}, {len(meta['target_vocab'])} "
                           f"tokens) do not match its network ({problem.vocab_size}, {problem.output_size})")
    longest = meta.get("longest_target")
    if not (isinstance(longest, int) and not isinstance(longest, bool) and longest > 0):
        raise zoo.ZooError(f"the export's longest_target is {longest!r}; expected a positive integer")
    if meta.get("level") not in ("word", "char") or meta["fallback"] not in ("unk", "chars") \
            or not isinstance(meta.get("lowercase"), bool):
        raise zoo.ZooError("the export's level, fallback or lowercase setting is damaged")
    return meta


def decoding_cap(meta: dict, source_length: int) -> int:
    """Twice the longest training target or twice the source, whichever is longer, and never more than
    MAX_DECODE steps: an export cannot make decoding run for minutes."""
    return min(max(2 * meta["longest_target"], 2 * source_length) + 2, MAX_DECODE)


def evaluate(model, data: zoo.TaskData, split: str, beam: int = 1) -> dict:
    import sacrebleu
    import torch

    from zoo import batched_outputs, device_of

    checked_meta(data.meta, getattr(getattr(model, "zoo", None), "problem", None))  # an export's: bounded
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

    from zoo import PairSplit, device_of

    meta = checked_meta(model.zoo.meta, model.zoo.problem)
    index = {token: i for i, token in enumerate(meta["source_vocab"])}
    tokens = [tokenize(s, meta["level"], meta["lowercase"]) for s in sentences]
    if not all(tokens):
        raise zoo.ZooError("nothing to translate: the sentence is empty")
    split = PairSplit([encode(sentence, index, meta["fallback"]) for sentence in tokens], [[]] * len(tokens))
    (src, src_len, _), _ = split.to(device_of(model)).batch(torch.arange(len(tokens)))
    made = model.generate(src, src_len, decoding_cap(meta, src.shape[1]), beam)
    return [detokenize([meta["target_vocab"][t] for t in guess], meta["level"]) for guess in made]


def predict(model, sentence: str, beam: int) -> str:
    meta = checked_meta(model.zoo.meta, model.zoo.problem)
    known = set(meta["source_vocab"])
    unknown = [t for t in tokenize(sentence, meta["level"], meta["lowercase"]) if t not in known]
    if meta["fallback"] == "chars":
        unknown = [t for t in unknown if not set(spelled(t)) <= known]
        if unknown:
            click.echo(f"note: characters not in the training vocabulary, read as <unk>: {' '.join(unknown)}",
                       err=True)
    elif unknown:
        click.echo(f"note: not in the training vocabulary, read as <unk>: {' '.join(unknown)}", err=True)
    return translate(model, [sentence], beam)[0]


def inspect(model, inputs, beam=None):
    """zoo inspect: attention (when the model has it), the top-k at each decoding step, --beam's alternatives."""
    from .views import translate

    return translate(model, inputs, beam)


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
        # each); a real corpus wants fewer epochs: see docs/tasks.md
        train_defaults={"epochs": 100, "lr": 0.01, "batch_size": 64},
        metric="bleu",  # what early stopping watches: exact match stays near 0 for long on a real corpus
        fit_defaults=fit_defaults,
        predict=predict,
        inspect=inspect,
        predict_params=(
            click.Argument(["sentence"]),
            click.Option(["--beam"], type=click.IntRange(min=1), default=1, show_default=True,
                         help="beam width; 1 decodes greedily"),
        ),
    ))
