"""The integration tests' helpers (media generation, the raw RTMP and HTTP clients), for the benches.

tests/integration is not a package (pytest imports its modules by path), so they are loaded by path,
once, under stable names.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

INTEGRATION = Path(__file__).resolve().parents[1] / "tests" / "integration"


@functools.cache
def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"owncast_fast_bench_{name}", INTEGRATION / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
