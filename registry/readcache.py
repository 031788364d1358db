"""What /m/ reads to answer a load, remembered in each process between writes.

A model.json request used to cost three or four queries (the model for
CORS, the model again for the view, the alias→version, a token) before a
byte was sent. Now every write that can change what a /m/ URL answers
(models, versions, aliases, blobs, access links, tokens, memberships,
accounts) replaces one number in the database, the read generation, once
its transaction has committed (registry.signals connects them). A request
reads that number once (a primary-key read) and answers from this
process's memory while it is unchanged; when it has changed, the memory is
dropped and rebuilt from the database as requests need it.

A write is therefore seen by every request that starts after the number
changed (right after the write's commit), in every process. A request that read the generation before a
write stores what it loaded under that older generation, where no later
request looks. The number is random, not a counter, so a test database
flushed and re-created never meets a process's memory of an earlier one;
without the row (a flushed database) nothing is remembered. Should a
write's update of the number itself fail, what a process remembers is
still dropped after MAX_AGE_SECONDS.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

logger = logging.getLogger(__name__)

# Plenty for every model, ref and token in use; URLs naming nothing also
# take a place, so the memory is dropped when full rather than grow.
MAX_ENTRIES = 20_000
MAX_AGE_SECONDS = 60
_ROW = 1
# registry.models.ReadGeneration's table (tests/test_readcache.py checks it).
TABLE = "registry_readgeneration"
CHANNEL = "modelport_read_generation"
LISTENER_RETRY_SECONDS = 2


class _Memory:
    def __init__(self, generation: int | None) -> None:
        self.generation = generation
        self.entries: dict[Hashable, Any] = {}
        self.expires = time.monotonic() + MAX_AGE_SECONDS


_memory = _Memory(None)
_lock = threading.Lock()


class _Listener:
    """On PostgreSQL, a thread of each process LISTENs for the number's
    changes (``_new_generation`` NOTIFYs them) and keeps it, so a request
    reads no row at all. Until it is listening, and whenever its connection
    fails, ``value`` is None and requests read the row as on SQLite."""

    def __init__(self) -> None:
        self.value: int | None = None
        self.pid = 0
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start_if_needed(self) -> None:
        if self.pid == os.getpid() or not settings.READCACHE_LISTEN or connection.vendor != "postgresql":
            return
        with _lock:
            if self.pid == os.getpid():
                return
            self.pid, self.value = os.getpid(), None  # a forked child starts its own
            params = connection.get_connection_params()
            self.thread = threading.Thread(target=self._run, args=(params,), name="readcache-listener", daemon=True)
            self.thread.start()

    def stop(self) -> None:
        """Close the listening connection (a test database can then be dropped)."""
        self.stopping.set()
        if self.thread is not None and self.pid == os.getpid():
            self.thread.join(timeout=5)

    def _run(self, params: dict) -> None:
        import psycopg

        while not self.stopping.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as listening:
                    listening.execute(f"LISTEN {CHANNEL}")
                    row = listening.execute(f"SELECT value FROM {TABLE} WHERE id = %s", [_ROW]).fetchone()
                    self.value = row[0] if row else None
                    while not self.stopping.is_set():
                        for notice in listening.notifies(timeout=1.0):
                            self.value = int(notice.payload)
            except Exception:  # noqa: BLE001 - any failure: back to reading the row
                logger.warning("read generation listener lost its connection; reading the row meanwhile", exc_info=True)
            self.value = None
            self.stopping.wait(LISTENER_RETRY_SECONDS)


_listener = _Listener()


def generation(request) -> int | None:
    """The read generation, known once per request."""
    try:
        return request._modelport_read_generation
    except AttributeError:
        pass
    _listener.start_if_needed()
    value = _listener.value
    if value is None:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT value FROM {TABLE} WHERE id = %s", [_ROW])
            row = cursor.fetchone()
        value = row[0] if row else None
    request._modelport_read_generation = value
    return value


def remember(request, key: Hashable, load: Callable[[], Any]) -> Any:
    """``load()``, or what it returned for ``key`` since the last write.
    What is remembered is shared by the process's threads: treat it as read-only."""
    global _memory
    current = generation(request)
    if current is None:
        return load()
    memory = _memory
    if memory.generation != current or memory.expires < time.monotonic():
        with _lock:
            if _memory is memory:
                _memory = _Memory(current)
            memory = _memory
        if memory.generation != current:  # another request's, just made
            return load()
    try:
        return memory.entries[key]
    except KeyError:
        pass
    value = load()
    if len(memory.entries) >= MAX_ENTRIES:
        memory.entries.clear()
    memory.entries[key] = value
    return value


def forget_after_commit(**kwargs) -> None:
    """Start a new read generation once the current transaction commits
    (at once outside one). Connected to the writes that matter; also call
    it after a ``QuerySet.update()`` or ``bulk_create()`` of them, which send
    no signals. This process's memory is dropped at once too, which tests
    running inside one transaction that never commits rely on."""
    global _memory
    _memory = _Memory(None)
    # Robust: the write has committed; a failure to announce it is logged
    # (and MAX_AGE_SECONDS bounds it) rather than turned into a 500.
    transaction.on_commit(_new_generation, robust=True)


def _new_generation() -> None:
    value, heard = secrets.randbits(62), _listener.value
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {TABLE} SET value = %s WHERE id = %s", [value, _ROW])
        updated = cursor.rowcount
    if not updated:
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"INSERT INTO {TABLE} (id, value) VALUES (%s, %s)", [_ROW, value])
        except IntegrityError:  # another process made the row at the same moment
            return _new_generation()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(value)])
    if _listener.value == heard:
        # Until its own notice arrives, this process reads the row: the next
        # request (often the writer's own) must not use the number from before.
        _listener.value = None
