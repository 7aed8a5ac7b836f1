"""The one implementation of the text-generation step, batched in torch.

:class:`TextGenerationCore` holds ``B`` partial sequences on one device and
advances them together; the scalar env runs it with ``B = 1`` and the vector
env with ``B = num_envs``, so both share every line of step logic.

Observation layout (one ``int64`` vector of length ``T + 1`` per env): the
tokens written so far, ``V`` (one past the last token id) in the slots not yet
written, then the position. A single integer ``Box`` is what stable-baselines3
handles best: its default extractors flatten it without one-hot encoding (a
``MultiDiscrete`` would become ``V * T`` inputs), it needs no ``Dict`` rollout
buffers, it works with every SB3 algorithm and with sb3-contrib's MaskablePPO,
and a token-embedding extractor can read the ids back exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor, nn

from textgan_envs.device import resolve_device
from textgan_envs.discriminators import Discriminator, build_discriminator
from textgan_envs.discriminators.training import discriminator_device
from textgan_envs.envs.arguments import check_int
from textgan_envs.envs.disc_output import check_sequence_logits
from textgan_envs.rewards import get_reward_fn

if TYPE_CHECKING:
    from gymnasium.envs.registration import EnvSpec


@dataclass
class CoreStep:
    """What one batched step produced (all tensors on the core's device)."""

    rewards: Tensor
    """``[B]`` float32 reward: 0 until a row finishes, then the transformed discriminator output."""
    terminated: Tensor
    """``[B]`` bool: the row's episode ended at this step."""
    finished: Tensor | None
    """Indices ``[k]`` of the rows that ended (``None`` if none did)."""
    sequences: Tensor | None
    """``[k, T]`` the finished sequences as the discriminator saw them (PAD after the end)."""
    logits: Tensor | None
    """``[k]`` the discriminator's logits on ``sequences``."""


def observation_space(vocab_size: int, seq_len: int) -> spaces.Box:
    """``Box`` of ``T`` token slots in ``[0, V]`` (``V`` = not yet written) plus the position in ``[0, T]``."""
    high = np.full(seq_len + 1, vocab_size, dtype=np.int64)
    high[-1] = seq_len
    return spaces.Box(low=np.zeros(seq_len + 1, dtype=np.int64), high=high, dtype=np.int64)


class TextGenerationCore:
    """``B`` sequences stepped in lockstep; the discriminator runs once per step on the rows that finished."""

    def __init__(
        self,
        num_envs: int,
        vocab_size: int,
        seq_len: int,
        discriminator: Discriminator | str | None = None,
        reward_mode: str = "prob",
        stop_at_eos: bool = False,
        eos_token: int | None = None,
        pad_token: int | None = None,
        forbidden_tokens: Sequence[int] = (),
        discriminator_seed: int | None = 0,
        device: str | torch.device = "cpu",
        finite_check: bool = True,
    ) -> None:
        self.num_envs = check_int("num_envs", num_envs, 1)
        self.vocab_size = check_int("vocab_size", vocab_size, 1)
        self.seq_len = check_int("seq_len", seq_len, 1)
        self.reward_mode = reward_mode
        self.reward_fn = get_reward_fn(reward_mode)
        self.device = resolve_device(device)
        if stop_at_eos and eos_token is None:
            raise ValueError("stop_at_eos=True needs an eos_token")
        for name, tok in (("eos_token", eos_token), ("pad_token", pad_token)):
            if tok is not None and not 0 <= int(tok) < self.vocab_size:
                raise ValueError(f"{name}={tok} is outside the vocabulary [0, {self.vocab_size})")
        bad = [t for t in forbidden_tokens if not 0 <= int(t) < self.vocab_size]
        if bad:
            raise ValueError(
                f"forbidden_tokens {bad} are outside the vocabulary [0, {self.vocab_size})"
            )
        if len(set(forbidden_tokens)) >= self.vocab_size:
            raise ValueError("forbidden_tokens leave no allowed action")
        self.stop_at_eos = bool(stop_at_eos)
        self.eos_token = None if eos_token is None else int(eos_token)
        self.pad_token = 0 if pad_token is None else int(pad_token)
        self.forbidden_tokens = tuple(sorted({int(t) for t in forbidden_tokens}))
        self.finite_check = bool(finite_check)
        self.discriminator = self._resolve_discriminator(discriminator, discriminator_seed)

        B, T = self.num_envs, self.seq_len
        self.obs = torch.empty((B, T + 1), dtype=torch.long, device=self.device)
        self._zeros = torch.zeros(B, device=self.device)
        self._false = torch.zeros(B, dtype=torch.bool, device=self.device)
        self._rows = torch.arange(B, device=self.device)
        self._t = 0  # the common position of every row when episodes have a fixed length
        self.reset()

    # ----------------------------------------------------------------- discriminator
    def _resolve_discriminator(
        self, disc: Discriminator | str | None, seed: int | None
    ) -> Discriminator:
        if disc is None or isinstance(disc, str):
            return build_discriminator(
                disc or "cnn", self.vocab_size, self.seq_len, seed=seed, device=self.device
            )
        if not callable(disc):
            raise TypeError(
                f"discriminator must be an nn.Module, a callable LongTensor[B, T] -> logits[B], "
                f"a kind name or None; got {type(disc).__name__}"
            )
        d_vocab = getattr(disc, "vocab_size", None)
        if d_vocab is not None and int(d_vocab) != self.vocab_size:
            raise ValueError(
                f"vocabulary mismatch: the discriminator has vocab_size {d_vocab} but the env's "
                f"data has {self.vocab_size} tokens"
            )
        if isinstance(disc, nn.Module):
            disc.eval()
        return disc

    def logits(self, sequences: Tensor) -> Tensor:
        """Discriminator logits ``[k]`` (eval mode, no grad) for complete sequences ``[k, T]``.

        What the discriminator returns is checked (:mod:`textgan_envs.envs.disc_output`): a
        float tensor ``[k]`` of finite values (unless ``finite_check`` is off), else
        ``DiscriminatorOutputError`` naming it.
        """
        disc = self.discriminator
        out = _call_in_eval_mode(disc, sequences.to(discriminator_device(disc, self.device)))
        logits = check_sequence_logits(out, disc, sequences.shape[0], self.finite_check)
        return logits.to(self.device)

    def score(self, sequences: Tensor) -> Tensor:
        """The reward of complete sequences ``[k, T]``: ``reward_fn(logits)``."""
        return self.reward_fn(self.logits(sequences))

    # ----------------------------------------------------------------- state
    def reset(self, rows: Tensor | None = None) -> None:
        """Empty every row (or just ``rows``): all slots ``V``, position 0."""
        if rows is None:
            self.obs[:, : self.seq_len] = self.vocab_size
            self.obs[:, self.seq_len] = 0
            self._t = 0
        else:
            self.obs[rows, : self.seq_len] = self.vocab_size
            self.obs[rows, self.seq_len] = 0

    @property
    def positions(self) -> Tensor:
        """``[B]`` number of tokens written in each row."""
        return self.obs[:, self.seq_len]

    def padded(self, rows: Tensor | slice = slice(None)) -> Tensor:
        """Tokens ``[k, T]`` of ``rows`` with unwritten slots replaced by PAD (the discriminator's input)."""
        tokens = self.obs[rows, : self.seq_len]
        return tokens.masked_fill(tokens == self.vocab_size, self.pad_token)

    def step(self, actions: Tensor) -> CoreStep:
        """Write ``actions`` ``LongTensor[B]`` (already validated) and score the rows that finish."""
        T = self.seq_len
        if not self.stop_at_eos:  # every row shares one position: no host sync needed
            t = self._t
            self.obs[:, t] = actions
            self.obs[:, T] = t + 1
            self._t = t + 1
            if t + 1 < T:
                return CoreStep(self._zeros.clone(), self._false.clone(), None, None, None)
            sequences = self.obs[:, :T].clone()
            logits = self.logits(sequences)
            return CoreStep(
                self.reward_fn(logits).float(), ~self._false, self._rows, sequences, logits
            )
        pos = self.obs[:, T].clone()
        self.obs[self._rows, pos] = actions
        self.obs[:, T] = pos + 1
        terminated = (pos + 1 >= T) | (actions == self.eos_token)
        finished = terminated.nonzero().squeeze(1)
        rewards = self._zeros.clone()
        if finished.numel() == 0:
            return CoreStep(rewards, terminated, None, None, None)
        sequences = self.padded(finished)
        logits = self.logits(sequences)
        rewards[finished] = self.reward_fn(logits).float()
        return CoreStep(rewards, terminated, finished, sequences, logits)


@torch.no_grad()
def _call_in_eval_mode(disc: Discriminator, tokens: Tensor) -> Any:
    """``disc(tokens)`` in eval mode (a module's mode is restored after), unchecked."""
    was_training = isinstance(disc, nn.Module) and disc.training
    if was_training:
        disc.eval()
    try:
        return disc(tokens)
    finally:
        if was_training:
            disc.train()


def validate_actions(actions: Any, num_envs: int, vocab_size: int, device: torch.device) -> Tensor:
    """``actions`` as a fresh ``LongTensor[B]`` on ``device``; ``InvalidAction`` naming the problem otherwise.

    Numpy input is checked in numpy (cheaper than torch for small arrays); the
    result is always a copy, so the caller's array is never aliased.
    """
    from gymnasium.error import InvalidAction

    if isinstance(actions, Tensor):
        tensor = check_action_tensor(actions, num_envs, device)
        bad = (tensor < 0) | (tensor >= vocab_size)
        if bool(bad.any()):
            raise InvalidAction(
                f"actions {actions!r} contain ids outside [0, {vocab_size}): {tensor[bad].tolist()}"
            )
        return tensor
    arr = np.asarray(actions)
    if arr.dtype.kind not in "iu":
        raise InvalidAction(f"actions {actions!r} must be integer token ids, got dtype {arr.dtype}")
    if arr.shape != (num_envs,):
        raise InvalidAction(f"actions {actions!r} must have shape ({num_envs},), got {arr.shape}")
    if arr.min() < 0 or arr.max() >= vocab_size:
        bad = arr[(arr < 0) | (arr >= vocab_size)]
        raise InvalidAction(
            f"actions {actions!r} contain ids outside [0, {vocab_size}): {bad.tolist()}"
        )
    return torch.from_numpy(arr.astype(np.int64, copy=True)).to(device)


def check_action_tensor(actions: Tensor, num_envs: int, device: torch.device) -> Tensor:
    """``actions`` as a fresh ``LongTensor[B]`` on ``device`` after the dtype and shape checks.

    Only tensor metadata is read (no host sync), so a GPU caller is never stalled; the range
    check is the caller's (per step in :func:`validate_actions`, or once per episode).
    """
    from gymnasium.error import InvalidAction

    if actions.dtype.is_floating_point or actions.dtype.is_complex or actions.dtype == torch.bool:
        raise InvalidAction(
            f"actions {actions!r} must be integer token ids, got dtype {actions.dtype}"
        )
    if tuple(actions.shape) != (num_envs,):
        raise InvalidAction(
            f"actions {actions!r} must have shape ({num_envs},), got {tuple(actions.shape)}"
        )
    return actions.to(device=device, dtype=torch.long, copy=True)


def action_mask(vocab_size: int, forbidden_tokens: Sequence[int]) -> np.ndarray:
    """``[V]`` bool: True where a token may be chosen (for sb3-contrib's MaskablePPO)."""
    mask = np.ones(vocab_size, dtype=bool)
    mask[list(forbidden_tokens)] = False
    return mask


DecodeFn = Callable[[Any], str]


def check_render_mode(render_mode: str | None, supported: list[str], env_name: str) -> str | None:
    """``render_mode`` if supported; else a warning naming the env and the mode, and ``None``.

    Gymnasium's convention, not an error: SB3's ``make_vec_env`` (and other helpers) pass
    ``render_mode="rgb_array"`` to every env they build, so raising would break them all.
    The env then keeps ``render_mode=None`` (it cannot render that way, and Gymnasium's
    render checker accepts ``None``), so ``render()`` returns ``None``.
    """
    if render_mode is None or render_mode in supported:
        return render_mode
    from gymnasium import logger

    logger.warn(
        f"{env_name}: render_mode {render_mode!r} is not supported (supported: {supported}); "
        "the env keeps render_mode=None and render() returns None"
    )
    return None


class EpisodeBoundSpec:
    """Reports the env's own episode bound, ``seq_len``, as ``spec.max_episode_steps``.

    Why not in the registration: the bound is a keyword argument (``seq_len``; FillInBlank's
    comes from its data), so a registered number would be right for the default only, and
    Gymnasium's ``make`` would wrap a ``seq_len=30`` env in ``TimeLimit(20)``, cutting every
    episode before the discriminator scores it. The envs end their episodes themselves
    (terminated after ``seq_len`` steps at the latest, never truncated), so no ``TimeLimit``
    is needed. This property fills the bound into the spec that ``make`` attaches (when the
    spec has none), so tools that read ``env.spec.max_episode_steps`` see it, and re-making
    from that spec (``gym.make(env.spec)``) adds a ``TimeLimit`` at the same bound, which never
    cuts an episode short.
    """

    seq_len: int
    _spec: EnvSpec | None = None

    @property
    def max_episode_steps(self) -> int:
        """The longest episode this env can produce (``seq_len`` steps)."""
        return self.seq_len

    @property
    def spec(self) -> EnvSpec | None:
        return self._spec

    @spec.setter
    def spec(self, value: EnvSpec | None) -> None:
        if value is not None and value.max_episode_steps is None:
            value = replace(value, max_episode_steps=self.max_episode_steps)
        self._spec = value


def check_max_episode_steps(max_episode_steps: int | None, seq_len: int, env_name: str) -> None:
    """Accept the ``max_episode_steps`` that ``gym.make_vec`` passes from a spec, if it cuts nothing.

    A vector env has no ``TimeLimit`` wrapper; a bound below ``seq_len`` would have to cut
    episodes before they are scored, so it is refused, naming both numbers.
    """
    if max_episode_steps is not None and int(max_episode_steps) < seq_len:
        raise ValueError(
            f"{env_name}: max_episode_steps={max_episode_steps} is below seq_len={seq_len}; "
            "episodes end (and are scored) after seq_len steps at the latest, so the bound "
            "would cut them before the discriminator sees them. Leave it None or >= seq_len"
        )
