"""Token streams and batch order, exactly as the studio's data layer (host/data/dataset.ts).

The export writes one file per Dataset node, data/<node-id>.tokens:

  offset  size  field
  0       8     magic b"SSTOKENS"
  8       4     format version, uint32 little-endian (1)
  12      4     dtype code, uint32 (1 = int32 little-endian)
  16      4     dataset seed, int32 (the Dataset node's seed)
  20      4     vocabulary size, uint32
  24      4     end-of-text token id, int32
  28      4     reserved (0)
  32      8     train tokens, uint64
  40      8     validation tokens, uint64
  48      ...   train stream, then validation stream (int32 each)

The streams are the packed documents (each followed by end-of-text) after the studio's split and
shuffle; batches are cut from them here with the same seeded arithmetic as the studio, so a
training batch is a pure function of (seed, global step, batch size, sequence length).
"""
import math
import struct

import torch

MAGIC = b"SSTOKENS"
HEADER = struct.Struct("<8sIIiIiIQQ")

M32 = 0xFFFFFFFF


def _u32(x):
    return int(math.trunc(x)) & M32 if isinstance(x, float) else x & M32


def _imul(a, b):
    return ((a & M32) * (b & M32)) & M32


def _rotl(x, r):
    x &= M32
    return ((x << r) | (x >> (32 - r))) & M32


def mix_seed(*values):
    """host/data/rng.ts mixSeed (murmur3 finaliser over a running hash), in uint32 arithmetic."""
    h = 0x9E3779B9
    for v in values:
        hi = math.floor(v / 0x100000000)
        k = _imul(_u32(v) ^ _u32(hi), 0xCC9E2D51)
        k = _rotl(k, 15)
        h ^= _imul(k, 0x1B873593)
        h = (_imul(_rotl(h, 13), 5) + 0xE6546B64) & M32
    h ^= h >> 16
    h = _imul(h, 0x85EBCA6B)
    h ^= h >> 13
    h = _imul(h, 0xC2B2AE35)
    h ^= h >> 16
    return h & M32


def hash_string(text):
    """32-bit FNV-1a over UTF-16 code units."""
    h = 0x811C9DC5
    data = text.encode("utf-16-le")
    for i in range(0, len(data), 2):
        h = _imul(h ^ (data[i] | (data[i + 1] << 8)), 0x01000193)
    return h


def seeded_random(seed):
    """mulberry32: floats in [0, 1)."""
    state = [seed & M32]

    def next_float():
        a = (state[0] + 0x6D2B79F5) & M32
        state[0] = a
        t = _imul(a ^ (a >> 15), a | 1)
        t = (t ^ ((t + _imul(t ^ (t >> 7), t | 61)) & M32)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296.0

    return next_float


def permutation(n, seed):
    p = list(range(n))
    rnd = seeded_random(seed)
    for i in range(n - 1, 0, -1):
        j = math.floor(rnd() * (i + 1))
        p[i], p[j] = p[j], p[i]
    return p


class TokenData:
    """One Dataset node's streams with the studio's trainBatch / validationBatch."""

    def __init__(self, path):
        with open(path, "rb") as f:
            raw = f.read()
        magic, version, dtype, seed, vocab, eos, _, n_train, n_valid = HEADER.unpack_from(raw, 0)
        if magic != MAGIC:
            raise ValueError(f"{path}: not a token file (magic {magic!r})")
        if version != 1 or dtype != 1:
            raise ValueError(f"{path}: unsupported version {version} / dtype {dtype}")
        body = torch.frombuffer(bytearray(raw[HEADER.size:]), dtype=torch.int32)
        if body.numel() != n_train + n_valid:
            raise ValueError(f"{path}: expected {n_train + n_valid} tokens, found {body.numel()}")
        self.seed, self.vocab_size, self.eos_id = seed, vocab, eos
        self.train = body[:n_train].to(torch.int64)
        self.validation = body[n_train:].to(torch.int64)
        self._epochs = {}

    def _window_count(self, seq):
        fit = (self.train.numel() - 1) // seq
        return fit - 1 if fit >= 2 else fit

    def _epoch(self, seq, epoch):
        key = (seq, epoch)
        if key not in self._epochs:
            count = self._window_count(seq)
            slack = self.train.numel() - 1 - count * seq
            rnd = seeded_random(mix_seed(self.seed, hash_string("train-windows"), seq, epoch))
            offset = math.floor(rnd() * (min(slack, seq - 1) + 1))
            order = permutation(count, mix_seed(self.seed, hash_string("train-order"), seq, epoch))
            if len(self._epochs) >= 8:
                self._epochs.pop(next(iter(self._epochs)))
            self._epochs[key] = (offset, order)
        return self._epochs[key]

    def train_batch(self, step, batch, seq):
        """(batch, seq + 1) int64 rows: inputs [:, :seq], targets [:, 1:]."""
        if self.train.numel() < seq + 1:
            raise ValueError(f"the train split has {self.train.numel()} tokens, fewer than {seq + 1}")
        count = self._window_count(seq)
        rows = []
        for row in range(batch):
            sample = step * batch + row
            offset, order = self._epoch(seq, sample // count)
            start = offset + order[sample % count] * seq
            rows.append(self.train[start:start + seq + 1])
        return torch.stack(rows)

    def validation_batch(self, index, batch, seq):
        count = (self.validation.numel() - 1) // seq
        if count < 1:
            raise ValueError(f"the validation split has {self.validation.numel()} tokens, fewer than {seq + 1}")
        rows = []
        for row in range(batch):
            start = ((index * batch + row) % count) * seq
            rows.append(self.validation[start:start + seq + 1])
        return torch.stack(rows)
