"""Training SeqGAN's CNN discriminator: ``train_discriminator`` vs a plain PyTorch loop, side by side.

Same data (``--sequences`` random sequences, half "real", half "fake", V=5,000, T=20), same
initial weights, batch 64, one process, ``--threads`` threads. The plain loop is what one
writes from the paper: one ``nn.Conv1d`` per filter width, ReLU, ``amax`` over time, highway,
dropout, ``torch.optim.Adam`` with its defaults (lr 1e-4) and the output layer's L2 in the loss.
Ours is ``train_discriminator(disc, make_discriminator_optimizer(disc), ...)``, with the
default float32 GEMMs and with the opt-in ``train_precision="bfloat16"`` (``--no-bf16`` skips
it; on a CPU without bfloat16 dot products it is emulated, ~12x slower than the plain loop on
an AVX2 EPYC, so it is skipped there unless ``--emulated-bf16`` asks for it; ``--cast-row``
adds it without its bfloat16 weight shadows, ``bf16_shadows=False``). ``--compile`` adds two
rows under ``torch.compile``: the plain model's loss (with fused Adam) and ``train_discriminator``
on a compiled model; each one's warm-up with its compilation is printed. ``--six-gemm-row``
adds ours on a copy whose highway weights do not share one tensor (six GEMMs, not three).

Printed: the epoch time of each variant (after a warm-up, ``--repeats`` rounds run
round-robin, median; and the median over rounds of the round's plain-to-variant ratio), the
per-part profile of a step (forward with loss, backward, optimiser step; median over
``--profile-steps`` steps), the achieved FLOP rate as a fraction of this
run's own fp32 GEMM rate (a 2048^3 matmul), with the CPU line, and the float32 floor: the
step's dense GEMMs timed alone at their own shapes (the twelve convolutions' forward, the
highway's six, or three on stacked weights through oneDNN), which no float32 implementation
built on this GEMM library beats, plus the measured optimiser step, as the largest speed-up
over the plain loop that float32 allows here.

The process starts as the ``textgan`` command does (``tune_process``: freed memory kept for
reuse, float32 denormals flushed in every thread, for both variants alike);
``--keep-denormals`` keeps IEEE denormals, under which Adam slows down as training goes on
on some CPUs (``textgan_envs/denormals.py``).

    .venv/bin/python benchmarks/discriminator_training.py [--threads 2] [--repeats 3] [--sequences 20000] [--gemm auto]
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textgan_envs.denormals import KEEP_DENORMALS_ENV, denormals_flushed
from textgan_envs.discriminators import (
    build_discriminator,
    make_discriminator_optimizer,
    train_discriminator,
)
from textgan_envs.discriminators.cnn import SEQGAN_FILTER_SIZES, SEQGAN_NUM_FILTERS
from textgan_envs.discriminators.cpu_gemm import (
    GEMM_LIBRARIES,
    GEMM_LIBRARY_ENV,
    gemm_library,
    gemm_library_set_to,
    onednn_linear,
    onednn_linear_available,
)
from textgan_envs.native_sampling import cpu_has_bf16_dot_products, cpu_summary
from textgan_envs.process_setup import tune_process

V, T, EMB, BATCH = 5000, 20, 64, 64
BF16 = "train_discriminator, bfloat16 GEMMs"
BF16_CAST = "bfloat16 GEMMs, highway weights rounded every step"
PLAIN_COMPILED = "plain model under torch.compile, fused Adam"
OURS_COMPILED = "train_discriminator, model under torch.compile"
SIX_GEMMS = "train_discriminator, highway as six GEMMs"


class PlainCNN(nn.Module):
    """SeqGAN's CNN written plainly; its state dict has the same keys as ``CNNDiscriminator``'s."""

    def __init__(self) -> None:
        super().__init__()
        total = sum(SEQGAN_NUM_FILTERS)
        self.embedding = nn.Embedding(V, EMB)
        self.convs = nn.ModuleList(
            nn.Conv1d(EMB, n, w)
            for w, n in zip(SEQGAN_FILTER_SIZES, SEQGAN_NUM_FILTERS, strict=True)
        )
        self.highway = nn.ModuleDict(
            {"transform": nn.Linear(total, total), "gate": nn.Linear(total, total)}
        )
        self.dropout = nn.Dropout(0.25)
        self.output = nn.Linear(total, 1)

    def forward(self, tokens: Tensor) -> Tensor:
        x = self.embedding(tokens).transpose(1, 2)
        x = torch.cat([F.relu(conv(x)).amax(dim=2) for conv in self.convs], dim=1)
        t = torch.sigmoid(self.highway["gate"](x))
        x = t * F.relu(self.highway["transform"](x)) + (1 - t) * x
        return self.output(self.dropout(x)).squeeze(1)

    def loss(self, tokens: Tensor, labels: Tensor) -> Tensor:
        l2 = 0.5 * (self.output.weight.pow(2).sum() + self.output.bias.pow(2).sum())
        return F.binary_cross_entropy_with_logits(self(tokens), labels) + 0.2 * l2


def plain_epoch(
    model: PlainCNN,
    opt: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    gen: torch.Generator,
    loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> None:
    """One shuffled epoch of the plain loop, batch 64 (``loss_fn``: ``model.loss`` or a compiled one)."""
    model.train()
    loss_fn = model.loss if loss_fn is None else loss_fn
    order = torch.randperm(len(x), generator=gen)
    for start in range(0, len(x), BATCH):
        idx = order[start : start + BATCH]
        loss = loss_fn(x[idx], y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def model_flops_per_sequence() -> float:
    """Multiply-adds x 2 of one forward: the convolutions at their valid positions and the highway."""
    conv = sum(
        (T - w + 1) * w * EMB * n
        for w, n in zip(SEQGAN_FILTER_SIZES, SEQGAN_NUM_FILTERS, strict=True)
    )
    total = sum(SEQGAN_NUM_FILTERS)
    return 2.0 * (conv + 2 * total * total + total)


def product(library: str) -> Callable[[Tensor, Tensor], Tensor]:
    """``a @ b`` through ``library`` (``"aten"``: ``torch.mm``; ``"onednn"``: its linear op)."""
    if library == "onednn":
        return lambda a, b: onednn_linear(a, b.t())
    return torch.mm


def gemm_gflops(library: str, n: int = 2048, repeats: int = 5) -> float:
    """This run's fp32 GEMM rate through ``library`` (median of ``repeats`` ``n^3`` products)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    mm = product(library)
    mm(a, b)
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        mm(a, b)
        runs.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(runs) / 1e9


