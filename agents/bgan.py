"""Boundary-seeking GAN for discrete sequences (Hjelm et al., ICLR 2018, Sec. 2.3-2.4).

For each of ``n_groups`` conditionings the generator draws ``n_samples`` (``M``) sequences.
The discriminator's logit ``V(x)`` gives unnormalised importance weights ``w(x)`` that estimate
``p(x) / g(x)`` (``agents.estimators.bgan_log_weights``, one formula per f-divergence), and

* ``estimator="normalized"`` (BGAN Eq. 10, the default) minimises
  ``-mean_groups sum_m stopgrad(w~_m) log g(x_m | c)`` with ``w~ = w / sum w`` within a group
  (a log-sum-exp, so large logits never overflow);
* ``estimator="reinforce"`` (BGAN Sec. 2.4) uses the reward ``log w(x) - log Z`` with a running
  estimate of the log-partition ``log Z = log E_g[w]``: ``-mean stopgrad(log w - log Z) log g(x)``.

A conditioning is a shared prefix of ``condition_len`` tokens sampled from the generator
(``0``: the empty prefix, so a group is ``M`` independent full sequences and the loss is the
unconditional one). The ``n_groups * n_samples`` sequences are episodes of the native vector
env (one row each, groups in consecutive rows, :func:`agents.episodes.collect_episodes`); its
reward mode ``bgan_reward_mode(divergence)`` makes its terminal reward the log importance weight
of the chosen divergence, which the update reads from the episodes instead of recomputing. The effective sample size
``1 / sum w~^2`` and the weight variance are logged every step. Run with ``textgan train --agent bgan`` or ``train(BGANConfig(...))``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

from agents import estimators as est
from agents.episodes import Episodes, collect_episodes, policy_log_probs_and_entropy
from agents.loop import adversarial_loop, clip_and_step, start_run
from agents.runtime import check_finite
from agents.setup import CommonConfig, Setup, agent_env
from textgan_envs.rewards import bgan_reward_mode

AGENT = "bgan"


@dataclass
class BGANConfig(CommonConfig):
    """Boundary-seeking GAN agent; the shared fields are documented on :class:`CommonConfig`."""

    n_samples: int = field(default=20, metadata={"min": 1})
    """``M``: sequences drawn per conditioning (BGAN: 20)."""
    n_groups: int = field(default=8, metadata={"min": 1})
    """Conditionings per generator update (the update sees ``n_groups * n_samples`` sequences)."""
    condition_len: int = 0
    """Length of the generator-sampled prefix shared within a group (0: unconditional groups)."""
    divergence: Literal["gan", "jsd", "kl", "rkl", "hellinger", "chi2"] = "gan"
    """f-divergence whose importance weight turns the logit into ``w(x)`` (BGAN Table 1)."""
    estimator: Literal["normalized", "reinforce"] = "normalized"
    """Self-normalised weights per conditioning, or REINFORCE with a running log-partition."""
    log_z_decay: float = field(default=0.95, metadata={"min": 0.0, "max": 0.999})
    """Decay of the running partition estimate (``reinforce`` estimator)."""

    def validate(self) -> None:
        super().validate()
        if self.condition_len >= self.seq_len:
            raise ValueError(
                f"config key 'condition_len': {self.condition_len} must be below seq_len {self.seq_len}"
            )


def draw_groups(setup: Setup, cfg: BGANConfig, generator: torch.Generator) -> Episodes:
    """``G * M`` env episodes: ``M`` completions of each of ``G`` sampled prefixes (rows grouped)."""
    venv = agent_env(setup, cfg.n_groups * cfg.n_samples, bgan_reward_mode(cfg.divergence))
    return collect_episodes(
        venv, setup.policy, generator, group_size=cfg.n_samples, shared_prefix=cfg.condition_len
    )


def generator_step(
    setup: Setup,
    optimizer: torch.optim.Optimizer,
    cfg: BGANConfig,
    log_z: float | None,
    sample_gen: torch.Generator,
    step: int,
) -> tuple[dict[str, float], float | None]:
    """One BGAN generator update; returns diagnostics and the updated running ``log Z``."""
    policy = setup.policy
    g, m = cfg.n_groups, cfg.n_samples
    episodes = draw_groups(setup, cfg, sample_gen)
    tokens = episodes.tokens
    log_w = episodes.rewards.view(g, m)  # the env's reward: log w(x) of cfg.divergence
    check_finite("importance log-weights", log_w, step)
    token_lp, entropy = policy_log_probs_and_entropy(policy, tokens)
    seq_lp = token_lp[:, cfg.condition_len :].sum(dim=1).view(g, m)  # log g(x | prefix)
    w_tilde = est.normalized_weights(log_w, dim=-1)
    if cfg.estimator == "normalized":
        loss = est.bgan_loss(seq_lp, log_w)
    else:
        current = (
            log_z if log_z is not None else float(est.log_partition_estimate(log_w.reshape(-1)))
        )
        loss = -((log_w - current).detach() * seq_lp).mean()
        log_z = est.update_running_log_partition(log_z, log_w, cfg.log_z_decay)
    check_finite("generator loss", loss.detach(), step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = clip_and_step(optimizer, list(policy.parameters()), cfg.grad_clip)
    metrics = {
        "reward": float(log_w.mean()),  # the env reward consumed: mean log w(x)
        "d_fake": episodes.d_fake(),
        "ess": float(est.effective_sample_size(w_tilde).mean()),
        "weight_variance": float(est.weight_variance(w_tilde).mean()),
        "g_loss": float(loss.detach()),
        "entropy": float(entropy[:, cfg.condition_len :].mean()),
        "g_grad_norm": grad_norm,
    }
    if log_z is not None:
        metrics["log_partition"] = log_z
    return metrics, log_z


def train(cfg: BGANConfig, resume: bool = False) -> dict[str, float]:
    """Run BGAN in ``cfg.out_dir`` (resuming from its checkpoint when ``resume``); return final metrics."""
    num_envs = cfg.n_groups * cfg.n_samples
    reward_mode = bgan_reward_mode(cfg.divergence)
    run = start_run(cfg, agent=AGENT, resume=resume, num_envs=num_envs, reward_mode=reward_mode)
    g_opt = torch.optim.Adam(run.setup.policy.parameters(), lr=cfg.g_lr)

    def update(step: int) -> dict[str, float]:
        scalars = run.state.scalars
        metrics, scalars["log_z"] = generator_step(
            run.setup, g_opt, cfg, scalars.get("log_z"), run.generators["sample"], step
        )
        return metrics

    return adversarial_loop(run, update, optimizers={"generator": g_opt}, scalars={"log_z": None})
