"""Read queries over the folded database: the wide runs table, one run, lineage."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ._filter import Field, compile_filter, compile_order_by
from ._records import Lineage, Run, node_kind

if TYPE_CHECKING:
    import duckdb
    import polars as pl

# Attribute columns of the wide runs table; the filter language names the same ones.
_BASE = """
SELECT run_id, name, experiment, status, start_time, end_time,
       epoch(coalesce(end_time, now()) - start_time) AS duration,
       parent_id, git_branch AS branch, git_commit AS "commit", notebook, error,
       user_name AS "user", hostname AS host
FROM runs
"""
_BASE_COLUMNS = ("run_id", "name", "experiment", "status", "start_time", "end_time",
                 "duration", "parent_id", "branch", "commit", "notebook", "error", "user",
                 "host")
_NUMERIC_TYPES = {"int", "float"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def runs_query(
    con: duckdb.DuckDBPyConnection,
    *,
    where: str | None,
    order_by: str | list[str] | None,
    experiment: str | None,
    limit: int | None,
    offset: int,
) -> pl.DataFrame:
    """The wide runs table: attributes, then ``params.*``, ``metrics.*``, ``tags.*`` columns.

    Two phases in one statement: the page of run ids is chosen joining only the keys the
    filter and ordering name; only that page is pivoted into one column per key.
    """
    compiled = compile_filter(where)
    order_sql, order_fields = compile_order_by(order_by)
    scope = "WHERE experiment = ?" if experiment is not None else ""
    scope_params: list[Any] = [experiment] if experiment is not None else []

    keys = _keys(con, scope, scope_params)
    params: list[Any] = list(scope_params)
    # Phase 1: the page, joining one narrow column per field the filter or order names.
    joins, join_params = _field_joins(compiled.fields | order_fields, keys)
    params.extend(join_params)
    page = ""
    if limit is not None or offset:
        upper = "" if limit is None else f" AND _pos <= {int(offset) + int(limit)}"
        page = f"QUALIFY _pos > {int(offset)}{upper}"
    ctes = [
        # Not materialized: PostgreSQL would otherwise copy every run before filtering.
        f"base AS NOT MATERIALIZED ({_BASE} {scope})",
        f"page AS MATERIALIZED (SELECT run_id, row_number() OVER ({order_sql}) AS _pos "
        f"FROM base {' '.join(joins)} WHERE {compiled.sql} {page})",
    ]
    params.extend(compiled.params)

    # Phase 2: one column per key, for the runs of the page only.
    wide_joins = []
    for kind, found in keys.items():
        if not found:
            continue
        columns = ", ".join(
            f"any_value(value) FILTER (WHERE key = ?) AS {_quote(f'{kind}.{k}')}" for k in found
        )
        ctes.append(f"{kind}_wide AS (SELECT run_id, {columns} FROM {_TABLES[kind]} "
                    "WHERE run_id IN (SELECT run_id FROM page) GROUP BY run_id)")
        params.extend(found)
        wide_joins.append(f"LEFT JOIN {kind}_wide USING (run_id)")
    # Every column by name (no DuckDB-only * EXCLUDE / REPLACE): params logged only as
    # numbers or booleans come back typed.
    selected = [f"base.{_quote(c)}" for c in _BASE_COLUMNS]
    for kind, found in keys.items():
        for key, types in found.items():
            column = _quote(f"{kind}.{key}")
            kinds = set(types or ())
            target = None if kind != "params" else (
                "BIGINT" if kinds == {"int"} else "DOUBLE" if kinds <= _NUMERIC_TYPES
                else "BOOLEAN" if kinds == {"bool"} else None)
            selected.append(f"TRY_CAST({kind}_wide.{column} AS {target}) AS {column}"
                            if target else f"{kind}_wide.{column}")
    query = (
        f"WITH {', '.join(ctes)} SELECT {', '.join(selected)} "
        f"FROM page JOIN base USING (run_id) {' '.join(wide_joins)} ORDER BY page._pos"
    )
    return con.sql(query, params=params).pl()


_TABLES = {"params": "params", "metrics": "latest_metrics", "tags": "tags"}


def count_runs(con: duckdb.DuckDBPyConnection, *, where: str | None,
               experiment: str | None) -> int:
    """How many runs match ``where`` (and ``experiment``): the size of every page together."""
    compiled = compile_filter(where)
    scope = "WHERE experiment = ?" if experiment is not None else ""
    scope_params: list[Any] = [experiment] if experiment is not None else []
    joins, join_params = _field_joins(compiled.fields, _keys(con, scope, scope_params))
    query = (f"WITH base AS ({_BASE} {scope}) SELECT count(*) FROM base {' '.join(joins)} "
             f"WHERE {compiled.sql}")
    return int(con.execute(query, [*scope_params, *join_params, *compiled.params])
               .fetchall()[0][0])


def _keys(con: duckdb.DuckDBPyConnection, scope: str,
          scope_params: list[Any]) -> dict[str, dict[str, list[str]]]:
    """Every param, metric and tag key of the runs in scope (params with their value types)."""
    keys: dict[str, dict[str, list[str]]] = {"params": {}, "metrics": {}, "tags": {}}
    in_scope = f"run_id IN (SELECT run_id FROM runs {scope})" if scope else "TRUE"
    for kind, key, types in con.execute(f"""
        SELECT 'params', key, list(DISTINCT value_type) FROM params WHERE {in_scope} GROUP BY key
        UNION ALL SELECT 'metrics', key, NULL FROM latest_metrics WHERE {in_scope} GROUP BY key
        UNION ALL SELECT 'tags', key, NULL FROM tags WHERE {in_scope} GROUP BY key
        ORDER BY 1, 2""", scope_params * 3 if scope else []).fetchall():
        keys[kind][key] = types
    return keys


def _field_joins(fields: frozenset[Field],
                 keys: dict[str, dict[str, list[str]]]) -> tuple[list[str], list[Any]]:
    """One narrow ``LEFT JOIN`` a param, metric or tag field, and their bound parameters."""
    joins, params = [], []
    needed = sorted({f for f in fields if f.kind != "attr"}, key=lambda f: f.column)
    for i, field in enumerate(needed):
        if field.key in keys[field.kind]:
            # A NaN metric neither matches a comparison nor sorts first: it counts as missing.
            value = ("CASE WHEN isnan(value) THEN NULL ELSE value END"
                     if field.kind == "metrics" else "value")
            joins.append(f"LEFT JOIN (SELECT run_id, {value} AS {field.sql()} "
                         f"FROM {_TABLES[field.kind]} WHERE key = ?) AS f{i} USING (run_id)")
            params.append(field.key)
        else:  # no run has this key: a NULL column keeps the query valid
            joins.append(f"LEFT JOIN (SELECT NULL::VARCHAR AS run_id, "
                         f"NULL::{'DOUBLE' if field.kind == 'metrics' else 'VARCHAR'} "
                         f"AS {field.sql()}) AS f{i} USING (run_id)")
    return joins, params


def read_run(con: duckdb.DuckDBPyConnection, run_id: str) -> Run:
    """Everything about one run."""
    rows = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).fetchall()
    assert rows, run_id
    row = rows[0]
    cols = [d[0] for d in con.description or ()]
    r = dict(zip(cols, row, strict=True))

    params = {k: _param_value(v, t) for k, v, t in con.execute(
        "SELECT key, value, value_type FROM params WHERE run_id = ? ORDER BY key",
        [run_id]).fetchall()}
    metrics = dict(con.execute(
        "SELECT key, value FROM latest_metrics WHERE run_id = ? ORDER BY key",
        [run_id]).fetchall())
    tags = dict(con.execute(
        "SELECT key, value FROM tags WHERE run_id = ? ORDER BY key", [run_id]).fetchall())
    datasets = _dicts(con, """
        SELECT rd.dataset_id, rd.name, rd.role, d.fingerprint, d.source_type, d.n_rows,
               d.n_columns, d.schema, d.stats, d.sample_sha256
        FROM run_datasets rd JOIN datasets d USING (dataset_id)
        WHERE rd.run_id = ? ORDER BY rd.logged_at""", [run_id], ("schema", "stats"))
    models = _dicts(con, """
        SELECT model_id, name, flavor, class_name, format, sha256, size_bytes, signature,
               training_dataset_id, created_at
        FROM models WHERE run_id = ? ORDER BY created_at""", [run_id], ("signature",))
    artifacts = _dicts(con, """
        SELECT name, artifact_id, sha256, size_bytes, media_type, logged_at
        FROM artifacts WHERE run_id = ? ORDER BY name""", [run_id])
    env = None
    if r["env_id"]:
        found = _dicts(con, "SELECT * FROM environments WHERE env_id = ?", [r["env_id"]],
                       ("packages", "details"))
        env = found[0] if found else None
    code = None
    if r["code_id"]:
        found = _dicts(con, "SELECT * FROM code_snapshots WHERE code_id = ?", [r["code_id"]],
                       ("cells",))
        code = found[0] if found else None
    git = None
    if r["git_root"]:
        git = {"root": r["git_root"], "commit": r["git_commit"], "branch": r["git_branch"],
               "dirty": r["git_dirty"], "snapshot": r["git_snapshot"]}
    children = [c[0] for c in con.execute(
        "SELECT run_id FROM runs WHERE parent_id = ? ORDER BY run_id", [run_id]).fetchall()]
    return Run(
        run_id=r["run_id"], name=r["name"], experiment=r["experiment"], status=r["status"],
        start_time=r["start_time"], end_time=r["end_time"], parent_id=r["parent_id"],
        error=r["error"], notebook=r["notebook"], params=params, metrics=metrics, tags=tags,
        datasets=datasets, models=models, artifacts=artifacts, git=git, env=env, code=code,
        seeds=json.loads(r["seeds"]) if r["seeds"] else {}, children=children,
        user=r["user_name"], host=r["hostname"],
    )


def _param_value(value: str | None, value_type: str) -> Any:
    if value is None:
        return None
    if value_type == "bool":
        return value == "True"
    if value_type in ("int", "float", "json"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _dicts(con: duckdb.DuckDBPyConnection, query: str, params: list[Any],
           json_columns: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    rows = con.execute(query, params).fetchall()
    cols = [d[0] for d in con.description or ()]
    out = []
    for row in rows:
        item = dict(zip(cols, row, strict=True))
        for c in json_columns:
            if item.get(c) is not None:
                item[c] = json.loads(item[c])
        out.append(item)
    return out


def lineage_query(
    con: duckdb.DuckDBPyConnection, node_id: str, *, direction: str, depth: int,
    store_location: str,
) -> Lineage:
    """Walk ``edges`` from ``node_id`` up (towards inputs), down (towards outputs) or both."""
    import polars as pl

    from ..errors import NotFoundError

    known = con.execute(
        "SELECT 1 FROM edges WHERE src_id = ? OR dst_id = ? LIMIT 1", [node_id, node_id]
    ).fetchall() or con.execute("SELECT 1 FROM runs WHERE run_id = ?", [node_id]).fetchall()
    if not known:
        raise NotFoundError(f"no run, data set, model, artifact or package {node_id!r} in the "
                            f"store at {store_location}")
    steps = []
    if direction in ("up", "both"):
        steps.append(("dst_id", "src_id"))
    if direction in ("down", "both"):
        steps.append(("src_id", "dst_id"))
    edge_rows: set[tuple[str, str, str]] = set()
    for here, there in steps:
        edge_rows |= set(con.execute(f"""
            WITH RECURSIVE walk(node, depth) AS (
                SELECT ?::VARCHAR, 0
                UNION
                SELECT e.{there}, w.depth + 1 FROM edges e JOIN walk w ON e.{here} = w.node
                WHERE w.depth < ?
            )
            SELECT DISTINCT e.src_id, e.dst_id, e.relation FROM edges e
            JOIN walk w ON e.{here} = w.node WHERE w.depth < ?
        """, [node_id, depth, depth]).fetchall())
    ids = sorted({node_id} | {s for s, _, _ in edge_rows} | {d for _, d, _ in edge_rows})
    labels = _labels(con, ids)
    nodes = pl.DataFrame(
        {"id": ids, "kind": [node_kind(i) for i in ids], "label": [labels.get(i) for i in ids]},
        schema={"id": pl.String, "kind": pl.String, "label": pl.String},
    )
    edges = pl.DataFrame(
        sorted(edge_rows), schema={"src": pl.String, "dst": pl.String, "relation": pl.String},
        orient="row",
    )
    return Lineage(root=node_id, direction=direction, nodes=nodes, edges=edges)


def _labels(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, str]:
    rows = con.execute("""
        SELECT run_id, coalesce(name, run_id) FROM runs
            WHERE run_id IN (SELECT unnest($1::VARCHAR[]))
        UNION ALL SELECT dataset_id, any_value(name) FROM run_datasets
            WHERE dataset_id IN (SELECT unnest($1::VARCHAR[])) GROUP BY dataset_id
        UNION ALL SELECT model_id, name FROM models WHERE model_id IN (SELECT unnest($1::VARCHAR[]))
        UNION ALL SELECT artifact_id, any_value(name) FROM artifacts
            WHERE artifact_id IN (SELECT unnest($1::VARCHAR[])) GROUP BY artifact_id
        UNION ALL SELECT code_id, coalesce(ref, notebook, code_id) FROM code_snapshots
            WHERE code_id IN (SELECT unnest($1::VARCHAR[]))
        UNION ALL SELECT env_id, 'python ' || python FROM environments
            WHERE env_id IN (SELECT unnest($1::VARCHAR[]))
        UNION ALL SELECT package_id, coalesce(image_tag, name) FROM packages
            WHERE package_id IN (SELECT unnest($1::VARCHAR[]))
    """, [ids]).fetchall()
    return {str(i): str(label) for i, label in rows}


# -- named queries of the Store interface (DuckDB's dialect stays in this package) --------

RUN_IDS = "SELECT run_id FROM runs ORDER BY run_id"
PARENT_IDS = ("SELECT DISTINCT parent_id FROM runs WHERE parent_id IS NOT NULL "
              "ORDER BY parent_id")
EXPERIMENTS = ("SELECT DISTINCT experiment FROM runs "
               "WHERE NOT list_contains(?::VARCHAR[], experiment) ORDER BY 1")
METRIC_KEYS = "SELECT DISTINCT key FROM latest_metrics ORDER BY 1"
EXPERIMENT_SUMMARY = """
    SELECT experiment, git_branch AS branch, count(*) AS runs,
           count(*) FILTER (WHERE status = 'running') AS running,
           max(start_time) AS last_run
    FROM runs GROUP BY experiment, git_branch ORDER BY last_run DESC, experiment, branch"""
RUNS_WITH_CURVES = """
    SELECT r.run_id FROM runs r WHERE r.run_id IN (
        SELECT run_id FROM metrics GROUP BY run_id, key HAVING count(*) > 1)
    ORDER BY r.start_time DESC LIMIT ?"""
SNAPSHOT_ROOTS = ("SELECT DISTINCT git_root FROM runs WHERE hostname = ? "
                  "AND git_snapshot IS NOT NULL AND git_root IS NOT NULL ORDER BY 1")
RUNS_WITH_MODELS = "SELECT DISTINCT run_id FROM models WHERE list_contains(?::VARCHAR[], run_id)"
PACKAGES_OF = ("SELECT dst_id FROM edges WHERE src_id = ? AND relation = 'packaged' "
               "ORDER BY created_at")


def packages(*, one: bool) -> str:
    """The ``Store.packages`` query; its parameter, with ``one``: the package id."""
    where = "WHERE package_id = ? " if one else ""
    return f"SELECT * FROM packages {where}ORDER BY created_at DESC, package_id DESC"


def best_runs(group: str, *, names: bool, metric: bool, mode: str) -> str:
    """The ``Store.best_runs`` query; its parameters: the metric key, then the names if any."""
    pick = "arg_max" if mode == "max" else "arg_min"
    # Finished runs only: a running or failed run's last value is not a model's score.
    value = ("CASE WHEN r.status = 'finished' AND isfinite(lm.value) THEN lm.value END"
             if metric else "NULL")
    order = value if metric else "CASE WHEN r.status = 'finished' THEN epoch(r.start_time) END"
    only = f"AND list_contains(?::VARCHAR[], r.{group})" if names else ""
    return f"""
        SELECT r.{group} AS name, count(*) AS runs, max(r.start_time) AS last_run,
               arg_max(r.git_root, r.start_time) AS git_root,
               {pick}(r.run_id, {order}) FILTER (WHERE {order} IS NOT NULL) AS best_run_id,
               {"max" if mode == "max" else "min"}({value}) AS best
        FROM runs r
        LEFT JOIN latest_metrics lm ON lm.run_id = r.run_id AND lm.key = ?
        WHERE r.{group} IS NOT NULL {only}
        GROUP BY 1 ORDER BY last_run DESC, name
    """


def metric_curves(max_points: int | None) -> str:
    """The ``Store.metric_curves`` query; parameters: the run ids, the minimum of points."""
    thin = ("" if max_points is None else
            f"AND (n <= {int(max_points)} OR i % ceil(n / {int(max_points)})::BIGINT = 0 "
            "OR i = n)")
    return f"""
        WITH m AS (SELECT run_id, key, step, value, timestamp,
                          row_number() OVER (PARTITION BY run_id, key
                                             ORDER BY step, timestamp) AS i,
                          count(*) OVER (PARTITION BY run_id, key) AS n
                   FROM metrics WHERE list_contains(?::VARCHAR[], run_id)),
             curved AS (SELECT DISTINCT key FROM m WHERE n >= ?)
        SELECT run_id, key, step, value, n FROM m
        WHERE key IN (SELECT key FROM curved) {thin}
        ORDER BY key, run_id, step, timestamp"""


def models(*, model_id: bool, run: bool, limit: int | None) -> str:
    """The ``Store.models`` query; parameters: the model id, then the run id and prefix."""
    where = ["m.model_id = ?"] if model_id else []
    if run:
        where.append("(m.run_id = ? OR starts_with(m.run_id, ?))")
    return f"""
        SELECT m.*, r.name AS run_name, r.experiment, r.git_commit, r.git_branch,
               r.git_dirty, r.git_snapshot, r.git_root, d.dataset_id, d.fingerprint, d.source_type,
               d.sample_sha256, e.python, e.packages
        FROM models m JOIN runs r USING (run_id)
        LEFT JOIN datasets d ON d.dataset_id = m.training_dataset_id
        LEFT JOIN environments e ON e.env_id = r.env_id
        WHERE {" AND ".join(where) or "TRUE"} ORDER BY m.created_at DESC, m.model_id
        {"" if limit is None else f"LIMIT {int(limit)}"}"""


def notebook_runs(*, same_writer: bool) -> str:
    """The ``Store.notebook_runs`` query; parameters: the notebook, then the run id."""
    writer = ("AND writer_id = (SELECT writer_id FROM runs WHERE run_id = ?)"
              if same_writer else "")
    return (f"SELECT run_id, name FROM runs WHERE notebook = ? {writer} "
            "ORDER BY start_time, run_id")


def run_tags(keys: int, having: int) -> str:
    """The ``Store.run_tags`` query.

    Its parameters: each key, the keys as a list, then each ``having`` key and value. The
    columns are named ``k0``, ``k1``...: the caller renames them, so a key is only
    ever a bound parameter.
    """
    columns = ", ".join(f"any_value(t.value) FILTER (WHERE t.key = ?) AS k{i}"
                        for i in range(keys))
    having_sql = " ".join(
        "AND t.run_id IN (SELECT run_id FROM tags WHERE key = ? AND value = ?)"
        for _ in range(having))
    return f"""
        WITH wide AS (SELECT t.run_id, {columns} FROM tags t
                      WHERE list_contains(?::VARCHAR[], t.key) {having_sql}
                      GROUP BY t.run_id)
        SELECT r.run_id, r.status, r.start_time, {", ".join(f"wide.k{i}" for i in range(keys))}
        FROM wide JOIN runs r USING (run_id) ORDER BY r.start_time, r.run_id"""


def audit_query(one_model: bool) -> str:
    """The audit trail in ``AuditEntry`` column order, oldest first."""
    from ._writes import AuditEntry

    where = " WHERE model = ?" if one_model else ""
    return f"SELECT {', '.join(AuditEntry.columns())} FROM audit{where} ORDER BY seq"
