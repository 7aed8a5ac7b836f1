"""What every adversarial text agent trains on: the shared config, data, models and env.

:func:`build_setup` regenerates data and initial weights identically from ``cfg.seed`` on every
start (so a resumed run only needs its checkpoint on top), MLE-pretrains the generator and
pretrains the discriminator, and builds the native vector env the agent collects its episodes
from. Every random stream comes from :func:`agents.runtime.seed_stream`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor, nn

from agents.runtime import (
    ConfigError,
    broadcast_object,
    current_context,
    has_checkpoint,
    make_generator,
    seed_stream,
    token_digest,
    unwrap,
    wrap_ddp,
)
from textgan_envs.device import resolve_device

if TYPE_CHECKING:
    from textgan_envs.envs.vector_env import TextGenerationVectorEnv


@dataclass
class CommonConfig:
    """Fields every adversarial agent shares: data source, generator, pre-training, schedule, logging.

    Defaults follow SeqGAN's synthetic experiment (vocabulary 5,000, length 20, 10,000 oracle
    sequences, hidden 32, batch 64, 50 discriminator pre-training rounds of 3 epochs, then 1
    generator step followed by 5 discriminator steps of 3 epochs on 10,000 fresh negatives).
    """

    out_dir: str = "runs/default"
    """Run directory: config.json, checkpoint.pt, metrics.csv, tensorboard/, mle/."""
    env_id: str = "textgan/Oracle-v0"
    """Data source: ``textgan/Oracle-v0`` (synthetic oracle LSTM) or ``textgan/Corpus-v0`` (a text file)."""
    seed: int = 0
    """Seed of every random stream of the run (sampling, shuffling, initialisation)."""
    device: str = "auto"
    """``auto`` (CUDA when present), ``cpu`` or ``cuda[:i]``."""
    oracle_path: str | None = None
    """Oracle parameters ``.npz`` (e.g. ``seqgan_oracle_params.npz``); ``None`` draws a random N(0,1) oracle."""
    oracle_seed: int = 0
    """Seed of the random oracle when ``oracle_path`` is ``None``."""
    data_cache: str | None = "auto"
    """Oracle env: a ``.npz`` file keeping this seed's drawn real and held-out data
    (:mod:`agents.data_cache`), so a run resumed on a CPU whose float rounding would draw a few
    sequences differently trains on the same tokens. Read when it exists and matches the
    draw's identity (else refused, naming the file); written once the run directory is
    prepared. ``"auto"``: ``<out_dir>/data.npz``, where a file of another draw is ignored (the
    run directory's own checks decide) and a damaged one with a warning; ``None``: drawn on
    every start."""
    corpus_path: str | None = None
    """Text file, one sentence per line (``textgan/Corpus-v0`` only)."""
    corpus_level: Literal["word", "char"] = "word"
    """Tokenisation of the corpus: whitespace-separated words or characters."""
    vocab_size: int = field(default=5000, metadata={"min": 2})
    """Oracle vocabulary size; for a corpus, the cap on the built vocabulary (reserved ids included)."""
    seq_len: int = field(default=20, metadata={"min": 1})
    """Sequence length ``T``."""
    n_real: int = field(default=10000, metadata={"min": 1})
    """Real sequences drawn from the oracle (training data of the MLE and the discriminator)."""
    n_valid: int = field(default=1000, metadata={"min": 1})
    """Held-out real sequences for NLL-test (oracle: fresh draws; corpus: the validation split)."""
    emb_dim: int = field(default=32, metadata={"min": 1})
    """Generator embedding size."""
    hidden_dim: int = field(default=32, metadata={"min": 1})
    """Generator LSTM hidden size."""
    mle_epochs: int = 120
    """MLE pre-training epochs of the generator before adversarial training (SeqGAN: 120)."""
    mle_lr: float = field(default=1e-2, metadata={"min": 0.0})
    """Adam learning rate of MLE pre-training."""
    disc: Literal["cnn", "lstm"] = "cnn"
    """Discriminator architecture: SeqGAN's CNN or a small LSTM."""
    disc_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra discriminator constructor arguments (e.g. ``{"emb_dim": 8}`` for a tiny test CNN)."""
    d_lr: float | None = None
    """Discriminator Adam learning rate; ``None`` uses the architecture's default (CNN: 1e-4)."""
    d_pretrain_steps: int = 50
    """Discriminator pre-training rounds, each on fresh negatives for ``d_epochs`` epochs."""
    d_pretrain_epochs: int | None = field(default=None, metadata={"min": 1})
    """Epochs of each pre-training round; ``None``: ``d_epochs`` (SeqGAN uses 3 for both). Lets a
    shortened schedule keep the paper's pre-training while shortening the per-update rounds."""
    d_pretrain_negatives: int | None = field(default=None, metadata={"min": 1})
    """Fresh negatives of each pre-training round; ``None``: ``d_negatives``."""
    d_pretrain_cache: str | None = None
    """File sharing the pre-trained discriminator (and its Adam state) between runs of the same
    seed, data, MLE start and D schedule: the first run writes it, the others load it instead of
    pre-training the same discriminator again. ``None``: every run pre-trains its own."""
    d_steps: int = 5
    """Discriminator rounds after each block of ``g_steps`` generator updates."""
    d_epochs: int = field(default=3, metadata={"min": 1})
    """Epochs over each round's real + fake data."""
    d_negatives: int = field(default=10000, metadata={"min": 1})
    """Fresh generator samples per discriminator round (balanced against as many real ones)."""
    d_batch_size: int = field(default=64, metadata={"min": 1})
    """Discriminator minibatch size."""
    total_steps: int = 200
    """Adversarial iterations; each is ``g_steps`` generator updates, then ``d_steps`` D rounds."""
    g_steps: int = field(default=1, metadata={"min": 1})
    """Generator updates per adversarial iteration."""
    batch_size: int = field(default=64, metadata={"min": 1})
    """Generated sequences per generator update."""
    g_lr: float = field(default=1e-2, metadata={"min": 0.0})
    """Generator Adam learning rate during adversarial training."""
    grad_clip: float = field(default=5.0, metadata={"min": 0.0})
    """Global gradient-norm clip of the generator (0 disables)."""
    log_every: int = field(default=1, metadata={"min": 1})
    """Write a metrics row every this many iterations."""
    eval_every: int = 10
    """NLL-oracle / NLL-test every this many iterations (0: only at the end)."""
    eval_samples: int = field(default=10000, metadata={"min": 1})
    """Generator samples scored by the oracle for NLL-oracle."""
    checkpoint_every: int = field(default=10, metadata={"min": 1})
    """Checkpoint every this many iterations (and always at the end)."""
    keep_checkpoints: int = field(default=1, metadata={"min": 1})
    """Checkpoints kept on disk: 1 keeps only ``checkpoint.pt``; K > 1 also the last K as
    ``checkpoints/step-N.pt`` (``checkpoint.pt`` is a hard link to the newest)."""
    tensorboard: bool = True
    """Also log to TensorBoard (``<out_dir>/tensorboard``)."""
    progress: bool = True
    """Show a tqdm progress bar."""

    @property
    def pretrain_epochs(self) -> int:
        """Epochs of each pre-training round (``d_pretrain_epochs``, else ``d_epochs``)."""
        return self.d_epochs if self.d_pretrain_epochs is None else self.d_pretrain_epochs

    @property
    def pretrain_negatives(self) -> int:
        """Negatives of each pre-training round (``d_pretrain_negatives``, else ``d_negatives``)."""
        return self.d_negatives if self.d_pretrain_negatives is None else self.d_pretrain_negatives

    def validate(self) -> None:
        if self.env_id not in ENV_IDS:
            raise ValueError(
                f"config key 'env_id': {self.env_id!r} is not one of {', '.join(ENV_IDS)}"
            )
        if self.env_id == "textgan/Corpus-v0" and not self.corpus_path:
            raise ValueError("config key 'corpus_path' must name a text file for textgan/Corpus-v0")


ENV_IDS = ("textgan/Oracle-v0", "textgan/Corpus-v0")
#: The MLE pre-training sub-run's checkpoint: a run killed before its first run checkpoint
#: resumes from it (``prepare_run_dir(partial=...)``).
PARTIAL_CHECKPOINTS = ("mle/mle_checkpoint.pt",)


@dataclass
class RunData:
    """A run's real data, read and checked before its run directory is touched.

    ``corpus`` (the loading counts) is set for a corpus, ``oracle`` for the oracle env.
    """

    real: Tensor
    valid: Tensor
    vocab_size: int
    start_token: int
    oracle: nn.Module | None = None
    vocab: Any = None
    corpus: Any = None
    unsaved_cache: tuple[Path, dict[str, Any]] | None = None
    """``(path, identity)`` of a data cache the draw is still to be written to (:meth:`keep`)."""

    def keep(self) -> None:
        """Write the drawn data to their cache (rank 0), once the run directory is prepared."""
        if self.unsaved_cache is not None and current_context().is_main:
            from agents import data_cache

            data_cache.save_data(*self.unsaved_cache, self.real, self.valid)
        self.unsaved_cache = None

    def record(self) -> dict[str, Any]:
        """What ``config.json`` records about the data: its digest (a resume must see the same
        tokens) and, for a corpus, the loading counts."""
        record: dict[str, Any] = {"data_digest": token_digest(self.real, self.valid)}
        if self.corpus is not None:
            record["corpus"] = self.corpus.counts()
        return record


def load_data(cfg: CommonConfig, warn: bool = True) -> RunData:
    """Real and held-out data of ``cfg`` (oracle samples or the corpus), deterministic in ``cfg.seed``.

    Raises :class:`~textgan_envs.corpus.CorpusError` (a corpus that is missing, a directory,
    empty, not UTF-8, without sentences, too small to split) or :class:`ConfigError` (a missing
    oracle file), naming the file; with ``warn``, warns (one
    :class:`~textgan_envs.corpus.CorpusWarning`) when lines were cut to ``seq_len`` or left out.
    """
    device = resolve_device(cfg.device)
    if cfg.env_id == "textgan/Oracle-v0":
        from textgan_envs.oracle import OracleLSTM

        if cfg.oracle_path:
            try:
                oracle = OracleLSTM.from_npz(cfg.oracle_path, seq_len=cfg.seq_len, device=device)
            except (OSError, ValueError, KeyError) as exc:
                raise ConfigError(f"config key 'oracle_path': {exc}") from None
        else:
            oracle = OracleLSTM.random(
                cfg.oracle_seed, vocab_size=cfg.vocab_size, seq_len=cfg.seq_len, device=device
            )
        real, valid, unsaved = _oracle_data(oracle, cfg)
        return RunData(
            real, valid, oracle.vocab_size, oracle.start_token, oracle=oracle, unsaved_cache=unsaved
        )
    from textgan_envs.corpus import encode_sentences, load_corpus, split_corpus, warn_if_lossy
    from textgan_envs.vocab import Vocabulary

    corpus = load_corpus(cfg.corpus_path, level=cfg.corpus_level, max_len=cfg.seq_len)
    if warn:
        warn_if_lossy(corpus, stacklevel=3)
    train_s, valid_s = split_corpus(corpus, seed=cfg.seed)
    vocab = Vocabulary.build(train_s, max_size=cfg.vocab_size)
    real = encode_sentences(train_s, vocab, cfg.seq_len).to(device)
    valid = encode_sentences(valid_s[: cfg.n_valid], vocab, cfg.seq_len).to(device)
    return RunData(real, valid, len(vocab), Vocabulary.BOS, vocab=vocab, corpus=corpus)


def data_cache_file(cfg: CommonConfig) -> Path | None:
    """Where ``cfg``'s oracle data are kept (``data_cache``, ``"auto"`` resolved), or ``None``."""
    if cfg.data_cache is None or cfg.env_id != "textgan/Oracle-v0":
        return None
    return Path(cfg.out_dir) / "data.npz" if cfg.data_cache == "auto" else Path(cfg.data_cache)


def _oracle_data(
    oracle: nn.Module, cfg: CommonConfig
) -> tuple[Tensor, Tensor, tuple[Path, dict[str, Any]] | None]:
    """The seed's real and held-out oracle samples, and the cache they are still to be kept in.

    Read from the data cache when it holds this draw; else drawn on CPU by the portable
    sampling route: the fast routes draw the same distribution, but which samples a seed gives
    depends on the CPU (avx512_bf16 or not) and the device. The portable route is the same
    everywhere up to float rounding, which still moves a few sequences of 10,000 between ATen's
    AVX2 and AVX-512 kernels; the cache removes that.
    """
    from agents import data_cache

    path = data_cache_file(cfg)
    unsaved = None
    if path is not None:
        identity = data_cache.oracle_data_identity(cfg, oracle)
        unsaved = (path, identity)
        try:
            cached = data_cache.load_data(path, identity, oracle.vocab_size)
        except ConfigError as exc:
            if cfg.data_cache != "auto":
                raise
            if not isinstance(exc, data_cache.OtherDrawError):  # else the config changed: the
                warnings.warn(f"{exc}; drawing the data instead", RuntimeWarning, stacklevel=3)
            cached = None  # run directory's checks refuse it or start a new run
        if cached is not None:
            device = next(oracle.parameters()).device
            return cached[0].to(device), cached[1].to(device), None
    data_gen = make_generator(seed_stream(cfg.seed, "oracle_data"), "cpu")
    real = oracle.sample(cfg.n_real, generator=data_gen, portable=True)
    valid = oracle.sample(cfg.n_valid, generator=data_gen, portable=True)
    return real, valid, unsaved


@dataclass
class Setup:
    """What every adversarial agent trains on: data, the generator, the discriminator, evaluation.

    ``oracle`` is ``None`` and ``vocab`` is set for a corpus; the reverse for the oracle env.
    ``real`` / ``valid`` are ``LongTensor[N, T]`` on the run's device. ``venv`` is the native
    vector env the agent collects its episodes from (:func:`agents.episodes.collect_episodes`); it scores with
    ``discriminator`` itself, so discriminator updates reach it at once. ``None`` in a
    hand-built set-up: :func:`agent_env` then builds it on first use.
    """

    device: torch.device
    policy: nn.Module
    discriminator: nn.Module
    d_optimizer: torch.optim.Optimizer
    real: Tensor
    valid: Tensor
    oracle: nn.Module | None = None
    vocab: Any = None
    venv: TextGenerationVectorEnv | None = None


def build_setup(
    cfg: CommonConfig,
    run_dir: Path,
    resume: bool,
    num_envs: int | None = None,
    reward_mode: str = "prob",
    data: RunData | None = None,
) -> Setup:
    """Data, MLE-initialised generator and discriminator, deterministically from ``cfg.seed``.

    ``data`` is :func:`load_data`'s result when the caller read it already (before preparing
    the run directory, warning about the corpus); otherwise it is read here, quietly.

    Also the agent's vector env (``setup.venv``): ``num_envs`` rows (default
    ``cfg.batch_size``, one episode per sequence of a generator update) rewarded by
    ``reward_mode`` of the shared discriminator; building it draws no random numbers.

    Real data and initial weights are regenerated identically on every start, so a resumed run
    only needs its checkpoint on top. MLE pre-training writes its own resumable sub-run in
    ``<run_dir>/mle``; it and discriminator pre-training are skipped when ``checkpoint.pt``
    exists (the checkpoint already holds their result).
    """
    from textgan_envs.discriminators import build_discriminator, make_discriminator_optimizer

    device = resolve_device(cfg.device)
    data = load_data(cfg, warn=False) if data is None else data
    data.keep()
    oracle, vocab, real, valid = data.oracle, data.vocab, data.real, data.valid
    vocab_size, start_token = data.vocab_size, data.start_token
    if vocab is not None:
        vocab.save(run_dir / "vocab.json")

    from agents.policies import LSTMPolicy

    policy = LSTMPolicy(
        vocab_size, cfg.seq_len, cfg.emb_dim, cfg.hidden_dim, start_token=start_token, device=device
    )
    policy.reset_parameters(make_generator(seed_stream(cfg.seed, "policy_init")))
    disc = build_discriminator(
        cfg.disc,
        vocab_size,
        cfg.seq_len,
        seed=seed_stream(cfg.seed, "discriminator_init"),
        device=device,
        **cfg.disc_kwargs,
    )
    d_opt = make_discriminator_optimizer(disc, cfg.d_lr)
    setup = Setup(device, policy, disc, d_opt, real, valid, oracle, vocab)
    setup.venv = make_agent_env(setup, num_envs or cfg.batch_size, reward_mode)
    if resume and has_checkpoint(run_dir):
        return _distribute(setup)
    if not current_context().is_main:  # rank 0 pre-trains alone; the others get its result
        return _distribute(setup)

    if cfg.mle_epochs > 0:
        from agents.mle import pretraining_config, train_mle

        mle_cfg = pretraining_config(cfg)
        train_mle(
            policy,
            real,
            mle_cfg,
            valid_tokens=valid,
            oracle=oracle,
            out_dir=run_dir / "mle",
            resume=resume,
        )
    pretrain_discriminator(setup, cfg, run_dir)
    return _distribute(setup)


def pretrain_discriminator(setup: Setup, cfg: CommonConfig, run_dir: Path | None = None) -> None:
    """``d_pretrain_steps`` rounds against the MLE start, or their result from ``d_pretrain_cache``.

    Dropout draws from the global generator, so its state before pre-training is part of the
    cache's identity and its state after is saved with it: a loaded discriminator leaves the
    global stream where training it would have, and the agent goes on identically. After each
    round but the last the state is recorded (beside the cache, else in ``run_dir``), so a
    stopped pre-training restarts from its last finished round with the same result.
    """
    from agents import discriminator_cache as cache
    from agents.runtime import progress_bar

    if cfg.d_pretrain_steps == 0:
        return
    path = Path(cfg.d_pretrain_cache) if cfg.d_pretrain_cache else None
    progress_file = cache.progress_path(path) if path is not None else None
    if progress_file is None and run_dir is not None:
        progress_file = Path(run_dir) / cache.RUN_PROGRESS_NAME
    disc, d_opt = setup.discriminator, setup.d_optimizer
    identity: dict[str, Any] = {}
    if path is not None or progress_file is not None:  # hashes the MLE start: only when kept
        rng_before = cache.global_rng_state(setup.device)
        identity = cache.pretraining_identity(cfg, setup.policy, setup.real, rng_before)
    if path is not None and cache.load_pretrained_discriminator(path, identity, disc, d_opt):
        return
    generators = {
        "shuffle": make_generator(seed_stream(cfg.seed, "pretrain_shuffle")),
        "sample": make_generator(seed_stream(cfg.seed, "pretrain_sample"), setup.device),
    }
    done = 0
    if progress_file is not None:
        done = cache.load_progress(progress_file, identity, disc, d_opt, generators)
    rounds = cfg.d_pretrain_steps
    with progress_bar(rounds, done, cfg.progress, "D pre-training", unit="round") as bar:
        for finished in range(done + 1, rounds + 1):
            stats = discriminator_round(
                setup,
                cfg,
                generators["sample"],
                generators["shuffle"],
                epochs=cfg.pretrain_epochs,
                negatives=cfg.pretrain_negatives,
            )
            if progress_file is not None and finished < rounds:
                cache.save_progress(progress_file, identity, finished, disc, d_opt, generators)
            bar.set_postfix(d_accuracy=f"{stats['accuracy']:.3f}", refresh=False)
            bar.update()
    if path is not None:
        after = cache.global_rng_state(setup.device)
        cache.save_pretrained_discriminator(path, identity, disc, d_opt, after)
    if progress_file is not None:
        progress_file.unlink(missing_ok=True)


def make_agent_env(setup: Setup, num_envs: int, reward_mode: str) -> TextGenerationVectorEnv:
    """A torch-mode :class:`TextGenerationVectorEnv` on ``setup.device`` scoring with ``setup``'s D.

    The env holds the plain discriminator module (not a DDP wrapper: scoring is no-grad and
    needs no collective), the very object the discriminator rounds train. Episodes have the
    generator's fixed length ``T`` (no end-of-sentence stop: the agents' sequences are always
    ``T`` tokens, as the discriminator's real data is), and actions are range-checked once per
    episode (``action_check="episode"``) so the token loop never waits for the host. The env
    does not check the rewards for NaN (``finite_check=False``): every agent's update does,
    naming the quantity and the step.
    """
    from textgan_envs.envs.sources import CorpusSource, OracleSource
    from textgan_envs.envs.vector_env import TextGenerationVectorEnv

    policy = unwrap(setup.policy)
    source: Any = None
    if setup.oracle is not None:
        source = OracleSource(setup.oracle)
    elif setup.vocab is not None:
        source = CorpusSource(setup.real, setup.vocab)
    return TextGenerationVectorEnv(
        num_envs,
        policy.vocab_size,
        policy.seq_len,
        discriminator=unwrap(setup.discriminator),
        reward_mode=reward_mode,
        real_data=source,
        decode=None if source is None else source.decode,
        discriminator_seed=None,
        as_torch=True,
        device=setup.device,
        action_check="episode",
        finite_check=False,
    )


def agent_env(setup: Setup, num_envs: int, reward_mode: str) -> TextGenerationVectorEnv:
    """``setup.venv`` after checking it fits (size, reward, discriminator); (re)built if not.

    A set-up built by hand, or whose discriminator was swapped, gets a fresh env here, so the
    env always scores with ``setup.discriminator``.
    """
    venv = setup.venv
    if (
        venv is None
        or venv.num_envs != num_envs
        or venv.core.reward_mode != reward_mode
        or venv.discriminator is not unwrap(setup.discriminator)
    ):
        venv = setup.venv = make_agent_env(setup, num_envs, reward_mode)
    return venv


def _distribute(setup: Setup) -> Setup:
    """Wrap policy and discriminator for DDP (rank 0's weights and D-optimiser state everywhere).

    A no-op in a single-process run. Collective: every rank must call it.
    """
    ctx = current_context()
    if not ctx.distributed:
        return setup
    setup.d_optimizer.load_state_dict(broadcast_object(setup.d_optimizer.state_dict(), ctx))
    setup.policy = wrap_ddp(setup.policy, ctx)  # DDP broadcasts rank 0's parameters
    setup.discriminator = wrap_ddp(setup.discriminator, ctx)
    return setup


def discriminator_round(
    setup: Setup,
    cfg: CommonConfig,
    sample_gen: torch.Generator,
    shuffle_gen: torch.Generator,
    epochs: int | None = None,
    negatives: int | None = None,
) -> dict[str, float]:
    """One SeqGAN D-step: ``negatives`` (default ``d_negatives``) fresh generator samples vs
    real data, ``epochs`` (default ``d_epochs``) epochs."""
    from textgan_envs.discriminators import train_discriminator

    fake = setup.policy.sample(
        cfg.d_negatives if negatives is None else negatives, generator=sample_gen
    )
    return train_discriminator(
        setup.discriminator,
        setup.d_optimizer,
        setup.real,
        fake,
        epochs=cfg.d_epochs if epochs is None else epochs,
        batch_size=cfg.d_batch_size,
        generator=shuffle_gen,
    )
