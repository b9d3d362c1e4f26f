"""The emulator's state on disk: an append-only journal, compacted when the emulator starts.

    marketplace-emulator serve --state emulator-state.jsonl

The file is JSON Lines. The first line names the format and the columns of the records' rows;
each later line is one committed change:

    {"format": "marketplace-emulator-state", "version": 2,
     "fields": {"account": ["id", "provider", ...], "entitlement": ["id", ...]}}
    {"store": {"accounts": [[...]], "entitlements": [[seq, deleted, ...]],
               "gone": [["account" | "entitlement", provider, id]], "nextProjectNumber": N}}
    {"settings": {"catalog": {...}, "faults": {...}, "clockOffsetSeconds": S}}
    {"report": {...one accepted Service Control operation...}}
    {"reportV2": {...one Service Control v2 report received...}}

- **Store lines**: after every Procurement transaction (a provider's call, a customer's action, a
  transition the clock made due) the records it changed, whole, each as a row (`rows`: the values
  of the fields the first line names, in that order; an entitlement's row starts with its
  insertion sequence and whether it is deleted); a record that is gone is listed by key in
  `gone`. Values are written by `codec.encode` (dataclass fields to JSON), so a field added to a
  model is persisted without code here. The snapshot is one store line holding every record.
- **Settings lines**: the catalog, the fault settings and the clock's offset, written when they
  differ from the last ones written (after each control-API write and each clock advance).
- **Report lines**: each operation Service Control v1 accepts, and each report v2 receives.

Each change is one `write()` of one line on a file opened for appending, made before the call
answers: when the emulator process dies, the operating system still has every line written, and a
line torn by a crash in the middle of a write (the last one) is skipped when loading. So a crash
loses at most the write in progress. Lines are not fsync'ed: a power cut may lose what the OS had
not yet written to disk (the emulator is a development tool).

On start, the file is read line by line (later records replace earlier ones) and the state is
rebuilt (`Restoring.restore`). When most of it is superseded records, or its rows name other
fields than the models have now, or it is a version 1 file (an object per record, still read), it
is rewritten as a snapshot through a temporary file renamed over it, so a crash during compaction
leaves the old file. It is also compacted while running when it holds more than
`compact_after_lines` lines (checked after each control-API write and clock advance, when no lock
is held). `reset` empties it. Loading turns the garbage collector off (no object it allocates can
be garbage yet) and then freezes what it loaded (`gc.freeze`: later collections skip it).
"""

from __future__ import annotations

import gc
import json
import operator
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketplace_emulator.faults import FaultSettings
from marketplace_emulator.persistence.codec import decoder, encode
from marketplace_emulator.persistence.rows import field_names, row_decoder, row_encoder
from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.store import FIRST_PROJECT_NUMBER, Changed, Key
from marketplace_emulator.servicecontrol.models import AcceptedOperation

if TYPE_CHECKING:
    from marketplace_emulator.server import Emulator

FORMAT = "marketplace-emulator-state"
VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: each record a JSON object (read, then rewritten as version 2)
STATE_FILE_NAME = "emulator-state.jsonl"

__all__ = ["STATE_FILE_NAME", "StateError", "StateFile"]


class StateError(Exception):
    """The state file cannot be read (not ours, or damaged before its last line)."""


def _dumps(data: Any) -> bytes:
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


def _fields() -> dict[str, list[str]]:
    """The columns of the rows this version of the models writes."""
    return {
        "account": list(field_names(r.Account)),
        "entitlement": list(field_names(r.Entitlement)),
    }


