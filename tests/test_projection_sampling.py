"""The projection sampler draws exactly from softmax((h W + b) / T) despite bfloat16 logits."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys

import pytest
import torch

from agents.policies import LSTMPolicy
from textgan_envs import native_sampling
from textgan_envs import projection_sampling as P
from textgan_envs import sampling as S
from textgan_envs.oracle import OracleLSTM
from textgan_envs.projection_sampling import ProjectionSampler, logit_error_bound
from textgan_envs.sampling import next_token

pytestmark = [
    pytest.mark.skipif(
        not native_sampling.native_sampling_available(),
        reason="the C sampling kernel could not be built here",
    ),
    pytest.mark.usefixtures("kernel_arch", "projection_path_on"),
]


def _problem(scale: float, vocab: int = 600, features: int = 16, seed: int = 0, offset=0.0):
    """Weights, bias and one feature row. The last feature is a constant 1 whose weights
    are about ``offset``: a large one makes the bfloat16 logits visibly off (the softmax
    ignores a common offset)."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(features, vocab, generator=gen) * scale
    weight[-1] = weight[-1] * 0.1 + offset
    bias = torch.randn(vocab, generator=gen)
    h = torch.rand(1, features, generator=gen) * 2 - 1
    h[0, -1] = 1.0
    return weight, bias, h


def _chi_square(counts: torch.Tensor, probs: torch.Tensor, draws: int) -> tuple[float, int]:
    expected = probs.double() * draws
    keep = expected > 20
    stat = ((counts.double()[keep] - expected[keep]) ** 2 / expected[keep]).sum().item()
    return stat, int(keep.sum())


def _threshold(dof: int) -> float:
    return dof + 5 * math.sqrt(2 * dof)  # ~5 sigma above the chi-square mean


@pytest.mark.parametrize("fused", [True, False], ids=["projected_in_kernel", "bf16_matmul_first"])
@pytest.mark.parametrize(
    ("scale", "offset", "candidates", "temperature"), [(1.0, 120.0, 4, 1.0), (0.5, 100.0, 1, 0.7)]
)
def test_bfloat16_proposal_with_rejection_matches_the_exact_softmax(
    scale, offset, candidates, temperature, fused, monkeypatch
):
    has_dot = native_sampling.has_bf16_dot()
    if fused and not has_dot:
        pytest.skip("this CPU's build of the kernel has no bfloat16 dot product")
    # bfloat16 logits near 100 are quantised to steps of 0.5, so the proposal is far off
    # and many candidates are rejected; with one candidate many rows are redrawn.
    weight, bias, h = _problem(scale, offset=offset)
    exact = torch.softmax((h @ weight + bias) / temperature, dim=-1)[0]
    draws = 120_000
    # Both routes: the kernel's own bfloat16 dot products (where the build has them) and a
    # bfloat16 matmul whose rounded output the kernel reads.
    monkeypatch.setattr(native_sampling, "has_bf16_dot", lambda: fused and has_dot)
    sampler = ProjectionSampler(weight, bias, precision="bfloat16", candidates=candidates)
    assert sampler.fused == (fused and has_dot)
    tokens = sampler.sample(
        h.expand(draws, -1), torch.Generator().manual_seed(1), temperature=temperature
    )
    stat, dof = _chi_square(torch.bincount(tokens, minlength=weight.shape[1]), exact, draws)
    assert stat < _threshold(dof), (stat, dof)

    # The test has the power to catch a missing correction: sampling the bfloat16
    # proposal itself would put the expected statistic far above the threshold.
    approx = (h.bfloat16() @ weight.bfloat16()).float() + bias
    proposal = torch.softmax(approx / temperature, dim=-1)[0]
    keep = exact * draws > 20
    noncentrality = draws * (((proposal - exact) ** 2)[keep] / exact[keep]).sum().item()
    assert dof + noncentrality > 2 * _threshold(dof)


def test_float32_precision_matches_the_softmax_too():
    weight, bias, h = _problem(1.0, vocab=300)
    exact = torch.softmax(h @ weight + bias, dim=-1)[0]
    draws = 60_000
    tokens = ProjectionSampler(weight, bias, precision="float32").sample(
        h.expand(draws, -1), torch.Generator().manual_seed(2)
    )
    stat, dof = _chi_square(torch.bincount(tokens, minlength=300), exact, draws)
    assert stat < _threshold(dof)


def test_error_bound_covers_the_bfloat16_logits():
    gen = torch.Generator().manual_seed(3)
    unit = 2.0**-8
    for scale in (0.1, 1.0, 10.0):
        weight = torch.randn(33, 2000, generator=gen) * scale
        h = torch.cat([torch.rand(256, 32, generator=gen) * 2 - 1, torch.ones(256, 1)], dim=1)
        exact = h.double() @ weight.double()
        approx = (h.bfloat16() @ weight.bfloat16()).float()
        abs_max = approx.abs().amax(dim=1)
        bound = logit_error_bound(h, P.projection_norms(weight), abs_max)
        error = (exact - approx.double()).abs().amax(dim=1)
        assert torch.all(error <= bound.double()), (scale, (error / bound).max())
        # Measured rounding norms make it well under the a-priori 2u ||h|| max ||W_v||.
        worst_case = 2 * unit * h.norm(dim=1) * weight.norm(dim=0).amax()
        assert torch.all(bound - 1.01 * unit * abs_max < 0.75 * worst_case + 2e-4)


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
def test_rows_are_seeded_and_independent_of_threads(precision):
    weight, bias, _ = _problem(1.0, vocab=500)
    h = torch.rand(67, 16, generator=torch.Generator().manual_seed(4)) * 2 - 1  # 8 x 8 + 3 rows
    sampler = ProjectionSampler(weight, bias, precision=precision)
    first = sampler.sample(h, torch.Generator().manual_seed(5))
    torch.set_num_threads(2)  # rows split differently between threads
    again = sampler.sample(h, torch.Generator().manual_seed(5))
    assert torch.equal(first, again) and first.shape == (67,) and first.dtype == torch.long
    assert not torch.equal(first, sampler.sample(h, torch.Generator().manual_seed(6)))
    # each row's draw depends on that row only: the last 3 rows (a partial group of the
    # kernel) drawn on their own with their own uniforms give the same classes
    if precision == "float32":
        u = torch.rand(67, generator=torch.Generator().manual_seed(5))
        alone = native_sampling.sample_projected(
            h[64:].contiguous(), sampler.padded_weight, sampler.bias_padded, 500, 1.0, u[64:]
        )[0]
        assert torch.equal(alone, first[64:])
    assert sampler.sample(h[:0]).shape == (0,)


