"""The operator console under `/admin` (docs/admin.md): sign-in, pages, and operator actions."""

from __future__ import annotations

from fastapi import APIRouter

from marketplace_saas.entrypoints.web.admin import actions, auth, pages

router = APIRouter()
router.include_router(auth.router)
router.include_router(pages.router)
router.include_router(actions.router)

__all__ = ["router"]
