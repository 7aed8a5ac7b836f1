"""Offline evaluation of PPGN samplers on an evaluator classifier distinct from C.

Why a separate evaluator: the sampler climbs C's log-probability, so C's own
verdict can be fooled (adversarial images). Accuracy, p(c), diversity and
Fréchet distance are measured on :func:`image_samplers.metrics.train_evaluator`
(another architecture, another seed), which never sees the sampler's gradients.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from agents.runtime import seed_stream
from image_samplers.data import ImageDataset, load_dataset, save_image_grid
from image_samplers.metrics import Evaluator, frechet_distance, train_evaluator

from .build import class_condition, make_sampler
from .sampler import PRESETS, SampleResult, preset
from .train import PPGNModels, load_run

EVALUATOR_NAME = "evaluator.pt"


def pairwise_diversity(features: torch.Tensor) -> float:
    """Mean pairwise Euclidean distance between feature vectors (0 when all are equal)."""
    if features.shape[0] < 2:
        return float("nan")
    return float(torch.pdist(features.double()).mean())


def class_switches(labels: torch.Tensor) -> torch.Tensor:
    """Per chain, how often the predicted class changes between consecutive frames; labels [T, B]."""
    return (labels[1:] != labels[:-1]).sum(0).float()


@dataclass
class ClassScores:
    """Per-class numbers for one sampler (lists indexed by class id)."""

    accuracy: list[float] = field(default_factory=list)
    p_target: list[float] = field(default_factory=list)
    p_target_c: list[float] = field(default_factory=list)
    diversity: list[float] = field(default_factory=list)
    frechet: list[float] = field(default_factory=list)

    def mean(self, name: str) -> float:
        values = torch.tensor(getattr(self, name), dtype=torch.float64)
        return float(values[torch.isfinite(values)].mean()) if len(values) else float("nan")


def score_samples(
    evaluator: Evaluator,
    images: torch.Tensor,
    classes: torch.Tensor,
    real: ImageDataset,
    c_log_p: torch.Tensor | None = None,
) -> ClassScores:
    """Evaluator accuracy, mean p(c), diversity and per-class FD against ``real`` images."""
    feats, log_probs = evaluator.features(images), evaluator.log_probs(images)
    real_feats = evaluator.features(real.images)
    scores = ClassScores()
    for c in range(real.num_classes):
        mask = classes == c
        if not mask.any():
            for name in ("accuracy", "p_target", "p_target_c", "diversity", "frechet"):
                getattr(scores, name).append(float("nan"))
            continue
        lp = log_probs[mask]
        scores.accuracy.append(float((lp.argmax(-1) == c).float().mean()))
        scores.p_target.append(float(lp[:, c].exp().mean()))
        scores.p_target_c.append(
            float(c_log_p[mask].exp().mean()) if c_log_p is not None else float("nan")
        )
        scores.diversity.append(pairwise_diversity(feats[mask]))
        real_c = real_feats[real.labels == c]
        ok = mask.sum() >= 2 and len(real_c) >= 2
        scores.frechet.append(frechet_distance(real_c, feats[mask]) if ok else float("nan"))
    return scores


def chain_mixing(
    evaluator: Evaluator, result: SampleResult, classes: torch.Tensor
) -> dict[str, float]:
    """Class switches, on-target fraction and feature diversity along each recorded chain."""
    frames, n_chains = result.chain_images.shape[0], result.chain_images.shape[1]
    flat = result.chain_images.flatten(0, 1)
    labels = evaluator.log_probs(flat).argmax(-1).view(frames, n_chains)
    feats = evaluator.features(flat).view(frames, n_chains, -1)
    along = [pairwise_diversity(feats[:, b]) for b in range(n_chains)]
    return {
        "frames": float(frames),
        "class_switches": float(class_switches(labels).mean()),
        "on_target": float((labels == classes[None]).float().mean()),
        "diversity_along_chain": float(torch.tensor(along).mean()),
    }


def get_evaluator(
    run_dir: Path, data: ImageDataset, models: PPGNModels, epochs: int, device: str | torch.device
) -> Evaluator:
    """Load the run's cached evaluator or train one (other architecture and seed than C)."""
    path = run_dir / EVALUATOR_NAME
    if path.exists():
        evaluator = Evaluator.load(path, device=device)
        if evaluator.image_size == data.image_size:
            return evaluator
    evaluator = train_evaluator(
        data, epochs=epochs, seed=seed_stream(models.config.seed, "ppgn.evaluator"), device=device
    )
    evaluator.save(path)
    return evaluator


def _baseline(models: PPGNModels, n: int, seed: int) -> torch.Tensor:
    """Unconditioned G samples from the sampler's starting distribution (0 steps)."""
    sampler = make_sampler(models, preset("dgn-am"), class_condition(models, 0))
    with torch.no_grad():
        return sampler.decode(sampler.init(n, torch.Generator().manual_seed(seed))).cpu()


def _fmt(x: float) -> str:
    return (
        "nan" if x != x else (f"{x:.2f}" if abs(x) >= 0.995 or x == 0 else f"{x:.3f}".lstrip("0"))
    )