def test_bad_arguments_are_named():
    weight, bias, h = _problem(1.0, vocab=50)
    with pytest.raises(ValueError, match="precision"):
        ProjectionSampler(weight, bias, precision="float16")
    with pytest.raises(ValueError, match="candidates"):
        ProjectionSampler(weight, bias, candidates=0)
    with pytest.raises(ValueError, match="bias"):
        ProjectionSampler(weight, bias[:-1])
    with pytest.raises(ValueError, match=r"features must be \[N, 16\]"):
        ProjectionSampler(weight, bias).sample(torch.zeros(3, 15))
    with pytest.raises(ValueError, match="temperature"):
        ProjectionSampler(weight, bias).sample(h, temperature=0.0)


@pytest.mark.parametrize("precision", ["bfloat16", "float32"])
@pytest.mark.parametrize("make", ["oracle", "policy"])
def test_sequences_follow_the_exact_joint_distribution(make, precision, monkeypatch):
    """All 8^4 sequences enumerated: sampled frequencies match the model's joint probabilities."""

    # "auto" precision follows the CPU; both are checked on any CPU (without native
    # bfloat16 dot products, through a bfloat16 matmul: slower, just as exact).
    def pinned(model):
        return ProjectionSampler(*model.output_projection(), precision=precision)

    monkeypatch.setattr(next_token, "_projection_sampler", pinned)
    vocab, length = 8, 4
    if make == "oracle":
        model = OracleLSTM.random(0, vocab_size=vocab, emb_dim=8, hidden_dim=8, seq_len=length)
    else:
        model = LSTMPolicy(vocab, length, 16, 16, device="cpu")
        model.reset_parameters(torch.Generator().manual_seed(0))
    used = []
    original = P.ProjectionSampler.sample
    monkeypatch.setattr(
        P.ProjectionSampler,
        "sample",
        lambda self, *a, **k: used.append(self.precision) or original(self, *a, **k),
    )
    every = torch.tensor(list(itertools.product(range(vocab), repeat=length)))
    draws = 300_000
    with torch.no_grad():
        probs = S.sequence_log_probs(model, every).sum(dim=1).double().exp()
        tokens = S.sample_sequences(model, draws, generator=torch.Generator().manual_seed(7))
    assert set(used) == {precision}, "the projection path was not taken"
    index = (tokens * vocab ** torch.arange(length - 1, -1, -1)).sum(dim=1)
    stat, dof = _chi_square(torch.bincount(index, minlength=vocab**length), probs, draws)
    assert stat < _threshold(dof), (stat, dof)


def test_switching_the_projection_path_off_uses_model_step():
    model = OracleLSTM.random(0, vocab_size=30, emb_dim=8, hidden_dim=8, seq_len=3)
    assert isinstance(S._projection_sampler(model), ProjectionSampler)
    assert P.set_projection_sampling(False) is True
    assert not P.projection_sampling_enabled()
    assert S._projection_sampler(model) is None


def test_auto_precision_follows_the_cpu(monkeypatch):
    weight, bias, _ = _problem(1.0, vocab=30)
    monkeypatch.setattr(native_sampling, "has_bf16_dot", lambda: False)
    assert ProjectionSampler(weight, bias).precision == "float32"
    monkeypatch.setattr(native_sampling, "has_bf16_dot", lambda: True)
    assert ProjectionSampler(weight, bias).precision == "bfloat16"


def test_the_projection_path_is_auto_by_default_and_can_be_forced(kernel_arch):
    code = (
        "from textgan_envs import projection_sampling as P, native_sampling as N; "
        "print(P.projection_sampling_enabled(), N.has_bf16_dot())"
    )
    environ = {k: v for k, v in os.environ.items() if k != "TEXTGAN_PROJECTION_SAMPLING"}
    environ["TEXTGAN_NATIVE_ARCH"] = kernel_arch
    for setting, expected in (("auto", None), ("0", "False"), ("1", "True")):
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**environ, "TEXTGAN_PROJECTION_SAMPLING": setting},
            capture_output=True,
            text=True,
        )
        enabled, has_dot = done.stdout.split()
        assert enabled == (expected or "True"), (setting, done.stderr)  # "auto": on
        if kernel_arch == "portable":
            assert has_dot == "False"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**environ, "TEXTGAN_PROJECTION_SAMPLING": "yes"},
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "TEXTGAN_PROJECTION_SAMPLING must be" in done.stderr
    with pytest.raises(ValueError, match="True, False or 'auto'"):
        P.set_projection_sampling("on")
