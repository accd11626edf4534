"""Splits the loop draws batches from: streams of consecutive chunks and the state carried between them."""


import torch

import zoo
from zoo.loop.data import Carry, Streams


def test_streams_lay_out_lanes_of_consecutive_chunks():
    series = torch.arange(101)
    streams = Streams(series, 10)  # 10 chunks of 10, targets shifted by one
    batches = streams.order(3)  # 3 lanes of 3 chunks; chunk 9 is left over
    assert [b.tolist() for b in batches] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]
    (x, carry), y = streams.batch(batches[0])
    assert x[1].tolist() == list(range(30, 40)) and y[1].tolist() == list(range(31, 41))
    carry.state = "kept"
    (x2, carry2), _ = streams.batch(batches[1])
    assert carry2 is carry and carry.state == "kept" and x2[1, 0] == x[1, -1] + 1  # lane 1 goes on
    streams.batch(batches[0])  # not a continuation: a new epoch starts from zeros
    assert carry.state is None


def test_a_carried_state_gives_what_reading_the_lane_at_once_gives():
    torch.manual_seed(0)
    net = zoo.get_model("lstm-stacked").build(zoo.RecurrentConfig(hidden_size=12, num_layers=2),
                                             zoo.Problem(zoo.MANY_TO_MANY, output_size=7, vocab_size=7)).eval()
    series = torch.randint(7, (61,))
    streams = Streams(series, 5)
    with torch.no_grad():
        pieces = [net(*streams.batch(index)[0]) for index in streams.order(2)]
        whole = net(series[:60].view(2, 30))
    assert torch.allclose(torch.cat(pieces, 1), whole, atol=1e-5)


def test_a_carry_resets_when_the_batch_shape_changes():
    carry = Carry()
    carry.follow(torch.tensor([0, 5]))
    carry.state = torch.zeros(1)
    carry.follow(torch.tensor([1, 6]))
    assert carry.state is not None
    carry.follow(torch.tensor([2]))
    assert carry.state is None


def test_an_evaluation_reads_each_lane_after_the_context_before_it():
    """Streams with a context: every lane's scores are the ones it gets after reading the `context`
    elements before its first chunk from zeros, the first lane's from the text before the split."""
    torch.manual_seed(0)
    net = zoo.get_model("lstm").build(zoo.RecurrentConfig(hidden_size=12),
                                      zoo.Problem(zoo.MANY_TO_MANY, output_size=7, vocab_size=7)).eval()
    series = torch.randint(7, (8 + 61,))
    held = Streams(series, 5, context=8)  # 12 chunks after 8 elements of context
    assert len(held) == 12 and held.batch(torch.tensor([0]))[0][0].tolist() == [series[8:13].tolist()]
    outputs, targets = zip(*zoo.batched_outputs(net, held, batch_size=3))  # 3 lanes of 4 chunks
    lanes, scored = torch.cat(outputs, 1), torch.cat(targets, 1)
    with torch.no_grad():
        for lane, first in enumerate((0, 20, 40)):  # where each lane's chunks start, after the context
            alone = net(series[first: 8 + first + 20].view(1, -1))[0, 8:]  # its context, then its chunks
            assert torch.allclose(lanes[lane], alone, atol=1e-5)
            assert scored[lane].tolist() == series[8 + first + 1: 8 + first + 21].tolist()
    cold = torch.cat([o for o, _ in zoo.batched_outputs(net, Streams(series[8:], 5), batch_size=3)], 1)
    assert not torch.allclose(cold, lanes, atol=1e-3)  # without the context, each lane starts from zeros


def test_streams_too_short_for_one_chunk_have_no_batches():
    assert Streams(torch.arange(5), 10).order(4) == [] and Streams(torch.arange(30), 10, context=25).order(4) == []
