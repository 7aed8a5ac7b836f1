"""SeqGAN's adversarial schedule around an agent's generator update; what every update shares.

A text agent's ``train(cfg, resume)`` is three moves::

    run = start_run(cfg, agent="reinforce", resume=resume, reward_mode=cfg.reward)
    g_opt = torch.optim.Adam(run.setup.policy.parameters(), lr=cfg.g_lr)
    return adversarial_loop(run, update, optimizers={"generator": g_opt})

:func:`start_run` seeds the run, reads its data (so a bad corpus fails before anything is
written), prepares and locks the run directory and builds its :class:`Setup`;
:func:`adversarial_loop` registers the agent's own modules, optimisers and scalar state,
resumes or starts the checkpoint (:func:`agents.runtime.resume_or_start`) and runs
``update(step)`` in SeqGAN's schedule with discriminator rounds, evaluation, logging and
checkpoints, and releases the directory's lock when it ends (however it ends).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from agents.runtime import (
    RESUMABLE_CHANGES,
    RunState,
    check_finite,
    current_context,
    grad_global_norm,
    make_generator,
    open_logger,
    prepare_run_dir,
    progress_bar,
    release_run_dir,
    resume_or_start,
    save_run_checkpoint,
    seed_everything,
    seed_stream,
    step_seed,
)
from agents.setup import (
    PARTIAL_CHECKPOINTS,
    CommonConfig,
    RunData,
    Setup,
    build_setup,
    discriminator_round,
    load_data,
)

Update = Callable[[int], Mapping[str, float]]


@dataclass
class Run:
    """One adversarial run: where it writes, what it trains, and what its checkpoint holds.

    ``generators`` are the loop's two streams: ``"sample"`` draws the generator's sequences
    (the agent's episodes and the discriminator's negatives), ``"shuffle"`` orders the
    discriminator's minibatches. ``state`` and ``resumed`` are set when the loop starts.
    """

    cfg: CommonConfig
    agent: str
    run_dir: Path
    setup: Setup
    resume: bool
    generators: dict[str, torch.Generator]
    modules: dict[str, nn.Module] = field(default_factory=dict)
    optimizers: dict[str, torch.optim.Optimizer] = field(default_factory=dict)
    state: RunState = field(default_factory=RunState)
    resumed: bool = False

    def save(self) -> Path:
        """Checkpoint everything the run holds (collective in a data-parallel run)."""
        return save_run_checkpoint(
            self.run_dir,
            self.state,
            self.modules,
            self.optimizers,
            self.generators,
            self.agent,
            keep=self.cfg.keep_checkpoints,
        )


#: What a text run may change on resume: the run layer's keys, and the corpus's loading counts
#: (recorded for the reader; the data itself is pinned by corpus_path and the config).
TEXT_RESUMABLE = RESUMABLE_CHANGES | {"corpus"}


def open_run_dir(cfg: CommonConfig, agent: str, resume: bool, data: RunData) -> Path:
    """``prepare_run_dir`` for a text run: its data record, its pre-training checkpoint, its length."""
    return prepare_run_dir(
        cfg.out_dir,
        cfg,
        agent,
        resume,
        resumable=TEXT_RESUMABLE,
        extra=data.record(),
        total_steps=cfg.total_steps,
        partial=PARTIAL_CHECKPOINTS,
    )


def start_run(
    cfg: CommonConfig,
    *,
    agent: str,
    resume: bool = False,
    num_envs: int | None = None,
    reward_mode: str = "prob",
) -> Run:
    """Run directory, seeds and :class:`Setup` (``num_envs`` env rows rewarded by ``reward_mode``).

    The run starts with the generator and the discriminator (and the discriminator's
    optimiser); the agent adds its own in :func:`adversarial_loop`. The data is read before
    the run directory is touched, so a bad corpus leaves nothing behind.
    """
    seed_everything(cfg.seed)
    data = load_data(cfg)
    run_dir = open_run_dir(cfg, agent, resume, data)
    try:
        setup = build_setup(cfg, run_dir, resume, num_envs or cfg.batch_size, reward_mode, data)
    except BaseException:
        release_run_dir(run_dir)
        raise
    generators = {
        "sample": make_generator(seed_stream(cfg.seed, "sample"), setup.device),
        "shuffle": make_generator(seed_stream(cfg.seed, "shuffle")),
    }
    return Run(
        cfg,
        agent,
        run_dir,
        setup,
        resume,
        generators,
        modules={"policy": setup.policy, "discriminator": setup.discriminator},
        optimizers={"discriminator": setup.d_optimizer},
    )


def adversarial_loop(
    run: Run,
    update: Update,
    *,
    modules: Mapping[str, nn.Module] | None = None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    scalars: Mapping[str, float | None] | None = None,
) -> dict[str, float]:
    """SeqGAN's schedule around the agent's ``update(step) -> metrics``; returns the last metrics.

    ``modules``, ``optimizers`` and ``scalars`` (initial values of ``run.state.scalars``) are
    the agent's own, checkpointed with the run's. Each iteration: ``g_steps`` updates,
    ``d_steps`` discriminator rounds on fresh negatives, the evaluation every ``eval_every``
    iterations and at the end, a metrics row every ``log_every``, a checkpoint every
    ``checkpoint_every`` iterations and at the end. ``update`` must call
    :func:`~agents.runtime.check_finite` on its rewards/weights/loss so a NaN stops the run
    before any save.
    """
    try:
        return _loop(run, update, modules, optimizers, scalars)
    finally:
        release_run_dir(run.run_dir)


def _loop(
    run: Run,
    update: Update,
    modules: Mapping[str, nn.Module] | None,
    optimizers: Mapping[str, torch.optim.Optimizer] | None,
    scalars: Mapping[str, float | None] | None,
) -> dict[str, float]:
    cfg, setup = run.cfg, run.setup
    run.modules.update(modules or {})
    run.optimizers.update(optimizers or {})
    run.state, run.resumed = resume_or_start(
        run.run_dir,
        run.resume,
        run.modules,
        run.optimizers,
        run.generators,
        run.agent,
        setup.device,
        scalars,
        keep=cfg.keep_checkpoints,
    )
    state = run.state
    is_main = current_context().is_main
    logger = open_logger(run.run_dir, state, run.resumed, cfg.tensorboard)
    desc = f"{run.agent} seed {cfg.seed}"
    bar = progress_bar(cfg.total_steps, state.step, cfg.progress and is_main, desc)
    metrics: dict[str, float] = {}
    try:
        while state.step < cfg.total_steps:
            step = state.step + 1
            for _ in range(cfg.g_steps):
                metrics = dict(update(step))
            for _ in range(cfg.d_steps):
                d = discriminator_round(
                    setup, cfg, run.generators["sample"], run.generators["shuffle"]
                )
                check_finite("discriminator loss", d["loss"], step)
                metrics.update({"d_loss": d["loss"], "d_accuracy": d["accuracy"]})
            if is_main and (
                (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.total_steps
            ):
                metrics.update(evaluate(setup, cfg, step))  # no_grad: no collective inside
            else:  # same columns on every row: the CSV is never rewritten mid-run
                metrics.update(dict.fromkeys(eval_keys(setup), float("nan")))
            state.step = step
            if step % cfg.log_every == 0 or step == cfg.total_steps:
                logger.log(step, metrics)
            if step % cfg.checkpoint_every == 0 or step == cfg.total_steps:
                run.save()
            bar.update(1)
            if "reward" in metrics:
                bar.set_postfix(reward=f"{metrics['reward']:.3f}")
    finally:
        bar.close()
        logger.close()
    return metrics


def eval_keys(setup: Setup) -> tuple[str, ...]:
    """Names of the metrics :func:`evaluate` returns for this set-up."""
    return ("nll_oracle", "nll_test") if setup.oracle is not None else ("nll_test",)


@torch.no_grad()
def evaluate(setup: Setup, cfg: CommonConfig, step: int) -> dict[str, float]:
    """NLL-oracle (oracle env) of ``eval_samples`` samples and NLL-test on held-out real data.

    Uses its own generator seeded from ``(seed, step)`` so evaluating never shifts the training
    random streams: runs with different ``eval_every`` train identically.
    """
    from textgan_envs.metrics import nll_oracle, nll_test

    out: dict[str, float] = {}
    gen = make_generator(seed_stream(step_seed(cfg.seed, step), "eval"), setup.device)
    if setup.oracle is not None:
        samples = setup.policy.sample(cfg.eval_samples, generator=gen)
        out["nll_oracle"] = nll_oracle(setup.oracle, samples)
    pad = None if setup.vocab is None else setup.vocab.PAD
    out["nll_test"] = nll_test(setup.policy, setup.valid, pad_id=pad)
    return out


def clip_and_step(
    optimizer: torch.optim.Optimizer, parameters: list[nn.Parameter], max_norm: float
) -> float:
    """Clip the global gradient norm to ``max_norm`` (0: no clipping), step; return the pre-clip norm."""
    if max_norm > 0:
        norm = float(torch.nn.utils.clip_grad_norm_(parameters, max_norm))
    else:
        norm = grad_global_norm(parameters)
    optimizer.step()
    return norm
