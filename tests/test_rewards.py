"""Reward transforms: exact values, stability at extreme logits, clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from textgan_envs.rewards import (
    REWARD_MODES,
    REWARDS,
    bgan_log_weights,
    bgan_reward_mode,
    get_reward_fn,
)


def test_values_match_definitions() -> None:
    logits = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0], dtype=torch.float64)
    d = torch.sigmoid(logits)
    torch.testing.assert_close(get_reward_fn("prob")(logits), d)
    torch.testing.assert_close(get_reward_fn("log")(logits), torch.log(d))
    torch.testing.assert_close(get_reward_fn("logit")(logits), logits)
    torch.testing.assert_close(get_reward_fn("bgan")(logits), torch.log(d) - torch.log(1 - d))


@pytest.mark.parametrize("mode", sorted(REWARD_MODES))
def test_finite_for_extreme_logits(mode: str) -> None:
    logits = torch.tensor([-500.0, -80.0, 80.0, 500.0])
    out = get_reward_fn(mode)(logits)
    assert torch.isfinite(out).all(), (mode, out)
    # monotone in the logit: a more convincing sequence never earns less
    assert (out[1:] >= out[:-1]).all()


def test_log_reward_of_confident_fake_is_large_negative_not_inf() -> None:
    assert math.isclose(float(get_reward_fn("log")(torch.tensor(-500.0))), -500.0, rel_tol=1e-6)


def test_unknown_mode_names_choices() -> None:
    with pytest.raises(ValueError, match="unknown reward mode 'probability'.*prob"):
        get_reward_fn("probability")


def test_divergence_modes_are_bgan_table_1_weights() -> None:
    """Each f-divergence's log weight (BGAN Table 1) is its own reward mode."""
    v = torch.tensor([-3.0, -0.5, 0.0, 0.7, 4.0], dtype=torch.float64)
    d = torch.sigmoid(v)
    torch.testing.assert_close(get_reward_fn("bgan")(v).exp(), d / (1 - d))
    torch.testing.assert_close(get_reward_fn("bgan_kl")(v), v - 1)
    torch.testing.assert_close(get_reward_fn("bgan_hellinger")(v), 2 * v)
    chi = get_reward_fn("bgan_chi2")(v).exp()
    torch.testing.assert_close(chi[1:], v[1:] / 2 + 1)
    assert float(chi[0]) == pytest.approx(1e-6)  # V < -2: floored, not negative
    for divergence, mode in [("gan", "bgan"), ("jsd", "bgan"), ("rkl", "bgan"), ("kl", "bgan_kl")]:
        assert bgan_reward_mode(divergence) == mode  # type: ignore[arg-type]
        torch.testing.assert_close(get_reward_fn(mode)(v), bgan_log_weights(v, divergence))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown BGAN divergence 'tv'"):
        bgan_reward_mode("tv")  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", sorted(REWARDS))
def test_every_reward_lies_in_its_declared_range(mode: str) -> None:
    low, high = REWARDS[mode].range
    out = REWARDS[mode].fn(torch.linspace(-60.0, 60.0, 241))
    assert bool((out >= low).all()) and bool((out <= high).all()), mode
