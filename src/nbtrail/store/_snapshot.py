"""Published copies of the database: what readers attach instead of the file folds write.

DuckDB lets no process attach a database file while another has it open for writing, so
a reader of the folded file waits for every fold pass in progress, and a busy store is
folded almost all the time. Instead, a fold that has closed the database (still holding
the exclusive lock, so the file is at rest) copies it to ``snapshots/<generation>.duckdb``.
Nothing ever writes a published copy: readers attach the newest one read-only, keep it
attached from one read to the next, and lay the journals' records past its offsets over
it (``_overlay``). They take no lock, and folds never wait for them.

A journal of an ended process is removed only once a published copy holds all of it, or
a reader attached to the newer copy would miss its records. A reader therefore checks,
after reading the journals, that no newer copy appeared meanwhile (and reads again if one
did): copies are published before journals are removed.

What folds add after a copy is still in the journals, but a change another program made
to the database is not: every fold records the files as it left them (``source``), and a
reader that finds them otherwise while no fold is running reads the database itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path

SNAPSHOTS = "snapshots"
SUFFIX = ".duckdb"
_TMP = ".tmp-"
_SOURCE = "source"
# Publishing copies the whole database, so it is spaced out by the database's size: at
# least PUBLISH_INTERVAL seconds apart, and never more than about a tenth of the time at
# COPY_RATE bytes/s. Between publications, readers overlay what folds took since.
PUBLISH_INTERVAL = 1.0
COPY_RATE = 200 << 20
# The write-ahead logs DuckDB keeps beside a database file, during and after checkpoints.
WAL_SUFFIXES = (".wal", ".wal.checkpoint", ".wal.recovery")


def newest(folder: Path) -> Path | None:
    """The newest published copy in ``folder``, if any."""
    best, generation = None, -1
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in os.scandir(folder):
            stem = entry.name.removesuffix(SUFFIX)
            if entry.name.endswith(SUFFIX) and stem.isdigit() and int(stem) > generation:
                best, generation = Path(entry.path), int(stem)
    return best


def due(folder: Path, db_path: Path) -> bool:
    """Whether a fold that just ended should publish a copy (there is none, or it is old)."""
    current = newest(folder)
    if current is None:
        return True
    try:
        age = time.time() - current.stat().st_mtime
        size = db_path.stat().st_size
    except FileNotFoundError:
        return True
    return age >= max(PUBLISH_INTERVAL, 10 * size / COPY_RATE)


def wal_files(db_path: Path) -> list[Path]:
    """Where DuckDB keeps the write-ahead logs of ``db_path``."""
    return [_with_suffix(db_path, suffix) for suffix in WAL_SUFFIXES]


def space_needed(db_path: Path) -> int:
    """Bytes a publication writes: the database and its write-ahead logs."""
    return sum(size for _, size, _ in identity(db_path))


def identity(db_path: Path) -> tuple[tuple[int, int, int], ...]:
    """Inode, size and mtime of the database and its write-ahead logs (zeros: missing)."""
    found = []
    for path in (db_path, *wal_files(db_path)):
        try:
            st = path.stat()
        except FileNotFoundError:
            found.append((0, 0, 0))
        else:
            found.append((st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(found)


def record_source(db_path: Path, folder: Path) -> None:
    """Note the database files as a fold left them (the caller holds the exclusive lock)."""
    tmp = folder / f"{_TMP}{_SOURCE}"
    tmp.write_text(repr(identity(db_path)))
    os.replace(tmp, folder / _SOURCE)


def changed_by_others(db_path: Path, folder: Path) -> bool:
    """Whether the database files differ from how the last fold left them."""
    try:
        recorded = (folder / _SOURCE).read_text()
    except FileNotFoundError:
        return True
    return recorded != repr(identity(db_path))


def publish(db_path: Path, folder: Path) -> Path:
    """Copy the database (at rest: the caller holds the exclusive lock) as the newest copy.

    Older copies are removed: a reader that has one attached keeps reading the removed
    file, and one that found it a moment ago and cannot attach it any more looks again.
    """
    folder.mkdir(exist_ok=True)
    current = newest(folder)
    generation = int(current.name.removesuffix(SUFFIX)) + 1 if current is not None else 1
    target = folder / f"{generation:012d}{SUFFIX}"
    for leftover in folder.glob(f"{_TMP}*"):  # of a publisher killed while copying
        leftover.unlink(missing_ok=True)
    # The write-ahead logs go first, under their final names: a reader that finds the
    # database renamed into place finds them beside it.
    copied: list[Path] = []
    try:
        for wal, suffix in zip(wal_files(db_path), WAL_SUFFIXES, strict=True):
            if wal.exists():
                copied.append(_copy(wal, _with_suffix(target, suffix)))
        tmp = folder / f"{_TMP}{target.name}"
        copied.append(_copy(db_path, tmp))
        record_source(db_path, folder)
        os.replace(tmp, target)
    except BaseException:
        for path in copied:
            path.unlink(missing_ok=True)
        raise
    for old in folder.glob(f"*{SUFFIX}*"):
        stem = old.name.split(".", 1)[0]
        if stem.isdigit() and int(stem) < generation:
            old.unlink(missing_ok=True)
    return target


def remove_all(folder: Path) -> None:
    """Remove every published copy: readers then read the database itself."""
    shutil.rmtree(folder, ignore_errors=True)


def _copy(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    return target


def _with_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)
