"""Bench outputs: results.csv, sweep.csv, summary.md (IQM + 95% CI per agent), PNG plots.

Why one module: every output is a view of the same rows (one per agent, seed and
checkpoint, plus the temperature sweep), so they are all rebuilt from the recorded cells
at the end of every bench, including a resumed one, and never drift apart.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.bench.evaluate import higher_is_better, metric_label
from agents.bench.stats import Aggregate, aggregate, probability_of_improvement

Row = dict[str, Any]
BASELINE = "mle"


def write_csv(rows: Sequence[Row], path: Path) -> Path:
    """All rows, with the union of their keys as columns (first-seen order)."""
    fields = list(dict.fromkeys(k for row in rows for k in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _agents_in_order(rows: Iterable[Row]) -> list[str]:
    return list(dict.fromkeys(row["agent"] for row in rows))


def final_rows(rows: Iterable[Row]) -> list[Row]:
    """The last training checkpoint of every (agent, seed)."""
    last: dict[tuple[str, int], Row] = {}
    for row in rows:
        if row.get("phase") != "train":
            continue
        key = (row["agent"], row["seed"])
        if key not in last or row["step"] >= last[key]["step"]:
            last[key] = row
    return list(last.values())


def reference_rows(pre_rows: Iterable[Row]) -> dict[str, list[Row]]:
    """From the pretraining logs: the untrained generator ("random") and the pretrained one."""
    by_seed: dict[int, list[Row]] = defaultdict(list)
    for row in pre_rows:
        by_seed[row["seed"]].append(row)
    out: dict[str, list[Row]] = {"random (untrained)": [], "MLE-pretrained start": []}
    for rows in by_seed.values():
        rows = sorted(rows, key=lambda r: r["step"])
        out["random (untrained)"].append(rows[0])
        out["MLE-pretrained start"].append(rows[-1])
    return out


def aggregate_by_agent(
    rows: Iterable[Row], metrics: Sequence[str]
) -> dict[str, dict[str, Aggregate]]:
    """IQM and CI of each metric over seeds, per agent (metrics missing for an agent are left out)."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for metric in metrics:
            if _finite(row.get(metric)):
                values[row["agent"]][metric].append(float(row[metric]))
    return {
        agent: {m: aggregate(v) for m, v in per_metric.items()}
        for agent, per_metric in values.items()
    }


def improvement_over_baseline(
    rows: Iterable[Row], metrics: Sequence[str], baseline: str = BASELINE
) -> dict[str, dict[str, float]]:
    """P(variant better than the baseline) per agent and metric, from final checkpoints."""
    values: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for metric in metrics:
            if _finite(row.get(metric)):
                values[row["agent"]][metric].append(float(row[metric]))
    if baseline not in values:
        return {}
    out: dict[str, dict[str, float]] = {}
    for agent, per_metric in values.items():
        if agent == baseline:
            continue
        out[agent] = {
            m: probability_of_improvement(v, values[baseline][m], higher_is_better(m))
            for m, v in per_metric.items()
            if values[baseline].get(m)
        }
    return out


