"""Config dataclasses to and from JSON, checked before anything is built.

    @dataclass
    class UNetConfig(ConfigMixin):
        channels: int = 320
        channel_mult: tuple[int, ...] = (1, 2)
        limits: ClassVar[dict] = {"channels": Range(8, 1024), "channel_mult": Range(1, 8, count=(1, 6))}

    UNetConfig.from_dict(read_config(d)["unet"]).to_dict()

`to_dict` gives JSON-ready values (tuples as lists, nested configs as dicts, paths as strings);
`from_dict` turns them back. A key the class does not have is an error naming the key and the
file (a typo must not silently fall back to a default); a key it lacks takes the field's default,
so configs saved before a field was added still load. Every field is checked against its type
hint and its `limits` entry when the object is made (by `from_dict`, a preset or a plain call),
so a config that asks for 2048 channels or a million blocks fails in one line instead of
allocating gigabytes first. Floats must be finite; an int field takes no float (1e7 in JSON is a
float). Relations between fields go in `check_relations`, which raises through `self.fail`.

`read_config`/`load_weights` return `ConfigDict`s, dicts that remember their file and key path,
which is how `from_dict` names the file in its messages without every caller passing it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, ClassVar

from maa.core.errors import MaaError


@dataclasses.dataclass(frozen=True)
class Range:
    """Inclusive bounds of a number, or of every number inside a tuple field (count: its length)."""

    lo: float
    hi: float
    count: tuple[int, int] | None = None

    def text(self) -> str:
        return "..".join(str(x) if isinstance(x, int) else f"{x:g}" for x in (self.lo, self.hi))


class OneOf:
    """The allowed values of a string field."""

    def __init__(self, *choices: str):
        self.choices = choices


class ConfigDict(dict):
    """A dict read from a config file that knows where it came from ("RUN/ldm/config.json", "unet")."""

    file: str | None = None
    key: str | None = None


def tag_sources(obj: Any, file: str) -> Any:
    """Mark every dict in obj (parsed JSON) as a ConfigDict of `file` with its key path; iterative,
    so a deeply nested file cannot exhaust the stack here."""
    def tagged(d: dict, key: str | None) -> ConfigDict:
        c = ConfigDict(d)
        c.file, c.key = file, key
        return c

    if not isinstance(obj, dict):
        return obj
    root = tagged(obj, None)
    todo = [root]
    while todo:
        d = todo.pop()
        for k, v in d.items():
            if isinstance(v, dict):
                d[k] = tagged(v, f"{d.key}.{k}" if d.key else str(k))
                todo.append(d[k])
    return root


class ConfigError(MaaError):
    """A field outside its type or range; `from_dict` adds the file and key path in front."""

    def __init__(self, cls_name: str, field: str, problem: str):
        self.field, self.problem = field, problem
        super().__init__(f"{cls_name}.{field}: {problem}")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _is_config(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, ConfigMixin)


def _type_problem(value: Any, hint: Any) -> str | None:
    """Why `value` does not fit the type hint, or None. Covers what configs use: int, float, str,
    bool, Path, X | None, tuple[X, ...], fixed tuples and nested configs; other hints pass."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        arms = [a for a in args if a is not type(None)]
        problems = [_type_problem(value, a) for a in arms]
        return None if None in problems else problems[0]
    if hint is bool:
        return None if isinstance(value, bool) else f"{_show(value)} is not true or false"
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else f"{_show(value)} is not an integer"
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{_show(value)} is not a number"
        # ints are finite (and may be too large for math.isfinite)
        return None if isinstance(value, int) or math.isfinite(value) else f"{_show(value)} is not a finite number"
    if hint is str:
        return None if isinstance(value, str) else f"{_show(value)} is not a string"
    if hint is Path:
        return None if isinstance(value, (str, os.PathLike)) else f"{_show(value)} is not a path"
    if origin is tuple:
        if not isinstance(value, tuple):
            return f"{_show(value)} is not a list"
        if len(args) == 2 and args[1] is Ellipsis:
            args = (args[0],) * len(value)
        elif args and len(args) != len(value):
            return f"{_show(value)} has {len(value)} entries, want {len(args)}"
        for v, a in zip(value, args):
            if (p := _type_problem(v, a)) is not None:
                return p
        return None
    if _is_config(hint):
        return None if isinstance(value, hint) else f"{_show(value)} is not a {hint.__name__} section"
    return None


