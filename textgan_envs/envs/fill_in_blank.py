"""MaskGAN's fill-in-the-blank task as a Gymnasium env, single and natively vectorised.

Each episode takes one real sequence ``x`` (from a corpus, an encoded tensor, or an oracle model)
and a mask (:mod:`textgan_envs.masking`). The agent sees the masked sequence ``m(x)``, the tokens
of the sequence up to the current position and the position, and chooses a token for the current
*missing* position only: present tokens are copied by the env without asking the agent. The
episode ends once the last position has been passed, so it lasts exactly as many steps as there
are missing tokens (at most ``seq_len``: ``env.spec.max_episode_steps``, filled in by
:class:`~textgan_envs.envs.core.EpisodeBoundSpec` rather than registered, since it depends on
the data).

Reward for filling position ``t``: ``r_t = log D(x~_t | x~_<t, m(x))`` from the per-token
:class:`~textgan_envs.discriminators.maskgan.MaskGANDiscriminator`, computed stably from its logit
(``reward_mode="log"``, MaskGAN's and the default here; ``"prob"``, ``"logit"`` and ``"bgan"``
transform the same logit as in the other textgan envs).
The discriminator is causal in the filled sequence, so ``r_t`` is final as soon as ``t`` is filled;
present positions carry no reward. For a fixed discriminator state the reward is deterministic.
Replace the discriminator while training with :meth:`set_discriminator` (or pass it in).

Observation (a ``Dict``): ``masked`` ``[T]`` (MASK where missing), ``filled`` ``[T]`` (tokens at
positions ``< position``, PAD elsewhere) and ``position`` (the index being filled; ``T`` when done).
Action: a token id other than MASK (with an oracle source MASK is the last id and lies outside
the action space; with a corpus it is id 4, inside it, and ``step`` rejects it).

Keyword names are those of the other textgan envs: ``corpus_path`` (``corpus`` is a deprecated
alias), ``seq_len``, ``discriminator``, ``reward_mode``, ``discriminator_seed``, ``render_mode``,
``device``. A sequence-discriminator kind (``"cnn"``, ``"lstm"``) is refused by name: this task
needs a discriminator that scores every position.
"""

from __future__ import annotations

import os
import warnings
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.error import InvalidAction
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

from textgan_envs.corpus import encode_sentences, load_corpus
from textgan_envs.device import resolve_device
from textgan_envs.discriminators import DISCRIMINATOR_KINDS
from textgan_envs.discriminators.maskgan import (
    MaskGANDiscriminator,
    check_compatible,
    rewards_from_logits,
)
from textgan_envs.envs.arguments import check_int
from textgan_envs.envs.core import EpisodeBoundSpec, check_max_episode_steps, check_render_mode
from textgan_envs.envs.disc_output import check_finite_values, check_token_logits
from textgan_envs.masking import MASK_KINDS, apply_mask, check_present_rate, make_mask
from textgan_envs.rewards import RewardFn, get_reward_fn
from textgan_envs.sampling import sample_sequences
from textgan_envs.vocab import Vocabulary

ENV_ID = "textgan/FillInBlank-v0"
DEFAULT_SEQ_LEN = 20  # a corpus's sentences are cut or padded to this many tokens


def _check_seq_len(asked: int | None, actual: int, whose: str) -> None:
    """A ``seq_len`` given next to data or an oracle must agree with it: never ignored silently."""
    if asked is not None and asked != actual:
        raise ValueError(
            f"{ENV_ID}: seq_len={asked!r} disagrees with {whose} sequence length {actual}; "
            "drop seq_len (it is read from the data) or give data of that length"
        )


