"""Sampling from categorical logits and from recurrent sequence models.

The modules import one way, each only from those listed before it:

* :mod:`~textgan_envs.sampling.categorical`: one class per row of a logits
  tensor (the C kernel on CPU, PyTorch's two-level inverse CDF elsewhere, and
  the reference samplers they are checked against);
* :mod:`~textgan_envs.sampling.projection`: exact CPU sampling for models that
  expose their output projection, projecting as it samples;
* :mod:`~textgan_envs.sampling.next_token`: :func:`next_token_sampler`, the one
  place that chooses between the two for a model and its device;
* :mod:`~textgan_envs.sampling.sequences`: whole sequences, teacher-forced
  scores and the completion loop that Monte-Carlo search shares.
"""

from textgan_envs.sampling.categorical import (
    sample_categorical,
    sample_categorical_gumbel,
    sample_categorical_inverse_cdf,
    sample_categorical_multinomial,
    sample_categorical_native,
)
from textgan_envs.sampling.next_token import NextToken, next_token_sampler

# The route a model's sampling takes, readable from here as before the split.
from textgan_envs.sampling.next_token import _projection_sampler as _projection_sampler
from textgan_envs.sampling.next_token import _uses_projection_path as _uses_projection_path
from textgan_envs.sampling.sequences import (
    complete_in_place,
    complete_sequences,
    consume_prefix,
    default_batch_rows,
    prefix_states,
    sample_sequences,
    sequence_log_probs,
)

__all__ = [
    "NextToken",
    "complete_in_place",
    "complete_sequences",
    "consume_prefix",
    "default_batch_rows",
    "next_token_sampler",
    "prefix_states",
    "sample_categorical",
    "sample_categorical_gumbel",
    "sample_categorical_inverse_cdf",
    "sample_categorical_multinomial",
    "sample_categorical_native",
    "sample_sequences",
    "sequence_log_probs",
]
