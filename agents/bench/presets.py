"""Bench configurations: the ``quick`` and ``paper`` presets and the checked :class:`BenchConfig`.

Why presets: a benchmark is only comparable when every variant gets the same data, the same
pretrained generator, the same budget and the same evaluation, so all of that lives in one
config written to ``config.json``; a resumed bench must match it. ``common`` holds fields of
:class:`agents.setup.CommonConfig` (data, generator, discriminator schedule) shared by every
agent; ``agent_overrides`` holds per-agent extras (e.g. fewer Monte-Carlo rollouts).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.bench.evaluate import EvalSettings

ENVS = ("textgan/Oracle-v0", "textgan/Corpus-v0")
PRESETS = ("quick", "paper", "seqgan-oracle")
#: Environment variable naming the shared data directory (default: ``../shared/data`` next to
#: the checkout), for worktrees, installed copies and machines that keep the data elsewhere.
SHARED_DATA_ENV = "TEXTGAN_SHARED_DATA"


def published_oracle() -> Path:
    """SeqGAN's published oracle in the shared data directory (``$TEXTGAN_SHARED_DATA`` if set)."""
    root = os.environ.get(SHARED_DATA_ENV)
    data = Path(root) if root else Path(__file__).resolve().parents[3] / "shared" / "data"
    return data / "seqgan_oracle_params.npz"


# A small CNN (SeqGAN's layout, fewer and narrower filters): the full 1,720-filter CNN dominates
# CPU time at quick scale without changing what the comparison shows.
SMALL_CNN = {"emb_dim": 32, "filter_sizes": [2, 3, 4, 5], "num_filters": [32, 32, 32, 32]}


