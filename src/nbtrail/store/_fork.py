"""Fork safety for the store.

A forked child gets a copy of the parent's memory but only the forking thread. If
another thread was inside DuckDB at that moment, the child inherits DuckDB's global
mutexes locked by a thread that no longer exists, and its first ``duckdb.connect``
hangs forever. Likewise a lock file opened but not yet registered for closing would
keep its ``flock`` alive in the child. So a fork waits until no thread is inside DuckDB
(``duckdb_section``) or registering a lock file (``open_lock``), and holds both off
until it is done.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

_Callback = TypeVar("_Callback", bound=Callable[[], None])


class _Gate:
    """Any number of threads may be inside at once; a fork waits until none is."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._inside = 0
        self._forking = False
        self._depth = threading.local()

    @contextlib.contextmanager
    def section(self) -> Iterator[None]:
        depth = getattr(self._depth, "n", 0)
        if depth == 0:  # re-entry by a thread already inside must not wait for a fork
            with self._cond:
                self._cond.wait_for(lambda: not self._forking)
                self._inside += 1
        self._depth.n = depth + 1
        try:
            yield
        finally:
            self._depth.n = depth
            if depth == 0:
                with self._cond:
                    self._inside -= 1
                    self._cond.notify_all()

    def close(self) -> None:
        """Wait until no thread is inside, and keep new ones out until ``open``."""
        mine = 1 if getattr(self._depth, "n", 0) else 0  # a fork from inside a section
        with self._cond:
            self._forking = True  # new entrants wait, so a busy process cannot starve us
            self._cond.wait_for(lambda: self._inside == mine)

    def open(self) -> None:
        with self._cond:
            self._forking = False
            self._cond.notify_all()


_gate = _Gate()
_fds_lock = threading.Lock()
_lock_fds: set[int] = set()  # lock files open in this process, closed in a forked child
_before_fork: list[Callable[[], None]] = []


def duckdb_section() -> contextlib.AbstractContextManager[None]:
    """Wrap every use of DuckDB: no fork happens while a thread is inside."""
    return _gate.section()


def on_fork(callback: _Callback) -> _Callback:
    """Run ``callback`` in the parent just before a fork, once no thread is in DuckDB."""
    _before_fork.append(callback)
    return callback


@contextlib.contextmanager
def open_lock(path: Path) -> Iterator[int]:
    """Open a lock file that a forked child closes instead of inheriting its ``flock``.

    Closing the child's copy leaves the parent's lock in place: an ``flock`` belongs to
    the open file, which the parent still has open.
    """
    with _fds_lock:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        _lock_fds.add(fd)
    try:
        yield fd
    finally:
        with _fds_lock:
            if fd in _lock_fds:  # else a forked child closed its copy already
                _lock_fds.discard(fd)
                os.close(fd)


def _before() -> None:
    _gate.close()
    for callback in _before_fork:
        with contextlib.suppress(Exception):  # the locks below must be taken regardless
            callback()
    _fds_lock.acquire()


def _after_in_parent() -> None:
    _fds_lock.release()
    _gate.open()


def _after_in_child() -> None:
    global _gate, _fds_lock
    _gate = _Gate()
    _fds_lock = threading.Lock()
    while _lock_fds:
        with contextlib.suppress(OSError):
            os.close(_lock_fds.pop())


os.register_at_fork(before=_before, after_in_parent=_after_in_parent,
                    after_in_child=_after_in_child)
