"""Estimator pieces against hand-computed values and exact enumeration on a 3-token, T=2 problem."""

from __future__ import annotations

import math

import pytest
import torch

from agents import estimators as est

V, T = 3, 2


# ---------------------------------------------------------------- returns, advantages, baselines


def test_discounted_returns_hand_computed():
    r = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 1.0]])
    got = est.discounted_returns(r, gamma=0.5)
    want = torch.tensor([[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0], [0.25, 0.5, 1.0]])
    torch.testing.assert_close(got, want)


def test_discounted_returns_mask_and_edge_gammas():
    r = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    m = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    torch.testing.assert_close(
        est.discounted_returns(r, 0.9, m), torch.tensor([[1 + 0.9 * 2, 2.0, 0, 0]])
    )
    torch.testing.assert_close(est.discounted_returns(r, 0.0), r)
    torch.testing.assert_close(
        est.discounted_returns(r, 1.0), torch.tensor([[10.0, 9.0, 7.0, 4.0]])
    )
    with pytest.raises(ValueError, match="gamma"):
        est.discounted_returns(r, 1.5)


def test_clipped_advantages_and_detach():
    ret = torch.tensor([[10.0, -10.0, 1.0]])
    base = torch.tensor([[1.0, 1.0, 0.5]], requires_grad=True)
    adv = est.clipped_advantages(ret, base, clip=5.0)
    torch.testing.assert_close(adv, torch.tensor([[5.0, -5.0, 0.5]]))
    assert not adv.requires_grad
    torch.testing.assert_close(est.clipped_advantages(ret, 0.0, clip=None), ret)


def test_ema_update():
    b = est.ema_update(None, 2.0, 0.9)
    assert b == 2.0
    assert est.ema_update(b, 12.0, 0.9) == pytest.approx(0.9 * 2 + 0.1 * 12)
    with pytest.raises(ValueError, match="decay"):
        est.ema_update(b, 1.0, 1.0)


