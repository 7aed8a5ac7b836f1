"""The agents collect their episodes through the native vector env (``agents.episodes.collect_episodes``).

Checked: every generator step makes exactly ``T`` env steps and trains on the tokens the env
reports; the env's terminal reward is ``reward_fn(D(y))``, the last column of ``monte_carlo_q``;
the env scores with the set-up's own discriminator (updates are seen at once); the token loop
makes no host sync; the env's once-per-episode action check still rejects bad ids.
"""

from __future__ import annotations

import copy

import pytest
import torch
from gymnasium.error import InvalidAction, ResetNeeded

from agents import actor_critic as ac
from agents import bgan, reinforce
from agents.critic import LSTMCritic
from agents.episodes import collect_episodes, policy_log_probs_and_entropy
from agents.runtime import build_config
from agents.setup import Setup, agent_env, build_setup, discriminator_round
from tests.test_hot_paths import _guarded, no_host_sync_in_loop
from tests.test_reinforce import T, V, tiny_setup
from textgan_envs.discriminators import CNNDiscriminator, eval_logits
from textgan_envs.envs.vector_env import TextGenerationVectorEnv
from textgan_envs.rewards import get_reward_fn
from textgan_envs.rollout import monte_carlo_q


def small_cnn(seed: int = 0) -> CNNDiscriminator:
    torch.manual_seed(seed)
    return CNNDiscriminator(V, T, emb_dim=8, filter_sizes=(2, 3), num_filters=(8, 8))


class EnvSpy:
    """Wraps ``venv.step``: counts calls, keeps the actions and the last info the env returned."""

    def __init__(self, venv: TextGenerationVectorEnv) -> None:
        self.calls, self.actions, self.info, self.rewards = 0, [], None, None
        original = venv.step

        def step(actions):
            self.calls += 1
            self.actions.append(actions.clone())
            out = original(actions)
            self.rewards, self.info = out[1], out[4]
            return out

        venv.step = step


def spy_trained_tokens(monkeypatch) -> list[torch.Tensor]:
    """The tokens each generator update computes its log-probabilities on."""
    seen: list[torch.Tensor] = []
    original = policy_log_probs_and_entropy

    def spy(policy, tokens):
        seen.append(tokens.clone())
        return original(policy, tokens)

    for module in (reinforce, bgan, ac):
        monkeypatch.setattr(module, "policy_log_probs_and_entropy", spy)
    return seen


def one_generator_step(agent: str, setup: Setup, gen: torch.Generator) -> tuple[dict, int]:
    """Run one generator update of ``agent``; return its metrics and the env's row count."""
    if agent == "reinforce":
        cfg = build_config(reinforce.ReinforceConfig, {"vocab_size": V, "seq_len": T, "n_rollouts": 2, "batch_size": 12})  # fmt: skip
        opt = torch.optim.Adam(setup.policy.parameters(), lr=cfg.g_lr)
        rollout = copy.deepcopy(setup.policy)
        return reinforce.generator_step(setup, rollout, opt, cfg, None, gen, 1)[0], 12
    if agent.startswith("actor_critic"):
        reward = agent.split(":")[1]
        cfg = build_config(ac.ActorCriticConfig, {"vocab_size": V, "seq_len": T, "n_rollouts": 2, "batch_size": 12, "reward": reward})  # fmt: skip
        critic = LSTMCritic(V, 8, 8)
        g_opt = torch.optim.Adam(setup.policy.parameters(), lr=cfg.g_lr)
        c_opt = torch.optim.Adam(critic.parameters(), lr=cfg.critic_lr)
        return ac.generator_step(setup, critic, g_opt, c_opt, cfg, gen, 1), 12
    cfg = build_config(bgan.BGANConfig, {"vocab_size": V, "seq_len": T, "n_groups": 3, "n_samples": 5, "condition_len": 2})  # fmt: skip
    opt = torch.optim.Adam(setup.policy.parameters(), lr=cfg.g_lr)
    return bgan.generator_step(setup, opt, cfg, None, gen, 1)[0], 15


