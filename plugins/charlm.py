"""Practice 2, a character language model: the next character at every step of a text.

The course's text is one sentence, read as sliding windows of 10 characters; `--text FILE` learns any
UTF-8 file. Two ways to read it:

- windows (the course's, `--bptt 0`): every window starts from a zero state. Windows are index slices
  of one tensor of character ids, gathered per batch, so a long file costs a few bytes per character.
- streams (`--bptt N`): truncated backpropagation through time, as char-rnn and pytorch/examples'
  word_language_model do. The text is cut into `-b` contiguous lanes read side by side, N characters
  a batch, and each lane's state is carried from one batch to the next (zoo.Streams), so the
  network sees context far beyond N characters.

Given a file, the task sizes the model and training to it (`fit_defaults`, stated when training
starts). Metrics: `accuracy` is the next character after each full window (windows) or at every
position (streams); `char_accuracy` every position; `perplexity` and `nats_per_char` (its log);
`reproduced` the share of the text that greedy generation from the split's start rebuilds before its
first mistake (at most the first 500 characters).

With `--cache N` (on in the defaults fitted to a text file of 400k characters or more), a stream
evaluation mixes into each next character's distribution a continuous cache of the text already read
(Grave, Joulin and Usunier, "Improving neural language models with a continuous cache", ICLR 2017):
of the last N positions, each one's next character, weighted by exp(sharpness x the dot product of
its hidden state with the current one), `cache_weight` of the mixture. Names and words the training
text never had are then likelier after their first use. It scores: eval, validation and early
stopping; generation (`zoo predict`, `reproduced`) and ONNX exports use the network alone.
"""

from dataclasses import dataclass

import click

import zoo
from zoo import read_text as read_utf8

SENTENCE = ("if you want to build a ship, don't drum up people together to collect wood and don't assign "
            "them tasks and work, but rather teach them to long for the endless immensity of the sea.")
CHECKED_CHARS = 500  # greedy generation is one step per character: check a prefix of long texts
MAX_WINDOW = 2_000  # windows regenerate the whole window per character: bound what an export can ask
MAX_BPTT = 10_000
EVAL_LANES = 16  # streams evaluated side by side, each first reading the LEAD_IN characters before it
LEAD_IN = 400  # characters each evaluation lane reads before the ones it scores (zoo.Streams' context)
MAX_CACHE = 20_000  # positions a lane's cache holds
CACHE_BLOCK = 128  # queries scored at once: their scores are lanes x block x (cache + block) floats
NO_CACHE = [0, 0.0, 0.0]  # an export's meta without a cache: positions, weight, sharpness
CACHE = 3_000  # the fitted defaults' cache (two layers of 512 on a text of 400k characters or more)


@dataclass(frozen=True)
class CharLMConfig:
    text: str = zoo.param("", "a UTF-8 text file to learn; empty learns the course's sentence", path=True)
    window: int = zoo.param(10, "characters per window (the course's sequence length)")
    stride: int = zoo.param(1, "characters between window starts; raise it to go faster on long texts")
    bptt: int = zoo.param(0, "0 reads sliding windows (the course's); N reads contiguous streams N characters a "
                             "batch, carrying the state across batches (truncated BPTT); -b streams side by side")
    val_fraction: float = zoo.param(0.0, "share of the text, from its end, held out for validation")
    cache: int = zoo.param(0, "streams (windows ignore it): score each next character with a cache of the last N "
                              "positions read mixed in (a continuous cache: what followed similar hidden states); "
                              "0: the network alone")
    cache_weight: float = zoo.param(0.2, "the cache's share of each next character's probability")
    cache_sharpness: float = zoo.param(1.0, "how sharply the cache prefers positions whose hidden state is like the "
                                            "current one (the scale of their dot product)")

    def __post_init__(self):
        zoo.absolute_paths(self, "text")
        zoo.require(0 < self.window <= MAX_WINDOW, f"window must be in [1, {MAX_WINDOW}], got {self.window}")
        zoo.require(self.stride > 0, f"stride must be positive, got {self.stride}")
        zoo.require(0 <= self.bptt <= MAX_BPTT, f"bptt must be in [0, {MAX_BPTT}] characters (0: sliding windows), "
                                                f"got {self.bptt}")
        zoo.require(self.bptt != 1, "bptt must be at least 2 characters (0: sliding windows), got 1")
        zoo.require(0 <= self.val_fraction < 1, f"val_fraction must be in [0, 1), got {self.val_fraction}")
        zoo.require(0 <= self.cache <= MAX_CACHE, f"cache must be in [0, {MAX_CACHE:,}] positions, got {self.cache}")
        zoo.require(0 <= self.cache_weight < 1, f"cache_weight must be in [0, 1), got {self.cache_weight}")
        zoo.require(0 <= self.cache_sharpness <= 100, f"cache_sharpness must be in [0, 100], got "
                                                      f"{self.cache_sharpness}")


