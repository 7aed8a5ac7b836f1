"""Episodes of the generator in the native vector env, and the log-probabilities a policy-gradient needs.

The agents never sample sequences themselves: they step the env (which scores each finished
sequence with the run's discriminator) and read the terminal rewards it reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import Tensor, nn

from textgan_envs.sampling import next_token_sampler

if TYPE_CHECKING:
    from textgan_envs.envs.vector_env import TextGenerationVectorEnv


class Episodes(NamedTuple):
    """One finished episode per env row, as the env reported it at the terminal step."""

    tokens: Tensor
    """``LongTensor[B, T]``: the sequences the env scored (``info["sequence"]``)."""
    rewards: Tensor
    """``[B]`` terminal rewards: the env's ``reward_mode`` applied to ``logits``."""
    logits: Tensor
    """``[B]`` discriminator logits of ``tokens`` (``info["logit"]``)."""

    def d_fake(self) -> float:
        """Mean ``D(y) = sigmoid(logit)`` over these generated sequences: every agent logs it
        as ``d_fake``, one quantity comparable across agents whatever their reward mode."""
        return float(torch.sigmoid(self.logits.float()).mean())


@torch.no_grad()
def collect_episodes(
    venv: TextGenerationVectorEnv,
    policy: nn.Module,
    generator: torch.Generator | None,
    temperature: float = 1.0,
    group_size: int = 1,
    shared_prefix: int = 0,
) -> Episodes:
    """Step ``venv`` (torch mode, fixed length) through one episode per row with ``policy``'s samples.

    ``T`` steps of :func:`~textgan_envs.sampling.next_token_sampler`'s step (the sampler route
    ``policy.sample`` takes, so the draws are those of ``policy.sample(B, generator)``) ->
    ``venv.step``, all on the env's device with no host sync.
    Autoreset is ``SAME_STEP``: the observation returned with the last step is already the
    next episode's first one, so the finished tokens are read from ``info["sequence"]``. For
    BGAN's conditioned groups the rows form ``B / group_size`` consecutive groups that share
    their first ``shared_prefix`` tokens (drawn once per group, from the group's first row).
    """
    batch, length = venv.num_envs, venv.seq_len
    if not venv.as_torch or venv.core.stop_at_eos:
        raise ValueError("collect_episodes needs a vector env with as_torch=True and fixed length")
    if (policy.vocab_size, policy.seq_len) != (venv.vocab_size, length):
        raise ValueError(
            f"policy (vocab {policy.vocab_size}, length {policy.seq_len}) does not match the env "
            f"(vocab {venv.vocab_size}, length {length})"
        )
    if group_size < 1 or batch % group_size:
        raise ValueError(f"group_size {group_size} must divide the env's {batch} rows")
    if not 0 <= shared_prefix < length:
        raise ValueError(f"shared_prefix {shared_prefix} must lie in [0, {length})")
    venv.reset()
    state = policy.initial_state(batch)
    prev = torch.full((batch,), policy.start_token, dtype=torch.long, device=venv.device)
    rewards, info = None, {}
    step = next_token_sampler(policy, generator, temperature)
    for t in range(length):
        if t < shared_prefix:  # rows of a group share state: draw once per group
            first, state = step(prev, state, rows=slice(None, None, group_size))
            prev = first.repeat_interleave(group_size)
        else:
            prev, state = step(prev, state)
        _, rewards, _, _, info = venv.step(prev)
    if "sequence" not in info:
        raise RuntimeError(f"the env did not end its episodes after {length} steps")
    return Episodes(info["sequence"], rewards, info["logit"])


def policy_log_probs_and_entropy(policy: nn.Module, tokens: Tensor) -> tuple[Tensor, Tensor]:
    """Per-token ``log pi(y_t | y_<t)`` (differentiable) and exact per-step entropy ``[B, T]`` (detached).

    One teacher-forced pass gives both, so the entropy diagnostic costs no second forward.
    """
    logits = policy.teacher_forced_logits(tokens)  # [B, T, V]
    log_softmax = torch.log_softmax(logits, dim=-1)
    log_probs = log_softmax.gather(2, tokens.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = -(log_softmax.exp() * log_softmax).sum(-1)
    return log_probs, entropy
