"""Exceptions for every failure a user can cause, each rendered as one readable line.

Every error raised at a boundary (config, data file, model bundle, cluster request)
derives from :class:`PtychoError`.  A CLI catches ``PtychoError``, prints
``error.one_line()`` and exits with :data:`EXIT_BAD_INPUT` (2).  Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2


class PtychoError(Exception):
    """Base class: a problem with what the user gave us, explained in one line.

    ``where`` names the field, key or file; ``expected`` and ``found`` say what was
    wanted and what was there; ``hint`` says how to fix it.
    """

    kind = "error"

    def __init__(
        self,
        message: str = "",
        *,
        where: str | None = None,
        expected: str | None = None,
        found: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.where = where
        self.expected = expected
        self.found = found
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """``where: message; expected E, found F. HINT: h`` on a single line."""
        text = self.message or self.kind
        if self.where:
            text = f"{self.where}: {text}"
        details = []
        if self.expected is not None:
            details.append(f"expected {self.expected}")
        if self.found is not None:
            details.append(f"found {self.found}")
        if details:
            text += "; " + ", ".join(details)
        if self.hint:
            text += f". HINT: {self.hint}"
        return " ".join(text.split())  # always a single line


class ConfigError(PtychoError):
    """A config file, field, value or override is invalid."""

    kind = "config error"


class UsageError(PtychoError):
    """A command-line flag is missing, unknown or has a value of the wrong type."""

    kind = "usage error"


class DataContractError(PtychoError):
    """A scan file (NPZ/HDF5) breaks the data contract (DATA-001)."""

    kind = "data contract error"


class BundleError(PtychoError):
    """A model bundle is missing, corrupt, of another format version, or does not match."""

    kind = "bundle error"


class CheckpointError(PtychoError):
    """A training checkpoint cannot be used for resuming."""

    kind = "checkpoint error"


class TrainingCollapseError(PtychoError):
    """Training collapsed: an output branch of the generator went constant (see workflows/guard.py)."""

    kind = "training collapse"
