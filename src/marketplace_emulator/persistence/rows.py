"""Records as rows: a dataclass as the JSON array of its fields' values, in a header's order.

The state file's snapshot and journal lines write accounts and entitlements this way (the file's
first line names each model's fields), so the field names are not repeated in every record: the
file is about half the size and a restart parses and builds half as much. The values are what
`codec.encode` writes for each field (nested dataclasses stay JSON objects), so a field added to
a model is persisted with no code here. A row written under other fields (an older or newer
version of the model) is read by name: a field the header lacks takes its default, a column no
field has is ignored.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import typing
from collections.abc import Callable, Sequence
from typing import Any

from marketplace_emulator.persistence.codec import (
    Decoder,
    encode,
    field_decoders,
    instance_maker,
    is_plain,
    takes_its_dict,
)

RowDecoder = Callable[[Sequence[Any]], Any]


def field_names(cls: type[Any]) -> tuple[str, ...]:
    """The columns of `cls`'s rows: its fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


@functools.cache
def row_encoder(cls: type[Any]) -> Callable[[Any], list[Any]]:
    """Per class: the values of `field_names(cls)`, each through `encode` unless plain JSON."""
    names = field_names(cls)
    get = operator.attrgetter(*names)
    hints = typing.get_type_hints(cls)
    converted = [i for i, name in enumerate(names) if not is_plain(hints[name])]

    def encode_row(value: Any) -> list[Any]:
        row = list(get(value)) if len(names) > 1 else [get(value)]
        for i in converted:
            row[i] = encode(row[i])
        return row

    return encode_row


@functools.cache
def row_decoder(cls: Any, stored: tuple[str, ...]) -> RowDecoder:
    """Reads a row whose columns are `stored` as an instance of `cls` (built once per header)."""
    names = field_names(cls)
    make = instance_maker(cls)
    converted = [
        (name, read, optional) for name, read, optional in field_decoders(cls) if read is not None
    ]
    # `read` None: the JSON value is used as it is
    if stored == names and takes_its_dict(cls):
        return _same_columns(cls, names, converted)
    positions = [(name, stored.index(name)) for name in names if name in stored]

    def read_row(row: Sequence[Any]) -> Any:
        data = {name: row[i] for name, i in positions}
        for name, read, optional in converted:
            if name in data:
                value = data[name]
                if value is not None or not optional:
                    data[name] = read(value)
        return make(data)

    return read_row


def _same_columns(
    cls: Any, names: tuple[str, ...], converted: list[tuple[str, Decoder, bool]]
) -> RowDecoder:
    """The common case, made fast: the row has every field, in the models' order."""
    new, set_attribute = object.__new__, object.__setattr__

    def read_row(row: Sequence[Any]) -> Any:
        data = dict(zip(names, row, strict=True))
        for name, read, optional in converted:
            value = data[name]
            if value is not None or not optional:
                data[name] = read(value)
        instance = new(cls)
        set_attribute(instance, "__dict__", data)  # as `instance_maker` does
        return instance

    return read_row
