"""``nt.challenge``: the champion against its shadows and canaries, from the prediction log.

A server of several versions logs every version's answer for each request row (see
``serving/_predlog.py``). This reads those lines back and compares each challenger with
the champion: traffic, errors, latency, agreement, prediction drift and, with labels, the
metric with bootstrap confidence intervals.

A row is keyed by ``request_id`` and ``row``: the line's position within its request
(0, 1, … in the order the server wrote the request's lines), as ``nt.drift`` keys labels.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .. import _html
from ..errors import InvalidInputError, NbtrailError
from ..registry._refs import is_reference
from ..tracking._tracker import store_or_configured, tracker_of
from ._api import KIND_TAG, MONITORING
from ._data import LOG_PATTERN
from ._drift import psi

if TYPE_CHECKING:
    import numpy as np
    import polars as pl

    from ..registry._api import PromotionRequest
    from ..store import Store

Metric = Literal["accuracy", "rmse", "mae"]
# Metrics where a larger value is better; the others are errors.
_HIGHER_IS_BETTER = {"accuracy"}
# Cells (resamples × rows) a bootstrap draws at once, to bound its memory.
_BOOTSTRAP_CELLS = 4_000_000
_DROPPED = "dropped"
# The tag that tells a stored challenge report from the other monitoring runs.
REPORT_TAG, CHALLENGE = "nbtrail.report", "challenge"

Key = tuple[str, int]


@dataclass(frozen=True)
class VersionChallenge:
    """One version in the log: its traffic, answers and (with labels) its metric."""

    version: str
    role: str
    model_id: str | None
    ref: str | None
    """``name/version`` when the version is a registry version, else ``None``."""
    requests: int
    rows: int
    answered: int
    """Rows whose answer the client got."""
    shadowed: int
    """Rows predicted in the shadow (not sent to the client)."""
    errors: int
    dropped: int
    """Shadow rows skipped because its queue was full."""
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    compared_rows: int = 0
    """Rows that both this version and the champion predicted."""
    agreement: float | None = None
    """Classifiers: share of the compared rows with the champion's prediction."""
    mean_abs_difference: float | None = None
    """Regressors: mean absolute difference to the champion's predictions."""
    prediction_psi: float | None = None
    labelled_rows: int = 0
    metric: float | None = None
    metric_low: float | None = None
    metric_high: float | None = None
    difference: float | None = None
    """``metric - champion's metric``, on the rows both predicted when there are any."""
    difference_low: float | None = None
    difference_high: float | None = None
    paired: bool = False
    """Whether the difference is a paired comparison on the same rows."""
    significantly_worse: bool = False
    """The difference's interval lies entirely on the bad side of zero."""


