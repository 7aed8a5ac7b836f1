"""Building, scoring and training discriminators: one routine for every architecture.

A "discriminator" anywhere in the package is either an ``nn.Module`` or any
callable mapping ``LongTensor[B, T]`` to logits ``[B]`` (a fixed scoring
function in tests). Modules are scored in eval mode (no dropout) so rewards are
deterministic, and their train/eval flag is restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textgan_envs.discriminators.bf16_weights import ShadowedAdam
from textgan_envs.discriminators.cnn import CNNDiscriminator
from textgan_envs.discriminators.lstm import LSTMDiscriminator

Discriminator = nn.Module | Callable[[Tensor], Tensor]

DISCRIMINATOR_KINDS: dict[str, type[nn.Module]] = {
    "cnn": CNNDiscriminator,
    "lstm": LSTMDiscriminator,
}


def build_discriminator(
    kind: str,
    vocab_size: int,
    seq_len: int,
    seed: int | None = 0,
    device: str | torch.device = "cpu",
    **kwargs,
) -> nn.Module:
    """A fresh ``"cnn"`` (SeqGAN) or ``"lstm"`` discriminator, initialised from ``seed``.

    The seed is applied inside ``torch.random.fork_rng`` so building a
    discriminator never moves the caller's global RNG.
    """
    if kind not in DISCRIMINATOR_KINDS:
        raise ValueError(
            f"unknown discriminator kind {kind!r}; choose one of {sorted(DISCRIMINATOR_KINDS)}"
        )
    cls = DISCRIMINATOR_KINDS[kind]
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(int(seed))
        return cls(vocab_size, seq_len, device=device, **kwargs)


def discriminator_device(disc: Discriminator, default: torch.device | None = None) -> torch.device:
    """Where ``disc`` lives: its ``device`` attribute, its first parameter, or ``default``/CPU."""
    dev = getattr(disc, "device", None)
    if isinstance(dev, torch.device):
        return dev
    if isinstance(disc, nn.Module):
        for p in disc.parameters():
            return p.device
    return default if default is not None else torch.device("cpu")


@torch.no_grad()
def eval_logits(disc: Discriminator, tokens: Tensor) -> Tensor:
    """Logits ``[B]`` of ``disc`` on ``tokens`` in eval mode; a module's mode is restored after.

    Raises ``ValueError`` if the discriminator returns anything but one finite-shaped logit per row.
    """
    was_training = isinstance(disc, nn.Module) and disc.training
    if was_training:
        disc.eval()
    try:
        logits = disc(tokens)
    finally:
        if was_training:
            disc.train()
    logits = torch.as_tensor(logits)
    if logits.shape != (tokens.shape[0],):
        raise ValueError(
            f"discriminator must return logits of shape [{tokens.shape[0]}], got {tuple(logits.shape)}"
        )
    return logits.float()


def make_discriminator_optimizer(disc: nn.Module, lr: float | None = None) -> torch.optim.Optimizer:
    """Adam with the architecture's default learning rate (1e-4 for SeqGAN's CNN).

    The fused implementation where this PyTorch has one for the parameters' device (CPU
    since torch 2.4, CUDA): the same update in one pass over each parameter instead of about
    ten, which was a third of a SeqGAN CNN step on CPU. Elsewhere PyTorch's default Adam.
    For a module whose training GEMMs read bfloat16 weight shadows (``shadowed_weights()``,
    SeqGAN's CNN in bfloat16 on CPU), a :class:`~textgan_envs.discriminators.bf16_weights.ShadowedAdam`:
    the same update, which also keeps the shadows current.
    """
    params = list(disc.parameters())
    lr = lr if lr is not None else getattr(disc, "default_lr", 1e-4)
    shadowed = getattr(disc, "shadowed_weights", lambda: [])()
    if shadowed:
        optimizer = ShadowedAdam(params, shadowed, lr=lr)
        optimizer.register_load_state_dict_pre_hook(_keep_fused)
        return optimizer
    try:
        optimizer = torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/dtype
        return torch.optim.Adam(params, lr=lr)
    optimizer.register_load_state_dict_pre_hook(_keep_fused)
    return optimizer


def _keep_fused(optimizer: torch.optim.Optimizer, state_dict: dict) -> dict:
    """Loading a state saved by a non-fused Adam keeps the fused kernel (same semantics).

    ``Optimizer.load_state_dict`` takes every group setting from the saved state, ``fused``
    included, so an older checkpoint would otherwise switch a resumed run to the slow loop.
    """
    groups = [{**group, "fused": True, "foreach": None} for group in state_dict["param_groups"]]
    return {**state_dict, "param_groups": groups}


def _balanced(
    real: Tensor, fake: Tensor, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """Subsample the larger set so both classes have the same count (randomly, with ``generator``)."""
    n = min(len(real), len(fake))

    def pick(x: Tensor) -> Tensor:
        if len(x) == n:
            return x
        idx = torch.randperm(
            len(x), generator=generator, device=generator.device if generator else "cpu"
        )
        return x[idx[:n].to(x.device)]

    return pick(real), pick(fake)


def _check_batches(disc: Discriminator, real: Tensor, fake: Tensor) -> None:
    for name, x in (("real", real), ("fake", fake)):
        if not isinstance(x, Tensor) or x.dim() != 2 or x.dtype != torch.long:
            desc = f"{x.dtype} {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"{name} must be a LongTensor [N, T], got {desc}")
        if len(x) == 0:
            raise ValueError(f"{name} is empty")
    if real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"real and fake sequence lengths differ: {real.shape[1]} vs {fake.shape[1]}"
        )
    vocab = getattr(disc, "vocab_size", None)
    if vocab is not None:
        for name, x in (("real", real), ("fake", fake)):
            if int(x.min()) < 0 or int(x.max()) >= vocab:
                raise ValueError(
                    f"{name} token ids span [{int(x.min())}, {int(x.max())}], outside the "
                    f"discriminator's vocabulary [0, {vocab})"
                )


def train_discriminator(
    disc: nn.Module,
    optimizer: torch.optim.Optimizer,
    real: Tensor,
    fake: Tensor,
    epochs: int = 1,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Train ``disc`` to output 1 on ``real`` and 0 on ``fake`` (``LongTensor[N, T]`` each).

    Classes are balanced by subsampling the larger set, then shuffled together
    every epoch (with ``generator``, a CPU ``torch.Generator``, for
    reproducibility). Loss is binary cross-entropy on the logits plus the
    module's ``regularization()`` (SeqGAN's output-layer L2). Returns the mean
    loss and accuracy over the last epoch. The module is left in eval mode.
    """
    _check_batches(disc, real, fake)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs}, {batch_size}")
    device = discriminator_device(disc)
    real, fake = _balanced(real, fake, generator)
    x = torch.cat([real, fake]).to(device)
    y = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))]).to(device)
    regularization = getattr(disc, "regularization", None)
    disc.train()
    loss_sum = correct = 0.0
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device)
        for start in range(0, len(x), batch_size):
            idx = order[start : start + batch_size]
            logits = disc(x[idx])
            loss = F.binary_cross_entropy_with_logits(logits, y[idx])
            if regularization is not None:
                loss = loss + regularization()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
            correct += ((logits.detach() > 0).float() == y[idx]).sum()
    disc.eval()
    return {"loss": float(loss_sum) / len(x), "accuracy": float(correct) / len(x)}


@torch.no_grad()
def discriminator_accuracy(disc: Discriminator, real: Tensor, fake: Tensor) -> float:
    """Balanced accuracy (mean of the real and fake hit rates) of ``logit > 0`` meaning real."""
    _check_batches(disc, real, fake)
    device = discriminator_device(disc)
    hit_real = (eval_logits(disc, real.to(device)) > 0).float().mean()
    hit_fake = (eval_logits(disc, fake.to(device)) <= 0).float().mean()
    return float((hit_real + hit_fake) / 2)
