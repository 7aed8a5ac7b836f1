"""The per-token loops of sampling and Monte-Carlo rollouts are GPU-ready, tested on CPU.

"GPU-ready" here means two checkable things: (1) once the loop has started, no host
synchronisation (``.item()``, ``.tolist()``, ``.numpy()``, ``bool``/``int``/``float`` of a tensor,
``.cpu()``), which on a GPU would stall the pipeline every token; (2) no ``torch.cuda`` call at all
on a CPU run. Both are enforced by monkeypatching those entry points to raise while the loop runs.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from agents.policies import LSTMPolicy
from textgan_envs.discriminators import LSTMDiscriminator, eval_logits
from textgan_envs.oracle import OracleLSTM
from textgan_envs.projection_sampling import set_projection_sampling
from textgan_envs.rollout import monte_carlo_q
from textgan_envs.sampling import sample_sequences

SYNC_METHODS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__")
CUDA_FUNCTIONS = (
    "is_available",
    "synchronize",
    "current_device",
    "device_count",
    "current_stream",
    "set_device",
    "is_bf16_supported",
)


@pytest.fixture(autouse=True)
def _plain_sampling_path():
    """Check the loops that run on a GPU: the projection sampler is CPU-only (and syncs there)."""
    old = set_projection_sampling(False)
    yield
    set_projection_sampling(old)


class HostSyncError(AssertionError):
    """A host synchronisation happened inside a hot loop."""


class _Guard:
    """Armed from the model's first ``step`` call until :meth:`disarm`."""

    armed = False


def _guarded(model: nn.Module, guard: type[_Guard]) -> nn.Module:
    """Arm ``guard`` at the first ``step`` of ``model`` (the start of the per-token loop)."""
    original = model.step

    def step(prev, state):
        guard.armed = True
        return original(prev, state)

    model.step = step  # instance attribute shadows the method
    return model


@contextlib.contextmanager
def no_host_sync_in_loop(monkeypatch):
    """Raise on any host sync while the guard is armed and on any ``torch.cuda`` call throughout."""

    class Guard(_Guard):
        pass

    for name in SYNC_METHODS:
        original = getattr(torch.Tensor, name)

        def patched(self, *args, _name=name, _original=original, **kwargs):
            if Guard.armed:
                raise HostSyncError(f"Tensor.{_name} (a host sync) inside the per-token loop")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, patched)
    for name in CUDA_FUNCTIONS:

        def cuda_call(*args, _name=name, **kwargs):
            raise HostSyncError(f"torch.cuda.{_name} called on a CPU run")

        monkeypatch.setattr(torch.cuda, name, cuda_call)
    yield Guard
    monkeypatch.undo()


def _policy() -> LSTMPolicy:
    torch.manual_seed(0)
    return LSTMPolicy(300, 8, emb_dim=16, hidden_dim=16, device="cpu", init_std=0.5)


def _oracle() -> OracleLSTM:
    return OracleLSTM.random(0, vocab_size=700, emb_dim=16, hidden_dim=16, seq_len=8)  # 2-level


@pytest.mark.parametrize("make_model", [_policy, _oracle], ids=["policy", "oracle"])
def test_sampling_loop_has_no_host_sync_and_no_cuda(monkeypatch, make_model):
    model = make_model()
    expected = sample_sequences(model, 50, generator=torch.Generator().manual_seed(1))
    with no_host_sync_in_loop(monkeypatch) as guard:
        _guarded(model, guard)
        got = sample_sequences(model, 50, generator=torch.Generator().manual_seed(1))
        guard.armed = False
    assert torch.equal(got, expected)  # the guard changed nothing but watched


def test_monte_carlo_q_loop_has_no_host_sync_and_no_cuda(monkeypatch):
    policy = _policy()
    disc = LSTMDiscriminator(300, 8, emb_dim=8, hidden_dim=8, dropout=0.0)
    tokens = policy.sample(6, generator=torch.Generator().manual_seed(2))
    expected = monte_carlo_q(
        policy, lambda y: torch.sigmoid(eval_logits(disc, y)), tokens, 4,
        generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    with no_host_sync_in_loop(monkeypatch) as guard:
        _guarded(policy, guard)

        def score(y):
            guard.armed = False  # scoring happens once, after the loop
            return torch.sigmoid(eval_logits(disc, y))

        q = monte_carlo_q(policy, score, tokens, 4, generator=torch.Generator().manual_seed(3))
        assert not guard.armed, "score_fn was never called"
    assert torch.equal(q, expected)


def test_the_guard_catches_a_host_sync(monkeypatch):
    """A model that calls ``.item()`` every token is caught: the checks above can fail."""

    class SyncingPolicy(LSTMPolicy):
        def step(self, prev_tokens, state):
            _ = prev_tokens.sum().item()
            return super().step(prev_tokens, state)

    torch.manual_seed(0)
    model = SyncingPolicy(50, 4, device="cpu")
    with no_host_sync_in_loop(monkeypatch) as guard:
        _guarded(model, guard)
        with pytest.raises(HostSyncError, match="Tensor.item"):
            sample_sequences(model, 5)
        guard.armed = False


def test_the_guard_catches_a_cuda_call(monkeypatch):
    model = _policy()
    with no_host_sync_in_loop(monkeypatch):
        with pytest.raises(HostSyncError, match="torch.cuda.is_available"):
            LSTMPolicy(10, 3, device="auto")  # "auto" asks CUDA: fine at build time, not in loops
        sample_sequences(model, 4)  # but the loop itself never asks
