"""The C sampling kernel: exact inverse-CDF draws, masks, bad rows, threads, build fallback."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from agents.policies import LSTMPolicy
from textgan_envs import native_sampling as N
from textgan_envs import sampling as S
from textgan_envs.oracle import OracleLSTM

pytestmark = [
    pytest.mark.skipif(
        not N.native_sampling_available(), reason="the C sampling kernel could not be built here"
    ),
    pytest.mark.usefixtures("kernel_arch", "projection_path_on"),
]


def _logits(rows: int, vocab: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    return torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.mark.parametrize("vocab", [1, 5, 16, 17, 1000, 5000])
@pytest.mark.parametrize("temperature", [1.0, 0.6])
def test_each_draw_is_the_inverse_cdf_of_its_uniform(vocab, temperature):
    # Deterministic, and far tighter than a frequency test: with cdf the float64 softmax
    # in class order, class k must be drawn for every u in [cdf[k-1], cdf[k]). Uniforms
    # just inside both ends of a random class's interval (by 1e-5, above float32 rounding)
    # catch an exp off by 0.02%, a wrong block offset or a missing bias.
    rows = 600
    logits, bias = _logits(rows, vocab, seed=vocab), _logits(1, vocab, seed=vocab + 1)[0]
    probs = torch.softmax((logits.double() + bias.double()) / temperature, -1)
    gen = torch.Generator().manual_seed(2)
    k = torch.multinomial(probs.float(), 1, generator=gen)[:, 0]
    cdf = probs.cumsum(-1)
    start = torch.where(k > 0, cdf.gather(1, (k - 1).clamp(min=0)[:, None])[:, 0], 0.0)
    stop = cdf.gather(1, k[:, None])[:, 0]
    inside = probs.gather(1, k[:, None])[:, 0] > 3e-5
    for u in (start + 1e-5, stop - 1e-5):
        drawn = N.sample_rows(logits, u.float().clamp(max=1 - 2**-24), bias, 1.0 / temperature)
        assert torch.equal(drawn[inside], k[inside])
    assert int(inside.sum()) > rows // 2


def test_frequencies_match_the_softmax_and_the_test_has_power():
    vocab, draws = 1000, 200_000
    logits, bias = _logits(1, vocab, seed=3), _logits(1, vocab, seed=4)[0]
    u = torch.rand(draws, generator=torch.Generator().manual_seed(5))
    tokens = N.sample_rows(logits.expand(draws, -1), u, bias)
    probs = torch.softmax(logits[0].double() + bias.double(), -1)
    counts = torch.bincount(tokens, minlength=vocab).double()
    keep = probs * draws > 20
    dof = int(keep.sum())
    statistic = (((counts - probs * draws) ** 2) / (probs * draws))[keep].sum().item()
    assert statistic < dof + 5 * math.sqrt(2 * dof)
    # forgetting the bias would shift every probability: the same counts reject that
    unbiased = torch.softmax(logits[0].double(), -1)
    wrong = (((counts - unbiased * draws) ** 2) / (unbiased * draws))[keep].sum().item()
    assert wrong > 10 * (dof + 5 * math.sqrt(2 * dof))


def test_masked_classes_are_never_drawn_even_in_the_tail_vector():
    vocab = 5000  # 5000 = 312 full vectors + 8 classes in a partial one
    logits = torch.full((20_000, vocab), float("-inf"))
    allowed = torch.tensor([0, 1777, 4991, 4999])
    logits[:, allowed] = torch.tensor([-3.0, 0.0, 1.0, -1.0])
    u = torch.rand(20_000, generator=torch.Generator().manual_seed(0))
    tokens = N.sample_rows(logits, u)
    assert set(tokens.unique().tolist()) == set(allowed.tolist())
    assert bool((N.sample_rows(logits[:4], torch.full((4,), 0.9999999)) < vocab).all())
    single = torch.full((3, 40), float("-inf"))
    single[:, 39] = -500.0  # far below exp's range: still the only class with mass
    assert N.sample_rows(single, torch.tensor([0.0, 0.5, 0.9999999])).tolist() == [39, 39, 39]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_bad_row_is_named(bad):
    logits = _logits(6, 50, seed=0)
    logits[4, 7] = bad
    with pytest.raises(ValueError, match="logits row 4 has a NaN or no finite entry"):
        N.sample_rows(logits, torch.rand(6))
    with pytest.raises(ValueError, match="logits row 1"):
        S.sample_categorical(torch.tensor([[0.0, 1.0], [float("-inf")] * 2]))


def test_bad_arguments_are_named():
    logits = _logits(3, 20, seed=0)
    with pytest.raises(ValueError, match="float32"):
        N.sample_rows(logits.double(), torch.rand(3))
    with pytest.raises(ValueError, match=r"u must have shape \[3\]"):
        N.sample_rows(logits, torch.rand(4))
    with pytest.raises(ValueError, match=r"bias must have shape \[20\]"):
        N.sample_rows(logits, torch.rand(3), torch.zeros(21))
    with pytest.raises(ValueError, match="contiguous"):
        N.sample_rows(logits.t(), torch.rand(20))


def test_threads_and_row_strides_do_not_change_the_draws():
    wide = _logits(3000, 700, seed=1)
    logits = wide[:, :600]  # rows 700 floats apart
    u = torch.rand(3000, generator=torch.Generator().manual_seed(1))
    one = N.sample_rows(logits, u)
    torch.set_num_threads(2)
    assert torch.equal(N.sample_rows(logits.contiguous(), u), one)


def _policy(vocab: int, seq_len: int, seed: int) -> LSTMPolicy:
    policy = LSTMPolicy(vocab, seq_len, emb_dim=4, hidden_dim=5, device="cpu", init_std=1.0)
    policy.reset_parameters(torch.Generator().manual_seed(seed))
    return policy


@pytest.mark.parametrize(
    "make",
    [
        lambda: OracleLSTM.random(3, vocab_size=37, emb_dim=4, hidden_dim=5, seq_len=2),
        lambda: _policy(37, seq_len=2, seed=3),
    ],
    ids=["oracle", "lstm_policy"],
)
def test_projected_models_sample_their_joint_distribution(make):
    # The projection path (bias added in the kernel, the policy's weight a transposed
    # view) against the model's own teacher-forced probabilities, in both precisions.
    model = make()
    assert S._uses_projection_path(model)
    n = 150_000
    tokens = S.sample_sequences(
        model, n, generator=torch.Generator().manual_seed(0), temperature=0.8
    )
    grid = torch.cartesian_prod(torch.arange(37), torch.arange(37))
    with torch.no_grad():
        probs = S.sequence_log_probs(model, grid, temperature=0.8).double().sum(1).exp()
    counts = torch.bincount(tokens[:, 0] * 37 + tokens[:, 1], minlength=37 * 37).double()
    keep = probs * n > 20
    dof = int(keep.sum())
    statistic = (((counts - probs * n) ** 2) / (probs * n))[keep].sum().item()
    assert statistic < dof + 5 * math.sqrt(2 * dof), (statistic, dof)


def _run(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "always::RuntimeWarning", "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


_SAME_AS_PYTORCH = """
    import torch
    from textgan_envs import native_sampling, sampling
    logits = torch.randn(50, 300)
    a = sampling.sample_categorical(logits, torch.Generator().manual_seed(1))
    b = sampling.sample_categorical_inverse_cdf(logits, torch.Generator().manual_seed(1))
    assert torch.equal(a, b), "not the PyTorch path"
    print("available", native_sampling.native_sampling_available())
