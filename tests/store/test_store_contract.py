"""The contract every store backend keeps (``nbtrail.store.Store``), checked through the seam.

Each test gets its store from the ``location`` fixture: one param a backend (the
``store_location`` fixture of ``tests/conftest.py``). A backend joins by adding its param
there and makes ``open_store`` accept that location; nothing else in this file changes.
Writes go through typed records; every read is checked before a fold (the records only
in journals) and after one.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nbtrail import config
from nbtrail.errors import ConflictError, InvalidInputError, NotFoundError
from nbtrail.store import (
    Artifact,
    Dataset,
    Edge,
    Environment,
    Model,
    PackageMade,
    Param,
    RunDataset,
    RunEnd,
    RunStart,
    Store,
    Tag,
    Write,
    open_store,
)

from ..conftest import run_python
from .conftest import artifact_remote

T0 = 1_700_000_000.0
R1, R2, R3, R4 = ("r1aaaaaaaaaaaaaaaaaaaa", "r2bbbbbbbbbbbbbbbbbbbb", "r3cccccccccccccccccccc",
                  "r4dddddddddddddddddddd")
NOTEBOOK = "/work/nb/a.ipynb"


@pytest.fixture
def location(store_location: str) -> str:
    """Where a fresh, empty store of each backend lives (see ``tests/conftest.py``)."""
    return store_location


@pytest.fixture
def opened(location: str) -> Iterator[list[Store]]:
    """Every store object a test opens, closed at its end; none folds in the background."""
    stores: list[Store] = []
    yield stores
    for store in stores:
        store.close()


@pytest.fixture
def open_here(location: str, opened: list[Store]):
    """Open another store object on the location (another writer or reader, as a process)."""
    def make(*, read_only: bool = False) -> Store:
        with config(fold_interval=3600):  # folds happen when a test says so
            store = open_store(location, read_only=read_only)
        opened.append(store)
        return store
    return make


def append(store: Store, *records: Write) -> None:
    """Append records through the store's writer and make them durable."""
    writer = store.writer()
    for record in records:
        writer.append(record.to_journal())
    writer.flush()


def start(run_id: str, name: str, experiment: str, when: float, store: Store, *,
          parent: str | None = None, branch: str | None = None, root: str | None = None,
          env_id: str | None = None, user: str | None = "ana") -> RunStart:
    return RunStart(
        run_id=run_id, name=name, experiment=experiment, parent_id=parent, status="running",
        start_time=when, git_root=root, git_commit="c0ffee" if branch else None,
        git_branch=branch, git_dirty=False if branch else None, git_snapshot=None,
        notebook=NOTEBOOK, env_id=env_id, code_id=None, seeds={}, hostname="host",
        pid=os.getpid(), writer_id=store.writer().writer_id, user_name=user)


def metrics(store: Store, run_id: str, key: str, values: list[float], when: float) -> None:
    writer = store.writer()
    for step, value in enumerate(values):
        writer.add_metric(run_id, key, value, step, when + step)
    writer.flush()


@dataclass(frozen=True)
class World:
    """A small store: two experiments, a parent and child, a model, a package, a monitor."""

    store: Store  # the first writer
    other: Store  # a second writer (another journal)
    reader: Store  # a store object that wrote nothing
    model_sha: str


