"""Read a one-sentence-per-line text corpus into token lists, and turn them into padded id tensors.

Loading policy (one place, so every experiment reads data the same way):

* The file is decoded as UTF-8 (a leading byte-order mark is ignored). Undecodable bytes raise
  :class:`CorpusError` naming the file and the 1-based line number.
* Lines end at ``\\n``, ``\\r\\n`` or ``\\r``; a missing newline after the last line is fine.
* ``level="word"`` splits a line on runs of whitespace (no further tokenisation: ``"wheel."`` stays
  one token, as the COCO captions are stored). ``level="char"`` keeps every character of the line
  after stripping its leading/trailing whitespace; inner spaces are tokens.
* Lines with no token (empty or whitespace only) are skipped and counted in ``n_empty_skipped``.
* With ``max_len``, a longer sentence is either cut to its first ``max_len`` tokens
  (``overlong="truncate"``, counted in ``n_truncated``) or left out (``overlong="drop"``,
  counted in ``n_dropped``).
* A missing file, an empty file, or a file left with no sentence raises :class:`CorpusError`.
* Nothing is cut or left out silently: :meth:`Corpus.counts` holds the counts (the trainers
  record them in the run's ``config.json``) and :func:`warn_if_lossy` issues one
  :class:`CorpusWarning` with them when any line was cut or dropped.
"""

from __future__ import annotations

import os
import random
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from textgan_envs.vocab import Vocabulary


class CorpusError(ValueError):
    """A corpus file cannot be read as one-sentence-per-line UTF-8 text."""


class CorpusWarning(UserWarning):
    """Lines of a corpus were cut to ``max_len`` tokens or left out."""


@dataclass
class Corpus:
    """Sentences read from one file, with counts of what the loading policy did to it."""

    sentences: list[list[str]]
    """Tokenised sentences, in file order."""
    path: Path
    """The file they were read from."""
    level: str
    """``"word"`` or ``"char"``: how lines were split into tokens."""
    n_lines: int = 0
    """Lines in the file (including skipped ones)."""
    n_empty_skipped: int = 0
    """Lines with no token, left out."""
    n_truncated: int = 0
    """Sentences cut to ``max_len`` tokens."""
    n_dropped: int = 0
    """Sentences longer than ``max_len`` left out."""
    max_len: int | None = field(default=None)
    """The length limit applied, if any."""
    longest: int = 0
    """Tokens in the longest line, before any cut."""

    def __len__(self) -> int:
        return len(self.sentences)

    def counts(self) -> dict[str, int | None]:
        """What the loading policy did, as plain numbers (recorded in a run's ``config.json``)."""
        return {
            "sentences": len(self.sentences),
            "lines": self.n_lines,
            "empty_skipped": self.n_empty_skipped,
            "truncated": self.n_truncated,
            "dropped": self.n_dropped,
            "max_len": self.max_len,
            "longest_line_tokens": self.longest,
        }

    def loss_report(self) -> str | None:
        """One line on the lines that were cut or dropped (and why); ``None`` when none were."""
        if not (self.n_truncated or self.n_dropped):
            return None
        parts = []
        if self.n_truncated:
            parts.append(f"{self.n_truncated} cut to their first {self.max_len} tokens")
        if self.n_dropped:
            parts.append(f"{self.n_dropped} left out")
        report = (
            f"corpus file {self.path}: {' and '.join(parts)} of {self.n_lines} lines, longer "
            f"than max_len={self.max_len} ({self.level} tokens; the longest has {self.longest})"
        )
        if self.n_empty_skipped:
            report += f"; {self.n_empty_skipped} empty lines skipped"
        return report

    def summary(self) -> str:
        """One line describing what was loaded and what was skipped, cut or dropped."""
        lengths = [len(s) for s in self.sentences]
        mean = sum(lengths) / len(lengths) if lengths else 0.0
        return (
            f"{self.path}: {len(self.sentences)} sentences ({self.level} level) from "
            f"{self.n_lines} lines; {self.n_empty_skipped} empty skipped, "
            f"{self.n_truncated} truncated, {self.n_dropped} dropped"
            f" (max_len={self.max_len}); length mean {mean:.2f}, "
            f"max {max(lengths, default=0)}"
        )


