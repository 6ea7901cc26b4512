"""Deprecated keyword aliases for renamed parameters (the glossary in ``docs/architecture.md``).

A public function whose parameter was renamed keeps accepting the old keyword for a while: :func:`renamed` maps it
to the new name and warns with a ``DeprecationWarning``. The old name is keyword-only by construction (it is not in
the signature, which ``inspect.signature`` reads from the wrapped function) and is listed in
``fn.__deprecated_aliases__`` so that ``tests/test_glossary.py`` can check it is documented as deprecated.
A renamed attribute of a result or rule class keeps its old name as a read-only :func:`renamed_attribute`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def renamed(**old_to_new: str) -> Callable[[F], F]:
    """Decorator: accept each ``old=`` keyword as a deprecated alias of ``new=`` (DeprecationWarning).

    Passing both the old and the new name is a TypeError, as for any argument given twice.
    """

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {new!r} and its deprecated alias {old!r}")
                    warnings.warn(f"{fn.__name__}(): {old!r} is deprecated, use {new!r}", DeprecationWarning,
                                  stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        wrapper.__deprecated_aliases__ = dict(old_to_new)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate


class _RenamedAttribute:
    """Data descriptor: the old, read-only name of the attribute ``new`` (see :func:`renamed_attribute`)."""

    def __init__(self, new: str, warn: bool) -> None:
        self.new, self.warn = new, warn
        self.__doc__ = f"Deprecated alias of ``{new}``."

    def __set_name__(self, owner: type, name: str) -> None:
        self.old, self.owner = name, owner.__name__

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        if obj is None:
            return self
        if self.warn:
            warnings.warn(f"{self.owner}.{self.old} is deprecated, use {self.owner}.{self.new}", DeprecationWarning,
                          stacklevel=2)
        return getattr(obj, self.new)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"{self.owner}.{self.old} is a read-only alias of {self.new!r}; set {self.new!r}")


def renamed_attribute(new: str, *, warn: bool = True) -> Any:
    """Class attribute: the old name of the renamed attribute ``new``, read-only, warning with a
    ``DeprecationWarning`` on each read when ``warn`` (result objects' ``diverged_at`` stays silent, as the glossary
    says). Use as ``init_std = renamed_attribute("std")`` in the class body (no annotation: not a dataclass field)."""
    return _RenamedAttribute(new, warn)
