"""entrypoints layer of the provider's backend (see docs/architecture.md)."""
