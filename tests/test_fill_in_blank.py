"""Fill-in-the-blank env: present tokens stay intact, per-token rewards are causal, bad input fails."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.error import InvalidAction
from hypothesis import given, settings
from hypothesis import strategies as st

from textgan_envs.discriminators.maskgan import MaskGANDiscriminator, per_token_rewards
from textgan_envs.envs.fill_in_blank import (
    ENV_ID,
    FillInTheBlankEnv,
    FillInTheBlankVectorEnv,
)
from textgan_envs.oracle import OracleLSTM
from textgan_envs.vocab import Vocabulary

from .conftest import shared_file

V, T = 30, 8


def _data(n: int = 64, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    data = torch.randint(5, V, (n, T), generator=gen)
    data[: n // 2, T - 3] = Vocabulary.EOS  # half the rows are padded sentences
    data[: n // 2, T - 2 :] = Vocabulary.PAD
    return data


def _vocab() -> Vocabulary:
    return Vocabulary([*Vocabulary.SPECIAL_TOKENS, *(f"w{i}" for i in range(5, V))])


def _disc(seed: int = 0, attention: bool = True) -> MaskGANDiscriminator:
    torch.manual_seed(seed)
    return MaskGANDiscriminator(V, T, emb_dim=8, hidden_dim=16, attention=attention)


def _run_episode(env: FillInTheBlankEnv, actions: list[int], seed: int):
    obs, _ = env.reset(seed=seed)
    first = obs
    rewards, fills, positions = [], [], []
    done, k = False, 0
    while not done:
        assert env.observation_space.contains(obs)
        positions.append(obs["position"])
        action = actions[k % len(actions)]
        obs, reward, done, truncated, info = env.step(action)
        assert not truncated
        rewards.append(reward)
        fills.append(action)
        k += 1
    assert env.observation_space.contains(obs)
    return first, obs, rewards, fills, positions, info


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    mask=st.sampled_from(["random", "contiguous"]),
    rate=st.floats(0.05, 0.95),
    actions=st.lists(st.integers(0, V - 1).filter(lambda a: a != Vocabulary.MASK), min_size=1),
)
def test_random_masks_and_actions_keep_present_tokens(
    seed: int, mask: str, rate: float, actions: list[int]
) -> None:
    env = FillInTheBlankEnv(
        data=_data(), vocab=_vocab(), mask=mask, present_rate=rate, discriminator=_disc()
    )
    first, last, rewards, fills, positions, info = _run_episode(env, actions, seed)
    real = info["real"]
    present = first["masked"] != Vocabulary.MASK
    # the agent was asked exactly at the missing positions, in order
    assert positions == list(np.flatnonzero(~present))
    assert last["position"] == T
    np.testing.assert_array_equal(last["filled"][present], real[present])
    np.testing.assert_array_equal(last["filled"][~present], fills)
    np.testing.assert_array_equal(first["masked"][present], real[present])
    assert all(r <= 0.0 for r in rewards)  # log D


def test_env_rewards_equal_per_token_log_d_of_the_final_sequence() -> None:
    disc = _disc(1)
    env = FillInTheBlankEnv(data=_data(), vocab=_vocab(), discriminator=disc)
    first, last, rewards, *_ = _run_episode(env, [7, 9, 11], seed=3)
    masked = torch.as_tensor(first["masked"]).unsqueeze(0)
    filled = torch.as_tensor(last["filled"]).unsqueeze(0)
    present = masked != Vocabulary.MASK
    full = per_token_rewards(disc, masked, filled, present)[0]
    assert torch.all(full[present[0]] == 0)
    np.testing.assert_allclose(rewards, full[~present[0]].numpy(), rtol=1e-5, atol=1e-6)
    # deterministic for a fixed discriminator: the same episode gives the same rewards
    _, _, again, *_ = _run_episode(env, [7, 9, 11], seed=3)
    assert again == rewards


@pytest.mark.parametrize("attention", [True, False])
def test_changing_a_later_token_never_changes_an_earlier_reward(attention: bool) -> None:
    disc = _disc(2, attention)
    gen = torch.Generator().manual_seed(5)
    filled = torch.randint(5, V, (16, T), generator=gen)
    masked = filled.clone()
    masked[:, 1::2] = Vocabulary.MASK
    present = masked != Vocabulary.MASK
    base = per_token_rewards(disc, masked, filled, present)
    for t in range(1, T):
        changed = filled.clone()
        changed[:, t] = torch.randint(5, V, (16,), generator=gen)
        rewards = per_token_rewards(disc, masked, changed, present)
        torch.testing.assert_close(rewards[:, :t], base[:, :t], rtol=0, atol=0)
        if not present[0, t]:
            assert not torch.equal(rewards[:, t], base[:, t])  # the reward does see x~_t


def test_vector_env_autoresets_on_the_next_step() -> None:
    env = FillInTheBlankVectorEnv(
        5, data=_data(), vocab=_vocab(), mask="contiguous", present_rate=0.5, discriminator=_disc()
    )
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    # contiguous span on a length-L row: int(0.5 * L) - 1 missing tokens (L = 6 or 8)
    n_missing = (obs["masked"] == Vocabulary.MASK).sum(axis=1)
    assert set(n_missing.tolist()) <= {2, 3}
    steps = np.zeros(5, dtype=int)
    ended = np.zeros(5, dtype=bool)
    for _ in range(3):
        obs, rewards, terminated, truncated, _ = env.step(np.full(5, 9))
        assert env.observation_space.contains(obs)
        steps += ~ended
        assert np.all(rewards[~ended] < 0)
        ended |= terminated
    np.testing.assert_array_equal(ended, n_missing <= 3)
    done_rows = np.flatnonzero(terminated)
    obs, rewards, terminated, _, _ = env.step(np.full(5, 9))
    assert np.all(rewards[done_rows] == 0) and not terminated[done_rows].any()
    assert np.all(obs["position"][done_rows] < T)  # a fresh episode at its first missing slot
    assert np.all(obs["filled"][done_rows][:, -1] == Vocabulary.PAD)


def test_vector_env_rewards_equal_per_token_log_d_of_each_final_sequence() -> None:
    disc = _disc(3)
    env = FillInTheBlankVectorEnv(4, data=_data(), vocab=_vocab(), discriminator=disc)
    obs, _ = env.reset(seed=7)
    masked = torch.as_tensor(obs["masked"])
    collected: list[list[float]] = [[] for _ in range(4)]
    finished = [False] * 4
    gen = np.random.default_rng(0)
    while not all(finished):
        actions = gen.integers(5, V, size=4)
        obs, rewards, terminated, _, _ = env.step(actions)
        for i in range(4):
            if finished[i]:
                continue
            collected[i].append(float(rewards[i]))
            if terminated[i]:
                finished[i] = True
                filled = torch.as_tensor(obs["filled"][i]).unsqueeze(0)
                row = masked[i].unsqueeze(0)
                present = row != Vocabulary.MASK
                expected = per_token_rewards(disc, row, filled, present)[0][~present[0]]
                np.testing.assert_allclose(collected[i], expected.numpy(), rtol=1e-5, atol=1e-6)
                assert obs["position"][i] == T


def test_oracle_source_appends_mask_id_and_masks_token_zero() -> None:
    oracle = OracleLSTM.random(seed=0, vocab_size=20, emb_dim=4, hidden_dim=4, seq_len=6)
    env = FillInTheBlankVectorEnv(3, oracle=oracle, present_rate=0.5)
    assert env.vocab_size == 21 and env.mask_token == 20
    obs, _ = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    missing = obs["masked"] == 20
    assert missing.any(axis=1).all()
    with pytest.raises(InvalidAction, match="MASK token"):
        env.step(np.full(3, 20))


def test_oracle_source_action_space_holds_only_legal_actions() -> None:
    """Gymnasium's contract: any sampled action is legal, so MASK (id V) is outside the space."""
    oracle = OracleLSTM.random(seed=0, vocab_size=20, emb_dim=4, hidden_dim=4, seq_len=6)
    env = FillInTheBlankEnv(oracle=oracle, present_rate=0.5)
    assert env.action_space.n == 20 and env.mask_token == 20
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(400):  # ~20 draws of each action, none refused
        _, _, terminated, _, _ = env.step(env.action_space.sample())
        if terminated:
            env.reset()


