"""Runs the tests on another build of the C scanner: `pytest -p tests.fuzz.use_build` with
TAP_FULLSTORY_COLUMNS_SO=<path of a built _columns extension> (the sanitizer build of `make
sanitize`, the fuzzing build of `make fuzz`, or an old build to see a regression test fail).

Imported before anything imports `tap_fullstory.scanner`, it registers that file as
`tap_fullstory._columns`, so the installed build is never loaded in this process. Without the
variable it changes nothing. Test-only: the tap itself has no such switch.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
import types

VARIABLE = "TAP_FULLSTORY_COLUMNS_SO"


def load() -> types.ModuleType | None:
    """The build named by the variable, as `tap_fullstory._columns` (None: no variable)."""
    path = os.environ.get(VARIABLE)
    if not path:
        return None
    name = "tap_fullstory._columns"
    loaded = sys.modules.get(name)
    if loaded is not None:
        if os.path.exists(_file(loaded)) and os.path.samefile(_file(loaded), path):
            return loaded
        raise RuntimeError(f"{name} was imported from {_file(loaded)} before {VARIABLE} applied")
    import tap_fullstory

    spec = importlib.util.spec_from_file_location(
        name, path, loader=importlib.machinery.ExtensionFileLoader(name, path))
    if spec is None or spec.loader is None:
        raise RuntimeError(f"{VARIABLE}={path}: not a loadable extension")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    tap_fullstory._columns = module  # type: ignore[attr-defined]
    return module


def _file(module: types.ModuleType) -> str:
    return getattr(module, "__file__", None) or "?"


load()
