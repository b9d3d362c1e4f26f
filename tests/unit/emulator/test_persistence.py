"""`--state`: every model field survives the JSON codec, and a restarted emulator has the whole
state it had (accounts, entitlements, deleted ones, catalog, faults, clock, accepted reports)."""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from marketplace_emulator.catalog import PlanSpec, Product
from marketplace_emulator.faults import FaultSettings
from marketplace_emulator.persistence import StateError
from marketplace_emulator.persistence.codec import decode, encode
from marketplace_emulator.persistence.rows import field_names, row_decoder, row_encoder
from marketplace_emulator.procurement import resources
from marketplace_emulator.server import Emulator
from marketplace_emulator.servicecontrol import responses
from marketplace_emulator.servicecontrol.models import AcceptedOperation

PROVIDER = "DEMO-persist"
WHEN = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)


def _sample(tp: Any, name: str) -> Any:
    """A value of type `tp` that is not any field's default (generic: from the type hints)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is str:
        return f"value-of-{name}"
    if tp is bool:
        return True
    if tp is int:
        return 42
    if tp is float:
        return 2.5
    if tp is datetime:
        return WHEN
    if tp is timedelta:
        return timedelta(seconds=90)
    if tp is Any:
        return {"int64Value": "7"}
    if origin is typing.Literal:
        return args[-1]
    if origin in (typing.Union, types.UnionType):
        return _sample(next(a for a in args if a is not type(None)), name)
    if origin in (list, set, frozenset):
        return origin([_sample(args[0], name)])
    if origin is tuple:
        return (_sample(args[0], name),)
    if origin is dict:
        return {"key": _sample(args[1], name)}
    if dataclasses.is_dataclass(tp):
        return _filled(tp)
    raise AssertionError(f"no sample for field {name!r} of type {tp!r}: teach _sample or the codec")


def _filled(cls: Any) -> Any:
    """An instance of dataclass `cls` with every field set, recursively."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    instance = cls(**{f.name: _sample(hints[f.name], f.name) for f in fields if f.init})
    for f in fields:
        if not f.init:
            object.__setattr__(instance, f.name, _sample(hints[f.name], f.name))
    return instance


def _persisted_models() -> list[type[Any]]:
    """Every dataclass of the store's models, and Service Control's accepted operation."""
    found = [
        cls
        for _, cls in inspect.getmembers(resources, inspect.isclass)
        if dataclasses.is_dataclass(cls) and cls.__module__ == resources.__name__
    ]
    return [*found, AcceptedOperation, responses.Operation]


@pytest.mark.parametrize("model", _persisted_models(), ids=lambda cls: cls.__name__)
def test_every_field_of_every_model_survives_the_codec(model: type[Any]) -> None:
    """A field whose type the codec cannot write or read back fails here (add it to the codec)."""
    original = _filled(model)
    text = json.dumps(encode(original))
    restored = decode(model, json.loads(text))
    for f in dataclasses.fields(model):
        assert getattr(restored, f.name) == getattr(original, f.name), f.name


@pytest.mark.parametrize("model", _persisted_models(), ids=lambda cls: cls.__name__)
def test_fields_left_at_their_defaults_are_left_out_and_come_back(model: type[Any]) -> None:
    """Only the fields without a default are given: the rest are not written, and read back."""
    hints = typing.get_type_hints(model)
    required = {
        f.name: _sample(hints[f.name], f.name)
        for f in dataclasses.fields(model)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }
    original = model(**required)
    data = json.loads(json.dumps(encode(original)))
    assert set(data) == set(required)
    assert decode(model, data) == original


@pytest.mark.parametrize("model", _persisted_models(), ids=lambda cls: cls.__name__)
def test_every_field_of_every_model_survives_a_row(model: type[Any]) -> None:
    """The state file's layout (one JSON array per record under a header naming the fields)."""
    original = _filled(model)
    row = json.loads(json.dumps(row_encoder(model)(original)))
    restored = row_decoder(model, field_names(model))(row)
    for f in dataclasses.fields(model):
        assert getattr(restored, f.name) == getattr(original, f.name), f.name


def test_a_row_written_under_other_fields_is_read_by_name() -> None:
    """A column no field has is ignored; a field the header lacks takes its default."""
    original = _filled(resources.Entitlement)
    names = field_names(resources.Entitlement)
    row = json.loads(json.dumps(row_encoder(resources.Entitlement)(original)))
    assert names[-1] == "migrated_from"  # a field with a default, left out of the header below
    stored = ("retired_field", *reversed(names[:-1]))
    restored = row_decoder(resources.Entitlement, stored)(["old", *reversed(row[:-1])])
    assert original.migrated_from != ""
    assert restored.migrated_from == ""
    assert restored.id == original.id
    assert restored.periods == original.periods
    assert restored.offer_end_time == original.offer_end_time


