"""Metrics of a generator at one checkpoint and one sampling temperature, and the temperature sweep.

Why temperature everywhere: "Language GANs Falling Short" (Caccia et al.) shows that a
single (quality, diversity) point per model is misleading, because lowering the softmax
temperature of plain MLE buys quality for diversity just as GAN training does. So every
metric here is computed for the temperature-scaled model ``softmax(logits / t)``: samples
for NLL-oracle / BLEU / Self-BLEU are drawn from it, and NLL-test scores the held-out data
under it. The sweep then gives each variant a curve instead of a point.

All metrics work on any :class:`~textgan_envs.sequence_model.RecurrentSequenceModel`.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from textgan_envs.metrics import BleuScorer, nll_oracle, nll_test, self_bleu, unique_ngram_fraction
from textgan_envs.sampling import sample_sequences, sequence_log_probs
from textgan_envs.sequence_model import RecurrentSequenceModel

#: metric name -> (label, higher is better). Self-BLEU is "higher = less diverse".
METRICS: dict[str, tuple[str, bool]] = {
    "nll_oracle": ("NLL-oracle", False),
    "nll_test": ("NLL-test", False),
    **{f"bleu{n}": (f"BLEU-{n}", True) for n in range(2, 6)},
    **{f"self_bleu{n}": (f"Self-BLEU-{n}", False) for n in range(2, 6)},
    **{f"unique{n}": (f"unique {n}-grams", True) for n in range(2, 5)},
    "d_accuracy": ("D accuracy", False),
    "wall_time": ("wall time (s)", False),
}


def higher_is_better(metric: str) -> bool:
    """Direction of a metric (unknown metrics are taken as higher-is-better)."""
    return METRICS.get(metric, (metric, True))[1]


def metric_label(metric: str) -> str:
    return METRICS.get(metric, (metric, True))[0]


@dataclass(frozen=True)
class EvalSettings:
    """How much to sample at each evaluation; the same for every variant of a bench."""

    n_samples: int = 1000
    """Samples drawn per evaluation; NLL-oracle and the unique n-gram fractions use all of them."""
    n_bleu: int = 200
    """Of those, how many are scored by BLEU and Self-BLEU (both are the slow metrics)."""
    n_refs: int | None = None
    """Held-out real sequences used as BLEU references (None: all of them)."""
    bleu_orders: tuple[int, ...] = (2, 3, 4, 5)
    """BLEU / Self-BLEU orders to report."""
    unique_orders: tuple[int, ...] = (2, 3, 4)
    """Orders of the unique n-gram fraction (within-sample diversity)."""
    temperatures: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
    """Sampling temperatures of the quality-diversity sweep after training."""
    batch_size: int = 1024

    def __post_init__(self) -> None:
        if self.n_samples < 2:
            raise ValueError(f"n_samples must be >= 2, got {self.n_samples}")
        if not 2 <= self.n_bleu <= self.n_samples:
            raise ValueError(
                f"n_bleu must be in [2, n_samples={self.n_samples}], got {self.n_bleu}"
            )
        if any(t <= 0 for t in self.temperatures):
            raise ValueError(f"temperatures must be > 0, got {self.temperatures}")
        if any(n < 1 for n in (*self.bleu_orders, *self.unique_orders)):
            raise ValueError("n-gram orders must be >= 1")


@dataclass
class EvalData:
    """Held-out real data (and the oracle, on synthetic tasks) that every evaluation scores against."""

    test_tokens: Tensor
    """Held-out real sequences ``[N, T]``: NLL-test and the BLEU references."""
    oracle: Any | None = None
    """The oracle (synthetic tasks): enables NLL-oracle."""
    end_ids: tuple[int, ...] = ()
    """Token ids that end a sentence for BLEU (EOS, PAD); empty for fixed-length oracle data."""
    pad_id: int | None = None
    """Positions equal to this id are left out of NLL-test."""
    decode: Callable[[list[int]], tuple[Any, ...]] | None = None
    """Token-id row -> BLEU sentence (e.g. words cut at EOS); default: ids cut at ``end_ids``."""
    references: list[tuple[Any, ...]] | None = None
    """BLEU references (e.g. the test file's words); default: ``test_tokens`` as sentences."""
    _scorers: dict[tuple[int, int | None], BleuScorer] = field(default_factory=dict, repr=False)

    def sentences(self, tokens: Tensor) -> list[tuple[Any, ...]]:
        """Token rows as BLEU sentences."""
        out = []
        for row in tokens.tolist():
            if self.decode is not None:
                out.append(self.decode(row))
                continue
            for i, tok in enumerate(row):
                if tok in self.end_ids:
                    row = row[:i]
                    break
            out.append(tuple(row))
        return out

    def scorer(self, max_n: int, n_refs: int | None) -> BleuScorer:
        """BLEU scorer against the references, built once per order and reused."""
        key = (max_n, n_refs)
        if key not in self._scorers:
            refs = self.references
            if refs is None:
                refs = self.sentences(self.test_tokens)
            self._scorers[key] = BleuScorer(refs if n_refs is None else refs[:n_refs], max_n=max_n)
        return self._scorers[key]


class _Tempered:
    """A sequence model scored at temperature ``t`` (``log_prob`` for :func:`nll_test`)."""

    def __init__(self, model: RecurrentSequenceModel, temperature: float) -> None:
        self.model = model
        self.temperature = temperature

    @property
    def device(self) -> torch.device:
        return torch.device(self.model.device)

    @torch.no_grad()
    def log_prob(self, tokens: Tensor) -> Tensor:
        native = getattr(self.model, "log_prob", None)
        if native is not None and "temperature" in inspect.signature(native).parameters:
            return native(tokens, temperature=self.temperature)  # whole-sequence fast path
        return sequence_log_probs(self.model, tokens, temperature=self.temperature)


@torch.no_grad()
def evaluate(
    model: RecurrentSequenceModel,
    data: EvalData,
    settings: EvalSettings,
    temperature: float = 1.0,
    seed: int = 0,
) -> dict[str, float]:
    """All sample-based and likelihood metrics of ``model`` at ``temperature``.

    ``seed`` fixes the evaluation samples, so two variants evaluated with the same seed
    see the same random numbers.
    """
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        gen = torch.Generator(device=torch.device(model.device)).manual_seed(int(seed))
        samples = sample_sequences(
            model, settings.n_samples, temperature, gen, batch_size=settings.batch_size
        )
        out: dict[str, float] = {"temperature": float(temperature)}
        if data.oracle is not None:
            out["nll_oracle"] = nll_oracle(data.oracle, samples, batch_size=settings.batch_size)
        out["nll_test"] = nll_test(
            _Tempered(model, temperature), data.test_tokens, data.pad_id, settings.batch_size
        )
        sents = data.sentences(samples.cpu())
        for n in settings.unique_orders:
            out[f"unique{n}"] = _safe(unique_ngram_fraction, sents, n)
        bleu_sents = sents[: settings.n_bleu]
        for n in settings.bleu_orders:
            scores = data.scorer(n, settings.n_refs).scores(bleu_sents)
            out[f"bleu{n}"] = sum(scores) / len(scores)
            out[f"self_bleu{n}"] = self_bleu(bleu_sents, max_n=n)
        return out
    finally:
        if was_training and hasattr(model, "train"):
            model.train()


def _safe(fn: Any, sents: list[tuple[int, ...]], n: int) -> float:
    """A metric that is undefined for too-short samples becomes NaN instead of failing the run."""
    try:
        return float(fn(sents, n))
    except ValueError:
        return float("nan")


def temperature_sweep(
    model: RecurrentSequenceModel,
    data: EvalData,
    settings: EvalSettings,
    seed: int = 0,
    temperatures: Sequence[float] | None = None,
) -> list[dict[str, float]]:
    """One metrics row per temperature (``phase="sweep"``), for the quality-diversity curves."""
    rows = []
    for t in settings.temperatures if temperatures is None else temperatures:
        start = time.perf_counter()
        row = evaluate(model, data, settings, temperature=t, seed=seed)
        rows.append({"phase": "sweep", **row, "eval_time": time.perf_counter() - start})
    return rows
