"""Printing: `--json` for machines, aligned tables and `key: value` records for people."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, TextIO

from marketplace_saas.domain.time import optional_rfc3339 as rfc3339

Columns = Sequence[tuple[str, str]]  # (header, key)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def print_json(data: object, out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    stream.write(json.dumps(data, indent=2, default=_default) + "\n")


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).replace("\n", " ")
    return text if len(text) <= 60 else text[:57] + "..."


def print_table(
    rows: Sequence[Mapping[str, Any]], columns: Columns, out: TextIO | None = None
) -> None:
    stream = out or sys.stdout
    if not rows:
        stream.write("(none)\n")
        return
    cells = [[_cell(row.get(key)) for _, key in columns] for row in rows]
    widths = [
        max(len(header), *(len(line[i]) for line in cells)) for i, (header, _) in enumerate(columns)
    ]
    lines = [[header for header, _ in columns], *cells]
    for line in lines:
        stream.write("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        stream.write("\n")


def print_record(record: Mapping[str, Any], out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    width = max((len(key) for key in record), default=0)
    for key, value in record.items():
        if isinstance(value, Mapping | list) and value:
            rendered = json.dumps(value, default=_default)
        else:
            rendered = _cell(value) if not isinstance(value, str) else value
        stream.write(f"{key.ljust(width)}  {rendered}\n")


def emit(
    args: argparse.Namespace,
    data: object,
    *,
    columns: Columns | None = None,
    message: str | None = None,
) -> None:
    """Print `data` as JSON with `--json`; else as a table (a list), a record, or `message`."""
    if getattr(args, "json", False):
        print_json(data)
    elif message is not None:
        sys.stdout.write(message + "\n")
    elif isinstance(data, list) and columns is not None:
        print_table(data, columns)
    elif isinstance(data, Mapping):
        print_record(data)
    else:
        print_json(data)