def timed(fn: Callable[[], object], cold: bool, repeats: int = 15) -> float:
    """Fastest seconds of ``fn()`` over ``repeats`` calls after two warm-up calls (a floor: the
    fastest call is the one a neighbour on a shared host disturbed least); ``cold``: with the
    caches flushed (a 64 MB buffer rewritten, untimed) before each call, as after the
    optimiser's pass."""
    flush = torch.zeros(16 * 2**20) if cold else None
    fn(), fn()
    runs = []
    for _ in range(repeats):
        if flush is not None:
            flush.add_(1.0)
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return min(runs)


def gemm_floor(cold: bool, library: str) -> float:
    """Seconds of one float32 training step's dense GEMMs, each timed alone at its shape, in
    the layouts the step uses with ``library``.

    The convolutions' forward (one ``[B * positions, width * E] x [width * E, maps]`` per
    width; their backward is the sparse argmax kernel, not a GEMM) and the highway's: through
    PyTorch's route six (two forward, two input-gradient and two weight-gradient products of
    ``1720 x 1720`` with the batch of 64), through oneDNN the three of its stacked weights
    (``3440 x 1720``).
    """
    total = 0.0
    for w, n in zip(SEQGAN_FILTER_SIZES, SEQGAN_NUM_FILTERS, strict=True):
        rows, filters = torch.randn(BATCH * (T - w + 1), w * EMB), torch.randn(n, w * EMB)
        bias, out = torch.randn(n), torch.empty(rows.shape[0], n)
        if library == "onednn":
            conv = lambda rows=rows, filters=filters, bias=bias: onednn_linear(rows, filters, bias)  # noqa: E731
        else:
            conv = lambda rows=rows, filters=filters, bias=bias, out=out: torch.addmm(  # noqa: E731
                bias, rows, filters.t(), out=out
            )
        total += timed(conv, cold)
    size = sum(SEQGAN_NUM_FILTERS)
    weight, xt = torch.randn(size, size), torch.randn(size, BATCH)
    grad, x = torch.randn(BATCH, size), torch.randn(BATCH, size)
    if library == "onednn":  # x W^T, g W, g^T x on both weights stacked (highway.py)
        weights, grads = torch.randn(2 * size, size), torch.randn(BATCH, 2 * size)
        total += timed(lambda: onednn_linear(x, weights), cold)
        total += timed(lambda: onednn_linear(grads, weights.t()), cold)
        total += timed(lambda: onednn_linear(grads.t(), x.t()), cold)
        return total
    total += 2 * timed(lambda: weight @ xt, cold)  # forward, W x^T
    total += 2 * timed(lambda: weight.t() @ grad.t(), cold)  # input gradient, W^T g^T
    total += 2 * timed(lambda: grad.t() @ x, cold)  # weight gradient, g^T x
    return total


