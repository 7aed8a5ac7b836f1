"""Data-parallel correctness on CPU: 2 gloo processes equal 1 process on the concatenated batch.

The worker half of this file runs as a script (``python tests/test_distributed.py MODE ...``)
under torchrun or plain subprocesses with the launch variables set; every launch binds
127.0.0.1 only, uses a fresh free port and runs under a subprocess timeout, so a hung rank
fails the test instead of hanging it.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # when run as a worker script
    sys.path.insert(0, str(ROOT))

from agents import estimators as est  # noqa: E402
from agents.episodes import policy_log_probs_and_entropy  # noqa: E402
from agents.loop import clip_and_step  # noqa: E402
from agents.policies import LSTMPolicy  # noqa: E402
from agents.runtime import (  # noqa: E402
    atomic_save,
    load_checkpoint,
    main_logger,  # noqa: E402
)
from agents.runtime.distributed import (  # noqa: E402
    DistContext,
    DistributedSetupError,
    RendezvousError,
    all_reduce_mean,
    current_context,
    init_distributed,
    on_main,
    read_launch_env,
    shard_seed,
    shutdown,
    unwrap,
    wrap_ddp,
)
from textgan_envs.discriminators import (  # noqa: E402
    CNNDiscriminator,
    eval_logits,
    train_discriminator,
)
from textgan_envs.rollout import monte_carlo_q  # noqa: E402

VOCAB, SEQ_LEN, PER_RANK, ROLLOUTS, WORLD = 30, 6, 4, 4, 2
LAUNCH_TIMEOUT_S = 120


# --------------------------------------------------------------------------- the training step


def make_models() -> tuple[LSTMPolicy, CNNDiscriminator]:
    torch.manual_seed(0)
    policy = LSTMPolicy(VOCAB, SEQ_LEN, emb_dim=8, hidden_dim=16, device="cpu", init_std=0.3)
    disc = CNNDiscriminator(
        VOCAB, SEQ_LEN, emb_dim=8, filter_sizes=(2, 3), num_filters=(8, 8), dropout_keep=1.0
    )
    return policy, disc


def make_optimizers(policy, disc) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    return torch.optim.Adam(policy.parameters(), lr=0.05), torch.optim.Adam(
        disc.parameters(), lr=0.01
    )


def rank_batch(
    policy, disc, step: int, rank: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What rank ``rank`` draws at ``step``: its samples, their Monte-Carlo Q and its real rows."""
    gen = torch.Generator().manual_seed(shard_seed(1000 + step, rank))
    tokens = policy.sample(PER_RANK, generator=gen)
    q = monte_carlo_q(
        policy, lambda y: torch.sigmoid(eval_logits(disc, y)), tokens, ROLLOUTS, generator=gen
    )
    real = torch.randint(0, VOCAB // 2, (PER_RANK, SEQ_LEN), generator=gen)  # "real": low ids
    return tokens, q, real


def train_step(policy, disc, g_opt, d_opt, tokens, q, real) -> None:
    """One REINFORCE generator step on ``(tokens, q)`` then one discriminator step."""
    log_probs, _ = policy_log_probs_and_entropy(policy, tokens)
    loss = est.reinforce_loss(log_probs, est.clipped_advantages(q, 0.5, clip=None))
    g_opt.zero_grad(set_to_none=True)
    loss.backward()
    clip_and_step(g_opt, list(policy.parameters()), 5.0)
    train_discriminator(disc, d_opt, real, tokens, epochs=1, batch_size=len(real) + len(tokens))


def reference_run(steps: int) -> tuple[dict[str, torch.Tensor], list[float]]:
    """One process on the concatenated batches of both ranks; final weights and mean rewards."""
    policy, disc = make_models()
    g_opt, d_opt = make_optimizers(policy, disc)
    rewards = []
    for step in range(steps):
        parts = [rank_batch(policy, disc, step, r) for r in range(WORLD)]
        tokens, q, real = (torch.cat(x) for x in zip(*parts, strict=True))
        rewards.append(float(q[:, -1].mean()))
        train_step(policy, disc, g_opt, d_opt, tokens, q, real)
    return flat_params(policy, disc), rewards


def flat_params(policy, disc) -> dict[str, torch.Tensor]:
    return {
        **{f"policy.{k}": v.detach().clone() for k, v in unwrap(policy).state_dict().items()},
        **{f"disc.{k}": v.detach().clone() for k, v in unwrap(disc).state_dict().items()},
    }


# --------------------------------------------------------------------------- worker side


def worker_train(out_dir: Path, steps: int, resume: bool) -> None:
    ctx = init_distributed(timeout_s=60, rendezvous_timeout_s=60)
    assert current_context() == ctx and ctx.backend == "gloo" and ctx.world_size == WORLD
    torch.set_num_threads(1)
    policy, disc = make_models()
    policy, disc = wrap_ddp(policy, ctx), wrap_ddp(disc, ctx)
    g_opt, d_opt = make_optimizers(policy, disc)
    ckpt_path, start = out_dir / "run" / "checkpoint.pt", 0
    if resume:
        ckpt = load_checkpoint(
            ckpt_path, required_keys=("step", "policy", "disc", "g_opt", "d_opt")
        )
        policy.load_state_dict(ckpt["policy"])
        disc.load_state_dict(ckpt["disc"])
        g_opt.load_state_dict(ckpt["g_opt"])
        d_opt.load_state_dict(ckpt["d_opt"])
        start = int(ckpt["step"])
    logger = main_logger(
        ctx,
        out_dir / "run",
        "metrics",
        tensorboard=False,
        resume_from_step=start if resume else None,
    )
    for step in range(start, steps):
        tokens, q, real = rank_batch(policy, disc, step, ctx.rank)
        reward = all_reduce_mean(q[:, -1].mean(), ctx)
        train_step(policy, disc, g_opt, d_opt, tokens, q, real)
        logger.log(step + 1, {"reward": float(reward)})
        state = {
            "step": step + 1,
            "policy": policy.state_dict(),
            "disc": disc.state_dict(),
            "g_opt": g_opt.state_dict(),
            "d_opt": d_opt.state_dict(),
        }
        on_main(ctx, atomic_save, state, ckpt_path)
    logger.close()
    # Test artefact (outside the run directory): every rank's weights, to compare ranks.
    torch.save(flat_params(policy, disc), out_dir / f"weights_rank{ctx.rank}.pt")
    shutdown(ctx, timeout_s=60)


def worker_die(out_dir: Path) -> None:
    ctx = init_distributed(timeout_s=20, rendezvous_timeout_s=60)
    if ctx.rank == 1:
        os._exit(3)  # a crash: no shutdown, no barrier
    x = torch.ones(4)
    for _ in range(50):
        torch.distributed.all_reduce(x)
        time.sleep(0.05)
    (out_dir / "survived").write_text("rank 0 finished its collectives")  # must not happen


# --------------------------------------------------------------------------- launching


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def launch_torchrun(args: list[str]) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node=2`` on this file, rendezvous on 127.0.0.1 only."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        f"--nproc_per_node={WORLD}",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        __file__,
        *args,
    ]
    return subprocess.run(
        cmd, env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=LAUNCH_TIMEOUT_S
    )


