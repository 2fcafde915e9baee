"""Fixtures for the interoperability tests: one real server for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.interop.server import LiveServer, ServerProcess


@pytest.fixture(scope="session")
def jmap_server(tmp_path_factory) -> Iterator[LiveServer]:
    server = ServerProcess(tmp_path_factory.mktemp("interop"))
    try:
        yield server.start()
    finally:
        server.stop()
