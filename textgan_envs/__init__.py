"""Gymnasium environments for adversarial text generation with learned-discriminator rewards."""

from gymnasium.envs.registration import register, registry

_ENVS = {
    "textgan/Oracle-v0": ("textgan_envs.envs:OracleEnv", "textgan_envs.envs:OracleVectorEnv"),
    "textgan/Corpus-v0": ("textgan_envs.envs:CorpusEnv", "textgan_envs.envs:CorpusVectorEnv"),
    "textgan/FillInBlank-v0": (
        "textgan_envs.envs.fill_in_blank:FillInTheBlankEnv",
        "textgan_envs.envs.fill_in_blank:FillInTheBlankVectorEnv",
    ),
}

# No ``max_episode_steps`` here: every env's episode bound is its ``seq_len`` (a kwarg, or for
# FillInBlank the data's length), so any registered number would make Gymnasium's TimeLimit cut
# episodes of other lengths before they are scored. The envs end their episodes themselves and
# fill the bound into ``env.spec.max_episode_steps`` (``textgan_envs.envs.core.EpisodeBoundSpec``).
for _env_id, (_scalar, _vector) in _ENVS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point=_scalar,
            vector_entry_point=_vector,
        )