class RealSource:
    """Where real sequences come from: rows of a fixed tensor, or fresh samples of an oracle model.

    ``vocab_size`` is the model vocabulary (oracle vocabulary + 1 for an oracle, whose ids are all
    words, so its MASK id is appended at the end); ``pad_token`` is ``None`` when rows have no
    padding.
    """

    def __init__(
        self,
        corpus: str | os.PathLike[str] | None = None,
        data: Tensor | np.ndarray | None = None,
        oracle: Any = None,
        vocab: Vocabulary | None = None,
        seq_len: int | None = None,
        max_sentences: int | None = None,
    ) -> None:
        if seq_len is not None:
            seq_len = check_int("seq_len", seq_len, 2, ENV_ID)
        if max_sentences is not None:
            max_sentences = check_int("max_sentences", max_sentences, 1, ENV_ID)
        given = [
            name
            for name, v in (("corpus", corpus), ("data", data), ("oracle", oracle))
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one real source (corpus, data or oracle), got {given or 'none'}"
            )
        self.vocab = vocab
        self.oracle = oracle
        self.data: Tensor | None = None
        if oracle is not None:
            _check_seq_len(seq_len, int(oracle.seq_len), "the oracle's")
            self.seq_len = int(oracle.seq_len)
            self.vocab_size = int(oracle.vocab_size) + 1
            self.mask_token = int(oracle.vocab_size)
            self.pad_token: int | None = None
        else:
            if corpus is not None:
                sentences = load_corpus(corpus).sentences
                if max_sentences is not None:
                    sentences = sentences[:max_sentences]
                if vocab is None:
                    vocab = Vocabulary.build(sentences)
                    self.vocab = vocab
                data = encode_sentences(sentences, vocab, seq_len or DEFAULT_SEQ_LEN)
            tensor = torch.as_tensor(data).long()
            if tensor.ndim != 2 or tensor.shape[0] == 0:
                raise ValueError(
                    f"real data must be a non-empty [N, seq_len] array, got {tuple(tensor.shape)}"
                )
            if max_sentences is not None and corpus is None:
                tensor = tensor[:max_sentences]
            if corpus is None:
                _check_seq_len(seq_len, int(tensor.shape[1]), "the data's")
            self.seq_len = int(tensor.shape[1])
            self.vocab_size = len(vocab) if vocab is not None else int(tensor.max()) + 1
            self.mask_token = Vocabulary.MASK
            self.pad_token = Vocabulary.PAD
            if vocab is not None and (
                len(vocab) <= Vocabulary.MASK
                or vocab.id_to_token(Vocabulary.MASK) != Vocabulary.SPECIAL_TOKENS[Vocabulary.MASK]
            ):
                raise ValueError("the vocabulary lacks the MASK token <mask> at id 4")
            if self.vocab_size <= self.mask_token:
                raise ValueError(
                    f"the vocabulary (size {self.vocab_size}) lacks the MASK token id {self.mask_token}"
                )
            if bool((tensor == self.mask_token).any()):
                raise ValueError(
                    f"the real data contains the MASK id {self.mask_token} as a word; the vocabulary "
                    "must reserve MASK for missing tokens"
                )
            if int(tensor.min()) < 0 or int(tensor.max()) >= self.vocab_size:
                raise ValueError(
                    f"real data ids fall outside the vocabulary [0, {self.vocab_size})"
                )
            self.data = tensor
        if self.seq_len < 2:
            raise ValueError(f"sequences must have at least 2 tokens, got seq_len={self.seq_len}")

    def draw(self, n: int, generator: torch.Generator, device: torch.device) -> Tensor:
        """``n`` real sequences ``LongTensor[n, T]`` on ``device``."""
        if self.oracle is not None:
            gen = generator if self.oracle.device.type == "cpu" else None
            return sample_sequences(self.oracle, n, generator=gen).to(device)
        assert self.data is not None
        idx = torch.randint(len(self.data), (n,), generator=generator)
        return self.data[idx].to(device)


