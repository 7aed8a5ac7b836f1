"""MaskGAN models, actor-critic terms, and short training runs (MaskMLE lowers fill perplexity,
actor-critic raises the discriminator reward, resume continues bit-for-bit)."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from agents.maskgan import MaskGANConfig, actor_critic_terms, baseline_values, load_run, train
from agents.maskgan_metrics import FillEvaluator, fill_perplexity
from agents.runtime import ConfigError, build_config
from agents.seq2seq import Seq2SeqGenerator, mask_mle_loss
from textgan_envs.discriminators.maskgan import (
    MaskGANDiscriminator,
    check_compatible,
    discriminator_loss,
)
from textgan_envs.masking import apply_mask, random_mask
from textgan_envs.vocab import Vocabulary

from .conftest import shared_file

V, T = 25, 7


def _batch(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    real = torch.randint(5, V, (n, T), generator=gen)
    present = random_mask(real, 0.5, gen)
    return real, present, apply_mask(real, present)


def _gen(attention: bool = True, seed: int = 0) -> Seq2SeqGenerator:
    torch.manual_seed(seed)
    return Seq2SeqGenerator(V, T, emb_dim=8, hidden_dim=16, attention=attention)


@pytest.mark.parametrize("attention", [True, False])
def test_sample_copies_present_tokens_and_scores_like_teacher_forcing(attention: bool) -> None:
    g = _gen(attention)
    real, present, masked = _batch()
    out = g.sample(masked, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out.filled[present], real[present])
    assert not (out.filled == Vocabulary.MASK).any()
    assert torch.all(out.log_probs[present] == 0)
    teacher = g.log_prob(masked, out.filled)
    torch.testing.assert_close(teacher[~present], out.log_probs[~present], rtol=1e-4, atol=1e-5)
    # the same generator seed gives the same fills; another seed gives different ones
    again = g.sample(masked, generator=torch.Generator().manual_seed(1)).filled
    other = g.sample(masked, generator=torch.Generator().manual_seed(2)).filled
    assert torch.equal(again, out.filled) and not torch.equal(other, out.filled)


def test_mask_mle_loss_counts_only_missing_positions() -> None:
    g = _gen()
    real, present, masked = _batch()
    logp = torch.log_softmax(g(masked, real), dim=-1).gather(-1, real.unsqueeze(-1)).squeeze(-1)
    expected = -logp[~present].mean().detach()
    torch.testing.assert_close(mask_mle_loss(g, real, masked), expected)
    ppl = fill_perplexity(g, real, masked, batch_size=5)  # batching must not change the answer
    assert math.isclose(ppl, math.exp(float(expected)), rel_tol=1e-5)


def test_discriminator_loss_uses_missing_positions_only() -> None:
    present = torch.tensor([[True, False, False, True]])
    real_logits = torch.tensor([[100.0, 0.0, 2.0, -100.0]])
    fake_logits = torch.tensor([[-100.0, 0.0, -1.0, 100.0]])
    # present positions carry absurd logits that would dominate if counted
    expected = (
        -math.log(0.5) - math.log(torch.sigmoid(torch.tensor(2.0)).item())
        - math.log(0.5) - math.log(torch.sigmoid(torch.tensor(1.0)).item())
    ) / 4  # fmt: skip
    assert math.isclose(
        float(discriminator_loss(real_logits, fake_logits, present)), expected, rel_tol=1e-6
    )


def test_critic_value_never_sees_the_token_it_is_a_baseline_for() -> None:
    torch.manual_seed(0)
    d = MaskGANDiscriminator(V, T, emb_dim=8, hidden_dim=16)
    real, present, masked = _batch(8)
    _, values = d(masked, real)
    for t in range(T):
        changed = real.clone()
        changed[:, t] = (changed[:, t] + 1 - 5) % (V - 5) + 5
        _, values2 = d(masked, changed)
        torch.testing.assert_close(values2[:, : t + 1], values[:, : t + 1], rtol=0, atol=0)
    # critic MSE moves only the critic head, never the discriminator body
    d.zero_grad()
    cfg = MaskGANConfig(corpus_path="x")
    rewards = -torch.rand(values.shape) * (~present)
    terms = actor_critic_terms(torch.zeros_like(values), rewards, present, values, cfg)
    terms.critic_loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in d.discriminator_parameters())
    assert any(p.grad is not None and p.grad.any() for p in d.critic_parameters())


def test_actor_critic_terms_match_hand_computed_values() -> None:
    cfg = MaskGANConfig(corpus_path="x", gamma=0.9, advantage_clip=5.0, baseline="critic")
    rewards = torch.tensor([[0.0, -1.0, -2.0, 0.0, -0.5]])
    present = torch.tensor([[True, False, False, True, False]])
    values = torch.tensor([[7.0, 1.0, -10.0, 3.0, 0.0]], requires_grad=True)
    log_probs = torch.tensor([[-9.0, -1.0, -2.0, -9.0, -3.0]], requires_grad=True)
    terms = actor_critic_terms(log_probs, rewards, present, values, cfg)
    r1 = -1.0 + 0.9 * -2.0 + 0.9**3 * -0.5  # the present position 3 adds nothing
    r2 = -2.0 + 0.9**2 * -0.5
    torch.testing.assert_close(terms.returns, torch.tensor([[0.0, r1, r2, 0.0, -0.5]]))
    adv = torch.tensor([[0.0, r1 - 1.0, 5.0, 0.0, -0.5]])  # 7.595 clipped to 5
    torch.testing.assert_close(terms.advantages, adv)
    # actor: -sum_t m_t log G A_t over missing positions; critic: MSE over missing positions
    expected_actor = -(-1.0 * (r1 - 1.0) + -2.0 * 5.0 + -3.0 * -0.5)
    assert math.isclose(float(terms.actor_loss.detach()), expected_actor, rel_tol=1e-6)
    expected_critic = ((1.0 - r1) ** 2 + (-10.0 - r2) ** 2 + (0.0 + 0.5) ** 2) / 3
    assert math.isclose(float(terms.critic_loss.detach()), expected_critic, rel_tol=1e-6)
    terms.actor_loss.backward()
    assert values.grad is None  # the advantage is a stopped gradient
    torch.testing.assert_close(log_probs.grad, -adv)

    rewards = torch.tensor([[-1.0, -1.0], [-3.0, -2.0]])
    present = torch.tensor([[False, True], [False, False]])
    batch_cfg = replace(cfg, baseline="dis_batch", gamma=0.5)
    zeros = torch.zeros(2, 2)
    terms = actor_critic_terms(zeros, rewards, present, None, batch_cfg)
    torch.testing.assert_close(terms.returns, torch.tensor([[-1.0, 0.0], [-4.0, -2.0]]))
    # position 0: mean(-1, -4) = -2.5; position 1: only row 1 is missing -> -2
    baseline = baseline_values(rewards, present, None, batch_cfg, None)
    torch.testing.assert_close(baseline[:, 0], torch.tensor([-2.5, -2.5]))
    assert float(baseline[1, 1]) == -2.0
    torch.testing.assert_close(terms.advantages, torch.tensor([[1.5, 0.0], [-1.5, 0.0]]))

    ma_cfg = replace(cfg, baseline="moving_average", advantage_clip=0.0)
    terms = actor_critic_terms(zeros, rewards, present, None, ma_cfg, -10.0)
    # gamma 0.9: row 1 return at 0 is -3 + 0.9 * -2 = -4.8; no clipping
    torch.testing.assert_close(terms.advantages, torch.tensor([[9.0, 0.0], [5.2, 8.0]]))
    with pytest.raises(ValueError, match="critic"):
        actor_critic_terms(zeros, rewards, present, None, cfg)


def test_mismatched_generator_and_discriminator_fail_clearly() -> None:
    g = _gen()
    with pytest.raises(ValueError, match="disagree on vocab_size"):
        check_compatible(g, MaskGANDiscriminator(V + 3, T))
    with pytest.raises(ValueError, match="disagree on seq_len"):
        check_compatible(g, MaskGANDiscriminator(V, T + 1))
    with pytest.raises(ValueError, match="lacks the MASK"):
        Seq2SeqGenerator(4, T)
    with pytest.raises(ValueError, match="shape"):
        g.sample(torch.full((2, T + 1), 5))


def test_config_rejects_bad_settings() -> None:
    with pytest.raises(ConfigError, match="corpus_path"):
        build_config(MaskGANConfig, {})
    with pytest.raises(ConfigError, match="present_rate"):
        build_config(MaskGANConfig, {"corpus_path": "x", "present_rate": 1.0})
    with pytest.raises(ConfigError, match="baseline"):
        build_config(MaskGANConfig, {"corpus_path": "x", "baseline": "mean"})


def _tiny_cfg(tmp_path: Path, corpus: Path, **kw) -> MaskGANConfig:
    base = dict(
        out_dir=str(tmp_path / "run"),
        corpus_path=str(corpus),
        seq_len=12,
        n_eval=100,
        emb_dim=16,
        hidden_dim=32,
        batch_size=32,
        eval_every=0,
        log_every=1,
        checkpoint_every=1000,
        tensorboard=False,
        progress=False,
        num_threads=1,
        device="cpu",
    )
    base.update(kw)
    return MaskGANConfig(**base)  # type: ignore[arg-type]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_coco_maskmle_lowers_fill_perplexity_and_actor_critic_raises_reward(tmp_path: Path) -> None:
    corpus = shared_file("image_coco.txt")
    cfg = _tiny_cfg(
        tmp_path,
        corpus,
        max_sentences=1500,
        mle_steps=120,
        mle_lr=5e-3,
        d_pretrain_steps=100,
        d_lr=5e-3,
        total_steps=80,
        d_steps=0,  # a fixed discriminator: the reward it gives must go up
        g_lr=1e-3,
        baseline="critic",
        critic_lr=1e-2,
    )
    train(cfg)
    rows = _rows(Path(cfg.out_dir) / "metrics.csv")
    ppl = [(int(r["step"]), float(r["fill_ppl"])) for r in rows if r.get("fill_ppl")]
    assert ppl[0][0] == 0 and ppl[1][0] == cfg.mle_steps
    assert ppl[1][1] < 0.25 * ppl[0][1]  # untrained: ~vocab size; after MaskMLE: far lower
    rewards = [float(r["reward"]) for r in rows if r.get("reward")]
    assert len(rewards) == cfg.total_steps
    first, last = sum(rewards[:20]) / 20, sum(rewards[-20:]) / 20
    assert last > first + 0.05, (first, last)  # measured: -1.26 -> -1.13
    # the run can be reloaded for evaluation
    _, setup, step = load_run(cfg.out_dir, device="cpu")
    assert step == cfg.n_steps
    assert math.isclose(
        setup.evaluator(setup.generator, ngrams=False)["fill_ppl"], ppl[-1][1], rel_tol=1e-6
    )


def test_resumed_run_matches_an_uninterrupted_one(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    words = ["a", "cat", "dog", "sits", "on", "the", "mat", "runs", "in", "park"]
    gen = torch.Generator().manual_seed(0)
    lines = [
        " ".join(words[i] for i in torch.randint(len(words), (int(n),), generator=gen).tolist())
        for n in torch.randint(3, 9, (200,), generator=gen)
    ]
    corpus.write_text("\n".join(lines) + "\n")
    small = dict(emb_dim=8, hidden_dim=8, mle_steps=4, d_pretrain_steps=3, d_steps=1, n_eval=20)
    full = _tiny_cfg(tmp_path / "a", corpus, total_steps=6, **small)
    train(full)
    part = _tiny_cfg(tmp_path / "b", corpus, total_steps=3, **small)
    train(part)
    train(replace(part, total_steps=6), resume=True)
    _, a, _ = load_run(full.out_dir, "cpu")
    _, b, _ = load_run(part.out_dir, "cpu")
    for pa, pb in zip(a.generator.parameters(), b.generator.parameters(), strict=True):
        assert torch.equal(pa, pb)
    for pa, pb in zip(a.discriminator.parameters(), b.discriminator.parameters(), strict=True):
        assert torch.equal(pa, pb)
    steps = [int(r["step"]) for r in _rows(Path(part.out_dir) / "metrics.csv")]
    assert steps == sorted(set(steps)) and steps[-1] == full.n_steps


def test_evaluator_uses_fixed_masks_and_reports_all_metrics() -> None:
    vocab = Vocabulary([*Vocabulary.SPECIAL_TOKENS, *(f"w{i}" for i in range(5, V))])
    real, _, _ = _batch(40)
    sentences = [vocab.decode(r) for r in real]
    ev1 = FillEvaluator(real, vocab, sentences, sentences, "contiguous", 0.5, seed=3)
    ev2 = FillEvaluator(real, vocab, sentences, sentences, "contiguous", 0.5, seed=3)
    assert torch.equal(ev1.masked, ev2.masked)
    g = _gen()
    d = MaskGANDiscriminator(V, T, emb_dim=8, hidden_dim=16)
    m1, m2 = ev1(g, d), ev2(g, d)
    assert m1 == m2
    for key in ("fill_ppl", "unique_2gram", "seen_4gram", "bleu4", "eval_d_fake", "eval_d_real"):
        assert key in m1
    assert 0 <= m1["seen_2gram"] <= 1 and 0 <= m1["bleu4"] <= 1
    assert 0.5 * (V - 5) < m1["fill_ppl"] < 3 * V  # an untrained generator is near uniform