def _table(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def final_table(pre_rows: Sequence[Row], cell_rows: Sequence[Row], metrics: Sequence[str]) -> str:
    """Markdown table of the final checkpoints: IQM [95% CI] per agent and metric.

    The first rows are the untrained and the MLE-pretrained generator (from pretraining).
    """
    finals = final_rows(cell_rows)
    present = [m for m in metrics if any(_finite(r.get(m)) for r in [*finals, *pre_rows])]
    aggs = aggregate_by_agent(finals, [*present, "step", "wall_time"])
    refs = aggregate_by_agent(
        [{**r, "agent": name} for name, rs in reference_rows(pre_rows).items() for r in rs], present
    )
    header = [
        "agent",
        *[metric_label(m) + (" ↑" if higher_is_better(m) else " ↓") for m in present],
    ]
    header += ["generator updates", "wall time (s)", "seeds"]
    seeds = seeds_by_agent(finals)
    n_pre = len({r["seed"] for r in pre_rows})
    body = []
    for name, per in refs.items():
        cells = [per[m].format() if m in per else "" for m in present]
        body.append([f"*{name}*", *cells, "", "", str(n_pre)])
    for agent in _agents_in_order(finals):
        per = aggs[agent]
        body.append(
            [agent, *[per[m].format() if m in per else "" for m in present]]
            + [
                f"{per['step'].iqm:.0f}" if "step" in per else "",
                per["wall_time"].format(1) if "wall_time" in per else "",
                str(len(seeds[agent])),
            ]
        )
    return _table(header, body)


def seeds_by_agent(rows: Iterable[Row]) -> dict[str, set[int]]:
    """The seeds each agent has rows for: a resumed or partial bench may cover fewer for some."""
    seeds: dict[str, set[int]] = defaultdict(set)
    for row in rows:
        seeds[row["agent"]].add(int(row["seed"]))
    return dict(seeds)


def seed_sentence(finals: Sequence[Row], pre_rows: Sequence[Row]) -> str:
    """``IQM over N seed(s)``, or which seeds each variant has when they differ (never one N
    for rows whose IQMs cover different numbers of runs)."""
    per_agent = seeds_by_agent(finals)
    counts = {len(s) for s in per_agent.values()}
    if len(counts) > 1:
        listed = "; ".join(
            f"`{a}` {', '.join(map(str, sorted(per_agent[a])))}" for a in _agents_in_order(finals)
        )
        return f"IQM over each row's seeds (not every variant has finished every seed: {listed})"
    n_seeds = counts.pop() if counts else len({r["seed"] for r in pre_rows})
    return f"IQM over {n_seeds} seed(s)"


def summary_markdown(
    config: dict[str, Any],
    pre_rows: Sequence[Row],
    cell_rows: Sequence[Row],
    metrics: Sequence[str],
    sweep_pairs: Sequence[tuple[str, str]] = (),
) -> str:
    """The text of summary.md."""
    finals = final_rows(cell_rows)
    present = [m for m in metrics if any(_finite(r.get(m)) for r in [*finals, *pre_rows])]
    main = final_table(pre_rows, cell_rows, metrics)

    parts = [f"# Bench summary: {config.get('env', '?')}", ""]
    notes = config.get("notes")
    if notes:
        parts += [f"- {note}" for note in notes] + [""]
    parts += [
        f"Final checkpoint of each run; {seed_sentence(finals, pre_rows)} with a 95% "
        "stratified-bootstrap "
        "CI in brackets (↑ higher is better, ↓ lower is better; Self-BLEU ↓ means more diverse). "
        "The first rows are the generator before any training and after MLE pretraining, "
        "the common starting point of every variant.",
        "",
        main,
        "",
    ]
    improve = improvement_over_baseline(finals, present)
    if improve:
        agents = list(improve)
        parts += [
            f"## Probability of improving on `{BASELINE}`",
            "",
            "P(a run of the variant scores better than a run of MLE with the same budget), "
            "from the Mann-Whitney U statistic; 0.5 means no difference.",
            "",
            _table(
                ["agent", *[metric_label(m) for m in present]],
                [
                    [a, *[f"{improve[a][m]:.2f}" if m in improve[a] else "" for m in present]]
                    for a in agents
                ],
            ),
            "",
        ]
    sweep = [r for r in cell_rows if r.get("phase") == "sweep"]
    for quality, diversity in sweep_pairs:
        table = _sweep_table(sweep, quality, diversity)
        if table:
            parts += [
                f"## Quality–diversity: {metric_label(quality)} vs {metric_label(diversity)}",
                "",
                "After training, each variant sampled at each temperature; cells are IQM over seeds "
                f"of `{metric_label(quality)} / {metric_label(diversity)}`.",
                "",
                table,
                "",
            ]
    parts += [
        "Files: `results.csv` (every checkpoint), `sweep.csv` (temperature sweep), "
        "`learning_curves.png`, `quality_diversity*.png`, `config.json`.",
        "",
    ]
    return "\n".join(parts)


def _sweep_table(sweep: Sequence[Row], quality: str, diversity: str) -> str:
    cells: dict[str, dict[float, tuple[list[float], list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: ([], []))
    )
    for row in sweep:
        if _finite(row.get(quality)) and _finite(row.get(diversity)):
            q, d = cells[row["agent"]][float(row["temperature"])]
            q.append(float(row[quality]))
            d.append(float(row[diversity]))
    if not cells:
        return ""
    temps = sorted({t for per in cells.values() for t in per})
    body = []
    for agent, per in cells.items():
        body.append(
            [agent]
            + [
                f"{aggregate(per[t][0]).iqm:.3f} / {aggregate(per[t][1]).iqm:.3f}"
                if t in per
                else ""
                for t in temps
            ]
        )
    return _table(["agent", *[f"t={t:g}" for t in temps]], body)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(rows: Sequence[Row], metrics: Sequence[str], path: Path) -> Path | None:
    """One panel per metric: IQM over seeds against generator updates, 95% CI band."""
    train = [r for r in rows if r.get("phase") == "train"]
    colors = {a: f"C{i}" for i, a in enumerate(_agents_in_order(train))}
    metrics = [m for m in metrics if any(_finite(r.get(m)) for r in train)]
    if not metrics:
        return None
    plt = _plt()
    cols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.6 * nrows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics, strict=False):
        for agent in _agents_in_order(train):
            by_step: dict[float, list[float]] = defaultdict(list)
            for r in train:
                if r["agent"] == agent and _finite(r.get(metric)):
                    by_step[float(r["step"])].append(float(r[metric]))
            if not by_step:
                continue
            steps = sorted(by_step)
            aggs = [aggregate(by_step[s]) for s in steps]
            ax.plot(
                steps, [a.iqm for a in aggs], marker="o", ms=3, label=agent, color=colors[agent]
            )
            ax.fill_between(
                steps, [a.low for a in aggs], [a.high for a in aggs], color=colors[agent], alpha=0.2
            )
        ax.set_xlabel("generator updates")
        ax.set_ylabel(metric_label(metric))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(metrics) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], color=c, marker="o", ms=3, label=a) for a, c in colors.items()]
    axes.flat[0].legend(handles=handles, fontsize=8)
    fig.suptitle("Learning curves (IQM over seeds, 95% bootstrap CI)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_quality_diversity(
    rows: Sequence[Row], quality: str, diversity: str, path: Path
) -> Path | None:
    """Each variant's temperature sweep as a curve: quality on x, diversity on y (IQM, CI bars)."""
    sweep = [
        r
        for r in rows
        if r.get("phase") == "sweep" and _finite(r.get(quality)) and _finite(r.get(diversity))
    ]
    if not sweep:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    for agent in _agents_in_order(sweep):
        by_t: dict[float, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
        for r in sweep:
            if r["agent"] == agent:
                by_t[float(r["temperature"])][0].append(float(r[quality]))
                by_t[float(r["temperature"])][1].append(float(r[diversity]))
        temps = sorted(by_t)
        q = [aggregate(by_t[t][0]) for t in temps]
        d = [aggregate(by_t[t][1]) for t in temps]
        xs, ys = np.array([a.iqm for a in q]), np.array([a.iqm for a in d])
        xerr = np.array([[a.iqm - a.low for a in q], [a.high - a.iqm for a in q]])
        yerr = np.array([[a.iqm - a.low for a in d], [a.high - a.iqm for a in d]])
        line = ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, marker="o", ms=4, capsize=2, label=agent)
        for x, y, t in zip(xs, ys, temps, strict=True):
            ax.annotate(
                f"{t:g}",
                (x, y),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color=line[0].get_color(),
            )
    arrow_q = "→ better" if higher_is_better(quality) else "← better"
    arrow_d = "↑ better" if higher_is_better(diversity) else "↓ better"
    ax.set_xlabel(f"{metric_label(quality)} (quality, {arrow_q})")
    ax.set_ylabel(f"{metric_label(diversity)} (diversity, {arrow_d})")
    ax.set_title("Quality–diversity over sampling temperature (labels: t)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(
    out_dir: Path,
    config: dict[str, Any],
    pre_rows: Sequence[Row],
    cell_rows: Sequence[Row],
    metrics: Sequence[str],
    curve_metrics: Sequence[str],
    sweep_pairs: Sequence[tuple[str, str]],
    print_metrics: Sequence[str] | None = None,
) -> str:
    """Write every output file; return the final-checkpoint table of ``print_metrics`` (for printing)."""
    out_dir = Path(out_dir)
    train = [r for r in cell_rows if r.get("phase") == "train"]
    sweep = [r for r in cell_rows if r.get("phase") == "sweep"]
    write_csv(train, out_dir / "results.csv")
    write_csv(sweep, out_dir / "sweep.csv")
    write_csv(list(pre_rows), out_dir / "pretrain.csv")
    text = summary_markdown(config, pre_rows, cell_rows, metrics, sweep_pairs)
    (out_dir / "summary.md").write_text(text)
    main = final_table(pre_rows, cell_rows, metrics if print_metrics is None else print_metrics)
    plot_learning_curves(train, curve_metrics, out_dir / "learning_curves.png")
    for quality, diversity in sweep_pairs:
        plot_quality_diversity(
            sweep, quality, diversity, out_dir / f"quality_diversity_{quality}_{diversity}.png"
        )
    return main
