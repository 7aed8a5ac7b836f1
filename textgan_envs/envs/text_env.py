"""Single-sequence Gymnasium envs: one action = one token, reward from a discriminator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.error import InvalidAction, ResetNeeded

from textgan_envs.discriminators import Discriminator
from textgan_envs.envs.core import (
    DecodeFn,
    EpisodeBoundSpec,
    TextGenerationCore,
    action_mask,
    check_render_mode,
    observation_space,
)
from textgan_envs.envs.sources import RealDataSource, corpus_setup, oracle_setup


def _default_decode(ids: Any) -> str:
    return " ".join(str(int(i)) for i in ids)


def scalar_action(action: Any, vocab_size: int) -> int:
    """A single token id from ``action``; ``InvalidAction`` naming it if not an in-range integer."""
    if isinstance(action, bool | np.bool_):
        raise InvalidAction(
            f"action {action!r} is a bool, expected an integer token id in [0, {vocab_size})"
        )
    if isinstance(action, torch.Tensor):
        if action.numel() != 1 or action.dtype.is_floating_point or action.dtype == torch.bool:
            raise InvalidAction(
                f"action {action!r} must be one integer token id in [0, {vocab_size})"
            )
        action = action.item()
    arr = np.asarray(action)
    if arr.shape != () or not np.issubdtype(arr.dtype, np.integer):
        raise InvalidAction(
            f"action {action!r} must be a scalar integer token id in [0, {vocab_size}), "
            f"got dtype {arr.dtype} and shape {arr.shape}"
        )
    value = int(arr)
    if not 0 <= value < vocab_size:
        raise InvalidAction(f"action {value} is outside the vocabulary [0, {vocab_size})")
    return value


class TextGenerationEnv(EpisodeBoundSpec, gym.Env):
    """## Description

    Generate a token sequence one token per step; at the end a discriminator judges
    the whole sequence and its output is the only reward (SeqGAN's MDP). The data
    source (oracle or corpus) only defines the vocabulary, the decoder and the
    real data the discriminator is trained against (``env.unwrapped.real_data``).

    ## Action Space

    `Discrete(V)`: the id of the next token.

    ## Observation Space

    `Box(0, [V]*T + [T], (T+1,), int64)`: the `T` token slots (`V` marks a slot
    not yet written) followed by the position (number of tokens written). See
    `textgan_envs.envs.core` for why a single integer `Box`.

    ## Rewards

    0 on every step but the last; on the last, `reward_fn(logit)` of the
    discriminator on the full sequence with `reward_mode` one of `prob` (`D(Y)`,
    SeqGAN), `log` (`log D`, MaskGAN), `logit`, `bgan` (`log D - log(1-D)`),
    computed stably from the logit. The discriminator runs in eval mode, so the
    reward is a deterministic function of the sequence until the discriminator
    is explicitly updated.

    ## Episode End

    Terminated after `seq_len` tokens, or at the EOS token when `stop_at_eos`
    (the rest of the sequence is then PAD). Never truncated. `env.spec.max_episode_steps`
    is `seq_len` (the registration sets none: it depends on `seq_len`; see
    `textgan_envs.envs.core.EpisodeBoundSpec`).

    ## Info

    At the last step: `sequence` (int64 `[T]`, as the discriminator saw it),
    `probability` (`D(Y)`), `logit`.

    ## Arguments

    * `vocab_size`, `seq_len`: `V` and `T` (>= 1).
    * `discriminator`: an `nn.Module` or callable `LongTensor[B, T] -> logits[B]`, or a kind
      name (`"cnn"`, SeqGAN's, or `"lstm"`); `None` builds a fresh CNN seeded by `discriminator_seed`.
    * `reward_mode`: `"prob"` (default), `"log"`, `"logit"`, `"bgan"`, or BGAN's weight of another
      f-divergence (`"bgan_kl"`, `"bgan_hellinger"`, `"bgan_chi2"`): the entries of
      `textgan_envs.rewards.REWARDS`.
    * `real_data`: a `RealDataSource` (`sample(n, generator)`), used by adversarial training.
    * `decode`: ids -> text for `render_mode="ansi"`.
    * `stop_at_eos`, `eos_token`, `pad_token`: variable-length episodes.
    * `forbidden_tokens`: ids that `action_masks()` forbids (the env itself accepts them).
    * `device`: where the step tensors and a freshly built discriminator live.

    ## Version History

    * v0: initial version.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
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
        render_mode: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        render_mode = check_render_mode(
            render_mode, self.metadata["render_modes"], type(self).__name__
        )
        self.core = TextGenerationCore(
            1,
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
        )
        self.vocab_size, self.seq_len = self.core.vocab_size, self.core.seq_len
        self.real_data = real_data
        self.decode = decode or _default_decode
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(self.vocab_size)
        self.observation_space = observation_space(self.vocab_size, self.seq_len)
        self._mask = action_mask(self.vocab_size, self.core.forbidden_tokens)
        self._done = True

    @property
    def discriminator(self) -> Discriminator:
        """The discriminator whose output is the reward (shared, updated in place by trainers)."""
        return self.core.discriminator

    def _obs(self) -> np.ndarray:
        return self.core.obs[0].cpu().numpy().copy()

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.core.reset()
        self._done = False
        return self._obs(), {}

    def step(self, action: Any):
        if self._done:
            raise ResetNeeded("the episode has ended: call reset() before step()")
        token = scalar_action(action, self.vocab_size)
        out = self.core.step(torch.tensor([token], device=self.core.device))
        terminated = bool(out.terminated[0])
        info: dict[str, Any] = {}
        if terminated:
            self._done = True
            logit = float(out.logits[0])
            info = {
                "sequence": out.sequences[0].cpu().numpy(),
                "probability": float(torch.sigmoid(out.logits[0])),
                "logit": logit,
            }
        return self._obs(), float(out.rewards[0]), terminated, False, info

    def action_masks(self) -> np.ndarray:
        """``[V]`` bool mask of allowed tokens (sb3-contrib MaskablePPO calls this)."""
        return self._mask.copy()

    def text(self) -> str:
        """The tokens written so far, decoded."""
        pos = int(self.core.positions[0])
        return self.decode(self.core.obs[0, :pos].tolist())

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self.text() + "\n"
        return None


class OracleEnv(TextGenerationEnv):
    """## Description

    SeqGAN's synthetic experiment as an MDP: write `seq_len` tokens from a
    `vocab_size`-word vocabulary; a discriminator (trained against samples of an
    oracle LSTM, `env.unwrapped.real_data`) scores the finished sequence.
    Defaults are SeqGAN's: `V=5000`, `T=20`, oracle with embedding and hidden
    size 32 and N(0, 1) parameters, CNN discriminator.

    ## Action Space

    `Discrete(5000)`: the next token id (every id, including 0, is an ordinary token).

    ## Observation Space

    `Box(0, [5000]*20 + [20], (21,), int64)`: token slots (5000 = not yet written), then the position.

    ## Rewards

    0 until the last token; then `reward_mode` (`prob`, `log`, `logit`, `bgan`) of the
    discriminator's logit on the sequence.

    ## Episode End

    Terminated after exactly `seq_len` tokens.

    ## Info

    Last step: `sequence`, `probability`, `logit`. `env.unwrapped.real_data.nll(tokens)`
    gives the oracle NLL (NLL-oracle) of generated sequences.

    ## Arguments

    * `vocab_size=5000`, `seq_len=20`.
    * `oracle_seed=0`: seed of the N(0, 1) oracle; or `oracle_path`: an `.npz` with
      the published SeqGAN oracle (`vocab_size` must match it).
    * `discriminator=None` (fresh SeqGAN CNN seeded by `discriminator_seed`), `reward_mode="prob"`,
      `render_mode=None|"ansi"`, `device="cpu"`.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        vocab_size: int = 5000,
        seq_len: int = 20,
        oracle_seed: int = 0,
        oracle_path: str | None = None,
        discriminator: Discriminator | str | None = None,
        reward_mode: str = "prob",
        discriminator_seed: int | None = 0,
        render_mode: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        setup = oracle_setup(vocab_size, seq_len, oracle_seed, oracle_path, device=device)
        super().__init__(
            discriminator=discriminator,
            reward_mode=reward_mode,
            discriminator_seed=discriminator_seed,
            render_mode=render_mode,
            device=device,
            **setup,
        )


class CorpusEnv(TextGenerationEnv):
    """## Description

    Text generation against a corpus (one sentence per line, word or char level):
    the discriminator is trained against the corpus' sentences
    (`env.unwrapped.real_data`, rows of `tokens, EOS, PAD...`), the vocabulary is the
    corpus' (`env.unwrapped.real_data.vocab`) with the reserved ids
    `PAD=0, BOS=1, EOS=2, UNK=3, MASK=4`.

    ## Action Space

    `Discrete(len(vocab))`. `action_masks()` forbids BOS, MASK and (with `stop_at_eos`) PAD.

    ## Observation Space

    `Box(0, [V]*T + [T], (T+1,), int64)`: token slots (`V` = not yet written), then the position.

    ## Rewards

    0 until the episode ends; then `reward_mode` of the discriminator's logit on
    the sequence (PAD after EOS).

    ## Episode End

    At EOS (`stop_at_eos=True`, default) or after `seq_len` tokens.

    ## Info

    Last step: `sequence`, `probability`, `logit`; `render()` (ansi) gives the decoded sentence.

    ## Arguments

    * `corpus_path` (required), `level="word"|"char"`, `seq_len=20` (sentences longer than
      `seq_len - 1` tokens are cut), `vocab_path=None` (else built from the corpus with
      `min_count=1` and `max_vocab=None`), `stop_at_eos=True`.
    * `discriminator=None` (fresh CNN), `reward_mode="prob"`, `discriminator_seed=0`,
      `render_mode=None|"ansi"`, `device="cpu"`.

    ## Version History

    * v0: initial version.
    """

    def __init__(
        self,
        corpus_path: str,
        level: str = "word",
        seq_len: int = 20,
        vocab_path: str | None = None,
        max_vocab: int | None = None,
        min_count: int = 1,
        stop_at_eos: bool = True,
        discriminator: Discriminator | str | None = None,
        reward_mode: str = "prob",
        discriminator_seed: int | None = 0,
        render_mode: str | None = None,
        device: str | torch.device = "cpu",
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
            discriminator=discriminator,
            reward_mode=reward_mode,
            discriminator_seed=discriminator_seed,
            render_mode=render_mode,
            device=device,
            **setup,
        )
