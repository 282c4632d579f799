"""Helpers of the CLI tests."""

from __future__ import annotations


def explain_rows(text: str) -> dict[str, list[str]]:
    """``{field: [value, source...]}`` from a provenance table (--explain)."""
    rows = {}
    for line in text.splitlines()[2:]:
        if line.strip() and not line.startswith("#"):
            parts = line.split()
            rows.setdefault(parts[0], parts[1:])
    return rows
