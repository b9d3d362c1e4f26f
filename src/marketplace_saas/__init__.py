"""A SaaS provider's backend for Google Cloud Marketplace.

Listens to procurement notifications, approves accounts and entitlements through the Partner
Procurement API after sign-up, keeps the provider's record of every customer, and reports usage to
Service Control exactly once.
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