def build(store: Store, other: Store, reader: Store) -> World:
    sha, size = store.put_blob(b"model bytes")
    art_sha, art_size = store.put_blob(b"notes")
    append(store,
           Environment("env_1", "3.11.7", "linux", {"numpy": "2.0"}, {"implementation": "cp"}),
           start(R1, "base", "exp-a", T0, store, branch="main", root="/repo", env_id="env_1"),
           Param(R1, "C", "1.0", "float"), Tag(R1, "team", "risk"),
           Dataset("ds_x", "sha256:x", "polars", 10, 2, [{"name": "a"}], {"a": {}}, T0),
           RunDataset(R1, "ds_x", "train", "train", T0), Edge("ds_x", R1, "train", T0),
           Model("mdl_1", R1, "clf", "sklearn", "LogisticRegression", "skops", sha, size,
                 {"inputs": [{"name": "a"}]}, "ds_x", T0 + 1),
           Edge(R1, "mdl_1", "produced", T0 + 1),
           Artifact(R1, "notes.txt", "art_" + art_sha[:32], art_sha, art_size, "text/plain",
                    T0 + 1),
           Edge(R1, "art_" + art_sha[:32], "produced", T0 + 1),
           PackageMade("pkg_1", "mdl_1", R1, "churn", "/dist/churn", None, None, None, None,
                       T0 + 2),
           Edge("mdl_1", "pkg_1", "packaged", T0 + 2))
    metrics(store, R1, "acc", [0.5, 0.6, 0.7, 0.8, 0.75], T0)
    metrics(store, R1, "loss", [0.3], T0)
    append(store, RunEnd(R1, "finished", T0 + 10),
           start(R2, "child", "exp-a", T0 + 20, store, parent=R1, branch="main", root="/repo"),
           Edge(R1, R2, "parent", T0 + 20))
    metrics(store, R2, "acc", [0.9, 0.95, 0.97], T0 + 20)
    append(store, RunEnd(R2, "finished", T0 + 30))
    append(other, start(R3, "other", "exp-b", T0 + 40, other, branch="feature", root="/repo2",
                        user="ben"))
    metrics(other, R3, "acc", [0.99], T0 + 40)  # running: never a best run
    append(other, start(R4, "drift", "monitoring", T0 + 50, other),
           Tag(R4, "nbtrail.kind", "monitoring"), Tag(R4, "model_id", "mdl_1"),
           RunEnd(R4, "finished", T0 + 51))
    return World(store, other, reader, sha)


@pytest.fixture(params=["journals", "folded"])
def world(request: pytest.FixtureRequest, open_here) -> World:
    """The world read from journals only, or after every journal was folded."""
    built = build(open_here(), open_here(), open_here())
    if request.param == "folded":
        built.store.sync()
        built.other.sync()
    return built


# -- the promises of the module docstring ---------------------------------------------------


def test_reads_see_every_record_flushed_before_them_by_any_writer(world: World) -> None:
    for store in (world.store, world.other, world.reader):
        assert store.count_runs() == 4
        assert store.get_run(R3).metrics == {"acc": 0.99}
        assert store.get_run(R4).status == "finished"


def test_every_run_says_who_ran_it_and_where(world: World, location: str) -> None:
    # The embedded store keeps the user its writer recorded; the team store the role its
    # server authenticated (here the URL's), whatever the writer claims.
    from urllib.parse import urlsplit

    role = urlsplit(location).username if "://" in location else None
    run = world.reader.get_run(R3)
    assert (run.user, run.host) == (role or "ben", "host")
    assert world.reader.runs(where=f"user = '{run.user}'").height == (4 if role else 1)
    frame = world.reader.runs(order_by="start_time")
    assert frame["user"].to_list() == ([role] * 4 if role else ["ana", "ana", "ben", "ana"])
    assert set(frame["host"].to_list()) == {"host"}