class _Episodes:
    """Batched episode state shared by the single and the vector env (one code path for both)."""

    def __init__(self, num: int, seq_len: int, device: torch.device) -> None:
        shape = (num, seq_len)
        self.real = torch.zeros(shape, dtype=torch.long, device=device)
        self.present = torch.ones(shape, dtype=torch.bool, device=device)
        self.masked = torch.zeros(shape, dtype=torch.long, device=device)
        self.filled = torch.zeros(shape, dtype=torch.long, device=device)
        self.pos = torch.full((num,), seq_len, dtype=torch.long, device=device)
        self.seq_len = seq_len
        self._cols = torch.arange(seq_len, device=device)

    def _advance(self, rows: Tensor, after: Tensor) -> None:
        """Move ``rows`` to their first missing position ``> after``, copying present tokens up to it."""
        later = (self._cols.unsqueeze(0) > after.unsqueeze(1)) & ~self.present[rows]
        nxt = torch.where(later.any(dim=1), later.float().argmax(dim=1), self.seq_len)
        copy = (self._cols.unsqueeze(0) > after.unsqueeze(1)) & (
            self._cols.unsqueeze(0) < nxt.unsqueeze(1)
        )
        self.filled[rows] = torch.where(copy, self.real[rows], self.filled[rows])
        self.pos[rows] = nxt

    def start(self, rows: Tensor, real: Tensor, present: Tensor, mask_token: int) -> None:
        self.real[rows] = real
        self.present[rows] = present
        self.masked[rows] = apply_mask(real, present, mask_token)
        self.filled[rows] = Vocabulary.PAD
        self._advance(rows, torch.full_like(rows, -1))

    def fill(
        self,
        rows: Tensor,
        actions: Tensor,
        discriminator: MaskGANDiscriminator,
        reward_fn: RewardFn,
    ) -> Tensor:
        """Write ``actions`` at the rows' current positions; return their rewards and advance them.

        The discriminator's output is checked (:mod:`textgan_envs.envs.disc_output`): a pair
        whose logits are a float tensor ``[k, T]``, finite at the positions being rewarded.
        """
        pos = self.pos[rows]
        self.filled[rows, pos] = actions
        with torch.no_grad():
            out = discriminator(self.masked[rows], self.filled[rows])
        logits = check_token_logits(out, discriminator, int(rows.numel()), self.seq_len)
        check_finite_values(logits.gather(1, pos.unsqueeze(1)).squeeze(1), discriminator)
        rewards = rewards_from_logits(logits, self.present[rows], reward_fn)  # as per_token_rewards
        reward = rewards.gather(1, pos.unsqueeze(1)).squeeze(1)
        self._advance(rows, pos)
        return reward

    def observation(self) -> dict[str, np.ndarray]:
        visible = self._cols.unsqueeze(0) < self.pos.unsqueeze(1)
        filled = torch.where(visible, self.filled, torch.zeros_like(self.filled))
        return {
            "masked": self.masked.cpu().numpy().astype(np.int64),
            "filled": filled.cpu().numpy().astype(np.int64),
            "position": self.pos.cpu().numpy().astype(np.int64),
        }


class DiscreteWithout(spaces.Discrete):
    """``Discrete(n)`` minus one reserved value (MASK): never sampled and not contained."""

    def __init__(self, n: int, excluded: int, seed: int | np.random.Generator | None = None):
        super().__init__(n, seed=seed)
        if not 0 <= int(excluded) < n:
            raise ValueError(f"excluded value {excluded} is outside Discrete({n})")
        self.excluded = int(excluded)

    def sample(
        self, mask: np.ndarray | None = None, probability: np.ndarray | None = None
    ) -> np.int64:
        if probability is not None:
            probability = np.array(probability, dtype=np.float64)
            probability[self.excluded] = 0.0
            return super().sample(probability=probability / probability.sum())
        allowed = np.ones(self.n, dtype=np.int8) if mask is None else np.array(mask, np.int8)
        allowed[self.excluded] = 0
        return super().sample(mask=allowed)

    def contains(self, x: Any) -> bool:
        return super().contains(x) and int(x) != self.excluded

    def __repr__(self) -> str:
        return f"DiscreteWithout({self.n}, excluded={self.excluded})"

    def __eq__(self, other: Any) -> bool:
        return (
            isinstance(other, DiscreteWithout)
            and super().__eq__(other)
            and other.excluded == self.excluded
        )


