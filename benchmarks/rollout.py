"""One SeqGAN generator step: batched Monte-Carlo search vs the common per-(t, n) loop, same run.

Setting (SeqGAN's synthetic experiment): batch 64, T=20, V=5000, emb/hidden 32, N=16 rollouts,
SeqGAN's CNN discriminator scoring every completion. Both variants do the same generator step:
sample 64 sequences, estimate Q [64, 20], REINFORCE loss, backward, Adam step. They differ only
in how sequences are sampled and Q is estimated:

* ours: ``textgan_envs.rollout.monte_carlo_q`` (all (t, n) completions in one batched pass,
  prefix states cached, two-level inverse-CDF sampling, one discriminator call);
* reference: the loop of common implementations: ``for n in range(N): for t in 1..T-1:`` run the
  rollout LSTM over the prefix, sample the rest one step at a time with ``torch.multinomial``
  on the softmax, score that 64-row batch with the discriminator.

Also reports the floating-point work of our step (matmul/conv FLOPs counted from the shapes)
against the machine's measured float32 matmul rate.

    .venv/bin/python benchmarks/rollout.py [--repeats 3] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from agents import estimators as est
from agents.policies import LSTMPolicy
from textgan_envs import native_sampling
from textgan_envs.allocator import retain_freed_memory
from textgan_envs.device import resolve_device
from textgan_envs.discriminators import build_discriminator, eval_logits
from textgan_envs.projection_sampling import projection_sampling_enabled
from textgan_envs.rollout import monte_carlo_q

B, T, V, H, E, N = 64, 20, 5000, 32, 32, 16


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def reference_sample(policy, n: int, prefix: torch.Tensor | None = None) -> torch.Tensor:
    """Sample ``n`` sequences (optionally continuing ``prefix``) step by step with torch.multinomial."""
    state = policy.initial_state(n)
    prev = torch.full((n,), policy.start_token, dtype=torch.long, device=policy.device)
    out = []
    given = 0 if prefix is None else prefix.shape[1]
    for t in range(policy.seq_len):
        logits, state = policy.step(prev, state)
        if t < given:
            prev = prefix[:, t]  # teacher-force the prefix
        else:
            prev = torch.multinomial(torch.softmax(logits, dim=-1), 1).squeeze(1)
        out.append(prev)
    return torch.stack(out, dim=1)


@torch.no_grad()
def reference_q(rollout, disc, tokens: torch.Tensor, n_rollouts: int) -> torch.Tensor:
    """Q [B, T] the way common SeqGAN ports compute it: one completion batch per (t, n)."""
    q = torch.zeros(tokens.shape, device=tokens.device)
    for _ in range(n_rollouts):
        for t in range(1, tokens.shape[1]):
            completion = reference_sample(rollout, tokens.shape[0], tokens[:, :t])
            q[:, t - 1] += torch.sigmoid(eval_logits(disc, completion))
        q[:, -1] += torch.sigmoid(eval_logits(disc, tokens))
    return q / n_rollouts


def token_score(tokens: torch.Tensor) -> torch.Tensor:
    """A nearly free stand-in discriminator (logits from token ids), to time the search alone."""
    return (tokens.float().mean(dim=1) - V / 2) / V


def generator_step(policy, rollout, disc, opt, batched: bool, generator) -> tuple[float, float]:
    """One full generator step; returns (total seconds, seconds spent in sampling + Q)."""
    device = policy.device
    sync(device)
    t0 = time.perf_counter()
    if batched:
        tokens = policy.sample(B, generator=generator)
        q = monte_carlo_q(
            rollout, lambda y: torch.sigmoid(eval_logits(disc, y)), tokens, N, generator=generator
        )
    else:
        tokens = reference_sample(policy, B)
        q = reference_q(rollout, disc, tokens, N)
    sync(device)
    t_q = time.perf_counter() - t0
    loss = est.reinforce_loss(policy.log_prob(tokens), q)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), 5.0)
    opt.step()
    sync(device)
    return time.perf_counter() - t0, t_q


def matmul_rate(device: torch.device, size: int = 1024, repeats: int = 10) -> float:
    """Measured float32 GEMM rate in GFLOP/s (best of ``repeats`` square ``size`` products)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def cnn_flops_per_sequence(disc) -> float:
    """Multiply-adds x 2 of the CNN discriminator on one length-T sequence (convs + highway + output)."""
    flops = 0.0
    for conv in disc.convs:
        out_ch, in_ch, width = conv.weight.shape
        flops += 2 * width * in_ch * out_ch * max(1, T - width + 1)
    feat = disc.output.in_features
    return flops + 2 * (2 * feat * feat) + 2 * feat


