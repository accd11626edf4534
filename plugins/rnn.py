"""The course's vanilla RNN: h_t = tanh(U x_t + W h_{t-1} + b), o_t = softmax(V h_t).

torch.nn.RNN with the tanh nonlinearity computes exactly h_t; zoo's output layer is V.
"""

import zoo


def make_cell(config: zoo.RecurrentConfig, input_size: int):
    from torch import nn

    return nn.RNN(input_size, config.hidden_size, nonlinearity="tanh", **zoo.torch_rnn_kwargs(config))


@zoo.hookimpl
def register_models(register):
    for model in zoo.cell_models("rnn", "vanilla RNN, h_t = tanh(U x_t + W h_t-1)", make_cell,
                                 native_layers=True):  # torch's cell: cuDNN/oneDNN runs all layers
        register(model)
