"""GeneratorPolicy: SB3 PPO / A2C / MaskablePPO with our LSTMPolicy as the actor."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.vec_env import VecMonitor

from agents.policies import LSTMPolicy
from agents.sb3 import (
    GeneratorPolicy,
    GeneratorStart,
    SB3SequencePolicy,
    SB3VecEnvAdapter,
    generator_policy_kwargs,
    prefix_hidden,
)
from tests.helpers import PatternD
from textgan_envs.envs import CorpusVectorEnv, OracleVectorEnv

V, T = 20, 5


def _generator(seed: int = 0) -> LSTMPolicy:
    """A peaked (far from uniform) generator, so a layout bug changes the log-probs visibly."""
    g = LSTMPolicy(V, T, emb_dim=16, hidden_dim=16, start_token=3, device="cpu", init_std=0.6)
    g.reset_parameters(torch.Generator().manual_seed(seed))
    return g


def _env(num_envs: int = 4) -> VecMonitor:
    venv = OracleVectorEnv(
        num_envs=num_envs, vocab_size=V, seq_len=T, discriminator=PatternD(V, below=5, scale=6.0)
    )
    return VecMonitor(SB3VecEnvAdapter(venv))


def _model(
    algo: type = PPO,
    generator: LSTMPolicy | None = None,
    kwargs: dict | None = None,
    **policy_kwargs,
) -> PPO | A2C:
    """PPO / A2C on 4 envs, one episode per env per rollout; ``kwargs`` replaces the policy_kwargs."""
    if kwargs is None:
        kwargs = generator_policy_kwargs(generator or _generator(), **policy_kwargs)
    extra = {"batch_size": 20, "n_epochs": 2} if algo is PPO else {}
    return algo(
        GeneratorPolicy,
        _env(),
        n_steps=T,
        gamma=1.0,
        learning_rate=1e-2,
        policy_kwargs=kwargs,
        seed=0,
        device="cpu",
        **extra,
    )


def _observations(tokens: torch.Tensor, t: int, vocab: int = V) -> torch.Tensor:
    """The env's observation before token ``t``: ``tokens[:, :t]``, ``vocab`` after, position ``t``."""
    obs = torch.full((len(tokens), T + 1), vocab, dtype=torch.float32)
    obs[:, :t] = tokens[:, :t].float()
    obs[:, T] = t
    return obs


def _env_observations(tokens: torch.Tensor) -> list[torch.Tensor]:
    """What the env itself shows before each token of ``tokens [B, T]``."""
    env = _env(len(tokens))
    obs = env.reset()
    out = []
    for t in range(T):
        out.append(torch.as_tensor(obs, dtype=torch.float32))
        obs, *_ = env.step(tokens[:, t].numpy())
    return out


def _teacher_forced(g: LSTMPolicy, tokens: torch.Tensor) -> torch.distributions.Categorical:
    with torch.no_grad():
        return torch.distributions.Categorical(logits=g.teacher_forced_logits(tokens))  # [B, T]


def _tokens(n: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, V, (n, T), generator=torch.Generator().manual_seed(seed))


def test_env_observations_have_the_layout_the_policy_reads() -> None:
    tokens = _tokens(8)
    for t, obs in enumerate(_env_observations(tokens)):
        torch.testing.assert_close(obs, _observations(tokens, t), atol=0, rtol=0)


def test_evaluate_actions_gives_teacher_forced_log_probs_and_entropy_at_every_length() -> None:
    g = _generator()
    policy = _model(generator=g).policy
    tokens = _tokens()
    tf = _teacher_forced(g, tokens)
    log_prob = g.log_prob(tokens).detach()  # [B, T]
    assert float((tf.log_prob(tokens) + np.log(V)).abs().max()) > 0.5  # far from uniform
    with torch.no_grad():
        for t, obs in enumerate(_env_observations(tokens)):  # prefixes of length 0 .. T-1
            values, logp, entropy = policy.evaluate_actions(obs, tokens[:, t])
            torch.testing.assert_close(logp, log_prob[:, t], atol=1e-5, rtol=0)
            torch.testing.assert_close(logp, tf.log_prob(tokens)[:, t], atol=1e-5, rtol=0)
            torch.testing.assert_close(entropy, tf.entropy()[:, t], atol=1e-5, rtol=0)
            probs = policy.get_distribution(obs).distribution.probs
            torch.testing.assert_close(probs, tf.probs[:, t], atol=1e-6, rtol=0)
            torch.testing.assert_close(values, policy.predict_values(obs), atol=1e-6, rtol=0)


