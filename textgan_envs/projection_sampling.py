"""The projection sampler under its original import path: :mod:`textgan_envs.sampling.projection`.

Kept so that ``from textgan_envs.projection_sampling import ...`` goes on working; the
switch it exposes (:func:`set_projection_sampling`) is the one the samplers read.
"""

from textgan_envs.sampling.projection import (
    BF16_UNIT_ROUNDOFF,
    ProjectionSampler,
    logit_error_bound,
    projection_norms,
    projection_sampling_enabled,
    set_projection_sampling,
)

__all__ = [
    "BF16_UNIT_ROUNDOFF",
    "ProjectionSampler",
    "logit_error_bound",
    "projection_norms",
    "projection_sampling_enabled",
    "set_projection_sampling",
]