def evaluate_run(
    run_dir: str | os.PathLike[str],
    data_spec: str,
    variants: list[str],
    out_dir: str | os.PathLike[str],
    n_per_class: int = 16,
    steps: int = 200,
    mixing_steps: int = 400,
    reset_every: int = 100,
    evaluator_epochs: int = 3,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> str:
    """Run every variant for every class; write ``results.json``, ``results.md`` and PNGs."""
    run_dir, out = Path(run_dir), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    models = load_run(run_dir, device=device)
    cfg = models.config
    data = load_dataset(data_spec, cfg.image_size)
    _, valid = data.split(cfg.valid_fraction, seed=cfg.seed)
    evaluator = get_evaluator(run_dir, data, models, evaluator_epochs, device)
    ncls = cfg.num_classes
    classes = torch.arange(ncls).repeat_interleave(n_per_class)
    rows: dict[str, dict[str, object]] = {}

    # Reference rows: held-out real images (same n per class) and the unconditioned generator.
    gen = torch.Generator().manual_seed(seed)
    real_idx = torch.cat(
        [
            (valid.labels == c)
            .nonzero()
            .flatten()[torch.randperm(int((valid.labels == c).sum()), generator=gen)[:n_per_class]]
            for c in range(ncls)
        ]
    )
    rest = valid.subset(
        torch.tensor([i for i in range(len(valid)) if i not in set(real_idx.tolist())])
    )
    references = {
        "real (held-out)": (valid.images[real_idx], valid.labels[real_idx]),
        "G, no condition": (_baseline(models, len(classes), seed), classes),
    }
    for name, (images, labels) in references.items():
        scores = score_samples(evaluator, images, labels, rest)
        rows[name] = {"scores": scores.__dict__, "seconds": 0.0}
    save_image_grid(references["G, no condition"][0], out / "unconditioned.png", nrow=n_per_class)

    for variant in variants:
        config = preset(variant, steps=steps, save_every=0)
        started = time.perf_counter()
        result = make_sampler(models, config, class_condition(models, classes)).run(
            len(classes), seed=seed
        )
        seconds = time.perf_counter() - started
        scores = score_samples(evaluator, result.images, classes, rest, result.log_p)
        mix_classes = torch.arange(ncls)
        mix_cfg = replace(config, steps=mixing_steps, reset_every=reset_every, save_every=10)
        mix = make_sampler(models, mix_cfg, class_condition(models, mix_classes)).run(
            ncls, seed=seed_stream(seed, "ppgn.eval_mixing")
        )
        rows[variant] = {
            "scores": scores.__dict__,
            "mixing": chain_mixing(evaluator, mix, mix_classes),
            "seconds": seconds,
            "config": {k: v for k, v in config.__dict__.items()},
        }
        save_image_grid(result.images, out / f"{variant}.png", nrow=n_per_class)
        save_image_grid(
            mix.chain_images[:, 3],
            out / f"{variant}_chain_class3.png",
            nrow=mix.chain_images.shape[0],
        )

    meta = {
        "run": str(run_dir),
        "data": data_spec,
        "n_per_class": n_per_class,
        "steps": steps,
        "mixing_steps": mixing_steps,
        "reset_every": reset_every,
        "evaluator_test_accuracy": evaluator.test_accuracy,
        "real_per_class_for_fd": "held-out split minus the real row",
    }
    (out / "results.json").write_text(
        json.dumps({"meta": meta, "rows": rows}, indent=2, default=str)
    )
    report = _markdown(rows, ncls, meta)
    (out / "results.md").write_text(report)
    return report


def _markdown(rows: dict[str, dict[str, object]], ncls: int, meta: dict[str, object]) -> str:
    lines = [
        f"Evaluator test accuracy {meta['evaluator_test_accuracy']:.3f}; {meta['n_per_class']} chains per class, "
        f"{meta['steps']} steps.",
        "",
        "| sampler | eval acc | eval p(c) | C's p(c) | diversity | FD (per class, mean) | sec |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        s = ClassScores(**row["scores"])  # type: ignore[arg-type]
        lines.append(
            f"| {name} | {_fmt(s.mean('accuracy'))} | {_fmt(s.mean('p_target'))} | {_fmt(s.mean('p_target_c'))} | "
            f"{_fmt(s.mean('diversity'))} | {_fmt(s.mean('frechet'))} | {float(row['seconds']):.0f} |"
        )
    for metric, title in (
        ("accuracy", "Evaluator accuracy"),
        ("diversity", "Diversity"),
        ("frechet", "Fréchet distance"),
    ):
        lines += [
            "",
            f"{title} per class:",
            "",
            "| sampler | " + " | ".join(str(c) for c in range(ncls)) + " |",
            "|---|" + "---|" * ncls,
        ]
        for name, row in rows.items():
            values = row["scores"][metric]  # type: ignore[index]
            lines.append(f"| {name} | " + " | ".join(_fmt(v) for v in values) + " |")
    mixing = {k: v["mixing"] for k, v in rows.items() if "mixing" in v}
    if mixing:
        lines += [
            "",
            f"Chain mixing ({meta['mixing_steps']} steps, reset every {meta['reset_every']}, "
            "a frame every 10 steps, one chain per class):",
            "",
            "| sampler | class switches / chain | frames on target | diversity along chain |",
            "|---|---|---|---|",
        ]
        for name, m in mixing.items():
            lines.append(
                f"| {name} | {m['class_switches']:.1f} | {_fmt(m['on_target'])} | {_fmt(m['diversity_along_chain'])} |"
            )
    return "\n".join(lines) + "\n"


__all__ = [
    "PRESETS",
    "chain_mixing",
    "class_switches",
    "evaluate_run",
    "pairwise_diversity",
    "score_samples",
]
