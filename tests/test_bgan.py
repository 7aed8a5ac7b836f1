"""BGAN agent: grouped sampling, importance-weight diagnostics, learning on a fixed discriminator."""

from __future__ import annotations

import math

import pytest
import torch

from agents import bgan
from agents.runtime import ConfigError, build_config
from tests.test_reinforce import T, V, objective, tiny_setup


def make_cfg(**kw):
    return build_config(
        bgan.BGANConfig, {"vocab_size": V, "seq_len": T, "n_groups": 4, "n_samples": 16, **kw}
    )


def run(setup, cfg, steps):
    opt = torch.optim.Adam(setup.policy.parameters(), lr=cfg.g_lr)
    gen, log_z, metrics = torch.Generator().manual_seed(1), None, {}
    for step in range(1, steps + 1):
        metrics, log_z = bgan.generator_step(setup, opt, cfg, log_z, gen, step)
    return metrics, log_z


def test_groups_share_their_sampled_prefix():
    cfg = make_cfg(condition_len=2, n_groups=3, n_samples=50)
    x = bgan.draw_groups(tiny_setup(), cfg, torch.Generator().manual_seed(0)).tokens.view(3, 50, T)
    assert (x[:, :, :2] == x[:, :1, :2]).all()  # one prefix per group
    assert all(len({tuple(r) for r in g[:, 2:].tolist()}) > 5 for g in x)  # completions differ


@pytest.mark.parametrize(
    "kw",
    [
        {"estimator": "normalized", "divergence": "gan"},
        {"estimator": "normalized", "divergence": "chi2", "condition_len": 1},
        {"estimator": "reinforce", "divergence": "kl"},
    ],
)
def test_bgan_raises_expected_reward_of_fixed_discriminator(kw):
    setup = tiny_setup()
    before = objective(setup)
    metrics, _ = run(setup, make_cfg(**kw), 25)
    after = objective(setup)
    assert before < 0.3 and after > before + 0.3, (kw, before, after)
    assert 1.0 <= metrics["ess"] <= 16.0 + 1e-4


def test_ess_falls_when_one_sample_dominates():
    setup = tiny_setup()
    metrics, _ = run(setup, make_cfg(), 1)
    assert metrics["ess"] > 12  # the mild fixed D: weights are close to uniform
    setup.discriminator = lambda y: 40.0 * (y == 3).float().mean(1)  # very sharp weights
    metrics, _ = run(setup, make_cfg(), 1)
    assert metrics["ess"] < 4 and metrics["weight_variance"] > 1e-3


def test_constant_discriminator_gives_exact_log_partition_and_no_gradient():
    setup = tiny_setup()
    setup.discriminator = lambda y: torch.full((y.shape[0],), 0.7)
    metrics, log_z = run(setup, make_cfg(estimator="reinforce", divergence="kl"), 3)
    assert log_z == pytest.approx(0.7 - 1.0, abs=1e-6)  # kl: log w = V - 1 for every sample
    assert metrics["g_grad_norm"] == pytest.approx(0.0, abs=1e-6)
    assert metrics["ess"] == pytest.approx(16.0)


def test_condition_len_must_leave_tokens_to_generate():
    with pytest.raises(ConfigError, match="condition_len"):
        make_cfg(condition_len=T)
    assert math.isfinite(make_cfg(condition_len=T - 1).log_z_decay)
