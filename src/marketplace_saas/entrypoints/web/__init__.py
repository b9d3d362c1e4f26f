"""The web entrypoint: `create_app(container)` and its routers (one module each)."""

from marketplace_saas.entrypoints.web.app import create_app

__all__ = ["create_app"]
