"""``textgan ppgn {train,sample,eval}``: train all PPGN parts, draw conditional samples, evaluate.

Examples::

    textgan ppgn train --data mnist:../shared/data --out runs/ppgn
    textgan ppgn sample --run runs/ppgn --class 3 --variant ppgn-h --steps 200 -n 16
    textgan ppgn sample --run runs/ppgn --condition even --variant noiseless-joint-ppgn-h
    textgan ppgn eval --run runs/ppgn --n-per-class 16 --steps 200
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

import torch

from agents.runtime import CheckpointError, RunDirError, RunFinished
from image_samplers.data import DataError, load_dataset, save_image_grid

from .conditions import ConditionError
from .config import PPGNConfig, tiny_config
from .sampler import PRESETS

CONDITIONS = ("class", "even", "odd", "thick", "thin")


def _parse_set(items: list[str]) -> dict[str, object]:
    """``--set key=value`` overrides for :class:`PPGNConfig` (values parsed as JSON when possible)."""
    known = {f.name: f for f in fields(PPGNConfig)}
    out: dict[str, object] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or key not in known:
            raise ValueError(
                f"--set expects KEY=VALUE with KEY one of {', '.join(known)}; got {item!r}"
            )
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="textgan ppgn", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser(
        "train", help="train C, G (DGN-AM, joint, noiseless joint), D, R(h), R(x)"
    )
    train.add_argument("--data", required=True, help="'digits' or 'mnist:DIR'")
    train.add_argument("--out", required=True, help="run directory")
    train.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    train.add_argument(
        "--tiny", action="store_true", help="seconds-scale models (tests, smoke runs)"
    )
    train.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override"
    )
    train.add_argument("--device", default="auto")
    train.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    train.add_argument("--tensorboard", action="store_true")
    train.add_argument("--no-progress", action="store_true")

    sample = sub.add_parser(
        "sample", help="run conditional chains; write a PNG grid and a chain PNG"
    )
    sample.add_argument("--run", required=True)
    sample.add_argument("--variant", default="noiseless-joint-ppgn-h", choices=list(PRESETS))
    sample.add_argument(
        "--class",
        dest="classes",
        type=int,
        action="append",
        default=None,
        help="target class (repeat for several; chains are split among them)",
    )
    sample.add_argument(
        "--condition",
        default="class",
        choices=CONDITIONS,
        help="class (default), even/odd (a set of classes), thick/thin strokes "
        "(a separately trained attribute network)",
    )
    sample.add_argument("-n", "--num", type=int, default=16, help="chains")
    sample.add_argument("--steps", type=int, default=None)
    sample.add_argument("--reset-every", type=int, default=None)
    sample.add_argument("--threshold", type=float, default=None)
    sample.add_argument("--step", choices=("plain", "normalized"), default=None)
    sample.add_argument("--eps1", type=float, default=None)
    sample.add_argument("--eps2", type=float, default=None)
    sample.add_argument("--eps3", type=float, default=None)
    sample.add_argument("--lr", type=float, default=None)
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", default=None, help="output directory (default <run>/samples)")
    sample.add_argument(
        "--data",
        default=None,
        help="data spec, for --condition thick/thin (default: the run's training data)",
    )
    sample.add_argument("--device", default="auto")

    ev = sub.add_parser("eval", help="all variants x all classes on a held-out evaluator")
    ev.add_argument("--run", required=True)
    ev.add_argument("--variants", default=",".join(PRESETS))
    ev.add_argument("--n-per-class", type=int, default=16)
    ev.add_argument("--steps", type=int, default=200)
    ev.add_argument("--mixing-steps", type=int, default=400)
    ev.add_argument("--reset-every", type=int, default=100)
    ev.add_argument("--evaluator-epochs", type=int, default=3)
    ev.add_argument("--data", default=None, help="data spec (default: the run's training data)")
    ev.add_argument("--out", default=None, help="directory for the JSON, Markdown table and PNGs")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", default="auto")
    ev.add_argument("--threads", type=int, default=0)
    return parser


def _train(args: argparse.Namespace) -> int:
    from .train import train_ppgn

    if args.threads:
        torch.set_num_threads(args.threads)
    base = tiny_config() if args.tiny else PPGNConfig()
    overrides = _parse_set(args.set)
    data_probe = load_dataset(args.data, int(overrides.get("image_size", base.image_size)))
    config = PPGNConfig.from_dict(
        {**base.to_dict(), "num_classes": data_probe.num_classes, **overrides}
    )
    try:
        train_ppgn(
            data_probe,
            args.out,
            config,
            device=args.device,
            resume=args.resume,
            progress=not args.no_progress,
            tensorboard=args.tensorboard,
            data_spec=args.data,
        )
    except RunFinished as exc:  # a resume with nothing left to do: nothing written
        print(f"textgan ppgn train: {exc}")
        return 0
    print(f"trained PPGN components into {args.out}")
    return 0


def _data_spec(args: argparse.Namespace) -> str:
    from .train import CHECKPOINT_NAME, read_checkpoint

    if args.data:
        return args.data
    spec = read_checkpoint(Path(args.run) / CHECKPOINT_NAME).get("data", "")
    if not spec:
        raise DataError("the run does not record its data; pass --data")
    return spec


def _sample(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .build import class_condition, make_sampler
    from .conditions import AttributeCondition, ClassSetCondition, train_thick_stroke_net
    from .sampler import preset
    from .train import load_run

    models = load_run(args.run, device=args.device)
    ncls = models.config.num_classes
    if args.num < 1:
        raise ValueError(f"-n must be >= 1, got {args.num}")
    if args.condition == "class":
        classes = args.classes if args.classes else [0]
        per_chain = torch.tensor(classes)[torch.arange(args.num) % len(classes)]
        condition = class_condition(models, per_chain)
        label = "class" + "-".join(str(c) for c in classes)
    elif args.condition in ("even", "odd"):
        wanted = [c for c in range(ncls) if c % 2 == (0 if args.condition == "even" else 1)]
        condition = ClassSetCondition(models.classifier, wanted, ncls)
        label = args.condition
    else:
        data = load_dataset(_data_spec(args), models.config.image_size)
        net, acc = train_thick_stroke_net(data.images, seed=args.seed, device=models.device)
        print(f"thick-stroke attribute network: training accuracy {acc:.3f}")
        condition = AttributeCondition(net, target=args.condition == "thick")
        label = args.condition
    overrides = {
        key: value
        for key, value in {
            "steps": args.steps,
            "reset_every": args.reset_every,
            "threshold": args.threshold,
            "step": args.step,
            "epsilon1": args.eps1,
            "epsilon2": args.eps2,
            "epsilon3": args.eps3,
            "lr": args.lr,
        }.items()
        if value is not None
    }
    config = preset(args.variant, **overrides)
    if config.save_every == 0 or config.save_every > config.steps // 8:
        config = replace(config, save_every=max(1, config.steps // 8))
    result = make_sampler(models, config, condition).run(args.num, seed=args.seed, progress=True)
    out = Path(args.out) if args.out else Path(args.run) / "samples"
    stem = f"{args.variant}_{label}"
    grid = save_image_grid(result.images, out / f"{stem}.png", nrow=min(args.num, 8))
    chain = save_image_grid(
        result.chain_images[:, 0], out / f"{stem}_chain.png", nrow=len(result.chain_steps)
    )
    p = result.log_p.exp()
    print(
        f"{args.variant}: mean p(condition) {p.mean():.3f}, min {p.min():.3f}; "
        f"kept {len(result.kept_images)} recorded samples with p >= {config.threshold}"
    )
    print(f"wrote {grid} and {chain} (chain 0 at steps {result.chain_steps})")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_run

    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in PRESETS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; choose from {', '.join(PRESETS)}")
    out = Path(args.out) if args.out else Path(args.run) / "eval"
    report = evaluate_run(
        args.run,
        _data_spec(args),
        variants,
        out,
        n_per_class=args.n_per_class,
        steps=args.steps,
        mixing_steps=args.mixing_steps,
        reset_every=args.reset_every,
        evaluator_epochs=args.evaluator_epochs,
        seed=args.seed,
        device=args.device,
    )
    print(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.command == "train":
            return _train(args)
        if args.command == "sample":
            return _sample(args)
        return _eval(args)
    except (
        CheckpointError,
        DataError,
        ConditionError,
        RunDirError,
        ValueError,
        FileExistsError,
    ) as exc:
        print(f"textgan ppgn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
