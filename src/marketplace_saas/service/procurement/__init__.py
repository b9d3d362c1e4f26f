"""Procurement: notifications in, the lifecycle handlers, decisions, our records, reconciliation."""
