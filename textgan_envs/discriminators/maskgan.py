"""MaskGAN's per-token discriminator with a critic head, and the seq2seq body it shares with the generator.

Both MaskGAN networks read the masked sequence ``m(x)`` with an encoder and run a decoder over
the sequence being filled (Fedus, Goodfellow & Dai, "MaskGAN: Better Text Generation via Filling
in the ______", ICLR 2018). :class:`MaskedSeq2SeqBody` is that shared shape:

* an embedding in which the MASK id is an ordinary row, so missing tokens get a *learned*
  embedding;
* an LSTM encoder over ``m(x)``, whose final state starts the decoder;
* an LSTM decoder whose input at step ``t`` is ``[emb(token fed at t); emb(m(x)_t)]``, so it always
  knows whether position ``t`` is missing and, if present, which token sits there;
* optional Luong ("general") attention of each decoder state over the encoder outputs, which
  lets the decoder see the context *after* position ``t``.

The discriminator feeds the filled token ``x~_t`` at step ``t``, so its logit at ``t`` depends on
``m(x)`` and ``x~_{<=t}`` only: the reward for a position is fixed the moment it is filled and no
later token can change it. The critic head reads the decoder state *before* ``x~_t``
(``h_{t-1}``), so its value ``b_t`` never depends on the action it is a baseline for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textgan_envs.device import resolve_device
from textgan_envs.rewards import RewardFn, log_reward
from textgan_envs.vocab import Vocabulary

State = tuple[Tensor, Tensor]


class MaskedSeq2SeqBody(nn.Module):
    """Embedding, encoder over ``m(x)``, decoder over a token sequence, optional attention.

    ``decode`` returns per-step features ``[B, T, H]`` (attention-mixed when enabled) and the raw
    decoder hidden states ``[B, T, H]``; heads on top turn them into logits or values.
    """

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        emb_dim: int = 32,
        hidden_dim: int = 64,
        attention: bool = True,
        mask_token: int = Vocabulary.MASK,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("vocab_size", vocab_size, 2),
            ("seq_len", seq_len, 2),
            ("emb_dim", emb_dim, 1),
            ("hidden_dim", hidden_dim, 1),
        ):
            if int(value) < low:
                raise ValueError(f"{name} must be >= {low}, got {value}")
        if not 0 <= mask_token < vocab_size:
            raise ValueError(
                f"the vocabulary (size {vocab_size}) lacks the MASK token id {mask_token}; "
                "MaskGAN needs a MASK id inside the vocabulary"
            )
        self.vocab_size = int(vocab_size)
        self.seq_len = int(seq_len)
        self.emb_dim = int(emb_dim)
        self.hidden_dim = int(hidden_dim)
        self.mask_token = int(mask_token)
        self.use_attention = bool(attention)
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        self.encoder = nn.LSTM(emb_dim, hidden_dim, batch_first=True)
        self.decoder = nn.LSTM(2 * emb_dim, hidden_dim, batch_first=True)
        if self.use_attention:
            self.attn_score = nn.Linear(hidden_dim, hidden_dim, bias=False)
            self.attn_mix = nn.Linear(2 * hidden_dim, hidden_dim)
        self.to(resolve_device(device))

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def check_tokens(self, tokens: Tensor, name: str) -> None:
        """Raise a clear ``ValueError`` unless ``tokens`` is a ``[B, seq_len]`` id tensor in range."""
        if tokens.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"{name} must be an integer token tensor, got dtype {tokens.dtype}")
        if tokens.ndim != 2 or tokens.shape[1] != self.seq_len:
            raise ValueError(
                f"{name} must have shape [batch, {self.seq_len}], got {tuple(tokens.shape)}"
            )
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise ValueError(
                f"{name} holds ids outside the vocabulary [0, {self.vocab_size}): "
                f"min {int(tokens.min())}, max {int(tokens.max())}"
            )

    def encode(self, masked: Tensor) -> tuple[Tensor, State]:
        """Encoder outputs ``[B, T, H]`` and final state, the decoder's initial state."""
        out, state = self.encoder(self.embedding(masked))
        return out, state

    def decode(
        self, fed: Tensor, masked: Tensor, state: State, enc_out: Tensor
    ) -> tuple[Tensor, Tensor, State]:
        """Run the decoder over ``fed`` ``[B, t]`` next to ``masked`` ``[B, t]`` (any ``t <= T``)."""
        inputs = torch.cat([self.embedding(fed), self.embedding(masked)], dim=-1)
        hidden, state = self.decoder(inputs, state)
        return self._attend(hidden, enc_out), hidden, state

    def _attend(self, hidden: Tensor, enc_out: Tensor) -> Tensor:
        if not self.use_attention:
            return hidden
        scores = self.attn_score(hidden) @ enc_out.transpose(1, 2)  # [B, t, T]
        context = torch.softmax(scores, dim=-1) @ enc_out  # [B, t, H]
        return torch.tanh(self.attn_mix(torch.cat([hidden, context], dim=-1)))


