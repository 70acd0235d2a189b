"""Settings: one dataclass per concept holds every default; everything else derives from it.

A settings dataclass (``TrainConfig``, ``WGANConfig``) is the only place a default is
written. Around it:

- a **preset** is a *partial* mapping of field values (for example the Corel-5k reference
  recipe); :func:`build` merges it *before* the user's values, so a value the user sets
  always wins, even when it equals the dataclass default;
- the **command line** is generated from the dataclass (:func:`add_arguments`): one option
  per field, its type, choices and help taken from the field, and only the options the user
  actually typed reach :func:`build` (:func:`given`);
- a **notebook** takes ``preset`` and an ``overrides`` mapping in its parameters cell, which
  go through the same :func:`build`.

Field metadata (:func:`setting`): ``help``, ``choices`` and ``cli=False`` for fields that
have no command-line option.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import numbers
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import yaml

from lib.core.errors import SettingsError

T = TypeVar("T")


class ConfigError(SettingsError):
    """A setting that is unknown, of the wrong type or out of range; names the setting."""


def setting(default: Any = dataclasses.MISSING, *, help: str = "",  # noqa: A002
            choices: tuple | Callable[[], tuple] | None = None, cli: bool = True,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with the metadata :func:`add_arguments` reads. ``choices`` may be
    a function returning them, read at each use (a registry that can grow: lib.method.heads)."""
    meta = {"help": help, "choices": choices, "cli": cli}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def choices_of(f: dataclasses.Field) -> tuple | None:
    """The declared choices of a field (a function's result when it is one)."""
    allowed = f.metadata.get("choices")
    return tuple(allowed()) if callable(allowed) else allowed


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    """``X | None`` -> ``(X, True)``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def coerce(cls: type, name: str, value: Any) -> Any:
    """``value`` converted to field ``name``'s type (lists from YAML or JSON become tuples;
    ints become floats for float fields); :class:`ConfigError` when it cannot be."""
    tp, optional = _unwrap_optional(_hints(cls)[name])
    where = f"{cls.__name__}.{name}"
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: may not be None")
    origin = typing.get_origin(tp)
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("x", " ").replace(",", " ").split() if v]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item_types = [a for a in typing.get_args(tp) if a is not Ellipsis]
        if Ellipsis not in typing.get_args(tp) and len(item_types) != len(value):
            raise ConfigError(f"{where}: expected {len(item_types)} values, got {value!r}")
        item = item_types[0] if item_types else float
        return tuple(_scalar(item, v, where) for v in value)
    return _scalar(tp, value, where)


def _scalar(tp: Any, value: Any, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            out = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if not math.isfinite(out):
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        return out
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


OVERRIDES_FORM = ("""overrides must be a mapping of settings, e.g. """
                  """papermill -p overrides '{"epochs": 1}' (JSON or YAML text), """
                  """-y 'overrides: {epochs: 1}', or overrides = {"epochs": 1} in the notebook""")


def parse_overrides(value: Any, where: str = "") -> dict[str, Any]:
    """The ``overrides`` of a notebook or parameter set as a dict: a mapping as it is, ``None``
    or an empty string as ``{}``, a string as JSON or YAML text of a mapping (what
    ``papermill -p overrides '{"epochs": 1}'`` passes); anything else is a
    :class:`ConfigError` showing the accepted forms."""
    prefix = f"{where}: " if where else ""
    if value is None:
        return {}
    if isinstance(value, str):

        text = value.strip()
        if not text:
            return {}
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ConfigError(f"{prefix}overrides {text!r} is not JSON/YAML text{at}; "
                              f"{OVERRIDES_FORM}") from None
        if value is None:
            return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{prefix}overrides is a {type(value).__name__} ({value!r}); "
                          f"{OVERRIDES_FORM}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise ConfigError(f"{prefix}overrides keys must be setting names, got {bad!r}; "
                          f"{OVERRIDES_FORM}")
    return dict(value)


def build(cls: type[T], presets: Mapping[str, Mapping[str, Any]] | None = None,
          preset: str | None = None, overrides: Mapping[str, Any] | None = None,
          *, where: str = "") -> T:
    """``cls`` from its defaults, then preset ``preset`` (a partial mapping), then
    ``overrides``: the user's values always win, even when equal to a default."""
    presets = presets or {}
    overrides = parse_overrides(overrides, where)
    prefix = f"{where}: " if where else ""
    if preset is not None and preset not in presets:
        raise ConfigError(f"{prefix}unknown preset {preset!r} (known: {sorted(presets)})")
    known = set(field_names(cls))
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"{prefix}unknown {cls.__name__} settings {unknown} "
                          f"(known: {sorted(known)})")
    values = {**(presets[preset] if preset is not None else {}), **overrides}
    values = {k: coerce(cls, k, v) for k, v in values.items()}
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


