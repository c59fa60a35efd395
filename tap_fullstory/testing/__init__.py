"""Test tooling: a local FullStory export API emulator (``Emulator``) and its pytest fixtures.

``Emulator`` is imported lazily so that ``python -m tap_fullstory.testing.emulator`` runs cleanly.
"""

from __future__ import annotations

import typing as t

__all__ = ["Emulator"]

if t.TYPE_CHECKING:
    from .emulator import Emulator


def __getattr__(name: str) -> t.Any:
    if name == "Emulator":
        from .emulator import Emulator

        return Emulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