@pytest.mark.parametrize("agent", ["reinforce", "actor_critic:mc_log", "actor_critic:final_log", "bgan"])  # fmt: skip
def test_generator_step_trains_on_the_episodes_the_env_reports(monkeypatch, agent):
    setup = tiny_setup()
    setup.discriminator = small_cnn()
    trained = spy_trained_tokens(monkeypatch)
    reward_mode = {"reinforce": "prob", "bgan": "bgan"}.get(agent, "log")
    num_envs = 15 if agent == "bgan" else 12
    spy = EnvSpy(agent_env(setup, num_envs, reward_mode))
    for step in range(2):
        metrics, rows = one_generator_step(agent, setup, torch.Generator().manual_seed(step))
        assert spy.calls == T * (step + 1)  # one episode per row: T env steps per update
        assert setup.venv.num_envs == rows
        env_tokens = spy.info["sequence"]
        assert torch.equal(trained[-1], env_tokens)  # the update learned from the env's tokens
        assert torch.equal(env_tokens, torch.stack(spy.actions[-T:], dim=1))
        logits = eval_logits(setup.discriminator, env_tokens)
        torch.testing.assert_close(spy.rewards, get_reward_fn(reward_mode)(logits))
    # every agent logs the env reward it consumed and D on its fakes under one name
    assert metrics["reward"] == pytest.approx(float(spy.rewards.mean()), abs=1e-6)
    assert metrics["d_fake"] == pytest.approx(float(torch.sigmoid(logits).mean()), abs=1e-6)
    if agent == "bgan":  # conditioned groups: rows of a group share their first 2 tokens
        groups = env_tokens.view(3, 5, T)
        assert (groups[:, :, :2] == groups[:, :1, :2]).all()


@pytest.mark.parametrize("reward", ["prob", "log", "logit"])
def test_env_terminal_reward_is_the_last_monte_carlo_q_column(reward):
    setup = tiny_setup()
    disc = setup.discriminator = small_cnn(1)
    venv = agent_env(setup, 16, reward)
    gen = torch.Generator().manual_seed(3)
    episodes = collect_episodes(venv, setup.policy, gen)
    reward_fn = get_reward_fn(reward)
    q = monte_carlo_q(setup.policy, lambda y: reward_fn(eval_logits(disc, y)), episodes.tokens, 3, generator=gen)  # fmt: skip
    # D sees the sequences in a larger batch inside monte_carlo_q: equal up to float rounding.
    torch.testing.assert_close(episodes.rewards, q[:, -1], rtol=1e-6, atol=1e-6)
    assert torch.equal(episodes.logits, eval_logits(disc, episodes.tokens))
    assert episodes.rewards.std() > 1e-3  # a real spread of rewards, not a constant


def test_build_setup_env_shares_the_trained_discriminator(tmp_path):
    cfg = build_config(
        reinforce.ReinforceConfig,
        {
            "vocab_size": V,
            "seq_len": T,
            "n_real": 64,
            "n_valid": 16,
            "mle_epochs": 0,
            "d_pretrain_steps": 0,
            "batch_size": 10,
            "d_negatives": 64,
            "disc_kwargs": {"emb_dim": 8, "filter_sizes": [2, 3], "num_filters": [8, 8]},
            "device": "cpu",
            "reward": "log",
        },
    )
    setup = build_setup(cfg, tmp_path, resume=False, num_envs=10, reward_mode="log")
    venv = setup.venv
    assert venv.discriminator is setup.discriminator and venv.as_torch
    assert (venv.num_envs, venv.core.reward_mode, venv.device) == (10, "log", setup.device)
    assert agent_env(setup, 10, "log") is venv  # fits: reused, not rebuilt
    before = collect_episodes(venv, setup.policy, torch.Generator().manual_seed(0))
    discriminator_round(setup, cfg, torch.Generator().manual_seed(1), torch.Generator().manual_seed(2))  # fmt: skip
    after = collect_episodes(venv, setup.policy, torch.Generator().manual_seed(0))
    assert torch.equal(before.tokens, after.tokens)  # same seed, same draws
    assert not torch.equal(before.rewards, after.rewards)  # the D update reached the env at once
    expected = torch.nn.functional.logsigmoid(eval_logits(setup.discriminator, after.tokens))
    assert torch.equal(after.rewards, expected)


def test_collection_draws_what_policy_sample_draws_and_is_seeded():
    setup = tiny_setup()
    venv = agent_env(setup, 20, "prob")
    a = collect_episodes(venv, setup.policy, torch.Generator().manual_seed(5))
    b = collect_episodes(venv, setup.policy, torch.Generator().manual_seed(5))
    c = collect_episodes(venv, setup.policy, torch.Generator().manual_seed(6))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.rewards, b.rewards)
    assert not torch.equal(a.tokens, c.tokens)
    # the same route as policy.sample (projecting kernel or logits), hence the same stream
    sampled = setup.policy.sample(20, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.tokens, sampled)


def test_collection_loop_has_no_host_sync_and_no_cuda(monkeypatch):
    """Every token step but the last (whose one sync checks the episode's ids before D) is sync-free."""
    setup = tiny_setup()
    setup.discriminator = small_cnn()
    venv = agent_env(setup, 8, "prob")
    # The guard wraps policy.step, which sends sampling through step + sample_categorical; the
    # reference takes that route too. (The projection route draws the same distribution but,
    # with bf16 dot products and rejection, not the same stream: comparing across routes
    # would pass only on CPUs without avx512_bf16.)
    setup.policy.step = setup.policy.step
    expected = collect_episodes(venv, setup.policy, torch.Generator().manual_seed(4))
    original_step = venv.step
    calls = []

    with no_host_sync_in_loop(monkeypatch) as guard:
        _guarded(setup.policy, guard)

        def step(actions):
            calls.append(1)
            if len(calls) == T:  # the scoring step: its range check and D may sync
                guard.armed = False
            return original_step(actions)

        venv.step = step
        got = collect_episodes(venv, setup.policy, torch.Generator().manual_seed(4))
        assert len(calls) == T and not guard.armed
    assert torch.equal(got.tokens, expected.tokens)
    assert torch.equal(got.rewards, expected.rewards)


