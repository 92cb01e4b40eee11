"""The team store on a real PostgreSQL server: local-first logging, outages, bad input.

The contract suite (``test_store_contract.py``) runs over this backend too; these tests
add what only a server shows: machines that share it, the server going away, and what a
client must not be able to do with ``nt.sql``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

import nbtrail as nt
from nbtrail.errors import ConflictError, InvalidInputError, StoreNotFoundError, TeamStoreError
from nbtrail.store import open_store

from ..conftest import SRC, PostgresServer, free_port, git


@contextlib.contextmanager
def mock_os_user(name: str) -> Iterator[None]:
    """The OS user a run would record, as a client could set it (USER/LOGNAME)."""
    saved = {k: os.environ.get(k) for k in ("USER", "LOGNAME", "LNAME", "USERNAME")}
    os.environ.update(USER=name, LOGNAME=name)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _database(server_url: str) -> str:
    """A new, empty database on the server; its URL."""
    name = f"team_{os.urandom(6).hex()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"{server_url.rsplit('/', 1)[0]}/{name}"


@pytest.fixture
def team(postgres_url: str) -> str:
    return _database(postgres_url)


def test_runs_logged_through_nt_land_in_plain_tables_that_psql_reads(team, tmp_path):
    with nt.config(store=team, home=str(tmp_path / "laptop"), capture_git=False):
        with nt.run(name="first") as run:
            run.log_param("lr", 0.1)
            for step in range(1000):
                run.log_metric("loss", 1 / (step + 1), step=step)
        frame = nt.runs()
        assert frame["name"].to_list() == ["first"]
        assert frame["params.lr"].to_list() == [0.1]
        assert frame["metrics.loss"].to_list() == [pytest.approx(1 / 1000)]
        assert nt.metric_history(run.run_id, "loss").height == 1000
        # A model: its blob stays local, its records go to the team store; the features
        # built on the store read them there.
        from sklearn.linear_model import LogisticRegression

        X, y = [[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1]
        with nt.run(name="model") as second:
            second.log_model(LogisticRegression().fit(X, y), "clf", input_example=X[:1])
            second.log_metric("acc", 1.0)
        model_id = nt.get_run(second.run_id).models[0]["model_id"]
        assert nt.load_model(model_id).predict([[3.0]]).tolist() == [1]
        package = nt.package(model_id, name="clf", output=tmp_path / "dist", build=False)
        assert (package.context / "Dockerfile").exists()  # packaged from the team store
        assert package.package_id in nt.lineage(model_id, direction="down").nodes["id"]
        comparison = nt.compare(runs=[run.run_id, second.run_id], metric="acc")
        assert comparison.production["model_id"].to_list()[-1] == model_id
        assert {n for n in nt.lineage(second.run_id, direction="down").nodes["id"]} >= {
            model_id}
    with psycopg.connect(team) as conn:  # what a teammate's psql sees
        assert conn.execute("SELECT name, status, user_name FROM runs ORDER BY start_time"
                            ).fetchall() == [("first", "finished", "postgres"),
                                             ("model", "finished", "postgres")]
        assert conn.execute("SELECT count(*) FROM metrics WHERE key = 'loss'"
                            ).fetchone() == (1000,)


# One "machine": its own local folder, logging runs of points to the team store until told
# to stop; prints how many points each of its runs logged, as JSON.
_MACHINE = """
import json, sys, time, nbtrail as nt
nt.config.set(store=sys.argv[1], home=sys.argv[2], capture_git=False, flush_interval=0.05,
              fold_interval=0.2, system_metrics=False)
flag, logged = sys.argv[3], {}
r = 0
while open(flag).read() != "stop":
    with nt.run(name=f"{sys.argv[4]}-{r}") as run:
        for step in range(200):
            run.log_metric("loss", step * 0.5, step=step)
        logged[run.run_id] = 200
    r += 1
    time.sleep(0.05)