def our_step_flops(disc) -> dict[str, float]:
    """Counted work of our generator step (GEMM/conv FLOPs; softmax/sampling elementwise not counted)."""
    per_row_step = 2 * (E * 4 * H + H * 4 * H + H * V)  # LSTM gates + output projection
    rollout_rows = N * B * T * (T - 1) / 2  # row-steps of all completions (prefix states cached)
    teacher = B * T  # cached-prefix pass of the rollout policy + generator sampling pass
    lstm = (rollout_rows + 2 * teacher) * per_row_step
    disc_flops = (N * B * (T - 1) + B) * cnn_flops_per_sequence(disc)
    backward = 3 * B * T * per_row_step  # log_prob forward + backward ~ 3x forward
    return {"generator LSTM": lstm, "discriminator CNN": disc_flops, "loss fwd+bwd": backward}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed steps of ours (median)")
    parser.add_argument("--ref-repeats", type=int, default=1, help="timed steps of the reference")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--score",
        choices=["cnn", "token"],
        default="cnn",
        help="cnn: SeqGAN's CNN discriminator; token: a free stand-in that isolates the search",
    )
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="keep glibc's default malloc thresholds (textgan's commands raise them)",
    )
    args = parser.parse_args(argv)
    if not args.default_allocator:
        retain_freed_memory()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    torch.manual_seed(0)
    policy = LSTMPolicy(V, T, E, H, device=device)
    rollout = copy.deepcopy(policy)
    cnn = build_discriminator("cnn", V, T, seed=0, device=device)
    disc = cnn if args.score == "cnn" else token_score
    opt = torch.optim.Adam(policy.parameters(), lr=1e-2)
    gen = torch.Generator(device=device).manual_seed(0)

    generator_step(policy, rollout, disc, opt, True, gen)  # warm-up
    ours = [generator_step(policy, rollout, disc, opt, True, gen) for _ in range(args.repeats)]
    print(f"ours done: {[round(t, 3) for t, _ in ours]} s", flush=True)
    ref = [generator_step(policy, rollout, disc, opt, False, gen) for _ in range(args.ref_repeats)]
    ours_total = statistics.median(t for t, _ in ours)
    ours_q = statistics.median(q for _, q in ours)
    ref_total = statistics.median(t for t, _ in ref)
    ref_q = statistics.median(q for _, q in ref)

    rate = matmul_rate(device)
    work = our_step_flops(cnn)
    if args.score != "cnn":
        work.pop("discriminator CNN")
    total_flops = sum(work.values())
    print(
        f"CPU: {native_sampling.cpu_summary()}; kernel build flags: {native_sampling.build_flags()}"
    )
    print(
        f"device={device} threads={torch.get_num_threads()} B={B} T={T} V={V} H={H} N={N} "
        f"score={args.score}; projection sampling: {projection_sampling_enabled()}"
    )
    print()
    print("| variant | generator step (s) | sampling + Q (s) | speed-up (step) |")
    print("|---|---|---|---|")
    print(
        f"| reference loop (per (t, n), torch.multinomial) | {ref_total:.2f} | {ref_q:.2f} | 1.0x |"
    )
    print(
        f"| ours (batched monte_carlo_q) | {ours_total:.3f} | {ours_q:.3f} | {ref_total / ours_total:.1f}x |"
    )
    print()
    print("| work in our step | GFLOP |")
    print("|---|---|")
    for name, flops in work.items():
        print(f"| {name} | {flops / 1e9:.1f} |")
    print(f"| total | {total_flops / 1e9:.1f} |")
    print()
    achieved = total_flops / ours_total / 1e9
    print(
        f"measured fp32 matmul rate (1024^3 GEMM): {rate:.1f} GFLOP/s; our step achieves "
        f"{achieved:.1f} GFLOP/s = {100 * achieved / rate:.0f}% of it"
    )


if __name__ == "__main__":
    main()
