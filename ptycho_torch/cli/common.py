"""What every CLI shares: one-line errors with exit code 2, thread settings."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence

from ptycho_torch.errors import EXIT_BAD_INPUT, PtychoError


def run_cli(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> int:
    """Run ``main(argv)``; a :class:`PtychoError` becomes one line on stderr and exit 2.

    Unknown exceptions keep their traceback: they are bugs, not bad input.  Warnings are
    printed as one ``warning: ...`` line each.
    """
    warnings.formatwarning = _one_line_warning
    try:
        code = main(argv)
    except PtychoError as err:
        print(f"{err.kind}: {err.one_line()}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:  # noqa: ARG001 - warnings API
    return f"warning: {' '.join(str(message).split())}\n"
