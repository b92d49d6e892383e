"""Plain JSON data to dataclasses and back, every field checked against its annotation: the dataclasses of
harness.spec (records, case, results) are the results schema."""
from __future__ import annotations

import dataclasses
import types
import typing


class SchemaError(ValueError):
    """A stored record does not have the shape of its dataclass; the message names the field."""


class Record:
    """A dataclass with a checked JSON form: `to_dict()` and `from_dict(d, where)`."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d, where: str = ""):
        return from_dict(cls, d, where or cls.__name__.lower())


def from_dict(cls, d, where: str):
    """An instance of dataclass `cls` from plain JSON data, every field checked against its annotation."""
    if not isinstance(d, dict):
        raise SchemaError(f"{where} must be an object, not {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{where} lacks field {f.name!r}")
            continue
        values[f.name] = check(d[f.name], hints[f.name], f"{where}{'' if where.endswith(' ') else '.'}{f.name}")
    try:
        return cls(**values)
    except ValueError as e:  # the dataclass's own checks (a Claim's, a Variant's)
        raise SchemaError(f"{where}: {e}") from None


def check(value, kind, where: str):
    """`value` if it has type `kind` (a plain type, a dataclass, list[X], dict[str, X], X | None);
    a nested dataclass comes back as an instance. Raises SchemaError naming the field."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in [a for a in args if value is None or a is not type(None)]:  # X | None: X's own message
            try:
                return check(value, option, where)
            except SchemaError as e:
                errors.append(str(e))
        raise SchemaError(errors[0] if len(errors) == 1 else f"{where} = {value!r:.60} has the wrong type")
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, where)
    if origin is tuple:  # JSON has no tuples: a list of the right items
        if not isinstance(value, (list, tuple)):
            raise SchemaError(f"{where} must be a list, not {type(value).__name__}")
        items = args[:1] * len(value) if args[-1:] == (Ellipsis,) else args
        if len(items) != len(value):
            raise SchemaError(f"{where} must have {len(items)} items")
        return tuple(check(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, items)))
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where} must be a list, not {type(value).__name__}")
        return [check(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where} must be an object, not {type(value).__name__}")
        return {k: check(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if kind is type(None):
        if value is not None:
            raise SchemaError(f"{where} must be null")
        return value
    if kind is float:  # JSON writes 1.0 as 1: an int is a float here, a bool is not
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(f"{where} = {value!r:.60} must be a number")
        return float(value)
    if kind in (int, str, bool):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SchemaError(f"{where} = {value!r:.60} must be {'an' if kind is int else 'a'} {kind.__name__}")
        return value
    if kind is dict or kind is list:
        if not isinstance(value, kind):
            raise SchemaError(f"{where} must be a{'n object' if kind is dict else ' list'}")
        return value
    raise TypeError(f"{where}: no schema rule for {kind!r}")
