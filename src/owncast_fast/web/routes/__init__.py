"""One router module per API area; each exposes `router(services) -> SubRouter`."""
