"""The per-token loops of sampling and Monte-Carlo rollouts are GPU-ready, tested on CPU.

"GPU-ready" here means two checkable things: (1) once the loop has started, no host
synchronisation (``.item()``, ``.tolist()``, ``.numpy()``, ``bool``/``int``/``float`` of a tensor,
``.cpu()``), which on a GPU would stall the pipeline every token; (2) no ``torch.cuda`` call at all
on a CPU run. Both are enforced by monkeypatching those entry points to raise while the loop runs.
The speed switches (compile, bf16 autocast) must not change results beyond tolerance.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from agents.perf_switches import PerfSwitches, SwitchedModule, apply_switches, to_device
from agents.policies import LSTMPolicy
from textgan_envs.discriminators import CNNDiscriminator, LSTMDiscriminator, eval_logits
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


def test_switches_default_off_on_cpu(monkeypatch):
    policy = _policy()
    assert PerfSwitches().resolve("cpu") == (False, False)
    with no_host_sync_in_loop(monkeypatch):
        assert apply_switches(policy) is policy  # no wrapper, no CUDA query
    with pytest.raises(ValueError, match="perf switch 'bf16'"):
        PerfSwitches(bf16="yes").resolve("cpu")


def test_bf16_autocast_keeps_results_within_tolerance():
    policy = _policy()
    fast = apply_switches(policy, PerfSwitches(compile="off", bf16="on"))
    assert isinstance(fast, SwitchedModule)
    tokens = policy.sample(64, generator=torch.Generator().manual_seed(4))
    state = policy.initial_state(64)
    ref_logits, (ref_h, _) = policy.step(tokens[:, 0], state)
    logits, (h, c) = fast.step(tokens[:, 0], state)
    assert logits.dtype == h.dtype == c.dtype == torch.float32
    torch.testing.assert_close(logits, ref_logits, atol=0.05, rtol=0.05)
    torch.testing.assert_close(h, ref_h, atol=0.02, rtol=0.02)
    ref_lp = torch.log_softmax(policy.teacher_forced_logits(tokens), -1)
    lp = torch.log_softmax(fast.teacher_forced_logits(tokens), -1)
    assert (lp - ref_lp).abs().mean() < 0.02
    # Gradients reach the wrapped module's own parameters.
    fast.teacher_forced_logits(tokens).sum().backward()
    assert policy.head.weight.grad is not None and policy.head.weight.grad.abs().sum() > 0

    torch.manual_seed(0)
    disc = CNNDiscriminator(300, 8, emb_dim=16, filter_sizes=(2, 3), num_filters=(16, 16))
    fast_disc = apply_switches(disc, PerfSwitches(compile="off", bf16="on"))
    ref = eval_logits(disc, tokens)
    got = eval_logits(fast_disc, tokens)
    assert got.dtype == torch.float32
    # Close to the eval-mode reference: eval_logits turned dropout off through the wrapper.
    torch.testing.assert_close(got, ref, atol=0.05, rtol=0.05)
    assert disc.training  # and restored the wrapped module's train mode afterwards
    # Sampling through the switched model draws (nearly) the same sequences as fp32.
    a = sample_sequences(policy, 200, generator=torch.Generator().manual_seed(5))
    b = sample_sequences(fast, 200, generator=torch.Generator().manual_seed(5))
    assert (a == b).float().mean() > 0.8


@pytest.mark.slow
def test_torch_compile_matches_eager():
    """``torch.compile`` (inductor, CPU) gives the eager results up to float rounding (slow: compiles)."""
    policy = _policy()
    fast = apply_switches(policy, PerfSwitches(compile="on", bf16="off"))
    tokens = policy.sample(32, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(
        fast.teacher_forced_logits(tokens),
        policy.teacher_forced_logits(tokens),
        atol=1e-5,
        rtol=1e-5,
    )
    a = sample_sequences(policy, 40, generator=torch.Generator().manual_seed(7))
    b = sample_sequences(fast, 40, generator=torch.Generator().manual_seed(7))
    assert (a == b).float().mean() > 0.99


def test_to_device_on_cpu_is_free_of_copies_and_cuda(monkeypatch):
    corpus = torch.randint(0, 10, (100, 5))
    with no_host_sync_in_loop(monkeypatch):
        assert to_device(corpus, "cpu") is corpus