def part_profile(
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    opt: torch.optim.Optimizer,
    x: Tensor,
    y: Tensor,
    steps: int,
) -> dict[str, float]:
    """Median seconds of forward (with loss), backward and optimiser step over ``steps`` batches."""
    parts: dict[str, list[float]] = {"forward": [], "backward": [], "optimiser": []}
    for i in range(steps + 2):  # the first two: warm-up
        rows = slice((i * BATCH) % (len(x) - BATCH), (i * BATCH) % (len(x) - BATCH) + BATCH)
        t0 = time.perf_counter()
        loss = loss_fn(x[rows], y[rows])
        t1 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if i >= 2:
            for name, secs in zip(parts, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                parts[name].append(secs)
    return {name: statistics.median(v) for name, v in parts.items()}


def training_loss(disc: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    """``train_discriminator``'s loss of ``disc`` on a batch: cross-entropy plus the output L2."""
    return lambda tokens, labels: (
        F.binary_cross_entropy_with_logits(disc(tokens), labels) + disc.regularization()
    )


def check_same_function(ours: nn.Module, plain: PlainCNN, x: Tensor) -> float:
    """Largest logit gap of the two models (same weights, eval mode) on ``x``."""
    ours.eval(), plain.eval()
    with torch.no_grad():
        return float((ours(x) - plain(x)).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sequences", type=int, default=20000, help="rows per epoch (half real)")
    parser.add_argument("--profile-steps", type=int, default=20)
    parser.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 opt-in row")
    parser.add_argument(
        "--emulated-bf16",
        action="store_true",
        help="run the bfloat16 rows even on a CPU without bfloat16 dot products (slow)",
    )
    parser.add_argument(
        "--cast-row",
        action="store_true",
        help="add the bfloat16 opt-in without its weight shadows (bf16_shadows=False)",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="add the plain model's loss under torch.compile (with fused Adam) and "
        "train_discriminator on a torch.compile'd model; their compile time is printed",
    )
    parser.add_argument(
        "--six-gemm-row",
        action="store_true",
        help="add train_discriminator on a copy whose highway weights have separate storages "
        "(its six GEMMs instead of the three of the stacked weights; oneDNN route only)",
    )
    parser.add_argument(
        "--keep-denormals",
        action="store_true",
        help="keep IEEE float32 denormals (default: flushed to zero, as the textgan command does)",
    )
    parser.add_argument(
        "--gemm",
        choices=GEMM_LIBRARIES,
        default=None,
        help="the float32 GEMMs' library for train_discriminator (default: TEXTGAN_CPU_GEMM, "
        "else auto); a row with the other library is added where both run",
    )
    args = parser.parse_args()
    if args.gemm is not None:
        os.environ[GEMM_LIBRARY_ENV] = args.gemm
    library = gemm_library()
    other = {"onednn": "aten", "aten": "onednn" if onednn_linear_available() else None}[library]
    if args.keep_denormals:
        os.environ[KEEP_DENORMALS_ENV] = "1"  # the command's own switch
    tune_process()
    torch.set_num_threads(args.threads)
    data = torch.Generator().manual_seed(0)
    half = args.sequences // 2
    real = torch.randint(0, V // 2, (half, T), generator=data)
    fake = torch.randint(V // 2, V, (half, T), generator=data)
    x, y = torch.cat([real, fake]), torch.cat([torch.ones(half), torch.zeros(half)])

    ours = build_discriminator("cnn", V, T, seed=0)
    plain = PlainCNN()
    plain.load_state_dict(ours.state_dict())
    gap = check_same_function(ours, plain, x[:256])
    ours_opt = make_discriminator_optimizer(ours)
    alt = build_discriminator("cnn", V, T, seed=0) if other else None
    alt_opt = make_discriminator_optimizer(alt) if alt is not None else None
    alt_name = f"train_discriminator, {other} GEMMs"
    bf16 = None
    if not args.no_bf16 and not (cpu_has_bf16_dot_products() or args.emulated_bf16):
        print(
            "(bfloat16 rows skipped: this CPU has no bfloat16 dot products; --emulated-bf16 runs them)"
        )
    elif not args.no_bf16:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # the table names the CPU's flags
            bf16 = build_discriminator("cnn", V, T, seed=0, train_precision="bfloat16")
            cast = build_discriminator("cnn", V, T, seed=0, train_precision="bfloat16")
        cast.bf16_shadows = False
        bf16_opt, cast_opt = make_discriminator_optimizer(bf16), make_discriminator_optimizer(cast)
        shuffle_bf16, shuffle_cast = (
            torch.Generator().manual_seed(1),
            torch.Generator().manual_seed(1),
        )
    six = copy.deepcopy(ours) if args.six_gemm_row and library == "onednn" else None
    six_opt = make_discriminator_optimizer(six) if six is not None else None
    plain_opt = torch.optim.Adam(plain.parameters(), lr=1e-4)
    libraries = [library] + ([other] if other else [])
    gemm_before = {name: gemm_gflops(name) for name in libraries}

    shuffle_ours, shuffle_plain = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    shuffle_alt = torch.Generator().manual_seed(1)
    variants: dict[str, Callable[[], object]] = {
        "plain loop": lambda: plain_epoch(plain, plain_opt, x, y, shuffle_plain),
        "train_discriminator": lambda: train_discriminator(
            ours, ours_opt, real, fake, epochs=1, batch_size=BATCH, generator=shuffle_ours
        ),
    }
    if alt is not None:

        def alt_epoch() -> None:
            with gemm_library_set_to(other):
                train_discriminator(
                    alt, alt_opt, real, fake, epochs=1, batch_size=BATCH, generator=shuffle_alt
                )

        variants[alt_name] = alt_epoch
    if six is not None:
        shuffle_six = torch.Generator().manual_seed(1)
        variants[SIX_GEMMS] = lambda: train_discriminator(
            six, six_opt, real, fake, epochs=1, batch_size=BATCH, generator=shuffle_six
        )
    if bf16 is not None:
        variants[BF16] = lambda: train_discriminator(
            bf16, bf16_opt, real, fake, epochs=1, batch_size=BATCH, generator=shuffle_bf16
        )
    if bf16 is not None and args.cast_row:
        variants[BF16_CAST] = lambda: train_discriminator(
            cast, cast_opt, real, fake, epochs=1, batch_size=BATCH, generator=shuffle_cast
        )
    if args.compile:
        plain_c = PlainCNN()
        plain_c.load_state_dict(ours.state_dict())
        plain_c_opt = torch.optim.Adam(plain_c.parameters(), lr=1e-4, fused=True)
        plain_c_loss = torch.compile(plain_c.loss)
        ours_c = build_discriminator("cnn", V, T, seed=0)
        ours_c_opt = make_discriminator_optimizer(ours_c)
        ours_c_compiled = torch.compile(ours_c)
        shuffle_pc, shuffle_oc = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
        variants[PLAIN_COMPILED] = lambda: plain_epoch(
            plain_c, plain_c_opt, x, y, shuffle_pc, plain_c_loss
        )
        variants[OURS_COMPILED] = lambda: train_discriminator(
            ours_c_compiled,
            ours_c_opt,
            real,
            fake,
            epochs=1,
            batch_size=BATCH,
            generator=shuffle_oc,
        )
    warm = slice(0, 8 * BATCH)
    if args.compile:  # the first steps compile (and the last, shorter batch recompiles)
        start = time.perf_counter()
        plain_epoch(plain_c, plain_c_opt, x[:600], y[:600], shuffle_pc, plain_c_loss)
        print(f"{PLAIN_COMPILED}: warm-up with compilation {time.perf_counter() - start:.1f} s")
        start = time.perf_counter()
        train_discriminator(ours_c_compiled, ours_c_opt, real[:300], fake[:300], batch_size=BATCH)
        print(f"{OURS_COMPILED}: warm-up with compilation {time.perf_counter() - start:.1f} s")
    plain_epoch(plain, plain_opt, x[warm], y[warm], shuffle_plain)
    train_discriminator(ours, ours_opt, real[:256], fake[:256], batch_size=BATCH)
    if alt is not None:
        with gemm_library_set_to(other):
            train_discriminator(alt, alt_opt, real[:256], fake[:256], batch_size=BATCH)
    if six is not None:
        train_discriminator(six, six_opt, real[:256], fake[:256], batch_size=BATCH)
    if bf16 is not None:
        train_discriminator(bf16, bf16_opt, real[:256], fake[:256], batch_size=BATCH)
    if BF16_CAST in variants:
        train_discriminator(cast, cast_opt, real[:256], fake[:256], batch_size=BATCH)
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(args.repeats):
        names = list(variants)[round_ % len(variants) :] + list(variants)[: round_ % len(variants)]
        for name in names:
            start = time.perf_counter()
            variants[name]()
            runs[name].append(time.perf_counter() - start)

    ours.train()
    profiles: dict[str, dict[str, float]] = {
        "plain loop": part_profile(plain.loss, plain_opt, x, y, args.profile_steps),
        "train_discriminator": part_profile(
            training_loss(ours),
            ours_opt,
            x,
            y,
            args.profile_steps,
        ),
    }
    if alt is not None:
        alt.train()
        with gemm_library_set_to(other):
            profiles[alt_name] = part_profile(training_loss(alt), alt_opt, x, y, args.profile_steps)
    if six is not None:
        six.train()
        profiles[SIX_GEMMS] = part_profile(training_loss(six), six_opt, x, y, args.profile_steps)
    if bf16 is not None:
        bf16.train()
        profiles[BF16] = part_profile(
            training_loss(bf16),
            bf16_opt,
            x,
            y,
            args.profile_steps,
        )
    if BF16_CAST in variants:
        cast.train()
        profiles[BF16_CAST] = part_profile(
            training_loss(cast),
            cast_opt,
            x,
            y,
            args.profile_steps,
        )
    if args.compile:
        profiles[PLAIN_COMPILED] = part_profile(plain_c_loss, plain_c_opt, x, y, args.profile_steps)
        ours_c_compiled.train()
        profiles[OURS_COMPILED] = part_profile(
            training_loss(ours_c_compiled), ours_c_opt, x, y, args.profile_steps
        )
    gemm = {name: (gemm_before[name] + gemm_gflops(name)) / 2 for name in libraries}
    floors = (gemm_floor(False, library), gemm_floor(True, library))
    report(args, runs, profiles, library, gemm, gap, floors)


def report(
    args: argparse.Namespace,
    runs: dict[str, list[float]],
    profiles: dict[str, dict[str, float]],
    library: str,
    gemm: dict[str, float],
    gap: float,
    floors: tuple[float, float],
) -> None:
    """The Markdown tables."""
    steps = -(-args.sequences // BATCH)
    flops = 3 * model_flops_per_sequence() * BATCH  # forward + backward (input and weight grads)
    base = statistics.median(runs["plain loop"])
    print(
        f"CPU: {cpu_summary()}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"denormals {'flushed' if denormals_flushed() else 'kept (IEEE)'}"
    )
    if BF16 in runs and not cpu_has_bf16_dot_products():
        print("(no bfloat16 dot products on this CPU: its bfloat16 GEMMs are emulated)")
    print(
        f"{args.sequences} sequences per epoch (T={T}, V={V}, batch {BATCH}, {steps} steps), "
        f"median of {args.repeats} rounds; start logits gap {gap:.1e}"
    )
    rates = ", ".join(f"{name} {rate:.0f}" for name, rate in gemm.items())
    print(
        f"train_discriminator's float32 GEMMs: {library} ({GEMM_LIBRARY_ENV}="
        f"{os.environ.get(GEMM_LIBRARY_ENV, 'auto')}); fp32 GEMM (2048^3) GFLOP/s: {rates}\n"
    )
    # "paired": each round's plain epoch over the same round's epoch of the variant, median over
    # rounds; the rounds run back to back, so slow drift of a shared machine cancels out.
    print("| variant | epoch s (median) | every run, s | ms/step | vs plain | vs plain, paired |")
    print("|---|---:|---|---:|---:|---:|")
    for name, secs in runs.items():
        med = statistics.median(secs)
        every = ", ".join(f"{s:.2f}" for s in secs)
        paired = statistics.median(p / s for p, s in zip(runs["plain loop"], secs, strict=True))
        print(
            f"| {name} | {med:.2f} | {every} | {1e3 * med / steps:.1f} | {base / med:.2f}x "
            f"| {paired:.2f}x |"
        )
    print(
        f"\n| variant | forward ms | backward ms | optimiser ms | step ms | fwd+bwd GFLOP/s (% of {library}'s GEMM) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, p in profiles.items():
        compute = p["forward"] + p["backward"]
        rate = flops / compute / 1e9
        print(
            f"| {name} | {1e3 * p['forward']:.1f} | {1e3 * p['backward']:.1f} | "
            f"{1e3 * p['optimiser']:.1f} | {1e3 * sum(p.values()):.1f} | "
            f"{rate:.0f} ({100 * rate / gemm[library]:.0f}%) |"
        )

    optimiser = profiles["train_discriminator"]["optimiser"]
    plain_step = base / steps
    print("\n| float32 floor | dense GEMMs alone ms | + optimiser ms | at most vs plain |")
    print("|---|---:|---:|---:|")
    for name, floor in zip(("warm caches", "cold caches"), floors, strict=True):
        print(
            f"| {name} | {1e3 * floor:.1f} | {1e3 * (floor + optimiser):.1f} "
            f"| {plain_step / (floor + optimiser):.2f}x |"
        )
    print(
        f"(the step's GEMMs at their own shapes through {library} and this run's optimiser step, before the sparse "
        f"convolution backward, pooling, dropout and the data; plain loop {1e3 * plain_step:.1f} ms a step)"
    )


if __name__ == "__main__":
    main()
