"""Use cases: what a start, a stop or a query does, on top of the registry and the process layer."""
