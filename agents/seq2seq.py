"""MaskGAN's seq2seq generator: fill the missing tokens of ``m(x)`` one position at a time.

The body (embedding with a learned MASK row, encoder over ``m(x)``, decoder, optional attention)
is :class:`textgan_envs.discriminators.maskgan.MaskedSeq2SeqBody`, shared with the discriminator.
The decoder's input at step ``t`` is the token at ``t - 1`` (``BOS`` at ``t = 0``) next to
``m(x)_t``. At present positions the output is the real token, copied; at missing ones a token is
sampled and fed back. The MASK id is never emitted (its logit is ``-inf``), so a fill is always a
real word.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from textgan_envs.device import resolve_device
from textgan_envs.discriminators.maskgan import MaskedSeq2SeqBody
from textgan_envs.sampling import sample_categorical
from textgan_envs.vocab import Vocabulary


@dataclass
class FillSample:
    """One batch of fills: the filled sequences and the per-token log-probabilities of the fills."""

    filled: Tensor
    """``LongTensor[B, T]``: real tokens at present positions, generated ones at missing positions."""
    log_probs: Tensor
    """``[B, T]`` log G of each generated token; 0 at present positions (no gradient)."""


class Seq2SeqGenerator(MaskedSeq2SeqBody):
    """``G(x~_t | x~_<t, m(x))``: teacher-forced ``forward``/``log_prob`` and autoregressive ``sample``."""

    default_lr: float = 1e-3

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        emb_dim: int = 32,
        hidden_dim: int = 64,
        attention: bool = True,
        mask_token: int = Vocabulary.MASK,
        start_token: int = Vocabulary.BOS,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(vocab_size, seq_len, emb_dim, hidden_dim, attention, mask_token, "cpu")
        if not 0 <= start_token < vocab_size:
            raise ValueError(
                f"start_token {start_token} is outside the vocabulary [0, {vocab_size})"
            )
        self.start_token = int(start_token)
        self.output = nn.Linear(hidden_dim, vocab_size)
        self.to(resolve_device(device))

    def _logits(self, features: Tensor) -> Tensor:
        logits = self.output(features)
        logits[..., self.mask_token] = float("-inf")
        return logits

    def _check_pair(self, masked: Tensor, filled: Tensor) -> None:
        self.check_tokens(masked, "masked")
        self.check_tokens(filled, "filled")
        if masked.shape != filled.shape:
            raise ValueError(
                f"masked {tuple(masked.shape)} and filled {tuple(filled.shape)} differ in shape"
            )

    def forward(self, masked: Tensor, filled: Tensor) -> Tensor:
        """Teacher-forced logits ``[B, T, V]`` for every position, feeding ``filled`` shifted right."""
        self._check_pair(masked, filled)
        start = torch.full_like(filled[:, :1], self.start_token)
        fed = torch.cat([start, filled[:, :-1]], dim=1)
        enc_out, state = self.encode(masked)
        features, _, _ = self.decode(fed, masked, state, enc_out)
        return self._logits(features)

    def log_prob(self, masked: Tensor, filled: Tensor) -> Tensor:
        """``log G(x~_t | x~_<t, m(x))`` for every position ``[B, T]`` (with gradient).

        Present positions get the model's log-probability too; callers weight by the missing
        mask (the generator never acts there).
        """
        logp = torch.log_softmax(self.forward(masked, filled), dim=-1)
        return logp.gather(-1, filled.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def sample(
        self,
        masked: Tensor,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        greedy: bool = False,
    ) -> FillSample:
        """Fill every MASK position of ``masked`` ``[B, T]``; present tokens are copied."""
        self.check_tokens(masked, "masked")
        batch, length = masked.shape
        present = masked != self.mask_token
        enc_out, state = self.encode(masked)
        prev = torch.full((batch,), self.start_token, dtype=torch.long, device=masked.device)
        filled = masked.clone()
        log_probs = torch.zeros(batch, length, device=masked.device)
        for t in range(length):
            features, _, state = self.decode(
                prev.unsqueeze(1), masked[:, t : t + 1], state, enc_out
            )
            logits = self._logits(features[:, 0])
            if greedy:
                drawn = logits.argmax(dim=-1)
            else:
                drawn = sample_categorical(logits, generator=generator, temperature=temperature)
            token = torch.where(present[:, t], masked[:, t], drawn)
            logp = torch.log_softmax(logits, dim=-1).gather(-1, token.unsqueeze(-1)).squeeze(-1)
            log_probs[:, t] = torch.where(present[:, t], torch.zeros_like(logp), logp)
            filled[:, t] = token
            prev = token
        return FillSample(filled=filled, log_probs=log_probs)


def mask_mle_loss(generator: Seq2SeqGenerator, real: Tensor, masked: Tensor) -> Tensor:
    """MaskMLE: teacher-forced cross-entropy of the real tokens at missing positions only (nats/token)."""
    missing = (masked == generator.mask_token).to(torch.float32)
    nll = -generator.log_prob(masked, real)
    return (nll * missing).sum() / missing.sum().clamp(min=1.0)
