"""Native vector envs: ``B`` sequences stepped as torch tensors, one discriminator call per step.

Same step logic as the scalar env (both run :class:`TextGenerationCore`), but
without a Python loop over envs. Autoreset is ``SAME_STEP``: the observation
returned with ``terminated=True`` is already the next episode's first one; the
last observation of the finished episode is in ``info["final_obs"]`` (masked by
``info["_final_obs"]``), as stable-baselines3's VecEnvs expect.

With ``as_torch=True`` observations, rewards, flags and info arrays are torch
tensors on the env's device (for our own agents: no host round trip); otherwise
numpy arrays, as Gymnasium's vector API specifies. ``action_check="episode"``
(torch mode, fixed-length episodes) range-checks torch actions once per episode,
just before the discriminator scores it, instead of once per step: the only host
sync left in an episode is that one check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.error import ResetNeeded
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

from textgan_envs.discriminators import Discriminator
from textgan_envs.envs.core import (
    DecodeFn,
    EpisodeBoundSpec,
    TextGenerationCore,
    action_mask,
    check_action_tensor,
    check_max_episode_steps,
    check_render_mode,
    observation_space,
    validate_actions,
)
from textgan_envs.envs.sources import RealDataSource, corpus_setup, oracle_setup
from textgan_envs.envs.text_env import _default_decode


class TextGenerationVectorEnv(EpisodeBoundSpec, VectorEnv):
    """## Description

    `num_envs` copies of :class:`~textgan_envs.envs.text_env.TextGenerationEnv`
    stepped in lockstep as one batch of torch tensors. Same spaces (batched), same
    rewards, same episode ends, same info keys (as arrays masked by `_key`).

    ## Autoreset

    `metadata["autoreset_mode"] = AutoresetMode.SAME_STEP`: finished rows are
    reset inside `step`; their final observation is `info["final_obs"]`.

    ## Arguments

    Those of `TextGenerationEnv`, plus `num_envs` (>= 1), `as_torch` (return
    torch tensors on `device` instead of numpy arrays) and `action_check`:
    `"step"` (default) range-checks every step's actions; `"episode"` (needs
    `as_torch=True` and fixed-length episodes) checks torch actions' dtype and
    shape every step but their range once per episode, on the scoring step
    before the discriminator sees the tokens, so a GPU caller's token loop has
    no host sync. An out-of-range id then raises `InvalidAction` at the end of
    its episode instead of at its own step.
    `max_episode_steps`: accepted for `gym.make_vec` (which passes a spec's bound) when it
    is `None` or at least `seq_len`; episodes end by themselves after `seq_len` steps.
    `finite_check`: refuse NaN or inf logits (`DiscriminatorOutputError`, the default); a
    trainer that checks its rewards itself turns it off (type, shape and dtype are still
    checked).

    ## Version History

    * v0: initial version.
    """

    metadata = {
        "render_modes": ["ansi"],
        "render_fps": 4,
        "autoreset_mode": AutoresetMode.SAME_STEP,
    }

    def __init__(
        self,
        num_envs: int,
        vocab_size: int,
        seq_len: int,
        discriminator: Discriminator | str | None = None,
        reward_mode: str = "prob",
        real_data: RealDataSource | None = None,
        decode: DecodeFn | None = None,
        stop_at_eos: bool = False,
        eos_token: int | None = None,
        pad_token: int | None = None,
        forbidden_tokens: Sequence[int] = (),
        discriminator_seed: int | None = 0,
        as_torch: bool = False,
        render_mode: str | None = None,
        device: str | torch.device = "cpu",
        action_check: Literal["step", "episode"] = "step",
        max_episode_steps: int | None = None,
        finite_check: bool = True,
    ) -> None:
        render_mode = check_render_mode(
            render_mode, self.metadata["render_modes"], type(self).__name__
        )
        self.core = TextGenerationCore(
            num_envs,
            vocab_size,
            seq_len,
            discriminator=discriminator,
            reward_mode=reward_mode,
            stop_at_eos=stop_at_eos,
            eos_token=eos_token,
            pad_token=pad_token,
            forbidden_tokens=forbidden_tokens,
            discriminator_seed=discriminator_seed,
            device=device,
            finite_check=finite_check,
        )
        self.num_envs = self.core.num_envs
        self.vocab_size, self.seq_len = self.core.vocab_size, self.core.seq_len
        check_max_episode_steps(max_episode_steps, self.seq_len, type(self).__name__)
        self.device = self.core.device
        self.real_data = real_data
        self.decode = decode or _default_decode
        self.as_torch = bool(as_torch)
        self.render_mode = render_mode
        self.single_action_space = spaces.Discrete(self.vocab_size)
        self.single_observation_space = observation_space(self.vocab_size, self.seq_len)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self._mask = action_mask(self.vocab_size, self.core.forbidden_tokens)
        self._needs_reset = True
        if action_check not in ("step", "episode"):
            raise ValueError(f"action_check must be 'step' or 'episode', got {action_check!r}")
        if action_check == "episode" and (not self.as_torch or self.core.stop_at_eos):
            raise ValueError(
                "action_check='episode' needs as_torch=True and fixed-length episodes "
                "(stop_at_eos=False): the env must know the scoring step without reading data"
            )
        self.action_check = action_check
        self._bad_rows: Tensor | None = None  # rows that got an out-of-range id this episode

    @property
    def discriminator(self) -> Discriminator:
        """The discriminator whose output is the reward (shared, updated in place by trainers)."""
        return self.core.discriminator

    def _out(self, x: Tensor) -> Tensor | np.ndarray:
        return x if self.as_torch else x.cpu().numpy()

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if isinstance(seed, list):
            seed = seed[0] if seed else None
        super().reset(seed=seed)
        if seed is not None:
            self.action_space.seed(seed)
        self.core.reset()
        self._needs_reset = False
        self._bad_rows = None
        return self._out(self.core.obs.clone()), {}

    def step(self, actions: Any):
        if self._needs_reset:
            raise ResetNeeded("call reset() before step()")
        if self.action_check == "episode" and isinstance(actions, Tensor):
            actions = self._check_deferred(actions)
        else:
            actions = validate_actions(actions, self.num_envs, self.vocab_size, self.device)
        out = self.core.step(actions)
        infos: dict[str, Any] = {}
        if out.finished is not None:
            infos = self._final_info(out)
            self.core.reset(out.finished if self.core.stop_at_eos else None)
        if self.as_torch:
            truncated = torch.zeros_like(out.terminated)
            return self.core.obs.clone(), out.rewards, out.terminated, truncated, infos
        return (
            self.core.obs.cpu().numpy().copy(),
            out.rewards.cpu().numpy().astype(np.float64),
            out.terminated.cpu().numpy(),
            np.zeros(self.num_envs, dtype=bool),
            infos,
        )

    def _check_deferred(self, actions: Tensor) -> Tensor:
        """Dtype/shape now; range accumulated on device and checked on the scoring step only."""
        from gymnasium.error import InvalidAction

        actions = check_action_tensor(actions, self.num_envs, self.device)
        bad = (actions < 0) | (actions >= self.vocab_size)
        self._bad_rows = bad if self._bad_rows is None else self._bad_rows | bad
        if self.core._t + 1 < self.seq_len:  # not the scoring step: no sync
            return actions
        bad_rows, self._bad_rows = self._bad_rows, None
        if bool(bad_rows.any()):  # the episode's one host sync, before D sees the tokens
            rows = bad_rows.nonzero().squeeze(1).tolist()
            self._needs_reset = True  # the episode holds invalid ids: it cannot be scored
            raise InvalidAction(
                f"actions sent to env rows {rows} during this episode contain ids outside "
                f"[0, {self.vocab_size}) (action_check='episode' checks once, at the last step)"
            )
        return actions

    def _final_info(self, out) -> dict[str, Any]:
        """Per-env info arrays for the finished rows, each with its ``_key`` mask."""
        B, T, idx = self.num_envs, self.seq_len, out.finished
        mask = out.terminated
        sequence = torch.zeros((B, T), dtype=torch.long, device=self.device)
        sequence[idx] = out.sequences
        logit = torch.zeros(B, device=self.device)
        logit[idx] = out.logits.float()
        final_obs = torch.zeros((B, T + 1), dtype=torch.long, device=self.device)
        final_obs[idx] = self.core.obs[idx]
        values = {
            "sequence": sequence,
            "probability": torch.sigmoid(logit) * mask,
            "logit": logit,
            "final_obs": final_obs,
        }
        infos: dict[str, Any] = {}
        for key, value in values.items():
            infos[key] = self._out(value)
            infos[f"_{key}"] = self._out(mask.clone())
        return infos

    def action_masks(self) -> np.ndarray:
        """``[B, V]`` bool: allowed tokens per env (sb3-contrib MaskablePPO)."""
        return np.broadcast_to(self._mask, (self.num_envs, self.vocab_size)).copy()

    def texts(self) -> list[str]:
        """The tokens written so far in each env, decoded."""
        positions = self.core.positions.tolist()
        rows = self.core.obs[:, : self.seq_len].tolist()
        return [self.decode(row[:pos]) for row, pos in zip(rows, positions, strict=True)]

    def render(self) -> tuple[str, ...] | None:
        if self.render_mode == "ansi":
            return tuple(t + "\n" for t in self.texts())
        return None


class OracleVectorEnv(TextGenerationVectorEnv):
    """The native vector version of :class:`~textgan_envs.envs.text_env.OracleEnv` (same arguments plus
    `num_envs` and `as_torch`); registered as the `vector_entry_point` of `textgan/Oracle-v0`.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        num_envs: int = 1,
        vocab_size: int = 5000,
        seq_len: int = 20,
        oracle_seed: int = 0,
        oracle_path: str | None = None,
        discriminator: Discriminator | str | None = None,
        reward_mode: str = "prob",
        discriminator_seed: int | None = 0,
        as_torch: bool = False,
        render_mode: str | None = None,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
    ) -> None:
        setup = oracle_setup(vocab_size, seq_len, oracle_seed, oracle_path, device=device)
        super().__init__(
            num_envs,
            discriminator=discriminator,
            reward_mode=reward_mode,
            discriminator_seed=discriminator_seed,
            as_torch=as_torch,
            render_mode=render_mode,
            device=device,
            max_episode_steps=max_episode_steps,
            **setup,
        )


