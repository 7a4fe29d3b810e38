"""Stacks: several processes defined in one file, brought up and down together.

``files`` reads ``bgr.toml`` (and a ``Procfile`` with its ``.env``, via ``dotenv``) into typed
records, ``graph`` orders them by ``depends_on`` and refuses cycles, ``plan`` says what ``bgr --up``
would do, as data. Nothing here starts, stops or prints: the use cases are in
:mod:`bgr.core.stacks`, the command line in :mod:`bgr.cli`, the exports in :mod:`bgr.export`.
"""
