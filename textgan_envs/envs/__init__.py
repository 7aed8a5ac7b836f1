"""Gymnasium envs (scalar and native vector) whose reward is a learned discriminator."""

from textgan_envs.envs.core import TextGenerationCore, observation_space
from textgan_envs.envs.sources import CorpusSource, OracleSource, RealDataSource
from textgan_envs.envs.text_env import CorpusEnv, OracleEnv, TextGenerationEnv
from textgan_envs.envs.vector_env import CorpusVectorEnv, OracleVectorEnv, TextGenerationVectorEnv

__all__ = [
    "CorpusEnv",
    "CorpusSource",
    "CorpusVectorEnv",
    "OracleEnv",
    "OracleSource",
    "OracleVectorEnv",
    "RealDataSource",
    "TextGenerationCore",
    "TextGenerationEnv",
    "TextGenerationVectorEnv",
    "observation_space",
]

from textgan_envs.envs.mc_reward import (  # noqa: E402
    MonteCarloRewardVectorWrapper,
    MonteCarloRewardWrapper,
    MonteCarloShaper,
)

__all__ += ["MonteCarloRewardVectorWrapper", "MonteCarloRewardWrapper", "MonteCarloShaper"]
