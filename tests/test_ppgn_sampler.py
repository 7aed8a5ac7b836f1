"""PPGN sampler: each term of the MALA-approx update, step rules, presets, conditions, errors."""

from __future__ import annotations

import math

import pytest
import torch

from image_samplers.ppgn.conditions import (
    AndCondition,
    AttributeCondition,
    ClassCondition,
    ClassSetCondition,
    ConditionError,
    ink,
)
from image_samplers.ppgn.config import PPGNConfig
from image_samplers.ppgn.models import Classifier, CodeDAE, Generator
from image_samplers.ppgn.sampler import PRESETS, PPGNSampler, SamplerConfig, preset

CFG = PPGNConfig(image_size=8, code_dim=16, width=4, dae_hidden=32)


@pytest.fixture
def nets():
    torch.manual_seed(0)
    return Classifier(CFG).eval(), Generator(CFG).eval(), CodeDAE(CFG).eval()


def _sampler(config, condition, decode, prior=None, clip=None, dim=CFG.code_dim):
    def init(n, gen):
        return torch.rand(n, dim, generator=gen) * 2

    return PPGNSampler(config, condition, decode, prior, init, clip)


def _h(n=32, seed=1):
    return torch.rand(n, CFG.code_dim, generator=torch.Generator().manual_seed(seed)) * 2


def test_condition_term_alone_raises_log_p(nets):
    C, G, _ = nets
    classes = torch.arange(32) % 10
    cond = ClassCondition(C, classes, 10)
    h = _h()
    probe = SamplerConfig(prior="none", epsilon1=0, epsilon2=1.0, epsilon3=0)
    grad_scale = _sampler(probe, cond, G).terms(h).condition.abs().mean().item()
    assert grad_scale > 0
    before = cond(G(h)).detach()
    for step in ("plain", "normalized"):
        # Both rules take a small step (mean |dh| = 0.1) along the condition gradient only.
        eps2 = 0.1 / grad_scale if step == "plain" else 1.0
        cfg = SamplerConfig(prior="none", epsilon1=0, epsilon2=eps2, epsilon3=0, step=step, lr=0.1)
        new, lp_old = _sampler(cfg, cond, G).step(h, torch.Generator().manual_seed(0))
        after = cond(G(new)).detach()
        assert torch.allclose(lp_old, before, atol=1e-5)
        assert (after >= before).all(), f"{step}: log p fell for some chains"
        assert (after - before).mean() > 1e-5
        # The opposite direction lowers it: the sign of the gradient matters.
        assert (cond(G(h - (new - h))).detach() <= before).all()


def test_prior_term_alone_moves_h_toward_reconstruction(nets):
    _, G, R = nets
    cond = ClassCondition(lambda x: torch.zeros(x.shape[0], 10), 0, 10)  # constant: no gradient
    cfg = SamplerConfig(prior="dae_h", epsilon1=0.3, epsilon2=0.0, epsilon3=0.0, step="plain")
    s = _sampler(cfg, cond, G, prior=R)
    h = _h()
    target = R(h).detach()
    new, _ = s.step(h, torch.Generator().manual_seed(0))
    torch.testing.assert_close(new, h + 0.3 * (target - h))
    assert ((new - target).norm(dim=1) < (h - target).norm(dim=1)).all()
    terms = s.terms(h)
    torch.testing.assert_close(terms.prior, target - h)
    assert terms.condition.abs().max() == 0


def test_noise_term_has_scale_epsilon3(nets):
    _, G, _ = nets
    cond = ClassCondition(lambda x: torch.zeros(x.shape[0], 10), 0, 10)
    cfg = SamplerConfig(prior="none", epsilon1=0, epsilon2=0, epsilon3=0.3, step="plain")
    s = _sampler(cfg, cond, G)
    h = _h(n=512)
    new, _ = s.step(h, torch.Generator().manual_seed(0))
    delta = new - h
    assert abs(delta.std().item() - 0.3) < 0.01
    assert abs(delta.mean().item()) < 0.01
    # Same seed, same noise: the generator argument makes chains reproducible.
    again, _ = s.step(h, torch.Generator().manual_seed(0))
    torch.testing.assert_close(new, again)


def test_normalized_step_has_mean_abs_lr_and_only_ratios_matter(nets):
    C, G, R = nets
    cond = ClassCondition(C, 3, 10)
    h = _h()
    base = dict(prior="dae_h", epsilon3=0.0, lr=0.2, step="normalized")
    s1 = _sampler(SamplerConfig(epsilon1=0.5, epsilon2=1.0, **base), cond, G, prior=R)
    s2 = _sampler(SamplerConfig(epsilon1=50.0, epsilon2=100.0, **base), cond, G, prior=R)
    n1, _ = s1.step(h, torch.Generator().manual_seed(0))
    n2, _ = s2.step(h, torch.Generator().manual_seed(0))
    torch.testing.assert_close((n1 - h).abs().mean(1), torch.full((32,), 0.2))
    torch.testing.assert_close(n1, n2)
    # The plain step scales with the epsilons instead.
    p1 = _sampler(replace_step(s1.config), cond, G, prior=R).step(h, torch.Generator())[0]
    p2 = _sampler(replace_step(s2.config), cond, G, prior=R).step(h, torch.Generator())[0]
    torch.testing.assert_close(p2 - h, 100 * (p1 - h), rtol=1e-3, atol=1e-5)


def replace_step(config: SamplerConfig) -> SamplerConfig:
    from dataclasses import replace

    return replace(config, step="plain")


