"""SeqGAN: REINFORCE on the generator with Monte-Carlo search action values (Yu et al., 2017).

Each generator step collects ``batch_size`` episodes from the native vector env (whose terminal
reward is ``reward(D(y))``, :func:`agents.episodes.collect_episodes`), estimates every prefix's
action value

    Q_t = mean_n D(complete_n(y_1..y_t)),  Q_T = D(y)

with ``n_rollouts`` completions drawn by a rollout policy (one batched call of
:func:`textgan_envs.rollout.monte_carlo_q`), and minimises

    L = -mean_b sum_t log G(y_t | y_<t) * A_t,   A_t = gamma^(T-1-t) * Q_t - b.

The rollout policy is a delayed copy of the generator, ``theta_roll <- r * theta_roll + (1 - r)
* theta_G`` after every generator step (the reference code's rule, ``r = 0.8``);
``rollout_update_rate = 0`` rolls out with the generator itself (the paper's description).
Then ``d_steps`` discriminator rounds follow on fresh negatives. Run it with
``textgan train --agent reinforce`` or ``train(ReinforceConfig(...))``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from agents import estimators as est
from agents.episodes import collect_episodes, policy_log_probs_and_entropy
from agents.loop import adversarial_loop, clip_and_step, start_run
from agents.runtime import check_finite
from agents.setup import CommonConfig, Setup, agent_env
from textgan_envs.discriminators import eval_logits
from textgan_envs.rewards import get_reward_fn
from textgan_envs.rollout import monte_carlo_q

AGENT = "reinforce"


@dataclass
class ReinforceConfig(CommonConfig):
    """SeqGAN's REINFORCE agent; the shared fields are documented on :class:`CommonConfig`."""

    n_rollouts: int = field(default=16, metadata={"min": 1})
    """Monte-Carlo completions per prefix (SeqGAN: 16)."""
    rollout_update_rate: float = field(default=0.8, metadata={"min": 0.0, "max": 1.0})
    """``r`` in ``theta_roll <- r theta_roll + (1 - r) theta_G``; 0 rolls out with the generator itself."""
    reward: Literal["prob", "log", "logit"] = "prob"
    """Score of a finished sequence: ``D(y)`` (SeqGAN), ``log D(y)`` or the logit."""
    baseline: Literal["none", "moving_average"] = "none"
    """Subtract nothing (SeqGAN) or a moving average of the mean return."""
    baseline_decay: float = field(default=0.9, metadata={"min": 0.0, "max": 0.999})
    """Decay of the moving-average baseline."""
    gamma: float = field(default=1.0, metadata={"min": 0.0, "max": 1.0})
    """Discount of the terminal outcome: the return at ``t`` is ``gamma^(T-1-t) Q_t`` (1: SeqGAN)."""


def update_rollout(rollout: nn.Module, policy: nn.Module, rate: float) -> None:
    """``theta_roll <- rate * theta_roll + (1 - rate) * theta_G`` for every parameter."""
    with torch.no_grad():
        for p_roll, p_gen in zip(rollout.parameters(), policy.parameters(), strict=True):
            p_roll.mul_(rate).add_(p_gen, alpha=1.0 - rate)


def discounted_q(q: Tensor, gamma: float) -> Tensor:
    """``gamma^(T-1-t) * Q_t``: the discounted value of the terminal outcome seen from step ``t``."""
    seq_len = q.shape[1]
    powers = torch.arange(seq_len - 1, -1, -1, device=q.device, dtype=q.dtype)
    return q * torch.pow(torch.tensor(gamma, device=q.device, dtype=q.dtype), powers)


def generator_step(
    setup: Setup,
    rollout: nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg: ReinforceConfig,
    baseline: float | None,
    sample_gen: torch.Generator,
    step: int,
) -> tuple[dict[str, float], float | None]:
    """One SeqGAN generator update; returns diagnostics and the new moving-average baseline."""
    policy, disc = setup.policy, setup.discriminator
    reward_fn = get_reward_fn(cfg.reward)
    venv = agent_env(setup, cfg.batch_size, cfg.reward)
    episodes = collect_episodes(venv, policy, sample_gen)
    tokens = episodes.tokens
    q = monte_carlo_q(  # its last column is the env's terminal reward of each episode
        rollout,
        lambda y: reward_fn(eval_logits(disc, y)),
        tokens,
        cfg.n_rollouts,
        generator=sample_gen,
        final_scores=episodes.rewards,
    )
    check_finite("reward (Monte-Carlo Q)", q, step)
    returns = discounted_q(q, cfg.gamma)
    b = 0.0 if (cfg.baseline == "none" or baseline is None) else baseline
    advantages = est.clipped_advantages(returns, b, clip=None)
    log_probs, entropy = policy_log_probs_and_entropy(policy, tokens)
    loss = est.reinforce_loss(log_probs, advantages)
    check_finite("generator loss", loss.detach(), step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = clip_and_step(optimizer, list(policy.parameters()), cfg.grad_clip)
    if rollout is not policy:
        update_rollout(rollout, policy, cfg.rollout_update_rate)
    if cfg.baseline == "moving_average":
        baseline = est.ema_update(baseline, float(returns.mean()), cfg.baseline_decay)
    metrics = {
        "reward": float(episodes.rewards.mean()),
        "d_fake": episodes.d_fake(),
        "q_mean": float(q.mean()),
        "advantage_std": float(advantages.std()),
        "g_loss": float(loss.detach()),
        "entropy": float(entropy.mean()),
        "g_grad_norm": grad_norm,
    }
    return metrics, baseline


def train(cfg: ReinforceConfig, resume: bool = False) -> dict[str, float]:
    """Run SeqGAN in ``cfg.out_dir`` (resuming from its checkpoint when ``resume``); return final metrics."""
    run = start_run(cfg, agent=AGENT, resume=resume, reward_mode=cfg.reward)
    policy = run.setup.policy
    rollout = policy if cfg.rollout_update_rate == 0.0 else copy.deepcopy(policy)
    g_opt = torch.optim.Adam(policy.parameters(), lr=cfg.g_lr)

    def update(step: int) -> dict[str, float]:
        scalars = run.state.scalars
        metrics, scalars["baseline"] = generator_step(
            run.setup, rollout, g_opt, cfg, scalars.get("baseline"), run.generators["sample"], step
        )
        if scalars["baseline"] is not None:
            metrics["baseline"] = float(scalars["baseline"])
        return metrics

    return adversarial_loop(
        run,
        update,
        modules={} if rollout is policy else {"rollout": rollout},
        optimizers={"generator": g_opt},
        scalars={"baseline": None},
    )