def resolve_corpus_path(
    corpus_path: str | os.PathLike[str] | None, corpus: str | os.PathLike[str] | None
) -> str | os.PathLike[str] | None:
    """``corpus_path``, also accepted under its old name ``corpus`` (with a ``DeprecationWarning``).

    Why: ``textgan/Corpus-v0`` has always called it ``corpus_path``; one name for one thing.
    """
    if corpus is None:
        return corpus_path
    if corpus_path is not None:
        raise ValueError(
            f"{ENV_ID}: got both corpus_path= and corpus= (its deprecated alias); give corpus_path="
        )
    warnings.warn(
        f"{ENV_ID}: corpus= is deprecated, use corpus_path= (the name textgan/Corpus-v0 takes)",
        DeprecationWarning,
        stacklevel=3,
    )
    return corpus


class _FillInBlankBase:
    """Construction shared by both envs: source, spaces, discriminator, masking options."""

    def _setup(
        self,
        num: int,
        corpus_path: str | os.PathLike[str] | None,
        data: Tensor | np.ndarray | None,
        oracle: Any,
        vocab: Vocabulary | None,
        seq_len: int | None,
        max_sentences: int | None,
        mask: str,
        present_rate: float,
        discriminator: MaskGANDiscriminator | str | None,
        reward_mode: str,
        discriminator_seed: int | None,
        device: str | torch.device,
    ) -> None:
        if mask not in MASK_KINDS:
            raise ValueError(f"mask must be one of {MASK_KINDS}, got {mask!r}")
        self.present_rate = check_present_rate(present_rate)
        self.mask_kind = mask
        self.reward_mode = reward_mode
        self.reward_fn = get_reward_fn(reward_mode)
        self.device = resolve_device(device)
        self.source = RealSource(corpus_path, data, oracle, vocab, seq_len, max_sentences)
        self.vocab = self.source.vocab
        self.seq_len = self.source.seq_len
        self.vocab_size = self.source.vocab_size
        self.mask_token = self.source.mask_token
        self.set_discriminator(self._resolve_discriminator(discriminator, discriminator_seed))
        self._torch_gen = torch.Generator()
        self._episodes = _Episodes(num, self.seq_len, self.device)
        self.single_observation_space = spaces.Dict(
            {
                "masked": spaces.MultiDiscrete(
                    np.full(self.seq_len, self.vocab_size, dtype=np.int64)
                ),
                "filled": spaces.MultiDiscrete(
                    np.full(self.seq_len, self.vocab_size, dtype=np.int64)
                ),
                "position": spaces.Discrete(self.seq_len + 1),
            }
        )
        # Every action in the space must be legal. An oracle source puts MASK last, so the space
        # stops before it; a corpus vocabulary reserves MASK at id 4, inside the range, so the
        # space excludes that one value (``step`` still rejects it by name).
        if self.mask_token == self.vocab_size - 1:
            self.single_action_space = spaces.Discrete(self.mask_token)
        else:
            self.single_action_space = DiscreteWithout(self.vocab_size, self.mask_token)

    def _resolve_discriminator(
        self, discriminator: MaskGANDiscriminator | str | None, seed: int | None
    ) -> MaskGANDiscriminator:
        """``None`` or ``"maskgan"``: a fresh per-token discriminator seeded by ``seed``."""
        if isinstance(discriminator, str) and discriminator != "maskgan":
            what = (
                "names a whole-sequence kind (textgan/Oracle-v0 and textgan/Corpus-v0 take those)"
                if discriminator in DISCRIMINATOR_KINDS
                else "is no discriminator kind"
            )
            raise ValueError(
                f"{ENV_ID} rewards every filled token, so it needs a per-token "
                f"MaskGANDiscriminator; discriminator={discriminator!r} {what}. Pass None or "
                "'maskgan' (a fresh one seeded by discriminator_seed) or a MaskGANDiscriminator"
            )
        if discriminator is not None and not isinstance(discriminator, str):
            return discriminator
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(int(seed))
            return MaskGANDiscriminator(
                self.vocab_size, self.seq_len, mask_token=self.mask_token, device=self.device
            )

    def set_discriminator(self, discriminator: MaskGANDiscriminator) -> None:
        """Use ``discriminator`` for rewards from now on (checked against the env's vocabulary)."""
        if not hasattr(discriminator, "mask_token") or not callable(discriminator):
            raise TypeError(
                f"{ENV_ID} needs a per-token MaskGANDiscriminator (logits at every position of "
                f"the filled sequence given m(x)), got {type(discriminator).__name__}"
            )
        shape = SimpleNamespace(
            vocab_size=self.vocab_size, mask_token=self.mask_token, seq_len=self.seq_len
        )
        check_compatible(shape, discriminator, first="env")
        self.discriminator = discriminator

    def _seed_torch(self, np_random: np.random.Generator) -> None:
        self._torch_gen.manual_seed(int(np_random.integers(2**62)))

    def _start(self, rows: Tensor) -> None:
        real = self.source.draw(int(rows.numel()), self._torch_gen, self.device)
        present = make_mask(
            self.mask_kind, real.cpu(), self.present_rate, self._torch_gen, self.source.pad_token
        ).to(self.device)
        self._episodes.start(rows, real, present, self.mask_token)

    def _check_actions(self, actions: Tensor) -> None:
        if actions.numel() and (int(actions.min()) < 0 or int(actions.max()) >= self.vocab_size):
            raise InvalidAction(
                f"{type(self).__name__}: actions must be token ids in [0, {self.vocab_size}), "
                f"got {actions.tolist()}"
            )
        if bool((actions == self.mask_token).any()):
            raise InvalidAction(
                f"{type(self).__name__}: action {self.mask_token} is the MASK token, "
                "not a word to fill in"
            )

    def decode(self, tokens: np.ndarray | Tensor) -> str:
        """Tokens as text (needs a vocabulary; ids otherwise)."""
        ids = np.asarray(tokens).tolist()
        if self.vocab is None:
            return " ".join("_" if i == self.mask_token else str(i) for i in ids)
        return " ".join("_" if i == self.mask_token else self.vocab.id_to_token(i) for i in ids)