print(json.dumps(logged))
"""


def test_three_machines_log_through_a_server_outage_and_everything_lands_once(tmp_path):
    server = PostgresServer()
    server.start()
    try:
        team = _database(server.url)
        flag = tmp_path / "flag"
        flag.write_text("go")
        env = {**os.environ, "PYTHONPATH": str(SRC)}
        machines = [subprocess.Popen(
            [sys.executable, "-c", _MACHINE, team, str(tmp_path / f"machine-{i}"), str(flag),
             f"m{i}"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(3)]
        time.sleep(4)
        server.stop()  # in the middle of their training
        time.sleep(20)
        server.start()
        time.sleep(4)
        flag.write_text("stop")
        results = [m.communicate(timeout=120) for m in machines]
        for machine, (_, err) in zip(machines, results, strict=True):
            assert machine.returncode == 0, err  # training never failed
        logged = {k: v for out, _ in results for k, v in json.loads(out).items()}
        assert len(logged) > 30
        # Whatever a machine could not ship at its exit waits in its folder: sync it.
        for i in range(3):
            with nt.config(store=team, home=str(tmp_path / f"machine-{i}")):
                open_store().sync()
        with psycopg.connect(team) as conn:
            landed = dict(conn.execute(
                "SELECT run_id, count(*) FROM metrics GROUP BY run_id").fetchall())
            statuses = {s for (s,) in conn.execute("SELECT DISTINCT status FROM runs")}
        assert landed == logged  # nothing lost, nothing twice
        assert statuses == {"finished"}
    finally:
        server.remove()


def test_nt_sql_on_the_team_store_reads_and_refuses_to_reach_beyond_it(team, tmp_path):
    with nt.config(store=team, home=str(tmp_path / "here"), capture_git=False):
        with nt.run(name="r"):
            pass
        assert nt.sql("SELECT name FROM runs")["name"].to_list() == ["r"]
        # A literal % (a LIKE pattern, the modulo operator), with and without parameters.
        assert nt.sql("SELECT name, 7 % 3 AS m FROM runs WHERE name LIKE 'r%'").rows() == [
            ("r", 1)]
        assert nt.sql("SELECT 7 % 3 AS m FROM runs WHERE name LIKE ?", ["r%"]).rows() == [(1,)]
        for query, why in [
            ("SELECT set_config('role', 'postgres', true)", "set_config"),
            ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
            ("SELECT pg_sleep(100)", "pg_sleep"),
            ("UPDATE runs SET name = 'x'", "read-only"),
            ("SELECT 1; DROP TABLE runs", "read-only"),
            ("WITH gone AS (DELETE FROM runs RETURNING *) SELECT * FROM gone", "read-only|SQL"),
        ]:
            with pytest.raises(InvalidInputError, match=why):
                nt.sql(query)
        # What slipped past the check would still meet a read-only transaction.
        with pytest.raises(InvalidInputError, match="read-only"):
            nt.sql("SELECT * FROM runs FOR UPDATE")
        assert nt.runs()["name"].to_list() == ["r"]


def test_an_unreachable_server_is_one_line_without_the_password(tmp_path):
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/nbtrail"
    with nt.config(store=url, home=str(tmp_path / "here")), \
            pytest.raises(TeamStoreError) as caught:
        nt.runs()
    message = str(caught.value)
    assert "hunter2" not in message and "\n" not in message
    assert message.startswith("failed connecting to the team store postgresql://127.0.0.1:")


def test_the_cli_says_so_in_one_line_and_exits_non_zero(tmp_path):
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/nbtrail"
    done = subprocess.run([sys.executable, "-m", "nbtrail.cli", "runs", "ls", "--store", url],
                          capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "hunter2" not in done.stderr
    assert "the team store postgresql://127.0.0.1:" in done.stderr


def test_training_goes_on_when_the_server_is_down_and_the_records_wait(tmp_path):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nbtrail"
    code = textwrap.dedent(f"""
        import nbtrail as nt
        nt.config.set(store={url!r}, home={str(tmp_path / 'here')!r}, capture_git=False)
        with nt.run(name="offline") as run:
            for step in range(100):
                run.log_metric("m", step, step=step)
        print("trained")
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(SRC)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "trained"
    assert "the records wait in" in done.stderr
    journals = list((tmp_path / "here" / "team").glob("*/journal/*.nbj3"))
    assert journals and sum(p.stat().st_size for p in journals) > 100 * 32


def test_an_empty_database_and_a_newer_schema_are_refused_by_name(team, tmp_path):
    with nt.config(home=str(tmp_path / "here")):
        with pytest.raises(StoreNotFoundError, match="no nbtrail store in postgresql://"):
            open_store(team, read_only=True).runs()
        open_store(team).sync()  # creates the schema
        with psycopg.connect(team) as conn:
            conn.execute("INSERT INTO schema_info (version, nbtrail_version) VALUES (99, 'x')")
        with pytest.raises(ConflictError, match="schema version 99, newer"):
            open_store(team).runs()


def test_a_team_store_url_is_its_location_without_the_password(postgres_url, tmp_path):
    url = postgres_url.replace("postgres@", "postgres:hunter2@")
    with nt.config(home=str(tmp_path / "here")):
        store = open_store(url)
    assert "hunter2" not in store.location
    assert not str(store.home).count("hunter2")
    assert Path(store.home).is_relative_to(tmp_path / "here" / "team")


