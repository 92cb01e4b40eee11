"""The registry on every backend: versions, references, checks, four eyes, the audit chain.

Each test runs over the embedded store and the team store (``store_location``). A second
person is ``NBTRAIL_USER`` on the embedded store and a second PostgreSQL role on the team
store, where the role is the only identity that counts.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

import nbtrail as nt
from nbtrail.errors import (
    ApprovalError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    TeamStoreError,
)
from nbtrail.registry import _api
from nbtrail.store import Store, open_store

COLUMNS = [f"f{i}" for i in range(4)]


@dataclass
class Team:
    """A store location, and how to act in it as someone else."""

    location: str
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def team(self) -> bool:
        return self.location.startswith("postgresql")

    @contextlib.contextmanager
    def settings(self, who: str | None = None) -> Iterator[None]:
        """The configured store is this one, used as ``who`` (None: the first user)."""
        location = self.location
        if who is not None and self.team:
            location = _role(location, who)
        elif who is not None:
            self.monkeypatch.setenv("NBTRAIL_USER", who)
        home = str(self.tmp / f"home-{who or 'me'}")
        try:
            with nt.config(**({"store": location, "home": home} if self.team
                              else {"home": location}), capture_git=False):
                yield
        finally:
            self.monkeypatch.delenv("NBTRAIL_USER", raising=False)

    def store(self, who: str | None = None) -> Store:
        with self.settings(who):
            from nbtrail.tracking._tracker import get_store

            return get_store()


_roles: set[str] = set()


def _role(url: str, name: str) -> str:
    """``url`` as the login role ``name`` (made once per server), allowed what a user is."""
    import psycopg

    role = f"{name}_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        if role not in _roles:
            conn.execute(f"CREATE ROLE {role} LOGIN")
            _roles.add(role)
        conn.execute(f"GRANT ALL ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}")
    return url.replace("postgres@", f"{role}@")


@pytest.fixture
def team(store_location: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Team:
    monkeypatch.delenv("NBTRAIL_USER", raising=False)
    return Team(store_location, tmp_path, monkeypatch)


def _data(seed: int, n: int = 300, shift: float = 0.0) -> pl.DataFrame:
    from sklearn.datasets import make_classification

    X, y = make_classification(n, len(COLUMNS), n_informative=3, n_redundant=0,
                               random_state=seed)
    return pl.DataFrame(X + shift, schema=COLUMNS).with_columns(y=pl.Series(y))


def _train(C: float, *, models: int = 1, log_model: bool = True) -> str:
    from sklearn.linear_model import LogisticRegression

    data = _data(0)
    features = data.drop("y").to_pandas()
    with nt.run(name=f"C={C}") as run:
        run.log_dataset(features, role="train")
        for i in range(models if log_model else 0):
            model = LogisticRegression(C=C).fit(features, data["y"].to_numpy())
            run.log_model(model, name=f"model{i}")
            run.log_metric("train_accuracy", model.score(features, data["y"].to_numpy()))
    return run.run_id


@pytest.fixture
def churn(team: Team, tmp_path: Path) -> dict[str, object]:
    """Two versions of churn: 1 weak (C=0.0005), 2 stronger (C=1), and a holdout file.

    The holdout rows come from the training distribution's range, so validate is clean.
    """
    holdout = tmp_path / "holdout.parquet"
    _data(0).sample(200, seed=1).write_parquet(holdout)
    with team.settings():
        weak, strong = _train(0.0005), _train(1.0)
        v1 = nt.register(weak, name="churn", description="monthly churn risk")
        v2 = nt.register(strong, name="churn")
    return {"v1": v1, "v2": v2, "holdout": str(holdout), "runs": (weak, strong)}


def test_versions_number_per_name_and_keep_the_model_and_its_lineage(team, churn):
    v1, v2 = churn["v1"], churn["v2"]
    assert (v1.version, v2.version) == (1, 2) and v1.ref == "churn/1"
    with team.settings():
        assert nt.register(churn["runs"][1], name="churn").version == 2  # again: the same
        assert nt.register(v1.model_id, name="other").ref == "other/1"
        models = nt.models()
        assert models["name"].to_list() == ["churn", "other"]
        assert models.filter(pl.col("name") == "churn")["versions"][0] == 2
        versions = nt.model_versions("churn")
        assert versions["model_id"].to_list() == [v1.model_id, v2.model_id]
        assert versions["metric.train_accuracy"].null_count() == 0
        facts = fold_facts(team.store(), "churn", 1)
        assert facts["run_id"] == churn["runs"][0] and facts["signature"]["inputs"]
        assert facts["datasets"][0]["fingerprint"].startswith("sha256:")
        assert facts["description"] == "monthly churn risk"


def fold_facts(store: Store, name: str, number: int) -> dict[str, object]:
    from nbtrail.registry._refs import model_state

    return model_state(store, name).versions[number].facts


def test_registering_what_has_no_single_model_says_so_in_one_line(team, churn):
    with team.settings():
        bare, pair = _train(1.0, log_model=False), _train(1.0, models=2)
        with pytest.raises(InvalidInputError, match="logged no model"):
            nt.register(bare, name="churn")
        with pytest.raises(InvalidInputError, match="logged 2 models; register one of them"):
            nt.register(pair, name="churn")
        with pytest.raises(InvalidInputError, match="model name 'no way' is not usable"):
            nt.register(pair, name="no way")
        with pytest.raises(NotFoundError, match="registered models: churn"):
            nt.model_versions("nope")


def test_references_resolve_everywhere_a_model_id_is_taken(team, churn, tmp_path):
    v2 = churn["v2"]
    with team.settings():
        nt.set_alias("churn", "challenger", 2)
        assert nt.model_version("churn@challenger").model_id == v2.model_id
        assert type(nt.load_model("churn/1")).__name__ == "LogisticRegression"
        package = nt.package("churn@challenger", build=False, output=tmp_path / "pkg")
        assert package.model_id == v2.model_id
        holdout = pl.read_parquet(churn["holdout"]).drop("y")
        assert nt.validate(holdout, "churn/2").ok
        assert nt.drift("churn@challenger", holdout).to_polars().height > 0
        comparison = nt.compare(runs=["churn/1", "churn@challenger"], latency=False)
        assert comparison.to_polars()["metrics"].columns[1:3] == ["churn/1", "churn@challenger"]
        with nt.serve("churn/1", port=0, background=True) as server:
            assert server.url.startswith("http://")
        used = nt.audit("churn").filter(pl.col("event").is_in(["package_built", "deployed"]))
        assert used["event"].to_list() == ["package_built", "deployed"]
        assert used["version"].to_list() == [2, 1]
        assert nt.model_versions("churn")["packages"].to_list() == [0, 1]
        for bad, match in (("churn/9", "no version 9"), ("churn@gone", "no alias @gone"),
                           ("ghost@champion", "no registered model 'ghost'")):
            with pytest.raises(NotFoundError, match=match):
                nt.load_model(bad)


def test_checks_record_their_evidence_and_a_worse_candidate_fails(team, churn):
    with team.settings():
        nt.set_policy("churn", "champion", metric="accuracy", data=churn["holdout"],
                      target="y", validate=True, max_latency_ms=1000, max_size_mb=10,
                      require_approval=False)
        first = nt.request_promotion("churn", version=2, alias="champion")
        assert first.status == "approved", first
        assert [c["check"] for c in first.checks] == ["metric", "validate", "latency", "size"]
        metric = first.checks[0]
        assert metric["evidence"]["holder"] is None and metric["evidence"]["rows"] == 200
        assert metric["evidence"]["fingerprint"].startswith("sha256:")
        assert nt.model_version("churn@champion").version == 2
        worse = nt.request_promotion("churn", version=1, alias="champion")
        assert worse.status == "failed" and worse.failed_checks == ["metric"]
        evidence = worse.checks[0]["evidence"]
        assert evidence["holder_version"] == 2 and evidence["candidate"] < evidence["holder"]
        assert "worse than required" in worse.checks[0]["detail"]
        assert nt.model_version("churn@champion").version == 2  # unmoved
        events = nt.audit("churn")["event"].to_list()
        assert events.count("check") == 8 and events.count("alias_set") == 1
        auto = nt.audit("churn").filter(pl.col("event") == "approved")["payload"][0]
        assert '"automatic":true' in auto


def test_a_dirty_evaluation_set_fails_validate_and_a_size_limit_fails_size(team, churn,
                                                                           tmp_path):
    dirty = tmp_path / "dirty.parquet"
    _data(2).with_columns(pl.col("f0").cast(pl.String)).write_parquet(dirty)
    with team.settings():
        nt.set_policy("churn", "prod", data=str(dirty), validate=True, max_size_mb=1e-6)
        request = nt.request_promotion("churn", version=1, alias="prod")
    assert request.status == "failed" and request.failed_checks == ["validate", "size"]
    assert "f0" in request.checks[0]["detail"] and request.checks[1]["evidence"]["size_bytes"]


def test_four_eyes_refuses_the_requester_and_the_author_then_a_reviewer_approves(team,
                                                                                 churn):
    with team.settings():
        nt.set_policy("churn", "champion")  # approval only
        request = nt.request_promotion("churn", version=2, alias="champion", note="better")
        assert request.status == "pending"
        with pytest.raises(ApprovalError, match="requested it; four eyes"):
            nt.approve(request.request_id)
    with team.settings("lead"):  # requests it for a version the first user trained
        nt.reject(request.request_id, note="not yet")
        again = nt.request_promotion("churn", version=2, alias="champion")
    with team.settings(), pytest.raises(ApprovalError, match="trained the model"):
        nt.approve(again.request_id)
    with team.settings("reviewer"):
        approved = nt.approve(again.request_id, note="looks right")
        assert approved.status == "approved" and approved.decided_by.startswith("reviewer")
        assert nt.model_version("churn@champion").version == 2
        with pytest.raises(ApprovalError, match="already approved by reviewer"):
            nt.approve(again.request_id)
        with pytest.raises(NotFoundError, match="no promotion request #999"):
            nt.approve(999)
        sources = set(nt.audit("churn")["actor_source"])
    assert sources == ({"database role"} if team.team else {"os user", "NBTRAIL_USER"})


def test_a_rejected_request_leaves_the_alias_where_it_was(team, churn):
    with team.settings():
        nt.set_alias("churn", "champion", 1)
        nt.set_policy("churn", "champion")
        with pytest.raises(ConflictError, match="protected by a policy"):
            nt.set_alias("churn", "champion", 2)
        request = nt.request_promotion("churn", version=2, alias="champion")
        nt.reject(request.request_id, note="hold")
        assert nt.model_version("churn@champion").version == 1
        assert nt.promotion_requests("churn")["status"].to_list() == ["rejected"]


def _request_in_a_process(location: str, home: str, barrier: object, results: object
                          ) -> None:
    """One of several processes asking for the same alias at the same moment."""
    from nbtrail.store import open_store

    with nt.config(home=home, capture_git=False):
        store = open_store(location)
        barrier.wait(60)  # type: ignore[attr-defined]
        try:
            request = _api.request_promotion(store, "churn", version=2, alias="champion")
            results.put(("won", request.request_id))  # type: ignore[attr-defined]
        except ConflictError as exc:
            results.put(("lost", str(exc)))  # type: ignore[attr-defined]
        finally:
            store.close()


def test_concurrent_requests_on_one_alias_exactly_one_wins(team, churn):
    import multiprocessing

    with team.settings():
        nt.set_policy("churn", "champion")  # the winner's request stays open, pending
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(4), spawn.Queue()
    workers = [spawn.Process(target=_request_in_a_process, args=(
        team.location, str(team.tmp / f"worker{i}"), barrier, results)) for i in range(4)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(30)
    won = [detail for kind, detail in outcomes if kind == "won"]
    lost = [detail for kind, detail in outcomes if kind == "lost"]
    assert len(won) == 1 and len(lost) == 3, outcomes
    assert all(f"already has an open request, #{won[0]}" in message for message in lost)
    assert _api.verify_audit(team.store()).ok


def test_bad_input_is_one_clear_line(team, churn):
    with team.settings():
        for values, match in (({"treshold": 1}, "unknown policy field"),
                              ({"max_size_mb": -1}, "max_size_mb must be a number >= 0"),
                              ({"metric": "accuracy"}, "need data="),
                              ({"metric": "vibes", "data": "x", "target": "y"},
                               "metric must be one of"),
                              ({"require_approval": "yes"}, "True or False")):
            with pytest.raises(InvalidInputError, match=match) as info:
                nt.set_policy("churn", "champion", **values)
            assert "\n" not in str(info.value)
        with pytest.raises(InvalidInputError, match="alias '1st' is not usable"):
            nt.set_alias("churn", "1st", 1)
        with pytest.raises(NotFoundError, match="churn has no version 7"):
            nt.request_promotion("churn", version=7, alias="champion")
        with pytest.raises(InvalidInputError, match="a request id is a number"):
            nt.approve("12")


def _tamper(team: Team, statement: str) -> None:
    """Edit the audit table directly, as someone with the file or a superuser would."""
    if team.team:
        import psycopg

        with psycopg.connect(team.location, autocommit=True) as conn:
            conn.execute("ALTER TABLE audit DISABLE TRIGGER USER")
            conn.execute(statement)
            conn.execute("ALTER TABLE audit ENABLE TRIGGER USER")
        return
    import duckdb

    store = team.store()
    store.sync()
    nt.config.current  # noqa: B018  (the store's own handles are closed below)
    from nbtrail.tracking._tracker import _close_all

    _close_all()
    con = duckdb.connect(str(Path(team.location) / "nbtrail.duckdb"))
    try:
        con.execute(statement)
    finally:
        con.close()


@pytest.mark.parametrize(("statement", "named"), [
    ("UPDATE audit SET payload = replace(payload, 'monthly', 'weekly') WHERE seq = 1",
     "entry 1 (registered of churn/1 by"),
    ("DELETE FROM audit WHERE seq = 1", "entry 1 is missing"),
])
def test_audit_verify_names_the_first_entry_edited_or_deleted(team, churn, statement, named):
    with team.settings():
        verdict = nt.verify_audit()
        assert verdict.ok and verdict.entries == 2 and len(verdict.head or "") == 64
    _tamper(team, statement)
    with team.settings():
        verdict = nt.verify_audit()
    assert not verdict.ok and named in str(verdict.problem), verdict


# The team store's alone: the embedded store's file is its user's own (the chain shows
# edits), and there NBTRAIL_USER is the identity, which needs no server.
TEAM_ONLY = pytest.mark.parametrize("store_location", ["postgresql"], indirect=True)


@TEAM_ONLY
def test_on_postgresql_ordinary_roles_cannot_rewrite_the_audit_or_forge_its_actor(team,
                                                                                  churn):
    import psycopg

    url = _role(team.location, "clerk")
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in ("UPDATE audit SET actor = 'someone' WHERE seq = 1",
                          "DELETE FROM audit WHERE seq = 1", "TRUNCATE audit"):
            with pytest.raises(psycopg.Error, match=r"append-only|permission denied"):
                conn.execute(statement)
        with pytest.raises(psycopg.Error, match="names the role that inserts it"):
            conn.execute("INSERT INTO audit VALUES (99, 0, 'postgres', 'database role', "
                         "'registered', 'churn', 9, '{}', '', '')")
    with team.settings():
        assert nt.verify_audit().ok


@TEAM_ONLY
def test_on_the_team_store_nbtrail_user_is_not_an_identity(team, churn, monkeypatch):
    with team.settings():
        monkeypatch.setenv("NBTRAIL_USER", "mallory")
        nt.set_alias("churn", "staging", 1)
    assert set(nt.audit("churn", store=team.store())["actor"]) == {"postgres"}


@TEAM_ONLY
def test_registry_changes_need_the_server(team, churn):
    down = team.location.rsplit(":", 1)[0] + ":1/none"
    with nt.config(store=down, home=str(team.tmp / "down"), capture_git=False):
        store = open_store(down)
        with pytest.raises(TeamStoreError, match=r"failed .* the team store"):
            _api.set_alias(store, "churn", "x", 1)


def test_registering_again_with_a_new_description_sets_it(team, churn):
    with team.settings():
        again = nt.register(churn["runs"][0], name="churn", description="weekly churn risk")
        assert again.version == 1
        assert nt.models()["description"].to_list() == ["weekly churn risk"]
        assert nt.audit("churn")["event"].to_list()[-1] == "description_set"


def test_verify_names_a_well_chained_entry_that_breaks_the_rules(team, churn):
    from nbtrail.store._audit import Draft

    with team.settings():
        nt.set_policy("churn", "champion")
        assert nt.verify_audit().ok
    # Appended as a role that may insert would, past request_promotion and approve.
    with team.store().audit_session() as session:
        (forged,) = session.append([Draft("alias_set", "churn", 1,
                                          {"alias": "champion", "request": None})])
    with team.settings():
        verdict = nt.verify_audit()
    assert not verdict.ok and verdict.broken_seq == forged.seq
    assert f"entry {forged.seq} (alias_set by" in str(verdict.problem)
    assert "moves protected @champion of churn to version 1 without an approved request" in \
        str(verdict.problem)


def test_a_service_acting_for_users_keeps_four_eyes_between_them(team, churn):
    store = team.store()
    _api.set_policy(store, "churn", "champion", {})
    request = _api.request_promotion(store, "churn", version=2, alias="champion",
                                     on_behalf_of="ann")
    assert request.requested_by == "ann"
    with pytest.raises(ApprovalError, match="ann may not approve"):
        _api.decide(store, request.request_id, approve=True, on_behalf_of="ann")
    approved = _api.decide(store, request.request_id, approve=True, on_behalf_of="ben")
    assert approved.decided_by == "ben" and _api.verify_audit(store).ok