def test_a_field_of_a_type_the_codec_cannot_read_is_refused() -> None:
    """The round trip above can fail: an unsupported type raises instead of persisting nothing."""

    @dataclasses.dataclass
    class WithOddField:
        odd: dict[int, str]

    with pytest.raises(TypeError):
        decode(WithOddField, {"odd": {}})


def _busy_emulator(path: Path) -> tuple[Emulator, dict[str, str]]:
    """An emulator whose state has one of everything the file must keep."""
    emulator = Emulator(providers=[PROVIDER], state=path)
    backend = emulator.procurement
    emulator.catalog.put(
        PROVIDER,
        "other",
        Product(service_name="other.example.com", plans={"gold": PlanSpec()}, term_days=365),
    )
    account, active = backend.purchase(PROVIDER, "example-product", "basic")
    backend.approve_account(PROVIDER, account.id)
    backend.approve_entitlement(PROVIDER, active.id)
    _, gone = backend.purchase(PROVIDER, "example-product", "pro", account_id=account.id)
    backend.cancel(PROVIDER, gone.id)
    backend.delete_entitlement(PROVIDER, gone.id)
    other_account, pending = backend.purchase(PROVIDER, "other", "gold")
    closed_account, _ = backend.purchase(PROVIDER, "example-product", "basic")
    backend.delete_account(PROVIDER, closed_account.id)
    emulator.faults.configure(
        FaultSettings.model_validate({"checkErrors": {"x": "BILLING_DISABLED"}})
    )
    emulator.advance_clock(3600)  # also journals the settings changed in-process above
    consumer = backend.get_entitlement(PROVIDER, active.id).usage_reporting_id
    start = emulator.clock.now() - timedelta(minutes=30)
    metric = "example-product.endpoints.sandbox.cloud.goog/basic_requests"
    answer = emulator.servicecontrol.report(
        "example-product.endpoints.sandbox.cloud.goog",
        {
            "operations": [
                {
                    "operationId": "op-1",
                    "consumerId": consumer,
                    "startTime": start.isoformat(),
                    "endTime": (start + timedelta(minutes=10)).isoformat(),
                    "metricValueSets": [
                        {"metricName": metric, "metricValues": [{"int64Value": "5"}]}
                    ],
                }
            ]
        },
    )
    assert "reportErrors" not in answer
    operation = {"api": {"service": "example"}, "resource": {"name": "db-1"}}
    emulator.servicecontrol_v2.report(
        "example-product.endpoints.sandbox.cloud.goog",
        {"serviceConfigId": "latest", "operations": [operation]},
    )
    ids = {
        "account": account.id,
        "active": active.id,
        "deleted": gone.id,
        "pending": pending.id,
        "other_account": other_account.id,
        "closed_account": closed_account.id,
        "consumer": consumer,
    }
    return emulator, ids


def _state_of(emulator: Emulator) -> dict[str, Any]:
    accounts, entitlements = emulator.procurement.records()
    return {
        "accounts": sorted((encode(a) for a in accounts), key=lambda a: a["id"]),
        "entitlements": [(encode(e), deleted) for e, deleted in entitlements],
        "next_project_number": emulator.procurement.next_project_number,
        "catalog": emulator.catalog.dump(),
        "faults": emulator.faults.settings.to_json(),
        "clock_offset": emulator.clock.offset,
        "reports": [encode(r) for r in emulator.servicecontrol.accepted_reports()],
        "reports_v2": emulator.servicecontrol_v2.reports(),
    }


