"""Generic JSON for the emulator's records: a dataclass is the JSON object of its fields.

`encode(value)` turns dataclasses (by their fields), pydantic models, datetimes, enums, lists,
tuples, sets and string-keyed dicts into JSON values; `decode(tp, data)` reads them back as the
type `tp` says, building the decoder from the dataclass's type hints once per type. So a field
added to a model is persisted with no code here, provided its type is one of those; a type this
module cannot read back raises `TypeError` (the round-trip tests in
`tests/unit/emulator/test_persistence.py` fail then). A field missing from the data takes its
default (`encode` leaves out a field equal to its default), and a key no field has is ignored,
so a state file written before a field was added still loads.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

Decoder = Callable[[Any], Any]


def encode(value: Any) -> Any:
    """A JSON-ready value (dicts, lists, strings, numbers, booleans, None)."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return encode(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _dataclass_encoder(type(value))(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"only string keys can be persisted, not {key!r}")
            out[key] = encode(item)
        return out
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(encode(item) for item in value)
    raise TypeError(f"cannot persist a {type(value).__name__}: {value!r}")


_PLAIN = (str, int, bool, float, typing.Literal)


def is_plain(tp: Any) -> bool:
    """Whether values of `tp` are JSON as they are (no conversion: copied without a call)."""
    if tp in _PLAIN or typing.get_origin(tp) is typing.Literal:
        return True
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return all(a is type(None) or is_plain(a) for a in args)
    return False


@functools.cache
def _default(field: dataclasses.Field[Any]) -> Any:
    """The value a field takes when it is not given (`_MISSING` when it has no default)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return _MISSING


_MISSING = object()


@functools.cache
def _dataclass_encoder(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    """Per class: plain fields are copied, the others go through `encode` (built once); a field
    equal to its default is left out (the decoder puts the default back), to keep files small."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    plain = [(f.name, _default(f)) for f in fields if is_plain(hints[f.name])]
    converted = [(f.name, _default(f)) for f in fields if not is_plain(hints[f.name])]

    def encode_dataclass(value: Any) -> dict[str, Any]:
        out = {}
        for name, default in plain:
            item = getattr(value, name)
            if item != default or item.__class__ is not default.__class__:
                out[name] = item
        for name, default in converted:
            item = getattr(value, name)
            if item != default or item.__class__ is not default.__class__:
                out[name] = encode(item)
        return out

    return encode_dataclass


def decode(tp: Any, data: Any) -> Any:
    """Read `data` (from `encode`) back as type `tp`."""
    return decoder(tp)(data)


def _identity(data: Any) -> Any:
    return data


def _optional(inner: Decoder) -> Decoder:
    return lambda data: None if data is None else inner(data)