def launch_plain(args: list[str], timeout: float = LAUNCH_TIMEOUT_S) -> list[tuple[int, str]]:
    """Two worker processes started directly with the launch variables (no torchrun agent)."""
    port = free_port()
    procs = []
    for rank in range(WORLD):
        env = dict(
            _env(),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(WORLD),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, __file__, *args],
                env=env,
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    results = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=timeout)
            results.append((proc.returncode, out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def _read_rewards(path: Path) -> list[float]:
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, len(rows) + 1))
    return [float(r["reward"]) for r in rows]


def _assert_weights_equal(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> None:
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-4, atol=2e-5, msg=key)


# --------------------------------------------------------------------------- tests


def test_two_gloo_ranks_match_one_process_then_resume(tmp_path):
    """2 ranks x k steps == 1 process on the concatenated batch; rank 0 alone writes; resume."""
    first, total = 2, 3
    ref_first, rewards_first = reference_run(first)
    # The step really moves the weights (else equality would prove nothing).
    untouched = flat_params(*make_models())
    assert any(not torch.allclose(untouched[k], ref_first[k]) for k in untouched)

    done = launch_torchrun(["train", str(tmp_path), str(first)])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    w0 = torch.load(tmp_path / "weights_rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "weights_rank1.pt", weights_only=True)
    _assert_weights_equal(w1, w0)  # ranks agree
    _assert_weights_equal(w0, ref_first)  # and equal the single-process run
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "metrics.csv"]
    assert _read_rewards(run / "metrics.csv") == pytest.approx(rewards_first, abs=1e-5)

    # Resume the distributed run from rank 0's checkpoint; it must continue exactly.
    ref_total, rewards_total = reference_run(total)
    results = launch_plain(["train", str(tmp_path), str(total), "--resume"])
    for rc, out in results:
        assert rc == 0, out[-3000:]
    _assert_weights_equal(torch.load(tmp_path / "weights_rank0.pt", weights_only=True), ref_total)
    _assert_weights_equal(torch.load(tmp_path / "weights_rank1.pt", weights_only=True), ref_total)
    assert load_checkpoint(run / "checkpoint.pt")["step"] == total
    assert _read_rewards(run / "metrics.csv") == pytest.approx(rewards_total, abs=1e-5)


