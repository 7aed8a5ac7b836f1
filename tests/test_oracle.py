"""The oracle LSTM against an independent float64 NumPy implementation and the published values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import stats

from tests.conftest import shared_file
from textgan_envs.oracle import OracleLSTM, oracle_shapes
from textgan_envs.sequence_model import RecurrentSequenceModel


def numpy_log_probs(arrays: dict[str, np.ndarray], tokens: np.ndarray) -> np.ndarray:
    """The SeqGAN oracle equations written out in float64, per-token log p: [B, T]."""
    a = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}

    def sigmoid(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z))

    batch, length = tokens.shape
    hidden = a["Ui"].shape[0]
    h = np.zeros((batch, hidden))
    c = np.zeros((batch, hidden))
    x = np.repeat(a["g_embeddings"][0][None, :], batch, axis=0)
    out = np.zeros((batch, length))
    for t in range(length):
        i = sigmoid(x @ a["Wi"] + h @ a["Ui"] + a["bi"])
        f = sigmoid(x @ a["Wf"] + h @ a["Uf"] + a["bf"])
        o = sigmoid(x @ a["Wog"] + h @ a["Uog"] + a["bog"])
        g = np.tanh(x @ a["Wc"] + h @ a["Uc"] + a["bc"])
        c = f * c + i * g
        h = o * np.tanh(c)
        logits = h @ a["Wo"] + a["bo"]
        m = logits.max(axis=1, keepdims=True)
        log_z = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
        out[:, t] = logits[np.arange(batch), tokens[:, t]] - log_z
        x = a["g_embeddings"][tokens[:, t]]
    return out


def arrays_of(oracle: OracleLSTM) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in oracle.named_parameters()}


def small_oracle(seed: int = 3, vocab: int = 20, seq_len: int = 7) -> OracleLSTM:
    return OracleLSTM.random(seed, vocab_size=vocab, emb_dim=6, hidden_dim=5, seq_len=seq_len)


def test_matches_numpy_float64_reference() -> None:
    oracle = small_oracle()
    tokens = torch.randint(0, 20, (64, 7), generator=torch.Generator().manual_seed(0))
    expected = numpy_log_probs(arrays_of(oracle), tokens.numpy())
    got = oracle.log_prob(tokens).double().numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5, rtol=0)
    np.testing.assert_allclose(oracle.nll(tokens).numpy(), -expected.mean(axis=1), atol=2e-5)


def test_is_a_frozen_protocol_model() -> None:
    oracle = small_oracle()
    assert isinstance(oracle, RecurrentSequenceModel)
    assert oracle.start_token == 0
    assert all(not p.requires_grad for p in oracle.parameters())
    h, c = oracle.initial_state(3)
    assert h.shape == c.shape == (3, 5) and not h.any() and not c.any()


def test_random_is_seeded_locally_and_draws_standard_normals() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = OracleLSTM.random(7, vocab_size=2000)
    b = OracleLSTM.random(7, vocab_size=2000)
    assert torch.equal(torch.get_rng_state(), before)
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    c = OracleLSTM.random(8, vocab_size=2000)
    assert not torch.equal(a.Wo, c.Wo)
    values = torch.cat([p.flatten() for p in a.parameters()])
    assert abs(values.mean().item()) < 0.02 and abs(values.std().item() - 1.0) < 0.02


def test_json_reference_log_likelihoods() -> None:
    params = shared_file("seqgan_oracle_params.npz")
    info = json.loads(shared_file("seqgan_oracle_params.json").read_text())
    refs = info["reference_values_computed_here"]["test_vectors_sum_nll_nats"]
    oracle = OracleLSTM.from_npz(params)
    sequences = {
        "[0]*20": [0] * 20,
        "[1,2,...,20]": list(range(1, 21)),
        "[0,1,...,19]": list(range(20)),
    }
    tokens = torch.tensor([sequences[k] for k in refs])
    got = -oracle.log_prob(tokens).double().sum(dim=1)
    np.testing.assert_allclose(got.numpy(), np.array(list(refs.values())), atol=2e-3)
    # and the float64 NumPy reference agrees on the full-size published model
    with np.load(params, allow_pickle=False) as data:
        expected = -numpy_log_probs(dict(data), tokens.numpy()).sum(axis=1)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-3)


def test_published_oracle_own_and_uniform_nll() -> None:
    oracle = OracleLSTM.from_npz(shared_file("seqgan_oracle_params.npz"))
    gen = torch.Generator().manual_seed(0)
    own = oracle.nll(oracle.sample(1000, generator=gen)).mean().item()
    uniform = oracle.nll(torch.randint(0, 5000, (1000, 20), generator=gen)).mean().item()
    # JSON: 5.7523 +- 0.0053 and 11.4351 +- 0.0056 on 10,000 (so +- 0.017 on 1,000)
    assert abs(own - 5.7523) < 0.08
    assert abs(uniform - 11.4351) < 0.08


def test_npz_round_trip(tmp_path) -> None:
    oracle = small_oracle()
    path = oracle.to_npz(tmp_path / "oracle.npz")
    loaded = OracleLSTM.from_npz(path, seq_len=7)
    tokens = oracle.sample(10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(loaded.log_prob(tokens), oracle.log_prob(tokens))


def _write(tmp_path, arrays: dict[str, np.ndarray]):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    return path


def test_npz_missing_array_is_named(tmp_path) -> None:
    arrays = {k: np.zeros(s, np.float32) for k, s in oracle_shapes(10, 4, 3).items()}
    del arrays["Uf"]
    with pytest.raises(ValueError, match="Uf"):
        OracleLSTM.from_npz(_write(tmp_path, arrays))


def test_npz_wrong_shape_names_array_and_shapes(tmp_path) -> None:
    arrays = {k: np.zeros(s, np.float32) for k, s in oracle_shapes(10, 4, 3).items()}
    arrays["bo"] = np.zeros(11, np.float32)
    with pytest.raises(ValueError, match=r"'bo'.*\(11,\).*\(10,\)"):
        OracleLSTM.from_npz(_write(tmp_path, arrays))


def test_npz_absent_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        OracleLSTM.from_npz(tmp_path / "nope.npz")


def test_npz_refuses_pickles(tmp_path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, g_embeddings=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError):
        OracleLSTM.from_npz(path)


def _chi_square_p(counts: np.ndarray, probs: np.ndarray) -> float:
    """p-value of observed counts against probabilities (classes with tiny expectation pooled)."""
    expected = probs * counts.sum()
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    if exp[-1] == 0:
        obs, exp = obs[:-1], exp[:-1]
    return float(stats.chisquare(obs, exp).pvalue)


def test_sample_frequencies_match_probabilities() -> None:
    oracle = small_oracle(seed=5, vocab=20, seq_len=2)
    samples = oracle.sample(40_000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits, state = oracle.step(torch.zeros(1, dtype=torch.long), oracle.initial_state(1))
        p1 = torch.softmax(logits.double(), -1)[0].numpy()
        first = int(np.argmax(p1))
        logits2, _ = oracle.step(torch.tensor([first]), state)
        p2 = torch.softmax(logits2.double(), -1)[0].numpy()
    counts1 = np.bincount(samples[:, 0].numpy(), minlength=20)
    after = samples[samples[:, 0] == first][:, 1].numpy()
    counts2 = np.bincount(after, minlength=20)
    assert _chi_square_p(counts1, p1) > 1e-3
    assert _chi_square_p(counts2, p2) > 1e-3
    # the same test has the power to reject a wrong distribution (the unconditional one)
    assert _chi_square_p(counts2, p1) < 1e-6


def test_sampling_is_seeded_and_respects_temperature() -> None:
    oracle = small_oracle(seed=5, vocab=20)
    a = oracle.sample(500, generator=torch.Generator().manual_seed(4))
    b = oracle.sample(500, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and a.shape == (500, 7) and a.dtype == torch.long
    cold = oracle.sample(2000, generator=torch.Generator().manual_seed(4), temperature=0.3)
    hot = oracle.sample(2000, generator=torch.Generator().manual_seed(4), temperature=3.0)
    normal = oracle.sample(2000, generator=torch.Generator().manual_seed(4))
    nll = {k: oracle.nll(v).mean().item() for k, v in [("cold", cold), ("hot", hot), ("1", normal)]}
    assert nll["cold"] < nll["1"] - 0.3 < nll["hot"] - 0.6
    with pytest.raises(ValueError, match="temperature"):
        oracle.sample(2, temperature=0.0)


def _reference_draw(oracle: OracleLSTM, n: int, seed: int) -> torch.Tensor:
    """The portable route written out: ``step`` + PyTorch's inverse CDF, one batch."""
    from textgan_envs.sampling.categorical import sample_categorical_inverse_cdf

    gen = torch.Generator().manual_seed(seed)
    state = oracle.initial_state(n)
    prev = torch.full((n,), oracle.start_token, dtype=torch.long)
    columns = []
    for _ in range(oracle.seq_len):
        logits, state = oracle.step(prev, state)
        prev = sample_categorical_inverse_cdf(logits, generator=gen)
        columns.append(prev)
    return torch.stack(columns, dim=1)