@dataclass(frozen=True)
class ChallengeReport:
    """The champion and its challengers compared on one prediction log.

    Shows as HTML in a notebook; ``to_polars()`` gives one row a version, ``to_dict()``
    everything; ``promote()`` asks the registry to move an alias to the best challenger.
    """

    source: str
    model: str | None
    classifier: bool
    versions: tuple[VersionChallenge, ...]
    metric_name: str | None = None
    confidence: float = 0.95
    bootstrap: int = 1000
    labels: int = 0
    unknown_labels: int = 0
    """Labels whose request id and row match no line of the log."""
    created_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    run_id: str | None = None
    """The monitoring run the report is stored in, once it is."""
    _store: Store | None = field(default=None, repr=False, compare=False)

    @property
    def champion(self) -> VersionChallenge:
        """The version that answered the requests no canary took."""
        return self.versions[0]

    @property
    def challengers(self) -> list[VersionChallenge]:
        """Every version but the champion."""
        return list(self.versions[1:])

    @property
    def worse(self) -> list[str]:
        """Challenger versions whose metric is significantly worse than the champion's."""
        return [v.version for v in self.challengers if v.significantly_worse]

    @property
    def verdict(self) -> str:
        """One line: which challengers do better or worse."""
        if not self.challengers:
            return f"only the champion (version {self.champion.version}) is in the log"
        if self.metric_name is None:
            return (f"{len(self.challengers)} challengers of version {self.champion.version}; "
                    "no labels, so no metric")
        parts = [f"version {v.version}: {self.metric_name} {_signed(v.difference)}"
                 + (" (significantly worse)" if v.significantly_worse else "")
                 for v in self.challengers]
        return f"against champion {self.champion.version}: " + "; ".join(parts)

    def __repr__(self) -> str:
        return f"<ChallengeReport {self.verdict}; log: {self.source}>"

    def best(self) -> VersionChallenge:
        """The challenger with the best metric difference to the champion."""
        scored = [v for v in self.challengers if v.difference is not None]
        if not scored:
            raise InvalidInputError(
                "no challenger has a metric against the champion; run nt.challenge with "
                "labels= so that the report says which version is better")
        sign = 1 if self.metric_name in _HIGHER_IS_BETTER else -1
        return max(scored, key=lambda v: sign * (v.difference or 0.0))

    def promote(self, alias: str = "champion", note: str | None = None, *,
                on_behalf_of: str | None = None) -> PromotionRequest:
        """Request that ``alias`` point at the best challenger, citing this report.

        ``on_behalf_of`` names the person asking, where a server acts for its users.
        """
        from ..registry import _api, _refs

        best = self.best()
        if best.ref is None:
            raise InvalidInputError(
                f"version {best.version} of the log is not a registry version (its model "
                f"{best.model_id}); register it and package registry references to promote")
        store = store_or_configured(self._store)
        target = _refs.resolve(store, best.ref)
        if target.model_id != best.model_id:
            raise InvalidInputError(
                f"{best.ref} is model {target.model_id} in the registry, but the log's version "
                f"{best.version} served {best.model_id}; is this the store the package came from?")
        evidence = promotion_note(self.to_dict(), asdict(best))
        return _api.request_promotion(store, target.name, version=target.version, alias=alias,
                                      note=f"{note}; {evidence}" if note else evidence,
                                      on_behalf_of=on_behalf_of)

    def to_polars(self) -> pl.DataFrame:
        """One row a version, the champion first."""
        import polars as pl

        # Typed from the fields, so a column nobody filled (no labels) is not of type Null.
        kinds = {"str": pl.String, "int": pl.Int64, "float": pl.Float64, "bool": pl.Boolean}
        schema = {f.name: kinds[str(f.type).split(" ")[0]] for f in fields(VersionChallenge)}
        return pl.DataFrame([asdict(v) for v in self.versions], schema=schema)

    def to_dict(self) -> dict[str, Any]:
        """The whole report as JSON-ready values."""
        # Not asdict(self): it would deep-copy the store.
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "_store"}
        out["versions"] = [asdict(v) for v in self.versions]
        out["verdict"] = self.verdict
        out["worse"] = self.worse
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=2, default=str)

    def _repr_html_(self) -> str:
        colour = "#b42318" if self.worse else "#067647"
        parts = [f'<div style="font-size:14px;font-weight:bold;color:{colour}">'
                 f"{_html.escape(self.verdict)}</div>",
                 f"<div>log: {_html.escape(self.source)}<br>{_html.escape(self.created_at)}"
                 + (f" · monitoring run {_html.escape(self.run_id)}" if self.run_id else "")
                 + "</div>"]
        similar = "agreement" if self.classifier else "mean |difference|"
        parts.append(_html.table(
            ["version", "role", "requests", "rows", "answered", "shadowed", "errors",
             "dropped", "p50 ms", "p99 ms", similar, "prediction PSI"],
            [(v.version, v.role, v.requests, v.rows, v.answered, v.shadowed, v.errors,
              v.dropped, v.latency_p50_ms, v.latency_p99_ms,
              v.agreement if self.classifier else v.mean_abs_difference, v.prediction_psi)
             for v in self.versions], caption="traffic and answers", max_rows=40))
        if self.metric_name is not None:
            level = f"{self.confidence:.0%}"
            parts.append(_html.table(
                ["version", "labelled rows", self.metric_name, f"{level} interval",
                 "difference", f"{level} interval", "paired"],
                [(v.version, v.labelled_rows, v.metric, _interval(v.metric_low, v.metric_high),
                  v.difference, _interval(v.difference_low, v.difference_high),
                  "" if v.role == "champion" else ("yes" if v.paired else "no"))
                 for v in self.versions],
                caption=f"{self.labels} labels, {self.unknown_labels} matching no logged row; "
                        f"percentile bootstrap of {self.bootstrap} resamples",
                highlight=[i for i, v in enumerate(self.versions) if v.significantly_worse]))
        return "<div>" + "".join(parts) + "</div>"

    def save_html(self, path: str | Path) -> Path:
        """Write the report as a standalone HTML file (no script, nothing fetched)."""
        return _html.save(path, f"nbtrail challenge: {self.verdict}", self._repr_html_())