def test_dead_rank_makes_the_other_exit_with_an_error(tmp_path):
    start = time.monotonic()
    results = launch_plain(["die", str(tmp_path)], timeout=90)
    (rc0, out0), (rc1, _) = results
    assert rc1 == 3
    assert rc0 != 0, out0[-2000:]
    assert "Error" in out0 or "error" in out0
    assert not (tmp_path / "survived").exists()
    assert time.monotonic() - start < 90


def test_unreachable_rendezvous_fails_fast_naming_the_address():
    port = free_port()  # nothing listens there
    env = {
        "WORLD_SIZE": "2",
        "RANK": "1",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    start = time.monotonic()
    with pytest.raises(RendezvousError, match=f"127.0.0.1:{port}"):
        init_distributed(rendezvous_timeout_s=1.0, env=env, device="cpu")
    assert time.monotonic() - start < 30
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WORLD_SIZE": "0", "RANK": "0"}, "WORLD_SIZE must be >= 1"),
        ({"WORLD_SIZE": "-2", "RANK": "0"}, "WORLD_SIZE must be >= 1"),
        ({"WORLD_SIZE": "two", "RANK": "0"}, "WORLD_SIZE='two' is not an integer"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, r"RANK=2 is outside \[0, WORLD_SIZE=2\)"),
        ({"WORLD_SIZE": "2", "RANK": "-1"}, "RANK=-1 is outside"),
        ({"WORLD_SIZE": "2"}, "RANK is not"),
        ({"WORLD_SIZE": "2", "RANK": "0"}, "MASTER_ADDR is not"),
        (
            {"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "70000"},
            "not a TCP port",
        ),
    ],
)
def test_bad_launch_environment_is_a_clear_error(env, message):
    with pytest.raises(DistributedSetupError, match=message):
        init_distributed(env=env, device="cpu")
    assert not torch.distributed.is_initialized()


def test_single_process_context_without_torchrun():
    assert read_launch_env({}) is None
    ctx = init_distributed(env={}, device="cpu")
    assert ctx == DistContext(0, 1, 0, torch.device("cpu"), None)
    assert ctx.is_main and not ctx.distributed
    assert current_context() == DistContext()
    policy, _ = make_models()
    assert wrap_ddp(policy, ctx) is policy
    assert float(all_reduce_mean(3.0, ctx)) == 3.0
    shutdown(ctx)  # no-op


def test_shard_seed_is_distinct_per_rank_and_keeps_rank_zero():
    assert shard_seed(7, 0) == 7
    seeds = {shard_seed(s, r) for s in range(50) for r in range(8)}
    assert len(seeds) == 50 * 8
    assert shard_seed(0, 1) != shard_seed(1, 0)
    assert shard_seed(5, 3) == shard_seed(5, 3)
    with pytest.raises(ValueError, match="rank"):
        shard_seed(0, -1)


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "train":
        worker_train(out, int(sys.argv[3]), "--resume" in sys.argv[4:])
    elif mode == "die":
        worker_die(out)
    else:
        raise SystemExit(f"unknown worker mode {mode!r}")
