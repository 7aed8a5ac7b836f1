"""Token <-> id mapping with fixed reserved ids, so every model, env and metric agrees on them.

The five reserved ids never move: ``PAD=0, BOS=1, EOS=2, UNK=3, MASK=4``. Code elsewhere
(padding masks, MaskGAN's mask token, the start input of a generator) relies on those numbers.
"""

from __future__ import annotations

import json
import operator
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from textgan_envs.atomic_files import atomic_write_text

_FORMAT = "textgan-vocabulary"
_VERSION = 1


class UnknownTokenError(KeyError, ValueError):
    """A token that is not in the vocabulary was encoded with ``strict=True``.

    Subclasses both ``KeyError`` and ``ValueError`` so either ``except`` catches it.
    """

    def __str__(self) -> str:  # KeyError would show repr(args) with extra quotes
        return str(self.args[0]) if self.args else ""


class Vocabulary:
    """An ordered list of string tokens; a token's id is its position.

    Build one from a corpus with :meth:`build` (most frequent token first) or load a saved one
    with :meth:`load`. Ids ``0..4`` are always the reserved tokens below.
    """

    PAD = 0
    BOS = 1
    EOS = 2
    UNK = 3
    MASK = 4
    SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>", "<mask>")

    def __init__(self, tokens: Sequence[str]) -> None:
        """Make a vocabulary from its complete token list, which must start with the reserved tokens."""
        tokens = list(tokens)
        n_special = len(self.SPECIAL_TOKENS)
        if tuple(tokens[:n_special]) != self.SPECIAL_TOKENS:
            raise ValueError(
                f"a vocabulary must start with the reserved tokens {list(self.SPECIAL_TOKENS)}, "
                f"got {tokens[:n_special]}"
            )
        index: dict[str, int] = {}
        for i, tok in enumerate(tokens):
            if not isinstance(tok, str):
                raise ValueError(f"vocabulary tokens must be strings, got {tok!r} at id {i}")
            if tok in index:
                raise ValueError(f"duplicate token {tok!r} at ids {index[tok]} and {i}")
            index[tok] = i
        self._tokens: list[str] = tokens
        self._index: dict[str, int] = index

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        sentences: Iterable[Sequence[str]],
        min_count: int = 1,
        max_size: int | None = None,
    ) -> Vocabulary:
        """Count tokens and keep the frequent ones.

        Order: most frequent first; equal counts are sorted by the token string, so the result
        does not depend on the order of the corpus. ``min_count`` drops rarer tokens;
        ``max_size`` caps ``len(vocab)`` *including* the five reserved tokens (it must be >= 5).
        Reserved token strings found in the data are not counted (they keep their reserved ids).
        """
        if min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {min_count}")
        n_special = len(cls.SPECIAL_TOKENS)
        if max_size is not None and max_size < n_special:
            raise ValueError(f"max_size={max_size} is smaller than the {n_special} reserved tokens")
        counts: Counter[str] = Counter()
        for sentence in sentences:
            if isinstance(sentence, str):
                raise ValueError(
                    "Vocabulary.build expects tokenised sentences (lists of str), got a str: "
                    f"{sentence[:40]!r}"
                )
            counts.update(sentence)
        special = set(cls.SPECIAL_TOKENS)
        kept = sorted(
            (tok for tok, c in counts.items() if c >= min_count and tok not in special),
            key=lambda tok: (-counts[tok], tok),
        )
        if max_size is not None:
            kept = kept[: max_size - n_special]
        return cls([*cls.SPECIAL_TOKENS, *kept])

    # ------------------------------------------------------------------ lookups
    def __len__(self) -> int:
        return len(self._tokens)

    def __contains__(self, token: object) -> bool:
        return token in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._tokens == other._tokens

    def __hash__(self) -> int:
        return hash(tuple(self._tokens))

    def __repr__(self) -> str:
        return f"Vocabulary(size={len(self)})"

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order (a copy)."""
        return list(self._tokens)

    def token_to_id(self, token: str) -> int:
        """The id of ``token``; raises :class:`UnknownTokenError` if it is absent."""
        try:
            return self._index[token]
        except (KeyError, TypeError):
            raise UnknownTokenError(f"token {token!r} is not in the vocabulary") from None

    def id_to_token(self, i: int) -> str:
        """The token with id ``i``; raises ``ValueError`` naming the id if out of range."""
        return self._tokens[self._check_id(i)]

    def _check_id(self, i: Any) -> int:
        try:
            j = operator.index(i)
        except TypeError:
            raise ValueError(f"token id {i!r} is not an integer") from None
        if not 0 <= j < len(self._tokens):
            raise ValueError(f"token id {j} is outside the vocabulary (size {len(self._tokens)})")
        return j

    # ------------------------------------------------------------------ coding
    def encode(self, tokens: Iterable[str], strict: bool = False) -> list[int]:
        """Map tokens to ids; unknown tokens become ``UNK``, or raise when ``strict``."""
        if isinstance(tokens, str):
            raise ValueError(f"encode expects a token sequence, got a str: {tokens[:40]!r}")
        index = self._index
        if strict:
            return [self.token_to_id(tok) for tok in tokens]
        unk = self.UNK
        return [index.get(tok, unk) for tok in tokens]

    def decode(self, ids: Any, skip_special: bool = False) -> list[str]:
        """Map ids (list, 1-D numpy array or 1-D tensor) back to tokens.

        ``skip_special`` drops ``<pad> <bos> <eos> <mask>`` but keeps ``<unk>``, which still stands
        for a word. An id outside the vocabulary raises ``ValueError`` naming it.
        """
        if hasattr(ids, "ndim") and ids.ndim != 1:
            raise ValueError(f"decode expects a 1-D sequence of ids, got shape {tuple(ids.shape)}")
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        out: list[str] = []
        tokens = self._tokens
        skipped = {self.PAD, self.BOS, self.EOS, self.MASK} if skip_special else set()
        for i in ids:
            j = self._check_id(i)
            if j not in skipped:
                out.append(tokens[j])
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the vocabulary as JSON (atomically: a crash never leaves half a file)."""
        path = Path(path)
        payload = {"format": _FORMAT, "version": _VERSION, "tokens": self._tokens}
        atomic_write_text(path, json.dumps(payload, indent=0))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`; errors name the file and the problem."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"vocabulary file {path} does not exist") from None
        except UnicodeDecodeError as exc:
            raise ValueError(f"vocabulary file {path} is not valid UTF-8: {exc}") from None
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"vocabulary file {path} is not valid JSON: {exc}") from None
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise ValueError(f"vocabulary file {path} is not a {_FORMAT} JSON file")
        if payload.get("version") != _VERSION:
            raise ValueError(
                f"vocabulary file {path} has version {payload.get('version')!r}, "
                f"this code reads version {_VERSION}"
            )
        tokens = payload.get("tokens")
        if not isinstance(tokens, list):
            raise ValueError(f"vocabulary file {path} has no 'tokens' list")
        try:
            return cls(tokens)
        except ValueError as exc:
            raise ValueError(f"vocabulary file {path} is invalid: {exc}") from None
