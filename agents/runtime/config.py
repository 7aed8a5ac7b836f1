"""Dataclass configs from a JSON file plus ``--set key=value`` overrides, checked before any work.

Why one loader: every agent's config is a flat ``@dataclass`` whose field annotations are the
schema. A typo'd key, a string where a number belongs or a negative count must fail at start-up
with the key named, not after an hour of pre-training. Precedence: dataclass defaults < JSON file
< ``--set`` overrides (applied left to right).

Rules:

* unknown keys are rejected (with the closest valid names suggested);
* values must match the annotation: ``int`` (not ``bool``), ``float`` (an ``int`` is widened),
  ``bool``, ``str``, ``Literal[...]`` (one of the listed values), ``X | None``, ``tuple[X, ...]``, ``dict`` (a JSON object);
* every ``int`` field must be ``>= 0`` (counts, sizes, seeds); a field may ask for more with
  ``metadata={"min": 1}`` or allow negatives with ``metadata={"min": None}``;
* float fields honour ``metadata={"min": a, "max": b}`` (inclusive);
* finally the config's own ``validate()`` method, if it has one, checks cross-field rules.

``--set`` values are parsed as JSON when they parse (``1e-2``, ``true``, ``null``, ``[1,2]``) and
taken as plain strings otherwise, so ``--set device=cpu`` needs no quotes.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


class ConfigError(ValueError):
    """A config key is unknown, has the wrong type, or is out of range."""


def parse_override(text: str) -> tuple[str, Any]:
    """``"key=value"`` -> ``(key, value)`` with the value JSON-decoded when possible."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against annotation ``tp``; return it (ints widened to float, lists to tuples)."""
    origin = get_origin(tp)
    if origin is Union or (hasattr(types, "UnionType") and origin is types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(f"config key {key!r}: {value!r} does not match {_type_name(tp)}")
    if origin is Literal:
        allowed = get_args(tp)
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ConfigError(
                f"config key {key!r}: {value!r} is not one of {', '.join(repr(a) for a in allowed)}"
            )
        return value
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r}: expected a list, got {value!r}")
        args = get_args(tp)
        item_tp = args[0] if args else Any
        items = [_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is dict or origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key {key!r}: expected a JSON object, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key!r}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key!r}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"config key {key!r}: expected a number, got {value!r}")
        if not math.isfinite(float(value)):
            raise ConfigError(f"config key {key!r}: expected a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key!r}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"config key {key!r}: unsupported annotation {_type_name(tp)}")


def _check_range(field: dataclasses.Field, value: Any, tp: Any) -> None:
    if value is None or isinstance(value, bool):
        return
    meta = field.metadata
    if isinstance(value, int) and (tp is int or int in get_args(tp)):
        low = meta.get("min", 0)
        if low is not None and value < low:
            what = "a negative count" if value < 0 <= low else "below its minimum"
            raise ConfigError(f"config key {field.name!r}: {value} is {what} (must be >= {low})")
    if isinstance(value, (int, float)):
        low, high = meta.get("min"), meta.get("max")
        if low is not None and value < low:
            raise ConfigError(f"config key {field.name!r}: {value} is below its minimum {low}")
        if high is not None and value > high:
            raise ConfigError(f"config key {field.name!r}: {value} is above its maximum {high}")


def build_config(
    cls: type[T],
    values: Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> T:
    """Make ``cls`` from defaults, then ``values`` (e.g. a JSON file), then ``key=value`` overrides."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    merged: dict[str, Any] = {}
    pairs = list((values or {}).items()) + [parse_override(o) for o in overrides]
    for key, value in pairs:
        if key not in fields:
            close = difflib.get_close_matches(key, fields, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r} for {cls.__name__}{hint}")
        merged[key] = _coerce(key, value, hints[key])
    cfg = cls(**merged)
    for name, field in fields.items():
        _check_range(field, getattr(cfg, name), hints[name])
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError:
            raise
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    return cfg


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> T:
    """Read a JSON object from ``path`` (if given), merge ``extra`` then ``overrides``, and build ``cls``."""
    values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} does not exist") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path} must hold a JSON object, not {type(loaded).__name__}"
            )
        values.update(loaded)
    values.update(extra or {})
    return build_config(cls, values, overrides)


def check_field_types(cfg: Any) -> None:
    """Refuse a dataclass instance whose values do not match their annotations (as :func:`build_config` does).

    For configs built directly (``BEGANConfig(steps=2.5)``) rather than through the loader:
    ``2.5`` or ``True`` for an ``int``, a string for a number, ... raise :class:`ConfigError`
    naming ``Class.field`` and the value. Only types are checked, no ranges.
    """
    cls = type(cfg)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        try:
            _coerce(f.name, value, hints[f.name])
        except ConfigError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise ConfigError(f"{cls.__name__}.{f.name}={value!r}: {reason}") from None


def config_fields(saved: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """The entries of a run's saved ``config.json`` that are fields of the dataclass ``cls``.

    ``config.json`` also holds ``"agent"`` and what a trainer records beside its config (where
    the data came from, the corpus's loading counts); rebuilding the config skips those.
    """
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return {k: v for k, v in saved.items() if k in names}


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