def _numbers(value: Any):
    if isinstance(value, tuple):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def _show(value: Any) -> str:
    """A value in a message as JSON would write it (Infinity, lists), cut short."""
    try:
        text = json.dumps(_to_json(value))
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _limit_problem(value: Any, limit: Range | OneOf) -> str | None:
    if isinstance(limit, OneOf):
        if value not in limit.choices:
            return f"{_show(value)} is not one of {', '.join(limit.choices)}"
        return None
    if limit.count is not None and isinstance(value, tuple):
        lo, hi = limit.count
        if not lo <= len(value) <= hi:
            return f"{_show(value)} has {len(value)} entries; allowed {lo}..{hi}"
    for v in _numbers(value):
        if not limit.lo <= v <= limit.hi:
            if isinstance(value, tuple):
                return f"{_show(value)} holds {_show(v)}, outside the allowed range {limit.text()}"
            return f"{_show(v)} is outside the allowed range {limit.text()}"
    return None


def _to_json(value: Any) -> Any:
    if isinstance(value, ConfigMixin):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_to_json(v) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _from_json(value: Any, hint: Any, file, key: str) -> Any:
    """JSON lists back to tuples (nested too), sections back to configs, strings to paths."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        for a in args:
            if a is not type(None) and (typing.get_origin(a) is tuple or _is_config(a) or a is Path):
                return _from_json(value, a, file, key)
        return value
    if origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            inner = [args[0]] * len(value)
        elif len(args) == len(value):
            inner = list(args)
        else:  # a wrong length: the check names it
            return tuple(value)
        return tuple(_from_json(v, a, file, key) for v, a in zip(value, inner))
    if _is_config(hint) and isinstance(value, dict):
        return hint.from_dict(value, file=file, key=key)
    if hint is Path and isinstance(value, str):
        return Path(value)
    return value


class ConfigMixin:
    """to_dict / from_dict and field checks for a config dataclass (see the module docstring)."""

    limits: ClassVar[dict[str, Range | OneOf]] = {}
    # Fields added after models were published: written only when not at their default, so a folder
    # (and so its content hash, which records and --replay compare) stays byte for byte what it was.
    optional: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise ConfigError (a MaaError) for the first field outside its type or limits."""
        hints = _hints(type(self))
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            problem = _type_problem(value, hints.get(f.name, Any))
            if problem is None and f.name in self.limits:
                problem = _limit_problem(value, self.limits[f.name])
            if problem is not None:
                self.fail(f.name, problem)
        self.check_relations()

    def check_relations(self) -> None:
        """Checks across fields; override and call self.fail(field, problem)."""

    def fail(self, field: str, problem: str) -> typing.NoReturn:
        raise ConfigError(type(self).__name__, field, problem)

    def to_dict(self) -> dict:
        """The config as JSON values (fields in `optional` only when they differ from their default)."""
        return {f.name: _to_json(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name not in self.optional or getattr(self, f.name) != f.default}

    @classmethod
    def from_dict(cls, d: dict, *, file: str | os.PathLike | None = None, key: str | None = None,
                  unknown: str = "error"):
        """The config a JSON object describes. Messages name `file` and `key` (default: what a
        ConfigDict remembers, else the class); unknown="ignore" skips keys the class lacks (foreign
        files such as BigVGAN's args.yml, which hold training settings too)."""
        file = file if file is not None else getattr(d, "file", None)
        key = key if key is not None else getattr(d, "key", None) or ("" if file else cls.__name__)
        if not isinstance(d, dict):
            raise MaaError(f"{_where(file, key)}: want a JSON object of settings, got {_show(d)}")
        hints, names = _hints(cls), [f.name for f in dataclasses.fields(cls) if f.init]
        extra = [k for k in d if k not in names]
        if extra and unknown != "ignore":
            near = difflib.get_close_matches(str(extra[0]), names, n=1)
            hint = f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(names)}"
            raise MaaError(f"{_where(file, key, extra[0])}: unknown key ({hint}); remove it or fix its name")
        kw = {k: _from_json(d[k], hints.get(k, Any), file, _where(None, key, k)) for k in names if k in d}
        missing = [f.name for f in dataclasses.fields(cls) if f.init and f.name not in kw
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise MaaError(f"{_where(file, key, missing[0])}: missing, and it has no default")
        try:
            return cls(**kw)
        except ConfigError as e:
            raise MaaError(f"{_where(file, key, e.field)}: {e.problem}") from None


def _where(file: str | os.PathLike | None, key: str | None, field: str | None = None) -> str:
    """"RUN/ldm/config.json: unet.channels", or "UNetConfig.channels" when no file is known."""
    name = ".".join(str(x) for x in (key, field) if x)
    return f"{file}: {name}" if file and name else str(file or name)