def promotion_note(report: dict[str, Any], version: dict[str, Any]) -> str:
    """The evidence a promotion request cites: ``version``'s numbers in ``report`` (dicts)."""
    champion = report["versions"][0]
    note = (f"nt.challenge of {report['source']}: {report['metric_name']} "
            f"{version['metric']:.4g} vs champion {champion['metric']:.4g}, difference "
            f"{_signed(version['difference'])} [{_signed(version['difference_low'])}, "
            f"{_signed(version['difference_high'])}] on {version['labelled_rows']} "
            "labelled rows")
    return note + (f"; monitoring run {report['run_id']}" if report.get("run_id") else "")


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.4g}"


def _interval(low: float | None, high: float | None) -> str:
    return "" if low is None or high is None else f"[{low:.4g}, {high:.4g}]"


# -- reading the log ----------------------------------------------------------------------


@dataclass
class _Version:
    """What the log says of one version, gathered line by line."""

    role: str
    model_id: str | None
    requests: set[str] = field(default_factory=set)
    rows: int = 0
    answered: int = 0
    errors: int = 0
    dropped: int = 0
    latencies: dict[str, float] = field(default_factory=dict)
    predictions: dict[Key, Any] = field(default_factory=dict)


@dataclass
class _Log:
    model: str | None = None
    champion: str | None = None
    probabilities: bool = False
    versions: dict[str, _Version] = field(default_factory=dict)


def _lines(folders: list[Path]) -> Iterator[dict[str, Any]]:
    for file in sorted((f for folder in folders for f in folder.glob(LOG_PATTERN)),
                       key=lambda f: f.name):
        with file.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    raise InvalidInputError(f"{file}:{number} is not a JSON line; is this "
                                            "a prediction log written by nbtrail serve?"
                                            ) from None


def _read(folders: list[Path]) -> _Log:
    log = _Log()
    position: dict[str, int] = defaultdict(int)
    for line in _lines(folders):
        request = str(line.get("request_id"))
        key = (request, position[request])
        position[request] += 1
        log.model = log.model or line.get("model")
        # A one-model server logs no entries: its answer is the champion's.
        entries = line.get("models") or [{
            "role": "champion", "version": str(line.get("version") or line.get("model_id")),
            "model_id": line.get("model_id"), "prediction": line.get("prediction"),
            "probabilities": line.get("probabilities")}]
        for entry in entries:
            name = str(entry["version"])
            version = log.versions.setdefault(name, _Version(entry["role"],
                                                             entry.get("model_id")))
            if entry["role"] == "champion":
                log.champion = log.champion or name
            version.requests.add(request)
            version.rows += 1
            version.answered += name == str(line.get("version", name))
            if entry.get("latency_ms") is not None:
                version.latencies.setdefault(request, float(entry["latency_ms"]))
            error = entry.get("error")
            if error is not None:
                if str(error).startswith(_DROPPED):
                    version.dropped += 1
                else:
                    version.errors += 1
                continue
            version.predictions[key] = entry.get("prediction")
            log.probabilities = log.probabilities or entry.get("probabilities") is not None
    if log.champion is None:
        raise InvalidInputError(
            f"no prediction log in {', '.join(map(str, folders))}: expected files named "
            f"{LOG_PATTERN} with "
            "lines written by `nbtrail serve`; check the folder the server logs to")
    return log


