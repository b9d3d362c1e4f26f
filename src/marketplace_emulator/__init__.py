"""A local emulator of Google's side of a Cloud Marketplace SaaS integration.

Procurement API v1, Service Control v1, the sign-up JWT issuer, and procurement notifications
delivered to the real Pub/Sub emulator or to a push endpoint, driven by simulated customer actions
and seeded fault injection. Nothing here talks to Google.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
