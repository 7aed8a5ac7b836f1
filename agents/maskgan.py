"""MaskGAN: fill in masked tokens, rewarded per token by a discriminator, trained actor-critic.

Fedus, Goodfellow & Dai, "MaskGAN: Better Text Generation via Filling in the ______" (ICLR 2018).
The task is :mod:`textgan_envs.envs.fill_in_blank`: a real sentence ``x`` is masked to ``m(x)``
and the seq2seq generator fills the missing positions. Three phases, one step counter:

1. **MaskMLE** (``mle_steps``): teacher-forced cross-entropy of the real tokens at missing
   positions only (:func:`agents.seq2seq.mask_mle_loss`).
2. **Discriminator pre-training** (``d_pretrain_steps``): binary cross-entropy on missing
   positions, real ``x`` vs the generator's fill ``x~`` of the same ``m(x)``.
3. **Adversarial** (``total_steps``): per generator step, a batch is filled, each filled position
   earns ``r_t = log D(x~_t | x~_<t, m(x))`` (the env's reward), and with
   ``R_t = sum_{s>=t} m_s gamma^(s-t) r_s`` and ``A_t = clip(R_t - b_t, +-5)`` the generator
   minimises ``-mean_b sum_t m_t log G(x~_t) stopgrad(A_t)`` (Adam, global-norm clip 10). The
   baseline ``b_t`` is the discriminator's critic head (trained by MSE to ``R_t``), the batch
   mean return per position (``dis_batch``), a moving average, or nothing. ``d_steps``
   discriminator updates follow each generator step. The rule itself is the shared
   :func:`agents.actor_critic.actor_critic_losses` (returns, clipping and the surrogate from
   :mod:`agents.estimators`), applied to the missing positions.

Batches are stepped as whole tensors rather than through the Gymnasium env, with the env's own
reward (:func:`~textgan_envs.discriminators.maskgan.rewards_from_logits`, which the env's
:func:`~textgan_envs.discriminators.maskgan.per_token_rewards` also uses) and masks, so the
agent sees exactly the env's rewards at a fraction of the cost. Run it with
``textgan train --agent maskgan --env textgan/FillInBlank-v0 --corpus PATH`` or ``train(cfg)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from agents import estimators as est
from agents.actor_critic import ActorCriticLosses, actor_critic_losses
from agents.loop import clip_and_step
from agents.maskgan_metrics import FillEvaluator
from agents.runtime import (
    CHECKPOINT_NAME,
    RESUMABLE_CHANGES,
    RunDirError,
    RunState,
    build_config,
    check_finite,
    config_fields,
    load_checkpoint,
    make_generator,
    open_logger,
    prepare_run_dir,
    progress_bar,
    read_run_config,
    release_run_dir,
    resume_or_start,
    save_run_checkpoint,
    seed_everything,
    seed_stream,
)
from agents.seq2seq import Seq2SeqGenerator, mask_mle_loss
from textgan_envs.corpus import (
    Corpus,
    encode_sentences,
    load_corpus,
    split_corpus,
    warn_if_lossy,
)
from textgan_envs.device import resolve_device
from textgan_envs.discriminators.maskgan import (
    MaskGANDiscriminator,
    check_compatible,
    discriminator_loss,
    rewards_from_logits,
)
from textgan_envs.masking import apply_mask, make_mask
from textgan_envs.vocab import Vocabulary

AGENT = "maskgan"
ENV_ID = "textgan/FillInBlank-v0"


@dataclass
class MaskGANConfig:
    """Settings of one MaskGAN run (defaults: small CPU-sized models on a one-sentence-per-line corpus)."""

    out_dir: str = "runs/maskgan"
    """Run directory: config.json, checkpoint.pt, metrics.csv, vocab.json, tensorboard/."""
    env_id: str = ENV_ID
    """The task; only ``textgan/FillInBlank-v0``."""
    corpus_path: str | None = None
    """Training text, one sentence per line (e.g. COCO ``image_coco.txt``); required."""
    test_path: str | None = None
    """Test sentences for BLEU (e.g. ``test_coco.txt``); ``None`` uses the validation split."""
    max_sentences: int | None = None
    """Use only the first N corpus sentences (fast runs); ``None`` uses all."""
    max_test_sentences: int | None = None
    """Use only the first N test sentences as BLEU references; ``None`` uses all."""
    vocab_size: int = field(default=5000, metadata={"min": 6})
    """Cap on the vocabulary built from the training split (reserved ids included)."""
    seq_len: int = field(default=20, metadata={"min": 2})
    """Sequence length ``T``: longer sentences are cut, shorter ones get EOS and padding."""
    valid_fraction: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    """Share of the corpus held out for fill perplexity and the n-gram metrics."""
    n_eval: int = field(default=1000, metadata={"min": 1})
    """Held-out sentences scored at each evaluation (fixed masks)."""
    mask: Literal["random", "contiguous"] = "random"
    """Mask scheme: each token kept with ``present_rate``, or one contiguous missing span."""
    present_rate: float = field(default=0.5, metadata={"min": 0.0, "max": 1.0})
    """Probability of keeping a token (``random``) or ``1 -`` the span fraction (``contiguous``)."""
    seed: int = 0
    """Seeds the split, the initial weights and every random stream of the run."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``."""
    num_threads: int = 0
    """CPU threads for torch (0 keeps torch's default); 1 avoids stalls on a shared machine."""
    emb_dim: int = field(default=32, metadata={"min": 1})
    """Embedding size of generator and discriminator."""
    hidden_dim: int = field(default=64, metadata={"min": 1})
    """LSTM size of generator and discriminator (encoder and decoder)."""
    attention: bool = True
    """Decoder attention over the encoder outputs (both networks)."""
    batch_size: int = field(default=64, metadata={"min": 1})
    """Sequences per update (all phases)."""
    mle_steps: int = 2000
    """MaskMLE pre-training updates of the generator."""
    mle_lr: float = field(default=1e-3, metadata={"min": 0.0})
    """Adam learning rate of MaskMLE."""
    d_pretrain_steps: int = 300
    """Discriminator updates against the MaskMLE generator before adversarial training."""
    total_steps: int = 1000
    """Adversarial generator updates."""
    d_steps: int = 1
    """Discriminator updates after each adversarial generator update (0 freezes D)."""
    g_lr: float = field(default=1e-4, metadata={"min": 0.0})
    """Generator Adam learning rate during adversarial training."""
    d_lr: float = field(default=1e-3, metadata={"min": 0.0})
    """Discriminator Adam learning rate."""
    critic_lr: float = field(default=1e-3, metadata={"min": 0.0})
    """Critic-head Adam learning rate."""
    gamma: float = field(default=0.9, metadata={"min": 0.0, "max": 1.0})
    """Discount of the per-token rewards in ``R_t``."""
    advantage_clip: float = field(default=5.0, metadata={"min": 0.0})
    """``A_t`` is clipped to ``+-advantage_clip`` (0 disables)."""
    baseline: Literal["critic", "dis_batch", "moving_average", "none"] = "critic"
    """``b_t``: critic head, batch-mean return per position, moving average of the mean return, or 0."""
    baseline_decay: float = field(default=0.9, metadata={"min": 0.0, "max": 0.999})
    """Decay of the moving-average baseline."""
    grad_clip: float = field(default=10.0, metadata={"min": 0.0})
    """Global gradient-norm clip of every update (0 disables)."""
    log_every: int = field(default=10, metadata={"min": 1})
    """Write a metrics row every this many steps (all phases share one step counter)."""
    eval_every: int = 200
    """Full evaluation every this many steps, plus at every phase end (0: phase ends only)."""
    checkpoint_every: int = field(default=200, metadata={"min": 1})
    """Checkpoint every this many steps (and at the end)."""
    keep_checkpoints: int = field(default=1, metadata={"min": 1})
    """Checkpoints kept on disk: 1 keeps only ``checkpoint.pt``; K > 1 also the last K as
    ``checkpoints/step-N.pt``."""
    tensorboard: bool = True
    """Also log to TensorBoard (``<out_dir>/tensorboard``)."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def validate(self) -> None:
        if self.env_id != ENV_ID:
            raise ValueError(f"config key 'env_id': MaskGAN runs on {ENV_ID}, got {self.env_id!r}")
        if not self.corpus_path:
            raise ValueError("config key 'corpus_path' must name a one-sentence-per-line text file")
        if not 0.0 < self.present_rate < 1.0:
            raise ValueError(
                f"config key 'present_rate' must lie in (0, 1), got {self.present_rate}"
            )
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(
                f"config key 'valid_fraction' must lie in (0, 1), got {self.valid_fraction}"
            )

    @property
    def n_steps(self) -> int:
        """All updates of the run: MaskMLE, then discriminator pre-training, then adversarial."""
        return self.mle_steps + self.d_pretrain_steps + self.total_steps


def phase_of(cfg: MaskGANConfig, step: int) -> str:
    """``"mle"``, ``"d_pretrain"`` or ``"adversarial"`` for the 1-based global ``step``."""
    if step <= cfg.mle_steps:
        return "mle"
    if step <= cfg.mle_steps + cfg.d_pretrain_steps:
        return "d_pretrain"
    return "adversarial"


# --------------------------------------------------------------------------- set-up


@dataclass
class MaskGANSetup:
    """Data, models and evaluator of a run, rebuilt identically from the config on every start."""

    device: torch.device
    vocab: Vocabulary
    train: Tensor
    generator: Seq2SeqGenerator
    discriminator: MaskGANDiscriminator
    evaluator: FillEvaluator


def build_models(
    cfg: MaskGANConfig, vocab_size: int, device: torch.device
) -> tuple[Seq2SeqGenerator, MaskGANDiscriminator]:
    """Generator and discriminator of the same shape, initialised from ``cfg.seed``."""
    torch.manual_seed(seed_stream(cfg.seed, "maskgan.init"))
    shape = dict(
        vocab_size=vocab_size,
        seq_len=cfg.seq_len,
        emb_dim=cfg.emb_dim,
        hidden_dim=cfg.hidden_dim,
        attention=cfg.attention,
        device=device,
    )
    gen = Seq2SeqGenerator(**shape)  # type: ignore[arg-type]
    disc = MaskGANDiscriminator(**shape)  # type: ignore[arg-type]
    check_compatible(gen, disc)
    return gen, disc


@dataclass
class MaskGANData:
    """The corpus split, its vocabulary and the BLEU references: read before the run directory."""

    corpus: Corpus
    train: list[Sequence[str]]
    valid: list[Sequence[str]]
    vocab: Vocabulary
    test: list[Sequence[str]]


def load_data(cfg: MaskGANConfig, warn: bool = True) -> MaskGANData:
    """Read and split the corpus and build the vocabulary; ``CorpusError`` naming a bad file.

    With ``warn``, one ``CorpusWarning`` when lines were cut to ``seq_len``.
    """
    corpus = load_corpus(cfg.corpus_path, max_len=cfg.seq_len)  # type: ignore[arg-type]
    if warn:
        warn_if_lossy(corpus, stacklevel=3)
    train_s, valid_s = split_corpus(corpus, cfg.valid_fraction, cfg.seed, cfg.max_sentences)
    vocab = Vocabulary.build(train_s, max_size=cfg.vocab_size)
    if cfg.test_path:
        test_s = load_corpus(cfg.test_path, max_len=cfg.seq_len).sentences
        test_s = test_s[: cfg.max_test_sentences]
    else:
        test_s = list(valid_s)
    return MaskGANData(corpus, train_s, valid_s, vocab, test_s)


def build_setup(
    cfg: MaskGANConfig, run_dir: Path | None, data: MaskGANData | None = None
) -> MaskGANSetup:
    """Models and evaluator on :func:`load_data`'s data (read here, quietly, unless given); vocabulary saved to ``run_dir``."""
    device = resolve_device(cfg.device)
    data = load_data(cfg, warn=False) if data is None else data
    vocab, train_s, valid_s, test_s = data.vocab, data.train, data.valid, data.test
    if run_dir is not None:
        vocab.save(Path(run_dir) / "vocab.json")
    train = encode_sentences(train_s, vocab, cfg.seq_len).to(device)
    valid = encode_sentences(valid_s[: cfg.n_eval], vocab, cfg.seq_len).to(device)
    generator, discriminator = build_models(cfg, len(vocab), device)
    evaluator = FillEvaluator(
        valid,
        vocab,
        train_s,
        test_s,
        cfg.mask,
        cfg.present_rate,
        seed=seed_stream(cfg.seed, "maskgan.eval_masks"),
    )
    return MaskGANSetup(device, vocab, train, generator, discriminator, evaluator)


