"""The BEGAN training loop: one D step, one G step, then the k_t controller; resumable bit for bit.

Why it is shaped like this:
- No host syncs per step: k_t stays a device tensor, losses are summed on the device and
  read back (one ``.tolist()``) only every ``log_every`` steps.
- The discriminator step runs D once on ``cat(x, G(z_D))`` with G under ``no_grad``;
  the generator step freezes D's weights so only input gradients flow through it.
- Channels-last activations and fused (or foreach) Adam where the build supports them.
- Exact resume, on the run layer every trainer shares (:mod:`agents.runtime`): the run
  directory's ``config.json`` holds the config, its checkpoint both networks, both
  optimisers, the z generator's state, the global RNG states and the small state (k_t, the
  open log window, the data cursor epoch/position); every epoch's order is a pure function
  of (seed, epoch).
- Data parallel (torchrun, see :mod:`agents.runtime.distributed`): ``batch_size`` is per rank; every
  rank walks the same epoch order in global batches of ``batch_size * world_size`` and takes
  its own slice, draws z from its own sharded seed, and runs G and D through DDP (gradients
  averaged, so W ranks equal one process on the concatenated batch). The losses are
  all-reduced before the k_t update, so every rank keeps the same k_t. Rank 0 alone logs,
  writes samples and checkpoints; the checkpoint holds every rank's z-generator state.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from agents.runtime import (
    CHECKPOINT_NAME,
    RESUMABLE_CHANGES,
    CheckpointError,
    DistContext,
    RunState,
    all_reduce_mean,
    atomic_save,
    load_checkpoint,
    lock_run_dir,
    main_logger,
    prepare_run_dir,
    progress_bar,
    read_run_config,
    release_run_dir,
    resume_or_start,
    save_run_checkpoint,
    seed_stream,
    shard_seed,
    step_seed,
    wrap_ddp,
)
from image_samplers.began.config import BEGANConfig
from image_samplers.began.losses import (
    autoencoder_loss,
    convergence_measure,
    discriminator_loss,
    generator_loss,
    update_k,
)
from image_samplers.began.model import Discriminator, Generator, sample_z
from image_samplers.data import ImageDataset, load_dataset, save_image_grid
from textgan_envs.device import resolve_device

AGENT = "began"
CHECKPOINT = CHECKPOINT_NAME
LOG_KEYS = ("loss_real", "loss_fake", "loss_d_fake", "k", "m_global")
# A resumed run may go on longer: ``steps`` changes when it stops, not what it computes.
RESUMABLE = RESUMABLE_CHANGES | {"steps"}


def make_adam(params: Any, config: BEGANConfig, device: torch.device) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch build has it for ``device``, else foreach."""
    kwargs: dict[str, Any] = {"lr": config.lr, "betas": (config.beta1, config.beta2)}
    if "fused" in inspect.signature(torch.optim.Adam).parameters:
        try:
            return torch.optim.Adam(params, fused=True, **kwargs)
        except (RuntimeError, ValueError):
            pass
    return torch.optim.Adam(params, foreach=True, **kwargs)


def epoch_order(num_images: int, seed: int, epoch: int) -> torch.Tensor:
    """The data order of one epoch: a pure function of (seed, epoch), so resume needs no RNG state."""
    gen = torch.Generator().manual_seed(step_seed(seed, epoch))
    return torch.randperm(num_images, generator=gen)


