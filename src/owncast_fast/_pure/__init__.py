"""Pure-Python reference twins of the modules in `owncast_fast._native`.

Same API, same results, same error messages: the differential tests and benchmarks run both.
Never imported by the server itself.
"""
