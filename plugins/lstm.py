"""LSTM: a cell state c_t, written through input and forget gates and read through an output gate.

i, f, o = sigmoid(...), g = tanh(...) of (x_t, h_{t-1});  c_t = f * c_{t-1} + i * g;  h_t = o * tanh(c_t).
"""

import zoo


def make_cell(config: zoo.RecurrentConfig, input_size: int):
    from torch import nn

    return nn.LSTM(input_size, config.hidden_size, **zoo.torch_rnn_kwargs(config))


@zoo.hookimpl
def register_models(register):
    for model in zoo.cell_models("lstm", "LSTM, input/forget/output gates and a cell state", make_cell,
                                 native_layers=True):  # torch's cell: cuDNN/oneDNN runs all layers
        register(model)