def test_a_batch_mixing_every_prefix_length_matches_too() -> None:
    """SB3's minibatches mix positions; the terminal observation (position T) is read as well."""
    g = _generator(1)
    policy = _model(generator=g).policy
    tokens = _tokens(6, seed=1)
    obs = torch.cat([_observations(tokens, t) for t in range(T)])  # [T * 6, T + 1]
    actions = torch.cat([tokens[:, t] for t in range(T)])
    perm = torch.randperm(len(obs), generator=torch.Generator().manual_seed(0))
    expected = torch.cat([g.log_prob(tokens)[:, t] for t in range(T)]).detach()
    with torch.no_grad():
        _, logp, _ = policy.evaluate_actions(obs[perm], actions[perm])
        torch.testing.assert_close(logp, expected[perm], atol=1e-5, rtol=0)
        full = torch.cat([tokens, tokens[:, :1]], 1)  # T + 1 inputs: start, y_1 .. y_T
        start = torch.full_like(full[:, :1], g.start_token)
        hidden, _ = g.lstm(g.embedding(torch.cat([start, full[:, :-1]], 1)))
        last = prefix_hidden(g, _observations(tokens, T))
        torch.testing.assert_close(last, hidden[:, T], atol=1e-6, rtol=0)


def test_forward_samples_from_the_generator_and_reports_its_log_prob() -> None:
    g = _generator(2)
    policy = _model(generator=g).policy
    tokens = _tokens(400, seed=2)
    with torch.no_grad():
        actions, _, logp = policy(_observations(tokens, 2))
        tf = _teacher_forced(g, tokens)
        first, _, _ = policy(_observations(tokens[:1].expand(4000, -1), 0))
    torch.testing.assert_close(logp, tf.log_prob(actions.view(-1, 1).expand(-1, T))[:, 2])
    freq = torch.bincount(first, minlength=V).float() / len(first)
    assert float((freq - tf.probs[0, 0]).abs().max()) < 0.03


@pytest.mark.parametrize("algo", [PPO, A2C])
def test_learn_trains_the_policys_generator_and_leaves_the_given_one_alone(algo: type) -> None:
    g = _generator()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    model = _model(algo, generator=g)
    start = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(5 * 4 * T)
    assert model.num_timesteps >= 5 * 4 * T and len(model.ep_info_buffer) > 0
    after = model.policy.state_dict()
    for name in (
        "features_extractor.generator.lstm.weight_hh_l0",
        "action_net.weight",
        "value_net.weight",
    ):
        assert not torch.equal(after[name], start[name]), name
    assert all(torch.equal(v, before[k]) for k, v in g.state_dict().items())
    trained = model.policy.generator
    assert isinstance(trained, LSTMPolicy) and trained.head is model.policy.action_net
    tokens = _tokens(8)
    with torch.no_grad():
        _, logp, _ = model.policy.evaluate_actions(_observations(tokens, 3), tokens[:, 3])
    torch.testing.assert_close(logp, trained.log_prob(tokens)[:, 3].detach(), atol=1e-5, rtol=0)
    seq = SB3SequencePolicy(model)  # the bench's adapter scores it as the generator itself
    torch.testing.assert_close(seq.log_prob(tokens), trained.log_prob(tokens), atol=1e-5, rtol=0)


@pytest.mark.parametrize("detach", [True, False])
def test_value_loss_reaches_the_lstm_only_when_not_detached(detach: bool) -> None:
    policy = _model(detach_value=detach).policy
    policy.predict_values(_observations(_tokens(4), 2)).sum().backward()
    assert policy.value_net.weight.grad is not None
    lstm_grad = policy.generator.lstm.weight_hh_l0.grad
    assert (lstm_grad is None or not bool(lstm_grad.any())) == detach


@pytest.mark.parametrize("algo", [PPO, A2C])
@pytest.mark.parametrize("as_module", [False, True])
def test_save_load_round_trips(tmp_path: Path, algo: type, as_module: bool) -> None:
    g = _generator()
    # the plain {"generator": module} form works too (its start weights pickled along)
    model = _model(algo, kwargs={"generator": g} if as_module else None, generator=g)
    model.learn(3 * 4 * T)
    model.save(tmp_path / "m.zip")
    loaded = algo.load(tmp_path / "m.zip", env=_env(), device="cpu")
    assert isinstance(loaded.policy, GeneratorPolicy)
    tokens = _tokens()
    with torch.no_grad():
        for t in range(T):
            obs = _observations(tokens, t)
            a = model.policy.evaluate_actions(obs, tokens[:, t])
            b = loaded.policy.evaluate_actions(obs, tokens[:, t])
            for x, y in zip(a, b, strict=True):
                torch.testing.assert_close(x, y, atol=0, rtol=0)
    assert not torch.equal(loaded.policy.generator.head.weight, g.head.weight)  # the trained ones
    loaded.learn(4 * T)  # and it keeps training


