"""The SeqGAN synthetic oracle: a fixed random LSTM that defines the "real" data.

The oracle plays the role of the true data distribution in the synthetic
experiment: real data are its samples, and a generator is scored by the
oracle's per-token NLL of the generator's samples (NLL-oracle). Parameters and
recurrence follow the SeqGAN reference code exactly (see
``../shared/data/seqgan_oracle_params.json``)::

    h_0 = c_0 = 0;  x_1 = E[0]
    i = sigmoid(x Wi + h Ui + bi);  f = sigmoid(x Wf + h Uf + bf)
    o = sigmoid(x Wog + h Uog + bog);  g = tanh(x Wc + h Uc + bc)
    c = f * c + i * g;  h = o * tanh(c);  p(y_t | y_<t) = softmax(h Wo + bo);  x_{t+1} = E[y_t]

Parameter names match the published arrays, so ``state_dict()`` round-trips
through the ``.npz`` format.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from textgan_envs.device import resolve_device
from textgan_envs.sampling import default_batch_rows, sample_sequences, sequence_log_probs
from textgan_envs.sequence_model import State

_GATES = ("i", "f", "og", "c")


def oracle_shapes(vocab_size: int, emb_dim: int, hidden_dim: int) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every oracle array (the published layout)."""
    shapes: dict[str, tuple[int, ...]] = {"g_embeddings": (vocab_size, emb_dim)}
    for gate in _GATES:
        shapes[f"W{gate}"] = (emb_dim, hidden_dim)
        shapes[f"U{gate}"] = (hidden_dim, hidden_dim)
        shapes[f"b{gate}"] = (hidden_dim,)
    shapes["Wo"] = (hidden_dim, vocab_size)
    shapes["bo"] = (vocab_size,)
    return shapes


