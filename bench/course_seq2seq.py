"""The course's seq2seq script, re-typed: a GRU encoder-decoder (hidden 16) learns four English -> Korean
pairs, one random pair per step for 5,000 SGD steps at lr 0.01, teacher forcing, word tokens.

    python bench/course_seq2seq.py

Prints how many of the four pairs it then translates exactly.
"""

import random

import torch
import torch.nn as nn
import torch.optim as optim

torch.manual_seed(0)
random.seed(0)

raw = ["I feel hungry.	나는 배가 고프다.",
       "Pytorch is very easy.	파이토치는 매우 쉽다.",
       "Pytorch is a framework for deep learning.	파이토치는 딥러닝을 위한 프레임워크이다.",
       "Pytorch is very clear to use.	파이토치는 사용하기 매우 직관적이다."]
SOS_token, EOS_token = 0, 1


class Vocab:
    def __init__(self):
        self.vocab2index = {"<SOS>": SOS_token, "<EOS>": EOS_token}
        self.index2vocab = {SOS_token: "<SOS>", EOS_token: "<EOS>"}
        self.vocab_count = {}
        self.n_vocab = len(self.vocab2index)

    def add_vocab(self, sentence):
        for word in sentence.split(" "):
            if word not in self.vocab2index:
                self.vocab2index[word] = self.n_vocab
                self.vocab_count[word] = 1
                self.index2vocab[self.n_vocab] = word
                self.n_vocab += 1
            else:
                self.vocab_count[word] += 1


def filter_pair(pair, source_max_length, target_max_length):
    return len(pair[0].split(" ")) < source_max_length and len(pair[1].split(" ")) < target_max_length


def preprocess(corpus, source_max_length, target_max_length):
    pairs = [[s for s in line.strip().lower().split("\t")] for line in corpus]
    pairs = [pair for pair in pairs if filter_pair(pair, source_max_length, target_max_length)]
    source_vocab, target_vocab = Vocab(), Vocab()
    for pair in pairs:
        source_vocab.add_vocab(pair[0])
        target_vocab.add_vocab(pair[1])
    return pairs, source_vocab, target_vocab


class Encoder(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size)

    def forward(self, x, hidden):
        x = self.embedding(x).view(1, 1, -1)
        return self.gru(x, hidden)


class Decoder(nn.Module):
    def __init__(self, hidden_size, output_size):
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size)
        self.out = nn.Linear(hidden_size, output_size)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, x, hidden):
        x = self.embedding(x).view(1, 1, -1)
        x, hidden = self.gru(x, hidden)
        return self.softmax(self.out(x[0])), hidden


def tensorize(vocab, sentence):
    indexes = [vocab.vocab2index[word] for word in sentence.split(" ")] + [vocab.vocab2index["<EOS>"]]
    return torch.Tensor(indexes).long().view(-1, 1)


def train(pairs, source_vocab, target_vocab, encoder, decoder, n_iter, learning_rate=0.01):
    training_batch = [random.choice(pairs) for _ in range(n_iter)]
    training_source = [tensorize(source_vocab, pair[0]) for pair in training_batch]
    training_target = [tensorize(target_vocab, pair[1]) for pair in training_batch]
    encoder_optimizer = optim.SGD(encoder.parameters(), lr=learning_rate)
    decoder_optimizer = optim.SGD(decoder.parameters(), lr=learning_rate)
    criterion = nn.NLLLoss()
    for i in range(n_iter):
        source_tensor, target_tensor = training_source[i], training_target[i]
        encoder_hidden = torch.zeros([1, 1, encoder.hidden_size])
        encoder_optimizer.zero_grad()
        decoder_optimizer.zero_grad()
        loss = 0
        for ei in range(source_tensor.size(0)):
            _, encoder_hidden = encoder(source_tensor[ei], encoder_hidden)
        decoder_input, decoder_hidden = torch.Tensor([[SOS_token]]).long(), encoder_hidden
        for di in range(target_tensor.size(0)):
            decoder_output, decoder_hidden = decoder(decoder_input, decoder_hidden)
            loss += criterion(decoder_output, target_tensor[di])
            decoder_input = target_tensor[di]  # teacher forcing
        loss.backward()
        encoder_optimizer.step()
        decoder_optimizer.step()


def translate(pairs, source_vocab, target_vocab, encoder, decoder, target_max_length):
    exact = 0
    for pair in pairs:
        source_tensor = tensorize(source_vocab, pair[0])
        encoder_hidden = torch.zeros([1, 1, encoder.hidden_size])
        with torch.no_grad():
            for ei in range(source_tensor.size(0)):
                _, encoder_hidden = encoder(source_tensor[ei], encoder_hidden)
            decoder_input, decoder_hidden, words = torch.Tensor([[SOS_token]]).long(), encoder_hidden, []
            for _ in range(target_max_length):
                decoder_output, decoder_hidden = decoder(decoder_input, decoder_hidden)
                top = decoder_output.argmax().item()
                if top == EOS_token:
                    break
                words.append(target_vocab.index2vocab[top])
                decoder_input = torch.Tensor([[top]]).long()
        print(f"> {pair[0]}\n= {pair[1]}\n< {' '.join(words)}")
        exact += " ".join(words) == pair[1]
    print(f"exact {exact}/{len(pairs)}")


SOURCE_MAX_LENGTH, TARGET_MAX_LENGTH = 10, 12
load_pairs, load_source_vocab, load_target_vocab = preprocess(raw, SOURCE_MAX_LENGTH, TARGET_MAX_LENGTH)
enc_hidden_size = dec_hidden_size = 16
enc = Encoder(load_source_vocab.n_vocab, enc_hidden_size)
dec = Decoder(dec_hidden_size, load_target_vocab.n_vocab)
train(load_pairs, load_source_vocab, load_target_vocab, enc, dec, 5000)
translate(load_pairs, load_source_vocab, load_target_vocab, enc, dec, TARGET_MAX_LENGTH)
