"""BEGAN training throughput: our trainer vs a plain reference loop, same networks and losses.

The reference is the straightforward implementation: separate D passes on x and on G(z)
(with G's graph kept), ``.item()`` every step for k_t and M_global, default memory format,
single-tensor (unfused, non-foreach) Adam, D's weight gradients computed in the G step.
Variants are timed round-robin in one process so machine load hits all of them alike.

    python benchmarks/began.py --image-size 32 --num-filters 32 --steps 20 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from image_samplers.began.config import BEGANConfig
from image_samplers.began.losses import autoencoder_loss
from image_samplers.began.model import Discriminator, Generator
from image_samplers.began.train import BEGANTrainer
from image_samplers.data import ImageDataset


class ReferenceBEGAN:
    """The textbook loop, kept deliberately plain."""

    def __init__(self, config: BEGANConfig, images: torch.Tensor) -> None:
        torch.manual_seed(config.seed)
        self.cfg = config
        self.G, self.D = Generator(config), Discriminator(config)
        adam = {"lr": config.lr, "betas": (config.beta1, config.beta2), "foreach": False}
        self.opt_g = torch.optim.Adam(self.G.parameters(), **adam)
        self.opt_d = torch.optim.Adam(self.D.parameters(), **adam)
        self.images, self.k, self.i = images, 0.0, 0

    def train_step(self) -> None:
        cfg, b = self.cfg, self.cfg.batch_size
        if self.i + b > len(self.images):
            self.i = 0
        x = self.images[self.i : self.i + b]
        self.i += b
        fake = self.G(torch.rand(b, cfg.z_dim) * 2 - 1)
        loss_real = autoencoder_loss(x, self.D(x))
        loss_fake_d = autoencoder_loss(fake.detach(), self.D(fake.detach()))
        self.opt_d.zero_grad()
        (loss_real - self.k * loss_fake_d).backward()
        self.opt_d.step()
        fake_g = self.G(torch.rand(b, cfg.z_dim) * 2 - 1)
        loss_fake = autoencoder_loss(fake_g, self.D(fake_g))
        self.opt_g.zero_grad()
        loss_fake.backward()
        self.opt_g.step()
        balance = cfg.gamma * loss_real.item() - loss_fake.item()
        self.k = min(max(self.k + cfg.lambda_k * balance, 0.0), 1.0)
        self.m_global = loss_real.item() + abs(balance)


def _time(step: Callable[[], None], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--num-filters", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cfg = BEGANConfig(
        image_size=args.image_size, num_filters=args.num_filters, batch_size=args.batch_size
    )
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(2048, 1, cfg.image_size, cfg.image_size, generator=gen) * 2 - 1
    dataset = ImageDataset(images, torch.zeros(2048, dtype=torch.long), 10)

    variants: dict[str, Callable[[], None]] = {
        "reference (plain loop)": ReferenceBEGAN(cfg, images).train_step,
        "ours, contiguous": BEGANTrainer(
            BEGANConfig(**{**cfg.to_dict(), "channels_last": False}), device="cpu", dataset=dataset
        ).train_step,
        "ours, channels-last": BEGANTrainer(
            BEGANConfig(**{**cfg.to_dict(), "channels_last": True}), device="cpu", dataset=dataset
        ).train_step,
    }
    if args.compile:
        variants["ours, contiguous + compile"] = BEGANTrainer(
            BEGANConfig(**{**cfg.to_dict(), "channels_last": False, "compile": True}),
            device="cpu",
            dataset=dataset,
        ).train_step
    for step in variants.values():
        _time(step, args.warmup)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, step in variants.items():
            rates[name].append(args.steps * cfg.batch_size / _time(step, args.steps))

    ref = statistics.median(rates["reference (plain loop)"])
    print(
        f"BEGAN {cfg.image_size}x{cfg.image_size}, n={cfg.num_filters}, batch {cfg.batch_size}, "
        f"{args.threads} threads, {args.steps} steps x {args.repeats} repeats (median)"
    )
    print(f"{'variant':<32} {'images/s':>10} {'vs reference':>13}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:<32} {median:>10.1f} {median / ref:>12.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
