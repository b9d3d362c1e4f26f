"""Service Control v1 (`check`, `report`) as Google Cloud Marketplace uses it for usage billing."""

from marketplace_emulator.servicecontrol.models import AcceptedOperation, ServiceControlBackend
from marketplace_emulator.servicecontrol.routes import router

__all__ = ["AcceptedOperation", "ServiceControlBackend", "router"]
