"""Gymnasium environments for adversarial text generation with learned-discriminator rewards."""

from gymnasium.envs.registration import register, registry

_ENVS = {
    "textgan/Oracle-v0": ("OracleEnv", "OracleVectorEnv"),
    "textgan/Corpus-v0": ("CorpusEnv", "CorpusVectorEnv"),
}

for _env_id, (_scalar, _vector) in _ENVS.items():
    if _env_id not in registry:
        register(
            id=_env_id,
            entry_point=f"textgan_envs.envs:{_scalar}",
            vector_entry_point=f"textgan_envs.envs:{_vector}",
        )