class _Loaded:
    """The records a state file holds, the later replacing the earlier (not decoded yet)."""

    def __init__(self, fields: dict[str, list[str]] | None) -> None:
        self.fields = fields  # the rows' columns; None: a version 1 file (a JSON object each)
        self.accounts: dict[Key, Any] = {}
        self.entitlements: dict[Key, Any] = {}
        self.next_project_number = FIRST_PROJECT_NUMBER
        self.settings: dict[str, Any] | None = None
        self.reports: list[dict[str, Any]] = []
        self.reports_v2: list[dict[str, Any]] = []
        self.lines = 0
        self.records = 0  # records read, superseded ones included
        self.wasted = False
        if fields is not None:
            account, entitlement = fields["account"], fields["entitlement"]
            self._account_key = (account.index("provider"), account.index("id"))
            self._entitlement_key = (entitlement.index("provider") + 2, entitlement.index("id") + 2)

    def release(self) -> None:
        """Drop the records read (once decoded), noting whether most of the file was superseded
        records (`wasted`: worth compacting)."""
        live = len(self.accounts) + len(self.entitlements) + len(self.reports)
        self.wasted = self.records > 2 * live + 1000
        self.accounts, self.entitlements, self.reports = {}, {}, []

    def apply(self, line: dict[str, Any]) -> None:
        self.lines += 1
        if "store" in line:
            store = line["store"]
            if self.fields is None:
                self._apply_objects(store)
            else:
                self._apply_rows(store)
            self.next_project_number = store.get("nextProjectNumber", self.next_project_number)
        elif "settings" in line:
            self.settings = line["settings"]
        elif "report" in line:
            self.reports.append(line["report"])
        elif "reportV2" in line:
            self.reports_v2.append(line["reportV2"])

    def _apply_rows(self, store: dict[str, Any]) -> None:
        accounts, entitlements = store.get("accounts", ()), store.get("entitlements", ())
        self.records += len(accounts) + len(entitlements)
        provider, record_id = self._account_key
        for row in accounts:
            self.accounts[(row[provider], row[record_id])] = row
        provider, record_id = self._entitlement_key
        for row in entitlements:
            self.entitlements[(row[provider], row[record_id])] = row
        for kind, provider_id, gone_id in store.get("gone", ()):
            found = self.accounts if kind == "account" else self.entitlements
            found.pop((provider_id, gone_id), None)

    def _apply_objects(self, store: dict[str, Any]) -> None:
        """A version 1 store line: `{"key", "record"}` objects (entitlements: `seq`, `deleted`)."""
        self.records += len(store.get("accounts", [])) + len(store.get("entitlements", []))
        for item in store.get("accounts", []):
            key = (item["key"][0], item["key"][1])
            if item.get("record") is None:
                self.accounts.pop(key, None)
            else:
                self.accounts[key] = item["record"]
        for item in store.get("entitlements", []):
            key = (item["key"][0], item["key"][1])
            if item.get("record") is None:
                self.entitlements.pop(key, None)
            else:
                self.entitlements[key] = [int(item["seq"]), bool(item["deleted"]), item["record"]]

    def decoded(self) -> tuple[list[r.Account], list[tuple[r.Entitlement, bool]]]:
        """The live accounts, and the entitlements with their deleted flag in insertion order."""
        live = sorted(self.entitlements.values(), key=operator.itemgetter(0))
        if self.fields is None:
            read_account, read_entitlement = decoder(r.Account), decoder(r.Entitlement)
            return (
                [read_account(a) for a in self.accounts.values()],
                [(read_entitlement(e[2]), e[1]) for e in live],
            )
        read_account = row_decoder(r.Account, tuple(self.fields["account"]))
        read_row = row_decoder(r.Entitlement, tuple(self.fields["entitlement"]))
        return (
            [read_account(row) for row in self.accounts.values()],
            [(read_row(row[2:]), bool(row[1])) for row in live],
        )


