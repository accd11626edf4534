"""The minimal gated unit (Zhou et al., 2016) as a zoo cell, written from scratch and stepped explicitly.

One gate does the work of the GRU's two: f_t decides both how much of the old state the candidate
reads and how much of it is replaced.

    f_t = sigmoid(W_f x_t + U_f h_{t-1} + b_f)
    h~_t = tanh(W_h x_t + U_h (f_t * h_{t-1}) + b_h)
    h_t = (1 - f_t) * h_{t-1} + f_t * h~_t

The cell is one layer read left to right, as zoo's cell contract asks: `out, h_n = cell(x, h0)` with
x (batch, time, input), h0 None or (1, batch, hidden). zoo builds `mgu-stacked` and `mgu-bi` around
it. The input half of both gates is computed for all steps in one matrix product and only the
recurrent half is stepped: an epoch costs about two thirds of torch's oneDNN LSTM's on a CPU (it does
half the arithmetic; bench/custom_cell.py). `--compile` runs the step loop through torch.compile.
"""

from dataclasses import dataclass

import zoo


@dataclass(frozen=True)
class MGUConfig(zoo.RecurrentConfig):
    compile: bool = zoo.param(False, "torch.compile the step loop: 0-33% faster steps on a CPU after about 100 s of "
                                     "compiling the first time (bench/custom_cell.py); for long runs")


def step_loop():
    """The recurrence, a function of gates_x (batch, time, 2 * hidden), which holds W x_t + b of both
    gates for every step, the state h (batch, hidden) and U_f, U_h. Made inside a function so that
    importing this module does not import torch (`zoo list` stays fast)."""
    import torch

    def steps(gates_x, h, u_f, u_h):
        forget_x, candidate_x = gates_x.chunk(2, dim=-1)
        outputs = []
        # unbind, not x[:, t]: the gradient of each indexing would be a zero tensor of all steps
        for f_x, c_x in zip(forget_x.unbind(1), candidate_x.unbind(1)):
            f = torch.sigmoid(torch.addmm(f_x, h, u_f.t()))
            candidate = torch.tanh(torch.addmm(c_x, f * h, u_h.t()))
            h = h + f * (candidate - h)  # (1 - f) * h + f * candidate, one operation fewer
            outputs.append(h)
        return torch.stack(outputs, 1)

    return steps


_loops = {}


def loop(compiled: bool):
    """The step loop, eager or through torch.compile (compiled once per process, on first use)."""
    if compiled not in _loops:
        import torch

        _loops[compiled] = torch.compile(step_loop(), dynamic=False) if compiled else step_loop()
    return _loops[compiled]


def make_cell(config: MGUConfig, input_size: int):
    import torch
    from torch import nn

    class MGU(nn.Module):
        def __init__(self):
            super().__init__()
            hidden = config.hidden_size
            self.hidden_size, self.compiled = hidden, config.compile
            self.weight_x = nn.Parameter(torch.empty(2 * hidden, input_size))  # [W_f; W_h]
            self.bias = nn.Parameter(torch.empty(2 * hidden))  # [b_f; b_h]
            self.weight_f = nn.Parameter(torch.empty(hidden, hidden))  # U_f
            self.weight_h = nn.Parameter(torch.empty(hidden, hidden))  # U_h
            bound = hidden ** -0.5  # torch's recurrent cells draw every weight from U(-1/sqrt(h), 1/sqrt(h))
            for weight in self.parameters():
                nn.init.uniform_(weight, -bound, bound)

        def forward(self, x, h0=None):
            h = x.new_zeros(x.shape[0], self.hidden_size) if h0 is None else h0[0]
            gates_x = torch.nn.functional.linear(x, self.weight_x, self.bias)  # every step in one product
            out = loop(self.compiled)(gates_x, h, self.weight_f, self.weight_h)
            return out, out[:, -1][None]

        gates = ("f",)  # which of `internals` are gates, in [0, 1]: zoo inspect shows their saturation

        def internals(self, x, h0=None):
            """The per-step forget gate f, candidate h~ and state h (zoo.trace and zoo inspect show them), stepped
            as forward steps; zoo.testing.check_internals checks that they agree with its outputs."""
            h = x.new_zeros(x.shape[0], self.hidden_size) if h0 is None else h0[0]
            forget_x, candidate_x = torch.nn.functional.linear(x, self.weight_x, self.bias).chunk(2, dim=-1)
            found = {"f": [], "candidate": [], "h": []}
            for f_x, c_x in zip(forget_x.unbind(1), candidate_x.unbind(1)):
                f = torch.sigmoid(torch.addmm(f_x, h, self.weight_f.t()))
                candidate = torch.tanh(torch.addmm(c_x, f * h, self.weight_h.t()))
                h = h + f * (candidate - h)
                found["f"].append(f)
                found["candidate"].append(candidate)
                found["h"].append(h)
            return {name: torch.stack(steps, 1) for name, steps in found.items()}

    return MGU()


@zoo.hookimpl
def register_models(register):
    for model in zoo.cell_models("mgu", "minimal gated unit: one forget gate (Zhou et al., 2016)", make_cell,
                                 config=MGUConfig):
        register(model)
