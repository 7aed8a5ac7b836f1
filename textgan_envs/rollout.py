"""SeqGAN's Monte-Carlo search as one batched computation.

For a sequence ``y_1..y_T`` the action value of the prefix ``y_1..y_t`` is
``Q_t = mean_n score(complete_n(y_1..y_t))`` with ``N`` completions drawn from a
rollout policy, and ``Q_T = score(y)``. :func:`monte_carlo_q` computes all
``B x (T-1) x N`` completions of a batch at once:

1. one teacher-forced pass of the rollout policy over the batch caches the
   recurrent state after every prefix (the :class:`RecurrentSequenceModel` protocol);
2. the rows are laid out by prefix length, so at absolute position ``p`` exactly
   the rows whose prefix is at most ``p`` long are still generating and they
   form a contiguous leading slice of the buffers: every step advances all
   active (prefix, rollout) pairs with one ``step`` call on a slice whose size
   is a Python integer (no host sync in the time loop), and shorter prefixes
   cost no wasted work (the completion loop of :mod:`textgan_envs.sampling`,
   :func:`~textgan_envs.sampling.sequences.complete_in_place`);
3. one call of ``score_fn`` scores every completion and the sequences themselves.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from textgan_envs.sampling.next_token import next_token_sampler
from textgan_envs.sampling.sequences import complete_in_place, prefix_states
from textgan_envs.sequence_model import RecurrentSequenceModel, State

ScoreFn = Callable[[Tensor], Tensor]

# Bound on rows x vocabulary of the logits alive at once (~256 MB of float32).
_MAX_LOGIT_ELEMENTS = 1 << 26


def _check_inputs(policy: RecurrentSequenceModel, tokens: Tensor, n_rollouts: int) -> None:
    for attr in ("vocab_size", "start_token", "initial_state", "step"):
        if not hasattr(policy, attr):
            raise TypeError(
                f"rollout policy {type(policy).__name__} lacks {attr!r} (RecurrentSequenceModel)"
            )
    if not isinstance(tokens, Tensor) or tokens.dim() != 2 or tokens.dtype != torch.long:
        desc = (
            f"{tokens.dtype} {tuple(tokens.shape)}"
            if isinstance(tokens, Tensor)
            else type(tokens).__name__
        )
        raise ValueError(f"tokens must be a LongTensor [B, T], got {desc}")
    if int(n_rollouts) != n_rollouts or n_rollouts < 1:
        raise ValueError(f"n_rollouts must be a positive integer, got {n_rollouts!r}")


@torch.no_grad()
def _q_chunk(
    policy: RecurrentSequenceModel,
    score_fn: ScoreFn,
    tokens: Tensor,
    n_rollouts: int,
    generator: torch.Generator | None,
    final_scores: Tensor | None = None,
) -> Tensor:
    batch, length = tokens.shape
    n = int(n_rollouts)
    n_prefix = length - 1  # prefixes of length 1..T-1 get rolled out
    group = n * batch  # rows per prefix length
    rows = n_prefix * group

    # 1. teacher-forced pass: state after reading y_1..y_{t-1} for t = 1..T-1, stored
    #    directly into per-row buffers laid out as [prefix length t][rollout n][batch b].
    states = prefix_states(policy, tokens[:, :n_prefix])
    next(states)  # the empty prefix is not rolled out
    buffers: State = ()
    for t, (state, _) in enumerate(states, start=1):  # state produced p(y_t | y_<t)
        if not buffers:
            buffers = tuple(s.new_empty((rows, *s.shape[1:])) for s in state)
        lo = (t - 1) * group
        for buf, s in zip(buffers, state, strict=True):
            buf[lo : lo + group] = s.unsqueeze(0).expand(n, *s.shape).reshape(group, *s.shape[1:])

    # Completions start as copies of the full sequence; positions >= t are overwritten.
    completions = tokens.repeat(n * n_prefix, 1)  # [rows, T], row r has batch index r % B
    # The input for the first generated token of prefix length t is y_t.
    prev_rows = tokens[:, :n_prefix].T.repeat_interleave(n, dim=0).reshape(rows)

    # 2. generate position p (0-based) for every row whose prefix length t <= p: the
    #    leading p * group rows.
    step = next_token_sampler(policy, generator)
    active = [p * group for p in range(1, length)]
    complete_in_place(step, completions, prev_rows, buffers, 1, active)

    # 3. score completions (and the sequences themselves, unless given) in one call.
    scored = completions if final_scores is not None else torch.cat([completions, tokens])
    if scored.shape[0] == 0:  # T = 1 with the final scores given: nothing to roll out
        return final_scores.unsqueeze(1)
    scores = torch.as_tensor(score_fn(scored)).float()
    if scores.shape != (scored.shape[0],):
        raise ValueError(
            f"score_fn must return shape [{scored.shape[0]}], got {tuple(scores.shape)}"
        )
    q = scores[:rows].view(n_prefix, n, batch).mean(dim=1).T  # [B, T-1]
    last = final_scores if final_scores is not None else scores[rows:]
    return torch.cat([q, last.unsqueeze(1)], dim=1)


def monte_carlo_q(
    rollout_policy: RecurrentSequenceModel,
    score_fn: ScoreFn,
    tokens: Tensor,
    n_rollouts: int,
    generator: torch.Generator | None = None,
    max_rows: int | None = None,
    final_scores: Tensor | None = None,
) -> Tensor:
    """SeqGAN's Monte-Carlo action values ``Q`` ``[B, T]`` of ``tokens`` ``LongTensor[B, T]``.

    Column ``t`` (0-based) is the mean score of ``n_rollouts`` completions (drawn
    from ``rollout_policy``) of the prefix ``tokens[:, :t+1]``; the last column
    is ``score_fn(tokens)``, or ``final_scores`` ``[B]`` when given (the env's terminal
    reward of ``tokens``, which an agent then consumes instead of recomputing). ``score_fn`` maps ``LongTensor[K, T]`` to scores
    ``[K]`` (e.g. ``lambda y: torch.sigmoid(D(y))``). Runs under ``no_grad``.

    ``max_rows`` bounds the completion rows alive at once (default: about
    256 MB of logits); larger batches are split over the batch dimension, each
    chunk still one batched computation. ``generator`` lives on the policy's device.
    """
    _check_inputs(rollout_policy, tokens, n_rollouts)
    batch, length = tokens.shape
    if final_scores is not None and tuple(final_scores.shape) != (batch,):
        raise ValueError(f"final_scores must have shape [{batch}], got {tuple(final_scores.shape)}")
    device = torch.device(rollout_policy.device)
    tokens = tokens.to(device)
    if batch == 0 or length == 0:
        return torch.zeros((batch, length), device=device)
    if tokens.min() < 0 or tokens.max() >= rollout_policy.vocab_size:
        raise ValueError(
            f"tokens span [{int(tokens.min())}, {int(tokens.max())}], outside the rollout "
            f"policy's vocabulary [0, {rollout_policy.vocab_size})"
        )
    per_sequence = max(1, (length - 1) * int(n_rollouts))
    if max_rows is None:
        max_rows = max(1, _MAX_LOGIT_ELEMENTS // max(1, int(rollout_policy.vocab_size)))
    chunk = max(1, int(max_rows) // per_sequence)
    finals = None if final_scores is None else final_scores.to(device).float()
    parts = [
        _q_chunk(
            rollout_policy,
            score_fn,
            tokens[i : i + chunk],
            n_rollouts,
            generator,
            None if finals is None else finals[i : i + chunk],
        )
        for i in range(0, batch, chunk)
    ]
    return torch.cat(parts) if len(parts) > 1 else parts[0]