class BEGANTrainer:
    """Owns the networks, optimisers, k_t and data cursor; ``train()`` runs to ``config.steps``.

    With ``out_dir`` the trainer owns a run directory: it writes ``config.json`` and the step-0
    checkpoint, or (``resume``) continues the checkpoint there; without one it keeps nothing.
    """

    def __init__(
        self,
        config: BEGANConfig,
        out_dir: str | Path | None = None,
        device: str | torch.device = "auto",
        dataset: ImageDataset | None = None,
        ctx: DistContext | None = None,
        resume: bool = False,
    ) -> None:
        self.config = config
        self.ctx = ctx if ctx is not None else DistContext(device=resolve_device(device))
        self.device = self.ctx.device if self.ctx.distributed else resolve_device(device)
        self.out_dir = Path(out_dir) if out_dir is not None else None
        dataset = dataset if dataset is not None else load_dataset(config.data, config.image_size)
        if dataset.image_size != config.image_size or dataset.images.shape[1] != config.channels:
            raise ValueError(
                f"dataset images are {tuple(dataset.images.shape[1:])}, config wants "
                f"({config.channels}, {config.image_size}, {config.image_size})"
            )
        self.global_batch = config.batch_size * self.ctx.world_size
        if len(dataset) < self.global_batch:
            raise ValueError(
                f"dataset has {len(dataset)} images, fewer than one global batch "
                f"({config.batch_size} x {self.ctx.world_size} ranks)"
            )
        channels_last = config.channels_last
        if channels_last is None:
            channels_last = self.device.type == "cuda"
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.images = dataset.images.to(self.device).contiguous(memory_format=self.memory_format)

        torch.manual_seed(seed_stream(config.seed, "began.init"))
        self.generator = Generator(config).to(self.device, memory_format=self.memory_format)
        self.discriminator = Discriminator(config).to(self.device, memory_format=self.memory_format)
        self.opt_g = make_adam(self.generator.parameters(), config, self.device)
        self.opt_d = make_adam(self.discriminator.parameters(), config, self.device)
        # _g and _d carry gradients to the other ranks (DDP); _d_frozen is D without DDP, used
        # in the G step where D's weights get no gradient (DDP would wait for them forever).
        g_net: nn.Module = self.generator
        d_net: nn.Module = self.discriminator
        if config.compile:
            g_net = torch.compile(self.generator)  # type: ignore[assignment]
            d_net = torch.compile(self.discriminator)  # type: ignore[assignment]
        self._d_frozen: Callable[[torch.Tensor], torch.Tensor] = d_net
        self._g: Callable[[torch.Tensor], torch.Tensor] = wrap_ddp(g_net, self.ctx)
        self._d: Callable[[torch.Tensor], torch.Tensor] = wrap_ddp(d_net, self.ctx)

        self.k = torch.zeros((), device=self.device)
        self.step = 0
        z_seed = shard_seed(seed_stream(config.seed, "began.z"), self.ctx.rank)
        self.z_rng = torch.Generator(device=self.device).manual_seed(z_seed)
        fixed = torch.Generator().manual_seed(seed_stream(config.seed, "began.fixed_z"))
        self.fixed_z = sample_z(64, config.z_dim, fixed).to(self.device)
        self.epoch = 0
        self.position = 0
        self._order = epoch_order(len(dataset), config.seed, 0).to(self.device)
        self._sums = torch.zeros(len(LOG_KEYS), device=self.device)
        self._window = 0
        if self.out_dir is not None:
            prepare_run_dir(
                self.out_dir,
                config,
                AGENT,
                resume,
                resumable=RESUMABLE,
                total_steps=config.steps,
                length_key="steps",
            )
            try:
                modules, optimizers, generators = self._checkpointed()
                state, resumed = resume_or_start(
                    self.out_dir,
                    resume,
                    modules,
                    optimizers,
                    generators,
                    AGENT,
                    self.device,
                    **self._small_state(),
                    keep=config.keep_checkpoints,
                )
            except BaseException:
                release_run_dir(self.out_dir)
                raise
            if resumed:
                self._restore(state)

    # ----------------------------------------------------------------- data
    def _next_batch(self) -> torch.Tensor:
        """This rank's slice of the next global batch (the cursor is the same on every rank)."""
        batch = self.global_batch
        if self.position + batch > self.images.shape[0]:
            self.epoch += 1
            self.position = 0
            self._order = epoch_order(self.images.shape[0], self.config.seed, self.epoch)
            self._order = self._order.to(self.device)
        start = self.position + self.ctx.rank * self.config.batch_size
        index = self._order[start : start + self.config.batch_size]
        self.position += batch
        return self.images[index]

    def _draw_z(self, n: int) -> torch.Tensor:
        """This rank's z ~ U(-1, 1) from its own (sharded) stream."""
        return sample_z(n, self.config.z_dim, self.z_rng, self.device)

    # ----------------------------------------------------------------- one step
    def train_step(self) -> None:
        """One discriminator update, one generator update, then k_{t+1}; no host sync."""
        cfg = self.config
        if cfg.lr_halve_every and self.step % cfg.lr_halve_every == 0:
            for opt in (self.opt_g, self.opt_d):
                for group in opt.param_groups:
                    group["lr"] = cfg.lr_at(self.step)
        x = self._next_batch()
        batch = x.shape[0]
        z_d = self._draw_z(batch)
        z_g = self._draw_z(batch)

        # Discriminator: L_D = L(x) - k_t L(G(z_D)); G gets no gradient here.
        with torch.no_grad():
            fake_d = self._g(z_d)
        both = torch.cat([x, fake_d]).contiguous(memory_format=self.memory_format)
        recon = self._d(both)
        loss_real = autoencoder_loss(x, recon[:batch])
        loss_d_fake = autoencoder_loss(fake_d, recon[batch:])
        self.opt_d.zero_grad(set_to_none=True)
        discriminator_loss(loss_real, loss_d_fake, self.k).backward()
        self.opt_d.step()

        # Generator: L_G = L(G(z_G)) through the updated, frozen D.
        self.discriminator.requires_grad_(False)
        fake_g = self._g(z_g)
        loss_fake = autoencoder_loss(fake_g, self._d_frozen(fake_g))
        self.opt_g.zero_grad(set_to_none=True)
        generator_loss(loss_fake).backward()
        self.opt_g.step()
        self.discriminator.requires_grad_(True)

        # The controller sees the mean over ranks (= the loss on the concatenated batch), so
        # every rank computes the same k_t; alone this is the identity.
        losses = torch.stack([loss_real.detach(), loss_fake.detach(), loss_d_fake.detach()])
        loss_real, loss_fake, loss_d_fake = all_reduce_mean(losses, self.ctx).unbind()
        self.k = update_k(self.k, loss_real, loss_fake, cfg.gamma, cfg.lambda_k)
        m_global = convergence_measure(loss_real, loss_fake, cfg.gamma)
        self._sums += torch.stack([loss_real, loss_fake, loss_d_fake, self.k, m_global])
        self._window += 1
        self.step += 1

    def pop_window(self) -> dict[str, float]:
        """Means of the logged quantities since the last call (one host sync); k is the latest."""
        values = (self._sums / max(self._window, 1)).tolist()
        out = dict(zip(LOG_KEYS, values, strict=True))
        out["k"] = float(self.k)
        out["lr"] = self.config.lr_at(max(self.step - 1, 0))
        self._sums.zero_()
        self._window = 0
        return out

    # ----------------------------------------------------------------- run
    def train(
        self,
        stop_at: int | None = None,
        progress: bool = True,
        tensorboard: bool = True,
    ) -> dict[str, float]:
        """Train until ``stop_at`` (default ``config.steps``), logging, sampling and checkpointing.

        On KeyboardInterrupt the last completed step is checkpointed before re-raising.
        Returns the last logged window. The run directory stays locked while it trains (and
        from construction to the first call); the lock is released when it returns.
        """
        cfg = self.config
        end = cfg.steps if stop_at is None else min(stop_at, cfg.steps)
        logger = None
        main = self.ctx.is_main
        if self.out_dir is not None:
            if main:
                lock_run_dir(self.out_dir)  # held since construction, unless a call released it
            logger = main_logger(
                self.ctx,
                self.out_dir,
                "metrics",
                tensorboard=tensorboard,
                resume_from_step=self.step if self.step > 0 else None,
            )
        last: dict[str, float] = {}
        bar = progress_bar(end, self.step, progress and main, "BEGAN", unit="step")
        tick, tick_step = time.perf_counter(), self.step
        try:
            while self.step < end:
                self.train_step()
                step = self.step
                if step % cfg.log_every == 0 or step == cfg.steps:
                    last = self.pop_window()
                    now = time.perf_counter()
                    last["images_per_s"] = (
                        (step - tick_step) * self.global_batch / max(now - tick, 1e-9)
                    )
                    tick, tick_step = now, step
                    bar.set_postfix(M=f"{last['m_global']:.4f}", k=f"{last['k']:.4f}")
                    if logger is not None:
                        logger.log(step, last)
                bar.update(1)
                if self.out_dir is None:
                    continue
                if main and cfg.sample_every and step % cfg.sample_every == 0:
                    self.save_samples(self.out_dir / "samples" / f"step_{step:07d}.png")
                if main and cfg.snapshot_every and step % cfg.snapshot_every == 0:
                    self.save_snapshot(self.out_dir / "snapshots" / f"G_{step:07d}.pt")
                if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == end:
                    self.save()
        except KeyboardInterrupt:
            # Saving gathers every rank's state: a collective the other ranks may never join
            # once interrupted, so a data-parallel run keeps its last periodic checkpoint.
            if self.out_dir is not None and not self.ctx.distributed:
                self.save()
            raise
        finally:
            bar.close()
            if logger is not None:
                logger.close()
            if self.out_dir is not None:
                release_run_dir(self.out_dir)
        return last

    # ----------------------------------------------------------------- outputs
    @torch.no_grad()
    def save_samples(self, path: Path) -> Path:
        self.generator.eval()
        images = self.generator(self.fixed_z)
        self.generator.train()
        return save_image_grid(images, path, nrow=8)

    def save_snapshot(self, path: Path) -> Path:
        return atomic_save(
            {
                "config": self.config.to_dict(),
                "step": self.step,
                "generator": self.generator.state_dict(),
            },
            path,
        )

    # ----------------------------------------------------------------- checkpoints
    def _checkpointed(self) -> tuple[dict[str, nn.Module], dict[str, Any], dict[str, Any]]:
        """Modules, optimisers and random generators of the run checkpoint."""
        modules = {"generator": self.generator, "discriminator": self.discriminator}
        optimizers = {"generator": self.opt_g, "discriminator": self.opt_d}
        return modules, optimizers, {"z": self.z_rng}

    def _small_state(self) -> dict[str, dict[str, Any]]:
        """k_t, the open log window and the data cursor, as run-state scalars and tensors."""
        return {
            "scalars": {"epoch": self.epoch, "position": self.position, "window": self._window},
            "tensors": {"k": self.k, "sums": self._sums},
        }

    def _restore(self, state: RunState) -> None:
        """Continue from a loaded run state (the checkpointed objects are already restored)."""
        self.step = state.step
        self.k = state.tensors["k"].to(self.device)
        self._sums = state.tensors["sums"].to(self.device)
        self._window = int(state.scalars["window"])
        self.epoch = int(state.scalars["epoch"])
        self.position = int(state.scalars["position"])
        self._order = epoch_order(self.images.shape[0], self.config.seed, self.epoch)
        self._order = self._order.to(self.device)

    def save(self) -> Path | None:
        """Checkpoint the run into its directory (every rank must call it; rank 0 writes)."""
        if self.out_dir is None:
            raise ValueError("this trainer has no run directory to checkpoint into")
        state = RunState(self.step, **self._small_state())
        path = save_run_checkpoint(
            self.out_dir, state, *self._checkpointed(), AGENT, keep=self.config.keep_checkpoints
        )
        return path if self.ctx.is_main else None

    @classmethod
    def resume(
        cls,
        out_dir: str | Path,
        device: str | torch.device = "auto",
        dataset: ImageDataset | None = None,
        ctx: DistContext | None = None,
        **overrides: Any,
    ) -> BEGANTrainer:
        """Continue the run in ``out_dir`` with its own config; ``overrides`` may extend ``steps``."""
        saved = read_run_config(out_dir, agent=AGENT)
        saved.pop("agent")
        config = BEGANConfig.from_dict({**saved, **overrides})
        return cls(config, out_dir=out_dir, device=device, dataset=dataset, ctx=ctx, resume=True)


