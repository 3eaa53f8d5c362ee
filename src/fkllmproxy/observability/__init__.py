"""Observability: JSON logs, metrics, and the usage ledger."""
