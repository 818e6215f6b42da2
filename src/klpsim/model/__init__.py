"""The model: a booted System, its typed events, invariants and their checker,
attachment health and the one module schema (docs/architecture.md)."""
