"""The control API (`/emulator/v1/...`): customer actions and emulator housekeeping.

Fault injection has its own router (`control/faults.py`), included by `server.create_app`.
"""

from __future__ import annotations

from fastapi import APIRouter

from marketplace_emulator.control import admin, customers, seed

router = APIRouter()
router.include_router(customers.router)
router.include_router(admin.router)
router.include_router(seed.router)
