"""Reward transforms: exact values, stability at extreme logits, clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from textgan_envs.rewards import REWARD_MODES, get_reward_fn


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