def load_corpus(
    path: str | os.PathLike[str],
    level: Literal["word", "char"] = "word",
    max_len: int | None = None,
    overlong: Literal["truncate", "drop"] = "truncate",
) -> Corpus:
    """Read ``path`` following the policy in this module's docstring."""
    if level not in ("word", "char"):
        raise ValueError(f"level must be 'word' or 'char', got {level!r}")
    if overlong not in ("truncate", "drop"):
        raise ValueError(f"overlong must be 'truncate' or 'drop', got {overlong!r}")
    if max_len is not None and max_len < 1:
        raise ValueError(f"max_len must be >= 1 or None, got {max_len}")
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorpusError(f"corpus file {path} does not exist") from None
    except IsADirectoryError:
        raise CorpusError(f"corpus path {path} is a directory, not a file") from None
    if not data:
        raise CorpusError(f"corpus file {path} is empty")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]

    corpus = Corpus(sentences=[], path=path, level=level, max_len=max_len)
    for lineno, raw in enumerate(data.splitlines(), start=1):
        corpus.n_lines += 1
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorpusError(
                f"corpus file {path}, line {lineno}: not valid UTF-8 ({exc.reason} at byte "
                f"{exc.start} of the line)"
            ) from None
        tokens = line.split() if level == "word" else list(line.strip())
        corpus.longest = max(corpus.longest, len(tokens))
        if not tokens:
            corpus.n_empty_skipped += 1
            continue
        if max_len is not None and len(tokens) > max_len:
            if overlong == "drop":
                corpus.n_dropped += 1
                continue
            tokens = tokens[:max_len]
            corpus.n_truncated += 1
        corpus.sentences.append(tokens)
    if not corpus.sentences:
        raise CorpusError(
            f"corpus file {path} has no usable sentence ({corpus.n_lines} lines: "
            f"{corpus.n_empty_skipped} empty, {corpus.n_dropped} longer than max_len={max_len})"
        )
    return corpus


def warn_if_lossy(corpus: Corpus, stacklevel: int = 2) -> None:
    """One :class:`CorpusWarning` with the counts when lines of ``corpus`` were cut or dropped."""
    report = corpus.loss_report()
    if report is not None:
        warnings.warn(report, CorpusWarning, stacklevel=stacklevel + 1)


def split_corpus(
    corpus: Corpus, valid_fraction: float = 0.1, seed: int = 0, limit: int | None = None
) -> tuple[list[Sequence[str]], list[Sequence[str]]]:
    """:func:`train_valid_split` of ``corpus``'s (first ``limit``) sentences.

    :class:`CorpusError` naming the file when there are too few for both parts.
    """
    sentences = corpus.sentences[:limit]
    try:
        return train_valid_split(sentences, valid_fraction, seed)
    except ValueError as exc:
        n = len(sentences)
        raise CorpusError(
            f"corpus file {corpus.path} has {n} usable sentence{'s' if n != 1 else ''}: too "
            f"few to hold out a validation split ({exc})"
        ) from None


def train_valid_split(
    sentences: Sequence[Sequence[str]], valid_fraction: float = 0.1, seed: int = 0
) -> tuple[list[Sequence[str]], list[Sequence[str]]]:
    """Split into (train, valid) at random but reproducibly: the same seed gives the same split.

    ``round(valid_fraction * N)`` sentences go to valid; both parts keep the original order.
    Both parts must be non-empty.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1), got {valid_fraction}")
    n = len(sentences)
    n_valid = round(valid_fraction * n)
    if n_valid == 0 or n_valid == n:
        raise ValueError(
            f"valid_fraction={valid_fraction} of {n} sentences leaves an empty "
            f"{'valid' if n_valid == 0 else 'train'} part"
        )
    order = list(range(n))
    random.Random(seed).shuffle(order)
    valid_idx = set(order[:n_valid])
    train = [s for i, s in enumerate(sentences) if i not in valid_idx]
    valid = [s for i, s in enumerate(sentences) if i in valid_idx]
    return train, valid


def encode_sentences(
    sentences: Sequence[Sequence[str]],
    vocab: Vocabulary,
    seq_len: int,
    strict: bool = False,
) -> torch.Tensor:
    """Encode to a ``LongTensor[N, seq_len]``: tokens, one ``EOS``, then ``PAD`` to ``seq_len``.

    A sentence with more than ``seq_len - 1`` tokens is cut to its first ``seq_len`` tokens and
    keeps no ``EOS`` (the row is all words). No ``BOS`` is written: generators feed their start
    token themselves. Unknown tokens become ``UNK`` (or raise when ``strict``).
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be >= 1, got {seq_len}")
    pad, eos = Vocabulary.PAD, Vocabulary.EOS
    rows: list[list[int]] = []
    for sentence in sentences:
        ids = vocab.encode(sentence, strict=strict)
        if len(ids) < seq_len:
            ids.append(eos)
            ids.extend([pad] * (seq_len - len(ids)))
        else:
            ids = ids[:seq_len]
        rows.append(ids)
    if not rows:
        return torch.empty((0, seq_len), dtype=torch.long)
    return torch.tensor(rows, dtype=torch.long)