def _log_folders(source: object, store: Store | None) -> list[Path]:
    """The folders to read: ``source`` itself, or the logs a package's deployments recorded."""
    from ..registry._api import package_entries
    from ._packages import deployed_logs, package_row

    if isinstance(source, str | os.PathLike) and Path(source).is_dir():
        return [Path(source).resolve()]
    if isinstance(source, os.PathLike) or (isinstance(source, str) and ("/" in source
                                                                       or "\\" in source)):
        raise InvalidInputError(f"{str(source)!r} is not a prediction log folder; pass the "
                                "log_dir the server wrote its predictions-*.jsonl files to")
    store = store_or_configured(store)
    try:
        row = package_row(store, source)
    except NbtrailError as exc:
        raise InvalidInputError(f"{source!r} is neither a prediction log folder nor a package: "
                                f"{exc}") from None
    folders = deployed_logs(package_entries(store, row["package_id"]))
    if not folders:
        raise InvalidInputError(
            f"package {row['name']} ({row['package_id']}) has no prediction log on this "
            "machine: serve it from registry references with log_dir= (nt.serve, nbtrail "
            "serve --log-dir), or pass the log folder")
    return [Path(f) for f in folders]


# -- labels and statistics ----------------------------------------------------------------


def _labels(labels: object, column: str) -> dict[Key, Any]:
    import polars as pl

    if isinstance(labels, str | os.PathLike):
        if Path(labels).suffix != ".parquet" or not Path(labels).is_file():
            raise InvalidInputError(f"labels {str(labels)!r} is not a Parquet file; give a "
                                    "frame or a .parquet file with request_id, row and label")
        table = pl.read_parquet(Path(labels))
    elif isinstance(labels, pl.DataFrame):
        table = labels
    elif type(labels).__name__ == "DataFrame":
        table = pl.from_pandas(labels)
    else:
        raise InvalidInputError(f"labels must be a frame or a Parquet file, got "
                                f"{type(labels).__name__}")
    missing = [c for c in ("request_id", "row", column) if c not in table.columns]
    if missing:
        raise InvalidInputError(
            f"labels lack the column(s) {', '.join(missing)}: give request_id (as the server "
            f"returned it), row (0, 1, … within the request) and {column}; got "
            f"{', '.join(table.columns)}")
    return {(str(r), int(i)): y for r, i, y in
            table.select("request_id", "row", column).drop_nulls().iter_rows()}