def read_text(config: CharLMConfig) -> str:
    if not config.text:
        return SENTENCE
    return read_utf8(config.text, "text file")


def fit_defaults(config: CharLMConfig) -> zoo.Fitted | None:
    """Settings sized to a user's text of n characters (none for the course's sentence).

    Streams of min(100, n // 50) characters (char-rnn's 100 on any text over 5,000 characters) unless
    windows were asked for (`--window`/`--stride` changed); hidden 128 under 100k characters, 256
    under 400k, else two layers of 512 with dropout 0.4 and weight drop 0.25 on the recurrent weights,
    16 lanes and a learning rate of 0.004 (one layer of 512 over-fits a 1 MB text: on 1 MB of
    Shakespeare with 20 minutes, 1.636 nats/char held out; two layers with dropout 0.5 1.537; these
    dropouts with 32 lanes from 0.002 1.522, from 0.004 1.511; with 16 lanes 1.489; two layers of 640
    1.484, for epochs 1.6x as long; docs/day-one.md);
    20M characters of training (10 to 100 epochs), a cosine learning rate from 0.002 (the two layers':
    above) over 32 lanes, gradient norm clipped at 1; 5% held out (10% under 100k) for
    validation, early stopping after 3 epochs without a lower held-out loss, the best weights kept;
    precision auto (bf16 autocast on CPUs with native bf16, which does not change the held-out loss);
    with two layers, a continuous cache of the last 3,000 positions scores the held-out text.
    """
    if not config.text:
        return None
    n = len(read_text(config))
    windows_asked = (config.window, config.stride) != (10, 1)
    bptt = 0 if windows_asked or n < 500 else min(100, n // 50)
    hidden = 128 if n < 100_000 else 256 if n < 400_000 else 512
    two = hidden == 512  # two layers: twice the updates an epoch (16 lanes) at twice the rate learn faster
    model = {"hidden_size": hidden, **({"num_layers": 2, "dropout": 0.4, "weight_drop": 0.25} if two else {})}
    # the cache (see the module's docstring): measured on the two-layer band's texts, 1 MB of Shakespeare
    # (held out: 1.4887 -> 1.4114 nats/char) and 1 MB of War and Peace (1.2516 -> 1.2259), sizes chosen
    # on the first half of Shakespeare's held-out part; bench/charlm_cache.py
    cache = {"cache": CACHE} if two and bptt else {}
    task = {"val_fraction": 0.1 if n < 100_000 else 0.05, **({"bptt": bptt} if bptt else {}), **cache}
    # precision auto: bf16 autocast where the CPU computes it natively (measured on an LSTM 512, 300k
    # characters, 3 epochs: 1.63x the characters per CPU-second, held-out 2.2887 against fp32's 2.2882
    # nats/char; bench/bf16.py), fp32 elsewhere
    train = {"epochs": min(100, max(10, 20_000_000 // max(n, 1))), "batch_size": 16 if two else 32,
             "lr": 0.004 if two else 0.002, "schedule": "cosine", "grad_clip": 1.0, "patience": 3, "precision": "auto"}
    return zoo.Fitted(f"a text of {n:,} characters", model=model, task=task, train=train)


def make_data(config: CharLMConfig, meta: dict | None) -> zoo.TaskData:
    import torch

    from zoo import Streams, Windows, encode

    text = read_text(config)
    source = config.text or "the sentence"
    length = config.bptt or config.window  # characters one example reads
    what = f"--bptt {config.bptt}" if config.bptt else f"window {config.window}"
    if len(text) < length + 1:
        raise zoo.ZooError(f"{source} has {len(text):,} characters, shorter than one sequence: {what} needs at "
                           f"least {length + 1:,}")
    vocab = checked_meta(meta)["vocab"] if meta else sorted(set(text))
    ids = torch.tensor(encode(text, vocab, source))
    boundary = len(text) - int(len(text) * config.val_fraction)  # first held-out character
    if config.bptt:
        train = Streams(ids[:boundary], config.bptt)
        # targets start at the boundary; each evaluation lane first reads the LEAD_IN characters before its
        # own (the training part's last ones for the first lane), as one reading the whole text would have
        lead = min(LEAD_IN, boundary - 1)
        val = Streams(ids[boundary - 1 - lead:], config.bptt, context=lead) if config.val_fraction else None
        short = len(train) == 0 or (val is not None and len(val) == 0)
    else:
        starts = torch.arange(0, len(text) - config.window, config.stride)
        first = starts[starts + config.window < boundary]  # no training target crosses into held-out text
        held = starts[starts >= boundary] if config.val_fraction else None
        train = Windows(ids, ids, first, config.window, horizon=1)
        val = Windows(ids, ids, held, config.window, horizon=1) if held is not None else None
        short = len(first) == 0 or (held is not None and len(held) == 0)
    if short:
        raise zoo.ZooError(f"{source} ({len(text):,} characters) is too short to hold out {config.val_fraction:.0%} "
                           f"with {what}")
    problem = zoo.Problem(zoo.MANY_TO_MANY, output_size=len(vocab), vocab_size=len(vocab))
    # the cache reads streams: each window is read from a zero state, with nothing before it to remember
    streams_cache = config.cache and config.bptt
    cache = {"cache": [config.cache, config.cache_weight, config.cache_sharpness]} if streams_cache else {}
    return zoo.TaskData(problem, train=train, val=val,
                        meta={"vocab": vocab, "window": config.window, "bptt": config.bptt, **cache})


def checked_meta(meta: dict, problem: zoo.Problem | None = None) -> dict:
    """An export's vocabulary and lengths, checked: they drive the work of eval and predict."""
    vocab, window, bptt = meta.get("vocab"), meta.get("window"), meta.get("bptt", 0)
    if not (isinstance(vocab, list) and vocab and all(isinstance(c, str) and len(c) == 1 for c in vocab)
            and len(set(vocab)) == len(vocab)):
        raise zoo.ZooError("the export's charlm vocabulary is damaged (expected distinct single characters)")
    if problem is not None and len(vocab) != problem.vocab_size:
        raise zoo.ZooError(f"the export's vocabulary has {len(vocab)} characters, its network {problem.vocab_size}")
    for name, value, top in (("window", window, MAX_WINDOW), ("bptt", bptt, MAX_BPTT)):
        if not (isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= top):
            raise zoo.ZooError(f"the export's charlm {name} is {value!r}; expected an integer in [0, {top}]")
    if window < 1:
        raise zoo.ZooError(f"the export's charlm window is {window}; expected at least 1")
    cache = meta.get("cache", NO_CACHE)
    if not (isinstance(cache, list) and len(cache) == 3 and all(isinstance(v, (int, float)) and not isinstance(
            v, bool) for v in cache) and isinstance(cache[0], int) and 0 <= cache[0] <= MAX_CACHE
            and 0 <= cache[1] < 1 and 0 <= cache[2] <= 100):
        raise zoo.ZooError(f"the export's charlm cache is {cache!r}; expected [positions in [0, {MAX_CACHE}], "
                           "a weight in [0, 1), a sharpness in [0, 100]]")
    return meta


def pick(logits, temperature: float, top_k: int, sampler) -> int:
    """The next id: the likeliest (temperature 0), or drawn from the softmax at `temperature` over the
    `top_k` likeliest (0: all)."""
    import torch

    if temperature <= 0:
        return int(logits.argmax())
    if 0 < top_k < len(logits):
        kept = logits.topk(top_k)
        return int(kept.indices[torch.multinomial(torch.softmax(kept.values / temperature, -1), 1, generator=sampler)])
    return int(torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=sampler))


def generate(model, ids: list[int], length: int, window: int, temperature: float = 0.0, seed: int = 0,
             top_k: int = 0, streams: bool = False):
    """Yield `length` ids continuing `ids`. Windows: each predicted from the last `window` ids, as in
    training. Streams: the prompt is read once and the state carried, one character a step."""
    import torch

    from zoo import Carry, device_of

    sampler = torch.Generator().manual_seed(seed)
    device = device_of(model)
    carry = Carry()
    out = list(ids)
    with torch.no_grad():
        feed = out if streams else out[-window:]
        for _ in range(length):
            x = torch.tensor([feed], device=device)
            logits = (model(x, carry) if streams else model(x))[0, -1].float().cpu()
            out.append(pick(logits, temperature, top_k, sampler))
            feed = [out[-1]] if streams else out[-window:]
            yield out[-1]


def cached(model, examples, batches, positions: int, weight: float, sharpness: float):
    """(log-probabilities, targets) of each batch of a Streams split read by `batches` (batched_outputs),
    the network's next-character distribution mixed with a continuous cache of each lane's last
    `positions` positions: the characters that followed them, weighted by the softmax over
    `sharpness` x (their hidden state . the current one), `weight` of the mixture. The hidden state
    is what the network's `head` (an nn.Linear, as zoo's RecurrentNet has) reads; a network without
    one is scored alone."""
    import math

    import torch

    head = getattr(model, "head", None)
    if not isinstance(head, torch.nn.Linear):
        import warnings

        warnings.warn(f"charlm's cache reads the hidden state at the network's output layer `head`, which "
                      f"{type(model).__name__} has not: scored by the network alone (an ONNX export's graph gives "
                      "only its outputs)", zoo.ZooWarning, stacklevel=2)
        for logits, targets in batches:
            yield torch.log_softmax(logits.float(), -1), targets
        return
    states: list = []
    hook = head.register_forward_hook(lambda module, args, out: states.append(args[0].float()))
    keys = following = None  # each lane's remembered hidden states (lanes, <= positions, d) and next characters
    try:
        for logits, targets in batches:
            if keys is None and len(states) == 2 and examples.context:  # the lanes' lead-in came first: text
                first = examples.order(EVAL_LANES)[0]  # read before the chunks, remembered too
                steps = first[:, None] * examples.length + torch.arange(examples.context, device=first.device)
                keys, following = states.pop(0), examples.series[steps + 1].to(logits.device)
            hidden = states.pop() if len(states) == 1 else None
            if hidden is None or hidden.shape[:2] != logits.shape[:2]:
                raise zoo.ZooError(f"charlm's cache reads the network's `head` once a forward pass, on (lanes, "
                                   f"steps, features); {type(model).__name__}'s does not run so: -o cache=0")
            if keys is None:
                keys, following = hidden[:, :0], targets[:, :0]
            before = keys.shape[1]
            keys, following = torch.cat([keys, hidden], 1), torch.cat([following, targets], 1)
            probs = torch.softmax(logits.float(), -1)
            mixed = torch.empty_like(probs)
            for q0 in range(0, logits.shape[1], CACHE_BLOCK):  # scores of a block of queries at a time: bounded
                q1 = min(q0 + CACHE_BLOCK, logits.shape[1])
                k0 = max(0, before + q0 - positions)  # query t (at before + t) remembers [before + t - positions,
                window = keys[:, k0: before + q1]  # before + t)
                at = torch.arange(before + q0, before + q1, device=keys.device)[:, None]
                k = torch.arange(k0, before + q1, device=keys.device)[None, :]
                remembered = (k < at) & (k >= at - positions)
                scores = (hidden[:, q0:q1] @ window.transpose(1, 2) * sharpness).masked_fill(~remembered, -math.inf)
                share = torch.softmax(scores, -1).nan_to_num(0.0)  # a query with nothing remembered: all zeros
                recalled = torch.zeros_like(probs[:, q0:q1]).scatter_add_(
                    2, following[:, None, k0: before + q1].expand_as(share), share)
                part = (1 - weight) * probs[:, q0:q1] + weight * recalled
                alone = ~remembered.any(1)  # a lane's very first position, without a lead-in
                part[:, alone] = probs[:, q0:q1][:, alone]
                mixed[:, q0:q1] = part
            yield mixed.clamp_min(1e-30).log(), targets
            keys, following = keys[:, -positions:], following[:, -positions:]
    finally:
        hook.remove()


def evaluate(model, data: zoo.TaskData, split: str) -> dict:
    import math

    import torch

    from zoo import Streams, batched_outputs

    meta = checked_meta(data.meta, getattr(getattr(model, "zoo", None), "problem", None))  # an export's: bounded
    examples = data.split(split)
    streams = isinstance(examples, Streams)
    last = every = positions = 0
    nll = 0.0
    # streams: EVAL_LANES read side by side, the state carried, each lane after reading the text before it
    batches = batched_outputs(model, examples, batch_size=EVAL_LANES if streams else 1024)
    cache, weight, sharpness = meta.get("cache", NO_CACHE)
    if streams and cache:
        scored = cached(model, examples, batches, cache, weight, sharpness)
    else:
        scored = ((torch.log_softmax(logits.float(), -1), targets) for logits, targets in batches)
    for logp, targets in scored:
        predicted = logp.argmax(-1)
        last += (predicted[:, -1] == targets[:, -1]).sum().item()
        every += (predicted == targets).sum().item()
        positions += targets.numel()
        nll -= logp.gather(-1, targets[..., None]).sum().item()
    # greedy generation from the split's start, compared with the text that follows it
    if streams:
        ids, first, length = examples.series, examples.context, examples.length
    else:
        ids, first, length = examples.inputs, int(examples.starts[0]), examples.length
    truth = ids[first + length: first + length + CHECKED_CHARS].tolist()
    made = generate(model, ids[first: first + length].tolist(), len(truth), length, streams=streams)
    matched = next((i for i, (a, b) in enumerate(zip(made, truth)) if a != b), len(truth))  # generation ends there
    made.close()
    return {"accuracy": every / positions if streams else last / len(examples),
            "char_accuracy": every / positions, "perplexity": math.exp(nll / positions),
            "nats_per_char": nll / positions, "reproduced": matched / max(len(truth), 1)}


def predict(model, prompt: str, length: int = 100, temperature: float = 0.0, top_k: int = 0, seed: int = 0):
    """The prompt, then each generated character as it comes (the CLI streams them)."""
    from zoo import encode

    meta = checked_meta(model.zoo.meta, model.zoo.problem)
    if not prompt:
        raise zoo.ZooError("--prompt must not be empty")
    ids = encode(prompt, meta["vocab"], "the prompt")  # before the first piece: a bad prompt is one line
    made = generate(model, ids, length, meta["window"], temperature, seed, top_k, streams=bool(meta.get("bptt")))
    yield prompt
    for i in made:
        yield meta["vocab"][i]


def inspect(model, inputs, feature=(), echo=print):
    """zoo inspect: the text coloured by a unit, surprisal, top-5, units ranked by correlation with --feature."""
    from .views import charlm

    return charlm(model, inputs, feature, echo)


@zoo.hookimpl
def register_tasks(register):
    register(zoo.Task(
        name="charlm",
        description="practice 2, character language model: sliding windows, or streams with the state carried",
        shape=zoo.MANY_TO_MANY,
        data=make_data,
        evaluate=evaluate,
        config=CharLMConfig,
        train_defaults={"epochs": 100, "lr": 0.01, "batch_size": 32},
        model_defaults={"hidden_size": 64},
        # what early stopping watches: the cross-entropy keeps improving while accuracy stalls
        metric="nats_per_char",
        minimize=True,
        fit_defaults=fit_defaults,
        predict=predict,
        inspect=inspect,
        predict_params=(
            click.Option(["--prompt"], required=True, help="text to continue (characters the model knows)"),
            click.Option(["-n", "--length"], type=click.IntRange(min=0), default=100, show_default=True,
                         help="characters to generate"),
            click.Option(["--temperature"], type=click.FloatRange(min=0), default=0.0, show_default=True,
                         help="0 picks the likeliest character; higher samples more freely"),
            click.Option(["--top-k"], type=click.IntRange(min=0), default=0, show_default=True,
                         help="sample among the k likeliest characters only; 0: all of them"),
            click.Option(["--seed"], type=click.IntRange(-2**63, 2**64 - 1), default=0, show_default=True,
                         help="seeds sampling"),
        ),
    ))
