"""Packaging as a job: POST starts it on a worker thread, GET reports progress and result."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tornado import web

from ..errors import NbtrailError, NotFoundError
from ._base import ArgumentError, BaseHandler

if TYPE_CHECKING:
    from ..store import Store

# Finished jobs kept for the panel to read back; older ones are forgotten.
KEEP_JOBS = 50


@dataclass
class Job:
    """One packaging job and what the panel shows of it."""

    job_id: str
    ref: str
    state: str = "queued"  # queued, running, done, failed
    step: str = "waiting for the packaging worker"
    fraction: float = 0.0
    result: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The job as JSON-ready values."""
        return {k: getattr(self, k) for k in ("job_id", "ref", "state", "step", "fraction",
                                             "result", "error", "created", "finished")}


class Jobs:
    """Packaging jobs of this server, run one at a time on a thread of their own.

    Packaging copies the model, resolves a lockfile and may build an image for minutes:
    it never runs on the event loop nor on the threads that answer reads.
    """

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nbtrail-package")

    def start(self, store: Store, ref: str, options: dict[str, Any]) -> Job:
        """Queue packaging of ``ref`` (a run or model id) in ``store``."""
        from ulid import ULID

        job = Job(job_id=f"job_{ULID()}", ref=ref)
        with self._lock:
            self._jobs[job.job_id] = job
            for old in sorted(self._jobs.values(), key=lambda j: j.created)[:-KEEP_JOBS]:
                if old.finished is not None:
                    del self._jobs[old.job_id]
        self._executor.submit(self._run, job, store, options)
        return job

    def get(self, job_id: str) -> Job:
        """The job with this id."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no packaging job {job_id!r} on this server (jobs are "
                                "forgotten when the server restarts)")
        return job

    def all(self) -> list[Job]:
        """Every job kept, newest first."""
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def _run(self, job: Job, store: Store, options: dict[str, Any]) -> None:
        import nbtrail as nt

        def progress(step: str, fraction: float) -> None:
            job.step, job.fraction = step, max(0.0, min(1.0, float(fraction)))

        job.state, job.step = "running", "starting"
        try:
            package = nt.package(job.ref, progress=progress, store=store, **options)
            job.result = package.to_dict()
            job.state, job.step, job.fraction = "done", "done", 1.0
        except NbtrailError as exc:
            job.error, job.state = str(exc), "failed"
        except Exception as exc:  # a bug or the engine's own failure: still a readable line
            job.error, job.state = f"packaging failed: {type(exc).__name__}: {exc}", "failed"
        finally:
            job.finished = time.time()


class PackageJobsHandler(BaseHandler):
    """``POST /nbtrail/api/package`` starts a job; ``GET`` lists the recent ones."""

    @property
    def jobs(self) -> Jobs:
        """The server's packaging jobs."""
        return self.settings["nbtrail_jobs"]

    @web.authenticated
    async def get(self) -> None:
        """Recent jobs, newest first."""
        self.reply([job.to_dict() for job in self.jobs.all()])

    @web.authenticated
    async def post(self) -> None:
        """Body: ``{"ref": run or model id, "name": str?, "build": bool?}`` -> 202 and the job."""
        body = self.json_body()
        ref = body.get("ref")
        if not isinstance(ref, str) or not ref.strip():
            raise ArgumentError('the body needs "ref": a run id or a model id (mdl_…)')
        options: dict[str, Any] = {}
        for key, kind in (("name", str), ("build", bool)):
            value = body.get(key)
            if value is not None and not isinstance(value, kind):
                # The type, not the value: a body's value may be large or deeply nested.
                raise ArgumentError(f'"{key}" must be a {kind.__name__} or null, got '
                                    f'{type(value).__name__}')
            if value is not None:
                options[key] = value
        unknown = sorted(set(body) - {"ref", "name", "build"})
        if unknown:
            raise ArgumentError(f"unknown field(s) {', '.join(unknown)}; known: ref, name, build")
        if "name" in options:  # a bad name fails now, not in the job
            from ..packaging._api import check_name

            check_name(options["name"])
        store = self.store
        await self.call(_check_ref, store, ref.strip())  # a typo fails now, not in the job
        job = self.jobs.start(store, ref.strip(), options)
        self.reply(job.to_dict(), status=202)


class PackageJobHandler(BaseHandler):
    """``GET /nbtrail/api/package/{job_id}``: a job's progress, then its result or error."""

    @web.authenticated
    async def get(self, job_id: str) -> None:
        """The job: state, step, fraction, result (the package) or error (a sentence)."""
        jobs: Jobs = self.settings["nbtrail_jobs"]
        self.reply(jobs.get(job_id).to_dict())


def _check_ref(store: Store, ref: str) -> None:
    """Raise ``NotFoundError`` unless ``ref`` is a run (or unique prefix) or model of the store."""
    if not ref.startswith("mdl_"):
        store.get_run(ref)
    elif store.models(model_id=ref).is_empty():
        raise NotFoundError(f"no model {ref!r} in the store at {store.location}")
