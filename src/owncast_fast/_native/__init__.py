"""Compiled hot paths (Cython, built from ext/ by CMakeLists.txt).

Each module has a `.pyi` stub here and a pure-Python twin with the same API in
`owncast_fast._pure`, used only by differential tests and benchmarks. Production code imports
from this package directly, so a broken native build fails loudly at import time.
"""
