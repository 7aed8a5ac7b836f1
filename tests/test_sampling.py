"""Categorical samplers, sequence sampling, teacher-forced scoring and Monte-Carlo completion."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from tests.helpers import CountingPolicy
from textgan_envs import sampling as S
from textgan_envs.oracle import OracleLSTM

SAMPLERS = [
    S.sample_categorical,
    S.sample_categorical_inverse_cdf,
    S.sample_categorical_gumbel,
    S.sample_categorical_multinomial,
]


def chi_square_p(counts: np.ndarray, probs: np.ndarray) -> float:
    """p-value of counts against probs, pooling classes expected fewer than 5 times."""
    expected = probs / probs.sum() * counts.sum()
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        assert obs[-1] == 0, "a zero-probability class was drawn"
        obs, exp = obs[:-1], exp[:-1]
    return float(stats.chisquare(obs, exp).pvalue)


def draw_counts(sampler, logits: torch.Tensor, n: int, seed: int, **kw) -> np.ndarray:
    gen = torch.Generator().manual_seed(seed)
    rows = logits.expand(n, -1).contiguous()
    draws = sampler(rows, generator=gen, **kw)
    return np.bincount(draws.numpy(), minlength=logits.shape[-1])


# V=7: single-level path; 600 = 24 x 25 blocks; 601 (prime): padded blocks.
@pytest.mark.parametrize("vocab", [7, 600, 601])
@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
def test_frequencies_match_softmax(sampler, vocab: int) -> None:
    logits = torch.randn(1, vocab, generator=torch.Generator().manual_seed(vocab)) * 2.0
    probs = torch.softmax(logits.double(), -1)[0].numpy()
    counts = draw_counts(sampler, logits, 12_000, seed=1)
    assert chi_square_p(counts, probs) > 1e-3
    # power check: the same counts reject the probabilities of shifted logits
    wrong = np.roll(probs, 1)
    assert chi_square_p(counts, wrong) < 1e-6


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda f: f.__name__)
def test_temperature_scales_logits(sampler) -> None:
    logits = torch.randn(1, 50, generator=torch.Generator().manual_seed(0)) * 2
    for temperature in (0.5, 2.0):
        probs = torch.softmax(logits.double() / temperature, -1)[0].numpy()
        counts = draw_counts(sampler, logits, 20_000, seed=2, temperature=temperature)
        assert chi_square_p(counts, probs) > 1e-3
    cold = draw_counts(sampler, logits, 2000, seed=3, temperature=1e-3)
    assert cold[int(logits.argmax())] == 2000
    with pytest.raises(ValueError, match="temperature"):
        sampler(logits, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        sampler(logits, temperature=float("nan"))


def test_masked_classes_are_never_drawn_in_two_level_path() -> None:
    logits = torch.full((4000, 5000), float("-inf"))
    allowed = torch.tensor([3, 1777, 4999])  # in different blocks, incl. the very last class
    logits[:, allowed] = torch.tensor([0.0, 1.0, -1.0])
    draws = S.sample_categorical(logits, generator=torch.Generator().manual_seed(0))
    assert set(draws.unique().tolist()) == set(allowed.tolist())
    counts = np.bincount(draws.numpy(), minlength=5000)[allowed.numpy()]
    probs = torch.softmax(torch.tensor([0.0, 1.0, -1.0], dtype=torch.float64), 0).numpy()
    assert stats.chisquare(counts, probs * counts.sum()).pvalue > 1e-3


def test_leading_shape_seeding_and_global_rng() -> None:
    logits = torch.randn(2, 3, 700)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    a = S.sample_categorical(logits, generator=torch.Generator().manual_seed(5))
    b = S.sample_categorical(logits, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), before)
    assert a.shape == (2, 3) and a.dtype == torch.long and torch.equal(a, b)
    with pytest.raises(ValueError, match="class"):
        S.sample_categorical(torch.zeros(3, 0))


# ---------------------------------------------------------------- sequences
def tiny_oracle(vocab: int = 6, seq_len: int = 4, seed: int = 2) -> OracleLSTM:
    return OracleLSTM.random(seed, vocab_size=vocab, emb_dim=4, hidden_dim=4, seq_len=seq_len)


def stepwise_log_probs(model, tokens: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    state = model.initial_state(tokens.shape[0])
    prev = torch.full((tokens.shape[0],), model.start_token)
    cols = []
    for t in range(tokens.shape[1]):
        logits, state = model.step(prev, state)
        log_p = torch.log_softmax(logits.double() / temperature, -1)
        cols.append(log_p.gather(1, tokens[:, t : t + 1]).squeeze(1))
        prev = tokens[:, t]
    return torch.stack(cols, 1)


def test_sample_sequences_shape_determinism_and_preallocation() -> None:
    oracle = tiny_oracle()
    a = S.sample_sequences(oracle, 1000, generator=torch.Generator().manual_seed(1), batch_size=64)
    b = S.sample_sequences(oracle, 1000, generator=torch.Generator().manual_seed(1), batch_size=64)
    assert a.shape == (1000, 4) and a.dtype == torch.long and torch.equal(a, b)
    assert a.min() >= 0 and a.max() < 6
    assert S.sample_sequences(oracle, 0).shape == (0, 4)
    with pytest.raises(ValueError, match="n must be"):
        S.sample_sequences(oracle, -1)
    with pytest.raises(ValueError, match="batch_size"):
        S.sample_sequences(oracle, 3, batch_size=0)
    with pytest.raises(TypeError, match="RecurrentSequenceModel"):
        S.sample_sequences(object(), 3)  # type: ignore[arg-type]


def test_sampled_sequences_follow_the_joint_distribution() -> None:
    oracle = tiny_oracle(vocab=4, seq_len=3)
    n = 60_000
    samples = S.sample_sequences(oracle, n, generator=torch.Generator().manual_seed(0))
    grid = torch.cartesian_prod(*[torch.arange(4)] * 3)  # all 64 sequences
    probs = oracle.log_prob(grid).double().sum(1).exp().numpy()
    assert abs(probs.sum() - 1) < 1e-5
    index = (samples * torch.tensor([16, 4, 1])).sum(1).numpy()
    assert chi_square_p(np.bincount(index, minlength=64), probs) > 1e-3


def test_sequence_log_probs_equals_stepwise_and_temperature() -> None:
    oracle = tiny_oracle()
    tokens = torch.randint(0, 6, (32, 4), generator=torch.Generator().manual_seed(0))
    for temperature in (1.0, 0.7):
        got = S.sequence_log_probs(oracle, tokens, temperature=temperature).double()
        expected = stepwise_log_probs(oracle, tokens, temperature)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    prefix = S.sequence_log_probs(oracle, tokens[:, :2])
    torch.testing.assert_close(prefix, S.sequence_log_probs(oracle, tokens)[:, :2])
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 6\)"):
        S.sequence_log_probs(oracle, tokens + 6)


def test_sequence_log_probs_is_differentiable() -> None:
    from agents.policies import LSTMPolicy

    policy = LSTMPolicy(6, 4, emb_dim=4, hidden_dim=4, device="cpu")
    tokens = torch.randint(0, 6, (8, 4), generator=torch.Generator().manual_seed(0))
    S.sequence_log_probs(policy, tokens).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


def test_consume_prefix_matches_the_sampling_state() -> None:
    oracle = tiny_oracle()
    tokens = torch.randint(0, 6, (5, 4), generator=torch.Generator().manual_seed(3))
    state, prev = S.consume_prefix(oracle, tokens[:, :2])
    assert torch.equal(prev, tokens[:, 1])
    logits, _ = oracle.step(prev, state)
    expected = stepwise_log_probs(oracle, tokens)[:, 2]
    got = torch.log_softmax(logits.double(), -1).gather(1, tokens[:, 2:3]).squeeze(1)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    empty_state, start = S.consume_prefix(oracle, tokens[:, :0])
    assert torch.equal(start, torch.zeros(5, dtype=torch.long))
    assert all(not s.any() for s in empty_state)


def test_complete_sequences_keeps_prefix_and_matches_conditionals() -> None:
    oracle = tiny_oracle(vocab=5, seq_len=3, seed=4)
    n = 40_000
    prefix = torch.tensor([[2]]).expand(n, 1)
    state, prev = S.consume_prefix(oracle, prefix[:1])
    state = tuple(s.expand(n, -1).contiguous() for s in state)
    done = S.complete_sequences(
        oracle, prefix, state, prev.expand(n), generator=torch.Generator().manual_seed(0)
    )
    assert done.shape == (n, 3) and (done[:, 0] == 2).all()
    # the joint of the completion (y2, y3) given y1 = 2 against the model's probabilities
    grid = torch.cartesian_prod(torch.tensor([2]), torch.arange(5), torch.arange(5))
    probs = oracle.log_prob(grid)[:, 1:].double().sum(1).exp().numpy()
    index = (done[:, 1] * 5 + done[:, 2]).numpy()
    counts = np.bincount(index, minlength=25)
    assert chi_square_p(counts, probs) > 1e-3
    # the unconditional joint of (y2, y3) is a different distribution, and the test sees it
    free = S.sample_sequences(oracle, n, generator=torch.Generator().manual_seed(1))
    other = np.bincount((free[:, 1] * 5 + free[:, 2]).numpy(), minlength=25)
    assert chi_square_p(other, probs) < 1e-6


def test_complete_sequences_edges_and_errors() -> None:
    oracle = tiny_oracle()
    full = S.sample_sequences(oracle, 3, generator=torch.Generator().manual_seed(0))
    state, prev = S.consume_prefix(oracle, full)
    assert torch.equal(S.complete_sequences(oracle, full, state, prev), full)
    # an empty prefix from the initial state is ordinary sampling with the same random stream
    empty = full[:, :0]
    fresh = S.complete_sequences(
        oracle,
        empty,
        oracle.initial_state(3),
        torch.zeros(3, dtype=torch.long),
        generator=torch.Generator().manual_seed(0),
    )
    assert torch.equal(fresh, full)
    with pytest.raises(ValueError, match="state tensor 0 has batch dimension 3, expected 2"):
        S.complete_sequences(oracle, full[:2, :1], state, prev[:2])
    with pytest.raises(ValueError, match="prev_tokens"):
        S.complete_sequences(oracle, full[:, :1], state, prev[:2])
    with pytest.raises(ValueError, match="exceeds"):
        S.complete_sequences(oracle, torch.zeros(3, 5, dtype=torch.long), state, prev)


def test_complete_in_place_advances_only_the_leading_rows() -> None:
    # rows laid out by prefix length, as Monte-Carlo search lays them out: row 0 generates
    # from position 2, row 1 from 3, row 2 from 4; each continues its prev (next = prev + 1)
    policy = CountingPolicy(vocab_size=10, seq_len=5)
    out = torch.full((3, 5), -1, dtype=torch.long)
    step = S.next_token_sampler(policy)
    S.complete_in_place(step, out, torch.tensor([4, 7, 1]), (torch.zeros(3, 2),), 2, [1, 2, 3])
    assert out.tolist() == [[-1, -1, 5, 6, 7], [-1, -1, -1, 8, 9], [-1, -1, -1, -1, 2]]
    assert policy.rows_stepped == 1 + 2 + 3
    state = (torch.zeros(3, 2),)
    with pytest.raises(ValueError, match="needs 3 counts"):
        S.complete_in_place(step, out, torch.zeros(3, dtype=torch.long), state, 2, [1, 2])
    with pytest.raises(ValueError, match="non-decreasing"):
        S.complete_in_place(step, out, torch.zeros(3, dtype=torch.long), state, 2, [2, 1, 3])
    with pytest.raises(ValueError, match="non-decreasing"):
        S.complete_in_place(step, out, torch.zeros(3, dtype=torch.long), state, 2, [1, 2, 4])


def test_prefix_states_are_consume_prefix_for_every_length() -> None:
    oracle = tiny_oracle()
    tokens = torch.randint(0, 6, (5, 4), generator=torch.Generator().manual_seed(3))
    pairs = list(S.prefix_states(oracle, tokens))
    assert len(pairs) == 5
    for t, (state, prev) in enumerate(pairs):
        expected_state, expected_prev = S.consume_prefix(oracle, tokens[:, :t])
        assert torch.equal(prev, expected_prev)
        assert all(torch.equal(a, b) for a, b in zip(state, expected_state, strict=True))
