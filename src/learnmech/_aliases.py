"""Deprecated keyword aliases for renamed parameters (the glossary in ``docs/architecture.md``).

A public function whose parameter was renamed keeps accepting the old keyword for a while: :func:`renamed` maps it
to the new name and warns with a ``DeprecationWarning``. The old name is keyword-only by construction (it is not in
the signature, which ``inspect.signature`` reads from the wrapped function) and is listed in
``fn.__deprecated_aliases__`` so that ``tests/test_glossary.py`` can check it is documented as deprecated.
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
