"""The real cell runner and pretrainer behind the grid: MLE and every adversarial agent.

Why it is shaped like this: every adversarial agent's ``train(cfg, resume)`` builds its data
and generator deterministically from ``cfg.seed`` and MLE-pretrains into ``<run>/mle``
unless that sub-run's checkpoint is already complete. So the pretrainer runs that same
set-up once per seed, and each cell drops the cached MLE checkpoint into its own run
directory before training: every variant of a seed starts from bit-identical weights, and
the agents' own code decides nothing differently than in a stand-alone run.

Each cell trains in ``n_checkpoints`` segments (``total_steps`` raised and the agent resumed
from its checkpoint each time), and the generator is evaluated after every segment with the
full metric set; finished segments are recorded in ``bench_progress.json``, so an interrupted
cell resumes at its last segment. After training, the temperature sweep runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.bench.evaluate import EvalData, evaluate, temperature_sweep
from agents.bench.grid import data_cache_path, discriminator_cache_path
from agents.bench.presets import BenchConfig
from agents.registry import AGENTS, AgentSpec, bench_agents
from agents.runtime.errors import RunFinished
from agents.runtime.seeding import seed_stream, step_seed
from textgan_envs.atomic_files import atomic_write, atomic_write_text

Row = dict[str, Any]

PROGRESS_FILE = "bench_progress.json"


def known_agents() -> tuple[str, ...]:
    """The agents a bench can run: the registry's benchable entries."""
    return bench_agents()


def bench_spec(name: str) -> AgentSpec:
    """The registry entry of a benchable agent; ``ValueError`` naming the known ones otherwise."""
    spec = AGENTS.get(name)
    if spec is None or spec.bench is None:
        raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(bench_agents())}")
    return spec


def check_agents(names: tuple[str, ...] | list[str]) -> None:
    """Reject unknown or unavailable agents before any work starts."""
    for name in names:
        bench_spec(name).load_module()


def _common_config(
    cfg: BenchConfig,
    seed: int,
    out_dir: Path,
    data_cache: Path | None = None,
    progress: bool = False,
    **extra: Any,
) -> Any:
    """The seed's :class:`~agents.setup.CommonConfig`; ``data_cache``: its drawn oracle data;
    ``progress``: the run's own progress bars (pre-training, updates)."""
    from agents import setup as tr
    from agents.runtime import build_config

    values = {
        **cfg.common,
        **({"data_cache": str(data_cache)} if data_cache else {}),
        "env_id": cfg.env,
        "seed": seed,
        "out_dir": str(out_dir),
        "device": cfg.device,
        "progress": progress,
        "tensorboard": False,
        **extra,
    }
    return build_config(tr.CommonConfig, values)


def agent_config(
    cfg: BenchConfig,
    agent: str,
    seed: int,
    out_dir: Path,
    total_steps: int,
    d_pretrain_cache: Path | None = None,
    data_cache: Path | None = None,
    progress: bool = False,
) -> Any:
    """The agent's own config: common fields, then its overrides, then the bench's run settings.

    ``d_pretrain_cache`` is the seed's shared pre-trained discriminator (see
    :mod:`agents.discriminator_cache`): the seed's first cell writes it, the others load it.
    ``data_cache`` is the seed's drawn oracle data (:mod:`agents.data_cache`), likewise shared.
    """
    from agents.runtime import build_config

    spec = bench_spec(agent)
    if spec.bench == "sb3":  # stock SB3 has no agent config of its own: the common fields
        return _common_config(cfg, seed, out_dir, progress=progress, total_steps=total_steps)
    cls = spec.config_class()
    values = {
        **cfg.common,
        **cfg.agent_overrides.get(agent, {}),
        **({"d_pretrain_cache": str(d_pretrain_cache)} if d_pretrain_cache else {}),
        **({"data_cache": str(data_cache)} if data_cache else {}),
        "env_id": cfg.env,
        "seed": seed,
        "out_dir": str(out_dir),
        "device": cfg.device,
        "total_steps": total_steps,
        "eval_every": 0,
        "eval_samples": 64,
        "progress": progress,
        "tensorboard": False,
    }
    names = {f.name for f in dataclasses.fields(cls)}
    return build_config(cls, {k: v for k, v in values.items() if k in names})


