"""The sign-up JWT issuer (`x-gcp-marketplace-token`) and its x509 and JWK certificate endpoints."""

from marketplace_emulator.identity.models import ISSUER, IdentityIssuer
from marketplace_emulator.identity.routes import router

__all__ = ["ISSUER", "IdentityIssuer", "router"]
