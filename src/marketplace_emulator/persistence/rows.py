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

from marketplace_emulator.persistence.codec import encode, field_decoders, instance_maker, is_plain

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
def row_decoder(cls: type[Any], stored: tuple[str, ...]) -> RowDecoder:
    """Reads a row whose columns are `stored` as an instance of `cls` (built once per header)."""
    names = field_names(cls)
    make = instance_maker(cls)
    converted = [(name, read, optional) for name, read, optional in field_decoders(cls) if read]
    # `read` None: the JSON value is used as it is
    if stored == names:

        def columns(row: Sequence[Any]) -> dict[str, Any]:
            return dict(zip(names, row, strict=True))

    else:
        positions = [(name, stored.index(name)) for name in names if name in stored]

        def columns(row: Sequence[Any]) -> dict[str, Any]:
            return {name: row[i] for name, i in positions}

    def read_row(row: Sequence[Any]) -> Any:
        data = columns(row)
        for name, read, optional in converted:
            if name in data:
                value = data[name]
                if value is not None or not optional:
                    data[name] = read(value)
        return make(data)

    return read_row
