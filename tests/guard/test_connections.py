"""guard.connections: one registry connection per thread, opened again when it cannot be trusted."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import bgr.store
from bgr.errors import LockHeld, NoRegistry, RegistryError
from guard.connections import PAGE_CACHE_KIB, Connections
from tests.support import run_bgr, start_cli


def test_a_thread_keeps_its_connection_and_another_thread_gets_its_own() -> None:
    start_cli("web", "sleep 60")
    connections = Connections(None)
    with connections.use() as first, connections.use() as nested:
        assert first is nested
        assert first.get("web") is not None
    with connections.use() as again:
        assert again is first
    other: list[object] = []
    thread = threading.Thread(target=lambda: other.append(connections.use().__enter__()))
    thread.start()
    thread.join()
    assert other and other[0] is not first


def cache_kib(reg: bgr.store.Registry) -> int:
    size = int(reg._conn.execute("PRAGMA cache_size").fetchone()[0])
    assert size < 0, "a cache size in pages, not KiB"
    return -size


def test_a_kept_connection_has_a_small_page_cache() -> None:
    start_cli("web", "sleep 60")
    with Connections(None).use() as kept:
        assert cache_kib(kept) == PAGE_CACHE_KIB
    with bgr.store.open_registry() as short_lived:
        assert cache_kib(short_lived) > PAGE_CACHE_KIB  # SQLite's default, for one command


def test_a_replaced_or_removed_registry_is_opened_again(bgr_home: Path) -> None:
    start_cli("web", "sleep 60")
    connections = Connections(None)
    with connections.use() as first:
        assert first.get("web") is not None
    run_bgr("--nuke", check=True)
    old = bgr_home / "old"
    old.mkdir()
    for path in bgr_home.glob("bgr.sqlite*"):
        os.rename(path, old / path.name)
    with pytest.raises(NoRegistry):
        connections.use().__enter__()
    start_cli("api", "sleep 60")  # a new registry file at the same path
    with connections.use() as fresh:
        assert fresh is not first
        assert fresh.names() == ["api"]


def test_a_registry_error_drops_the_connection_and_a_held_name_lock_does_not() -> None:
    start_cli("web", "sleep 60")
    connections = Connections(None)
    with connections.use() as first:
        pass
    with pytest.raises(RegistryError), connections.use():
        raise RegistryError("locked")
    with connections.use() as second:
        assert second is not first
    # A name's lock held by a bgr command says nothing about the registry: the connection stays.
    with pytest.raises(LockHeld), connections.use():
        raise LockHeld("process 'web' is busy")
    with connections.use() as third:
        assert third is second
