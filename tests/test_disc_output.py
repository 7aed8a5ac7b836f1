"""What a discriminator returns is checked where it becomes a reward (NaN, inf, None, wrong
shape or dtype raise naming the discriminator and the value), and integer arguments of the envs
and configs refuse floats and bools."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from agents.runtime import ConfigError, build_config
from agents.setup import CommonConfig
from textgan_envs.discriminators.maskgan import MaskGANDiscriminator
from textgan_envs.envs import TextGenerationEnv, TextGenerationVectorEnv
from textgan_envs.envs.disc_output import DiscriminatorOutputError
from textgan_envs.envs.fill_in_blank import FillInTheBlankEnv, FillInTheBlankVectorEnv
from textgan_envs.vocab import Vocabulary

V, T = 12, 3


class BadD:
    """A whole-sequence discriminator returning ``make(batch)`` instead of logits."""

    vocab_size = V

    def __init__(self, make) -> None:
        self.make = make

    def __call__(self, tokens: torch.Tensor):
        return self.make(tokens.shape[0])


BAD_OUTPUTS = {
    "nan": (lambda n: torch.full((n,), float("nan")), r"non-finite logits \(nan"),
    "inf": (lambda n: torch.full((n,), float("inf")), r"non-finite logits \(inf"),
    "one nan": (
        lambda n: torch.tensor([0.0] * (n - 1) + [float("nan")]),
        rf"non-finite logits \(nan\) for 1 of {4} sequences",
    ),
    "none": (lambda n: None, r"returned NoneType None as logits, expected a float tensor"),
    "shape": (lambda n: torch.zeros(n, 2), r"logits of shape \[\d, 2\], expected \[\d\]"),
    "int": (lambda n: torch.zeros(n, dtype=torch.long), r"logits of dtype torch.int64"),
    "list": (lambda n: [0.0] * n, r"returned list"),
}


def _finish(env, n: int) -> None:
    for _ in range(T):
        env.step(np.zeros(n, dtype=np.int64) if n else 0)


@pytest.mark.parametrize("case", sorted(BAD_OUTPUTS))
def test_a_bad_discriminator_output_names_the_discriminator(case: str) -> None:
    make, message = BAD_OUTPUTS[case]
    vec = TextGenerationVectorEnv(4, V, T, discriminator=BadD(make))
    vec.reset(seed=0)
    with pytest.raises(DiscriminatorOutputError, match=rf"^discriminator BadD .*{message}"):
        _finish(vec, 4)
    if case != "one nan":
        env = TextGenerationEnv(V, T, discriminator=BadD(make))
        env.reset(seed=0)
        with pytest.raises(DiscriminatorOutputError, match="discriminator BadD"):
            _finish(env, 0)


def test_good_outputs_still_score_numpy_included() -> None:
    env = TextGenerationVectorEnv(4, V, T, discriminator=BadD(lambda n: np.zeros(n, np.float32)))
    env.reset(seed=0)
    for _ in range(T - 1):
        env.step(np.zeros(4, dtype=np.int64))
    _, reward, terminated, _, _ = env.step(np.zeros(4, dtype=np.int64))
    assert terminated.all() and np.allclose(reward, 0.5)  # prob reward of logit 0


class BadMaskGAN(MaskGANDiscriminator):
    """A per-token discriminator whose logits are poisoned (or whose output is not a pair)."""

    mode = "nan"

    def forward(self, masked, filled):  # type: ignore[override]
        logits, values = super().forward(masked, filled)
        if self.mode == "nan":
            return logits * float("nan"), values
        if self.mode == "inf":
            return logits.fill_(float("-inf")), values
        if self.mode == "tensor":
            return logits
        return logits[:, :-1], values


def _fib_data() -> torch.Tensor:
    return torch.randint(5, 20, (16, 6), generator=torch.Generator().manual_seed(0))


def _fib_vocab() -> Vocabulary:
    return Vocabulary([*Vocabulary.SPECIAL_TOKENS, *(f"w{i}" for i in range(5, 20))])


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("nan", r"non-finite logits \(nan"),
        ("inf", r"non-finite logits \(-inf"),
        ("tensor", r"returned Tensor .*expected a pair \(logits \[1, 6\], values\)"),
        ("shape", r"logits of shape \[1, 5\], expected \[1, 6\]"),
    ],
)
def test_fill_in_blank_checks_its_discriminator_too(mode: str, message: str) -> None:
    torch.manual_seed(0)
    disc = BadMaskGAN(20, 6, emb_dim=4, hidden_dim=8)
    disc.mode = mode
    env = FillInTheBlankEnv(data=_fib_data(), vocab=_fib_vocab(), discriminator=disc)
    env.reset(seed=0)
    with pytest.raises(DiscriminatorOutputError, match=rf"discriminator BadMaskGAN .*{message}"):
        env.step(7)
    vec = FillInTheBlankVectorEnv(2, data=_fib_data(), vocab=_fib_vocab(), discriminator=disc)
    vec.reset(seed=0)
    with pytest.raises(DiscriminatorOutputError, match="discriminator BadMaskGAN"):
        vec.step(np.array([7, 7]))


@pytest.mark.parametrize(("key", "value"), [("vocab_size", 2.5), ("seq_len", True)])
def test_float_or_bool_counts_are_refused_by_envs_and_configs(key: str, value) -> None:
    with pytest.raises(ValueError, match=rf"{key} must be an integer >= \d, got {value!r}"):
        gym.make("textgan/Oracle-v0", **{key: value})
    with pytest.raises(ValueError, match=rf"{key} must be an integer"):
        TextGenerationVectorEnv(2, **{"vocab_size": V, "seq_len": T, key: value})
    with pytest.raises(ConfigError, match=rf"'{key}': expected an integer, got {value!r}"):
        build_config(CommonConfig, {key: value})
    if key == "seq_len":
        with pytest.raises(ValueError, match=r"FillInBlank-v0: seq_len must be an integer >= 2"):
            FillInTheBlankEnv(data=_fib_data(), vocab=_fib_vocab(), seq_len=value)


def test_image_configs_refuse_floats_and_bools_for_integers() -> None:
    from image_samplers.began import BEGANConfig
    from image_samplers.ppgn.config import PPGNConfig

    with pytest.raises(ConfigError, match=r"BEGANConfig.batch_size=2.5: expected an integer"):
        BEGANConfig(batch_size=2.5)
    with pytest.raises(ConfigError, match=r"BEGANConfig.steps=True: expected an integer"):
        BEGANConfig(steps=True)
    with pytest.raises(ConfigError, match=r"PPGNConfig.width=True: expected an integer"):
        PPGNConfig(width=True)
    assert BEGANConfig(lr=1).lr == 1  # an int for a float is fine, as in every config


def test_the_finiteness_check_skips_only_built_in_discriminators_off_the_cpu() -> None:
    from textgan_envs.discriminators import build_discriminator
    from textgan_envs.envs.disc_output import _check_finite_here

    built_in = build_discriminator("lstm", V, T, seed=0)
    on_cpu, off_cpu = torch.zeros(2), torch.empty(2, device="meta")
    assert _check_finite_here(built_in, on_cpu) and _check_finite_here(BadD(None), on_cpu)
    assert _check_finite_here(BadD(None), off_cpu)  # a user's callable: checked everywhere
    assert not _check_finite_here(built_in, off_cpu)  # no device sync for the built-in ones


def test_a_trainer_checking_its_rewards_itself_may_turn_the_value_check_off() -> None:
    nan = BadD(BAD_OUTPUTS["nan"][0])
    vec = TextGenerationVectorEnv(4, V, T, discriminator=nan, finite_check=False)
    vec.reset(seed=0)
    for _ in range(T - 1):
        vec.step(np.zeros(4, dtype=np.int64))
    assert np.isnan(vec.step(np.zeros(4, dtype=np.int64))[1]).all()
    shape = BadD(BAD_OUTPUTS["shape"][0])  # type, shape and dtype are still checked
    vec = TextGenerationVectorEnv(4, V, T, discriminator=shape, finite_check=False)
    vec.reset(seed=0)
    with pytest.raises(DiscriminatorOutputError, match="shape"):
        _finish(vec, 4)
