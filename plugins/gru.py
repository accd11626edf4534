"""GRU: an update gate z_t mixes the old state with a candidate built through a reset gate r_t.

h~_t = tanh(W x_t + U (r_t * h_{t-1}));  h_t = (1 - z_t) * h~_t + z_t * h_{t-1}.
"""

import zoo


def make_cell(config: zoo.RecurrentConfig, input_size: int):
    from torch import nn

    return nn.GRU(input_size, config.hidden_size, **zoo.torch_rnn_kwargs(config))


@zoo.hookimpl
def register_models(register):
    for model in zoo.cell_models("gru", "GRU, update and reset gates", make_cell,
                                 native_layers=True):  # torch's cell: cuDNN/oneDNN runs all layers
        register(model)
