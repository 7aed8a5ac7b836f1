"""Where real sequences come from: the synthetic oracle or a text corpus.

The envs themselves never need real data (their reward is the discriminator);
the source is what the discriminator is trained against, what a decoder turns
into text, and what defines the vocabulary and special tokens. Each builder
returns the keyword arguments of the base envs, so scalar and vector envs are
set up by the same code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from textgan_envs.device import resolve_device
from textgan_envs.envs.arguments import check_int


@runtime_checkable
class RealDataSource(Protocol):
    """Anything that draws real sequences ``LongTensor[n, T]`` on request."""

    vocab_size: int
    seq_len: int

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor: ...


@dataclass
class OracleSource:
    """Real data = samples of a (frozen) oracle LSTM; also scores generated text by oracle NLL."""

    oracle: Any
    vocab_size: int = field(init=False)
    seq_len: int = field(init=False)

    def __post_init__(self) -> None:
        self.vocab_size = int(self.oracle.vocab_size)
        self.seq_len = int(self.oracle.seq_len)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return self.oracle.sample(n, generator=generator)

    def nll(self, tokens: Tensor) -> Tensor:
        """Per-sequence oracle NLL (nats/token) of ``tokens``: NLL-oracle when averaged."""
        return self.oracle.nll(tokens.to(self.oracle.device))

    def decode(self, ids: Any) -> str:
        return " ".join(str(int(i)) for i in ids)


@dataclass
class CorpusSource:
    """Real data = rows of an encoded corpus (tokens, EOS, PAD), drawn uniformly with replacement."""

    tokens: Tensor
    vocab: Any
    level: str = "word"
    vocab_size: int = field(init=False)
    seq_len: int = field(init=False)

    def __post_init__(self) -> None:
        self.vocab_size = len(self.vocab)
        self.seq_len = int(self.tokens.shape[1])

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        device = generator.device if generator is not None else self.tokens.device
        idx = torch.randint(len(self.tokens), (int(n),), generator=generator, device=device)
        return self.tokens[idx.to(self.tokens.device)]

    def decode(self, ids: Any) -> str:
        ids = [int(i) for i in ids]
        eos = self.vocab.EOS
        if eos in ids:
            ids = ids[: ids.index(eos)]
        ids = [i for i in ids if 0 <= i < self.vocab_size]
        words = self.vocab.decode(ids, skip_special=True)
        return ("" if self.level == "char" else " ").join(words)


def oracle_setup(
    vocab_size: int = 5000,
    seq_len: int = 20,
    oracle_seed: int = 0,
    oracle_path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Base-env kwargs for the synthetic experiment: a seeded N(0,1) oracle or the published one."""
    from textgan_envs.oracle import OracleLSTM

    seq_len = check_int("seq_len", seq_len, 1)
    vocab_size = check_int("vocab_size", vocab_size, 2)
    oracle_seed = check_int("oracle_seed", oracle_seed, 0)
    device = resolve_device(device)
    if oracle_path is not None:
        oracle = OracleLSTM.from_npz(oracle_path, seq_len=seq_len, device=device)
        if oracle.vocab_size != vocab_size:
            raise ValueError(
                f"oracle file {oracle_path} has vocab_size {oracle.vocab_size}, but vocab_size="
                f"{vocab_size} was requested (pass vocab_size={oracle.vocab_size})"
            )
    else:
        oracle = OracleLSTM.random(
            int(oracle_seed), vocab_size=vocab_size, seq_len=seq_len, device=device
        )
    source = OracleSource(oracle)
    return {
        "vocab_size": source.vocab_size,
        "seq_len": source.seq_len,
        "real_data": source,
        "decode": source.decode,
        "stop_at_eos": False,
        "eos_token": None,
        "pad_token": None,
        "forbidden_tokens": (),
    }


def corpus_setup(
    corpus_path: str | os.PathLike[str],
    level: str = "word",
    seq_len: int = 20,
    vocab_path: str | os.PathLike[str] | None = None,
    max_vocab: int | None = None,
    min_count: int = 1,
    stop_at_eos: bool = True,
    device: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Base-env kwargs for a one-sentence-per-line corpus (word or char level).

    The vocabulary is built from the corpus (``min_count``, ``max_vocab``) unless
    ``vocab_path`` names a saved one. Real rows are ``tokens, EOS, PAD...`` as
    :func:`textgan_envs.corpus.encode_sentences` writes them, so with
    ``stop_at_eos`` generated episodes have exactly the real data's format.
    """
    from textgan_envs.corpus import encode_sentences, load_corpus
    from textgan_envs.vocab import Vocabulary

    seq_len = check_int("seq_len", seq_len, 1)
    corpus = load_corpus(corpus_path, level=level)
    if vocab_path is not None:
        vocab = Vocabulary.load(vocab_path)
    else:
        vocab = Vocabulary.build(corpus.sentences, min_count=min_count, max_size=max_vocab)
    tokens = encode_sentences(corpus.sentences, vocab, seq_len).to(resolve_device(device))
    source = CorpusSource(tokens, vocab, level=level)
    special = Vocabulary
    forbidden = (special.BOS, special.MASK) + ((special.PAD,) if stop_at_eos else ())
    return {
        "vocab_size": source.vocab_size,
        "seq_len": source.seq_len,
        "real_data": source,
        "decode": source.decode,
        "stop_at_eos": bool(stop_at_eos),
        "eos_token": special.EOS,
        "pad_token": special.PAD,
        "forbidden_tokens": tuple(sorted(forbidden)),
    }