@dataclass
class Task:
    """Data of one seed: training tokens, evaluation data, and the policy's shape."""

    real: torch.Tensor
    eval_data: EvalData
    policy_config: dict[str, Any]


_TASKS: dict[str, Task] = {}


def _fresh_setup(cfg: BenchConfig, seed: int, data_cache: Path | None = None) -> Any:
    """The agents' set-up of ``seed`` without any training: data, oracle/vocab, initial policy."""
    from agents import setup as tr

    with tempfile.TemporaryDirectory() as tmp:
        common = _common_config(
            cfg, seed, Path(tmp), data_cache=data_cache, mle_epochs=0, d_pretrain_steps=0
        )
        return tr.build_setup(common, Path(tmp), resume=False)


def build_task(
    cfg: BenchConfig, seed: int, setup: Any = None, data_cache: Path | None = None
) -> Task:
    """The seed's data exactly as the agents build it (cached per process).

    ``data_cache`` (the seed's :func:`~agents.bench.grid.data_cache_path`) is read when it
    exists and written after the draw otherwise.
    """
    key = json.dumps([cfg.identity(), seed, str(data_cache)], sort_keys=True)
    if key in _TASKS:
        return _TASKS[key]
    setup = _fresh_setup(cfg, seed, data_cache) if setup is None else setup
    if setup.vocab is None:
        data = EvalData(test_tokens=setup.valid.cpu(), oracle=setup.oracle)
    else:
        data = _corpus_eval_data(cfg, setup)
    task = Task(real=setup.real, eval_data=data, policy_config=setup.policy.config())
    _TASKS[key] = task
    return task


def _corpus_eval_data(cfg: BenchConfig, setup: Any) -> EvalData:
    """Corpus: NLL-test on the test file (else the valid split); BLEU against its words."""
    from textgan_envs.corpus import encode_sentences, load_corpus

    vocab = setup.vocab
    seq_len = setup.real.shape[1]
    if cfg.test_path:
        sentences = load_corpus(cfg.test_path, max_len=None).sentences
        test_tokens = encode_sentences([s[:seq_len] for s in sentences], vocab, seq_len)
        references = [tuple(s) for s in sentences]
    else:
        test_tokens = setup.valid.cpu()
        references = None
    end = (vocab.EOS, vocab.PAD)

    def decode(row: list[int]) -> tuple[str, ...]:
        for i, tok in enumerate(row):
            if tok in end:
                row = row[:i]
                break
        return tuple(vocab.decode(row, skip_special=True))

    return EvalData(
        test_tokens=test_tokens, pad_id=vocab.PAD, end_ids=end, decode=decode, references=references
    )


def _load_policy(pretrained: Path, device: str, real: Any) -> Any:
    """The cached MLE start, refused if it was trained on other data than the seed's ``real``."""
    from agents.mle import check_training_data, load_mle_checkpoint
    from agents.runtime import token_digest

    policy, state = load_mle_checkpoint(pretrained, device=device)
    check_training_data(state, token_digest(real), pretrained)
    return policy


def _eval_seed(seed: int) -> int:
    """Evaluation samples depend on the seed only: every variant of a seed sees the same draws."""
    return step_seed(seed_stream(seed, "bench.eval"), 0)


def _atomic_json(obj: Any, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj))


