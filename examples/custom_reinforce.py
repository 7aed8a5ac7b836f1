"""Your own agent on textgan's envs: REINFORCE with a baseline, CleanRL style, public API only.

python examples/custom_reinforce.py --updates 150 --vocab-size 50 --seq-len 8
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import gymnasium as gym
import torch
from torch import nn

import textgan_envs  # noqa: F401  (registers the textgan/ envs)
from textgan_envs.adversarial import AdversarialConfig, DiscriminatorTrainer
from textgan_envs.metrics import nll_oracle


@dataclass
class Args:
    vocab_size: int = 50
    seq_len: int = 8
    num_envs: int = 64  # episodes per update: one batch of the native vector env
    updates: int = 150
    lr: float = 5e-3
    baseline_decay: float = 0.9  # moving-average baseline of the reward
    d_pretrain: int = 20  # discriminator phases on the untrained policy's episodes
    d_every: int = 0  # then a phase every N updates on the newest episodes (0: D stays fixed)
    seed: int = 0


class Policy(nn.Module):
    """An LSTM over the last written token; id ``V`` (the env's "not yet written") starts."""

    def __init__(self, vocab_size: int, hidden: int = 32) -> None:
        super().__init__()
        self.embed, self.cell = nn.Embedding(vocab_size + 1, hidden), nn.LSTMCell(hidden, hidden)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, last_token, state):
        h, c = self.cell(self.embed(last_token), state)
        return torch.distributions.Categorical(logits=self.head(h)), (h, c)


def play(policy, envs, obs, args):
    """One episode per env row: (next obs, rewards, sum log pi, mean entropy, the sequences)."""
    rows, state = torch.arange(args.num_envs), None
    log_prob = entropy = 0.0
    for _ in range(args.seq_len):  # obs (B, T+1): tokens so far, V where unwritten, position
        position = obs[:, -1]
        last = torch.where(position > 0, obs[rows, (position - 1).clamp(min=0)], args.vocab_size)
        dist, state = policy(last, state)
        action = dist.sample()
        obs, reward, _, _, info = envs.step(action)  # the T-th step ends every episode
        log_prob, entropy = log_prob + dist.log_prob(action), entropy + dist.entropy()
    return obs, reward, log_prob, entropy.detach().mean() / args.seq_len, info["sequence"]


def train(args: Args) -> list[dict[str, float]]:
    torch.manual_seed(args.seed)
    envs = gym.make_vec("textgan/Oracle-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point",
                        vocab_size=args.vocab_size, seq_len=args.seq_len, discriminator="lstm", as_torch=True)  # fmt: skip
    env, policy = envs.unwrapped, Policy(args.vocab_size)
    trainer = DiscriminatorTrainer(env.discriminator, env.real_data, AdversarialConfig(update_every=1, d_steps=1))  # fmt: skip
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.lr)
    obs, _ = envs.reset(seed=args.seed)
    for _ in range(args.d_pretrain):
        with torch.no_grad():
            obs, *_, sequences = play(policy, envs, obs, args)
        trainer.observe(sequences)
    baseline, history = None, []
    for update in range(1, args.updates + 1):
        obs, reward, log_prob, entropy, sequences = play(policy, envs, obs, args)
        baseline = reward.mean() if baseline is None else baseline
        loss = -((reward - baseline) * log_prob).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        baseline = args.baseline_decay * baseline + (1 - args.baseline_decay) * reward.mean()
        if args.d_every and update % args.d_every == 0:
            trainer.observe(sequences)
        history.append({"update": update, "reward": float(reward.mean()), "entropy": float(entropy),
                        "nll_oracle": nll_oracle(env.real_data.oracle, sequences)})  # fmt: skip
        if update % 25 == 0 or update == args.updates:
            print(" ".join(f"{k}={v:.4g}" for k, v in history[-1].items()))
    return history


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name, default in vars(Args()).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    train(Args(**vars(parser.parse_args())))
