"""Text-generation envs: registration, checkers, scalar/vector equivalence, rewards, bad input."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.error import InvalidAction, ResetNeeded
from gymnasium.utils.env_checker import check_env as gym_check_env
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import textgan_envs  # noqa: F401  (registers the ids)
from tests.helpers import PatternD
from textgan_envs.envs import (
    CorpusEnv,
    CorpusVectorEnv,
    OracleEnv,
    OracleVectorEnv,
    TextGenerationEnv,
    TextGenerationVectorEnv,
)
from textgan_envs.rewards import get_reward_fn

CORPUS = "the cat sat on the mat\na dog ran\nthe dog sat\n\ncats and dogs ran on the mat today\n"


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return path


def small_kwargs(env_id: str, corpus_file: Path) -> dict:
    if env_id.startswith("textgan/Oracle"):
        return {"vocab_size": 40, "seq_len": 5, "discriminator": "lstm"}
    if env_id.startswith("textgan/Corpus"):
        return {"corpus_path": str(corpus_file), "seq_len": 6, "discriminator": "lstm"}
    if env_id.startswith("textgan/FillInBlank"):
        from textgan_envs.oracle import OracleLSTM

        return {
            "oracle": OracleLSTM.random(seed=0, vocab_size=20, emb_dim=4, hidden_dim=4, seq_len=6)
        }
    raise AssertionError(f"no small kwargs for {env_id}: add them here")


TEXTGAN_IDS = sorted(i for i in gym.registry if i.startswith("textgan/"))


def test_registered_ids() -> None:
    assert {"textgan/Oracle-v0", "textgan/Corpus-v0", "textgan/FillInBlank-v0"} <= set(TEXTGAN_IDS)
    for env_id in TEXTGAN_IDS:
        spec = gym.spec(env_id)
        assert isinstance(spec.entry_point, str) and isinstance(spec.vector_entry_point, str)


@pytest.mark.parametrize("env_id", TEXTGAN_IDS)
def test_checkers_pass_without_warnings(env_id: str, corpus_file: Path) -> None:
    env = gym.make(env_id, **small_kwargs(env_id, corpus_file))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gym_check_env(env.unwrapped)
        sb3_check_env(env.unwrapped, warn=True)
        gym_check_env(
            gym.make(f"textgan_envs:{env_id}", **small_kwargs(env_id, corpus_file)).unwrapped
        )


@pytest.mark.parametrize("env_id", TEXTGAN_IDS)
def test_make_vec_returns_native_vector_env(env_id: str, corpus_file: Path) -> None:
    venv = gym.make_vec(
        env_id,
        num_envs=3,
        vectorization_mode="vector_entry_point",
        **small_kwargs(env_id, corpus_file),
    )
    assert isinstance(venv, gym.vector.VectorEnv) and venv.num_envs == 3
    assert type(venv).__name__.endswith("VectorEnv") and not isinstance(venv, gym.Wrapper)
    assert isinstance(venv.metadata["autoreset_mode"], AutoresetMode)
    obs, _ = venv.reset(seed=0)
    assert obs in venv.observation_space
    if isinstance(venv, TextGenerationVectorEnv):
        assert venv.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        assert obs.shape == (3, venv.seq_len + 1)


def test_oracle_defaults_are_seqgan() -> None:
    env = OracleEnv()
    assert env.action_space.n == 5000 and env.seq_len == 20
    assert env.observation_space.shape == (21,)
    assert type(env.discriminator).__name__ == "CNNDiscriminator"
    oracle = env.real_data.oracle
    assert (oracle.emb_dim, oracle.hidden_dim) == (32, 32)


def test_published_oracle_loads(tmp_path: Path) -> None:
    from tests.conftest import shared_file

    path = shared_file("seqgan_oracle_params.npz")
    env = OracleEnv(oracle_path=str(path), discriminator=PatternD(5000))
    real = env.real_data.sample(200, generator=torch.Generator().manual_seed(0))
    assert real.shape == (200, 20)
    assert (
        5.0 < float(env.real_data.nll(real).mean()) < 6.5
    )  # the published oracle's own samples: ~5.75
    with pytest.raises(ValueError, match="vocab_size"):
        OracleEnv(vocab_size=100, oracle_path=str(path), discriminator=PatternD(100))


def run_episode(env, actions):
    obs, _ = env.reset(seed=0)
    out = [obs]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append((obs, reward, terminated, truncated, info))
    return out


@pytest.mark.parametrize("mode", ["prob", "log", "logit", "bgan"])
def test_reward_is_transformed_discriminator_output(mode: str) -> None:
    env = OracleEnv(vocab_size=10, seq_len=4, discriminator=PatternD(10), reward_mode=mode)
    env.reset(seed=0)
    rewards = [env.step(a)[1] for a in (0, 1, 7, 8)]
    assert rewards[:3] == [0.0, 0.0, 0.0]
    logit = torch.tensor(4.0 * 0.5 - 2.0)
    assert rewards[3] == pytest.approx(float(get_reward_fn(mode)(logit)), abs=1e-6)
    env.reset()
    for a in (0, 0, 0):
        env.step(a)
    *_, terminated, _, info = env.step(0)
    assert terminated and info["probability"] == pytest.approx(
        float(torch.sigmoid(torch.tensor(2.0)))
    )
    assert info["sequence"].tolist() == [0, 0, 0, 0] and info["logit"] == pytest.approx(2.0)


def test_observation_layout_and_render() -> None:
    env = OracleEnv(vocab_size=10, seq_len=3, discriminator=PatternD(10), render_mode="ansi")
    obs, _ = env.reset(seed=1)
    assert obs.tolist() == [10, 10, 10, 0]
    obs, *_ = env.step(7)
    assert obs.tolist() == [7, 10, 10, 1]
    assert env.render() == "7\n"


def test_rewards_deterministic_even_if_discriminator_left_in_train_mode() -> None:
    env = OracleEnv(vocab_size=30, seq_len=6, discriminator="cnn")
    env.discriminator.train()  # dropout on; the env must still score in eval mode
    rewards = [run_episode(env, [1, 2, 3, 4, 5, 6])[-1][1] for _ in range(3)]
    assert rewards[0] == rewards[1] == rewards[2]
    assert env.discriminator.training  # the env restores the trainer's mode


def corpus_pair(corpus_file: Path, n: int):
    d = PatternD(0)
    scalar = CorpusEnv(str(corpus_file), seq_len=6, discriminator="lstm")
    d.vocab_size = scalar.vocab_size
    scalar = CorpusEnv(str(corpus_file), seq_len=6, discriminator=d)
    vector = CorpusVectorEnv(
        str(corpus_file), num_envs=n, seq_len=6, discriminator=PatternD(d.vocab_size)
    )
    return scalar, vector


@pytest.mark.parametrize("source", ["oracle", "corpus"])
def test_scalar_and_vector_envs_agree(source: str, corpus_file: Path) -> None:
    """B scalar envs fed the same actions as the vector env give identical transitions."""
    n, steps = 5, 40
    if source == "oracle":
        scalars = [
            OracleEnv(vocab_size=12, seq_len=4, discriminator=PatternD(12)) for _ in range(n)
        ]
        vector = OracleVectorEnv(num_envs=n, vocab_size=12, seq_len=4, discriminator=PatternD(12))
    else:
        scalars = [corpus_pair(corpus_file, n)[0] for _ in range(n)]
        vector = corpus_pair(corpus_file, n)[1]
    rng = np.random.default_rng(0)
    v_obs, _ = vector.reset(seed=0)
    s_obs = [e.reset(seed=0)[0] for e in scalars]
    episodes = 0
    for _ in range(steps):
        actions = rng.integers(0, vector.vocab_size, size=n)
        if source == "corpus":  # make EOS frequent so episodes end at different times
            actions = np.where(rng.random(n) < 0.3, 2, actions)
        np.testing.assert_array_equal(v_obs, np.stack(s_obs))
        v_obs, v_rew, v_term, v_trunc, v_info = vector.step(actions)
        for i, env in enumerate(scalars):
            obs, rew, term, trunc, info = env.step(int(actions[i]))
            assert v_rew[i] == pytest.approx(rew, abs=1e-6) and v_term[i] == term and not v_trunc[i]
            if term:
                episodes += 1
                assert v_info["_sequence"][i] and v_info["_final_obs"][i]
                np.testing.assert_array_equal(v_info["sequence"][i], info["sequence"])
                np.testing.assert_array_equal(v_info["final_obs"][i], obs)
                assert v_info["probability"][i] == pytest.approx(info["probability"], abs=1e-6)
                obs, _ = env.reset()
            elif v_info:
                assert not v_info["_sequence"][i]
            s_obs[i] = obs
    assert episodes >= n * 3


def test_vector_env_scores_once_per_step_and_torch_mode() -> None:
    d = PatternD(20)
    venv = OracleVectorEnv(num_envs=8, vocab_size=20, seq_len=3, discriminator=d, as_torch=True)
    obs, _ = venv.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.dtype == torch.long
    for t in range(3):
        obs, rew, term, trunc, info = venv.step(torch.full((8,), t, dtype=torch.long))
    assert d.calls == [8]
    assert isinstance(rew, torch.Tensor) and bool(term.all())
    assert torch.equal(obs[:, :3], torch.full((8, 3), 20))  # already reset (SAME_STEP)
    assert info["sequence"][0].tolist() == [0, 1, 2]


def test_eos_ends_episode_and_pads(corpus_file: Path) -> None:
    env = CorpusEnv(str(corpus_file), seq_len=6, discriminator="lstm", render_mode="ansi")
    vocab = env.real_data.vocab
    env.reset(seed=0)
    the, cat = vocab.token_to_id("the"), vocab.token_to_id("cat")
    env.step(the)
    env.step(cat)
    assert env.render() == "the cat\n"
    _, reward, terminated, _, info = env.step(vocab.EOS)
    assert terminated and reward > 0
    assert info["sequence"].tolist() == [the, cat, vocab.EOS, vocab.PAD, vocab.PAD, vocab.PAD]
    real = env.real_data.sample(50, generator=torch.Generator().manual_seed(0))
    assert real.shape == (50, 6)
    # rows are "words, EOS, PAD..." (or all words when cut): the episodes' own format
    has_eos = (real == vocab.EOS).any(dim=1)
    assert has_eos.any() and not (real[~has_eos] == vocab.PAD).any()
    assert not env.action_masks()[[vocab.PAD, vocab.BOS, vocab.MASK]].any()
    assert env.action_masks()[[vocab.EOS, vocab.UNK, the]].all()


def test_char_level_corpus(corpus_file: Path) -> None:
    env = CorpusEnv(
        str(corpus_file), level="char", seq_len=8, discriminator="lstm", render_mode="ansi"
    )
    vocab = env.real_data.vocab
    env.reset()
    for ch in "a dog":
        env.step(vocab.token_to_id(ch))
    assert env.render() == "a dog\n"


@pytest.mark.parametrize(
    "action", [10, -1, 2.0, np.float32(1), "3", None, True, np.array([1, 2]), np.array([1.5])]
)
def test_bad_scalar_actions_raise_invalid_action(action) -> None:
    env = OracleEnv(vocab_size=10, seq_len=3, discriminator=PatternD(10))
    env.reset()
    with pytest.raises(InvalidAction, match="action"):
        env.step(action)


@pytest.mark.parametrize(
    "actions",
    [
        np.array([0, 10]),
        np.array([-1, 0]),
        np.array([0.0, 1.0]),
        np.array([1, 2, 3]),
        torch.tensor([0.5, 1.0]),
    ],
)
def test_bad_vector_actions_raise_invalid_action(actions) -> None:
    venv = OracleVectorEnv(num_envs=2, vocab_size=10, seq_len=3, discriminator=PatternD(10))
    venv.reset()
    with pytest.raises(InvalidAction, match="actions"):
        venv.step(actions)


def test_step_without_reset_raises() -> None:
    env = OracleEnv(vocab_size=10, seq_len=2, discriminator=PatternD(10))
    with pytest.raises(ResetNeeded):
        env.step(0)
    env.reset()
    env.step(0)
    env.step(1)
    with pytest.raises(ResetNeeded, match="reset"):
        env.step(0)
    with pytest.raises(ResetNeeded):
        OracleVectorEnv(num_envs=2, vocab_size=10, seq_len=2, discriminator=PatternD(10)).step(
            [0, 0]
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"seq_len": 0}, "seq_len"),
        ({"vocab_size": 1}, "vocab_size"),
        ({"reward_mode": "probability"}, "unknown reward mode"),
        ({"discriminator": PatternD(99)}, "vocabulary mismatch"),
        ({"discriminator": "gru"}, "unknown discriminator kind"),
    ],
)
def test_invalid_kwargs_fail_at_construction(kwargs: dict, match: str) -> None:
    base = {"vocab_size": 10, "seq_len": 3, "discriminator": PatternD(10)}
    with pytest.raises(ValueError, match=match):
        OracleEnv(**{**base, **kwargs})
    with pytest.raises(ValueError, match=match):
        OracleVectorEnv(num_envs=2, **{**base, **kwargs})


def test_corpus_vocab_mismatch_and_missing_file(corpus_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        CorpusEnv(str(corpus_file), discriminator=PatternD(5000))
    with pytest.raises(ValueError, match="does not exist"):
        CorpusEnv(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="num_envs"):
        TextGenerationVectorEnv(0, 10, 3, discriminator=PatternD(10))
    with pytest.raises(TypeError, match="discriminator must be"):
        TextGenerationEnv(10, 3, discriminator=42)


@pytest.mark.parametrize("env_id", TEXTGAN_IDS)
def test_unsupported_render_mode_warns_and_renders_none(env_id: str, corpus_file: Path) -> None:
    """Gymnasium's convention (SB3's make_vec_env passes render_mode="rgb_array" to every env)."""
    kwargs = {**small_kwargs(env_id, corpus_file), "render_mode": "rgb_array"}
    with pytest.warns(UserWarning, match="render_mode 'rgb_array' is not supported"):
        env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    assert env.render() is None
    with pytest.warns(UserWarning, match="render_mode 'rgb_array' is not supported"):
        venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    venv.reset(seed=0)
    assert venv.render() is None
    with pytest.warns(UserWarning, match="OracleEnv: render_mode 'human'"):
        OracleEnv(vocab_size=10, seq_len=3, discriminator=PatternD(10), render_mode="human")


COMMON_KWARGS = {
    "reward_mode": "log",
    "discriminator_seed": 1,
    "render_mode": "ansi",
    "device": "cpu",
}


@pytest.mark.parametrize("env_id", TEXTGAN_IDS)
def test_every_env_takes_the_common_kwargs(env_id: str, corpus_file: Path) -> None:
    """One set of names across the envs (README, "Common kwargs"): reward_mode="log" gives log D <= 0."""
    kwargs = {**small_kwargs(env_id, corpus_file), **COMMON_KWARGS}
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    rewards, done = [], False
    while not done:
        _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        rewards.append(reward)
        done = terminated or truncated
    assert all(r <= 0.0 for r in rewards) and min(rewards) < 0.0
    assert isinstance(env.render(), str)
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match="unknown reward mode"):
        gym.make(env_id, **{**kwargs, "reward_mode": "probability"})


def test_registrations_leave_max_episode_steps_to_the_env() -> None:
    """The bound is seq_len, a kwarg: a registered number would truncate other lengths wrongly."""
    for env_id in TEXTGAN_IDS:
        assert gym.spec(env_id).max_episode_steps is None, env_id


@pytest.mark.parametrize("env_id", TEXTGAN_IDS)
def test_spec_reports_the_episode_bound_of_the_kwargs_given(env_id: str, corpus_file: Path) -> None:
    kwargs = small_kwargs(env_id, corpus_file)
    env = gym.make(env_id, **kwargs)
    seq_len = env.unwrapped.seq_len
    assert env.spec.max_episode_steps == seq_len and env.unwrapped.max_episode_steps == seq_len
    venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
    assert venv.spec.max_episode_steps == seq_len
    again = gym.make_vec(env.spec, num_envs=2, vectorization_mode="vector_entry_point")
    assert again.num_envs == 2  # the spec's bound is passed to the vector env, which accepts it
    with pytest.raises(ValueError, match=f"max_episode_steps={seq_len - 1} is below seq_len"):
        gym.make_vec(
            env_id,
            num_envs=2,
            vectorization_mode="vector_entry_point",
            max_episode_steps=seq_len - 1,
            **kwargs,
        )


@pytest.mark.parametrize("remake", [False, True])
def test_non_default_seq_len_episode_is_scored_not_truncated(remake: bool) -> None:
    """seq_len=30 (default 20): 30 steps, terminated and scored at the last, never cut early."""
    env = gym.make("textgan/Oracle-v0", vocab_size=20, seq_len=30, discriminator=PatternD(20))
    if remake:  # from the filled-in spec: Gymnasium adds TimeLimit(30), which cuts nothing short
        env = gym.make(env.spec, discriminator=PatternD(20))
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(30)]
    assert flags[:-1] == [(False, False)] * 29
    assert flags[-1][0] is True and flags[-1][1] is remake
    assert env.spec.max_episode_steps == 30


README = Path(__file__).resolve().parents[1] / "README.md"
SPACE_NAMES = ("Box(", "Dict(", "Discrete(", "DiscreteWithout(", "MultiDiscrete(")


def readme_space_table() -> dict[str, tuple[list[str], list[str]]]:
    """README "Environments" table: env id -> (observation space spans, action space spans)."""
    section = README.read_text(encoding="utf-8").split("## Environments\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = [b.strip() for b in section.split("\n\n")]
    table = next(b for b in blocks if b.startswith("|") and "observation space" in b.split("\n")[0])
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    obs_col, act_col = header.index("observation space"), header.index("action space")
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]

        def spans(cell: str) -> list[str]:
            return [s for s in re.findall(r"`([^`]+)`", cell) if s.startswith(SPACE_NAMES)]

        rows[cells[0].strip("`")] = (spans(cells[obs_col]), spans(cells[act_col]))
    return rows


def readme_space(expr: str, V: int, T: int) -> gym.Space:
    """Evaluate a README space expression with ``V`` and ``T`` bound."""
    from textgan_envs.envs.fill_in_blank import DiscreteWithout

    names = {
        "V": V,
        "T": T,
        "int64": np.int64,
        "Box": lambda low, high, shape, dtype: gym.spaces.Box(
            low, np.asarray(high, dtype=dtype), shape, dtype
        ),
        "Discrete": gym.spaces.Discrete,
        "MultiDiscrete": lambda nvec: gym.spaces.MultiDiscrete(np.asarray(nvec, dtype=np.int64)),
        "Dict": lambda **subspaces: gym.spaces.Dict(subspaces),
        "DiscreteWithout": DiscreteWithout,
    }
    return eval(expr, {"__builtins__": {}}, names)  # noqa: S307  (our own README, fixed names)


def test_readme_space_table_matches_every_env(corpus_file: Path) -> None:
    from textgan_envs.oracle import OracleLSTM

    table = readme_space_table()
    assert set(table) == set(TEXTGAN_IDS)
    oracle = OracleLSTM.random(seed=0, vocab_size=20, emb_dim=4, hidden_dim=4, seq_len=6)
    cases = [  # (env id, kwargs, which action span)
        ("textgan/Oracle-v0", {"vocab_size": 12, "seq_len": 5, "discriminator": "lstm"}, 0),
        ("textgan/Corpus-v0", {"corpus_path": str(corpus_file), "seq_len": 6}, 0),
        ("textgan/FillInBlank-v0", {"oracle": oracle}, 0),
        ("textgan/FillInBlank-v0", {"corpus_path": str(corpus_file), "seq_len": 7}, 1),
    ]
    for env_id, kwargs, action_span in cases:
        env = gym.make(env_id, **kwargs).unwrapped
        V, T = env.vocab_size, env.seq_len
        (obs_expr,), act_exprs = table[env_id]
        assert env.observation_space == readme_space(obs_expr, V, T), (env_id, obs_expr)
        assert env.action_space == readme_space(act_exprs[action_span], V, T), (env_id, kwargs)
        venv = gym.make_vec(env_id, num_envs=2, vectorization_mode="vector_entry_point", **kwargs)
        assert venv.single_observation_space == env.observation_space
        assert venv.single_action_space == env.action_space
        assert env.spec.max_episode_steps == T


def test_kwargs_of_another_env_are_rejected_naming_env_and_kwarg(corpus_file: Path) -> None:
    with pytest.raises(TypeError, match=r"'vocab_size'.*textgan/FillInBlank-v0"):
        gym.make("textgan/FillInBlank-v0", corpus_path=str(corpus_file), vocab_size=50)
    with pytest.raises(TypeError, match=r"'corpus_path'.*textgan/Oracle-v0"):
        gym.make("textgan/Oracle-v0", corpus_path=str(corpus_file))