@dataclass
class BenchConfig:
    """Everything that defines a bench; saved as ``config.json`` in the output directory."""

    env: str = "textgan/Oracle-v0"
    """Environment id: ``textgan/Oracle-v0`` (synthetic oracle) or ``textgan/Corpus-v0``."""
    preset: str = "quick"
    """The preset the config started from."""
    agents: tuple[str, ...] = ("mle", "reinforce", "bgan", "actor_critic")
    """Variants to compare; ``mle`` (continued MLE for the same budget) is the baseline."""
    seeds: int = 3
    """Seeds 0..seeds-1; each seed has its own data draw, pretrained generator and runs."""
    budget: int = 40
    """Generator updates per variant after pretraining (MLE: Adam steps on batches of the same size)."""
    n_checkpoints: int = 4
    """Evaluations during training (evenly spaced in generator updates), besides step 0."""
    pretrain_eval_every: int = 5
    """Evaluate NLL-oracle / NLL-test of the MLE pretraining every N epochs (SeqGAN: 5)."""
    common: dict[str, Any] = field(default_factory=dict)
    """Overrides of :class:`agents.setup.CommonConfig` applied to every agent."""
    agent_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-agent config overrides, e.g. ``{"reinforce": {"n_rollouts": 4}}``."""
    eval: dict[str, Any] = field(default_factory=dict)
    """:class:`agents.bench.evaluate.EvalSettings` fields."""
    test_path: str | None = None
    """Corpus env: the held-out test file for NLL-test and BLEU references (else the valid split)."""
    device: str = "cpu"
    """Device of every run (``auto`` picks CUDA when present)."""
    notes: list[str] = field(default_factory=list)
    """Lines printed at the top of summary.md (e.g. what was shortened)."""

    def __post_init__(self) -> None:
        self.agents = tuple(self.agents)
        if self.env not in ENVS:
            raise ValueError(f"unknown env {self.env!r}; choose one of {', '.join(ENVS)}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if not self.agents:
            raise ValueError("at least one agent is needed")
        if len(set(self.agents)) != len(self.agents):
            raise ValueError(f"agents are repeated: {', '.join(self.agents)}")
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"seeds must be an integer >= 1, got {self.seeds!r}")
        if isinstance(self.budget, bool) or not isinstance(self.budget, int) or self.budget < 1:
            raise ValueError(
                f"budget must be an integer >= 1 generator update, got {self.budget!r}"
            )
        if not 1 <= self.n_checkpoints <= self.budget:
            raise ValueError(
                f"n_checkpoints must be in [1, budget={self.budget}], got {self.n_checkpoints}"
            )
        unknown = set(self.agent_overrides) - set(self.agents)
        if unknown:
            raise ValueError(
                f"agent_overrides name agents not in the bench: {', '.join(sorted(unknown))}"
            )
        self.eval_settings()  # validates

    def eval_settings(self) -> EvalSettings:
        values = dict(self.eval)
        for key in ("bleu_orders", "unique_orders", "temperatures"):
            if key in values:
                values[key] = tuple(values[key])
        try:
            return EvalSettings(**values)
        except TypeError as exc:
            raise ValueError(f"bad eval settings {self.eval}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> BenchConfig:
        return cls(**values)

    def identity(self) -> dict[str, Any]:
        """What must match for a resumed bench: everything but the agent list, seed count, notes
        and per-agent overrides (those are checked per agent with finished cells).

        Adding agents or seeds to a finished bench only runs the new cells.
        """
        d = self.to_dict()
        for key in ("agents", "seeds", "notes", "agent_overrides"):
            d.pop(key)
        return d


def quick(env: str = "textgan/Oracle-v0") -> BenchConfig:
    """About 10 minutes on 2 CPU cores: a smaller seeded oracle, short schedules, 3 seeds."""
    if env == "textgan/Oracle-v0":
        common = {
            "vocab_size": 500,
            "seq_len": 20,
            "oracle_seed": 0,
            "n_real": 5000,
            "n_valid": 1000,
            "mle_epochs": 25,
        }
        notes = [
            "Preset `quick`: a seeded N(0,1) oracle with V=500 (the paper: V=5,000), T=20, "
            "hidden 32; 5,000 real sequences (paper: 10,000); 25 MLE epochs (paper: 120); a small "
            "CNN discriminator (4 filter sizes x 32 filters; paper: 12 sizes, 1,720 filters) "
            "pretrained for 5 rounds of 1 epoch on 1,000 negatives (paper: 50 x 3 on 10,000); "
            "50 generator updates per variant, each followed by 1 D round of 1 epoch (paper: "
            "200 updates, each followed by 5 rounds of 3 epochs); 4 Monte-Carlo rollouts "
            "(paper: 16); metrics on 1,000 samples (BLEU on 200 against 1,000 references).",
        ]
    else:
        common = {"vocab_size": 5000, "seq_len": 20, "n_valid": 1000, "mle_epochs": 10}
        notes = [
            "Preset `quick` on a corpus: 10 MLE epochs, small CNN discriminator, 50 generator "
            "updates per variant, 4 Monte-Carlo rollouts.",
        ]
    common.update(
        {
            "disc": "cnn",
            "disc_kwargs": dict(SMALL_CNN),
            "d_lr": 1e-3,
            "d_pretrain_steps": 5,
            "d_steps": 1,
            "d_epochs": 1,
            "d_negatives": 1000,
            "batch_size": 64,
        }
    )
    return BenchConfig(
        env=env,
        preset="quick",
        agents=("mle", "reinforce", "bgan", "actor_critic", "ppo", "a2c"),
        seeds=3,
        budget=50,
        n_checkpoints=5,
        common=common,
        agent_overrides={"reinforce": {"n_rollouts": 4}, "actor_critic": {"n_rollouts": 4}},
        eval={
            "n_samples": 1000,
            "n_bleu": 200,
            "n_refs": 1000,
            "temperatures": [0.6, 0.8, 1.0, 1.2, 1.5],
        },
        notes=notes,
    )


def paper(env: str = "textgan/Oracle-v0") -> BenchConfig:
    """SeqGAN's schedule: 120 MLE epochs, 50 x 3 D pre-training, 200 rounds of 1 G step + 5 x 3 D."""
    common = {
        "vocab_size": 5000,
        "seq_len": 20,
        "n_real": 10000,
        "n_valid": 10000,
        "mle_epochs": 120,
        "disc": "cnn",
        "d_pretrain_steps": 50,
        "d_steps": 5,
        "d_epochs": 3,
        "d_negatives": 10000,
        "batch_size": 64,
        "checkpoint_every": 5,
    }
    return BenchConfig(
        env=env,
        preset="paper",
        agents=("mle", "reinforce", "bgan", "actor_critic", "ppo", "a2c"),
        seeds=5,
        budget=200,
        n_checkpoints=10,
        common=common,
        eval={
            "n_samples": 10000,
            "n_bleu": 1000,
            "n_refs": None,
            "temperatures": [0.5, 0.75, 1.0, 1.25, 1.5],
        },
        notes=["Preset `paper`: the SeqGAN synthetic-experiment schedule."],
    )


