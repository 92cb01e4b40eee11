"""Content-addressed blobs (models, artifacts, data-set samples), kept local and shared.

Every blob is named by the SHA-256 of its bytes and first written to the store folder
(``artifacts/sha256/ab/abcd…``), so logging never waits for a network. With an artifact
store configured (``NBTRAIL_ARTIFACTS``: ``s3://bucket/prefix``, ``gs://…``, ``az://…``,
or a folder on a shared file system) the local folder is also the read cache of that
remote, and each new blob is uploaded in the background:

* a blob to upload is marked by an empty file ``artifacts/pending/<sha>``, written with
  the blob; a thread of the process uploads the marked blobs and removes their marks, so
  a process killed before its upload leaves the mark for the next one (the next blob
  any process logs there, or ``nt.sync()``), and nothing is lost;
* while the remote does not answer, blobs wait with their marks, with one warning that
  says how many; they go up when it answers again;
* a read of a blob that is not here downloads it into the cache, checking its digest.

Blobs are streamed in both directions (1 MiB at a time, multipart uploads for large
ones): none is read whole into memory. Remotes are reached through obstore, whose
credential chain is the object store's own (``AWS_*``, instance and web-identity roles;
``GOOGLE_*``; ``AZURE_*``): nbtrail never stores or prints a credential.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import re
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ..errors import (
    ArtifactStoreError,
    InvalidInputError,
    MissingExtraError,
    NbtrailError,
    NotFoundError,
)
from ._records import Check

if TYPE_CHECKING:
    from obstore.store import ObjectStore, RetryConfig

SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20
# URL schemes of remotes obstore reaches; a plain path or file:// is a shared folder.
REMOTE_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss", "azure")
_BACKOFF = (1.0, 60.0)  # seconds between upload rounds while the remote fails: first, most
EXIT_UPLOAD_SECONDS = 10.0


def describe(url: str) -> str:
    """``url`` without what it could carry of credentials (user info, query), for messages."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # a path (or a Windows drive letter)
        return url
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # not a number: not worth a second error
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


