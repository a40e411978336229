"""
Opening the store's SQLite file, and taking transactions on it.

Several worker processes and the operator CLI share the file, so it runs in
WAL mode (readers never wait for the writer), waits up to a busy timeout for
the write lock instead of failing at once, and keeps every transaction
short: writes start with C{BEGIN IMMEDIATE} so that two writers queue at the
start rather than deadlock on a lock upgrade.  SQLite's exceptions come out
as the store's (L{Conflict}, L{NotFound}, L{Busy}, L{StoreError}).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from scep.store import Busy, Conflict, NotFound, StoreError
from scep.store.schema import SCHEMA_VERSION, ddl


def open_database(path: str, busy_timeout: float) -> sqlite3.Connection:
    """
    Open (creating if needed) the store's database at C{path}, set it up,
    and create or check its schema.
    """
    if path != ":memory:":
        _create_file(path)
    try:
        db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as e:
        raise StoreError(f"{path}: {e}") from e
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        _migrate(db, path)
    except sqlite3.Error as e:
        db.close()
        raise translate(e) from e
    except BaseException:
        db.close()
        raise
    return db


def _migrate(db: sqlite3.Connection, path: str) -> None:
    """
    Create the schema if the file is new; refuse a newer one.
    """
    with write_transaction(db):
        for statement in ddl("sqlite"):
            db.execute(statement)
        (version,) = db.execute("SELECT MAX(version) FROM schema_version").fetchone()
        if version is None:
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
        elif version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: schema version {version} is newer than this program's ({SCHEMA_VERSION})"
            )


@contextmanager
def write_transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """
    One write transaction, taken with BEGIN IMMEDIATE, committed on success
    and rolled back on any exception.
    """
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as e:
        raise translate(e) from e
    try:
        yield db
    except BaseException as e:
        db.execute("ROLLBACK")
        if isinstance(e, sqlite3.Error):
            raise translate(e) from e
        raise
    try:
        db.execute("COMMIT")
    except sqlite3.Error as e:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise translate(e) from e


def read(db: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """
    The rows of one query (a read transaction of its own).
    """
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.Error as e:
        raise translate(e) from e


def translate(error: sqlite3.Error) -> StoreError:
    """
    The store's exception for an SQLite one.
    """
    message = str(error)
    if isinstance(error, sqlite3.IntegrityError):
        if "UNIQUE" in message or "PRIMARY KEY" in message:
            return Conflict(message)
        if "FOREIGN KEY" in message:
            return NotFound(f"a referenced row does not exist ({message})")
        return StoreError(message)
    if isinstance(error, sqlite3.OperationalError) and ("locked" in message or "busy" in message):
        return Busy(message)
    return StoreError(message)


def _create_file(path: str) -> None:
    """
    Create the database file (mode 0600) and its directory if missing.
    SQLite gives the -wal and -shm files the database file's mode.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError as e:
        raise StoreError(f"{path}: cannot create the database file: {e}") from e
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