"""


def test_without_a_compiler_sampling_warns_once_and_uses_pytorch(tmp_path):
    done = _run(
        _SAME_AS_PYTORCH, {"CC": str(tmp_path / "no-such-cc"), "TEXTGAN_CACHE_DIR": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    assert "available False" in done.stdout
    assert done.stderr.count("C sampling kernel is unavailable") == 1
    assert "no C compiler found" in done.stderr


def test_switching_the_kernel_off_uses_pytorch_silently(tmp_path):
    done = _run(
        _SAME_AS_PYTORCH, {"TEXTGAN_NATIVE_SAMPLING": "0", "TEXTGAN_CACHE_DIR": str(tmp_path)}
    )
    assert done.returncode == 0, done.stderr
    assert "available False" in done.stdout and "unavailable" not in done.stderr
    assert not list(Path(tmp_path).iterdir())  # nothing was built


def _compiler_without_march_native(tmp_path: Path) -> Path:
    """A ``cc`` that refuses ``-march=native``, as a compiler that does not know the CPU does."""
    real = shutil.which(os.environ.get("CC", "cc"))
    if real is None:
        pytest.skip("no C compiler on this machine")
    wrapper = tmp_path / "cc-without-march-native"
    wrapper.write_text(
        "#!/bin/sh\n"
        'case "$*" in *-march=native*) echo "unknown CPU" >&2; exit 1;; esac\n'
        f'exec "{real}" "$@"\n'
    )
    wrapper.chmod(0o755)
    return wrapper


def test_a_baseline_only_build_is_not_the_default_but_can_be_forced(tmp_path):
    """Where ``-march=native`` fails, the baseline build (slower than PyTorch's ops) stays
    unused by default, with one warning; ``TEXTGAN_NATIVE_SAMPLING=1`` uses it anyway."""
    env = {"CC": str(_compiler_without_march_native(tmp_path)), "TEXTGAN_CACHE_DIR": str(tmp_path)}
    default = _run(_SAME_AS_PYTORCH, env)
    assert default.returncode == 0, default.stderr
    assert "available False" in default.stdout
    assert default.stderr.count("did not build for this CPU") == 1
    assert list(Path(tmp_path).glob("categorical-*.so"))  # it did build, for the baseline
    forced = _run(
        """
        import torch
        from textgan_envs import native_sampling, sampling
        assert native_sampling.native_sampling_available()
        assert "-march=native" not in native_sampling.build_flags()
        logits = torch.zeros(2000, 600)
        a = sampling.sample_categorical(logits, torch.Generator().manual_seed(0))
        b = sampling.sample_categorical_inverse_cdf(logits, torch.Generator().manual_seed(0))
        assert not torch.equal(a, b), "the kernel was not used"
        print("forced ok")
        """,
        {**env, "TEXTGAN_NATIVE_SAMPLING": "1"},
    )
    assert forced.returncode == 0 and "forced ok" in forced.stdout, forced.stderr
    assert "did not build for this CPU" not in forced.stderr


def test_a_bad_native_sampling_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TEXTGAN_NATIVE_SAMPLING", "yes")
    with pytest.raises(ValueError, match="TEXTGAN_NATIVE_SAMPLING must be one of"):
        N.native_sampling_available()


def test_the_kernel_is_built_once_and_a_corrupt_cached_build_is_replaced(tmp_path):
    code = """
        import torch
        from textgan_envs import sampling
        logits = torch.zeros(2000, 600)  # the PyTorch path draws two uniforms per row here
        a = sampling.sample_categorical(logits, torch.Generator().manual_seed(0))
        b = sampling.sample_categorical_inverse_cdf(logits, torch.Generator().manual_seed(0))
        assert not torch.equal(a, b), "the kernel was not used"
        print(a[:20].tolist(), int(a.sum()))
    """
    env = {"TEXTGAN_CACHE_DIR": str(tmp_path)}
    first = _run(code, env)
    assert first.returncode == 0 and not first.stderr.strip(), first.stderr
    (built,) = Path(tmp_path).glob("categorical-*.so")
    stamp = built.stat().st_mtime_ns
    again = _run(code, env)
    assert again.stdout == first.stdout and built.stat().st_mtime_ns == stamp  # reused
    built.write_bytes(b"not a shared object")
    repaired = _run(code, env)
    assert repaired.returncode == 0 and repaired.stdout == first.stdout, repaired.stderr
    assert built.stat().st_size > 1000
