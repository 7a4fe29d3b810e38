"""The process layer: identity, spawn, stop, ports and locks; the only place that knows the platform."""