def test_reinforce_loss_value_and_gradient():
    lp = torch.log(torch.tensor([[0.5, 0.25], [0.1, 0.9]])).requires_grad_(True)
    adv = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    loss = est.reinforce_loss(lp, adv)
    want = -((lp.detach() * adv).sum(1)).mean()
    assert float(loss.detach()) == pytest.approx(float(want))
    loss.backward()
    torch.testing.assert_close(lp.grad, -adv / 2)
    masked = est.reinforce_loss(lp, adv, mask=torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    assert float(masked.detach()) == pytest.approx(
        float(-(lp[0, 0] * 1 + lp[1, 0] * 3).detach() / 2)
    )


# ---------------------------------------------------------------- BGAN weights and diagnostics


def test_normalized_weights_equal_w_over_sum_and_survive_extremes():
    log_w = torch.tensor([[0.0, math.log(2.0), math.log(5.0)], [1000.0, 1000.0, -1000.0]])
    wt = est.normalized_weights(log_w)
    torch.testing.assert_close(wt[0], torch.tensor([1 / 8, 2 / 8, 5 / 8]))
    torch.testing.assert_close(wt[1], torch.tensor([0.5, 0.5, 0.0]), atol=1e-4, rtol=0)
    assert torch.isfinite(wt).all()


def test_bgan_log_weights_match_table():
    v = torch.tensor([-3.0, -0.5, 0.0, 2.0])
    d = torch.sigmoid(v)
    torch.testing.assert_close(est.bgan_log_weights(v, "gan").exp(), d / (1 - d))  # D/(1-D)
    torch.testing.assert_close(est.bgan_log_weights(v, "jsd"), v)
    torch.testing.assert_close(est.bgan_log_weights(v, "rkl"), v)
    torch.testing.assert_close(est.bgan_log_weights(v, "kl"), v - 1)
    torch.testing.assert_close(est.bgan_log_weights(v, "hellinger"), 2 * v)
    chi = est.bgan_log_weights(v, "chi2").exp()
    torch.testing.assert_close(chi[1:], v[1:] / 2 + 1)
    assert chi[0] == pytest.approx(1e-6)  # V/2 + 1 < 0 is floored
    with pytest.raises(ValueError, match="divergence"):
        est.bgan_log_weights(v, "tv")  # type: ignore[arg-type]


def test_ess_and_variance():
    uniform = torch.full((2, 4), 0.25)
    torch.testing.assert_close(est.effective_sample_size(uniform), torch.tensor([4.0, 4.0]))
    torch.testing.assert_close(est.weight_variance(uniform), torch.zeros(2))
    onehot = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    assert float(est.effective_sample_size(onehot)) == pytest.approx(1.0)
    assert float(est.weight_variance(onehot)) == pytest.approx(
        torch.tensor([1.0, 0, 0, 0]).var(unbiased=False)
    )


def test_log_partition_and_running_estimate():
    log_w = torch.log(torch.tensor([1.0, 2.0, 3.0, 6.0]))
    assert float(est.log_partition_estimate(log_w)) == pytest.approx(math.log(3.0))
    z = est.update_running_log_partition(None, log_w, decay=0.9)
    assert z == pytest.approx(math.log(3.0))
    z2 = est.update_running_log_partition(z, torch.log(torch.tensor([13.0, 13.0])), decay=0.9)
    assert z2 == pytest.approx(math.log(0.9 * 3.0 + 0.1 * 13.0))
    # huge logits: no overflow
    z3 = est.update_running_log_partition(z2, torch.tensor([800.0, 800.0]), decay=0.5)
    assert z3 == pytest.approx(800.0 + math.log(0.5), abs=1e-6)


# ---------------------------------------------------------------- exact enumeration, 3 tokens, T=2


def _all_sequences() -> torch.Tensor:
    return torch.cartesian_prod(torch.arange(V), torch.arange(V))  # [9, 2]


def _seq_logp(theta: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
    """Per-token log-probs [N, 2] of a tabular policy: row 0 for y1, row 1 + y1 for y2."""
    lp1 = torch.log_softmax(theta[0], -1)[seqs[:, 0]]
    lp2 = torch.log_softmax(theta[1 + seqs[:, 0]], -1).gather(1, seqs[:, 1:2]).squeeze(1)
    return torch.stack([lp1, lp2], 1)


def _sample(theta: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    p1 = torch.softmax(theta[0], -1)
    y1 = torch.multinomial(p1.expand(n, V), 1, generator=gen).squeeze(1)
    y2 = torch.multinomial(torch.softmax(theta[1 + y1], -1), 1, generator=gen).squeeze(1)
    return torch.stack([y1, y2], 1)


def _problem():
    g = torch.Generator().manual_seed(3)
    theta = torch.randn(1 + V, V, generator=g)
    disc_logit = torch.randn(V, V, generator=g) * 2  # fixed discriminator over the 9 sequences
    return theta, disc_logit


def test_reinforce_matches_exact_policy_gradient():
    """E[sum_t grad log pi(y_t) * D(y)] equals grad_theta sum_y pi(y) D(y), by enumeration."""
    theta, disc_logit = _problem()
    seqs = _all_sequences()
    reward = torch.sigmoid(disc_logit[seqs[:, 0], seqs[:, 1]])
    th = theta.clone().requires_grad_(True)
    (_seq_logp(th, seqs).sum(1).exp() * reward).sum().backward()
    exact = th.grad.clone()

    estimates = []
    for seed in range(20):
        th = theta.clone().requires_grad_(True)
        x = _sample(theta, 4000, torch.Generator().manual_seed(seed))
        r = torch.sigmoid(disc_logit[x[:, 0], x[:, 1]])
        q = r[:, None].expand(-1, T)  # terminal reward, gamma = 1: Q_t = D(y) for all t
        est.reinforce_loss(
            _seq_logp(th, x), est.discounted_returns(torch.stack([0 * r, r], 1), 1.0)
        ).backward()
        assert torch.equal(est.discounted_returns(torch.stack([0 * r, r], 1), 1.0), q)
        estimates.append(-th.grad)
    stack = torch.stack(estimates)
    mean, se = stack.mean(0), stack.std(0) / math.sqrt(len(estimates))
    assert ((mean - exact).abs() <= 4 * se + 2e-3).all(), (mean, exact)
    # a sign or alignment bug is far outside that margin
    assert (exact.abs() > 0.02).sum() >= 6


def test_bgan_gradient_with_optimal_discriminator_matches_kl_gradient():
    """With V = log p/q (the optimal GAN logit), sum_m w~_m grad log q(x_m) -> grad E_p[log q]."""
    theta, _ = _problem()
    seqs = _all_sequences()
    target = torch.softmax(torch.randn(9, generator=torch.Generator().manual_seed(7)), 0)
    q = _seq_logp(theta, seqs).sum(1).exp()
    opt_logit = torch.log(target / q).reshape(V, V)
    th = theta.clone().requires_grad_(True)
    (-(target * _seq_logp(th, seqs).sum(1)).sum()).backward()
    exact = th.grad.clone()

    th = theta.clone().requires_grad_(True)
    x = _sample(theta, 50 * 400, torch.Generator().manual_seed(0))  # 50 conditionings x 400
    lw = est.bgan_log_weights(opt_logit[x[:, 0], x[:, 1]], "gan").reshape(50, 400)
    est.bgan_loss(_seq_logp(th, x).sum(1).reshape(50, 400), lw).backward()
    torch.testing.assert_close(th.grad, exact, atol=0.03, rtol=0.0)
    assert exact.abs().max() > 0.1


def test_bgan_loss_uses_normalised_weights():
    lp = torch.zeros(1, 3, requires_grad=True)
    log_w = torch.log(torch.tensor([[1.0, 3.0, 4.0]]))
    est.bgan_loss(lp, log_w).backward()
    torch.testing.assert_close(lp.grad, -torch.tensor([[1 / 8, 3 / 8, 4 / 8]]))
