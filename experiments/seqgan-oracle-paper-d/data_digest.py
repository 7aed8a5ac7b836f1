"""Draw a seed's task data here and compare them with what its committed MLE start was trained on.

python experiments/seqgan-oracle-paper-d/data_digest.py 2 [--save FILE]
ATEN_CPU_CAPABILITY=avx2 python experiments/seqgan-oracle-paper-d/data_digest.py 2 --save FILE2
python experiments/seqgan-oracle-paper-d/data_digest.py --diff FILE FILE2
"""

import argparse
import json
from pathlib import Path

import torch

from agents.bench import runners
from agents.bench.presets import BenchConfig
from agents.mle import cpu_capability, load_mle_checkpoint
from agents.runtime import token_digest
from agents.setup import load_data

HERE = Path(__file__).resolve().parent

parser = argparse.ArgumentParser()
parser.add_argument("seed", type=int, nargs="?")
parser.add_argument("--save")
parser.add_argument("--diff", nargs=2)
args = parser.parse_args()
if args.diff:
    a, b = (torch.load(f, weights_only=True) for f in args.diff)
    for key in a:
        rows = (a[key] != b[key]).any(1)
        print(
            f"{key}: {int(rows.sum())} of {len(rows)} sequences differ ({int((a[key] != b[key]).sum())} tokens)"
        )
else:
    cfg = BenchConfig(**json.loads((HERE / "config.json").read_text()))
    data = load_data(runners._common_config(cfg, args.seed, HERE), warn=False)
    _, state = load_mle_checkpoint(HERE / "pretrained" / f"seed{args.seed}.pt", device="cpu")
    print(
        f"ATen {cpu_capability()}: drawn {token_digest(data.real)}, checkpoint {state['data_digest']}"
    )
    if args.save:
        torch.save({"real": data.real, "valid": data.valid}, args.save)