def load_generator(
    path: str | Path, device: str | torch.device = "auto"
) -> tuple[Generator, BEGANConfig, int]:
    """A generator (eval mode) from a run directory or a snapshot file ``snapshots/G_<step>.pt``.

    A run directory's checkpoint holds the networks, its ``config.json`` the config; a
    snapshot (and the checkpoint of a run from before the shared run format) holds both.
    """
    path = Path(path)
    run_dir = path if path.is_dir() else None
    state = load_checkpoint(path / CHECKPOINT if run_dir else path, required_keys=("step",))
    if run_dir is not None and "modules" in state:
        saved = read_run_config(run_dir, agent=AGENT)
        saved.pop("agent")
        config, weights = BEGANConfig.from_dict(saved), state["modules"]["generator"]
    else:
        missing = [k for k in ("config", "generator") if k not in state]
        if missing:
            raise CheckpointError(f"{path} lacks required entries: {', '.join(missing)}")
        config, weights = BEGANConfig.from_dict(state["config"]), state["generator"]
    generator = Generator(config)
    generator.load_state_dict(weights)
    return generator.to(resolve_device(device)).eval(), config, int(state["step"])


@torch.no_grad()
def generate(generator: nn.Module, n: int, seed: int = 0, batch_size: int = 500) -> torch.Tensor:
    """``n`` samples (on CPU) from seeded z ~ U(-1, 1)."""
    device = next(generator.parameters()).device
    z = sample_z(n, generator.z_dim, torch.Generator().manual_seed(seed))
    return torch.cat([generator(chunk.to(device)).cpu() for chunk in z.split(batch_size)])
