"""One registry of agents, read by ``textgan train``, ``textgan bench`` and the CLI help.

Adding an agent is one new file (a config dataclass and ``train(cfg, resume=False)``) plus one
:class:`AgentSpec` line below. Specs name their module and objects as strings, so reading the
registry (for ``--help`` or a check of ``--agents``) imports no agent and no torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["AGENTS", "AgentSpec", "agent_spec", "bench_agents", "train_agents"]

BenchKind = Literal["agent", "continued_mle", "sb3"]


@dataclass(frozen=True)
class AgentSpec:
    """Where an agent lives and how each command runs it."""

    name: str
    """The ``--agent`` / ``--agents`` name."""
    module: str
    """Import path of the module that holds the config class and the train function."""
    config: str
    """Name of the config dataclass in ``module``."""
    summary: str
    """One line for the CLI help."""
    train: str | None = "train"
    """Name of ``train(cfg, resume=False) -> metrics`` in ``module``; ``None``: bench only."""
    bench: BenchKind | None = "agent"
    """How ``textgan bench`` runs a cell: ``"agent"`` resumes ``train`` segment by segment from
    the seed's shared MLE start; ``"continued_mle"`` continues MLE for the same budget;
    ``"sb3"`` runs a stock stable-baselines3 algorithm; ``None``: not benchable."""

    def load_module(self) -> Any:
        """The agent's module; ``ValueError`` naming what is missing if it cannot be imported."""
        try:
            module = importlib.import_module(self.module)
        except ImportError as exc:
            raise ValueError(
                f"agent {self.name!r} is not available in this installation ({self.module}: {exc})"
            ) from exc
        missing = [n for n in (self.config, self.train) if n and not hasattr(module, n)]
        if missing:
            raise ValueError(f"agent {self.name!r}: {self.module} lacks {', '.join(missing)}")
        return module

    def config_class(self) -> type:
        return getattr(self.load_module(), self.config)

    def train_fn(self) -> Callable[..., dict[str, float]]:
        if self.train is None:
            raise ValueError(f"agent {self.name!r} runs only in `textgan bench`")
        return getattr(self.load_module(), self.train)


# fmt: off
AGENTS: dict[str, AgentSpec] = {spec.name: spec for spec in (
    AgentSpec("mle", "agents.mle_agent", "MLEAgentConfig",
              "MLE only: pre-train the generator and save it as a run", bench="continued_mle"),
    AgentSpec("reinforce", "agents.reinforce", "ReinforceConfig",
              "SeqGAN: REINFORCE with Monte-Carlo rollouts"),
    AgentSpec("bgan", "agents.bgan", "BGANConfig",
              "boundary-seeking GAN: importance weights"),
    AgentSpec("actor_critic", "agents.actor_critic", "ActorCriticConfig",
              "actor-critic with a learned per-token critic"),
    AgentSpec("maskgan", "agents.maskgan", "MaskGANConfig",
              "MaskGAN: fill in the blank, actor-critic", bench=None),
    AgentSpec("ppo", "agents.bench.ppo", "CommonConfig",
              "stock stable-baselines3 PPO on GeneratorPolicy", train=None, bench="sb3"),
    AgentSpec("a2c", "agents.bench.ppo", "CommonConfig",
              "stock stable-baselines3 A2C on GeneratorPolicy", train=None, bench="sb3"),
)}
# fmt: on


def agent_spec(name: str) -> AgentSpec:
    """The spec of agent ``name``; ``ValueError`` listing the known agents otherwise."""
    try:
        return AGENTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(AGENTS)}") from None


def train_agents() -> tuple[str, ...]:
    """Agents ``textgan train`` runs."""
    return tuple(name for name, spec in AGENTS.items() if spec.train is not None)


def bench_agents() -> tuple[str, ...]:
    """Agents ``textgan bench`` runs."""
    return tuple(name for name, spec in AGENTS.items() if spec.bench is not None)
