"""The ``mle`` agent: MLE pre-training alone, saved as a run the other commands read.

It runs exactly the pre-training every adversarial agent starts with (the same set-up, data,
initial weights and :func:`agents.mle.pretraining_config`), then writes the step-0 run
checkpoint and the evaluation, so ``textgan sample`` / ``textgan eval`` treat it like any run.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents.loop import evaluate, open_run_dir
from agents.runtime import open_logger, release_run_dir, resume_or_start, seed_everything
from agents.setup import CommonConfig, build_setup, load_data


@dataclass
class MLEAgentConfig(CommonConfig):
    """MLE only: pre-train the generator, save it as a run (no adversarial steps)."""

    d_pretrain_steps: int = 0
    """Discriminator pre-training rounds (none needed for an MLE-only run)."""
    total_steps: int = 0
    """Unused by the MLE agent (kept 0)."""


def train(cfg: MLEAgentConfig, resume: bool = False) -> dict[str, float]:
    """MLE-pretrain the generator (resumable per epoch), then save a step-0 run checkpoint.

    A resume of a finished run (its step-0 checkpoint written) raises ``RunFinished``.
    """
    seed_everything(cfg.seed)
    data = load_data(cfg)
    run_dir = open_run_dir(cfg, "mle", resume, data)
    try:
        setup = build_setup(cfg, run_dir, resume, data=data)
        modules = {"policy": setup.policy, "discriminator": setup.discriminator}
        state, resumed = resume_or_start(
            run_dir,
            resume,
            modules,
            {"discriminator": setup.d_optimizer},
            {},
            "mle",
            setup.device,
            keep=cfg.keep_checkpoints,
        )
        metrics = evaluate(setup, cfg, 0)
        logger = open_logger(run_dir, state, resumed, cfg.tensorboard)
        logger.log(0, metrics)
        logger.close()
        return metrics
    finally:
        release_run_dir(run_dir)
