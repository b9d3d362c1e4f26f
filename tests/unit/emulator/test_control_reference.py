"""docs/emulator.md carries the control API's reference as the code serves it."""

from __future__ import annotations

from pathlib import Path

from marketplace_emulator.control.reference import main, reference, with_reference
from marketplace_emulator.server import Emulator, create_app

DOC = Path(__file__).resolve().parents[3] / "docs" / "emulator.md"


def test_the_documented_control_api_reference_matches_the_routes() -> None:
    """Regenerate: `python -m marketplace_emulator.control.reference --write docs/emulator.md`."""
    assert main(["--check", str(DOC)]) == 0


def test_every_control_endpoint_has_a_row_with_its_docstring() -> None:
    table = reference(create_app(Emulator()))
    assert "| `POST` | `/emulator/v1/clock:advance` | Move the clock forward;" in table
    assert "| `PUT` | `/emulator/v1/faults` |" in table
    assert "/marketplace" not in table  # the buyer's page is not part of the API
    assert all(row.count("|") == 4 for row in table.splitlines()), "a docstring broke a row"


def test_the_check_fails_when_the_document_is_out_of_date(tmp_path: Path) -> None:
    stale = tmp_path / "emulator.md"
    table = reference(create_app(Emulator()))
    document = DOC.read_text(encoding="utf-8")
    stale.write_text(with_reference(document, table.replace("clock:advance", "clock:skip")))
    assert main(["--check", str(stale)]) == 1