def seqgan_oracle(env: str = "textgan/Oracle-v0") -> BenchConfig:
    """SeqGAN's Table 1 on the published oracle: the paper's generator schedule from the paper's
    MLE start, with the discriminator training shortened to fit (stated in the notes)."""
    if env != "textgan/Oracle-v0":
        raise ValueError("preset 'seqgan-oracle' runs on textgan/Oracle-v0 only")
    common: dict[str, Any] = {
        "seq_len": 20,
        "n_real": 10000,
        "n_valid": 10000,
        "mle_epochs": 120,
        "disc": "cnn",  # SeqGAN's published sizes (the CNN's defaults)
        # The paper's D pre-training (~36 min a seed here, once: the seed's cells share it);
        # with the earlier 10 x 1 on 5,000, SeqGAN gained half as much (RESULTS.md).
        "d_pretrain_steps": 50,
        "d_pretrain_epochs": 3,
        "d_pretrain_negatives": 10000,
        "d_steps": 1,
        "d_epochs": 1,
        "d_negatives": 5000,
        "batch_size": 64,
        "checkpoint_every": 10,
    }
    if published_oracle().is_file():
        common["oracle_path"] = str(published_oracle())
    return BenchConfig(
        env=env,
        preset="seqgan-oracle",
        agents=("mle", "reinforce", "bgan", "actor_critic"),
        seeds=3,
        budget=200,
        n_checkpoints=20,
        common=common,
        agent_overrides={"reinforce": {"n_rollouts": 16}, "actor_critic": {"n_rollouts": 16}},
        eval={
            "n_samples": 10000,
            "n_bleu": 200,
            "n_refs": 2000,
            "temperatures": [0.8, 1.0, 1.2],
        },
        notes=seqgan_oracle_notes(common),
    )


#: SeqGAN's discriminator schedule: rounds x epochs on fresh negatives (as many positives).
PAPER_D_SCHEDULE = {"pretrain": (50, 3, 10000), "per_update": (5, 3, 10000)}


def seqgan_oracle_notes(common: dict[str, Any]) -> list[str]:
    """The preset's notes for the D schedule in ``common`` (recomputed after ``--set``), so
    ``summary.md`` states the schedule that ran and every way it differs from the paper's."""
    per_update = (common["d_steps"], common["d_epochs"], common["d_negatives"])
    pretrain = (
        common["d_pretrain_steps"],
        common.get("d_pretrain_epochs") or per_update[1],
        common.get("d_pretrain_negatives") or per_update[2],
    )

    def phase(name: str, ran: tuple[int, int, int]) -> tuple[str, bool]:
        """The phase's schedule in words, and whether it is shorter than the paper's."""
        paper = PAPER_D_SCHEDULE[name]
        rounds = f"{ran[0]} round{'' if ran[0] == 1 else 's'}"
        epochs = f"{ran[1]} epoch{'' if ran[1] == 1 else 's'}"
        text = f"{rounds} x {epochs} on {ran[2]:,} negatives"
        if ran == paper:
            return text + " (as the paper)", False
        return f"{text} (paper: {paper[0]} x {paper[1]} on {paper[2]:,})", True

    pre_text, pre_short = phase("pretrain", pretrain)
    upd_text, upd_short = phase("per_update", per_update)
    lead = "Shortened to fit" if pre_short or upd_short else "As the paper"
    return [
        "Preset `seqgan-oracle`: SeqGAN's published oracle (V=5,000, T=20, hidden 32), 10,000 "
        "real sequences, 120 MLE epochs, SeqGAN's CNN discriminator with its published sizes, "
        "200 generator updates of batch 64 with 16 Monte-Carlo rollouts (REINFORCE, the paper's "
        f"rollout policy rule). {lead}: D pre-training {pre_text}; per update {upd_text}; "
        "each round on as many real sequences as negatives.",
        "`mle` continues MLE for the same 200 updates of batch 64 (about 1.3 epochs), not for "
        "REINFORCE's wall-clock time (hundreds of epochs here); the pretraining curve shows "
        "where MLE alone goes with more epochs.",
    ]


def preset(name: str, env: str = "textgan/Oracle-v0") -> BenchConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    if env not in ENVS:
        raise ValueError(f"unknown env {env!r}; choose one of {', '.join(ENVS)}")
    return {"quick": quick, "paper": paper, "seqgan-oracle": seqgan_oracle}[name](env)
