"""Located spec errors: what is wrong, where (file, line, column, key path), and a hint."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SpecError:
    file: str
    line: int  # 1-based; 0 when unknown
    column: int  # 1-based; 0 when unknown
    path: str  # key path, e.g. "services.cart.replicas"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        at = f" {self.path}:" if self.path else ""
        return f"{where}:{at} {self.message}"


class SpecErrors(Exception):
    """All errors found in one spec file, sorted by position."""

    def __init__(self, errors: list[SpecError]):
        self.errors = sorted(set(errors), key=lambda e: (e.file, e.line, e.column, e.message))
        super().__init__("\n".join(map(str, self.errors)))


def format_path(path: tuple[object, ...]) -> str:
    """``('services', 'cart', 'calls', 0)`` -> ``services.cart.calls[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