class StateFile:
    """Keeps one emulator's state in `path`: load it, then journal every change."""

    def __init__(self, path: str | Path, compact_after_lines: int = 200_000) -> None:
        self.path = Path(path)
        self.compact_after_lines = compact_after_lines
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._lines = 0
        self._last_settings: dict[str, Any] | None = None
        self._emulator: Emulator | None = None

    # -- start ----------------------------------------------------------------------------------

    def attach(self, emulator: Emulator) -> StateFile:
        """Load the state (if the file exists) into `emulator`, compact, and journal from now."""
        self._emulator = emulator
        loaded = None
        if self.path.exists():
            collecting = gc.isenabled()
            gc.disable()  # a load allocates millions of objects: no collection can free any
            try:
                loaded = self._read()
                self._restore(emulator, loaded)
                loaded.release()  # the parsed records: freed now, by reference counting
                gc.freeze()  # the state lives on: later collections need not walk through it
            finally:
                if collecting:
                    gc.enable()
        if (
            loaded is None
            or loaded.wasted
            or loaded.lines > self.compact_after_lines
            or loaded.fields != _fields()  # version 1, or rows of other fields: rewritten
        ):
            self.compact()
        else:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._lines = loaded.lines
            self._last_settings = loaded.settings
        emulator.procurement.journal = self
        emulator.servicecontrol.on_accept = self.report_accepted
        emulator.servicecontrol_v2.on_report = self.report_received
        return self

    def _read(self) -> _Loaded:
        loaded = _Loaded(None)
        with self.path.open("rb") as handle:
            lines = handle.read().split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        for number, raw in enumerate(lines, start=1):
            try:
                line = json.loads(raw)
            except ValueError:
                if number == len(lines):
                    break  # torn by a crash during the last write: that write is lost
                raise StateError(f"{self.path}: line {number} is not JSON") from None
            if number == 1:
                if not isinstance(line, dict) or line.get("format") != FORMAT:
                    raise StateError(f"{self.path} is not an emulator state file")
                loaded = _Loaded(self._header_fields(line))
                continue
            loaded.apply(line)
        return loaded

    def _header_fields(self, header: dict[str, Any]) -> dict[str, list[str]] | None:
        version = header.get("version")
        if version not in READABLE_VERSIONS:
            raise StateError(
                f"{self.path}: state file version {version!r} is not one this emulator reads "
                f"(versions {', '.join(map(str, READABLE_VERSIONS))}); a newer emulator wrote "
                "it: upgrade, or start from an empty file"
            )
        if version == 1:
            return None
        fields = header.get("fields")
        if not isinstance(fields, dict) or not all(
            isinstance(fields.get(kind), list) for kind in ("account", "entitlement")
        ):
            raise StateError(f"{self.path}: the first line does not name the records' fields")
        return fields

    def _restore(self, emulator: Emulator, loaded: _Loaded) -> None:
        if loaded.settings is not None:
            settings = loaded.settings
            emulator.catalog.load(settings.get("catalog", {}))
            emulator.faults.configure(FaultSettings.model_validate(settings.get("faults", {})))
            emulator.clock.restore(timedelta(seconds=settings.get("clockOffsetSeconds", 0)))
        read_report = decoder(AcceptedOperation)
        accounts, entitlements = loaded.decoded()
        emulator.procurement.restore(accounts, entitlements, loaded.next_project_number)
        emulator.servicecontrol.restore([read_report(op) for op in loaded.reports])
        emulator.servicecontrol_v2.restore(loaded.reports_v2)

    # -- journal --------------------------------------------------------------------------------

    def store_changed(
        self,
        entitlements: list[Changed],
        accounts: list[tuple[Key, r.Account | None]],
        next_project_number: int,
    ) -> None:
        """A Procurement transaction committed (called under the store's lock)."""
        account_row, entitlement_row = row_encoder(r.Account), row_encoder(r.Entitlement)
        store: dict[str, Any] = {
            "accounts": [account_row(a) for _, a in accounts if a is not None],
            "entitlements": [
                [c.seq, c.deleted, *entitlement_row(c.record)]
                for c in entitlements
                if c.record is not None
            ],
            "nextProjectNumber": next_project_number,
        }
        gone = [["account", *key] for key, a in accounts if a is None]
        gone += [["entitlement", *c.key] for c in entitlements if c.record is None]
        if gone:
            store["gone"] = gone
        self._append({"store": store})

    def report_accepted(self, operation: AcceptedOperation) -> None:
        self._append({"report": encode(operation)})

    def report_received(self, report: dict[str, Any]) -> None:
        self._append({"reportV2": report})

    def sync_settings(self) -> None:
        """Journal the catalog, faults and clock offset if they changed since last written."""
        settings = self._settings()
        if settings is not None and settings != self._last_settings:
            self._append({"settings": settings})

    def _settings(self) -> dict[str, Any] | None:
        emulator = self._emulator
        if emulator is None:
            return None
        return {
            "catalog": emulator.catalog.dump(),
            "faults": emulator.faults.settings.to_json(),
            "clockOffsetSeconds": emulator.clock.offset.total_seconds(),
        }

    def _append(self, data: dict[str, Any]) -> None:
        line = _dumps(data)
        with self._lock:
            if self._fd is None:
                return
            os.write(self._fd, line)
            self._lines += 1
            if "settings" in data:
                self._last_settings = data["settings"]

    def maybe_compact(self) -> None:
        """Compact when the journal has grown past `compact_after_lines` (holding no lock)."""
        if self._lines > self.compact_after_lines:
            self.compact()

    # -- compaction and reset -------------------------------------------------------------------

    def compact(self) -> None:
        """Rewrite the file as a snapshot of the current state (atomically, by rename).

        Takes the locks in the order every other path takes them (Service Control's, the
        store's, the journal's), so no change is lost between the snapshot and the rename.
        """
        emulator = self._emulator
        if emulator is None:
            return
        servicecontrol = emulator.servicecontrol
        collecting = gc.isenabled()
        gc.disable()  # encoding allocates millions of objects, none of them garbage
        try:
            self._compact(emulator, servicecontrol)
        finally:
            if collecting:
                gc.enable()

    def _compact(self, emulator: Emulator, servicecontrol: Any) -> None:
        with (
            servicecontrol.frozen() as reports,
            emulator.procurement.locked(),
            emulator.servicecontrol_v2.frozen() as reports_v2,
            self._lock,
        ):
            accounts, entitlements = emulator.procurement.records()
            account_row, entitlement_row = row_encoder(r.Account), row_encoder(r.Entitlement)
            store = {
                "accounts": [account_row(a) for a in accounts],
                "entitlements": [
                    [i, d, *entitlement_row(e)] for i, (e, d) in enumerate(entitlements)
                ],
                "nextProjectNumber": emulator.procurement.next_project_number,
            }
            settings = self._settings()
            header = {"format": FORMAT, "version": VERSION, "fields": _fields()}
            lines = [header, {"settings": settings}]
            lines.append({"store": store})
            lines += [{"report": encode(op)} for op in reports]
            lines += [{"reportV2": report} for report in reports_v2]
            self._replace(b"".join(_dumps(line) for line in lines))
            self._lines = len(lines)
            self._last_settings = settings

    def reset(self) -> None:
        """The emulator forgot everything: so does the file (its settings line stays)."""
        self.compact()

    def _replace(self, content: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
