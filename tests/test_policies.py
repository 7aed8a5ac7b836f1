"""The LSTM generator: one set of weights, two code paths that must agree."""

from __future__ import annotations

import pytest
import torch

from agents.policies import LSTMPolicy
from textgan_envs.sampling import sequence_log_probs
from textgan_envs.sequence_model import RecurrentSequenceModel


def make_policy(seed: int = 0, **kw) -> LSTMPolicy:
    policy = LSTMPolicy(kw.pop("vocab_size", 30), kw.pop("seq_len", 6), device="cpu", **kw)
    policy.reset_parameters(torch.Generator().manual_seed(seed))
    return policy


def tokens(n: int = 16, vocab: int = 30, length: int = 6, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(seed))


def test_is_a_protocol_model_with_seqgan_init() -> None:
    policy = LSTMPolicy(5000, 20, device="cpu")
    assert isinstance(policy, RecurrentSequenceModel)
    assert policy.device == torch.device("cpu")
    values = torch.cat([p.detach().flatten() for p in policy.parameters()])
    assert abs(values.std().item() - 0.1) < 0.005 and abs(values.mean().item()) < 0.005


def test_teacher_forced_equals_stepwise() -> None:
    policy = make_policy(emb_dim=8, hidden_dim=12)
    with torch.no_grad():  # give the weights some scale so disagreements would show
        for p in policy.parameters():
            p.mul_(8.0)
    x = tokens()
    for temperature in (1.0, 0.6):
        fast = policy.log_prob(x, temperature=temperature)
        slow = sequence_log_probs(policy, x, temperature=temperature)
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    assert fast.shape == (16, 6) and (fast <= 0).all()


def test_log_prob_is_differentiable_and_chunked_consistently() -> None:
    policy = make_policy()
    x = tokens(n=100)  # more than the CPU chunk (32 sequences)
    full = policy.log_prob(x)
    torch.testing.assert_close(full[:10], policy.log_prob(x[:10]))
    full.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.parameters())


def test_sampling_is_seeded_and_leaves_global_rng_alone() -> None:
    policy = make_policy()
    before = torch.get_rng_state()
    a = policy.sample(50, generator=torch.Generator().manual_seed(3))
    b = policy.sample(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (50, 6) and a.dtype == torch.long
    assert torch.equal(torch.get_rng_state(), before)
    assert not torch.equal(a, policy.sample(50, generator=torch.Generator().manual_seed(4)))


def test_reset_parameters_is_seeded() -> None:
    a, b, c = make_policy(1), make_policy(1), make_policy(2)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.head.weight, c.head.weight)


def test_config_round_trip(tmp_path) -> None:
    policy = make_policy(emb_dim=5, hidden_dim=7, start_token=3)
    path = tmp_path / "p.pt"
    torch.save({"state": policy.state_dict(), "config": policy.config()}, path)
    saved = torch.load(path, weights_only=True)
    rebuilt = LSTMPolicy.from_state_dict(saved["state"], saved["config"], device="cpu")
    assert rebuilt.config() == policy.config() and rebuilt.start_token == 3
    x = tokens()
    torch.testing.assert_close(rebuilt.log_prob(x), policy.log_prob(x), atol=0, rtol=0)


def test_rebuild_errors_are_clear() -> None:
    policy = make_policy()
    wrong = dict(policy.config(), vocab_size=31)
    with pytest.raises(ValueError, match="does not fit"):
        LSTMPolicy.from_state_dict(policy.state_dict(), wrong, device="cpu")
    with pytest.raises(ValueError, match="unknown LSTMPolicy config keys: layers"):
        LSTMPolicy.from_state_dict(policy.state_dict(), dict(policy.config(), layers=2))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vocab_size": 0, "seq_len": 5}, "vocab_size"),
        ({"vocab_size": 5, "seq_len": 0}, "seq_len"),
        ({"vocab_size": 5, "seq_len": 5, "start_token": 5}, "start_token"),
        ({"vocab_size": 5, "seq_len": 5, "hidden_dim": 0}, "hidden_dim"),
    ],
)
def test_invalid_arguments(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        LSTMPolicy(device="cpu", **kwargs)


def test_log_prob_input_errors() -> None:
    policy = make_policy()
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        policy.log_prob(torch.zeros(6, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        policy.log_prob(tokens(), temperature=0)
