"""N-gram counting shared by the BLEU code, and the two n-gram diversity/novelty metrics.

``unique_ngram_fraction`` measures diversity within a set of samples (mode collapse repeats the
same n-grams); ``seen_ngram_fraction`` is MaskGAN's check of how many generated n-grams occur
in the training data (low: invented phrases; 1.0: possibly copying).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from typing import Any

Sentence = Sequence[Hashable]


def as_token_tuple(sentence: Any) -> tuple[Hashable, ...]:
    """A hashable copy of one token sequence (strings or ints; lists, arrays and 1-D tensors).

    Arrays and tensors are turned into plain Python ints so that equal ids hash equal.
    """
    if isinstance(sentence, str):
        raise ValueError(
            f"expected a token sequence (list of str or int), got a str: {sentence[:40]!r}; "
            "split it into tokens first"
        )
    if hasattr(sentence, "tolist"):
        if getattr(sentence, "ndim", 1) != 1:
            raise ValueError(f"expected a 1-D token sequence, got shape {tuple(sentence.shape)}")
        sentence = sentence.tolist()
    return tuple(sentence)


def ngram_counts(sentence: tuple[Hashable, ...], n: int) -> Counter[tuple[Hashable, ...]]:
    """Counts of the n-grams (as tuples) of one sentence; empty if it is shorter than ``n``."""
    if len(sentence) < n:
        return Counter()
    if n == 1:
        return Counter((tok,) for tok in sentence)
    return Counter(zip(*(sentence[i:] for i in range(n)), strict=False))


def _check_n(n: int) -> None:
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n-gram order must be a positive int, got {n!r}")


def unique_ngram_fraction(samples: Iterable[Sentence], n: int) -> float:
    """Distinct n-grams divided by all n-gram occurrences, pooled over ``samples``.

    1.0 means no n-gram repeats anywhere; raises ``ValueError`` if no sample has ``n`` tokens.
    """
    _check_n(n)
    pooled: Counter[tuple[Hashable, ...]] = Counter()
    for sample in samples:
        pooled.update(ngram_counts(as_token_tuple(sample), n))
    total = sum(pooled.values())
    if total == 0:
        raise ValueError(f"no sample has {n} or more tokens, so there are no {n}-grams")
    return len(pooled) / total


def seen_ngram_fraction(
    samples: Iterable[Sentence],
    training_sentences: Iterable[Sentence],
    n: int,
    distinct: bool = False,
) -> float:
    """Fraction of generated n-grams that also occur somewhere in the training sentences.

    By default every n-gram occurrence in ``samples`` counts (a phrase repeated five times
    counts five times); ``distinct=True`` counts each distinct generated n-gram once. Raises
    ``ValueError`` if the samples contain no n-gram.
    """
    _check_n(n)
    generated: Counter[tuple[Hashable, ...]] = Counter()
    for sample in samples:
        generated.update(ngram_counts(as_token_tuple(sample), n))
    if not generated:
        raise ValueError(f"no sample has {n} or more tokens, so there are no {n}-grams")
    seen: set[tuple[Hashable, ...]] = set()
    for sentence in training_sentences:
        seen.update(ngram_counts(as_token_tuple(sentence), n))
    if distinct:
        return sum(1 for g in generated if g in seen) / len(generated)
    return sum(c for g, c in generated.items() if g in seen) / sum(generated.values())