def test_a_restarted_emulator_has_the_whole_state_it_had(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    first, ids = _busy_emulator(path)
    before = _state_of(first)
    first.close()

    second = Emulator(providers=[PROVIDER], state=path)
    assert _state_of(second) == before
    assert before["clock_offset"] == timedelta(hours=1)
    assert len(before["reports_v2"]) == 1
    backend = second.procurement
    assert backend.get_entitlement(PROVIDER, ids["active"]).state == resources.ACTIVE
    assert [a.id for a in backend.find_accounts(ids["closed_account"])] == []
    deleted = backend.find_by_usage_reporting_id(ids["consumer"], include_deleted=True)
    assert ids["active"] in [e.id for e in deleted]
    listed, _ = backend.list_entitlements(PROVIDER, f"account={ids['account']}")
    assert [e.id for e in listed] == [ids["active"]]


def test_the_restored_state_keeps_working_clock_transitions_and_new_ids(tmp_path: Path) -> None:
    """Due times, the project-number counter and the report ledger are rebuilt, not just data."""
    path = tmp_path / "state.jsonl"
    first, ids = _busy_emulator(path)
    first.close()
    second = Emulator(providers=[PROVIDER], state=path)
    second.advance_clock(31 * 86_400)
    assert [p["eventType"] for p in second.notifications()] == ["ENTITLEMENT_RENEWED"]
    _, fresh = second.procurement.purchase(PROVIDER, "example-product", "basic")
    assert fresh.usage_reporting_id != ids["consumer"]
    assert fresh.usage_reporting_id.startswith("project_number:")
    assert len(second.servicecontrol.accepted_reports()) == 1


def test_each_write_is_on_disk_before_the_call_returns(tmp_path: Path) -> None:
    """No close, no compaction: what a killed process leaves behind still has the last write."""
    path = tmp_path / "state.jsonl"
    first = Emulator(providers=[PROVIDER], state=path)
    account, entitlement = first.procurement.purchase(PROVIDER, "example-product", "basic")
    first.procurement.approve_account(PROVIDER, account.id)
    # `first` is not closed: the file is read as a crash would leave it
    second = Emulator(providers=[PROVIDER], state=path)
    assert second.procurement.get_account(PROVIDER, account.id).signup_state == "APPROVED"
    assert second.procurement.get_entitlement(PROVIDER, entitlement.id).plan == "basic"


def test_a_line_torn_by_a_crash_loses_only_that_write(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    first = Emulator(providers=[PROVIDER], state=path)
    account, _ = first.procurement.purchase(PROVIDER, "example-product", "basic")
    first.procurement.approve_account(PROVIDER, account.id)
    first.close()
    content = path.read_bytes()
    path.write_bytes(content + b'{"store": {"accounts": [{"key": ["x"')  # a write cut short
    second = Emulator(providers=[PROVIDER], state=path)
    assert second.procurement.get_account(PROVIDER, account.id).signup_state == "APPROVED"


def test_a_damaged_line_before_the_last_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    Emulator(providers=[PROVIDER], state=path).close()
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([lines[0], b"{not json", *lines[1:]]))
    with pytest.raises(StateError, match="line 2"):
        Emulator(providers=[PROVIDER], state=path)


def test_a_file_that_is_not_a_state_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text('{"hello": 1}\n')
    with pytest.raises(StateError, match="not an emulator state file"):
        Emulator(providers=[PROVIDER], state=path)


def test_a_state_file_of_an_unknown_version_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    path.write_text('{"format": "marketplace-emulator-state", "version": 99}\n')
    with pytest.raises(StateError, match="version 99 is not one this emulator reads"):
        Emulator(providers=[PROVIDER], state=path)


def test_a_version_1_file_is_read_and_rewritten_as_rows(tmp_path: Path) -> None:
    """Version 1 wrote each record as a JSON object; its files still load."""
    path = tmp_path / "state.jsonl"
    first = Emulator(providers=[PROVIDER], state=path)
    account, entitlement = first.procurement.purchase(PROVIDER, "example-product", "basic")
    first.close()
    record = first.procurement.get_entitlement(PROVIDER, entitlement.id)
    store = {
        "accounts": [{"key": [PROVIDER, account.id], "record": encode(account)}],
        "entitlements": [
            {
                "key": [PROVIDER, entitlement.id],
                "seq": 0,
                "deleted": False,
                "record": encode(record),
            }
        ],
        "nextProjectNumber": 100000000002,
    }
    lines = [{"format": "marketplace-emulator-state", "version": 1}, {"store": store}]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    second = Emulator(providers=[PROVIDER], state=path)
    assert second.procurement.get_entitlement(PROVIDER, entitlement.id) == record
    assert json.loads(path.read_text().splitlines()[0])["version"] == 2


def test_reset_forgets_everything_in_the_file_too(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    first, _ = _busy_emulator(path)
    first.reset()
    first.close()
    second = Emulator(providers=[PROVIDER], state=path)
    state = _state_of(second)
    assert state["accounts"] == []
    assert state["entitlements"] == []
    assert state["reports"] == []
    assert state["reports_v2"] == []
    assert state["clock_offset"] == timedelta()
    assert "other" not in second.catalog.products(PROVIDER)


def test_the_journal_is_compacted_on_start_and_when_it_grows(tmp_path: Path) -> None:
    path = tmp_path / "state.jsonl"
    first = Emulator(providers=[PROVIDER], state=path)
    assert first.state is not None
    first.state.compact_after_lines = 10
    for _ in range(12):
        first.procurement.purchase(PROVIDER, "example-product", "basic")
    grown = len(path.read_bytes().splitlines())
    first.advance_clock(1)  # a point where no lock is held: compaction happens here
    assert grown > 10
    assert len(path.read_bytes().splitlines()) == 3  # header, settings, store
    first.close()
    second = Emulator(providers=[PROVIDER], state=path)
    assert len(second.procurement.entitlements(PROVIDER)) == 12
