"""stable-baselines3 integration: token-embedding features, a VecEnv adapter, masks, D updates.

* :class:`TokenEmbeddingExtractor` reads the env's integer observation back as
  token ids and embeds them (SB3's default would feed raw ids as floats).
* :class:`SB3VecEnvAdapter` exposes a native :class:`TextGenerationVectorEnv` as an
  SB3 ``VecEnv`` (one batched step for all envs instead of ``DummyVecEnv``'s loop),
  including ``action_masks()`` for sb3-contrib's ``MaskablePPO``.
* :class:`DiscriminatorUpdateCallback` feeds finished episodes to a
  :class:`~textgan_envs.adversarial.DiscriminatorTrainer` during ``learn`` and trains the
  discriminator on a :class:`DiscriminatorSchedule` (every N rollouts or N sequences).
* :class:`GeneratorPolicy` (and :class:`MaskableGeneratorPolicy` for sb3-contrib's
  ``MaskablePPO``) makes our :class:`~agents.policies.LSTMPolicy` the actor of SB3's
  PPO / A2C, so they can start from an MLE-pretrained generator.

The discriminator is updated in place, so the callback works with the adapter
or ``DummyVecEnv`` (same process) but not with ``SubprocVecEnv`` (copies).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import VecEnv
from torch import Tensor, nn

from textgan_envs.adversarial import DiscriminatorTrainer
from textgan_envs.envs import TextGenerationVectorEnv


def check_token_ids(observations: Tensor, high: Tensor, who: str) -> None:
    """``ValueError`` naming the first entry of ``[B, T + 1]`` observations outside ``[0, high]``.

    Why: SB3 feeds the env's integer ids as floats; anything that is not a whole number in
    range means an observation wrapper transformed them, and rounding would silently read
    other tokens.
    """
    bad = (observations != observations.floor()) | (observations < 0)
    bad |= observations > high
    if not bool(bad.any()):
        return
    seq_len = int(high.shape[0]) - 1
    row, col = (int(i) for i in bad.nonzero()[0])
    value = float(observations[row, col])
    what = "position" if col == seq_len else "token slot"
    raise ValueError(
        f"{who} got {value!r} at observation [{row}, {col}] ({what}), "
        f"not a whole number in [0, {int(high[col])}]: the env's integer token ids "
        "were transformed before the policy saw them. VecNormalize(norm_obs=True) does this "
        "(it turns ids into z-scores); use VecNormalize(norm_obs=False) (normalising rewards "
        "is fine) or no observation wrapper"
    )


class TokenEmbeddingExtractor(BaseFeaturesExtractor):
    """Embeds the ``T`` token slots (``V`` = empty) and the position, then one ReLU layer.

    Works on the observation ``Box`` of every textgan env; ids are recovered
    exactly from SB3's float cast (integers below 2^24). Observations that are
    not whole numbers in the Box's range are refused rather than rounded into
    other tokens: an observation wrapper (``VecNormalize(norm_obs=True)``) has
    turned the ids into something else.
    """

    def __init__(
        self, observation_space: gym.spaces.Box, embed_dim: int = 32, features_dim: int = 128
    ) -> None:
        super().__init__(observation_space, features_dim)
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(
                f"expected a textgan observation Box of shape (T+1,), got {observation_space}"
            )
        self.seq_len = int(observation_space.shape[0]) - 1
        self.vocab_size = int(observation_space.high[0])
        high = torch.full((self.seq_len + 1,), float(self.vocab_size))
        high[-1] = self.seq_len
        self.register_buffer("_high", high, persistent=False)
        self.tokens = nn.Embedding(self.vocab_size + 1, embed_dim)
        self.position = nn.Embedding(self.seq_len + 1, embed_dim)
        self.net = nn.Sequential(nn.Linear((self.seq_len + 1) * embed_dim, features_dim), nn.ReLU())

    def check_ids(self, observations: Tensor) -> None:
        """``ValueError`` naming the first entry that is not a token id / position of the env."""
        check_token_ids(observations, self._high, type(self).__name__)

    def forward(self, observations: Tensor) -> Tensor:
        self.check_ids(observations)
        ids = observations.long()
        tok = self.tokens(ids[:, : self.seq_len]).flatten(1)
        pos = self.position(ids[:, self.seq_len])
        return self.net(torch.cat([tok, pos], dim=1))


def token_policy_kwargs(
    embed_dim: int = 32, features_dim: int = 128, **extra: Any
) -> dict[str, Any]:
    """``policy_kwargs`` for SB3 algorithms using :class:`TokenEmbeddingExtractor`."""
    return {
        "features_extractor_class": TokenEmbeddingExtractor,
        "features_extractor_kwargs": {"embed_dim": embed_dim, "features_dim": features_dim},
        **extra,
    }


class SB3VecEnvAdapter(VecEnv):
    """A native textgan vector env (numpy mode) as a stable-baselines3 ``VecEnv``.

    Same-step autoreset maps directly to SB3's convention: finished envs carry
    ``terminal_observation``, ``sequence``, ``probability`` and ``logit`` in their
    info dict. Wrap with ``VecMonitor`` for episode statistics.
    """

    def __init__(self, venv: TextGenerationVectorEnv) -> None:
        base = getattr(venv, "unwrapped", venv)
        if not isinstance(base, TextGenerationVectorEnv):
            raise TypeError(f"expected a TextGenerationVectorEnv, got {type(venv).__name__}")
        if base.as_torch:
            raise ValueError("SB3 needs numpy arrays: build the vector env with as_torch=False")
        self.venv = venv
        super().__init__(venv.num_envs, venv.single_observation_space, venv.single_action_space)
        self._actions: np.ndarray | None = None
        self._extra_keys = ("sequence", "probability", "logit", "q_values")

    def reset(self) -> np.ndarray:
        seed = self._seeds[0]
        obs, _ = self.venv.reset(seed=seed)
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = np.logical_or(terminated, truncated)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            for i in np.flatnonzero(dones):
                entry = infos[i]
                entry["terminal_observation"] = info["final_obs"][i]
                entry["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
                for key in self._extra_keys:
                    if key in info and info.get(f"_{key}", dones)[i]:
                        entry[key] = info[key][i]
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        value = getattr(self.venv, attr_name)  # AttributeError propagates (has_attr relies on it)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args, indices=None, **method_kwargs
    ) -> list[Any]:
        idx = list(self._get_indices(indices))
        if method_name == "action_masks":
            masks = self.venv.action_masks()
            return [masks[i] for i in idx]
        result = getattr(self.venv, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices=None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def action_masks(self) -> np.ndarray:
        """``[B, V]`` bool mask of allowed tokens."""
        return self.venv.action_masks()

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None] * self.num_envs


@dataclass(frozen=True)
class DiscriminatorSchedule:
    """When, and how much, the discriminator trains during an SB3 ``learn``.

    A phase is SeqGAN's: ``d_steps`` times, draw ``n_samples`` generated sequences and as many
    real ones, and train ``epochs`` epochs on them. The generated ones come from the trainer's
    ``fake_sampler`` if it has one, else from the newest episodes (those since the last phase,
    or the newest ``n_samples`` if fewer finished), so the discriminator learns against the
    current policy, not against sequences from thousands of episodes ago. Phases run either every ``every_rollouts`` SB3 rollouts
    (at the rollout's end, before the policy update, so all rewards of a rollout come from one
    discriminator) or every ``every_sequences`` finished episodes (on the step that completes
    them, mid-rollout). Give at most one; with neither, ``every_sequences=256``.

    Why these defaults: a phase costs about ``d_steps * epochs * 2 * n_samples``
    discriminator rows, the policy's cost grows with the sequences generated, so the ratio
    (``2 * n_samples / every_sequences`` rows per generated sequence; 2 by default: each
    sequence seen about once, against one real one) fixes the overhead whatever the rollout
    size: 1.3x PPO alone at V=50, T=8 (BENCHMARKS.md, "stable-baselines3 discriminator
    callback"). The callback's previous schedule, SeqGAN's phase (5 d-steps x 3 epochs) on the
    whole buffer every 64 episodes, made the same PPO run 11-15x slower; pass
    ``d_steps=5, epochs=3`` for SeqGAN's ratio of steps to epochs.
    """

    every_rollouts: int | None = None
    """Rollouts between two phases (``None``: count sequences instead)."""
    every_sequences: int | None = None
    """Finished episodes between two phases (``None`` with ``every_rollouts`` unset: 256)."""
    d_steps: int = 1
    """Fresh real/generated draws per phase (SeqGAN: 5)."""
    epochs: int = 1
    """Training epochs on each draw (SeqGAN: 3)."""
    n_samples: int = 256
    """Generated sequences per draw, and as many real ones (capped by the trainer's buffer)."""

    DEFAULT_EVERY_SEQUENCES: ClassVar[int] = 256

    def __post_init__(self) -> None:
        if self.every_rollouts is not None and self.every_sequences is not None:
            raise ValueError(
                "give every_rollouts or every_sequences, not both "
                f"(got {self.every_rollouts} and {self.every_sequences})"
            )
        if self.every_rollouts is None and self.every_sequences is None:
            object.__setattr__(self, "every_sequences", self.DEFAULT_EVERY_SEQUENCES)
        for name in ("every_rollouts", "every_sequences", "d_steps", "epochs", "n_samples"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or int(value) < 1):
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


class DiscriminatorUpdateCallback(BaseCallback):
    """Trains the reward's discriminator during ``learn`` on a :class:`DiscriminatorSchedule`.

    Every finished episode's ``info["sequence"]`` goes to the :class:`DiscriminatorTrainer`'s
    buffer; the schedule alone decides when a phase runs and how large it is. From the
    trainer the callback uses its optimizer, ``batch_size``, buffer, real data and
    ``fake_sampler``, not its ``update_every``/``d_steps``/``epochs``/``n_samples`` (those
    drive :meth:`DiscriminatorTrainer.observe`, our own agents' route). Each phase's
    statistics are recorded under ``discriminator/`` in SB3's logger.
    """

    def __init__(
        self,
        trainer: DiscriminatorTrainer,
        schedule: DiscriminatorSchedule | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.trainer = trainer
        self.schedule = schedule or DiscriminatorSchedule()
        self.last_stats: dict[str, float] | None = None
        self.rollouts_since_update = 0

    def _on_step(self) -> bool:
        infos = self.locals.get("infos", [])
        dones = self.locals.get("dones", np.zeros(len(infos), dtype=bool))
        seqs = [
            info["sequence"]
            for info, done in zip(infos, dones, strict=False)
            if done and "sequence" in info
        ]
        if seqs:
            self.trainer.add(np.stack(seqs))
            every = self.schedule.every_sequences
            if every is not None and self.trainer.episodes_since_update >= every:
                self._update()
        return True

    def _on_rollout_end(self) -> None:
        every = self.schedule.every_rollouts
        if every is None:
            return
        self.rollouts_since_update += 1
        if self.rollouts_since_update >= every and self.trainer.episodes_seen > 0:
            self._update()

    def _update(self) -> None:
        sched = self.schedule
        newest = max(sched.n_samples, self.trainer.episodes_since_update)
        stats = self.trainer.update(sched.d_steps, sched.epochs, sched.n_samples, newest)
        self.rollouts_since_update = 0
        self.last_stats = stats
        for key, value in stats.items():
            self.logger.record(f"discriminator/{key}", value)
        if self.verbose:
            print(f"discriminator update {int(stats['updates'])}: {stats}")


class SB3SequencePolicy:
    """A trained SB3 policy on a textgan env as a :class:`RecurrentSequenceModel`.

    Why: the bench (and every metric in ``textgan_envs.metrics``) scores generators through
    ``initial_state`` / ``step``; this adapter rebuilds, in torch, the observation the env
    would show at each step, so an SB3 agent is sampled and scored by the same code as the
    LSTM agents, differentiably and on the policy's device.

    State: ``(tokens [B, T], position [B])``, tokens initialised to ``V`` ("not yet
    written", as in :mod:`textgan_envs.envs.core`). ``step`` writes ``prev_tokens`` at
    ``position - 1`` (nothing at the first step, so ``start_token`` is never read) and
    returns the logits of the policy's categorical distribution for the observation
    ``[tokens..., position]``.
    """

    def __init__(self, model: Any, start_token: int = 0) -> None:
        policy = getattr(model, "policy", None)
        if policy is None or not hasattr(policy, "get_distribution"):
            raise TypeError(
                f"expected a trained SB3 model with .policy.get_distribution, got {type(model).__name__}"
            )
        obs_space, act_space = policy.observation_space, policy.action_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise ValueError(f"expected a textgan observation Box (T+1,), got {obs_space}")
        if not isinstance(act_space, gym.spaces.Discrete):
            raise ValueError(f"expected a Discrete token action space, got {act_space}")
        self.model = model
        self.seq_len = int(obs_space.shape[0]) - 1
        self.vocab_size = int(act_space.n)
        if int(obs_space.high[0]) != self.vocab_size:
            raise ValueError(
                f"observation token slots go up to {int(obs_space.high[0])} but the action space "
                f"has {self.vocab_size} tokens: not a textgan env"
            )
        if not 0 <= int(start_token) < self.vocab_size:
            raise ValueError(f"start_token {start_token} is outside [0, {self.vocab_size})")
        self.start_token = int(start_token)

    @property
    def device(self) -> torch.device:
        return torch.device(self.model.policy.device)

    @property
    def training(self) -> bool:
        return bool(self.model.policy.training)

    def train(self, mode: bool = True) -> SB3SequencePolicy:
        self.model.policy.set_training_mode(mode)
        return self

    def eval(self) -> SB3SequencePolicy:
        return self.train(False)

    def initial_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        tokens = torch.full(
            (batch_size, self.seq_len), self.vocab_size, dtype=torch.long, device=self.device
        )
        return tokens, torch.zeros(batch_size, dtype=torch.long, device=self.device)

    def observation(self, state: tuple[Tensor, Tensor]) -> Tensor:
        """The env's observation ``[B, T + 1]`` (float, as SB3 feeds it) for ``state``."""
        tokens, position = state
        return torch.cat([tokens, position.unsqueeze(1)], dim=1).float()

    def step(
        self, prev_tokens: Tensor, state: tuple[Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        tokens, position = state
        prev = prev_tokens.to(tokens.device).long().unsqueeze(1)
        slot = (position - 1).clamp(min=0).unsqueeze(1)
        written = tokens.scatter(1, slot, prev)  # out of place: callers may reuse states
        tokens = torch.where((position > 0).unsqueeze(1), written, tokens)
        state = (tokens, position)
        logits = self.model.policy.get_distribution(self.observation(state)).distribution.logits
        return logits, (tokens, position + 1)

    def sample(
        self, n: int, temperature: float = 1.0, generator: torch.Generator | None = None
    ) -> Tensor:
        """``n`` sequences ``LongTensor[n, T]`` drawn from the policy."""
        from textgan_envs.sampling import sample_sequences

        return sample_sequences(self, n, temperature=temperature, generator=generator)

    def log_prob(self, tokens: Tensor, temperature: float = 1.0) -> Tensor:
        """Per-token ``log pi(y_t | y_<t)`` ``[B, T]`` (differentiable when grad is on)."""
        from textgan_envs.sampling import sequence_log_probs

        return sequence_log_probs(self, tokens, temperature=temperature)


class GeneratorStart:
    """The :class:`~agents.policies.LSTMPolicy` a :class:`GeneratorPolicy` starts from.

    Why: SB3 pickles ``policy_kwargs`` into the saved zip and restores the trained weights
    from its own state dict, so a module in the kwargs would be stored twice (its start
    weights in the zip's data, on the device it was on, which a machine without that
    device cannot unpickle). This holder pickles as the generator's :meth:`config` only;
    unpickled (``PPO.load``) it builds a freshly initialised generator of that shape, whose
    weights SB3 then overwrites with the saved ones.
    """

    def __init__(self, generator: Any) -> None:
        from agents.policies import LSTMPolicy

        if isinstance(generator, GeneratorStart):
            generator = generator.module()
        if not isinstance(generator, LSTMPolicy):
            raise TypeError(
                f"expected an agents.policies.LSTMPolicy, got {type(generator).__name__}"
            )
        self.config: dict[str, Any] = generator.config()
        self._module: Any = generator

    def module(self) -> Any:
        """The generator given, or (after unpickling) a fresh one of the same config, on CPU."""
        if self._module is None:
            from agents.policies import LSTMPolicy

            self._module = LSTMPolicy(**self.config, device="cpu")
        return self._module

    def __getstate__(self) -> dict[str, Any]:
        return {"config": dict(self.config)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.config = dict(state["config"])
        self._module = None

    def __eq__(self, other: object) -> bool:  # SB3's load compares given and stored kwargs
        return isinstance(other, GeneratorStart) and other.config == self.config

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.config.items())))

    def __repr__(self) -> str:
        return f"GeneratorStart(LSTMPolicy{self.config})"


def generator_policy_kwargs(
    generator: Any, detach_value: bool = True, **extra: Any
) -> dict[str, Any]:
    """``policy_kwargs`` for :class:`GeneratorPolicy` starting from ``generator`` (an ``LSTMPolicy``).

    Prefer it to ``{"generator": generator}``: both give the same policy, but this one keeps
    the generator's weights out of the zip's pickled kwargs (see :class:`GeneratorStart`).
    """
    return {"generator": GeneratorStart(generator), "detach_value": detach_value, **extra}


def prefix_hidden(generator: Any, observations: Tensor) -> Tensor:
    """The generator's LSTM output ``h [B, H]`` after reading each observation's prefix.

    ``observations [B, T + 1]`` are the env's (tokens written so far, ``V`` in the empty
    slots, then the position ``p``); the LSTM reads ``start, y_1 .. y_p`` exactly as in
    :meth:`LSTMPolicy.teacher_forced_logits`, so ``generator.head(h)`` are the logits of
    ``y_{p+1}``. Empty slots become ``start_token`` before embedding: the LSTM is causal,
    so they never reach the output at ``p``. Only the first ``max(p) + 1`` inputs are run.
    """
    ids = observations.long()
    seq_len = ids.shape[1] - 1
    position = ids[:, seq_len]
    length = int(position.max()) + 1 if len(ids) else 1  # inputs: start, then up to max(p) tokens
    tokens = ids[:, : length - 1]
    written = torch.arange(length - 1, device=ids.device) < position.unsqueeze(1)
    start = generator.start_token
    tokens = torch.where(written, tokens, torch.full_like(tokens, start))
    inputs = torch.cat([torch.full_like(ids[:, :1], start), tokens], dim=1)  # [B, length]
    hidden, _ = generator.lstm(generator.embedding(inputs))  # [B, length, H]
    return hidden[torch.arange(len(ids), device=ids.device), position]


class GeneratorFeatures(BaseFeaturesExtractor):
    """SB3 features extractor holding the generator: the LSTM hidden state after the prefix.

    The actor's ``action_net`` is the generator's own output layer and the critic's value
    head reads the same hidden state (SB3's ``share_features_extractor=True``). Holds a
    copy of the generator: the one passed in is left as it was (the pretrained start), the
    trained one is ``model.policy.generator``.
    """

    def __init__(self, observation_space: gym.spaces.Box, generator: Any) -> None:
        module = GeneratorStart(generator).module()
        super().__init__(observation_space, module.hidden_dim)
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise ValueError(
                f"expected a textgan observation Box of shape (T+1,), got {observation_space}"
            )
        seq_len = int(observation_space.shape[0]) - 1
        vocab_size = int(observation_space.high[0])
        if (vocab_size, seq_len) != (module.vocab_size, module.seq_len):
            raise ValueError(
                f"the env's observations are for V={vocab_size}, T={seq_len} but the generator "
                f"has vocab_size={module.vocab_size}, seq_len={module.seq_len}"
            )
        self.seq_len, self.vocab_size = seq_len, vocab_size
        high = torch.full((seq_len + 1,), float(vocab_size))
        high[-1] = seq_len
        self.register_buffer("_high", high, persistent=False)
        self.generator = copy.deepcopy(module).cpu()
        for param in self.generator.parameters():
            param.grad = None

    def check_ids(self, observations: Tensor) -> None:
        """``ValueError`` for entries that are not ids/positions, or empty slots before the position."""
        check_token_ids(observations, self._high, type(self).__name__)
        position = observations[:, self.seq_len].unsqueeze(1)
        slots = torch.arange(self.seq_len, device=observations.device)
        empty = (observations[:, : self.seq_len] == self.vocab_size) & (slots < position)
        if bool(empty.any()):
            row, col = (int(i) for i in empty.nonzero()[0])
            raise ValueError(
                f"{type(self).__name__}: observation [{row}] has position "
                f"{int(position[row, 0])} but slot {col} is empty ({self.vocab_size}): not a "
                "textgan observation (tokens written so far, then the position)"
            )

    def forward(self, observations: Tensor) -> Tensor:
        self.check_ids(observations)
        return prefix_hidden(self.generator, observations)


class _SharedHidden(nn.Module):
    """SB3's ``mlp_extractor`` slot: no layers; the critic's input is detached if asked."""

    def __init__(self, hidden_dim: int, detach_value: bool) -> None:
        super().__init__()
        self.latent_dim_pi = self.latent_dim_vf = hidden_dim
        self.detach_value = detach_value

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: Tensor) -> Tensor:
        return features

    def forward_critic(self, features: Tensor) -> Tensor:
        return features.detach() if self.detach_value else features


_FIXED_KWARGS = (
    "net_arch",
    "features_extractor_class",
    "features_extractor_kwargs",
    "share_features_extractor",
    "ortho_init",
    "activation_fn",
)


class _GeneratorActorCritic:
    """What :class:`GeneratorPolicy` and :class:`MaskableGeneratorPolicy` share."""

    detach_value: bool
    features_extractor: GeneratorFeatures
    mlp_extractor: nn.Module
    action_net: nn.Module
    value_net: nn.Module
    action_space: gym.spaces.Space
    optimizer_class: type[torch.optim.Optimizer]
    optimizer_kwargs: dict[str, Any]

    @staticmethod
    def _parent_kwargs(
        action_space: gym.spaces.Space, generator: Any, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        if generator is None:
            raise TypeError("GeneratorPolicy needs policy_kwargs={'generator': LSTMPolicy}")
        given = sorted(k for k in _FIXED_KWARGS if k in kwargs)
        if given:
            raise ValueError(
                f"GeneratorPolicy fixes {', '.join(given)} (the actor is the generator, the "
                "critic a linear head on its hidden state); do not pass them"
            )
        if not isinstance(action_space, gym.spaces.Discrete):
            raise ValueError(f"expected a Discrete token action space, got {action_space}")
        start = GeneratorStart(generator)
        if int(action_space.n) != start.config["vocab_size"]:
            raise ValueError(
                f"the env has {int(action_space.n)} actions but the generator "
                f"{start.config['vocab_size']} tokens"
            )
        return {
            **kwargs,
            "net_arch": [],
            "ortho_init": False,  # _build never applies it: it would overwrite the generator
            "features_extractor_class": GeneratorFeatures,
            "features_extractor_kwargs": {"generator": generator},
            "share_features_extractor": True,
        }

    @property
    def generator(self) -> Any:
        """The policy's own :class:`~agents.policies.LSTMPolicy` (trained in place by ``learn``)."""
        return self.features_extractor.generator

    def _build_mlp_extractor(self) -> None:
        self.mlp_extractor = _SharedHidden(self.generator.hidden_dim, self.detach_value)

    def _build(self, lr_schedule: Any) -> None:
        self._build_mlp_extractor()
        self.action_net = self.generator.head  # the actor's logits are the generator's
        self.value_net = nn.Linear(self.generator.hidden_dim, 1)
        nn.init.orthogonal_(self.value_net.weight, gain=1.0)  # SB3's init for the value head
        nn.init.zeros_(self.value_net.bias)
        self.optimizer = self.optimizer_class(
            self.parameters(),  # type: ignore[attr-defined]
            lr=lr_schedule(1),
            **self.optimizer_kwargs,
        )

    def _generator_constructor_parameters(self, data: dict[str, Any]) -> dict[str, Any]:
        for key in _FIXED_KWARGS:
            data.pop(key, None)
        data.update(generator=GeneratorStart(self.generator), detach_value=self.detach_value)
        return data


class GeneratorPolicy(_GeneratorActorCritic, ActorCriticPolicy):
    """SB3 actor-critic policy whose actor is our :class:`~agents.policies.LSTMPolicy`.

    For an observation (the prefix ``y_1 .. y_p`` and its position ``p``) the action
    distribution is the generator's next-token distribution ``p(y_{p+1} | y_1 .. y_p)``,
    the one :meth:`LSTMPolicy.teacher_forced_logits` gives, so PPO / A2C can start from an
    MLE-pretrained generator instead of from scratch. Pass it as
    ``policy_kwargs=generator_policy_kwargs(generator)`` (or ``{"generator": generator}``).

    Value head: one linear layer on the same LSTM hidden state (the LSTM is shared, like
    SB3's ``share_features_extractor=True``). With ``detach_value=True`` (default) the
    value loss does not reach the LSTM: a freshly initialised critic's errors would
    otherwise move the pretrained generator, and with it the actor's distribution, before
    any reward has said anything; the generator then changes only by the policy-gradient
    (and entropy) terms, as in our own agents. ``detach_value=False`` lets the critic
    shape the shared features, SB3's usual behaviour.

    Cost: the observation carries no recurrent state, so every call re-reads the prefix,
    ``O(T)`` LSTM steps per observation (``O(T^2)`` per episode instead of ``O(T)``):
    fine for ``T = 20`` (at ``V = 5000``, ``T = 20`` a PPO rollout and update took as long as
    with :func:`token_policy_kwargs`' MLP: the ``V``-way output layer dominates); for much
    longer sequences our own agents' recurrent step is the better fit.
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        lr_schedule: Any,
        generator: Any = None,
        detach_value: bool = True,
        **kwargs: Any,
    ) -> None:
        self.detach_value = bool(detach_value)
        parent = self._parent_kwargs(action_space, generator, kwargs)
        super().__init__(observation_space, action_space, lr_schedule, **parent)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return self._generator_constructor_parameters(super()._get_constructor_parameters())


try:
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
except ImportError:  # sb3-contrib is optional
    MaskableActorCriticPolicy = None  # type: ignore[assignment,misc]

if MaskableActorCriticPolicy is not None:

    class MaskableGeneratorPolicy(_GeneratorActorCritic, MaskableActorCriticPolicy):
        """:class:`GeneratorPolicy` for sb3-contrib's ``MaskablePPO`` (e.g. on the corpus env).

        The masked distribution is the generator's, renormalised over the allowed tokens.
        """

        def __init__(
            self,
            observation_space: gym.spaces.Space,
            action_space: gym.spaces.Space,
            lr_schedule: Any,
            generator: Any = None,
            detach_value: bool = True,
            **kwargs: Any,
        ) -> None:
            self.detach_value = bool(detach_value)
            parent = self._parent_kwargs(action_space, generator, kwargs)
            super().__init__(observation_space, action_space, lr_schedule, **parent)

        def _get_constructor_parameters(self) -> dict[str, Any]:
            return self._generator_constructor_parameters(super()._get_constructor_parameters())