class CorpusVectorEnv(TextGenerationVectorEnv):
    """The native vector version of :class:`~textgan_envs.envs.text_env.CorpusEnv` (same arguments plus
    `num_envs` and `as_torch`); registered as the `vector_entry_point` of `textgan/Corpus-v0`.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        corpus_path: str,
        num_envs: int = 1,
        level: str = "word",
        seq_len: int = 20,
        vocab_path: str | None = None,
        max_vocab: int | None = None,
        min_count: int = 1,
        stop_at_eos: bool = True,
        discriminator: Discriminator | str | None = None,
        reward_mode: str = "prob",
        discriminator_seed: int | None = 0,
        as_torch: bool = False,
        render_mode: str | None = None,
        device: str | torch.device = "cpu",
        max_episode_steps: int | None = None,
    ) -> None:
        setup = corpus_setup(
            corpus_path,
            level,
            seq_len,
            vocab_path,
            max_vocab,
            min_count,
            stop_at_eos,
            device=device,
        )
        super().__init__(
            num_envs,
            discriminator=discriminator,
            reward_mode=reward_mode,
            discriminator_seed=discriminator_seed,
            as_torch=as_torch,
            render_mode=render_mode,
            device=device,
            max_episode_steps=max_episode_steps,
            **setup,
        )