class MaskGANDiscriminator(MaskedSeq2SeqBody):
    """Per-token probability that each filled token is real, plus a critic value per position.

    ``forward(masked, filled) -> (logits [B, T], values [B, T])``; ``D(x~_t) = sigmoid(logit_t)``.
    The critic is linear on the *detached* decoder state ``h_{t-1}``: training it by MSE to the
    returns never moves the discriminator's body, so the reward and the baseline are learned
    independently.
    """

    default_lr: float = 1e-3

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        emb_dim: int = 32,
        hidden_dim: int = 64,
        attention: bool = True,
        mask_token: int = Vocabulary.MASK,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(vocab_size, seq_len, emb_dim, hidden_dim, attention, mask_token, "cpu")
        self.logit_head = nn.Linear(hidden_dim, 1)
        self.critic_head = nn.Linear(hidden_dim, 1)
        self.to(resolve_device(device))

    def forward(self, masked: Tensor, filled: Tensor) -> tuple[Tensor, Tensor]:
        self.check_tokens(masked, "masked")
        self.check_tokens(filled, "filled")
        if masked.shape != filled.shape:
            raise ValueError(
                f"masked {tuple(masked.shape)} and filled {tuple(filled.shape)} differ in shape"
            )
        enc_out, state = self.encode(masked)
        features, hidden, _ = self.decode(filled, masked, state, enc_out)
        logits = self.logit_head(features).squeeze(-1)
        before = torch.cat([state[0][-1].unsqueeze(1), hidden[:, :-1]], dim=1)  # h_{t-1}
        values = self.critic_head(before.detach()).squeeze(-1)
        return logits, values

    def critic_parameters(self) -> list[nn.Parameter]:
        """The critic head's parameters (trained by MSE, with their own optimiser)."""
        return list(self.critic_head.parameters())

    def discriminator_parameters(self) -> list[nn.Parameter]:
        """Everything except the critic head (trained by the real/fake cross-entropy)."""
        critic = {id(p) for p in self.critic_head.parameters()}
        return [p for p in self.parameters() if id(p) not in critic]


def rewards_from_logits(
    logits: Tensor, present: Tensor, reward_fn: RewardFn = log_reward
) -> Tensor:
    """``reward_fn(logit)`` (default ``log D = logsigmoid(logit)``, MaskGAN's) at missing
    positions, 0 at present ones, detached (``[B, T]``)."""
    return reward_fn(logits.detach()) * (~present).to(logits.dtype)


def per_token_rewards(
    discriminator: MaskGANDiscriminator,
    masked: Tensor,
    filled: Tensor,
    present: Tensor,
    reward_fn: RewardFn = log_reward,
) -> Tensor:
    """``r_t = log D(x~_t | x~_<t, m(x))`` (or another ``reward_fn`` of the logit) at missing
    positions, 0 at present ones (``[B, T]``).

    Computed from logits with ``logsigmoid`` (never ``log(0)``) and without gradient: a reward is a
    number handed to the agent, the same for the env and the trainer.
    """
    with torch.no_grad():
        logits, _ = discriminator(masked, filled)
    return rewards_from_logits(logits, present, reward_fn)


def discriminator_loss(real_logits: Tensor, fake_logits: Tensor, present: Tensor) -> Tensor:
    """Binary cross-entropy on missing positions only: real fills -> 1, generated fills -> 0.

    Both sequences share the same mask, so the loss averages over ``2 * n_missing`` terms.
    """
    missing = (~present).to(real_logits.dtype)
    n = missing.sum().clamp(min=1.0)
    real = F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits), reduction="none"
    )
    fake = F.binary_cross_entropy_with_logits(
        fake_logits, torch.zeros_like(fake_logits), reduction="none"
    )
    return ((real + fake) * missing).sum() / (2.0 * n)


def check_compatible(
    other: object, discriminator: MaskGANDiscriminator, first: str = "generator"
) -> None:
    """``other`` (a generator, or an env's shape) and the discriminator must agree on vocabulary
    size, MASK id and sequence length; the error names the mismatch."""
    for attr in ("vocab_size", "mask_token", "seq_len"):
        g, d = getattr(other, attr, None), getattr(discriminator, attr, None)
        if g != d:
            raise ValueError(
                f"{first} and discriminator disagree on {attr}: {first} {g}, discriminator {d}"
            )