def test_a_record_is_durable_once_flush_returned_even_if_the_process_is_killed(
        location: str, open_here) -> None:
    code = textwrap.dedent(f"""
        import os, signal
        from nbtrail.store import RunStart, Tag, open_store
        store = open_store({location!r})
        writer = store.writer()
        writer.append(RunStart(
            run_id={R1!r}, name="killed", experiment="exp", parent_id=None, status="running",
            start_time={T0}, git_root=None, git_commit=None, git_branch=None, git_dirty=None,
            git_snapshot=None, notebook=None, env_id=None, code_id=None, seeds={{}},
            hostname="h", pid=os.getpid(), writer_id=writer.writer_id,
            user_name="ana").to_journal())
        writer.flush()
        writer.append(Tag({R1!r}, "late", "yes").to_journal())  # no flush: the interval's
        import time; time.sleep(1.0)  # five flush intervals
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    done = run_python(code, timeout=60)
    assert done.returncode == -signal.SIGKILL, done.stderr
    run = open_here().get_run(R1)
    assert run.name == "killed"
    assert run.tags == {"late": "yes"}


def test_writers_never_fail_while_others_write_and_read(open_here) -> None:
    first, second, reader = open_here(), open_here(), open_here()
    append(first, start(R1, "busy", "exp", T0, first))
    errors: list[BaseException] = []

    def log(store: Store, prefix: str) -> None:
        try:
            for i in range(300):
                append(store, Param(R1, f"{prefix}{i}", str(i), "int"))
        except BaseException as exc:  # the assertion below shows it
            errors.append(exc)

    threads = [threading.Thread(target=log, args=(s, p)) for s, p in ((first, "a"),
                                                                       (second, "b"))]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads):
        reader.count_runs()
        first.sync()  # folds interleave with the writes too
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(reader.get_run(R1).params) == 600


def test_nothing_read_is_live(world: World) -> None:
    run = world.reader.get_run(R1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        run.status = "failed"  # type: ignore[misc]
    frame = world.reader.runs()
    frame.drop_in_place("name")
    assert "name" in world.reader.runs().columns
    lineage = world.reader.lineage("mdl_1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        lineage.root = "x"  # type: ignore[misc]


# -- opening ----------------------------------------------------------------------------------


def test_open_store_finds_nothing_until_something_is_written(location: str, open_here) -> None:
    store = open_here()
    assert not store.exists()
    assert store.location  # a string for messages
    append(store, Tag(R1, "k", "v"))
    assert store.exists()


def test_a_read_only_store_refuses_every_write(world: World, open_here) -> None:
    world.reader.count_runs()  # a read-only store reads a store, never creates one
    read_only = open_here(read_only=True)
    assert read_only.count_runs() == 4
    with pytest.raises(ConflictError, match="read-only"):
        read_only.writer()
    with pytest.raises(ConflictError, match="read-only"):
        read_only.put_blob(b"x")


def test_an_unknown_scheme_names_the_backends_there_are() -> None:
    with pytest.raises(InvalidInputError, match=r"nosuch:// locations.*backends are") as caught:
        open_store("nosuch://user:secret@host/db")
    assert "secret" not in str(caught.value)  # a URL may carry credentials


# -- the records the interface deals in -------------------------------------------------------


def test_runs_filters_orders_and_pages(world: World) -> None:
    store = world.reader
    frame = store.runs(order_by="start_time")
    assert frame["run_id"].to_list() == [R1, R2, R3, R4]
    assert frame.filter(run_id=R1)["params.C"].to_list() == [1.0]
    assert frame.filter(run_id=R1)["tags.team"].to_list() == ["risk"]
    assert store.runs(where="metrics.acc > 0.8", order_by="-start_time")["run_id"].to_list() \
        == [R3, R2]
    assert store.runs(experiment="exp-a", order_by="name")["name"].to_list() == ["base", "child"]
    assert store.runs(order_by="start_time", limit=2, offset=1)["run_id"].to_list() == [R2, R3]
    assert store.count_runs(where="metrics.acc > 0.8") == 2
    assert store.count_runs(experiment="monitoring") == 1


def test_get_run_takes_an_id_prefix_and_names_an_unknown_id(world: World) -> None:
    run = world.reader.get_run(R1[:8])
    assert (run.run_id, run.name, run.status, run.experiment) == (R1, "base", "finished",
                                                                  "exp-a")
    assert run.params == {"C": 1.0}
    assert run.metrics == {"acc": 0.75, "loss": 0.3}
    assert run.tags == {"team": "risk"}
    assert [d["dataset_id"] for d in run.datasets] == ["ds_x"]
    assert [m["model_id"] for m in run.models] == ["mdl_1"]
    assert [a["name"] for a in run.artifacts] == ["notes.txt"]
    assert run.children == [R2]
    assert run.env is not None and run.env["python"] == "3.11.7"
    assert run.git is not None and run.git["branch"] == "main"
    assert world.reader.get_run(R2).parent_id == R1
    with pytest.raises(NotFoundError, match="r9zzzzzz"):
        world.reader.get_run("r9zzzzzz")


def test_metric_history_is_every_point_in_step_order(world: World) -> None:
    history = world.reader.metric_history(R1, "acc")
    assert history.columns == ["step", "value", "timestamp"]
    assert history["step"].to_list() == [0, 1, 2, 3, 4]
    assert history["value"].to_list() == [0.5, 0.6, 0.7, 0.8, 0.75]
    with pytest.raises(NotFoundError, match="acc, loss"):
        world.reader.metric_history(R1, "f1")


def test_artifact_path_is_the_stored_file(world: World) -> None:
    assert world.reader.artifact_path(R1, "notes.txt").read_bytes() == b"notes"
    with pytest.raises(NotFoundError, match=r"notes\.txt"):
        world.reader.artifact_path(R1, "other.txt")


def test_lineage_walks_up_down_and_both(world: World) -> None:
    up = world.reader.lineage("mdl_1", direction="up")
    assert set(up.ids()) == {"mdl_1", R1, "ds_x"}
    assert up.ids("dataset") == ["ds_x"]
    down = world.reader.lineage("mdl_1", direction="down")
    assert set(down.ids()) == {"mdl_1", "pkg_1"}
    both = world.reader.lineage(R1[:8], direction="both", depth=1)
    assert {"ds_x", "mdl_1", R2} <= set(both.ids())
    assert both.root == R1
    with pytest.raises(NotFoundError, match="ds_nope"):
        world.reader.lineage("ds_nope")
    with pytest.raises(InvalidInputError, match="direction"):
        world.reader.lineage("mdl_1", direction="sideways")  # type: ignore[arg-type]


@pytest.mark.parametrize("artifacts", [None, "folder", "s3"])
def test_put_blob_keeps_one_copy_and_blob_path_names_an_unknown_digest(
        open_here, tmp_path: Path, artifacts: str | None, request: pytest.FixtureRequest
) -> None:
    remote = artifact_remote(artifacts, tmp_path, request)
    with config(artifacts=remote):
        store = open_here()
    sha, size = store.put_blob(b"same bytes")
    source = tmp_path / "file.bin"
    source.write_bytes(b"same bytes")
    assert store.put_blob(source) == (sha, size) == (sha, 10)
    assert store.blob_path(sha).read_bytes() == b"same bytes"
    with pytest.raises(NotFoundError, match="0" * 64):
        store.blob_path("0" * 64)
    with pytest.raises(InvalidInputError, match="sha256"):
        store.blob_path("../../etc/passwd")
    if remote is not None:  # another machine, with a store of its own, reads it from there
        store.sync()
        with config(artifacts=remote):
            elsewhere = open_store(tmp_path / "elsewhere", read_only=True)
        assert elsewhere.blob_path(sha).read_bytes() == b"same bytes"


def test_sql_answers_reads_and_refuses_anything_else(world: World) -> None:
    assert world.reader.sql("SELECT count(*) AS n FROM runs WHERE experiment = ?",
                            ["exp-a"])["n"].to_list() == [2]
    for statement in ("DELETE FROM runs", "DROP TABLE runs", "CREATE TABLE x (a INTEGER)",
                      "INSERT INTO tags VALUES ('a', 'b', 'c')"):
        with pytest.raises(InvalidInputError):
            world.reader.sql(statement)
    assert world.reader.count_runs() == 4


# -- named queries ----------------------------------------------------------------------------


def test_ids_experiments_and_keys(world: World) -> None:
    store = world.reader
    assert store.run_ids() == [R1, R2, R3, R4]
    assert store.parent_ids() == [R1]
    assert store.experiments() == ["exp-a", "exp-b", "monitoring"]
    assert store.experiments(exclude=["monitoring"]) == ["exp-a", "exp-b"]
    assert store.metric_keys() == ["acc", "loss"]


def test_experiment_summary_counts_runs_by_experiment_and_branch(world: World) -> None:
    rows = world.reader.experiment_summary().select(
        "experiment", "branch", "runs", "running").rows()
    assert rows == [("monitoring", None, 1, 0), ("exp-b", "feature", 1, 1),
                    ("exp-a", "main", 2, 0)]


def test_best_runs_per_branch_and_experiment(world: World) -> None:
    store = world.reader
    best = store.best_runs("git_branch", metric="acc")
    assert best.select("name", "runs", "best_run_id", "best", "git_root").rows() == [
        ("feature", 1, None, None, "/repo2"),  # its only run is still running
        ("main", 2, R2, 0.97, "/repo"),
    ]
    worst = store.best_runs("git_branch", names=["main"], metric="acc", mode="min")
    assert worst.select("name", "best_run_id", "best").rows() == [("main", R1, 0.75)]
    newest = store.best_runs("experiment", names=["exp-a", "monitoring"])
    assert newest.select("name", "best_run_id").rows() == [("monitoring", R4), ("exp-a", R2)]
    with pytest.raises(InvalidInputError, match="mode"):
        store.best_runs("experiment", mode="best")  # type: ignore[arg-type]


def test_metric_curves_keeps_curved_keys_and_thins_long_curves(world: World) -> None:
    store = world.reader
    curves = store.metric_curves([R1, R2, R3], min_points=2)
    assert curves.columns == ["run_id", "key", "step", "value", "n"]
    assert set(curves["key"]) == {"acc"}  # loss has one point only
    assert curves.filter(run_id=R1)["step"].to_list() == [0, 1, 2, 3, 4]
    assert curves.filter(run_id=R3)["n"].to_list() == [1]
    thin = store.metric_curves([R1], max_points=2).filter(key="acc")
    assert 1 <= thin.height <= 3
    assert thin["step"].to_list()[-1] == 4 and set(thin["n"]) == {5}
    assert store.metric_curves([]).is_empty()
    assert store.runs_with_curves(limit=5) == [R2, R1]
    assert store.runs_with_curves(limit=1) == [R2]


def test_models_and_what_was_made_from_them(world: World) -> None:
    store = world.reader
    models = store.models()
    assert models["model_id"].to_list() == ["mdl_1"]
    row = models.row(0, named=True)
    assert (row["run_id"], row["run_name"], row["experiment"], row["sha256"],
            row["dataset_id"], row["fingerprint"], row["python"], row["git_branch"]) == (
        R1, "base", "exp-a", world.model_sha, "ds_x", "sha256:x", "3.11.7", "main")
    assert store.models(model_id="mdl_1").height == 1
    assert store.models(run=R1[:8])["model_id"].to_list() == ["mdl_1"]
    assert store.models(run=R2).is_empty()
    assert store.models(model_id="mdl_nope").is_empty()
    assert store.runs_with_models([R1, R2, R3]) == {R1}
    assert store.packages_of("mdl_1") == ["pkg_1"]
    assert store.packages_of("mdl_nope") == []
    assert store.packages()["package_id"].to_list() == ["pkg_1"]
    assert store.packages(package_id="pkg_1").select("model_id", "name", "context_path").rows() \
        == [("mdl_1", "churn", "/dist/churn")]
    assert store.packages(package_id="pkg_nope").is_empty()


def test_notebook_runs_by_process(world: World) -> None:
    store = world.reader
    assert store.notebook_runs(NOTEBOOK).rows() == [(R1, "base"), (R2, "child"),
                                                    (R3, "other"), (R4, "drift")]
    assert store.notebook_runs(NOTEBOOK, same_writer_as=R1)["run_id"].to_list() == [R1, R2]
    assert store.notebook_runs(NOTEBOOK, same_writer_as=R3)["run_id"].to_list() == [R3, R4]
    assert store.notebook_runs("/elsewhere.ipynb").is_empty()


def test_run_tags_widens_tags_of_the_runs_that_have_them(world: World) -> None:
    store = world.reader
    monitors = store.run_tags(["model_id"], having={"nbtrail.kind": "monitoring"})
    assert monitors.columns == ["run_id", "status", "start_time", "model_id"]
    assert monitors.select("run_id", "status", "model_id").rows() == [
        (R4, "finished", "mdl_1")]
    both = store.run_tags(["team", "model_id"])
    assert both.select("run_id", "team", "model_id").rows() == [(R1, "risk", None),
                                                                (R4, None, "mdl_1")]
    assert store.run_tags(["team"], having={"team": "ops"}).is_empty()
    with pytest.raises(InvalidInputError):
        store.run_tags([])