def add_arguments(parser: argparse.ArgumentParser, cls: type, *,
                  skip: tuple[str, ...] = ()) -> None:
    """One ``--option`` per field of ``cls`` (``cli=False`` and ``skip`` fields left out).

    Options default to ``argparse.SUPPRESS``: :func:`given` then holds exactly what the user
    typed, and the help shows the dataclass default."""
    defaults = cls()
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("cli", True) or f.name in skip:
            continue
        option = "--" + f.name.replace("_", "-")
        tp, optional = _unwrap_optional(hints[f.name])
        default = getattr(defaults, f.name)
        shown = f"default: {default}" if not isinstance(default, tuple) else \
            "default: " + " ".join(map(str, default))
        help_ = f"{f.metadata.get('help') or f.name} ({shown})"
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": help_}
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) is tuple:
            args = [a for a in typing.get_args(tp) if a is not Ellipsis]
            kwargs["nargs"] = "+" if Ellipsis in typing.get_args(tp) else len(args)
            kwargs["type"] = _cli_type(args[0] if args else float, False)
            kwargs["metavar"] = f.name.upper()
        else:
            kwargs["type"] = _cli_type(tp, optional)
            if choices_of(f):
                kwargs["choices"] = choices_of(f)
        parser.add_argument(option, **kwargs)


def _cli_type(tp: Any, optional: bool):
    base = {int: int, float: float}.get(tp, str)

    def parse(text: str):
        if optional and text.lower() in ("none", "null"):
            return None
        return base(text)

    parse.__name__ = base.__name__  # argparse names the type in its error messages
    return parse


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` the user set on the command line."""
    ns = vars(args)
    return {name: ns[name] for name in field_names(cls) if name in ns}


def to_dict(obj: Any) -> dict[str, Any]:
    """A settings dataclass as JSON-ready values (tuples as lists)."""
    out = dataclasses.asdict(obj)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def check_choice(obj: Any, name: str) -> None:
    """:class:`ConfigError` when field ``name`` is not one of its declared choices."""
    f = next(f for f in dataclasses.fields(obj) if f.name == name)
    allowed = choices_of(f)
    value = getattr(obj, name)
    if allowed and value not in allowed:
        raise ConfigError(f"{type(obj).__name__}.{name}={value!r}; expected one of "
                          f"{', '.join(map(str, allowed))}")


def check_range(obj: Any, name: str, low: float | None = None, high: float | None = None,
                *, low_open: bool = False, high_open: bool = False) -> None:
    """:class:`ConfigError` when numeric field ``name`` is outside [low, high] (or open)."""
    value = getattr(obj, name)
    where = f"{type(obj).__name__}.{name}"
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be finite, got {value}")
    bad = (low is not None and (value <= low if low_open else value < low)) or \
          (high is not None and (value >= high if high_open else value > high))
    if bad:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ConfigError(f"{where} must be in {lo}{low if low is not None else '-inf'}, "
                          f"{high if high is not None else 'inf'}{hi}, got {value}")


# --------------------------------------------------------------------------- values read from files


def _where(name: str, where: str | None) -> str:
    return f"{where}: {name}" if where else name


def check_value_range(name: str, value: Any, low: float | None = None,
                      high: float | None = None, *, low_open: bool = False,
                      high_open: bool = False, where: str | None = None):
    """``value`` if it is a finite real number (not a bool) within ``[low, high]``
    (``low_open``/``high_open`` exclude an end; ``None`` leaves a side unbounded); else
    :class:`SettingsError` naming ``where`` (a file, a command) and ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise SettingsError(f"{_where(name, where)} must be a number, got {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise SettingsError(f"{_where(name, where)} must be a finite number, got {value!r}")
    below = low is not None and (x <= low if low_open else x < low)
    above = high is not None and (x >= high if high_open else x > high)
    if below or above:
        lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
        hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        raise SettingsError(f"{_where(name, where)} must be in {lo}, {hi}, got {value!r}")
    return value


def check_probability(name: str, value: Any, where: str | None = None):
    """``value`` if it is a finite number in [0, 1]; else :class:`SettingsError`."""
    return check_value_range(name, value, 0.0, 1.0, where=where)