def _copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` whole or not at all, keeping its permissions (0600 checkpoints)."""
    mode = src.stat().st_mode & 0o777
    with open(src, "rb") as source:
        atomic_write(dst, lambda handle: shutil.copyfileobj(source, handle), mode=mode)


def _segments(iterations: int, n_checkpoints: int) -> list[int]:
    return sorted({math.ceil(k * iterations / n_checkpoints) for k in range(1, n_checkpoints + 1)})


@dataclass
class BenchRunner:
    """Picklable cell runner + pretrainer for one :class:`BenchConfig`.

    ``progress``: each unit's own bars (MLE epochs, D pre-training rounds, generator updates)
    below the bench's; for a bench that runs its units in this process.
    """

    cfg: BenchConfig
    progress: bool = False

    # ------------------------------------------------------------------ pretraining
    def pretrain(self, seed: int, path: Path, work_dir: Path) -> list[Row]:
        """MLE-pretrain seed ``seed`` from the agents' own initial policy and data; cache it.

        Same data, initial weights, optimiser and shuffling as ``build_setup`` would use, so
        the cached checkpoint is exactly what an agent's own pre-training would produce; only
        the evaluation cadence is the bench's (every ``pretrain_eval_every`` epochs).
        """
        from agents.mle import pretraining_config, train_mle
        from agents.runtime import load_checkpoint

        data_cache = data_cache_path(path)
        setup = _fresh_setup(self.cfg, seed, data_cache)
        task = build_task(self.cfg, seed, setup, data_cache)
        common = _common_config(self.cfg, seed, work_dir, data_cache=data_cache)
        settings = self.cfg.eval_settings()
        mle_cfg = pretraining_config(
            common,
            eval_every=max(1, self.cfg.pretrain_eval_every),
            n_eval_samples=settings.n_samples,
            progress=self.progress,
            tensorboard=False,
        )
        mle_dir = work_dir / "mle"
        train_mle(
            setup.policy,
            setup.real,
            mle_cfg,
            valid_tokens=setup.valid,
            oracle=setup.oracle,
            out_dir=mle_dir,
            resume=True,
        )
        mle_ckpt = mle_dir / mle_cfg.checkpoint_name
        history = load_checkpoint(mle_ckpt, ["history"])["history"]
        keep = ("nll_oracle", "nll_test", "train_loss")
        rows: list[Row] = [
            {
                "phase": "pretrain",
                "step": int(h["epoch"]),
                **{k: float(h[k]) for k in keep if k in h},
            }
            for h in history
        ]
        policy = _load_policy(mle_ckpt, self.cfg.device, task.real)
        rows[-1].update(evaluate(policy, task.eval_data, settings, 1.0, _eval_seed(seed)))
        _copy_atomic(mle_ckpt, path)
        return rows

    # ------------------------------------------------------------------ cells
    def __call__(
        self, agent: str, seed: int, budget: int, pretrained: Path, out_dir: Path
    ) -> list[Row]:
        out_dir = Path(out_dir)
        kind = bench_spec(agent).bench
        if kind == "sb3":  # stock SB3 on GeneratorPolicy, from the same ``pretrained`` start
            from agents.bench.ppo import run_sb3_cell

            return run_sb3_cell(self, agent, seed, budget, pretrained, out_dir)
        progress_path = out_dir / PROGRESS_FILE
        progress = json.loads(progress_path.read_text()) if progress_path.exists() else None
        task = build_task(self.cfg, seed, data_cache=data_cache_path(pretrained))
        settings = self.cfg.eval_settings()
        policy = _load_policy(pretrained, self.cfg.device, task.real)
        if progress is None:
            row = evaluate(policy, task.eval_data, settings, 1.0, _eval_seed(seed))
            progress = {
                "rows": [{"phase": "train", "step": 0, "wall_time": 0.0, **row}],
                "wall": 0.0,
            }
            _atomic_json(progress, progress_path)
        train = self._train_mle if kind == "continued_mle" else self._train_agent
        policy = train(
            agent, seed, budget, pretrained, out_dir, policy, task, progress, progress_path
        )
        return progress["rows"] + temperature_sweep(
            policy, task.eval_data, settings, _eval_seed(seed)
        )

    def _record(self, policy, seed, step, elapsed, extra, task, progress, progress_path) -> None:
        row = evaluate(policy, task.eval_data, self.cfg.eval_settings(), 1.0, _eval_seed(seed))
        progress["wall"] = elapsed
        progress["rows"].append(
            {"phase": "train", "step": step, "wall_time": elapsed, **extra, **row}
        )
        _atomic_json(progress, progress_path)

    def _train_agent(
        self, agent, seed, budget, pretrained, out_dir, policy, task, progress, progress_path
    ):
        from agents.runtime import load_checkpoint

        train_fn = bench_spec(agent).train_fn()
        g_steps = agent_config(self.cfg, agent, seed, out_dir, 1).g_steps
        if budget % g_steps:
            raise ValueError(f"budget {budget} is not a multiple of {agent}'s g_steps={g_steps}")
        mle_dst = out_dir / "mle" / "mle_checkpoint.pt"
        if not mle_dst.exists():
            _copy_atomic(pretrained, mle_dst)
        done = progress["rows"][-1]["step"] // g_steps
        d_cache, data_cache = discriminator_cache_path(pretrained), data_cache_path(pretrained)
        for iters in _segments(budget // g_steps, self.cfg.n_checkpoints):
            if iters <= done:
                continue
            start = time.perf_counter()
            try:  # resume=True: a fresh cell resumes from the MLE checkpoint copied above
                config = agent_config(
                    self.cfg, agent, seed, out_dir, iters, d_cache, data_cache, self.progress
                )
                train_fn(config, resume=True)
            except RunFinished:
                pass  # killed after this segment's checkpoint, before it was recorded
            elapsed = progress["wall"] + time.perf_counter() - start
            state = load_checkpoint(out_dir / "checkpoint.pt", ["modules", "step"])
            if int(state["step"]) != iters:
                raise RuntimeError(f"{agent} stopped at step {state['step']}, expected {iters}")
            policy.load_state_dict(state["modules"]["policy"])
            extra = _last_logged(out_dir / "metrics.csv", ("d_accuracy", "d_fake", "d_loss"))
            self._record(
                policy, seed, iters * g_steps, elapsed, extra, task, progress, progress_path
            )
        return policy

    def _train_mle(
        self, agent, seed, budget, pretrained, out_dir, policy, task, progress, progress_path
    ):
        """Continued MLE: ``budget`` Adam steps on batches of ``batch_size`` real sequences."""
        from agents.mle import mle_loss, pretraining_config
        from agents.runtime import atomic_save, load_checkpoint

        mle = pretraining_config(
            _common_config(self.cfg, seed, out_dir)
        )  # the agents' MLE settings
        optimizer = torch.optim.Adam(policy.parameters(), lr=mle.lr)
        optimizer.load_state_dict(load_checkpoint(pretrained, ["optimizer"])["optimizer"])
        gen = torch.Generator().manual_seed(seed_stream(seed, "bench.continued_mle"))
        ckpt = out_dir / "mle_bench_checkpoint.pt"
        step = 0
        if ckpt.exists():
            state = load_checkpoint(ckpt, ["policy", "optimizer", "gen", "step"])
            policy.load_state_dict(state["policy"])
            optimizer.load_state_dict(state["optimizer"])
            gen.set_state(state["gen"])
            step = int(state["step"])
        real = task.real.to(policy.device)
        recorded = progress["rows"][-1]["step"]
        for target in _segments(budget, self.cfg.n_checkpoints):
            if target <= recorded:
                continue
            start = time.perf_counter()
            policy.train()
            losses = []
            while step < target:
                idx = torch.randint(real.shape[0], (mle.batch_size,), generator=gen)
                loss = mle_loss(policy, real[idx.to(real.device)])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if mle.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(policy.parameters(), mle.grad_clip)
                optimizer.step()
                losses.append(float(loss.detach()))
                step += 1
            elapsed = progress["wall"] + time.perf_counter() - start
            if losses:  # else the checkpoint was already at this segment (killed before recording)
                state = {
                    "policy": policy.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "gen": gen.get_state(),
                    "step": step,
                    "loss": sum(losses) / len(losses),
                }
                atomic_save(state, ckpt)
            self._record(
                policy,
                seed,
                step,
                elapsed,
                {"train_loss": load_checkpoint(ckpt, ["loss"])["loss"]},
                task,
                progress,
                progress_path,
            )
        return policy


def _last_logged(csv_path: Path, keys: tuple[str, ...]) -> Row:
    """The latest logged value of each of ``keys`` in an agent's metrics.csv."""
    import csv

    out: Row = {}
    if not csv_path.exists():
        return out
    with csv_path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            for key in keys:
                if row.get(key) not in (None, ""):
                    out[key] = float(row[key])
    return out