class BlobStore:
    """Blobs in the folder ``local`` (``.../artifacts``), shared through ``remote`` if given."""

    def __init__(self, local: Path, remote: str | None = None) -> None:
        if remote is not None:
            _check_scheme(remote)  # a typo is named now, not at the first upload
        self.local = local
        self.remote = remote
        self._objects: ObjectStore | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._uploader: threading.Thread | None = None
        self._failure: str | None = None  # the upload error warned about, until one works

    # -- writing ------------------------------------------------------------------------

    def put(self, source: Path | bytes) -> tuple[str, int]:
        """Store ``source`` (bytes, or a file streamed) and return ``(sha256, size)``."""
        folder = self.local / "sha256"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".tmp-{os.getpid()}-{os.urandom(6).hex()}"
        digest, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                if isinstance(source, bytes):
                    digest.update(source)
                    out.write(source)
                    size = len(source)
                else:
                    with open(source, "rb") as src:
                        while chunk := src.read(_CHUNK):
                            digest.update(chunk)
                            out.write(chunk)
                            size += len(chunk)
            sha = digest.hexdigest()
            target = self._cached(sha)
            if target.exists():
                tmp.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, target)  # atomic: readers see the whole blob or none
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if self.remote is not None:
            # Marked once in place (an upload round drops a mark without its blob), and
            # also when the bytes were here already: from before the remote was set, say.
            # A crash before the mark loses nothing: no record names the blob yet.
            self._pending_dir.mkdir(parents=True, exist_ok=True)
            (self._pending_dir / sha).touch()
            _uploading.add(self)
            self._start_uploads()
        return sha, size

    def pending(self) -> list[str]:
        """Digests of the blobs written here and not uploaded to the remote yet."""
        if self.remote is None or not self._pending_dir.is_dir():
            return []
        return sorted(p.name for p in self._pending_dir.iterdir() if SHA256.fullmatch(p.name))

    def upload_pending(self, *, deadline: float | None = None) -> int:
        """Upload the marked blobs now; return how many are left.

        Stops at ``deadline`` (a ``time.monotonic()``) if given. Raises
        ``ArtifactStoreError`` if the remote refuses or does not answer.
        """
        for sha in self.pending():
            if deadline is not None and time.monotonic() > deadline:
                break
            blob = self._cached(sha)
            if blob.exists():
                self._upload(sha, blob)
            (self._pending_dir / sha).unlink(missing_ok=True)
        self._failure = None
        return len(self.pending())

    def sync(self) -> None:
        """Upload the marked blobs now; if the remote fails, warn: they wait here."""
        try:
            self.upload_pending()
        except ArtifactStoreError as exc:
            warnings.warn(self._waiting(exc), stacklevel=3)

    def close(self) -> None:
        """Upload what is still marked, for a short while; say once what is left."""
        if not self.pending():
            return
        with contextlib.suppress(ArtifactStoreError):  # warned below, with the count
            self.upload_pending(deadline=time.monotonic() + EXIT_UPLOAD_SECONDS)
        left = len(self.pending())
        if left:
            warnings.warn(
                f"nbtrail: {left} blob(s) not uploaded to the artifact store "
                f"{describe(str(self.remote))} yet; they wait in {self._pending_dir} and go "
                "up with the next nbtrail process that uses it, or nt.sync()", stacklevel=3)

    def check(self) -> Check:
        """Whether the remote answers (fine without one)."""
        if self.remote is None:
            return Check("artifact store", True, "none: blobs stay in the store folder")
        try:
            objects = self._store()
            import obstore

            # An answer, even "not found", is what is checked.
            with self._errors("reaching"), contextlib.suppress(FileNotFoundError):
                obstore.head(objects, self._key("0" * 64))
        except NbtrailError as exc:
            return Check("artifact store", False, str(exc))
        return Check("artifact store", True, f"{describe(self.remote)} answers")

    def forget_after_fork(self) -> None:
        """A forked child has no upload thread: it starts its own when it needs one."""
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._uploader = None
        self._objects = None  # obstore's runtime does not survive fork either

    # -- reading ------------------------------------------------------------------------

    def path(self, sha256: str, location: str) -> Path:
        """The local file of a blob, downloaded first if only the remote has it.

        ``location`` names the store in messages.
        """
        if not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
            raise InvalidInputError(f"{sha256!r} is not a sha256 hex digest")
        target = self._cached(sha256)
        if target.exists():
            return target
        if self.remote is None:
            raise NotFoundError(f"no blob {sha256} in the store at {location}")
        self._download(sha256, target, location)
        return target

    # -- the remote ---------------------------------------------------------------------

    @property
    def _pending_dir(self) -> Path:
        return self.local / "pending"

    def _cached(self, sha: str) -> Path:
        return self.local / "sha256" / sha[:2] / sha

    @staticmethod
    def _key(sha: str) -> str:
        return f"sha256/{sha[:2]}/{sha}"

    def _store(self) -> ObjectStore:
        if self._objects is None:
            self._objects = open_remote(str(self.remote))
        return self._objects

    def _upload(self, sha: str, blob: Path) -> None:
        objects = self._store()  # first: it names a missing obstore
        import obstore

        key = self._key(sha)
        with self._errors("uploading to"):
            try:
                obstore.head(objects, key)
                return  # content-addressed: the same bytes are there already
            except FileNotFoundError:
                pass
            obstore.put(objects, key, blob)  # streamed; multipart when large

    def _download(self, sha: str, target: Path, location: str) -> None:
        objects = self._store()  # first: it names a missing obstore
        import obstore

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".tmp-{os.getpid()}-{os.urandom(6).hex()}")
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as out, self._errors("downloading from"):
                try:
                    result = obstore.get(objects, self._key(sha))
                except FileNotFoundError:
                    raise NotFoundError(
                        f"no blob {sha} in the store at {location} nor in its artifact store "
                        f"{describe(str(self.remote))}") from None
                for chunk in result.stream(min_chunk_size=_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)  # a local disk error is not the remote's: not caught
            if digest.hexdigest() != sha:
                raise ArtifactStoreError(
                    f"blob {sha} in the artifact store {describe(str(self.remote))} is damaged "
                    f"(its bytes hash to {digest.hexdigest()}); upload it again from a store "
                    "that has it, or delete it there")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Errors of the remote as one line naming it, without credentials."""
        from obstore.exceptions import BaseError

        try:
            yield
        except (BaseError, ConnectionError, TimeoutError, PermissionError) as exc:
            raise ArtifactStoreError(
                f"failed {doing} the artifact store {describe(str(self.remote))}: "
                f"{_reason(exc)}; check that it is reachable and that the credentials in "
                "the environment (AWS_*, GOOGLE_*, AZURE_*) may read and write it") from None

    def _waiting(self, exc: Exception) -> str:
        return (f"nbtrail: {exc}; {len(self.pending())} blob(s) wait in {self._pending_dir} "
                "and go up when it answers (nt.sync() tries at once)")

    def _start_uploads(self) -> None:
        with self._lock:
            if self._uploader is None or not self._uploader.is_alive():
                self._uploader = threading.Thread(
                    target=self._upload_loop, name=f"nbtrail-uploads-{os.getpid()}",
                    daemon=True)
                self._uploader.start()
        self._wake.set()

    def _upload_loop(self) -> None:
        pause = _BACKOFF[0]
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                self.upload_pending()
                pause = _BACKOFF[0]
            except Exception as exc:  # the blobs keep their marks; warn once per failure
                if str(exc) != self._failure:
                    self._failure = str(exc)
                    warnings.warn(self._waiting(exc), stacklevel=1)
                time.sleep(pause)
                pause = min(2 * pause, _BACKOFF[1])
                self._wake.set()


# Blob stores that marked blobs in this process: at exit each uploads what it can.
_uploading: weakref.WeakSet[BlobStore] = weakref.WeakSet()


@atexit.register
def _upload_at_exit() -> None:
    for blobs in list(_uploading):
        blobs.close()


def open_remote(url: str) -> ObjectStore:
    """The obstore store of an artifact-store URL (or shared folder path)."""
    from datetime import timedelta

    try:
        from obstore.exceptions import BaseError
        from obstore.store import LocalStore, from_url
    except ImportError:
        raise MissingExtraError(
            f"the artifact store {describe(url)} needs obstore; run: "
            "pip install 'nbtrail[artifacts]'") from None

    if _check_scheme(url) == "folder":
        folder = Path(url.removeprefix("file://")).expanduser()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactStoreError(
                f"cannot use {folder} as the artifact store: {exc.strerror}; give a folder "
                "this user may write") from None
        return LocalStore(prefix=folder.resolve())
    # An outage must not hold a thread (or an exiting process) for obstore's default of
    # three minutes of retries: a few quick ones, then the blob waits for the next round.
    retry: RetryConfig = {"max_retries": 2, "retry_timeout": timedelta(seconds=10)}
    try:
        return from_url(url, retry_config=retry)
    except BaseError as exc:
        raise ArtifactStoreError(
            f"cannot use the artifact store {describe(url)}: {_reason(exc)}") from None


def _check_scheme(url: str) -> str:
    """``"folder"`` or ``"remote"`` for an artifact-store URL; refuses an unknown scheme."""
    if not isinstance(url, str) or not url:
        raise InvalidInputError(f"the artifact store must be a URL or folder path, got {url!r}")
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:  # one letter: a Windows drive
        return "folder"
    if scheme not in REMOTE_SCHEMES:
        raise InvalidInputError(
            f"the artifact store {describe(url)} has an unknown scheme {scheme}://; give "
            "s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or a folder path")
    return "remote"


def _reason(exc: BaseException) -> str:
    """The first line of an obstore error, which names the request but no credential."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"\?\S*", "", text)  # a presigned query string would carry a signature
