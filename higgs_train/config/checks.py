"""The value checks a config field declares in its metadata (`check`), each a callable `(key, value)` that raises
`ConfigError` with one line naming the key, the value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import field, fields
from typing import Any, ClassVar

from higgs_train.runtime.errors import UserError


class ConfigError(UserError):
    """One config key with a bad value; the message names the key and what is allowed."""


def shown(value: Any) -> str:
    """A value as the user typed it: 0 rather than 0.0, quotes around text."""
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def setting(default: Any = None, help: str = "", check: Callable | None = None, factory: Callable | None = None):
    """A config field: its default, its one-line help (shown by `higgs-train --help`) and its check."""
    metadata = {"help": help, "check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def one_of(*allowed) -> Callable:
    def check(key: str, value) -> None:
        if value not in allowed:
            raise ConfigError(f"{key}={shown(value)} is not allowed; use one of {list(allowed)}")
    check.allowed = allowed  # for a form to offer them (higgs-studio)
    return check


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(minimum: float = 0, inclusive: bool = True, optional: bool = False, why: str = "") -> Callable:
    """A finite number above `minimum` (or from it, when inclusive); None too when optional."""
    def check(key: str, value) -> None:
        if optional and value is None:
            return
        if not is_number(value) or (value < minimum if inclusive else value <= minimum):
            bound = f">= {minimum}" if inclusive else f"> {minimum}"
            raise ConfigError(f"{key}={shown(value)} must be a finite number {bound}{why}")
    return check


def count(minimum: int = 1, optional: bool = False, why: str = "") -> Callable:
    """An integer from `minimum` on (1: "a positive integer"); None too when optional."""
    def check(key: str, value) -> None:
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
            raise ConfigError(f"{key}={shown(value)} must be {what}{' or null' if optional and not why else ''}{why}")
    return check


class Group:
    """A config group's dataclass: turning the composed config into objects (`OmegaConf.to_object`) runs each
    field's `check`, then the group's own `check()` across its fields."""

    KEY: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for item in fields(self):
            if item.metadata.get("check") is not None:
                item.metadata["check"](self.key(item.name), getattr(self, item.name))
        self.check()

    def key(self, name: str) -> str:
        return f"{self.KEY}.{name}" if self.KEY else name

    def check(self) -> None:
        """Checks across this group's fields (none by default)."""
