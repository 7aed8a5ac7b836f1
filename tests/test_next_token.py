"""next_token_sampler: its steps draw from softmax(logits / T) for the rows asked for, and every
sampling loop (sequences, Monte-Carlo Q, the Monte-Carlo reward wrapper) takes its route."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import CountingPolicy, PatternD
from tests.test_sampling import chi_square_p
from textgan_envs import native_sampling
from textgan_envs.envs import MonteCarloRewardWrapper, OracleEnv
from textgan_envs.oracle import OracleLSTM
from textgan_envs.rollout import monte_carlo_q
from textgan_envs.sampling import consume_prefix, next_token_sampler, sample_sequences
from textgan_envs.sampling.projection import ProjectionSampler, set_projection_sampling

kernel = pytest.mark.skipif(
    not native_sampling.native_sampling_available(),
    reason="the C sampling kernel could not be built here",
)


@pytest.fixture(params=[pytest.param("projection", marks=kernel), "logits"])
def route(request):
    """Each test runs on the projection route and on the logits route, whichever the machine's
    ``TEXTGAN_PROJECTION_SAMPLING``; yields the route and the list of projection draws made."""
    old = set_projection_sampling(request.param == "projection")
    draws: list[int] = []
    original = ProjectionSampler.sample

    def counted(self, features, *args, **kwargs):
        draws.append(len(features))
        return original(self, features, *args, **kwargs)

    ProjectionSampler.sample = counted
    yield request.param, draws
    ProjectionSampler.sample = original
    set_projection_sampling(old)


@pytest.fixture
def constructed(monkeypatch):
    """The projection samplers built while the test runs."""
    made: list[ProjectionSampler] = []
    original = ProjectionSampler.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(ProjectionSampler, "__init__", spy)
    return made


def _oracle(vocab: int = 40, seq_len: int = 3, seed: int = 3) -> OracleLSTM:
    return OracleLSTM.random(seed, vocab_size=vocab, emb_dim=8, hidden_dim=8, seq_len=seq_len)


def _interleaved_states(model: OracleLSTM, n: int):
    """``n`` rows whose even rows have read the prefix [1], odd rows [7]; the next-token
    probabilities of each kind at temperature ``T`` come from ``probs(T)``."""
    state, prev = consume_prefix(model, torch.tensor([[1], [7]]))
    index = torch.arange(n) % 2
    logits, _ = model.step(prev, state)

    def probs(temperature: float) -> tuple[np.ndarray, np.ndarray]:
        p = torch.softmax(logits.double() / temperature, -1).numpy()
        return p[0], p[1]

    return prev[index], tuple(s[index].contiguous() for s in state), probs


def test_a_step_draws_the_tempered_distribution_of_the_rows_asked_for(route) -> None:
    name, draws = route
    model, n, temperature = _oracle(), 40_000, 0.7
    prev, state, probs = _interleaved_states(model, n)
    even, odd = probs(temperature)
    step = next_token_sampler(model, torch.Generator().manual_seed(0), temperature)
    tokens, new_state = step(prev, state)
    assert tokens.shape == (n,) and all(s.shape[0] == n for s in new_state)
    for rows, exact, other in (
        (slice(None, None, 2), even, odd),
        (torch.arange(1, n, 2), odd, even),
    ):
        picked, after = step(prev, state, rows=rows)
        assert picked.shape == (n // 2,) and all(s.shape[0] == n for s in after)
        for drawn in (tokens[rows], picked):
            counts = np.bincount(drawn.numpy(), minlength=model.vocab_size)
            assert chi_square_p(counts, exact) > 1e-3
            # a sampler that ignored the rows, or the temperature, is caught
            assert chi_square_p(counts, other) < 1e-6
            untempered = probs(1.0)[0 if exact is even else 1]
            assert chi_square_p(counts, untempered) < 1e-6
    assert draws == ([n, n // 2, n // 2] if name == "projection" else [])


def test_the_monte_carlo_reward_wrapper_completes_prefixes_from_the_policy(route) -> None:
    """The completions behind Q_1, against the oracle's exact conditional joint of y_2..y_4."""
    name, draws = route
    vocab, length, n = 5, 4, 30_000
    oracle = _oracle(vocab, length, seed=1)
    env = MonteCarloRewardWrapper(
        OracleEnv(vocab_size=vocab, seq_len=length, discriminator=PatternD(vocab)), oracle, n
    )
    seen = []
    score = env.shaper.core.score
    env.shaper.core.score = lambda y: seen.append(y.clone()) or score(y)
    env.reset(seed=0)
    env.step(2)
    (completions,) = seen
    assert completions.shape == (n, length) and bool((completions[:, 0] == 2).all())
    tails = torch.cartesian_prod(*[torch.arange(vocab)] * (length - 1))

    def conditional(first: int) -> np.ndarray:
        seqs = torch.cat([torch.full((len(tails), 1), first), tails], 1)
        return oracle.log_prob(seqs)[:, 1:].double().sum(1).exp().numpy()

    index = (completions[:, 1:] * vocab ** torch.arange(length - 2, -1, -1)).sum(1)
    counts = np.bincount(index.numpy(), minlength=vocab ** (length - 1))
    assert chi_square_p(counts, conditional(2)) > 1e-3
    assert chi_square_p(counts, conditional(3)) < 1e-6  # another prefix's completions differ
    assert draws == ([n] * (length - 1) if name == "projection" else [])


@kernel
@pytest.mark.usefixtures("projection_path_on")
def test_every_sampling_loop_builds_the_projection_sampler_when_it_is_on(constructed) -> None:
    model = _oracle(vocab=30, seq_len=4)
    weight, bias = model.output_projection()
    next_token_sampler(model)
    assert len(constructed) == 1
    assert torch.equal(constructed[0].weight, weight) and torch.equal(constructed[0].bias, bias)
    sample_sequences(model, 10)
    assert len(constructed) == 2
    tokens = sample_sequences(model, 3, generator=torch.Generator().manual_seed(0))
    constructed.clear()
    monte_carlo_q(model, lambda y: y.float().mean(1), tokens, 2)
    assert len(constructed) == 1
    env = MonteCarloRewardWrapper(
        OracleEnv(vocab_size=30, seq_len=4, discriminator=PatternD(30)), model, 2
    )
    env.reset(seed=0)
    constructed.clear()
    env.step(3)
    assert len(constructed) == 1


@kernel
@pytest.mark.usefixtures("projection_path_on")
def test_the_logits_route_builds_no_projection_sampler(constructed) -> None:
    class MaskedOracle(OracleLSTM):
        def step(self, prev, state):  # its logits differ from step_features' projection
            logits, state = super().step(prev, state)
            return logits.index_fill(1, torch.tensor([0]), float("-inf")), state

    masked = MaskedOracle.random(0, vocab_size=30, emb_dim=8, hidden_dim=8, seq_len=4)
    assert bool((sample_sequences(masked, 500) != 0).all())
    next_token_sampler(CountingPolicy(30, 4))
    assert constructed == []
    watched = _oracle()
    calls = []
    original_step = watched.step
    watched.step = lambda prev, state: calls.append(1) or original_step(prev, state)
    sample_sequences(watched, 20)
    assert constructed == [] and len(calls) == watched.seq_len  # sampled through its own step
    set_projection_sampling(False)
    next_token_sampler(_oracle())
    assert constructed == []


def test_a_bad_temperature_is_refused_when_the_step_is_built() -> None:
    with pytest.raises(ValueError, match="temperature"):
        next_token_sampler(_oracle(), temperature=0.0)
