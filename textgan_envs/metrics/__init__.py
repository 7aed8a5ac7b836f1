"""Text-generation metrics: BLEU / Self-BLEU, n-gram diversity and novelty, likelihood metrics.

Pure Python + torch; nltk is not needed (it is only the reference the tests compare against).
"""

from textgan_envs.metrics.bleu import BleuScorer, bleu, self_bleu, self_bleu_scores
from textgan_envs.metrics.likelihood import nll_oracle, nll_test
from textgan_envs.metrics.ngrams import seen_ngram_fraction, unique_ngram_fraction

__all__ = [
    "BleuScorer",
    "bleu",
    "nll_oracle",
    "nll_test",
    "seen_ngram_fraction",
    "self_bleu",
    "self_bleu_scores",
    "unique_ngram_fraction",
]
