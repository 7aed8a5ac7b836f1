"""MaskGAN's evaluation: fill perplexity, n-gram diversity/novelty of the fills, BLEU against a test set.

One :class:`FillEvaluator` is built per run with *fixed* held-out sequences and *fixed* masks, so
numbers logged at different steps (and by ``textgan eval`` later) compare like with like:

* ``fill_ppl``: ``exp`` of the mean teacher-forced NLL of the true tokens at missing positions;
* ``unique_{2,3,4}gram``: distinct / all n-grams over the filled sequences (mode collapse -> low);
* ``seen_{2,3,4}gram``: fraction of those n-grams that occur in the training sentences;
* ``bleu4``: BLEU-4 of each filled sequence against the test sentences (mean over sequences).

The n-gram and BLEU metrics use the complete filled sentences (context plus fills, cut at the
first EOS, special tokens dropped); they come from :mod:`textgan_envs.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from agents.runtime import seed_stream
from agents.seq2seq import Seq2SeqGenerator
from textgan_envs.discriminators.maskgan import MaskGANDiscriminator
from textgan_envs.masking import MaskKind, apply_mask, make_mask
from textgan_envs.metrics import BleuScorer, seen_ngram_fraction, unique_ngram_fraction
from textgan_envs.vocab import Vocabulary

NGRAM_ORDERS = (2, 3, 4)


@torch.no_grad()
def fill_perplexity(
    generator: Seq2SeqGenerator, real: Tensor, masked: Tensor, batch_size: int = 512
) -> float:
    """``exp(mean NLL)`` of the real tokens at the missing positions of ``masked`` (teacher forcing)."""
    total, count = 0.0, 0.0
    for start in range(0, real.shape[0], batch_size):
        r, m = real[start : start + batch_size], masked[start : start + batch_size]
        missing = m == generator.mask_token
        nll = -generator.log_prob(m, r)
        total += float((nll * missing).sum())
        count += float(missing.sum())
    if count == 0:
        raise ValueError("no missing position to score: every mask kept every token")
    return math.exp(total / count)


def decode_sentences(tokens: Tensor, vocab: Vocabulary) -> list[list[str]]:
    """Word lists of each row, cut at the first EOS, without PAD/BOS/EOS/MASK."""
    out = []
    for row in tokens.tolist():
        if Vocabulary.EOS in row:
            row = row[: row.index(Vocabulary.EOS)]
        out.append(vocab.decode(row, skip_special=True))
    return out


class FillEvaluator:
    """Fixed held-out rows and masks plus prepared reference statistics; ``__call__`` scores a model."""

    def __init__(
        self,
        real: Tensor,
        vocab: Vocabulary,
        train_sentences: Sequence[Sequence[str]],
        test_sentences: Sequence[Sequence[str]],
        mask: MaskKind,
        present_rate: float,
        seed: int,
    ) -> None:
        gen = torch.Generator().manual_seed(int(seed))
        present = make_mask(mask, real.cpu(), present_rate, gen).to(real.device)
        self.real = real
        self.present = present
        self.masked = apply_mask(real, present)
        self.vocab = vocab
        self.train_sentences = [list(s) for s in train_sentences]
        self.bleu = BleuScorer(test_sentences, max_n=4)
        self.seed = int(seed)

    @torch.no_grad()
    def __call__(
        self,
        generator: Seq2SeqGenerator,
        discriminator: MaskGANDiscriminator | None = None,
        ngrams: bool = True,
    ) -> dict[str, float]:
        was_training = generator.training
        generator.eval()
        try:
            metrics = {"fill_ppl": fill_perplexity(generator, self.real, self.masked)}
            if not ngrams:
                return metrics
            gen = torch.Generator(device=generator.device)
            gen.manual_seed(seed_stream(self.seed, "maskgan.eval_fill"))
            filled = generator.sample(self.masked, generator=gen).filled
        finally:
            generator.train(was_training)
        sentences = [s for s in decode_sentences(filled, self.vocab) if s]
        for n in NGRAM_ORDERS:
            usable = [s for s in sentences if len(s) >= n]
            if usable:
                metrics[f"unique_{n}gram"] = unique_ngram_fraction(usable, n)
                metrics[f"seen_{n}gram"] = seen_ngram_fraction(usable, self.train_sentences, n)
        metrics["bleu4"] = sum(self.bleu.scores(sentences)) / max(len(sentences), 1)
        if discriminator is not None:
            logits, _ = discriminator(self.masked, filled)
            real_logits, _ = discriminator(self.masked, self.real)
            missing = ~self.present
            metrics["eval_d_fake"] = float(torch.sigmoid(logits[missing]).mean())
            metrics["eval_d_real"] = float(torch.sigmoid(real_logits[missing]).mean())
        return metrics
