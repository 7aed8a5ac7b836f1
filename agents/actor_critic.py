"""Actor-critic with per-token rewards and a learned baseline: MaskGAN's generator rule (Fedus et al., 2018).

Per-token rewards ``r_t`` become discounted returns ``R_t = sum_{s>=t} gamma^(s-t) r_s``; a value
head ``b_t = V(y_<t)`` (:class:`agents.critic.LSTMCritic`) is the baseline, trained by MSE to the
returns; the actor minimises ``-sum_t log G(y_t | y_<t) * clip(R_t - b_t, +-5)``. Both networks
are clipped to a global gradient norm of 10.

Our discriminator scores whole sequences, so the only real reward is ``log D(y)`` at the end
(``final_log``: ``R_t = gamma^(T-1-t) log D(y)``). ``mc_log`` estimates the same return with less
variance: ``Q_t``, the mean ``log D`` of Monte-Carlo completions of ``y_1..y_t``, estimates the
final ``log D`` seen from step ``t``, so ``R_t = gamma^(T-1-t) Q_t``, and the per-token reward is
the discounted change of that estimate (``r_t = R_t - gamma R_{t+1}``: what token ``t`` did to the
expected outcome). Summing the ``Q_t`` themselves as rewards would count the outcome up to ``T``
times and make every return a large negative number (``log D < 0``) that the critic cannot
follow; the critic is also fitted to the first batch (``critic_warmup`` steps) before the actor
uses it, so the first updates do not push down every sampled token.

:func:`actor_critic_losses` is the rule on its own (pure tensors, any mask), reused by the MaskGAN
agent; :func:`train` wraps it in the shared adversarial schedule. Run with
``textgan train --agent actor_critic`` or ``train(ActorCriticConfig(...))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from agents import estimators as est
from agents.critic import LSTMCritic
from agents.episodes import Episodes, collect_episodes, policy_log_probs_and_entropy
from agents.loop import adversarial_loop, clip_and_step, start_run
from agents.runtime import check_finite
from agents.setup import CommonConfig, Setup, agent_env
from textgan_envs.discriminators import eval_logits
from textgan_envs.rewards import log_reward, prob_reward
from textgan_envs.rollout import monte_carlo_q

AGENT = "actor_critic"
REWARD_MODE = "log"  # the env's terminal reward: log D(y), MaskGAN's reward


@dataclass
class ActorCriticConfig(CommonConfig):
    """Actor-critic agent; the shared fields are documented on :class:`CommonConfig`."""

    g_lr: float = field(default=1e-3, metadata={"min": 0.0})
    """Adam learning rate of the actor. 1e-3, not SeqGAN's REINFORCE rate 1e-2: with centred
    advantages the update is unbiased but noisy, and at 1e-2 it drifted off the MLE start
    (quick preset, 3 seeds: +0.21 NLL-oracle at 1e-2, -0.03 at 1e-3; RESULTS.md)."""
    gamma: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    """Discount of future per-token rewards (MaskGAN: 0.9)."""
    reward: Literal["mc_log", "mc_prob", "final_log"] = "mc_log"
    """``mc_log``: returns ``gamma^(T-1-t) Q_t`` with ``Q_t`` the mean ``log D`` of ``n_rollouts``
    completions of ``y_1..y_t`` (``Q_T = log D(y)``); ``mc_prob``: the same with ``D`` in place of
    ``log D`` (SeqGAN's action value; with ``gamma = 1`` the actor's expected gradient is SeqGAN
    REINFORCE's, the critic only lowers its variance); ``final_log``: only ``r_T = log D(y)``."""
    n_rollouts: int = field(default=16, metadata={"min": 1})
    """Monte-Carlo completions per prefix for the ``mc_log`` and ``mc_prob`` rewards (rolled out by the generator)."""
    advantage_clip: float = field(default=5.0, metadata={"min": 0.0})
    """Advantages are clipped to ``+-advantage_clip`` (MaskGAN: 5; 0 disables)."""
    critic_lr: float = field(default=1e-2, metadata={"min": 0.0})
    """Adam learning rate of the critic: as fast as the actor's, so the baseline follows the
    returns as the discriminator sharpens (at 1e-3 it lagged ~40 updates behind)."""
    critic_warmup: int = field(default=20, metadata={"min": 0})
    """Critic-only Adam steps on the first batch before the actor's first update (0: none)."""
    critic_emb_dim: int = field(default=32, metadata={"min": 1})
    """Critic embedding size."""
    critic_hidden_dim: int = field(default=32, metadata={"min": 1})
    """Critic LSTM hidden size."""
    grad_clip: float = field(default=10.0, metadata={"min": 0.0})
    """Global gradient-norm clip of actor and critic (MaskGAN: 10)."""


class ActorCriticLosses(NamedTuple):
    """What :func:`actor_critic_losses` returns: both losses and the intermediate tensors."""

    actor_loss: Tensor
    critic_loss: Tensor
    returns: Tensor
    advantages: Tensor


def actor_critic_losses(
    log_probs: Tensor,
    values: Tensor,
    rewards: Tensor,
    gamma: float,
    advantage_clip: float | None = 5.0,
    mask: Tensor | None = None,
) -> ActorCriticLosses:
    """MaskGAN's rule on ``[B, T]`` tensors: actor loss with clipped advantages, critic MSE.

    ``R = discounted_returns(rewards, gamma, mask)``; ``A = clip(R - stopgrad(values))``;
    ``actor = -mean_b sum_t m_t log_probs_t A_t``; ``critic = sum m_t (values_t - R_t)^2 / sum m_t``.
    Gradients flow to ``log_probs`` through the actor loss and to ``values`` through the critic
    loss only. Positions with ``mask == 0`` (e.g. MaskGAN's unmasked tokens) contribute nothing.
    """
    if not log_probs.shape == values.shape == rewards.shape:
        raise ValueError(
            f"log_probs {tuple(log_probs.shape)}, values {tuple(values.shape)} and rewards "
            f"{tuple(rewards.shape)} must share one [B, T] shape"
        )
    returns = est.discounted_returns(rewards.detach(), gamma, mask)
    clip = advantage_clip if advantage_clip else None
    advantages = est.clipped_advantages(returns, values.detach(), clip)
    if mask is not None:
        advantages = advantages * mask.to(advantages.dtype)
    actor = est.reinforce_loss(log_probs, advantages, mask)
    if mask is None:
        critic = F.mse_loss(values, returns)
    else:
        m = mask.to(values.dtype)
        critic = ((values - returns) ** 2 * m).sum() / m.sum().clamp(min=1.0)
    return ActorCriticLosses(actor, critic, returns, advantages)


def per_token_rewards(
    setup: Setup, episodes: Episodes, cfg: ActorCriticConfig, generator: torch.Generator
) -> Tensor:
    """``[B, T]`` rewards: Monte-Carlo mean ``log D`` (or ``D``) per prefix, or ``log D(y)`` at the end.

    ``episodes`` come from a ``reward_mode="log"`` env, so their terminal reward is ``log D(y)``
    (the last column; ``mc_prob`` takes its ``exp``).
    """
    disc = setup.discriminator
    rewards = torch.zeros(episodes.tokens.shape, device=episodes.tokens.device)
    if cfg.reward == "final_log":
        rewards[:, -1] = episodes.rewards
        return rewards
    score, final = (
        (prob_reward, episodes.rewards.exp())
        if cfg.reward == "mc_prob"
        else (log_reward, episodes.rewards)
    )
    q = monte_carlo_q(
        setup.policy,
        lambda y: score(eval_logits(disc, y)),
        episodes.tokens,
        cfg.n_rollouts,
        generator=generator,
        final_scores=final,
    )
    return rewards_of_returns(discounted_outcome(q, cfg.gamma), cfg.gamma)


def discounted_outcome(q: Tensor, gamma: float) -> Tensor:
    """``gamma^(T-1-t) * Q_t`` ``[B, T]``: the discounted terminal outcome estimated at step ``t``."""
    powers = torch.arange(q.shape[1] - 1, -1, -1, device=q.device, dtype=q.dtype)
    return q * torch.pow(torch.tensor(gamma, device=q.device, dtype=q.dtype), powers)


def rewards_of_returns(returns: Tensor, gamma: float) -> Tensor:
    """Per-token rewards ``r_t = R_t - gamma R_{t+1}`` (``R_T = 0``) whose discounted sums are ``returns``."""
    later = torch.zeros_like(returns)
    later[:, :-1] = returns[:, 1:]
    return returns - gamma * later


def warm_up_critic(
    critic: LSTMCritic,
    c_opt: torch.optim.Optimizer,
    tokens: Tensor,
    rewards: Tensor,
    cfg: ActorCriticConfig,
) -> None:
    """Fit the critic to the first batch's returns so its first baseline is not 0 (every ``log D``
    return is negative: an unfitted critic makes every advantage negative)."""
    returns = est.discounted_returns(rewards.detach(), cfg.gamma)
    for _ in range(cfg.critic_warmup):
        c_opt.zero_grad(set_to_none=True)
        F.mse_loss(critic(tokens), returns).backward()
        clip_and_step(c_opt, list(critic.parameters()), cfg.grad_clip)


def generator_step(
    setup: Setup,
    critic: LSTMCritic,
    g_opt: torch.optim.Optimizer,
    c_opt: torch.optim.Optimizer,
    cfg: ActorCriticConfig,
    sample_gen: torch.Generator,
    step: int,
) -> dict[str, float]:
    """Sample a batch, score it per token, update actor and critic once each."""
    policy = setup.policy
    venv = agent_env(setup, cfg.batch_size, REWARD_MODE)
    episodes = collect_episodes(venv, policy, sample_gen)
    tokens = episodes.tokens
    rewards = per_token_rewards(setup, episodes, cfg, sample_gen)
    check_finite("per-token rewards", rewards, step)
    log_probs, entropy = policy_log_probs_and_entropy(policy, tokens)
    if step == 1 and cfg.critic_warmup:
        warm_up_critic(critic, c_opt, tokens, rewards, cfg)
    values = critic(tokens)
    losses = actor_critic_losses(log_probs, values, rewards, cfg.gamma, cfg.advantage_clip)
    check_finite("actor loss", losses.actor_loss.detach(), step)
    check_finite("critic loss", losses.critic_loss.detach(), step)
    g_opt.zero_grad(set_to_none=True)
    c_opt.zero_grad(set_to_none=True)
    (losses.actor_loss + losses.critic_loss).backward()  # disjoint parameters, one backward
    g_norm = clip_and_step(g_opt, list(policy.parameters()), cfg.grad_clip)
    c_norm = clip_and_step(c_opt, list(critic.parameters()), cfg.grad_clip)
    with torch.no_grad():
        explained = 1.0 - (losses.returns - values).var() / losses.returns.var().clamp(min=1e-8)
    return {
        "reward": float(episodes.rewards.mean()),  # the env reward consumed: mean log D(y)
        "d_fake": episodes.d_fake(),
        "return_mean": float(losses.returns.mean()),
        "advantage_mean": float(losses.advantages.mean()),
        "advantage_clipped_frac": float(
            (losses.advantages.abs() >= cfg.advantage_clip).float().mean()
        )
        if cfg.advantage_clip
        else 0.0,
        "actor_loss": float(losses.actor_loss.detach()),
        "critic_loss": float(losses.critic_loss.detach()),
        "explained_variance": float(explained),
        "entropy": float(entropy.mean()),
        "g_grad_norm": g_norm,
        "critic_grad_norm": c_norm,
    }


def train(cfg: ActorCriticConfig, resume: bool = False) -> dict[str, float]:
    """Run the actor-critic agent in ``cfg.out_dir`` (resuming when ``resume``); return final metrics."""
    run = start_run(cfg, agent=AGENT, resume=resume, reward_mode=REWARD_MODE)
    policy = run.setup.policy
    critic = LSTMCritic(
        policy.vocab_size,
        cfg.critic_emb_dim,
        cfg.critic_hidden_dim,
        start_token=policy.start_token,
        device=run.setup.device,
    )
    g_opt = torch.optim.Adam(policy.parameters(), lr=cfg.g_lr)
    c_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)

    def update(step: int) -> dict[str, float]:
        return generator_step(run.setup, critic, g_opt, c_opt, cfg, run.generators["sample"], step)

    return adversarial_loop(
        run,
        update,
        modules={"critic": critic},
        optimizers={"generator": g_opt, "critic": c_opt},
    )