def test_clip_keeps_h_in_range(nets):
    C, G, _ = nets
    cfg = SamplerConfig(prior="none", epsilon1=0, epsilon2=1, epsilon3=5.0, step="plain")
    s = _sampler(cfg, ClassCondition(C, 0, 10), G, clip=(0.0, 1.5))
    new, _ = s.step(_h(), torch.Generator().manual_seed(0))
    assert new.min() >= 0 and new.max() <= 1.5 and (new == 1.5).any()


def test_presets_have_published_and_documented_values():
    noiseless = PRESETS["noiseless-joint-ppgn-h"]
    assert (noiseless.epsilon1, noiseless.epsilon2, noiseless.epsilon3) == (1e-5, 1.0, 1e-17)
    assert noiseless.step == "normalized" and noiseless.lr == 1.0
    assert noiseless.prior == "joint" and noiseless.generator == "noiseless_joint"
    dgn = PRESETS["dgn-am"]
    assert dgn.epsilon1 == 0 and dgn.epsilon3 == 0 and dgn.prior == "none"
    assert PRESETS["ppgn-x"].space == "x" and PRESETS["ppgn-x"].prior == "dae_x"
    assert PRESETS["ppgn-h"].prior == "dae_h" and PRESETS["ppgn-h"].generator == "dgn"
    assert PRESETS["joint-ppgn-h"].generator == "joint"
    assert preset("ppgn-h", steps=7).steps == 7
    with pytest.raises(ValueError, match="unknown PPGN variant"):
        preset("ppgn-z")
    with pytest.raises(ValueError, match="step"):
        SamplerConfig(step="adam")


def test_run_shapes_recording_threshold_and_batched_classes(nets):
    C, G, _ = nets
    classes = torch.tensor([0, 1, 2, 3, 4, 5])
    cfg = SamplerConfig(prior="none", epsilon1=0, epsilon3=0, steps=12, save_every=4, threshold=0.2)
    s = _sampler(cfg, ClassCondition(C, classes, 10), G, clip=(0.0, 10.0))
    r = s.run(6, seed=0)
    assert r.images.shape == (6, 1, 8, 8)
    assert r.chain_images.shape == (4, 6, 1, 8, 8) and r.chain_steps == [0, 4, 8, 12]
    assert r.chain_log_p.shape == (4, 6)
    keep = r.chain_log_p.exp() >= 0.2
    assert len(r.kept_images) == int(keep.sum()) == len(r.kept_chain)
    torch.testing.assert_close(r.images, r.chain_images[-1])
    # Batched chains target their own class: p(own class) grows for each chain.
    assert (r.chain_log_p[-1] > r.chain_log_p[0]).float().mean() >= 5 / 6


def test_reset_restarts_chains(nets):
    C, G, _ = nets
    cfg = SamplerConfig(prior="none", epsilon1=0, epsilon3=0, steps=4, reset_every=2, save_every=0)
    inits = []

    def init(n, gen):
        inits.append(1)
        return torch.rand(n, CFG.code_dim, generator=gen)

    PPGNSampler(cfg, ClassCondition(C, 0, 10), G, None, init, None).run(3)
    assert len(inits) == 2  # start + one reset (none after the last step)


def test_conditions_class_set_attribute_and_errors(nets):
    C, G, _ = nets
    x = G(_h(8)).detach()
    log_probs = torch.log_softmax(C(x), -1)
    even = ClassSetCondition(C, [0, 2, 4, 6, 8, 8], 10)(x)
    torch.testing.assert_close(even, log_probs[:, ::2].exp().sum(-1).log())
    attr = AttributeCondition(lambda im: ink(im) * 10 - 3, target=True)
    anti = AttributeCondition(lambda im: ink(im) * 10 - 3, target=False)
    torch.testing.assert_close(attr(x).exp() + anti(x).exp(), torch.ones(8))
    both = AndCondition(attr, ClassCondition(C, 1, 10))
    torch.testing.assert_close(both(x), attr(x) + log_probs[:, 1])
    with pytest.raises(ConditionError, match=r"unknown class id\(s\) \[10\]"):
        ClassCondition(C, [3, 10], 10)
    with pytest.raises(ConditionError, match="unknown class id"):
        ClassSetCondition(C, [-1], 10)
    with pytest.raises(ConditionError, match="per-chain classes"):
        ClassCondition(C, [1, 2, 3], 10)(x)


def test_non_finite_or_misshaped_condition_is_rejected(nets):
    _, G, _ = nets
    cfg = SamplerConfig(prior="none", epsilon1=0, epsilon3=0)

    def nan_condition(x):
        return torch.log(torch.zeros(x.shape[0])) * x.flatten(1).mean(1)

    with pytest.raises(ConditionError, match="non-finite"):
        _sampler(cfg, nan_condition, G).step(_h(4), torch.Generator())
    with pytest.raises(ConditionError, match="one log-probability per chain"):
        _sampler(cfg, lambda x: x.flatten(1), G).step(_h(4), torch.Generator())


def test_x_space_step_uses_image_dae():
    torch.manual_seed(0)
    from image_samplers.ppgn.models import ImageDAE

    C, R = Classifier(CFG).eval(), ImageDAE(CFG).eval()
    x = torch.rand(4, 1, 8, 8) * 2 - 1
    cfg = SamplerConfig(
        space="x",
        prior="dae_x",
        generator="none",
        epsilon1=1.0,
        epsilon2=0,
        epsilon3=0,
        step="plain",
    )
    s = PPGNSampler(cfg, ClassCondition(C, 2, 10), lambda z: z, R, lambda n, g: x, (-1.0, 1.0))
    new, _ = s.step(x, torch.Generator())
    torch.testing.assert_close(new, R(x).detach().clamp(-1, 1))
    assert math.isfinite(float(new.sum()))