def test_portable_samples_are_the_same_whichever_route_this_cpu_would_take(monkeypatch) -> None:
    """Task data must not depend on the CPU: the C kernel, its bfloat16 projection route (on
    avx512_bf16) and PyTorch's ops draw the same distribution but different samples per seed."""
    from textgan_envs.sampling.projection import set_projection_sampling

    # V > 512: PyTorch's draw is two-level (two uniforms a row), every kernel route uses one
    # (or, in bfloat16, more), so a route that ignored portable=True would give other samples
    oracle = OracleLSTM.random(5, vocab_size=600, emb_dim=8, hidden_dim=8, seq_len=7)

    def draw(**kwargs) -> torch.Tensor:
        return oracle.sample(400, generator=torch.Generator().manual_seed(9), **kwargs)

    reference = _reference_draw(oracle, 400, 9)
    assert torch.equal(draw(portable=True), reference)
    old = set_projection_sampling(False)
    try:
        assert torch.equal(draw(portable=True), reference)
    finally:
        set_projection_sampling(old)
    monkeypatch.setenv("TEXTGAN_NATIVE_SAMPLING", "0")
    assert torch.equal(draw(portable=True), reference)
    assert torch.equal(draw(), reference)  # with no kernel the default route is the portable one
    # where the kernel runs, the default route is another draw of the same distribution
    from textgan_envs import native_sampling

    monkeypatch.setenv("TEXTGAN_NATIVE_SAMPLING", "auto")
    if native_sampling.native_sampling_available():  # (not where TEXTGAN_NATIVE_* switch it off)
        assert not torch.equal(draw(), reference)