def masked_batch(
    data: Tensor, cfg: MaskGANConfig, batch_gen: torch.Generator, mask_gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """A random batch of real rows with fresh masks: ``(real, present, masked)``."""
    idx = torch.randint(data.shape[0], (cfg.batch_size,), generator=batch_gen).to(data.device)
    real = data[idx]
    present = make_mask(cfg.mask, real.cpu(), cfg.present_rate, mask_gen).to(data.device)
    return real, present, apply_mask(real, present)


# --------------------------------------------------------------------------- losses and steps


def baseline_values(
    rewards: Tensor,
    present: Tensor,
    values: Tensor | None,
    cfg: MaskGANConfig,
    moving_baseline: float | None,
) -> Tensor:
    """``b_t`` ``[B, T]`` for ``cfg.baseline``.

    ``critic``: the critic's values, returned *with* their gradient so that the critic loss of
    :func:`~agents.actor_critic.actor_critic_losses` trains the head; ``dis_batch``: the mean
    discounted return at each position over the rows where it is missing; ``moving_average``:
    the scalar moving average of past mean returns; ``none``: 0.
    """
    if cfg.baseline == "critic":
        if values is None:
            raise ValueError("baseline='critic' needs the critic's values")
        return values
    if cfg.baseline == "dis_batch":
        missing = ~present
        returns = est.discounted_returns(rewards, cfg.gamma, mask=missing)
        m = missing.to(returns.dtype)
        per_pos = (returns * m).sum(dim=0) / m.sum(dim=0).clamp(min=1.0)
        return per_pos.unsqueeze(0).expand_as(returns)
    if cfg.baseline == "moving_average":
        return torch.full_like(rewards, 0.0 if moving_baseline is None else moving_baseline)
    return torch.zeros_like(rewards)


def actor_critic_terms(
    log_probs: Tensor,
    rewards: Tensor,
    present: Tensor,
    values: Tensor | None,
    cfg: MaskGANConfig,
    moving_baseline: float | None = None,
) -> ActorCriticLosses:
    """MaskGAN's rule on the missing positions: the shared :func:`actor_critic_losses` with ``b_t``.

    ``R_t = sum_{s>=t} m_s gamma^(s-t) r_s``, ``A_t = clip(R_t - b_t, +-advantage_clip)``, actor loss
    ``-mean_b sum_t m_t log G(x~_t) A_t`` and critic MSE, with ``m`` the missing mask.
    """
    baseline = baseline_values(rewards, present, values, cfg, moving_baseline)
    clip = cfg.advantage_clip if cfg.advantage_clip > 0 else None
    missing = (~present).to(rewards.dtype)
    return actor_critic_losses(log_probs, baseline, rewards, cfg.gamma, clip, mask=missing)


def mle_step(
    setup: MaskGANSetup, opt: torch.optim.Optimizer, cfg: MaskGANConfig, gens: dict, step: int
) -> dict[str, float]:
    """One MaskMLE update on a fresh masked batch."""
    real, _, masked = masked_batch(setup.train, cfg, gens["batch"], gens["mask"])
    loss = mask_mle_loss(setup.generator, real, masked)
    check_finite("MaskMLE loss", loss.detach(), step)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = clip_and_step(opt, list(setup.generator.parameters()), cfg.grad_clip)
    return {
        "mle_loss": float(loss.detach()),
        "mle_ppl": math.exp(float(loss.detach())),
        "g_grad_norm": norm,
    }


def discriminator_step(
    setup: MaskGANSetup, opt: torch.optim.Optimizer, cfg: MaskGANConfig, gens: dict, step: int
) -> dict[str, float]:
    """One discriminator update: real vs generated fills of the same masked batch."""
    real, present, masked = masked_batch(setup.train, cfg, gens["batch"], gens["mask"])
    fake = setup.generator.sample(masked, generator=gens["sample"]).filled
    disc = setup.discriminator
    real_logits, _ = disc(masked, real)
    fake_logits, _ = disc(masked, fake)
    loss = discriminator_loss(real_logits, fake_logits, present)
    check_finite("discriminator loss", loss.detach(), step)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    clip_and_step(opt, disc.discriminator_parameters(), cfg.grad_clip)
    missing = ~present
    acc = 0.5 * (
        (real_logits[missing] > 0).float().mean() + (fake_logits[missing] < 0).float().mean()
    )
    return {"d_loss": float(loss.detach()), "d_accuracy": float(acc)}


def generator_step(
    setup: MaskGANSetup,
    g_opt: torch.optim.Optimizer,
    c_opt: torch.optim.Optimizer,
    cfg: MaskGANConfig,
    gens: dict,
    state: RunState,
    step: int,
) -> dict[str, float]:
    """One actor-critic generator update, plus the critic's MSE update on the same batch."""
    gen, disc = setup.generator, setup.discriminator
    real, present, masked = masked_batch(setup.train, cfg, gens["batch"], gens["mask"])
    sample = gen.sample(masked, generator=gens["sample"])
    filled = sample.filled
    # one discriminator pass: the env's reward from the logits, the critic's b_t from the values
    logits, values = disc(masked, filled)  # values carry gradient to the critic head only
    rewards = rewards_from_logits(logits, present)
    check_finite("reward", rewards, step)
    missing = ~present
    log_probs = gen.log_prob(masked, filled)
    terms = actor_critic_terms(
        log_probs, rewards, present, values, cfg, state.scalars.get("baseline")
    )
    returns, advantages, loss = terms.returns, terms.advantages, terms.actor_loss
    check_finite("generator loss", loss.detach(), step)
    g_opt.zero_grad(set_to_none=True)
    loss.backward()
    g_norm = clip_and_step(g_opt, list(gen.parameters()), cfg.grad_clip)
    c_loss = terms.critic_loss
    check_finite("critic loss", c_loss.detach(), step)
    if cfg.baseline == "critic":
        c_opt.zero_grad(set_to_none=True)
        c_loss.backward()
        clip_and_step(c_opt, disc.critic_parameters(), cfg.grad_clip)
    n_missing = missing.sum().clamp(min=1)
    mean_return = float((returns * missing).sum() / n_missing)
    if cfg.baseline == "moving_average":
        state.scalars["baseline"] = est.ema_update(
            state.scalars.get("baseline"), mean_return, cfg.baseline_decay
        )
    return {
        "reward": float(rewards.sum() / n_missing),
        "d_fake": float((rewards.exp() * missing).sum() / n_missing),
        "return_mean": mean_return,
        "advantage_mean": float(advantages.sum() / n_missing),
        "advantage_std": float(advantages[missing].std()) if int(n_missing) > 1 else 0.0,
        "baseline_mse": float(c_loss.detach()),
        "g_loss": float(loss.detach()),
        "g_grad_norm": g_norm,
        "sample_nll": float(-(sample.log_probs.sum() / n_missing)),
    }


# --------------------------------------------------------------------------- run


def train(cfg: MaskGANConfig, resume: bool = False) -> dict[str, float]:
    """Run MaskGAN in ``cfg.out_dir`` (resuming from its checkpoint when ``resume``); return the last metrics."""
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    data = load_data(cfg)  # a bad corpus fails here, before the run directory is touched
    run_dir = prepare_run_dir(
        cfg.out_dir,
        cfg,
        AGENT,
        resume,
        resumable=RESUMABLE_CHANGES | {"corpus"},
        extra={"corpus": data.corpus.counts()},
        total_steps=cfg.n_steps,
    )
    try:
        return _train(cfg, resume, run_dir, data)
    finally:
        release_run_dir(run_dir)


def _train(cfg: MaskGANConfig, resume: bool, run_dir: Path, data: MaskGANData) -> dict[str, float]:
    setup = build_setup(cfg, run_dir, data)
    gen, disc = setup.generator, setup.discriminator
    optimizers = {
        "mle": torch.optim.Adam(gen.parameters(), lr=cfg.mle_lr),
        "generator": torch.optim.Adam(gen.parameters(), lr=cfg.g_lr),
        "discriminator": torch.optim.Adam(disc.discriminator_parameters(), lr=cfg.d_lr),
        "critic": torch.optim.Adam(disc.critic_parameters(), lr=cfg.critic_lr),
    }
    gens = {
        "batch": make_generator(seed_stream(cfg.seed, "maskgan.batch")),
        "mask": make_generator(seed_stream(cfg.seed, "maskgan.mask")),
        "sample": make_generator(seed_stream(cfg.seed, "maskgan.sample"), setup.device),
    }
    modules = {"generator": gen, "discriminator": disc}
    state, resumed = resume_or_start(
        run_dir,
        resume,
        modules,
        optimizers,
        gens,
        AGENT,
        setup.device,
        {"baseline": None},
        keep=cfg.keep_checkpoints,
    )

    def update(step: int) -> dict[str, float]:
        phase = phase_of(cfg, step)
        if phase == "mle":
            return mle_step(setup, optimizers["mle"], cfg, gens, step)
        if phase == "d_pretrain":
            return discriminator_step(setup, optimizers["discriminator"], cfg, gens, step)
        metrics = generator_step(
            setup, optimizers["generator"], optimizers["critic"], cfg, gens, state, step
        )
        for _ in range(cfg.d_steps):
            metrics.update(discriminator_step(setup, optimizers["discriminator"], cfg, gens, step))
        return metrics

    def save() -> None:
        save_run_checkpoint(
            run_dir, state, modules, optimizers, gens, AGENT, keep=cfg.keep_checkpoints
        )

    return phase_loop(cfg, setup, state, update, save, run_dir, resumed)


def phase_loop(
    cfg: MaskGANConfig,
    setup: MaskGANSetup,
    state: RunState,
    update: Callable[[int], dict[str, float]],
    save: Callable[[], None],
    run_dir: Path,
    resumed: bool,
) -> dict[str, float]:
    """MaskMLE, discriminator pre-training, adversarial: one step counter over the three phases.

    Evaluates at step 0 and at every phase end (and every ``eval_every`` steps), logs every
    ``log_every`` steps and every evaluated one, checkpoints every ``checkpoint_every`` steps
    and at every phase end. Returns the last metrics.
    """
    gen, disc = setup.generator, setup.discriminator
    logger = open_logger(run_dir, state, resumed, cfg.tensorboard)
    bar = progress_bar(cfg.n_steps, state.step, cfg.progress, AGENT)
    last: dict[str, float] = {}
    try:
        if state.step == 0:
            last = setup.evaluator(gen, disc)
            logger.log(0, last)
            save()
        while state.step < cfg.n_steps:
            step = state.step + 1
            phase = phase_of(cfg, step)
            metrics = update(step)
            phase_end = step == cfg.n_steps or phase_of(cfg, step + 1) != phase
            if phase_end or (cfg.eval_every and step % cfg.eval_every == 0):
                metrics.update(setup.evaluator(gen, disc))
            state.step = step
            if step % cfg.log_every == 0 or phase_end or "fill_ppl" in metrics:
                logger.log(step, metrics)
            if step % cfg.checkpoint_every == 0 or phase_end:
                save()
            bar.update(1)
            shown = {
                k: f"{metrics[k]:.3f}" for k in ("mle_loss", "d_loss", "reward") if k in metrics
            }
            bar.set_postfix(phase=phase, **shown)
            last = metrics
    finally:
        bar.close()
        logger.close()
    return last


# --------------------------------------------------------------------------- loading a run


def load_run(
    run_dir: str | Path, device: str | torch.device = "auto"
) -> tuple[MaskGANConfig, MaskGANSetup, int]:
    """Rebuild a finished (or interrupted) run's setup with its checkpointed weights; returns the step."""
    saved = read_run_config(run_dir)
    agent = saved.pop("agent", None)
    if agent != AGENT:
        raise RunDirError(f"{run_dir} holds a {agent!r} run, not a MaskGAN run")
    saved["device"] = str(device)
    cfg = build_config(MaskGANConfig, config_fields(saved, MaskGANConfig))
    setup = build_setup(cfg, None)
    saved_vocab = Path(run_dir) / "vocab.json"
    if saved_vocab.is_file() and Vocabulary.load(saved_vocab) != setup.vocab:
        raise RunDirError(f"{run_dir}/vocab.json differs from the vocabulary its config rebuilds")
    ckpt = load_checkpoint(
        Path(run_dir) / CHECKPOINT_NAME, ("modules", "step"), map_location=setup.device
    )
    setup.generator.load_state_dict(ckpt["modules"]["generator"])
    setup.discriminator.load_state_dict(ckpt["modules"]["discriminator"])
    return cfg, setup, int(ckpt["step"])
