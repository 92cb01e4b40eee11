"""``nt.traffic``: a package's live view, read from its servers' prediction logs.

A package's versions come from its ``routing.json`` (or its one model) and, for registry
versions, from its ``package_built`` audit entries. Where its servers log comes from
its ``deployed`` entries (``nt.serve`` and ``nbtrail serve`` of a package built from
registry references record them) or from ``log_dir=``. Only the newest ``tail_bytes``
of the logs are read, so a poll costs the same on a log of any size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _html
from ..errors import InvalidInputError, NotFoundError
from ..registry._api import package_entries
from ..registry._state import PACKAGED
from ..tracking._tracker import store_or_configured
from ._api import KIND_TAG, MONITORING
from ._challenge import CHALLENGE, REPORT_TAG, promotion_note
from ._data import LOG_PATTERN
from ._packages import deployed_logs, package_row

if TYPE_CHECKING:
    import polars as pl

    from ..packaging import Package
    from ..registry._api import PromotionRequest
    from ..store import Store

# About 10,000 rows of a two-version log: a poll costs ~0.3 s of CPU however long it ran.
TAIL_BYTES = 4 << 20
_TIMELINE = ("time", "version", "role", "rows", "answered", "share", "errors", "dropped",
             "latency_p50_ms", "latency_p99_ms", "agreement")


@dataclass(frozen=True)
class Traffic:
    """A package's versions, their traffic over time and the latest challenge report.

    ``timeline`` has one row per time bucket and version: rows seen, rows answered and
    their ``share`` of the bucket's answers, errors, dropped shadow work, latency p50/p99
    (per request) and ``agreement`` with the champion on the rows both predicted.
    """

    package_id: str
    name: str
    created_at: str
    versions: tuple[dict[str, Any], ...]
    """``role``, ``version``, ``model_id``, ``ref`` (``name/version`` or None), ``share``."""
    log_dirs: tuple[str, ...]
    every_s: int
    timeline: pl.DataFrame
    lines_read: int
    truncated: bool
    """Older log lines exist that were not read (beyond ``tail_bytes``)."""
    challenge: dict[str, Any] | None
    """The newest stored ``nt.challenge`` report of the champion, as ``to_dict()`` gives."""
    _store: Store | None = field(default=None, repr=False, compare=False)

    def totals(self) -> pl.DataFrame:
        """One row a version over the whole window read, in routing order."""
        import polars as pl

        order = {v["version"]: i for i, v in enumerate(self.versions)}
        sums = (self.timeline.group_by("version", "role")
                .agg(pl.col("rows", "answered", "errors", "dropped").sum(),
                     pl.when(pl.col("compared").sum() > 0)
                     .then((pl.col("agreement") * pl.col("compared")).sum()
                           / pl.col("compared").sum()).alias("agreement")))
        answered = sums["answered"].sum() or 1
        return (sums.with_columns((pl.col("answered") / answered).alias("share"))
                .sort(pl.col("version").replace_strict(order, default=len(order)))
                .select("version", "role", "rows", "answered", "share", "errors", "dropped",
                        "agreement"))

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-ready values (times as ISO strings)."""
        timeline = self.timeline.select(_TIMELINE).with_columns(
            self.timeline["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
        return {"package_id": self.package_id, "name": self.name,
                "created_at": self.created_at, "versions": list(self.versions),
                "log_dirs": list(self.log_dirs), "every_s": self.every_s,
                "timeline": timeline.to_dicts(), "totals": self.totals().to_dicts(),
                "lines_read": self.lines_read, "truncated": self.truncated,
                "challenge": self.challenge}

    def __repr__(self) -> str:
        parts = ", ".join(f"{v['role']} {v['version']}" for v in self.versions)
        return (f"<Traffic of package {self.name} ({parts}): {self.lines_read} log lines "
                f"from {len(self.log_dirs)} folder(s)>")

    def _repr_html_(self) -> str:
        parts = [_html.table(
            ["role", "version", "model", "registry", "canary share"],
            [(v["role"], v["version"], v["model_id"], v["ref"],
              f"{v['share']:.0%}" if v["role"] == "canary" else "") for v in self.versions],
            caption=f"package {self.name} ({self.package_id})")]
        if self.timeline.is_empty():
            where = ", ".join(self.log_dirs) or "no log folder recorded"
            parts.append(f"<div>No predictions logged yet ({_html.escape(where)}).</div>")
        else:
            totals = self.totals()
            parts.append(_html.table(list(totals.columns), totals.rows(),
                                     caption=f"{self.lines_read} logged rows read"
                                     + (" (the newest; older ones left out)"
                                        if self.truncated else "")))
            for column, title in (("agreement", "agreement with the champion"),
                                  ("latency_p99_ms", "latency p99 (ms)"),
                                  ("share", "share of answers")):
                parts.append(_html.line_chart(title, self._series(column)))
        if self.challenge:
            parts.append(_html.mapping("latest challenge report", {
                "verdict": self.challenge.get("verdict"), "log": self.challenge.get("source"),
                "created": self.challenge.get("created_at"),
                "run": self.challenge.get("run_id")}))
        return "<div>" + "".join(parts) + "</div>"

    def _series(self, column: str) -> dict[str, list[tuple[float, float]]]:
        """``column`` per version over time, seconds since the first bucket on x."""
        if self.timeline.is_empty():
            return {}
        start = self.timeline["time"].min()
        series: dict[str, list[tuple[float, float]]] = {}
        for row in self.timeline.iter_rows(named=True):
            if row[column] is not None:
                series.setdefault(f"{row['role']} {row['version']}", []).append(
                    ((row["time"] - start).total_seconds(), float(row[column])))
        return series

    def promote(self, version: str | None = None, *, alias: str = "champion",
                note: str | None = None, on_behalf_of: str | None = None
                ) -> PromotionRequest:
        """Request that ``alias`` point at a challenger of this package.

        ``version`` (its label in the package) picks one; by default the challenge
        report's best, else the only challenger. The note cites the report, or the
        traffic seen, as evidence.
        """
        from ..registry import _api

        challengers = {v["version"]: v for v in self.versions if v["role"] != "champion"}
        if not challengers:
            raise InvalidInputError(f"package {self.name} serves only its champion: package "
                                    "a challenger with shadow= or canary= first")
        report = self.challenge or {}
        scored = [v for v in report.get("versions", [])[1:] if v.get("difference") is not None]
        if version is None and scored:
            sign = 1 if report.get("metric_name") == "accuracy" else -1
            version = max(scored, key=lambda v: sign * v["difference"])["version"]
        elif version is None and len(challengers) == 1:
            version = next(iter(challengers))
        elif version is None:
            raise InvalidInputError(f"package {self.name} has several challengers "
                                    f"({', '.join(challengers)}) and no challenge report with "
                                    "labels says which is best: pass version=")
        target = challengers.get(str(version))
        if target is None:
            raise InvalidInputError(f"package {self.name} has no challenger {version!r}; its "
                                    f"challengers: {', '.join(challengers)}")
        if target["ref"] is None:
            raise InvalidInputError(f"challenger {version} of package {self.name} is model "
                                    f"{target['model_id']}, not a registry version: register "
                                    "it and package registry references to promote")
        in_report = next((v for v in report.get("versions", []) if v["version"] == version), None)
        if in_report is not None and in_report.get("difference") is not None:
            evidence = promotion_note(report, in_report)
        else:
            evidence = self._evidence(str(version))
        name, number = target["ref"].rsplit("/", 1)
        return _api.request_promotion(store_or_configured(self._store), name,
                                      version=int(number), alias=alias,
                                      note=f"{note}; {evidence}" if note else evidence,
                                      on_behalf_of=on_behalf_of)

    def _evidence(self, version: str) -> str:
        totals = {row["version"]: row for row in self.totals().iter_rows(named=True)}
        mine = totals.get(version)
        if mine is None:
            return f"package {self.name}: no logged traffic for version {version} yet"
        agreement = ("n/a" if mine["agreement"] is None else f"{mine['agreement']:.1%}")
        return (f"package {self.name} traffic: version {version} predicted {mine['rows']} "
                f"rows, {mine['errors']} errors, agreement with the champion {agreement}")


def traffic(package: Package | str, *, log_dir: str | os.PathLike[str] | None = None,
            every: int = 60, tail_bytes: int = TAIL_BYTES,
            store: Store | None = None) -> Traffic:
    """A package's live view: its versions, their traffic over time, the latest challenge.

    Experimental. ``package`` is a :class:`Package`, a package id (``pkg_…``) or a
    package name (its newest package). The prediction logs read are those recorded
    when the package was served from registry references, and ``log_dir``; only
    their newest ``tail_bytes`` are read. ``every`` is the bucket width in seconds.

    Example:
        >>> nt.traffic("churn").totals()          # doctest: +SKIP
        >>> nt.traffic("churn").promote()         # doctest: +SKIP
    """
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise InvalidInputError(f"every must be a whole number of seconds >= 1, got {every!r}")
    if tail_bytes < 1:
        raise InvalidInputError(f"tail_bytes must be positive, got {tail_bytes}")
    store = store_or_configured(store)
    row = package_row(store, package)
    entries = package_entries(store, row["package_id"])
    versions = _versions(row, entries)
    if log_dir is not None and not Path(log_dir).is_dir():
        raise InvalidInputError(f"log_dir {str(log_dir)!r} is not a folder; pass the folder "
                                "the package's server writes its predictions-*.jsonl to")
    extra = [str(Path(log_dir).resolve())] if log_dir is not None else []
    folders = list(dict.fromkeys(extra + deployed_logs(entries)))
    lines, truncated = _tail(folders, tail_bytes)
    timeline = _timeline(lines, versions[0]["version"], every)
    created = row["created_at"]
    return Traffic(row["package_id"], row["name"],
                   created.isoformat(timespec="seconds") if created else "", tuple(versions),
                   tuple(folders), every, timeline, len(lines), truncated,
                   _latest_challenge(store, versions[0]["model_id"], folders), _store=store)


def _versions(row: dict[str, Any], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The package's versions, champion first, with their registry ``name/version``."""
    from ..serving._routing import ROUTING_FILE

    registry = {e.get("model_id"): e["registry"] for e in entries if e["event"] == PACKAGED}
    routing_file = Path(row["context_path"]) / "model" / ROUTING_FILE
    try:
        text = routing_file.read_text(encoding="utf-8")
    except OSError:  # one model, or the context was moved or deleted
        return [{"role": "champion", "version": row["model_id"], "model_id": row["model_id"],
                 "ref": registry.get(row["model_id"]), "share": 0.0}]
    try:
        routing = json.loads(text)
        found = [{"role": role, "version": str(entry["version"]),
                  "model_id": str(entry["model_id"]), "ref": registry.get(entry["model_id"]),
                  "share": float(entry.get("share", 0.0))}
                 for role, group in (("champion", [routing["champion"]]),
                                     ("shadow", routing["shadows"]),
                                     ("canary", routing["canary"]))
                 for entry in group]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidInputError(f"{routing_file} is not a routing.json nbtrail wrote "
                                f"({type(exc).__name__}: {exc}); package the model again"
                                ) from None
    return found


def _tail(folders: list[str], budget: int) -> tuple[list[dict[str, Any]], bool]:
    """The newest log lines of ``folders`` within ``budget`` bytes in all, oldest first."""
    files = sorted((p for f in folders for p in Path(f).glob(LOG_PATTERN)),
                   key=lambda p: p.name, reverse=True)
    chunks: list[list[dict[str, Any]]] = []
    truncated = False
    for path in files:
        if budget <= 0:
            truncated = True
            break
        try:
            size = path.stat().st_size
            with path.open("rb") as handle:
                start = max(0, size - budget)
                handle.seek(start)
                data = handle.read(size - start)
        except OSError:  # rotated away while reading
            continue
        budget -= len(data)
        if start > 0:  # the first line is cut: drop it
            truncated = True
            data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
        chunks.append(list(_parse(data)))
    return [line for chunk in reversed(chunks) for line in chunk], truncated


def _parse(data: bytes) -> Iterator[dict[str, Any]]:
    for raw in data.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:  # a line being written, or not a prediction log line
            continue
        if isinstance(line, dict) and isinstance(line.get("time"), str):
            yield line


def _timeline(lines: list[dict[str, Any]], champion: str, every: int) -> pl.DataFrame:
    """Per bucket and version: rows, answers, errors, drops, latency and agreement."""
    import polars as pl

    records: dict[str, list[Any]] = {k: [] for k in (
        "time", "version", "role", "answered", "error", "dropped", "latency_ms", "agrees")}
    timed: set[tuple[str, str]] = set()  # (request, version) whose latency is counted
    for line in lines:
        entries = _entries(line)
        if not entries:
            continue
        answering = str(line.get("version") or entries[0].get("version"))
        lead = next((e for e in entries if str(e.get("version")) == champion
                     and e.get("error") is None), None)
        for entry in entries:
            version, error = str(entry.get("version")), entry.get("error")
            key = (str(line.get("request_id")), version)
            latency = entry.get("latency_ms") if key not in timed else None
            if isinstance(latency, bool) or not isinstance(latency, int | float):
                latency = None
            timed.add(key)
            agrees = (None if lead is None or error is not None or version == champion
                      else str(entry.get("prediction")) == str(lead.get("prediction")))
            for name, value in (("time", line["time"]), ("version", version),
                                ("role", str(entry.get("role"))),
                                ("answered", version == answering),
                                ("error", error is not None and not str(error).startswith(
                                    "dropped")),
                                ("dropped", error is not None and str(error).startswith(
                                    "dropped")),
                                ("latency_ms", latency), ("agrees", agrees)):
                records[name].append(value)
    frame = pl.DataFrame(records, schema={
        "time": pl.String, "version": pl.String, "role": pl.String, "answered": pl.Boolean,
        "error": pl.Boolean, "dropped": pl.Boolean, "latency_ms": pl.Float64,
        "agrees": pl.Boolean})
    frame = frame.with_columns(pl.col("time").str.to_datetime(time_zone="UTC", strict=False)
                               .dt.truncate(f"{every}s")).drop_nulls("time")
    grouped = frame.group_by("time", "version", "role").agg(
        pl.len().cast(pl.Int64).alias("rows"),
        pl.col("answered").sum().cast(pl.Int64),
        pl.col("error").sum().cast(pl.Int64).alias("errors"),
        pl.col("dropped").sum().cast(pl.Int64),
        pl.col("latency_ms").quantile(0.5).alias("latency_p50_ms"),
        pl.col("latency_ms").quantile(0.99).alias("latency_p99_ms"),
        pl.col("agrees").mean().alias("agreement"),
        pl.col("agrees").count().cast(pl.Int64).alias("compared"))
    return grouped.with_columns(
        (pl.col("answered") / pl.col("answered").sum().over("time")).alias("share")
    ).sort("time", "role", "version")


def _entries(line: dict[str, Any]) -> list[dict[str, Any]]:
    """Every version's entry of a log line; a one-model server's line is its own entry."""
    entries = line.get("models")
    if entries is None:
        return [{"role": "champion", "prediction": line.get("prediction"),
                 "version": str(line.get("version") or line.get("model_id"))}]
    if not isinstance(entries, list):
        return []  # not a line nbtrail wrote
    return [e for e in entries if isinstance(e, dict)]


def _latest_challenge(store: Store, champion_model: str,
                      folders: list[str]) -> dict[str, Any] | None:
    """The newest finished ``nt.challenge`` report of the champion's model on these logs.

    A report read other logs (another package with the same champion) unless one of its
    folders is among ``folders``; with no folder known, any report of the model counts.
    """
    runs = store.run_tags([REPORT_TAG], having={KIND_TAG: MONITORING, REPORT_TAG: CHALLENGE,
                                                "model_id": champion_model})
    for run in runs.filter(runs["status"] == "finished").sort(
            "start_time", descending=True).iter_rows(named=True):
        try:
            path = store.artifact_path(run["run_id"], "challenge.json")
            report = json.loads(Path(path).read_text(encoding="utf-8"))
        except (NotFoundError, OSError, ValueError):
            continue
        if not isinstance(report, dict) or not isinstance(report.get("versions"), list):
            continue
        read = str(report.get("source", "")).split(", ")
        if not folders or any(folder in read for folder in folders):
            return report
    return None
