"""The import rules of docs/architecture.md, checked on every module's parsed imports.

Every ``import`` / ``from ... import`` statement counts, wherever it sits (module level, inside
a function, under ``TYPE_CHECKING``); relative imports are resolved against the module's
package. A violation names the file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("textgan_envs", "agents", "image_samplers")


class Rule(NamedTuple):
    """Modules under ``owner`` may not import modules under ``forbidden`` (except ``allowed``)."""

    owner: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    why: str = ""


RULES = (
    Rule(
        "textgan_envs",
        ("agents", "image_samplers"),
        why="the environments stand alone: agents and image samplers build on them",
    ),
    Rule(
        "agents.runtime",
        ("agents", "image_samplers"),
        allowed=("agents.runtime",),
        why="the run layer knows no agent, so every trainer can share it",
    ),
    Rule(
        "image_samplers",
        ("agents",),
        allowed=("agents.runtime",),
        why="the image modules share the run layer and nothing else of the text agents",
    ),
    Rule(
        "agents",
        ("image_samplers",),
        why="the text agents never depend on the image modules",
    ),
)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(path: Path, root: Path) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import statement in ``path``.

    ``from package import name`` counts as importing ``package.name`` when that is a module
    of the tree, else as importing ``package``.
    """
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                target = ".".join([*parts, node.module] if node.module else parts)
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.append((node.lineno, sub if _is_module(root, sub) else target))
    return found


def violations(root: Path, rules: tuple[Rule, ...] = RULES) -> list[str]:
    """Every import in the packages under ``root`` that breaks one of ``rules``."""
    out = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            owner = module_name(path, root)
            for line, target in imported_modules(path, root):
                for rule in rules:
                    if not _within(owner, rule.owner):
                        continue
                    if not any(_within(target, f) for f in rule.forbidden):
                        continue
                    if any(_within(target, a) for a in (*rule.allowed, rule.owner)):
                        continue
                    out.append(
                        f"{path.relative_to(root)}:{line}: {owner} imports {target} "
                        f"({rule.owner} may not import {' or '.join(rule.forbidden)}: {rule.why})"
                    )
    return out


def test_every_module_follows_the_import_rules() -> None:
    found = violations(ROOT)
    assert not found, "import rules of docs/architecture.md broken:\n" + "\n".join(found)


def test_a_violation_is_reported_with_file_line_and_rule(tmp_path: Path) -> None:
    files = {
        "textgan_envs/__init__.py": "",
        "textgan_envs/env.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from image_samplers import data\n"
        ),
        "agents/__init__.py": "",
        "agents/loop.py": "from agents.runtime import seed_stream\n",
        "agents/runtime/__init__.py": "",
        "agents/runtime/seeding.py": "",
        "agents/runtime/bad.py": (
            "from agents.runtime import seeding\nfrom . import seeding as s\n\n\n"
            "def f():\n    from .. import loop\n"
        ),
        "image_samplers/__init__.py": "",
        "image_samplers/data.py": "",
        "image_samplers/sampler.py": (
            "from agents import runtime\nfrom agents.runtime.seeding import seed_stream\n"
            "import agents.loop\n"
        ),
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    found = violations(tmp_path)
    assert [line.split(" (")[0] for line in found] == [
        "textgan_envs/env.py:3: textgan_envs.env imports image_samplers.data",
        "agents/runtime/bad.py:6: agents.runtime.bad imports agents.loop",
        "image_samplers/sampler.py:3: image_samplers.sampler imports agents.loop",
    ]
    assert found[1].endswith(
        "(agents.runtime may not import agents or image_samplers: "
        "the run layer knows no agent, so every trainer can share it)"
    )