def test_corpus_action_space_excludes_the_reserved_mask_id() -> None:
    env = FillInTheBlankEnv(data=_data(), vocab=_vocab())
    space = env.action_space
    assert env.mask_token == Vocabulary.MASK and space.n == env.vocab_size
    space.seed(0)
    draws = np.array([space.sample() for _ in range(50 * space.n)])
    assert Vocabulary.MASK not in draws and len(np.unique(draws)) == space.n - 1
    assert not space.contains(Vocabulary.MASK) and space.contains(Vocabulary.MASK + 1)
    allowed = np.zeros(space.n, dtype=np.int8)
    allowed[[Vocabulary.MASK, 7]] = 1
    assert {int(space.sample(mask=allowed)) for _ in range(20)} == {7}
    env.reset(seed=0)
    with pytest.raises(InvalidAction, match="MASK token"):
        env.step(Vocabulary.MASK)


def test_registered_id_makes_both_envs() -> None:
    import textgan_envs  # noqa: F401  (registration happens on import)

    env = gym.make(ENV_ID, data=_data(), vocab=_vocab(), disable_env_checker=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    venv = gym.make_vec(
        ENV_ID, num_envs=3, vectorization_mode="vector_entry_point", data=_data(), vocab=_vocab()
    )
    obs, _ = venv.reset(seed=0)
    assert obs["masked"].shape == (3, T)


def test_env_passes_gymnasium_checker() -> None:
    from gymnasium.utils.env_checker import check_env

    check_env(FillInTheBlankEnv(data=_data(), vocab=_vocab()), skip_render_check=True)


def test_bad_input_fails_with_clear_messages() -> None:
    with pytest.raises(ValueError, match="present_rate"):
        FillInTheBlankEnv(data=_data(), vocab=_vocab(), present_rate=1.0)
    with pytest.raises(ValueError, match="present_rate"):
        FillInTheBlankEnv(data=_data(), vocab=_vocab(), present_rate=0.0)
    with pytest.raises(ValueError, match="at least 2 tokens"):
        FillInTheBlankEnv(data=_data()[:, :1], vocab=_vocab())
    bad = _data()
    bad[0, 2] = Vocabulary.MASK
    with pytest.raises(ValueError, match="contains the MASK id"):
        FillInTheBlankEnv(data=bad, vocab=_vocab())
    with pytest.raises(ValueError, match="lacks the MASK"):
        FillInTheBlankEnv(data=torch.randint(0, 4, (5, 6)))
    with pytest.raises(ValueError, match="disagree on vocab_size"):
        FillInTheBlankEnv(
            data=_data(), vocab=_vocab(), discriminator=MaskGANDiscriminator(V + 1, T)
        )
    with pytest.raises(ValueError, match="mask must be one of"):
        FillInTheBlankEnv(data=_data(), vocab=_vocab(), mask="middle")
    with pytest.raises(ValueError, match="exactly one real source"):
        FillInTheBlankEnv()
    env = FillInTheBlankEnv(data=_data(), vocab=_vocab())
    with pytest.raises(RuntimeError, match="reset"):
        env.step(5)
    env.reset(seed=0)
    with pytest.raises(InvalidAction, match="MASK token"):
        env.step(Vocabulary.MASK)
    with pytest.raises(InvalidAction, match=r"FillInTheBlankEnv: actions must be token ids"):
        env.step(V + 7)


def test_a_seq_len_that_disagrees_with_the_data_or_oracle_is_refused() -> None:
    """``seq_len`` next to ``data=``/``oracle=`` used to be ignored without a word."""
    with pytest.raises(ValueError, match=r"seq_len=3 disagrees with the data's sequence length"):
        FillInTheBlankEnv(data=_data(), vocab=_vocab(), seq_len=3)
    oracle = OracleLSTM.random(seed=0, vocab_size=20, emb_dim=4, hidden_dim=4, seq_len=6)
    with pytest.raises(ValueError, match=r"seq_len=8 disagrees with the oracle's"):
        FillInTheBlankVectorEnv(2, oracle=oracle, seq_len=8)
    assert FillInTheBlankEnv(data=_data(), vocab=_vocab(), seq_len=T).seq_len == T
    assert FillInTheBlankVectorEnv(2, oracle=oracle, seq_len=6).seq_len == 6


def test_coco_corpus_episode_decodes() -> None:
    path = shared_file("image_coco.txt")
    env = FillInTheBlankEnv(path, max_sentences=300, seq_len=20, render_mode="ansi")
    obs, _ = env.reset(seed=0)
    text = env.render()
    assert text is not None and "_" in text.splitlines()[0]
    assert env.vocab is not None and len(env.vocab) == env.vocab_size
    assert env.observation_space.contains(obs)


def test_corpus_path_is_the_keyword_and_corpus_a_deprecated_alias(tmp_path) -> None:
    path = tmp_path / "c.txt"
    path.write_text("the cat sat on the mat\na dog ran home\nthe dog sat down\n", encoding="utf-8")
    env = FillInTheBlankEnv(corpus_path=str(path), seq_len=6)
    with pytest.warns(DeprecationWarning, match="corpus= is deprecated, use corpus_path="):
        old = FillInTheBlankEnv(corpus=str(path), seq_len=6)
    np.testing.assert_array_equal(env.reset(seed=0)[0]["masked"], old.reset(seed=0)[0]["masked"])
    venv = gym.make_vec(
        ENV_ID, num_envs=2, vectorization_mode="vector_entry_point", corpus_path=str(path)
    )
    assert venv.vocab_size == env.vocab_size
    with pytest.raises(ValueError, match="both corpus_path= and corpus="):
        FillInTheBlankEnv(corpus_path=str(path), corpus=str(path))


@pytest.mark.parametrize("kind", ["lstm", "cnn"])
def test_a_sequence_discriminator_kind_is_refused_by_name(kind: str) -> None:
    """Was "env and discriminator disagree on vocab_size: ... discriminator None" (misleading)."""
    with pytest.raises(
        ValueError,
        match=rf"{ENV_ID} .*per-token .*discriminator='{kind}' names a whole-sequence kind",
    ):
        gym.make(ENV_ID, data=_data(), vocab=_vocab(), discriminator=kind)
    with pytest.raises(ValueError, match="'gru' is no discriminator kind"):
        FillInTheBlankVectorEnv(2, data=_data(), vocab=_vocab(), discriminator="gru")
    with pytest.raises(TypeError, match="per-token MaskGANDiscriminator"):
        FillInTheBlankEnv(data=_data(), vocab=_vocab(), discriminator=lambda y: y.float().sum(1))


def test_maskgan_kind_and_discriminator_seed_build_the_default_discriminator() -> None:
    def weights(**kwargs) -> torch.Tensor:
        return FillInTheBlankEnv(
            data=_data(), vocab=_vocab(), **kwargs
        ).discriminator.embedding.weight

    assert torch.equal(weights(), weights(discriminator="maskgan", discriminator_seed=0))
    assert not torch.equal(weights(), weights(discriminator_seed=1))


def test_reward_mode_transforms_the_same_per_token_logit() -> None:
    """prob = exp(log D) token by token; log (MaskGAN's) is the default."""
    runs = {
        mode: _run_episode(
            FillInTheBlankEnv(
                data=_data(), vocab=_vocab(), discriminator=_disc(4), reward_mode=mode
            ),
            [7, 9, 11],
            seed=2,
        )[2]
        for mode in ("log", "prob", "logit")
    }
    default = _run_episode(
        FillInTheBlankEnv(data=_data(), vocab=_vocab(), discriminator=_disc(4)), [7, 9, 11], seed=2
    )[2]
    assert default == runs["log"]
    np.testing.assert_allclose(runs["prob"], np.exp(runs["log"]), rtol=1e-5)
    np.testing.assert_allclose(runs["log"], -np.log1p(np.exp(-np.array(runs["logit"]))), rtol=1e-4)
