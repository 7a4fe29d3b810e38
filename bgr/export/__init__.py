"""The way out: a stack as files another engine runs, one module per engine.

``systemd`` (user units and a target), ``compose`` (a Compose file) and ``kubernetes`` (manifests)
each turn a :class:`bgr.stack.files.Stack` whose environments are complete (config files read in)
into :class:`model.Output` files, as data; ``emit`` writes the YAML they need without a YAML
library. Nothing here reads the registry, starts anything or prints: :mod:`bgr.core.exports`
gathers the input and :mod:`bgr.cli` writes the files.
"""