def test_the_sync_guard_catches_per_step_action_checks(monkeypatch):
    """The same loop with the per-step range check (``action_check="step"``) is caught."""
    from tests.test_hot_paths import HostSyncError

    setup = tiny_setup()
    venv = TextGenerationVectorEnv(8, V, T, discriminator=small_cnn(), as_torch=True)
    with no_host_sync_in_loop(monkeypatch) as guard:
        _guarded(setup.policy, guard)
        with pytest.raises(HostSyncError):
            collect_episodes(venv, setup.policy, torch.Generator().manual_seed(4))
        guard.armed = False


def test_episode_action_check_rejects_bad_ids_before_scoring():
    calls = []

    def disc(y):
        calls.append(y.shape[0])
        return torch.zeros(y.shape[0])

    venv = TextGenerationVectorEnv(4, V, T, discriminator=disc, as_torch=True, action_check="episode")  # fmt: skip
    venv.reset()
    venv.step(torch.tensor([0, V, 1, 2]))  # out of range, not yet checked
    for _ in range(T - 2):
        venv.step(torch.zeros(4, dtype=torch.long))
    with pytest.raises(InvalidAction, match=r"env rows \[1\].*outside \[0, 8\)"):
        venv.step(torch.zeros(4, dtype=torch.long))
    assert calls == []  # the discriminator never saw the bad episode
    with pytest.raises(ResetNeeded):
        venv.step(torch.zeros(4, dtype=torch.long))
    venv.reset()  # a fresh episode starts clean
    for _ in range(T):
        _, rewards, term, _, _ = venv.step(torch.ones(4, dtype=torch.long))
    assert term.all() and calls == [4] and torch.equal(rewards, torch.full((4,), 0.5))
    with pytest.raises(InvalidAction, match="dtype"):
        venv.step(torch.zeros(4))  # dtype and shape are still checked every step
    with pytest.raises(InvalidAction, match="shape"):
        venv.step(torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="as_torch=True"):
        TextGenerationVectorEnv(4, V, T, discriminator=disc, action_check="episode")


def test_collect_episodes_rejects_mismatched_arguments():
    setup = tiny_setup()
    venv = agent_env(setup, 6, "prob")
    gen = torch.Generator()
    with pytest.raises(ValueError, match="group_size 4 must divide"):
        collect_episodes(venv, setup.policy, gen, group_size=4)
    with pytest.raises(ValueError, match="shared_prefix"):
        collect_episodes(venv, setup.policy, gen, group_size=3, shared_prefix=T)
    numpy_env = TextGenerationVectorEnv(6, V, T, discriminator=small_cnn())
    with pytest.raises(ValueError, match="as_torch"):
        collect_episodes(numpy_env, setup.policy, gen)
    other = TextGenerationVectorEnv(6, V + 1, T, discriminator=lambda y: y[:, 0].float(), as_torch=True)  # fmt: skip
    with pytest.raises(ValueError, match="does not match the env"):
        collect_episodes(other, setup.policy, gen)


@pytest.mark.parametrize(
    ("pretrain", "expected_steps"),
    [({}, 2 * 1 * 4), ({"d_pretrain_epochs": 3, "d_pretrain_negatives": 16}, 2 * 3 * 2)],
)
def test_discriminator_pretraining_takes_its_own_epochs_and_negatives(
    tmp_path, pretrain, expected_steps
):
    """Pre-training rounds may be longer than the per-update ones (the paper's 50 x 3 epochs
    with a shortened per-update schedule); unset, they are the per-update rounds."""
    values = {
        "vocab_size": V,
        "seq_len": T,
        "n_real": 64,
        "n_valid": 16,
        "mle_epochs": 0,
        "d_pretrain_steps": 2,
        "d_epochs": 1,
        "d_negatives": 32,
        "d_batch_size": 16,
        "batch_size": 10,
        "disc_kwargs": {"emb_dim": 8, "filter_sizes": [2, 3], "num_filters": [8, 8]},
        "device": "cpu",
        **pretrain,
    }
    setup = build_setup(build_config(reinforce.ReinforceConfig, values), tmp_path, resume=False)
    steps = {float(s["step"]) for s in setup.d_optimizer.state.values()}
    assert steps == {float(expected_steps)}  # rounds x epochs x batches of real + fake
