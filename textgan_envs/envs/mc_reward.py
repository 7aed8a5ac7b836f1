"""Dense rewards from SeqGAN's Monte-Carlo search, as a scalar and a vector wrapper.

After every token the current prefix is completed ``N`` times by a rollout
policy (any :class:`RecurrentSequenceModel` over the env's vocabulary) and the
completions are scored by the env's discriminator and reward transform:
``Q_t`` = their mean; at the end ``Q_T`` is the env's own terminal reward.

The per-step reward is the telescoping difference ``r_t = Q_t - Q_{t-1}`` with
``Q_0 = 0``, a potential-based shaping of the terminal reward: the return of
every episode is exactly the terminal reward ``D(Y)``, so any return-based
agent still optimises SeqGAN's objective, while ``r_t`` itself credits token
``t`` with its Monte-Carlo value change. (A reward whose return-to-go from
``t`` equals ``Q_t`` itself would need ``Q_{t+1}`` before token ``t+1`` is
chosen, so no causal env can emit it.) For SeqGAN's exact policy-gradient
weights, ``info["q_value"]`` carries ``Q_t`` at every step and
``info["q_values"]`` the episode's whole ``Q_1..Q_T`` at its end.

The rollout policy's recurrent state is advanced by one ``step`` per env step
and cached, so each step's ``B x N`` completions start from it and are advanced
together by one loop over the remaining positions, drawing their tokens through
:func:`~textgan_envs.sampling.next_token.next_token_sampler` (the projecting CPU
sampler where the policy exposes its projection), as the package's other sampling loops do.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from gymnasium.vector import VectorWrapper
from torch import Tensor

from textgan_envs.envs.core import TextGenerationCore, validate_actions
from textgan_envs.sampling.next_token import next_token_sampler
from textgan_envs.sequence_model import RecurrentSequenceModel


class MonteCarloShaper:
    """Batched bookkeeping shared by both wrappers: policy state, completions, ``Q`` history."""

    def __init__(
        self,
        core: TextGenerationCore,
        rollout_policy: RecurrentSequenceModel,
        n_rollouts: int = 16,
        seed: int = 0,
    ) -> None:
        if int(n_rollouts) != n_rollouts or n_rollouts < 1:
            raise ValueError(f"n_rollouts must be a positive integer, got {n_rollouts!r}")
        for attr in ("vocab_size", "start_token", "initial_state", "step"):
            if not hasattr(rollout_policy, attr):
                raise TypeError(f"rollout policy {type(rollout_policy).__name__} lacks {attr!r}")
        if int(rollout_policy.vocab_size) != core.vocab_size:
            raise ValueError(
                f"vocabulary mismatch: the rollout policy has vocab_size {rollout_policy.vocab_size} "
                f"but the env has {core.vocab_size}"
            )
        self.core, self.policy, self.n = core, rollout_policy, int(n_rollouts)
        self.policy_device = torch.device(rollout_policy.device)
        self.generator = torch.Generator(self.policy_device).manual_seed(int(seed))
        B, T = core.num_envs, core.seq_len
        self.q_prev = torch.zeros(B, device=core.device)
        self.q_hist = torch.zeros((B, T), device=core.device)
        self.reset()

    def reset(self, seed: int | None = None, rows: Tensor | None = None) -> None:
        """Fresh policy state for every row (or ``rows``); reseed the rollouts when ``seed`` is given."""
        if seed is not None:
            self.generator.manual_seed(int(seed))
        B = self.core.num_envs
        start = torch.full(
            (B,), int(self.policy.start_token), dtype=torch.long, device=self.policy_device
        )
        if rows is None:
            self.state = tuple(s.clone() for s in self.policy.initial_state(B))
            self.prev = start
            self.q_prev.zero_()
            self.q_hist.zero_()
            return
        prow = rows.to(self.policy_device)
        fresh = self.policy.initial_state(len(rows))
        for s, f in zip(self.state, fresh, strict=True):
            s[prow] = f
        self.prev[prow] = start[prow]
        self.q_prev[rows] = 0.0
        self.q_hist[rows] = 0.0

    @torch.no_grad()
    def _q_of_prefixes(self, positions: Tensor, start: int) -> Tensor:
        """Mean score ``[B]`` of ``N`` completions of every row's current prefix."""
        core, n, T = self.core, self.n, self.core.seq_len
        dev = self.policy_device
        comp = core.padded().to(dev).repeat(n, 1)  # row n*B + b
        pos = positions.to(dev).repeat(n)
        state = tuple(s.repeat(n, *([1] * (s.dim() - 1))) for s in self.state)
        prev = self.prev.repeat(n)
        uniform = not core.stop_at_eos
        step = next_token_sampler(self.policy, self.generator)  # per call: the policy may change
        for p in range(start, T):
            tok, new_state = step(prev, state)
            if uniform:
                comp[:, p], state, prev = tok, new_state, tok
                continue
            active = pos <= p
            comp[:, p] = torch.where(active, tok, comp[:, p])
            prev = torch.where(active, tok, prev)
            state = tuple(
                torch.where(active.view(-1, *([1] * (ns.dim() - 1))), ns, s)
                for ns, s in zip(new_state, state, strict=True)
            )
        if core.stop_at_eos:  # everything after the first EOS becomes PAD, as in the env
            is_eos = comp == core.eos_token
            after = (is_eos.long().cumsum(1) - is_eos.long()) > 0
            comp = comp.masked_fill(after, core.pad_token)
        return core.score(comp.to(core.device)).view(n, -1).mean(0)

    @torch.no_grad()
    def after_step(
        self, actions: Tensor, env_rewards: Tensor, terminated: Tensor, positions: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Shaped rewards ``[B]``, ``Q_t`` ``[B]`` and the ``Q`` history ``[B, T]`` (before any reset).

        ``positions`` are the rows' positions after writing ``actions`` and before an autoreset.
        """
        core = self.core
        _, self.state = self.policy.step(self.prev, self.state)
        self.prev = actions.to(self.policy_device, copy=True)
        if core.stop_at_eos:
            q = self._q_of_prefixes(positions, int(positions.min()))
            q = torch.where(terminated, env_rewards, q)
        elif bool(terminated[0]):  # fixed length: every row ends together
            q = env_rewards.clone()
        else:
            q = self._q_of_prefixes(positions, int(positions[0]))
        shaped = q - self.q_prev
        self.q_prev = q.clone()
        col = (positions - 1).clamp(min=0)
        self.q_hist[torch.arange(core.num_envs, device=core.device), col] = q
        history = self.q_hist.clone()
        if bool(terminated.any()):  # beyond its end a finished sequence's value is its score
            after_end = torch.arange(core.seq_len, device=core.device) >= positions.unsqueeze(1)
            history = torch.where(after_end, q.unsqueeze(1), history)
        return shaped, q, history


class MonteCarloRewardWrapper(gym.Wrapper):
    """Scalar :class:`TextGenerationEnv` with SeqGAN Monte-Carlo rewards (see the module docstring).

    Adds ``info["q_value"]`` every step and ``info["q_values"]`` (``[T]``) at the end.
    ``reset(seed=s)`` reseeds the rollouts, so episodes are reproducible.
    """

    def __init__(
        self,
        env: gym.Env,
        rollout_policy: RecurrentSequenceModel,
        n_rollouts: int = 16,
        seed: int = 0,
    ):
        super().__init__(env)
        core = getattr(env.unwrapped, "core", None)
        if not isinstance(core, TextGenerationCore):
            raise TypeError("MonteCarloRewardWrapper needs a textgan TextGenerationEnv")
        self.shaper = MonteCarloShaper(core, rollout_policy, n_rollouts, seed)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.shaper.reset(seed=seed)
        return obs, info

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        core = self.shaper.core
        shaped, q, history = self.shaper.after_step(
            torch.tensor([int(action)], device=core.device),
            torch.tensor([reward], dtype=torch.float32, device=core.device),
            torch.tensor([terminated], device=core.device),
            core.positions.clone(),
        )
        info = dict(info)
        info["q_value"] = float(q[0])
        if terminated:
            info["q_values"] = history[0].cpu().numpy()
        return obs, float(shaped[0]), terminated, truncated, info


class MonteCarloRewardVectorWrapper(VectorWrapper):
    """Native :class:`TextGenerationVectorEnv` with SeqGAN Monte-Carlo rewards for all envs at once.

    Adds ``info["q_value"]`` ``[B]`` every step and ``info["q_values"]`` ``[B, T]``
    (masked by ``info["_q_values"]``) for the envs that finished.
    """

    def __init__(
        self, env, rollout_policy: RecurrentSequenceModel, n_rollouts: int = 16, seed: int = 0
    ):
        super().__init__(env)
        core = getattr(env.unwrapped, "core", None)
        if not isinstance(core, TextGenerationCore):
            raise TypeError("MonteCarloRewardVectorWrapper needs a textgan TextGenerationVectorEnv")
        self.shaper = MonteCarloShaper(core, rollout_policy, n_rollouts, seed)
        self.as_torch = bool(getattr(env.unwrapped, "as_torch", False))

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.shaper.reset(seed=seed if isinstance(seed, int) else None)
        return obs, info

    def step(self, actions: Any):
        core = self.shaper.core
        acts = validate_actions(actions, core.num_envs, core.vocab_size, core.device)
        # positions after this step, before the env's autoreset
        positions = core.positions.clone() + 1
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        rew_t = torch.as_tensor(rewards, device=core.device, dtype=torch.float32)
        term_t = torch.as_tensor(terminated, device=core.device)
        shaped, q, history = self.shaper.after_step(acts, rew_t, term_t, positions)
        if bool(term_t.any()):
            self.shaper.reset(rows=term_t.nonzero().squeeze(1))
        info = dict(info)
        out = (lambda x: x) if self.as_torch else (lambda x: x.cpu().numpy())
        info["q_value"] = out(q)
        info["_q_value"] = out(torch.ones_like(term_t))
        if bool(term_t.any()):
            info["q_values"] = out(history)
            info["_q_values"] = out(term_t.clone())
        shaped_out = shaped if self.as_torch else shaped.double().cpu().numpy()
        return obs, shaped_out, terminated, truncated, info


__all__ = ["MonteCarloRewardVectorWrapper", "MonteCarloRewardWrapper", "MonteCarloShaper"]