class FillInTheBlankEnv(EpisodeBoundSpec, _FillInBlankBase, gym.Env):
    """One fill-in-the-blank episode at a time (see the module docstring)."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        corpus_path: str | os.PathLike[str] | None = None,
        *,
        data: Tensor | np.ndarray | None = None,
        oracle: Any = None,
        vocab: Vocabulary | None = None,
        seq_len: int | None = None,
        max_sentences: int | None = None,
        mask: str = "random",
        present_rate: float = 0.5,
        discriminator: MaskGANDiscriminator | str | None = None,
        reward_mode: str = "log",
        discriminator_seed: int | None = 0,
        device: str | torch.device = "cpu",
        render_mode: str | None = None,
        corpus: str | os.PathLike[str] | None = None,
    ) -> None:
        self._setup(
            1, resolve_corpus_path(corpus_path, corpus), data, oracle, vocab, seq_len,
            max_sentences, mask, present_rate, discriminator, reward_mode, discriminator_seed,
            device,
        )  # fmt: skip
        render_mode = check_render_mode(
            render_mode, self.metadata["render_modes"], type(self).__name__
        )
        self.observation_space = self.single_observation_space
        self.action_space = self.single_action_space
        self.render_mode = render_mode
        self._rows = torch.zeros(1, dtype=torch.long, device=self.device)
        self._done = True

    def _obs(self) -> dict[str, Any]:
        obs = self._episodes.observation()
        return {
            "masked": obs["masked"][0],
            "filled": obs["filled"][0],
            "position": int(obs["position"][0]),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or not hasattr(self, "_seeded"):
            self._seed_torch(self.np_random)
            self._seeded = True
        self._start(self._rows)
        self._done = False
        return self._obs(), {}

    def step(self, action: int) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("the episode is over; call reset() before step()")
        act = torch.as_tensor([int(action)], dtype=torch.long, device=self.device)
        self._check_actions(act)
        reward = float(self._episodes.fill(self._rows, act, self.discriminator, self.reward_fn)[0])
        self._done = int(self._episodes.pos[0]) >= self.seq_len
        info: dict[str, Any] = {}
        if self._done:
            info["real"] = self._episodes.real[0].cpu().numpy()
        return self._obs(), reward, self._done, False, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        obs = self._obs()
        return f"masked: {self.decode(obs['masked'])}\nfilled: {self.decode(obs['filled'][: obs['position']])}"


class FillInTheBlankVectorEnv(EpisodeBoundSpec, _FillInBlankBase, VectorEnv):
    """``num_envs`` episodes stepped together in one discriminator call; next-step autoreset.

    A sub-env whose episode ended on the previous step is reset on this step (its action is
    ignored, its reward is 0), as in Gymnasium's native vector envs.
    ``max_episode_steps`` is accepted for ``gym.make_vec`` (a spec's bound) when ``None`` or at
    least ``seq_len``.
    """

    metadata = {"render_modes": ["ansi"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        corpus_path: str | os.PathLike[str] | None = None,
        *,
        data: Tensor | np.ndarray | None = None,
        oracle: Any = None,
        vocab: Vocabulary | None = None,
        seq_len: int | None = None,
        max_sentences: int | None = None,
        mask: str = "random",
        present_rate: float = 0.5,
        discriminator: MaskGANDiscriminator | str | None = None,
        reward_mode: str = "log",
        discriminator_seed: int | None = 0,
        device: str | torch.device = "cpu",
        render_mode: str | None = None,
        corpus: str | os.PathLike[str] | None = None,
        max_episode_steps: int | None = None,
    ) -> None:
        self.num_envs = check_int("num_envs", num_envs, 1, ENV_ID)
        self._setup(
            self.num_envs, resolve_corpus_path(corpus_path, corpus), data, oracle, vocab,
            seq_len, max_sentences, mask, present_rate, discriminator, reward_mode,
            discriminator_seed, device,
        )  # fmt: skip
        check_max_episode_steps(max_episode_steps, self.seq_len, type(self).__name__)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        render_mode = check_render_mode(
            render_mode, self.metadata["render_modes"], type(self).__name__
        )
        self.render_mode = render_mode
        self._prev_done = np.zeros(self.num_envs, dtype=bool)
        self._all = torch.arange(self.num_envs, device=self.device)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        self._seed_torch(self.np_random)
        self._start(self._all)
        self._prev_done[:] = False
        return self._episodes.observation(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        acts = torch.as_tensor(np.asarray(actions), dtype=torch.long, device=self.device).reshape(
            -1
        )
        if acts.numel() != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {acts.numel()}")
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        resetting = torch.as_tensor(self._prev_done, device=self.device)
        acting = self._all[~resetting]
        if acting.numel():
            self._check_actions(acts[acting])
            rewards[acting.cpu().numpy()] = (
                self._episodes.fill(acting, acts[acting], self.discriminator, self.reward_fn)
                .cpu()
                .numpy()
            )
        if bool(resetting.any()):
            self._start(self._all[resetting])
        terminated = (self._episodes.pos >= self.seq_len).cpu().numpy()
        terminated &= ~self._prev_done
        self._prev_done = terminated.copy()
        truncated = np.zeros(self.num_envs, dtype=bool)
        return self._episodes.observation(), rewards, terminated, truncated, {}

    def render(self) -> list[str] | None:
        if self.render_mode != "ansi":
            return None
        obs = self._episodes.observation()
        return [self.decode(row) for row in obs["masked"]]
