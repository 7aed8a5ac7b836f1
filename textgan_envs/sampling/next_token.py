"""The one place that decides how a model's next token is sampled.

Every sampling loop (sequences, completions, Monte-Carlo rewards, episode
collection) steps a model and draws a token per row; :func:`next_token_sampler`
fuses the two and picks the fastest exact route for the model and its device:

* on CPU, for models that expose their output projection
  (:class:`~textgan_envs.sequence_model.ProjectedSequenceModel`), the C kernel
  that projects as it samples (:class:`~textgan_envs.sampling.projection.ProjectionSampler`),
  so no ``[B, V]`` float32 logits are written;
* otherwise ``model.step`` and :func:`~textgan_envs.sampling.categorical.sample_categorical`
  on its logits (the C kernel on CPU, PyTorch's two-level inverse CDF elsewhere).

All routes draw from the same distribution; which one a machine takes decides
which samples a seed gives (the bfloat16 projection route, taken where the CPU has
avx512_bf16, even uses more uniforms per row). ``portable=True`` fixes the route
instead: ``model.step`` and PyTorch's own two-level inverse CDF on float32 logits, on
every machine, so on CPU a seed gives the same sequences everywhere (up to float rounding,
which changes a token only where a uniform falls within rounding of a class
boundary). Data that defines a task is drawn that way.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

from textgan_envs.sampling.categorical import (
    _check_temperature,
    _native_cpu,
    sample_categorical,
    sample_categorical_inverse_cdf,
)
from textgan_envs.sampling.projection import ProjectionSampler, projection_sampling_enabled
from textgan_envs.sequence_model import ProjectedSequenceModel, RecurrentSequenceModel, State

__all__ = ["NextToken", "Rows", "next_token_sampler"]

Rows = slice | Tensor | None
"""The rows of a step to draw tokens for: a slice, an index tensor, or ``None`` for all."""


class NextToken(Protocol):
    """``(prev_tokens [B], state) -> (tokens, state)``: one step of the model and one draw per row.

    The state covers all ``B`` rows; the tokens only ``rows`` (all by default), so rows that
    share a state (and hence a distribution) can be drawn once.
    """

    def __call__(self, prev: Tensor, state: State, rows: Rows = None) -> tuple[Tensor, State]: ...


def next_token_sampler(
    model: RecurrentSequenceModel,
    generator: torch.Generator | None = None,
    temperature: float = 1.0,
    portable: bool = False,
) -> NextToken:
    """A :class:`NextToken` step for ``model`` that samples from ``softmax(logits / temperature)``.

    Takes the projection route where :func:`_uses_projection_path`, else ``model.step`` followed
    by :func:`~textgan_envs.sampling.categorical.sample_categorical`; ``portable=True`` always
    takes ``model.step`` and the PyTorch inverse CDF (the same draws on every machine; slower).
    Build it once per sampling loop: it snapshots the projection's parameters.
    """
    _check_temperature(temperature)
    sampler = None if portable else _projection_sampler(model)
    if sampler is None:
        draw = sample_categorical_inverse_cdf if portable else sample_categorical

        def step_and_sample(prev: Tensor, state: State, rows: Rows = None) -> tuple[Tensor, State]:
            logits, state = model.step(prev, state)
            if rows is not None:
                logits = logits[rows]
            return draw(logits, generator=generator, temperature=temperature), state

        return step_and_sample

    def step_and_sample_projected(
        prev: Tensor, state: State, rows: Rows = None
    ) -> tuple[Tensor, State]:
        features, state = model.step_features(prev, state)  # type: ignore[attr-defined]
        if rows is not None:
            features = features[rows]
        return sampler.sample(features, generator=generator, temperature=temperature), state

    return step_and_sample_projected


def model_device(model: RecurrentSequenceModel) -> torch.device:
    """The device ``model`` computes on."""
    return torch.device(model.device)


def _defining_class(cls: type, name: str) -> type | None:
    return next((c for c in cls.__mro__ if name in vars(c)), None)


def _uses_projection_path(model: RecurrentSequenceModel) -> bool:
    """Whether sampling ``model`` goes through :class:`ProjectionSampler`.

    It does on CPU where the C kernel is available, unless switched off, for
    models that expose their projection. A subclass that overrides ``step`` but
    not ``step_features`` (to mask logits, say), or an instance whose ``step``
    is replaced (wrapped to watch it, say), is sampled through its ``step``:
    the two halves are trusted only when one class defines both.
    """
    return (
        projection_sampling_enabled()
        and isinstance(model, ProjectedSequenceModel)
        and "step" not in getattr(model, "__dict__", {})
        and _defining_class(type(model), "step") is _defining_class(type(model), "step_features")
        and _native_cpu(model_device(model))
    )


def _projection_sampler(model: RecurrentSequenceModel) -> ProjectionSampler | None:
    """The projection sampler for ``model`` where :func:`_uses_projection_path`, else ``None``."""
    if not _uses_projection_path(model):
        return None
    weight, bias = model.output_projection()  # type: ignore[attr-defined]
    return ProjectionSampler(weight, bias)
