"""Exit codes and the one error type every command raises for bad input."""

from __future__ import annotations

from watui.errors import WatuiError

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_BAD_INPUT = 2
EXIT_PAUSED = 3
EXIT_INTERRUPTED = 130


class CliError(WatuiError):
    """Bad input: printed as one line on stderr, exit code 2 unless said otherwise."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code
