"""The agent registry: one entry makes an agent known to `textgan train`, `textgan bench` and the help."""

from __future__ import annotations

import dataclasses
import inspect
import sys
import textwrap
from pathlib import Path

import pytest

from agents import cli, registry
from agents import train as train_cli
from agents.bench import runners
from agents.registry import AGENTS, AgentSpec, agent_spec


@pytest.mark.parametrize("name", list(AGENTS))
def test_every_entry_loads_a_dataclass_config_and_a_train_function(name: str) -> None:
    spec = AGENTS[name]
    assert dataclasses.is_dataclass(spec.config_class())
    if spec.train is None:
        with pytest.raises(ValueError, match="only in `textgan bench`"):
            spec.train_fn()
    else:
        assert list(inspect.signature(spec.train_fn()).parameters)[:2] == ["cfg", "resume"]


def test_the_commands_read_their_agent_lists_from_the_registry(capsys) -> None:
    assert cli.main(["--help"]) == 0
    top = capsys.readouterr().out
    with pytest.raises(SystemExit):
        train_cli.main(["--help"])
    train_help = capsys.readouterr().out
    for name, spec in AGENTS.items():
        assert (name in train_help) == (spec.train is not None)
        assert name in top
        assert (name in runners.known_agents()) == (spec.bench is not None)
    assert "maskgan" not in runners.known_agents() and "ppo" not in registry.train_agents()


def test_unknown_and_broken_agents_fail_with_their_names(monkeypatch) -> None:
    with pytest.raises(ValueError, match="unknown agent 'seqgan2'; known agents: mle"):
        agent_spec("seqgan2")
    monkeypatch.setitem(AGENTS, "ghost", AgentSpec("ghost", "agents.no_such_module", "C", "x"))
    with pytest.raises(ValueError, match="agent 'ghost' is not available"):
        runners.check_agents(["ghost"])
    monkeypatch.setitem(AGENTS, "hollow", AgentSpec("hollow", "agents.registry", "NoConfig", "x"))
    with pytest.raises(ValueError, match="agents.registry lacks NoConfig, train"):
        AGENTS["hollow"].config_class()


def test_a_new_agent_is_one_file_plus_one_registry_line(tmp_path: Path, monkeypatch) -> None:
    """A toy agent module and its spec: `textgan train` resolves, configures and runs it."""
    (tmp_path / "toy_agent.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass
            from agents.setup import CommonConfig

            CALLS = []

            @dataclass
            class ToyConfig(CommonConfig):
                boost: float = 1.0

            def train(cfg, resume=False):
                CALLS.append((cfg.boost, cfg.out_dir, resume))
                return {"boost": float(cfg.boost)}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(AGENTS, "toy", AgentSpec("toy", "toy_agent", "ToyConfig", "a toy"))
    out = tmp_path / "run"
    assert train_cli.main(["--agent", "toy", "--out", str(out), "--set", "boost=2.5"]) == 0
    assert sys.modules["toy_agent"].CALLS == [(2.5, str(out), False)]
    assert train_cli.main(["--agent", "toy", "--set", "boost=2.5", "--set", "nope=1"]) == 2
    runners.check_agents(["toy"])  # benchable ("agent" kind by default)
