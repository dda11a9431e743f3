"""A clear personal value that never shows itself by accident."""

from __future__ import annotations

import hmac
from typing import Any

MASKED = "Secret('***')"


class Secret:
    """A clear value (a name, a mobile, an ID number) whose repr, str and format are masked.

    Logs, tracebacks, f-strings and error bodies print ``Secret('***')``; only ``reveal()`` gives
    the value, so each place that needs it in clear says so in the code. Equality compares in
    constant time; a secret is not hashable (a hash table of them would be an index in clear).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return MASKED

    def __str__(self) -> str:
        return MASKED

    def __format__(self, spec: str) -> str:
        return MASKED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> Any:
        raise TypeError("a Secret is not pickled: encrypt it instead")
