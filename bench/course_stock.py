"""The course's stock script, re-typed: GOOG prices, 7-day windows, LSTM(5 -> 10) + Linear, MSE, Adam 0.01,
500 full-batch iterations. Plotting is left out (it would only add matplotlib's import time).

    python bench/course_stock.py FILE [--train-scaled-test]

As in the lecture, the test days are min-max scaled with their own minimum and maximum; with
--train-scaled-test they use the training days' instead (no look at the future). Prints the test
RMSE in dollars, and the persistence forecast's, both through the same scaling as the course's plot.
"""

import sys

import numpy as np
import torch

torch.manual_seed(0)
path, train_scaled_test = sys.argv[1], "--train-scaled-test" in sys.argv


def minmax_scaler(data, reference):
    return (data - np.min(reference, 0)) / (np.max(reference, 0) - np.min(reference, 0) + 1e-7)


def build_dataset(time_series, seq_length):
    x = [time_series[i:i + seq_length, :] for i in range(len(time_series) - seq_length)]
    y = [time_series[i + seq_length, [-1]] for i in range(len(time_series) - seq_length)]
    return np.array(x), np.array(y)


seq_length, data_dim, hidden_dim, output_dim, learning_rate, iterations = 7, 5, 10, 1, 0.01, 500
xy = np.loadtxt(path, delimiter=",")[::-1]  # newest first in the file
train_size = int(len(xy) * 0.7)
train_set, test_set = xy[0:train_size], xy[train_size - seq_length:]
test_reference = train_set if train_scaled_test else test_set
train_x, train_y = build_dataset(minmax_scaler(train_set, train_set), seq_length)
test_x, test_y = build_dataset(minmax_scaler(test_set, test_reference), seq_length)
train_x, train_y = torch.FloatTensor(train_x), torch.FloatTensor(train_y)
test_x, test_y = torch.FloatTensor(test_x), torch.FloatTensor(test_y)


class Net(torch.nn.Module):
    def __init__(self, input_dim, hidden_dim, output_dim, layers):
        super().__init__()
        self.rnn = torch.nn.LSTM(input_dim, hidden_dim, num_layers=layers, batch_first=True)
        self.fc = torch.nn.Linear(hidden_dim, output_dim, bias=True)

    def forward(self, x):
        x, _status = self.rnn(x)
        return self.fc(x[:, -1])


net = Net(data_dim, hidden_dim, output_dim, 1)
criterion = torch.nn.MSELoss()
optimizer = torch.optim.Adam(net.parameters(), lr=learning_rate)
for _ in range(iterations):
    optimizer.zero_grad()
    loss = criterion(net(train_x), train_y)
    loss.backward()
    optimizer.step()

with torch.no_grad():
    predicted = net(test_x).numpy().flatten()
scale = np.max(test_reference[:, -1]) - np.min(test_reference[:, -1]) + 1e-7
truth, today = test_y.numpy().flatten(), test_x[:, -1, -1].numpy()
print(f"test rmse {np.sqrt(np.mean((predicted - truth) ** 2)) * scale:.4f} "
      f"persistence rmse {np.sqrt(np.mean((today - truth) ** 2)) * scale:.4f}")