@functools.cache
def decoder(tp: Any) -> Decoder:
    """The function that reads a JSON value as `tp` (built once per type)."""
    if tp is Any or tp in (str, int, bool):
        return _identity
    if tp is float:
        return float
    if tp is datetime:
        return datetime.fromisoformat
    if tp is timedelta:
        return lambda data: timedelta(seconds=data)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return _identity
    if origin in (typing.Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if len(others) != 1:
            raise TypeError(f"cannot persist a field of type {tp}: only `X | None` unions")
        inner = decoder(others[0])
        return _identity if inner is _identity else _optional(inner)
    if origin in (list, tuple, set, frozenset):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = [decoder(a) for a in args]
            return lambda data: tuple(d(v) for d, v in zip(items, data, strict=True))
        item = decoder(args[0]) if args else _identity
        if item is _identity:  # JSON gives a fresh list: as it is, or converted as a whole
            return _identity if origin is list else origin
        if origin is list:
            return lambda data: [item(v) for v in data]
        return lambda data: origin(item(v) for v in data)
    if origin is dict:
        if args and args[0] is not str:
            raise TypeError(f"cannot persist a field of type {tp}: dict keys must be str")
        value = decoder(args[1]) if args else _identity
        if value is _identity:
            return _identity  # a fresh dict from JSON
        return lambda data: {k: value(v) for k, v in data.items()}
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return tp
        if issubclass(tp, BaseModel):
            return tp.model_validate
        if dataclasses.is_dataclass(tp):
            return _dataclass_decoder(tp)
    raise TypeError(f"cannot persist a field of type {tp!r}")


def field_decoders(cls: type[Any]) -> list[tuple[str, Decoder | None, bool]]:
    """Per field of dataclass `cls`: its name, the decoder of its JSON value (None: used as it
    is) and whether None stands for itself (`X | None`: the decoder is then `X`'s)."""
    hints = typing.get_type_hints(cls)
    out: list[tuple[str, Decoder | None, bool]] = []
    for f in dataclasses.fields(cls):
        tp, optional = hints[f.name], False
        args = typing.get_args(tp)
        if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
            others = [a for a in args if a is not type(None)]
            if len(others) == 1:
                tp, optional = others[0], True
        read = decoder(tp)
        out.append((f.name, None if read is _identity else read, optional))
    return out


def takes_its_dict(cls: Any) -> bool:
    """Whether an instance of `cls` can be made by giving it its `__dict__` (no slots, nothing
    `__post_init__` would compute)."""
    return not hasattr(cls, "__slots__") and not hasattr(cls, "__post_init__")


@functools.cache
def instance_maker(cls: Any) -> Callable[[dict[str, Any]], Any]:
    """Makes an instance of dataclass `cls` from its decoded fields: the dict, completed with the
    defaults the data left out, becomes the instance's `__dict__`, without `__init__` (a restart
    reads hundreds of thousands of records; the dict passed in is consumed). A key no field has is
    ignored; a field the data lacks (written before the field was added) takes its default.
    """
    fields = [(f.name, f.init) for f in dataclasses.fields(cls)]
    names = frozenset(name for name, _ in fields)
    direct = takes_its_dict(cls)
    immutable: dict[str, Any] = {}  # defaults that may be shared by instances
    factories: list[tuple[str, Callable[[], Any]]] = []  # the others: made for each instance
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            immutable[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            factories.append((f.name, f.default_factory))
    new = object.__new__

    def make(data: dict[str, Any]) -> Any:
        if direct and data.keys() == names:  # every field given, none other (the usual case)
            instance = new(cls)
            object.__setattr__(instance, "__dict__", data)
            return instance
        if not data.keys() <= names:  # a field since removed: its value is ignored
            data = {key: value for key, value in data.items() if key in names}
        if len(data) != len(names):
            data = {**immutable, **data}
            for name, factory in factories:
                if name not in data:
                    data[name] = factory()
            if len(data) != len(names):
                missing = ", ".join(sorted(names - data.keys()))
                raise TypeError(f"cannot read a {cls.__name__}: no value for {missing}")
        if direct:  # `data` becomes the instance's attributes, as __init__ would set them
            instance = new(cls)
            object.__setattr__(instance, "__dict__", data)
            return instance
        instance = cls(**{name: data[name] for name, init in fields if init})
        for name, init in fields:
            if not init:
                object.__setattr__(instance, name, data[name])
        return instance

    return make


def _dataclass_decoder(cls: Any) -> Decoder:
    """Reads a dataclass from the JSON object of its fields (see `instance_maker`)."""
    converted = [(name, read) for name, read, _ in _object_fields(cls) if read is not None]
    make = instance_maker(cls)

    def read_dataclass(data: dict[str, Any]) -> Any:
        for name, read in converted:
            if name in data:
                data[name] = read(data[name])
        return make(data)

    return read_dataclass


def _object_fields(cls: type[Any]) -> list[tuple[str, Decoder | None, bool]]:
    """`field_decoders`, with optional fields' decoders accepting None (as in a JSON object)."""
    return [
        (name, read if read is None or not optional else _optional(read), optional)
        for name, read, optional in field_decoders(cls)
    ]
