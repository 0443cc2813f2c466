"""Typed parameter specs: each config group is read once, at the stage boundary, into a frozen
dataclass. Defaults live in `conf/` only: a spec field has no default unless the YAML may omit
the key, so a key missing from params.yaml is an error that names the conf file, not a silent
second default in the code. Unknown keys are errors too (a typo in conf/ fails at once).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A parameter group does not fit its spec; the message names the conf file and the fix."""


def section(params: Mapping[str, Any], *path: str, where: str | None = None) -> Mapping[str, Any]:
    """params[path[0]][path[1]]...; a missing key raises ConfigError naming `where`."""
    node: Any = params
    for depth, key in enumerate(path):
        if not isinstance(node, Mapping) or key not in node:
            dotted = ".".join(path[: depth + 1])
            raise ConfigError(
                f"params.yaml has no `{dotted}`; it comes from {where or 'conf/'} "
                "(recompose with `midilm params compose`)"
            )
        node = node[key]
    if not isinstance(node, Mapping):
        raise ConfigError(f"params `{'.'.join(path)}` must be a mapping ({where or 'conf/'})")
    return node


def from_mapping(cls: type[T], cfg: Mapping[str, Any], where: str, **extra: Any) -> T:
    """Build dataclass `cls` from `cfg` (+ `extra`), coercing each value to its field's type.

    Every field without a default must be present; keys that are not fields are refused.
    `where` names the conf file or group for the error message (e.g. `conf/train/default.yaml`).
    """
    values = {**dict(cfg), **extra}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(fields)}"
        )
    missing = [
        name
        for name, f in fields.items()
        if f.init
        and name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing} ({cls.__name__})")
    hints = _hints(cls)
    kwargs = {}
    for name, value in values.items():
        try:
            kwargs[name] = coerce(value, hints[name])
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: `{name}`: {exc}") from None
    return cls(**kwargs)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce(value: Any, hint: Any) -> Any:
    """`value` as type `hint` (int, float, str, bool, X | None, tuple[...], list[...], dict,
    Literal, a nested spec dataclass, Any); YAML's 1e-3 strings and ints-as-floats are accepted."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(value, option)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{value!r} is not one of {list(args)}")
        return value
    if value is None:
        raise ValueError(f"null where {_name(hint)} is required")
    if origin in (tuple, list):
        if isinstance(value, str | bytes) or not isinstance(value, typing.Iterable):
            raise TypeError(f"expected a list, got {value!r}")
        items = list(value)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                raise ValueError(f"expected {len(args)} values, got {len(items)}")
            return tuple(coerce(v, a) for v, a in zip(items, args, strict=True))
        item = args[0] if args else Any
        converted = [coerce(v, item) for v in items]
        return tuple(converted) if origin is tuple else converted
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"expected a mapping for {hint.__name__}, got {value!r}")
        return from_mapping(hint, value, hint.__name__)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise TypeError(f"expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"expected an integer, got {value!r}")
        number = float(value)
        if not number.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(number)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise TypeError(f"expected text, got {value!r}")
        return str(value)
    return value


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", str(hint))


def as_dict(spec: Any) -> dict[str, Any]:
    """A spec as plain data (for JSON, hashing and trackers)."""
    return dataclasses.asdict(spec)
