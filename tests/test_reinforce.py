"""SeqGAN REINFORCE agent: Monte-Carlo Q against exact values, rollout rule, learning on a fixed D."""

from __future__ import annotations

import copy

import pytest
import torch

from agents import reinforce
from agents.policies import LSTMPolicy
from agents.runtime import NonFiniteError, build_config
from agents.setup import Setup
from textgan_envs.rollout import monte_carlo_q

V, T = 8, 4


def fixed_disc(tokens: torch.Tensor) -> torch.Tensor:
    """A fixed discriminator: the logit grows with the fraction of token 3 (D in [0.18, 0.82])."""
    return 3.0 * (tokens == 3).float().mean(1) - 1.5


def tiny_setup(seed: int = 0) -> Setup:
    policy = LSTMPolicy(V, T, 16, 16, device="cpu")
    policy.reset_parameters(torch.Generator().manual_seed(seed))
    dummy = torch.nn.Linear(1, 1)
    data = torch.zeros(1, T, dtype=torch.long)
    return Setup(
        torch.device("cpu"),
        policy,
        fixed_disc,
        torch.optim.SGD(dummy.parameters(), lr=0.1),
        data,
        data,
    )


def objective(setup: Setup) -> float:
    """E[D(y)] under the generator, from 4,000 samples with a fixed seed."""
    y = setup.policy.sample(4000, generator=torch.Generator().manual_seed(99))
    return float(torch.sigmoid(fixed_disc(y)).mean())


class Tabular:
    """A 3-token, T=2 tabular policy implementing the RecurrentSequenceModel protocol."""

    vocab_size, seq_len, start_token = 3, 2, 0
    device = torch.device("cpu")

    def __init__(self, theta: torch.Tensor) -> None:
        self.theta = theta  # row 0: p(y1); row 1 + y1: p(y2 | y1)

    def initial_state(self, batch_size: int):
        return (torch.zeros(batch_size, dtype=torch.long),)

    def step(self, prev, state):
        (t,) = state
        rows = torch.where(t == 0, torch.zeros_like(prev), 1 + prev)
        return self.theta[rows], (t + 1,)


def test_monte_carlo_q_converges_to_exact_expectation():
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(4, 3, generator=g)
    score = torch.rand(3, 3, generator=g)  # fixed score of each of the 9 sequences
    model = Tabular(theta)
    seqs = torch.cartesian_prod(torch.arange(3), torch.arange(3))
    p2 = torch.softmax(theta[1 + seqs[:, 0]], -1)
    exact_q1 = (p2 * score[seqs[:, 0]]).sum(1)  # E[score | y1]

    def score_fn(y):
        return score[y[:, 0], y[:, 1]]

    errors = []
    for n in (4, 64, 4096):
        q = monte_carlo_q(model, score_fn, seqs, n, generator=torch.Generator().manual_seed(n))
        torch.testing.assert_close(q[:, 1], score_fn(seqs))  # Q_T is the score itself
        errors.append(float((q[:, 0] - exact_q1).abs().mean()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.01


def test_rollout_update_mixes_parameters():
    a, b = tiny_setup(0).policy, tiny_setup(1).policy
    a0 = copy.deepcopy(a)
    reinforce.update_rollout(a, b, 0.8)
    for pa, p0, pb in zip(a.parameters(), a0.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, 0.8 * p0 + 0.2 * pb)


def test_discounted_q():
    q = torch.tensor([[1.0, 1.0, 1.0]])
    torch.testing.assert_close(reinforce.discounted_q(q, 0.5), torch.tensor([[0.25, 0.5, 1.0]]))
    torch.testing.assert_close(reinforce.discounted_q(q, 1.0), q)


@pytest.mark.parametrize("baseline", ["none", "moving_average"])
def test_reinforce_raises_expected_reward_of_fixed_discriminator(baseline):
    setup = tiny_setup()
    cfg = build_config(
        reinforce.ReinforceConfig,
        {"vocab_size": V, "seq_len": T, "n_rollouts": 4, "batch_size": 64, "baseline": baseline},
    )
    rollout = copy.deepcopy(setup.policy)
    opt = torch.optim.Adam(setup.policy.parameters(), lr=cfg.g_lr)
    gen = torch.Generator().manual_seed(1)
    before, b = objective(setup), None
    for step in range(1, 26):
        metrics, b = reinforce.generator_step(setup, rollout, opt, cfg, b, gen, step)
    after = objective(setup)
    assert before < 0.3 and after > before + 0.3, (before, after)
    assert (b is None) == (baseline == "none")
    assert 0.0 <= metrics["reward"] <= 1.0 and metrics["entropy"] > 0


def test_nan_reward_stops_naming_quantity_and_step():
    setup = tiny_setup()
    setup.discriminator = lambda y: torch.full((y.shape[0],), float("nan"))
    cfg = build_config(reinforce.ReinforceConfig, {"vocab_size": V, "seq_len": T, "n_rollouts": 2})
    opt = torch.optim.Adam(setup.policy.parameters(), lr=cfg.g_lr)
    before = [p.clone() for p in setup.policy.parameters()]
    with pytest.raises(NonFiniteError, match=r"reward.*step 7"):
        reinforce.generator_step(setup, setup.policy, opt, cfg, None, torch.Generator(), 7)
    for p, p0 in zip(setup.policy.parameters(), before, strict=True):
        assert torch.equal(p, p0)  # no update was applied
