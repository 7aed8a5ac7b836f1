"""SeqGAN's CNN discriminator with its published defaults.

Embedding (64) -> one 1-D convolution per filter width (1..10, 15, 20) with ReLU
and max-over-time pooling -> one highway layer -> dropout (keep 0.75) -> output.
SeqGAN's two-class softmax output is reparametrised as a single logit
(``logit = s_real - s_fake``, the same family of functions), with the same L2
penalty (0.2 * ||W||^2 / 2 on the output layer) exposed as :meth:`regularization`.
Sequences shorter than the widest filter are zero-padded in embedding space,
so padding never collides with a real token id (id 0 is an ordinary oracle token).

``train_precision="bfloat16"`` is an opt-in for CPUs with bfloat16 dot products
(avx512_bf16, AMX) and GPUs: the GEMMs of training steps (convolutions and highway)
round their operands to bfloat16 (``benchmarks/discriminator_training.py`` measures it),
and dropout draws its mask four elements per random draw (``dropout.py``). Weights, Adam,
the elementwise math and scoring (rewards, accuracy) stay float32; on the CPU the highway
GEMMs read bfloat16 copies of its weights that the optimiser keeps current
(``bf16_weights.py``).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from textgan_envs.device import resolve_device
from textgan_envs.discriminators.bf16_weights import shadows_apply
from textgan_envs.discriminators.conv_bank import conv_bank_max_pool, plain_conv_bank_max_pool
from textgan_envs.discriminators.dropout import fast_dropout
from textgan_envs.discriminators.highway import highway_step

SEQGAN_FILTER_SIZES: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20)
SEQGAN_NUM_FILTERS: tuple[int, ...] = (100, 200, 200, 200, 200, 100, 100, 100, 100, 100, 160, 160)
#: ``train_precision`` values and the dtype of the training GEMMs each selects.
TRAIN_PRECISIONS: dict[str, torch.dtype] = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class Highway(nn.Module):
    """``y = t * relu(W x) + (1 - t) * x`` with gate ``t = sigmoid(W_t x + bias)`` (bias 0 in SeqGAN)."""

    def __init__(self, size: int, gate_bias: float = 0.0) -> None:
        super().__init__()
        self.transform = nn.Linear(size, size)
        self.gate = nn.Linear(size, size)
        nn.init.constant_(self.gate.bias, gate_bias)
        self._stack_layers()

    def _stack_layers(self) -> None:
        """Each layer's weight and bias as halves of one tensor (transform first), so the
        fused step can run both layers as one GEMM (``highway.py``); state dicts are unchanged."""
        size = self.transform.out_features
        for name in ("weight", "bias"):
            both = torch.cat([getattr(self.transform, name), getattr(self.gate, name)]).detach()
            setattr(self.transform, name, nn.Parameter(both[:size]))
            setattr(self.gate, name, nn.Parameter(both[size:]))

    def forward(self, x: Tensor) -> Tensor:
        t = torch.sigmoid(self.gate(x))
        return t * F.relu(self.transform(x)) + (1.0 - t) * x


class CNNDiscriminator(nn.Module):
    """SeqGAN's CNN: ``forward(tokens LongTensor[B, T]) -> logits [B]`` (``D = sigmoid``)."""

    #: Adam learning rate and output-layer L2 weight used by SeqGAN.
    default_lr: float = 1e-4
    l2_reg_lambda: float = 0.2
    #: Sequences per forward chunk on large batches (bounds the [B, maps, T] conv outputs).
    rows_per_chunk: int = 1024
    #: Training through the fused ops: the convolutions as one GEMM per width with an argmax
    #: pooling and a backward that touches only the argmax windows (``conv_bank.py``), and the
    #: highway's hand-written backward (``highway.py``). ``False`` runs the plain ``Conv1d`` +
    #: ``amax`` + autograd formulation (same function, same weights).
    fused_convs: bool = True
    #: bfloat16 training on CPU: the highway GEMMs read bfloat16 weight copies that
    #: ``make_discriminator_optimizer``'s Adam keeps current (``bf16_weights.py``). No faster
    #: within noise: the casts it saves are spent again in the optimiser (BENCHMARKS.md).
    #: ``False`` rounds the float32 weights in every step instead (same numbers).
    bf16_shadows: bool = True

    def __init__(
        self,
        vocab_size: int,
        seq_len: int,
        emb_dim: int = 64,
        filter_sizes: tuple[int, ...] = SEQGAN_FILTER_SIZES,
        num_filters: tuple[int, ...] = SEQGAN_NUM_FILTERS,
        dropout_keep: float = 0.75,
        l2_reg_lambda: float = 0.2,
        device: str | torch.device = "cpu",
        train_precision: str = "float32",
    ) -> None:
        super().__init__()
        if train_precision not in TRAIN_PRECISIONS:
            raise ValueError(
                f"unknown train_precision {train_precision!r}; choose one of "
                f"{sorted(TRAIN_PRECISIONS)}"
            )
        if vocab_size < 1 or seq_len < 1 or emb_dim < 1:
            raise ValueError(
                f"vocab_size, seq_len and emb_dim must be >= 1, got {vocab_size}, {seq_len}, {emb_dim}"
            )
        if len(filter_sizes) != len(num_filters) or not filter_sizes:
            raise ValueError(
                f"filter_sizes {filter_sizes} and num_filters {num_filters} must be non-empty "
                "and of equal length"
            )
        if not 0.0 < dropout_keep <= 1.0:
            raise ValueError(f"dropout_keep must be in (0, 1], got {dropout_keep}")
        self.vocab_size = int(vocab_size)
        self.seq_len = int(seq_len)
        self.filter_sizes = tuple(int(w) for w in filter_sizes)
        self.l2_reg_lambda = float(l2_reg_lambda)
        self.train_precision = train_precision
        self.embedding = nn.Embedding(vocab_size, emb_dim)
        nn.init.uniform_(self.embedding.weight, -1.0, 1.0)
        self.convs = nn.ModuleList(
            nn.Conv1d(emb_dim, n, kernel_size=w)
            for w, n in zip(self.filter_sizes, num_filters, strict=True)
        )
        for conv in self.convs:
            nn.init.trunc_normal_(conv.weight, std=0.1, a=-0.2, b=0.2)
            nn.init.constant_(conv.bias, 0.1)
        total = int(sum(num_filters))
        self.highway = Highway(total, gate_bias=0.0)
        self.dropout = nn.Dropout(1.0 - dropout_keep)
        self.output = nn.Linear(total, 1)
        nn.init.trunc_normal_(self.output.weight, std=0.1, a=-0.2, b=0.2)
        nn.init.constant_(self.output.bias, 0.1)
        self.to(resolve_device(device))
        if train_precision == "bfloat16" and self.device.type == "cpu":
            _warn_if_bf16_is_emulated()

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    def forward(self, tokens: Tensor) -> Tensor:
        if tokens.shape[0] <= self.rows_per_chunk:
            return self._forward(tokens)
        # Scoring all Monte-Carlo completions (~20,000 rows) in chunks bounds the conv outputs'
        # memory; with glibc's default allocator one call page-faults them in and ran 1.8x
        # slower on 2 CPU threads (benchmarks/cnn_scoring.py --default-allocator).
        return torch.cat([self._forward(part) for part in tokens.split(self.rows_per_chunk)])

    @property
    def gemm_dtype(self) -> torch.dtype:
        """The dtype of the training GEMMs (:attr:`train_precision`); scoring runs in float32."""
        return TRAIN_PRECISIONS[self.train_precision]

    def _forward(self, tokens: Tensor) -> Tensor:
        if not self.fused_convs and self.train_precision != "float32" and torch.is_grad_enabled():
            with torch.autocast(self.device.type, dtype=self.gemm_dtype):
                return self._forward_layers(tokens).float()
        return self._forward_layers(tokens)

    def _forward_layers(self, tokens: Tensor) -> Tensor:
        pooled = self.pooled_features(tokens)
        if not self.fused_convs:
            return self.output(self.dropout(self.highway(pooled))).squeeze(1)
        h = highway_step(self.highway, pooled, self.gemm_dtype, shadows=self.bf16_shadows)
        if self.train_precision == "float32":  # nn.Dropout's stream: recorded results reproduce
            return self.output(self.dropout(h)).squeeze(1)
        return self.output(fast_dropout(h, self.dropout.p, self.training)).squeeze(1)

    def pooled_features(self, tokens: Tensor) -> Tensor:
        """Max-over-time ReLU features ``[B, sum(num_filters)]``; short sequences zero-padded."""
        x = self.embedding(tokens)  # [B, T, E]
        if self.fused_convs:
            return conv_bank_max_pool(x, self.convs, self.gemm_dtype)
        return plain_conv_bank_max_pool(x, self.convs)

    def shadowed_weights(self) -> list[Tensor]:
        """The weights whose training GEMMs read bfloat16 shadows (``bf16_weights.py``): the
        highway's two in bfloat16 training on the CPU with the native kernels, else none."""
        weights = [self.highway.transform.weight, self.highway.gate.weight]
        wanted = self.bf16_shadows and self.fused_convs
        return weights if wanted and all(shadows_apply(w, self.gemm_dtype) for w in weights) else []

    def regularization(self) -> Tensor:
        """SeqGAN's ``l2_reg_lambda * (l2_loss(W) + l2_loss(b))`` on the output layer."""
        w, b = self.output.weight, self.output.bias
        return self.l2_reg_lambda * 0.5 * (w.pow(2).sum() + b.pow(2).sum())


def _warn_if_bf16_is_emulated() -> None:
    """bfloat16 GEMMs on a CPU without bfloat16 dot products are slower than float32."""
    from textgan_envs import native_sampling

    if not native_sampling.cpu_has_bf16_dot_products():
        warnings.warn(
            "train_precision='bfloat16' on a CPU without bfloat16 dot products (avx512_bf16, "
            "amx_bf16 or Arm bf16): its bfloat16 GEMMs are emulated and slower than float32. "
            "Use train_precision='float32' (the default) on this machine.",
            RuntimeWarning,
            stacklevel=3,
        )
