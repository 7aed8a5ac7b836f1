"""Plug & Play Generative Networks (Nguyen et al., CVPR 2017) on small grey-scale digits.

Components (all trained locally by :func:`train_ppgn`): a classifier C whose
fc layer is the code h (lower conv stage h1), generators G trained the DGN-AM
way and jointly (with and without noise), a discriminator per generator, and
denoising autoencoders on h and on x. :class:`PPGNSampler` runs the MALA-approx
chain for any plug-in :class:`Condition`; :data:`PRESETS` holds the five
variants (dgn-am, ppgn-x, ppgn-h, joint-ppgn-h, noiseless-joint-ppgn-h).
"""

from .build import class_condition, make_sampler
from .conditions import (
    AndCondition,
    AttributeCondition,
    ClassCondition,
    ClassSetCondition,
    Condition,
    ConditionError,
    train_thick_stroke_net,
)
from .config import PPGNConfig, tiny_config
from .sampler import PRESETS, PUBLISHED, PPGNSampler, SamplerConfig, SampleResult, preset
from .train import PPGNModels, load_run, train_ppgn

__all__ = [
    "PRESETS",
    "PUBLISHED",
    "AndCondition",
    "AttributeCondition",
    "ClassCondition",
    "ClassSetCondition",
    "Condition",
    "ConditionError",
    "PPGNConfig",
    "PPGNModels",
    "PPGNSampler",
    "SampleResult",
    "SamplerConfig",
    "class_condition",
    "load_run",
    "make_sampler",
    "preset",
    "tiny_config",
    "train_ppgn",
    "train_thick_stroke_net",
]
