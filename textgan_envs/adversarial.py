"""Adversarial training of the reward: keep the discriminator a step ahead of the generator.

:class:`DiscriminatorTrainer` collects the sequences that finished episodes
produced and, every ``update_every`` episodes, runs SeqGAN's discriminator
phase: ``d_steps`` times, draw fresh real samples and as many generated ones,
then train ``epochs`` epochs on them. The generated ones are the most recent
episodes (or, with ``fake_sampler``, fresh samples from the current generator,
exactly as SeqGAN does). The discriminator is updated in place, so every env
holding it sees the new reward at once; between updates it is never touched,
which keeps episode rewards deterministic.

Our agents call :meth:`observe` with finished sequences; stable-baselines3
uses :class:`agents.sb3.DiscriminatorUpdateCallback`, which does the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from textgan_envs.discriminators import (
    discriminator_device,
    make_discriminator_optimizer,
    train_discriminator,
)


@dataclass
class AdversarialConfig:
    """Schedule of discriminator updates (defaults: SeqGAN's adversarial phase)."""

    update_every: int = 64
    """Finished episodes between two discriminator phases (the schedule's K)."""
    d_steps: int = 5
    """Fresh real/generated draws per phase (SeqGAN: 5)."""
    epochs: int = 3
    """Training epochs on each draw (SeqGAN: 3)."""
    n_samples: int | None = None
    """Sequences of each class per draw; ``None``: as many as the buffer holds."""
    batch_size: int = 64
    """Minibatch size of discriminator training (SeqGAN: 64)."""
    buffer_size: int = 10_000
    """Most recent generated sequences kept for training."""

    def __post_init__(self) -> None:
        for name in ("update_every", "d_steps", "epochs", "batch_size", "buffer_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_samples is not None and self.n_samples < 1:
            raise ValueError(f"n_samples must be >= 1 or None, got {self.n_samples}")


class DiscriminatorTrainer:
    """Collects generated sequences and updates a discriminator on a schedule.

    ``real_data`` is a source with ``sample(n, generator)`` (the env's
    ``real_data``) or a callable ``n -> LongTensor[n, T]``.
    """

    def __init__(
        self,
        discriminator: nn.Module,
        real_data: Any,
        config: AdversarialConfig | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        fake_sampler: Callable[[int], Tensor] | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(discriminator, nn.Module):
            raise TypeError(
                f"only an nn.Module discriminator can be trained, got {type(discriminator).__name__}"
            )
        if not (hasattr(real_data, "sample") or callable(real_data)):
            raise TypeError(
                "real_data must have sample(n, generator) or be a callable n -> LongTensor[n, T]"
            )
        self.discriminator = discriminator
        self.real_data = real_data
        self.config = config or AdversarialConfig()
        self.optimizer = optimizer or make_discriminator_optimizer(discriminator)
        self.fake_sampler = fake_sampler
        self.generator = torch.Generator().manual_seed(int(seed))
        self._buffer: Tensor | None = None
        self._filled = 0
        self._next = 0
        self.episodes_seen = 0
        self.episodes_since_update = 0
        self.updates = 0

    def _sample_real(self, n: int) -> Tensor:
        if hasattr(self.real_data, "sample"):
            device = getattr(getattr(self.real_data, "oracle", None), "device", torch.device("cpu"))
            gen = self.generator if torch.device(device).type == "cpu" else None
            return self.real_data.sample(n, generator=gen)
        return self.real_data(n)

    def observe(self, sequences: Tensor | np.ndarray) -> dict[str, float] | None:
        """Add finished sequences ``[k, T]``; run a discriminator phase when one is due.

        Returns that phase's statistics, or ``None`` if no update ran.
        """
        if self.add(sequences) and self.episodes_since_update >= self.config.update_every:
            return self.update()
        return None

    def add(self, sequences: Tensor | np.ndarray) -> int:
        """Store finished sequences ``[k, T]`` without updating (for callers with their own
        schedule, e.g. :class:`agents.sb3.DiscriminatorUpdateCallback`); returns ``k``."""
        seqs = torch.as_tensor(
            np.asarray(sequences) if not isinstance(sequences, Tensor) else sequences
        )
        if seqs.dim() == 1:
            seqs = seqs.unsqueeze(0)
        if seqs.dim() != 2 or seqs.dtype.is_floating_point:
            raise ValueError(
                f"sequences must be integer ids [k, T], got {seqs.dtype} {tuple(seqs.shape)}"
            )
        seqs = seqs.long().cpu()
        if len(seqs) == 0:
            return 0
        if self._buffer is None:
            self._buffer = torch.zeros((self.config.buffer_size, seqs.shape[1]), dtype=torch.long)
        elif seqs.shape[1] != self._buffer.shape[1]:
            raise ValueError(
                f"sequence length {seqs.shape[1]} differs from earlier {self._buffer.shape[1]}"
            )
        for row in seqs[-self.config.buffer_size :].split(self.config.buffer_size):
            idx = (torch.arange(len(row)) + self._next) % self.config.buffer_size
            self._buffer[idx] = row
            self._next = int((self._next + len(row)) % self.config.buffer_size)
            self._filled = min(self.config.buffer_size, self._filled + len(row))
        self.episodes_seen += len(seqs)
        self.episodes_since_update += len(seqs)
        return len(seqs)

    def _fakes(self, n: int, newest: int | None = None) -> Tensor:
        if self.fake_sampler is not None:
            return self.fake_sampler(n)
        assert self._buffer is not None
        window = self._filled if newest is None else max(1, min(int(newest), self._filled))
        idx = torch.randperm(window, generator=self.generator)[:n]
        if newest is not None:  # positions among the newest rows of the ring buffer
            idx = (self._next - window + idx) % self.config.buffer_size
        return self._buffer[idx]

    def update(
        self,
        d_steps: int | None = None,
        epochs: int | None = None,
        n_samples: int | None = None,
        newest: int | None = None,
    ) -> dict[str, float]:
        """One discriminator phase now (``d_steps`` draws x ``epochs`` epochs).

        Arguments left ``None`` come from the config, so a caller with its own schedule can
        size the phase without a second trainer. ``newest``: draw the generated sequences
        from the ``newest`` most recent ones only (the current generator's, as SeqGAN's
        fresh samples are), not from the whole buffer.
        """
        if self._filled == 0 and self.fake_sampler is None:
            raise RuntimeError("no generated sequences observed yet: nothing to train against")
        cfg = self.config
        d_steps = cfg.d_steps if d_steps is None else int(d_steps)
        epochs = cfg.epochs if epochs is None else int(epochs)
        n = n_samples or cfg.n_samples or self._filled
        device = discriminator_device(self.discriminator)
        stats: dict[str, float] = {}
        for _ in range(d_steps):
            fake = self._fakes(n, newest).to(device)
            real = self._sample_real(len(fake)).to(device)
            stats = train_discriminator(
                self.discriminator,
                self.optimizer,
                real,
                fake,
                epochs=epochs,
                batch_size=cfg.batch_size,
                generator=self.generator,
            )
        self.discriminator.eval()
        self.episodes_since_update = 0
        self.updates += 1
        return {**stats, "updates": float(self.updates)}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (discriminator, optimizer, counters, buffer, RNG)."""
        return {
            "discriminator": self.discriminator.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "config": asdict(self.config),
            "counters": torch.tensor(
                [
                    self.episodes_seen,
                    self.episodes_since_update,
                    self.updates,
                    self._filled,
                    self._next,
                ]
            ),
            "buffer": self._buffer
            if self._buffer is not None
            else torch.zeros((0, 0), dtype=torch.long),
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.config = AdversarialConfig(**state["config"])
        seen, since, updates, filled, nxt = (int(x) for x in state["counters"])
        self.episodes_seen, self.episodes_since_update, self.updates = seen, since, updates
        self._filled, self._next = filled, nxt
        self._buffer = state["buffer"] if state["buffer"].numel() else None
        self.generator.set_state(state["rng"])