def test_a_run_s_user_is_the_role_the_server_authenticated(team, tmp_path):
    with psycopg.connect(team, autocommit=True) as conn:
        conn.execute("CREATE ROLE ana LOGIN")
        conn.execute("GRANT ALL ON SCHEMA public TO ana")
    as_ana = team.replace("postgres@", "ana@")
    with nt.config(store=as_ana, home=str(tmp_path / "ana"), capture_git=False), \
            mock_os_user("mallory"):  # what the client claims counts for nothing
        with nt.run(name="hers") as run:
            pass
        assert nt.get_run(run.run_id).user == "ana"


def test_sync_status_works_offline_and_sync_lands_everything_once_the_server_is_back(
        tmp_path):
    server = PostgresServer()
    server.start()
    try:
        team = _database(server.url)
        server.stop()
        env = {**os.environ, "PYTHONPATH": str(SRC), "NBTRAIL_HOME": str(tmp_path / "here")}
        logged = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            import nbtrail as nt
            nt.config.set(store={team!r}, capture_git=False)
            with nt.run(name="offline") as run:
                for step in range(300):
                    run.log_metric("m", step, step=step)
        """)], env=env, capture_output=True, text=True, timeout=120)
        assert logged.returncode == 0, logged.stderr

        def cli(*argv: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "nbtrail.cli", *argv, "--store", team],
                                  env=env, capture_output=True, text=True, timeout=120)

        status = cli("sync", "--status")
        assert status.returncode == 0, status.stderr
        assert "bytes of records in 1 journal(s)" in status.stdout
        assert "never synced from this machine" in status.stdout
        down = cli("sync")
        assert down.returncode == 1 and "Traceback" not in down.stderr
        assert "failed" in down.stderr and "the team store" in down.stderr
        server.start()
        up = cli("sync")
        assert up.returncode == 0, up.stderr
        assert "no records and no blobs wait to land; last synced" in up.stdout
        with psycopg.connect(team) as conn:
            assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (300,)
    finally:
        server.remove()


def test_a_sweep_on_the_team_store_keeps_its_study_in_the_same_database(team, tmp_path):
    import optuna

    with nt.config(store=team, home=str(tmp_path / "here"), capture_git=False):
        sweep = nt.sweep(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=5,
                         direction="minimize", name="quadratic")
        assert sweep.trials().height == 5
        assert nt.runs(where="params.x >= -1").height == 5  # every trial a run, in PostgreSQL
    study = optuna.load_study(  # where a worker on another machine finds it with one URL
        study_name="quadratic", storage=team.replace("postgresql://", "postgresql+psycopg://"))
    assert len(study.trials) == 5


def _cli(*argv: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nbtrail.cli", *argv], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(SRC),
                                                       "NBTRAIL_HOME": str(home)})


def test_store_init_and_doctor_name_each_problem_in_one_line(team, tmp_path):
    made = _cli("store", "init", team, home=tmp_path)
    assert made.returncode == 0 and "(created)" in made.stdout, made.stderr
    fine = _cli("store", "doctor", "--store", team, home=tmp_path)
    assert fine.returncode == 0, fine.stdout
    with psycopg.connect(team, autocommit=True) as conn:
        conn.execute("CREATE ROLE bob LOGIN")
        conn.execute("GRANT SELECT ON runs TO bob")
    as_bob = _cli("store", "doctor", "--store", team.replace("postgres@", "bob@"),
                  home=tmp_path)
    assert as_bob.returncode == 1 and "Traceback" not in as_bob.stderr
    problem = [line for line in as_bob.stdout.splitlines() if line.startswith("PROBLEM")]
    assert len(problem) == 2 and "privileges: role bob may not read and write" in problem[0]
    assert "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO bob" in problem[0]
    assert "sql: role bob may not take the role nbtrail_reader" in problem[1]
    down = _cli("store", "doctor", "--store",
                f"postgresql://bob:hunter2@127.0.0.1:{free_port()}/x", home=tmp_path)
    assert down.returncode == 1 and "hunter2" not in down.stdout + down.stderr
    assert down.stdout.startswith("PROBLEM server: failed connecting to the team store")


def test_store_copy_moves_a_local_store_into_the_team_store_once_and_resumes(team, tmp_path):
    local = tmp_path / "local"
    with nt.config(home=str(local), capture_git=False):
        for r in range(3):
            with nt.run(name=f"r{r}") as run:
                run.log_param("lr", r / 10)
                run.log_artifact(_file(tmp_path / f"notes{r}.txt", f"notes {r}"))
                for step in range(50):
                    run.log_metric("loss", 1 / (step + 1), step=step)
        nt.sync()
        expected = nt.runs(order_by="name")
    first = _cli("store", "copy", str(local), team, home=tmp_path / "copier")
    assert first.returncode == 0, first.stderr
    assert "the points of 3 runs (0 had them already), 3 blobs" in first.stdout
    again = _cli("store", "copy", str(local), team, home=tmp_path / "copier")
    assert "the points of 0 runs (3 had them already)" in again.stdout, again.stderr
    with psycopg.connect(team) as conn:  # a copy cut short in the middle of a run's points
        conn.execute("DELETE FROM metrics WHERE run_id = %s AND step >= 20",
                     [expected["run_id"][0]])
    resumed = _cli("store", "copy", str(local), team, home=tmp_path / "copier")
    assert "the points of 1 runs (2 had them already)" in resumed.stdout, resumed.stderr
    with nt.config(store=team, home=str(tmp_path / "teammate")):
        copied = nt.runs(order_by="name")
        assert copied.select("run_id", "name", "status", "params.lr", "metrics.loss").rows() \
            == expected.select("run_id", "name", "status", "params.lr", "metrics.loss").rows()
        run_id = expected["run_id"][0]
        assert nt.metric_history(run_id, "loss")["step"].to_list() == list(range(50))
    with psycopg.connect(team) as conn:
        assert conn.execute("SELECT count(*) FROM metrics").fetchone() == (150,)


def _file(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_a_teammate_compares_runs_made_on_another_machine_from_their_own_clone(
        team, tmp_path, monkeypatch):
    origin, mine, theirs = tmp_path / "origin.git", tmp_path / "mine", tmp_path / "theirs"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    git(tmp_path, "clone", "-q", str(origin), str(mine))
    identity = ("-c", "user.name=Ana", "-c", "user.email=ana@example.com")
    (mine / "train.py").write_text("C = 1.0\n")
    git(mine, "add", "train.py")
    git(mine, *identity, "commit", "-q", "-m", "train")
    git(mine, "push", "-q", "origin", "HEAD")
    monkeypatch.chdir(mine)
    runs = []
    with nt.config(store=team, home=str(tmp_path / "my-home")):
        for c in ("1.0", "0.1"):  # the second run's code is uncommitted: only its snapshot has it
            (mine / "train.py").write_text(f"C = {c}\n")
            with nt.run(name=f"C={c}") as run:
                run.log_metric("acc", float(c))
            runs.append(run.run_id)
    synced = _cli("sync", "--store", team, home=tmp_path / "my-home")
    assert synced.returncode == 0, synced.stderr
    assert f"{mine}: code snapshots pushed to origin" in synced.stdout

    monkeypatch.chdir(tmp_path)
    shutil.rmtree(mine)  # the other machine's work tree is not here
    # Through git's transport (a plain path would hard-link every object of origin): the
    # clone has no refs/nbtrail, nor their commits, until they are fetched.
    git(tmp_path, "clone", "-q", f"file://{origin}", str(theirs))
    assert git(theirs, "for-each-ref", "refs/nbtrail") == ""
    monkeypatch.chdir(theirs)
    with nt.config(store=team, home=str(tmp_path / "their-home")):
        (diff,) = nt.compare(runs=runs, metric="acc").code
    assert [f.path for f in diff.files] == ["train.py"], diff.note
    assert git(theirs, "rev-parse", f"refs/nbtrail/runs/{runs[1]}") == diff.commit_b


def test_nt_sql_runs_as_a_role_that_may_only_read(team, tmp_path):
    with nt.config(store=team, home=str(tmp_path / "here"), capture_git=False):
        with nt.run(name="r"):
            pass
        assert nt.sql("SELECT current_user AS who")["who"].to_list() == ["nbtrail_reader"]
    with psycopg.connect(team) as conn:  # the role itself: SELECT only
        assert conn.execute(
            "SELECT has_table_privilege('nbtrail_reader', 'runs', 'SELECT'), "
            "has_table_privilege('nbtrail_reader', 'runs', 'INSERT'), "
            "has_table_privilege('nbtrail_reader', 'runs', 'DELETE')").fetchone() == (
            True, False, False)


def test_a_wrong_password_is_one_line_naming_the_store_without_either_password(tmp_path):
    server = PostgresServer(password="right-one")
    server.start()
    try:
        wrong = server.url.replace("right-one", "wrong-one")
        done = _cli("store", "doctor", "--store", wrong, home=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr
        assert done.stdout.startswith("PROBLEM server: failed connecting to the team store "
                                      f"postgresql://127.0.0.1:{server.port}/postgres")
        assert "password authentication failed" in done.stdout
        assert "right-one" not in done.stdout + done.stderr
        assert "wrong-one" not in done.stdout + done.stderr
        fine = _cli("store", "doctor", "--store", server.url, home=tmp_path)
        assert fine.stdout.startswith("ok      server:"), fine.stdout
    finally:
        server.remove()