def test_generator_start_pickles_as_its_config_only() -> None:
    g = _generator()
    start = GeneratorStart(g)
    assert start.module() is g
    blob = pickle.dumps(start)
    assert len(blob) < 1000 < len(pickle.dumps(g))
    back = pickle.loads(blob)
    assert back == start and back.config == g.config()
    fresh = back.module()
    assert isinstance(fresh, LSTMPolicy) and fresh.config() == g.config()


def test_policy_save_load_round_trips(tmp_path: Path) -> None:
    policy = _model().policy
    policy.save(tmp_path / "policy.pt")
    loaded = GeneratorPolicy.load(tmp_path / "policy.pt", device="cpu")
    obs = _observations(_tokens(), 2)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.get_distribution(obs).distribution.logits,
            policy.get_distribution(obs).distribution.logits,
            atol=0,
            rtol=0,
        )
        torch.testing.assert_close(loaded.predict_values(obs), policy.predict_values(obs))
    assert loaded.detach_value is policy.detach_value


def test_refusals_name_the_problem() -> None:
    env = _env()
    with pytest.raises(TypeError, match="needs policy_kwargs"):
        PPO(GeneratorPolicy, env, device="cpu")
    with pytest.raises(TypeError, match="LSTMPolicy"):
        PPO(GeneratorPolicy, env, policy_kwargs={"generator": object()}, device="cpu")
    with pytest.raises(ValueError, match="fixes net_arch"):
        PPO(
            GeneratorPolicy, env, policy_kwargs=generator_policy_kwargs(_generator(), net_arch=[64])
        )
    wrong_v = LSTMPolicy(V + 1, T, device="cpu")
    with pytest.raises(ValueError, match="20 actions but the generator 21"):
        PPO(GeneratorPolicy, env, policy_kwargs={"generator": wrong_v}, device="cpu")
    wrong_t = LSTMPolicy(V, T + 1, device="cpu")
    with pytest.raises(ValueError, match="T=5 but the generator has vocab_size=20, seq_len=6"):
        PPO(GeneratorPolicy, env, policy_kwargs={"generator": wrong_t}, device="cpu")
    policy = _model().policy
    obs = _observations(_tokens(2), 3)
    obs[1, 1] = V  # an empty slot before the position
    with pytest.raises(ValueError, match=r"observation \[1\] has position 3 but slot 1 is empty"):
        policy.get_distribution(obs)
    with pytest.raises(ValueError, match=r"VecNormalize\(norm_obs=False\)"):
        policy.get_distribution(obs * 0.5)
    with pytest.raises(ValueError, match="observation Box"):
        from agents.sb3 import GeneratorFeatures

        GeneratorFeatures(spaces.Box(0, 1, (2, 2)), _generator())


def test_maskable_ppo_on_the_corpus_env(tmp_path: Path) -> None:
    sb3_contrib = pytest.importorskip(
        "sb3_contrib", reason="sb3-contrib is not installed: MaskableGeneratorPolicy needs it"
    )
    from agents.sb3 import MaskableGeneratorPolicy

    path = tmp_path / "c.txt"
    path.write_text("a b c\nb c d e\nc d\n", encoding="utf-8")
    venv = CorpusVectorEnv(str(path), num_envs=8, seq_len=T, discriminator="lstm")
    vocab = int(venv.single_action_space.n)
    mask = venv.action_masks()[0]
    forbidden = np.flatnonzero(~mask).tolist()
    g = LSTMPolicy(vocab, T, emb_dim=8, hidden_dim=8, start_token=1, device="cpu", init_std=1.0)
    env = SB3VecEnvAdapter(venv)
    model = sb3_contrib.MaskablePPO(
        MaskableGeneratorPolicy,
        env,
        n_steps=8,
        batch_size=32,
        policy_kwargs=generator_policy_kwargs(g),
        seed=0,
        device="cpu",
    )
    tokens = torch.tensor([[5, 6, 2, 0, 0], [6, 7, 8, 2, 0]])
    obs = _observations(tokens, 2, vocab)
    with torch.no_grad():
        dist = model.policy.get_distribution(obs, action_masks=np.stack([mask, mask]))
        logits = g.teacher_forced_logits(tokens)[:, 2]
    expected = torch.softmax(logits.masked_fill(~torch.as_tensor(mask), float("-inf")), -1)
    torch.testing.assert_close(dist.distribution.probs, expected, atol=1e-6, rtol=0)
    model.learn(128)
    model.save(tmp_path / "m.zip")
    loaded = sb3_contrib.MaskablePPO.load(tmp_path / "m.zip", env=env, device="cpu")
    obs_np = env.reset()
    emitted = []
    for _ in range(3 * T):
        actions, _ = loaded.predict(obs_np, action_masks=env.action_masks())
        emitted += actions.tolist()
        obs_np, *_ = env.step(actions)
    assert not set(emitted) & set(forbidden)