class OracleLSTM(nn.Module):
    """The frozen oracle LSTM; implements :class:`RecurrentSequenceModel`."""

    start_token = 0

    def __init__(
        self,
        arrays: dict[str, np.ndarray | Tensor],
        seq_len: int = 20,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__()
        if "g_embeddings" not in arrays or "Wo" not in arrays:
            missing = [k for k in ("g_embeddings", "Wo") if k not in arrays]
            raise ValueError(f"oracle arrays missing: {', '.join(missing)}")
        vocab_size, emb_dim = tuple(np.shape(arrays["g_embeddings"]))
        hidden_dim = int(np.shape(arrays["Wo"])[0])
        expected = oracle_shapes(int(vocab_size), int(emb_dim), hidden_dim)
        missing = [name for name in expected if name not in arrays]
        if missing:
            raise ValueError(f"oracle arrays missing: {', '.join(missing)}")
        for name, shape in expected.items():
            got = tuple(np.shape(arrays[name]))
            if got != shape:
                raise ValueError(f"oracle array {name!r} has shape {got}, expected {shape}")
        if int(seq_len) < 1:
            raise ValueError(f"seq_len must be >= 1, got {seq_len}")
        self.vocab_size = int(vocab_size)
        self.emb_dim = int(emb_dim)
        self.hidden_dim = hidden_dim
        self.seq_len = int(seq_len)
        dev = resolve_device(device)
        for name in expected:
            value = torch.as_tensor(np.asarray(arrays[name], dtype=np.float32))
            self.register_parameter(name, nn.Parameter(value.to(dev), requires_grad=False))

    # ----------------------------------------------------------------- builders
    @classmethod
    def random(
        cls,
        seed: int,
        vocab_size: int = 5000,
        emb_dim: int = 32,
        hidden_dim: int = 32,
        seq_len: int = 20,
        device: str | torch.device = "cpu",
    ) -> OracleLSTM:
        """A fresh oracle with every parameter ~ N(0, 1) (as in the paper), from a local RNG."""
        gen = torch.Generator().manual_seed(int(seed))
        arrays = {
            name: torch.randn(shape, generator=gen)
            for name, shape in oracle_shapes(vocab_size, emb_dim, hidden_dim).items()
        }
        return cls(arrays, seq_len=seq_len, device=device)

    @classmethod
    def from_npz(
        cls, path: str | os.PathLike[str], seq_len: int = 20, device: str | torch.device = "cpu"
    ) -> OracleLSTM:
        """Load the published arrays (e.g. ``seqgan_oracle_params.npz``); no pickles allowed."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"oracle parameter file {path} does not exist")
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        return cls(arrays, seq_len=seq_len, device=device)

    def to_npz(self, path: str | os.PathLike[str]) -> Path:
        """Save the parameters in the published ``.npz`` layout."""
        path = Path(path)
        np.savez(path, **{k: v.detach().cpu().numpy() for k, v in self.named_parameters()})
        return path

    # ----------------------------------------------------------------- protocol
    @property
    def device(self) -> torch.device:
        return self.g_embeddings.device

    def initial_state(self, batch_size: int) -> State:
        zeros = torch.zeros((batch_size, self.hidden_dim), device=self.device)
        return zeros, zeros.clone()  # (h [B, H], c [B, H])

    def _fused(self) -> tuple[Tensor, Tensor, Tensor]:
        """Gate weights concatenated as [i | f | o | g] so one matmul computes all gates."""
        w = torch.cat([self.Wi, self.Wf, self.Wog, self.Wc], dim=1)  # [E, 4H]
        u = torch.cat([self.Ui, self.Uf, self.Uog, self.Uc], dim=1)  # [H, 4H]
        b = torch.cat([self.bi, self.bf, self.bog, self.bc])  # [4H]
        return w, u, b

    def step(self, prev_tokens: Tensor, state: State) -> tuple[Tensor, State]:
        h, state = self.step_features(prev_tokens, state)
        return torch.addmm(self.bo, h, self.Wo), state  # logits [B, V]

    def output_projection(self) -> tuple[Tensor, Tensor]:
        """``(Wo [H, V], bo [V])``: logits are ``h @ Wo + bo``."""
        return self.Wo, self.bo

    def step_features(self, prev_tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """The LSTM step without the output projection: ``(h [B, H], (h, c))``."""
        h, c = state  # [B, H] each
        w, u, b = self._fused()
        x = self.g_embeddings[prev_tokens]  # [B, E]
        gates = torch.addmm(b, x, w).addmm_(h, u)  # [B, 4H]
        i, f, o, g = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)

    # ----------------------------------------------------------------- sampling / scoring
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        temperature: float = 1.0,
        batch_size: int | None = None,
        portable: bool = False,
    ) -> Tensor:
        """``n`` oracle sequences ``LongTensor[n, T]``.

        ``portable=True`` draws them the same way on every machine and device (a slower, fixed
        route on CPU, see :func:`~textgan_envs.sampling.sample_sequences`; ``generator`` must
        then be a CPU generator, and the result comes back on the oracle's device): use it for
        datasets that define a task, so a seed's real and held-out sets do not depend on the
        CPU or the device that drew them.
        """
        if portable and self.device.type != "cpu":
            if generator is not None and generator.device.type != "cpu":
                raise ValueError("portable oracle sampling draws on CPU: pass a CPU generator")
            cpu_copy = copy.deepcopy(self).cpu()
            return cpu_copy.sample(n, generator, temperature, batch_size, portable=True).to(
                self.device
            )
        return sample_sequences(
            self,
            n,
            temperature=temperature,
            generator=generator,
            batch_size=batch_size,
            portable=portable,
        )

    @torch.no_grad()
    def log_prob(self, tokens: Tensor, batch_size: int | None = None) -> Tensor:
        """Per-token ``log p(y_t | y_<t)`` ``[B, T]`` under the oracle (chunked over the batch)."""
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be [B, T], got shape {tuple(tokens.shape)}")
        if batch_size is None:
            batch_size = default_batch_rows(self.device, self.vocab_size)
        if tokens.shape[0] == 0:
            return torch.zeros(tokens.shape, device=self.device)
        parts = [sequence_log_probs(self, chunk) for chunk in tokens.split(batch_size)]
        return torch.cat(parts)

    def nll(self, tokens: Tensor, batch_size: int | None = None) -> Tensor:
        """Per-sequence mean per-token NLL in nats ``[B]``; NLL-oracle is its mean over samples."""
        return -self.log_prob(tokens, batch_size=batch_size).mean(dim=1)

    def extra_repr(self) -> str:
        return (
            f"vocab_size={self.vocab_size}, emb_dim={self.emb_dim}, "
            f"hidden_dim={self.hidden_dim}, seq_len={self.seq_len}"
        )
