"""The emulator's state on disk: an append-only journal, compacted when the emulator starts.

    marketplace-emulator serve --state emulator-state.jsonl

The file is JSON Lines. The first line names the format; each later line is one committed change:

    {"format": "marketplace-emulator-state", "version": 1}
    {"store": {"accounts": [...], "entitlements": [...], "nextProjectNumber": N}}
    {"settings": {"catalog": {...}, "faults": {...}, "clockOffsetSeconds": S}}
    {"report": {...one accepted Service Control operation...}}
    {"reportV2": {...one Service Control v2 report received...}}

- **Store lines**: after every Procurement transaction (a provider's call, a customer's action, a
  transition the clock made due) the records it changed, whole, with each entitlement's insertion
  sequence and whether it is deleted; an account or entitlement that is gone is listed by key.
  Records are written by `codec.encode` (dataclass fields to JSON), so a field added to a model
  is persisted without code here.
- **Settings lines**: the catalog, the fault settings and the clock's offset, written when they
  differ from the last ones written (after each control-API write and each clock advance).
- **Report lines**: each operation Service Control v1 accepts, and each report v2 receives.

Each change is one `write()` of one line on a file opened for appending, made before the call
answers: when the emulator process dies, the operating system still has every line written, and a
line torn by a crash in the middle of a write (the last one) is skipped when loading. So a crash
loses at most the write in progress. Lines are not fsync'ed: a power cut may lose what the OS had
not yet written to disk (the emulator is a development tool).

On start, the file is read line by line (later records replace earlier ones) and the state is
rebuilt (`Restoring.restore`). When most of it is superseded records, it is rewritten as a snapshot
(one line each) through a temporary file renamed over it, so a crash during compaction leaves the
old file. It is also compacted while running when it holds more than `compact_after_lines` lines
(checked after each control-API write and clock advance, when no lock is held). `reset` empties
it. Loading turns the garbage collector off (no object it allocates can be garbage yet).
"""

from __future__ import annotations

import gc
import json
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from marketplace_emulator.faults import FaultSettings
from marketplace_emulator.persistence.codec import decoder, encode
from marketplace_emulator.procurement import resources as r
from marketplace_emulator.procurement.store import FIRST_PROJECT_NUMBER, Changed, Key
from marketplace_emulator.servicecontrol.models import AcceptedOperation

if TYPE_CHECKING:
    from marketplace_emulator.server import Emulator

FORMAT = "marketplace-emulator-state"
VERSION = 1
STATE_FILE_NAME = "emulator-state.jsonl"

__all__ = ["STATE_FILE_NAME", "StateError", "StateFile"]


class StateError(Exception):
    """The state file cannot be read (not ours, or damaged before its last line)."""


def _dumps(data: Any) -> bytes:
    return (json.dumps(data, separators=(",", ":")) + "\n").encode()


class _Loaded:
    """The records a state file holds, the later replacing the earlier."""

    def __init__(self) -> None:
        self.accounts: dict[Key, dict[str, Any] | None] = {}
        self.entitlements: dict[Key, dict[str, Any]] = {}
        self.next_project_number = FIRST_PROJECT_NUMBER
        self.settings: dict[str, Any] | None = None
        self.reports: list[dict[str, Any]] = []
        self.reports_v2: list[dict[str, Any]] = []
        self.lines = 0
        self.records = 0  # records read, superseded ones included

    def wasted(self) -> bool:
        """Whether most of the file is superseded records (worth compacting)."""
        live = len(self.accounts) + len(self.entitlements) + len(self.reports)
        return self.records > 2 * live + 1000

    def apply(self, line: dict[str, Any]) -> None:
        self.lines += 1
        if "store" in line:
            store = line["store"]
            self.records += len(store.get("accounts", [])) + len(store.get("entitlements", []))
            for item in store.get("accounts", []):
                self.accounts[(item["key"][0], item["key"][1])] = item.get("record")
            for item in store.get("entitlements", []):
                self.entitlements[(item["key"][0], item["key"][1])] = item
            self.next_project_number = store.get("nextProjectNumber", self.next_project_number)
        elif "settings" in line:
            self.settings = line["settings"]
        elif "report" in line:
            self.reports.append(line["report"])
        elif "reportV2" in line:
            self.reports_v2.append(line["reportV2"])


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
            finally:
                if collecting:
                    gc.enable()
        if loaded is None or loaded.wasted() or loaded.lines > self.compact_after_lines:
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
        loaded = _Loaded()
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
                if line.get("version") != VERSION:
                    raise StateError(f"{self.path}: unsupported version {line.get('version')}")
                continue
            loaded.apply(line)
        return loaded

    def _restore(self, emulator: Emulator, loaded: _Loaded) -> None:
        if loaded.settings is not None:
            settings = loaded.settings
            emulator.catalog.load(settings.get("catalog", {}))
            emulator.faults.configure(FaultSettings.model_validate(settings.get("faults", {})))
            emulator.clock.restore(timedelta(seconds=settings.get("clockOffsetSeconds", 0)))
        read_account, read_entitlement = decoder(r.Account), decoder(r.Entitlement)
        read_report = decoder(AcceptedOperation)
        accounts = [read_account(a) for a in loaded.accounts.values() if a is not None]
        live = [e for e in loaded.entitlements.values() if e.get("record") is not None]
        live.sort(key=lambda item: int(item["seq"]))
        emulator.procurement.restore(
            accounts,
            [(read_entitlement(e["record"]), bool(e["deleted"])) for e in live],
            loaded.next_project_number,
        )
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
        store = {
            "accounts": [
                {"key": list(key), "record": None if a is None else encode(a)}
                for key, a in accounts
            ],
            "entitlements": [
                {
                    "key": list(c.key),
                    "seq": c.seq,
                    "deleted": c.deleted,
                    "record": None if c.record is None else encode(c.record),
                }
                for c in entitlements
            ],
            "nextProjectNumber": next_project_number,
        }
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
            store = {
                "accounts": [{"key": [a.provider, a.id], "record": encode(a)} for a in accounts],
                "entitlements": [
                    {"key": [e.provider, e.id], "seq": i, "deleted": d, "record": encode(e)}
                    for i, (e, d) in enumerate(entitlements)
                ],
                "nextProjectNumber": emulator.procurement.next_project_number,
            }
            settings = self._settings()
            lines = [{"format": FORMAT, "version": VERSION}, {"settings": settings}]
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
