"""The one exception the stack manager raises, carrying the log that explains it."""

from __future__ import annotations

from pathlib import Path

# How much of a failing service's log goes into the message: enough to show the cause
# without burying it.
LOG_TAIL_LINES = 25
# Only the end of a log matters; never read a multi-gigabyte file whole.
LOG_TAIL_BYTES = 64 * 1024


class StackError(RuntimeError):
    """A service could not be installed, started, made healthy or stopped."""

    def __init__(self, message: str, log_file: Path | None = None) -> None:
        self.message = message
        self.log_file = log_file
        super().__init__(self._render())

    def _render(self) -> str:
        if self.log_file is None:
            return self.message
        lines = tail(self.log_file, LOG_TAIL_LINES)
        text = f"{self.message}\n  log: {self.log_file}"
        if lines:
            text += "\n  last lines:\n    " + "\n    ".join(lines)
        return text


def tail(path: Path, lines: int) -> list[str]:
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            data = f.read()
    except OSError:
        return []
    return [line for line in data.decode("utf-8", "replace").splitlines() if line.strip()][-lines:]