def _scores(metric: str, truth: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per-row contributions that :func:`_aggregate` turns into the metric."""
    import numpy as np

    if metric == "accuracy":
        return (truth.astype(str) == predicted.astype(str)).astype(float)
    errors = predicted.astype(float) - truth.astype(float)
    return errors**2 if metric == "rmse" else np.abs(errors)


def _aggregate(metric: str, means: Any) -> Any:
    import numpy as np

    return np.sqrt(means) if metric == "rmse" else means


def _resampled_means(scores: np.ndarray, times: int, rng: np.random.Generator,
                     others: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Means of ``scores`` (and of ``others`` on the same rows) over ``times`` resamples."""
    import numpy as np

    n = len(scores)
    chunk = max(1, _BOOTSTRAP_CELLS // n)
    means, paired = [], []
    for start in range(0, times, chunk):
        rows = rng.integers(0, n, (min(chunk, times - start), n))
        means.append(scores[rows].mean(axis=1))
        if others is not None:
            paired.append(others[rows].mean(axis=1))
    return np.concatenate(means), np.concatenate(paired) if others is not None else None


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    import numpy as np

    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _prediction_psi(champion: list[Any], other: list[Any], classifier: bool) -> float | None:
    import numpy as np

    if not champion or not other:
        return None
    if classifier:
        counts = [Counter(map(str, values)) for values in (champion, other)]
        buckets = sorted(counts[0].keys() | counts[1].keys())
        return psi([counts[0][b] for b in buckets], [counts[1][b] for b in buckets])
    # The champion's deciles as buckets, as nt.drift does for a numeric column.
    edges = np.unique(np.quantile(np.asarray(champion, float), np.linspace(0.1, 0.9, 9)))
    return psi(*(np.bincount(np.searchsorted(edges, np.asarray(values, float)),
                             minlength=len(edges) + 1).tolist() for values in (champion, other)))


# -- the public function ------------------------------------------------------------------


def challenge(package_or_log_dir: object, labels: object = None, *,
              metric: Metric | None = None, label_column: str = "label",
              bootstrap: int = 1000, seed: int = 0, confidence: float = 0.95,
              log: bool = True, store: Store | None = None) -> ChallengeReport:
    """Compare the champion with its shadows and canaries on a server's prediction log.

    Experimental: the report may gain fields in a minor release. ``package_or_log_dir`` is
    the folder the server logs to (``log_dir=`` of ``nt.serve``), or a :class:`Package`,
    package id or name, whose logs are those its deployments recorded (serving it from
    registry references with a ``log_dir`` records one). Per version: requests, rows,
    rows answered and shadowed, errors and dropped shadow work, latency p50/p99,
    agreement with the champion (classifiers; mean absolute difference for regressors)
    and the stability index (PSI) of its predictions against the champion's.

    ``labels`` (a frame or Parquet file with ``request_id``, ``row`` — the row's position
    in its request, 0, 1, … — and ``label`` or ``label_column``) adds each version's
    ``metric`` (default: accuracy for classifiers, RMSE for regressors) with a percentile
    bootstrap interval, and its difference to the champion: paired on the rows both
    predicted (shadows), else of independent resamples (canaries). Labels matching no
    logged row are counted in ``unknown_labels``. With ``log``, the report is stored as
    a monitoring run linked to every version's model.

    Example:
        >>> report = nt.challenge("serving/log", labels=outcomes)   # doctest: +SKIP
        >>> report.to_polars(); report.promote(alias="champion")    # doctest: +SKIP
    """
    import numpy as np

    if bootstrap < 1:
        raise InvalidInputError(f"bootstrap must be at least 1 resample, got {bootstrap}")
    if not 0 < confidence < 1:
        raise InvalidInputError(f"confidence must be between 0 and 1, got {confidence}")
    if metric is not None and metric not in ("accuracy", "rmse", "mae"):
        raise InvalidInputError(f"metric must be 'accuracy', 'rmse' or 'mae', got {metric!r}")
    folders = _log_folders(package_or_log_dir, store)
    data = _read(folders)
    assert data.champion is not None
    # In routing order: the champion, the shadows, then the canaries.
    names = sorted(data.versions, key=lambda v: (v != data.champion,
                                                 data.versions[v].role == "canary"))
    champion = data.versions[data.champion]
    classifier = data.probabilities or any(
        not isinstance(p, float) for p in champion.predictions.values())
    metric_name = None
    if labels is not None:
        metric_name = metric or ("accuracy" if classifier else "rmse")
    truth = _labels(labels, label_column) if labels is not None else {}
    logged = set().union(*(v.predictions.keys() for v in data.versions.values()))
    rng = np.random.default_rng(seed)
    sign = 1 if metric_name in _HIGHER_IS_BETTER else -1
    results = []
    for name in names:
        version = data.versions[name]
        fields = _traffic(data.model, name, version)
        if name != data.champion:
            fields |= _similarity(version, champion, classifier)
        if metric_name is not None:
            fields |= _metric_fields(metric_name, version, champion, truth,
                                     is_champion=name == data.champion, sign=sign,
                                     bootstrap=bootstrap, confidence=confidence, rng=rng)
        results.append(VersionChallenge(**fields))
    report = ChallengeReport(", ".join(map(str, folders)), data.model, classifier,
                             tuple(results), metric_name, confidence, bootstrap, len(truth),
                             sum(k not in logged for k in truth), _store=store)
    return _record(report, store_or_configured(store)) if log else report


def _traffic(model: str | None, name: str, version: _Version) -> dict[str, Any]:
    """Requests, rows, answers, failures and latency of one version."""
    import numpy as np

    latencies = list(version.latencies.values())
    p50, p99 = np.percentile(latencies, [50, 99]).tolist() if latencies else (None, None)
    ref = f"{model}/{name}" if model else None
    return {"version": name, "role": version.role, "model_id": version.model_id,
            "ref": ref if is_reference(ref) else None, "requests": len(version.requests),
            "rows": version.rows, "answered": version.answered,
            "shadowed": len(version.predictions) if version.role == "shadow" else 0,
            "errors": version.errors, "dropped": version.dropped,
            "latency_p50_ms": p50, "latency_p99_ms": p99}


def _similarity(version: _Version, champion: _Version, classifier: bool) -> dict[str, Any]:
    """How close a challenger's predictions are to the champion's, row by row and overall."""
    import numpy as np

    shared = [k for k in version.predictions if k in champion.predictions]
    mine = [version.predictions[k] for k in shared]
    theirs = [champion.predictions[k] for k in shared]
    out: dict[str, Any] = {
        "compared_rows": len(shared),
        "prediction_psi": _prediction_psi(list(champion.predictions.values()),
                                          list(version.predictions.values()), classifier)}
    if shared and classifier:
        out["agreement"] = float(np.mean([str(a) == str(b) for a, b in zip(mine, theirs,
                                                                            strict=True)]))
    elif shared:
        out["mean_abs_difference"] = float(np.mean(np.abs(np.asarray(mine, float)
                                                          - np.asarray(theirs, float))))
    return out


def _metric_fields(metric: str, version: _Version, champion: _Version,
                   truth: dict[Key, Any], *, is_champion: bool, sign: int, bootstrap: int,
                   confidence: float, rng: np.random.Generator) -> dict[str, Any]:
    """The version's metric with its interval, and its difference to the champion."""
    import numpy as np

    def scored(source: _Version, keys: list[Key]) -> np.ndarray:
        return _scores(metric, np.asarray([truth[k] for k in keys]),
                       np.asarray([source.predictions[k] for k in keys]))

    keys = [k for k in version.predictions if k in truth]
    if not keys:
        return {}
    scores = scored(version, keys)
    means, _ = _resampled_means(scores, bootstrap, rng)
    low, high = _percentiles(_aggregate(metric, means), confidence)
    out: dict[str, Any] = {"labelled_rows": len(keys),
                           "metric": float(_aggregate(metric, scores.mean())),
                           "metric_low": low, "metric_high": high}
    theirs = [k for k in champion.predictions if k in truth]
    if is_champion or not theirs:
        return out
    both = [k for k in keys if k in champion.predictions]
    if both:  # the same rows resampled for both: their shared noise cancels
        mine, other = scored(version, both), scored(champion, both)
        a, b = _resampled_means(mine, bootstrap, rng, other)
        assert b is not None
        point = _aggregate(metric, mine.mean()) - _aggregate(metric, other.mean())
    else:
        other = scored(champion, theirs)
        a, _ = _resampled_means(scores, bootstrap, rng)
        b, _ = _resampled_means(other, bootstrap, rng)
        point = out["metric"] - _aggregate(metric, other.mean())
    low, high = _percentiles(_aggregate(metric, a) - _aggregate(metric, b), confidence)
    return out | {"difference": float(point), "difference_low": low, "difference_high": high,
                  "paired": bool(both),
                  "significantly_worse": bool(high < 0 if sign > 0 else low > 0)}


def _record(report: ChallengeReport, store: Store) -> ChallengeReport:
    """Store the report as a monitoring run linked to each version's model, as drift does."""
    tracker = tracker_of(store)
    champion = report.champion
    tags = {KIND_TAG: MONITORING, REPORT_TAG: CHALLENGE,
            "verdict": "worse" if report.worse else "ok"}
    if champion.model_id:
        tags["model_id"] = champion.model_id
    with tracker.start_run(name=f"challenge {report.model or champion.version}",
                           experiment=MONITORING, tags=tags, nested=False) as run:
        report = replace(report, run_id=run.run_id)
        run.log_params({"log": report.source, "metric": report.metric_name,
                        "bootstrap": report.bootstrap, "champion": champion.version})
        metrics: dict[str, float] = {"unknown_labels": report.unknown_labels}
        for v in report.versions:
            values = {"rows": v.rows, "errors": v.errors, "dropped": v.dropped,
                      "agreement": v.agreement, "prediction_psi": v.prediction_psi,
                      "metric": v.metric, "difference": v.difference}
            metrics |= {f"{k}.{v.version}": x for k, x in values.items() if x is not None}
        run.log_metrics(metrics)
        for model_id in dict.fromkeys(v.model_id for v in report.versions if v.model_id):
            run.log_input(model_id, "monitored")
        with tempfile.TemporaryDirectory() as folder:
            run.log_artifact(report.save_html(Path(folder) / "challenge.html"))
            (Path(folder) / "challenge.json").write_text(report.to_json(), encoding="utf-8")
            run.log_artifact(Path(folder) / "challenge.json")
    return report
