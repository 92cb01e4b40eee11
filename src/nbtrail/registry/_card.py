"""``nt.model_card``: what an auditor reads about one registered version, as HTML or Markdown.

Everything comes from the store: the version's ``registered`` entry (its facts), the run
it was trained in (data profiles, environment, code), the audit trail (promotions,
packages) and the monitoring runs (drift). Information that is missing is said so in the
card; only a bad reference is an error.

The card is built once as sections of plain blocks (text, tables, a code diff) and then
rendered twice, so the HTML and the Markdown always say the same thing.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _html
from ..errors import GitError, InvalidInputError, NotFoundError
from ..store._audit import verify
from ._refs import resolve_with_state

if TYPE_CHECKING:
    from ..experiments._codediff import CodeDiff
    from ..store import Store
    from ..store._records import Run
    from ._state import ModelState, Request, Version

_SUFFIXES = {".html": "html", ".htm": "html", ".md": "markdown"}
_MISSING = "–"
# Top values listed in the summary of a text column.
_TOP_VALUES = 5


@dataclass(frozen=True)
class ModelCard:
    """The model card of one registered version (see :func:`model_card`).

    ``html`` is a standalone page (inline styles, no script, nothing fetched);
    ``markdown`` the same content as Markdown. Shows itself in a notebook.
    """

    ref: str
    html: str = field(repr=False)
    markdown: str = field(repr=False)
    _fragment: str = field(repr=False)  # the body of ``html``, for notebooks

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the card as HTML (``.html``, ``.htm``) or Markdown (``.md``); return the path."""
        target = Path(path)
        kind = _SUFFIXES.get(target.suffix.lower())
        if kind is None:
            raise InvalidInputError(
                f"cannot tell which format to save {os.fspath(path)!r} in: name the file "
                f"with one of the suffixes {', '.join(_SUFFIXES)}")
        target.write_text(self.html if kind == "html" else self.markdown, encoding="utf-8")
        return target

    def __repr__(self) -> str:
        return f"<ModelCard {self.ref}>"

    def _repr_html_(self) -> str:
        return self._fragment

    def _repr_markdown_(self) -> str:
        return self.markdown


def model_card(ref: str, *, store: Store | None = None) -> ModelCard:
    """The model card of a registered version: ``"churn/3"`` or ``"churn@champion"``.

    It says what the model is for, what it is (id, class, format, size, hash), the data
    it was trained on with their profiles, the code (and how it changed since the
    previous version), params, metrics at registration, the environment, every promotion
    request with its checks, evidence and approvals, the packages built and the drift
    reports recorded. ``store`` is where the registry lives (default: the configured one).

    Example:
        >>> card = nt.model_card("churn@champion")        # doctest: +SKIP
        >>> card.save("churn-card.html")                  # doctest: +SKIP
    """
    from ..tracking._tracker import store_or_configured

    store = store_or_configured(store)
    found, state = resolve_with_state(store, ref)
    version = state.versions[found.version]
    run = _run(store, version.facts["run_id"])
    title = f"Model card: {found}"
    sections = [
        _Section("Intended use", [state.description or "not stated"]),
        _version(state, version),
        _training_data(version, run),
        _code(store, state, version, run),
        _named_values("Params", "param", version.facts.get("params"), "No params were logged."),
        _named_values("Metrics at registration", "metric", version.facts.get("metrics"),
                      "No metrics were logged."),
        _environment(version, run),
        *_promotions(state, version),
        _packages(store, version),
        _drift(store, version),
    ]
    verdict = verify(store.audit_entries().iter_rows())
    chain = (f"verified, {verdict.entries} entries" if verdict.ok
             else f"BROKEN: {verdict.problem}")
    provenance = (f"Generated {_text(datetime.now(UTC))} by nbtrail from the registry's "
                  f"audit trail ({chain}) in the store at {store.location}.")
    fragment = _to_html(title, provenance, sections)
    return ModelCard(str(found), _html.document(title, fragment),
                     _to_markdown(title, provenance, sections), fragment)


# -- the card's content: sections of blocks -------------------------------------------


@dataclass(frozen=True)
class _Table:
    columns: tuple[str, ...]
    rows: Sequence[Sequence[str]]
    caption: str | None = None
    folded: bool = False  # a long list (installed packages) starts collapsed in HTML


@dataclass(frozen=True)
class _Diff:
    title: str
    diff: CodeDiff


_Block = str | _Table | _Diff  # a str is a paragraph of plain text


@dataclass(frozen=True)
class _Section:
    title: str
    blocks: list[_Block]
    level: int = 2


def _text(value: object) -> str:
    """One value as the card shows it, the same in HTML and Markdown."""
    if value is None or value == "":
        return _MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        short = f"{value:.6g}"  # the digits a reader compares, not float noise
        return repr(value) if float(short) == value else short  # 2.0 stays 2.0, not 2
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.tzinfo else "")
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def _fields(pairs: Iterable[tuple[str, object]]) -> _Table:
    return _Table(("field", "value"), [(name, _text(value)) for name, value in pairs])


def _run(store: Store, run_id: str) -> Run | None:
    try:
        return store.get_run(run_id)
    except NotFoundError:  # a store the run was never copied into
        return None


def _absent_run(version: Version, what: str) -> str:
    return f"The training run {version.facts['run_id']} is not in this store: {what} unknown."


def _size(size: object) -> str:
    if not isinstance(size, int):
        return _MISSING
    return f"{size:,} bytes ({size / 1e6:.3g} MB)"


def _version(state: ModelState, version: Version) -> _Section:
    facts = version.facts
    aliases = sorted(a for a, n in state.aliases.items() if n == version.number)
    run_name = facts.get("run_name")
    run = f"{run_name} ({facts['run_id']})" if run_name else facts["run_id"]
    return _Section("The version", [_fields([
        ("reference", f"{state.name}/{version.number}"),
        ("model id", facts.get("model_id")),
        ("logged as", facts.get("model_name")),
        ("class", facts.get("class_name")),
        ("flavor", facts.get("flavor")),
        ("format", facts.get("format")),
        ("size", _size(facts.get("size_bytes"))),
        ("sha256", facts.get("sha256")),
        ("training run", run),
        ("experiment", facts.get("experiment")),
        ("trained by", facts.get("run_user")),
        ("registered by", version.registered_by),
        ("registered at", version.registered_at),
        ("aliases now", ", ".join(f"@{a}" for a in aliases) or "none"),
    ])])


def _training_data(version: Version, run: Run | None) -> _Section:
    title = "Training data"
    if run is None:
        listed = version.facts.get("datasets") or []
        blocks: list[_Block] = [_absent_run(version, "the data profiles are")]
        if listed:
            blocks.append(_Table(("data set", "role", "fingerprint", "dataset id"), [
                tuple(_text(d.get(k)) for k in ("name", "role", "fingerprint", "dataset_id"))
                for d in listed]))
        return _Section(title, blocks)
    if not run.datasets:
        return _Section(title, ["No data set was logged with the training run."])
    blocks = []
    fitted_on = version.facts.get("training_dataset_id")
    if fitted_on:
        name = next((d["name"] for d in run.datasets if d["dataset_id"] == fitted_on), None)
        blocks.append(f"The model was fitted on data set {name or fitted_on} ({fitted_on}).")
    blocks.append(_Table(
        ("data set", "role", "rows", "columns", "fingerprint", "dataset id"),
        [tuple(_text(d.get(k)) for k in ("name", "role", "n_rows", "n_columns",
                                         "fingerprint", "dataset_id"))
         for d in run.datasets]))
    blocks += [_Table(("column", "type", "nulls", "distinct", "summary"), _profile(d),
                      caption=f"{d['name']} ({d['role']}): statistics of each column")
               for d in run.datasets]
    return _Section(title, blocks)


def _profile(dataset: Mapping[str, Any]) -> list[tuple[str, ...]]:
    types = {c["name"]: c.get("dtype") for c in dataset.get("schema") or []}
    stats: Mapping[str, Mapping[str, Any]] = dataset.get("stats") or {}
    names = list(types) + [name for name in stats if name not in types]
    return [(name, _text(types.get(name)), _text(stats.get(name, {}).get("nulls")),
             _text(stats.get(name, {}).get("n_unique")), _summary(stats.get(name, {})))
            for name in names]


def _summary(stats: Mapping[str, Any]) -> str:
    """A column's statistics in one line (see ``tracking._datasets.profile_dataset``)."""
    if "true" in stats:
        return f"true {_text(stats['true'])}, false {_text(stats.get('false'))}"
    if "mean" in stats:
        median = (stats.get("quantiles") or {}).get("p50")
        parts = [f"{key} {_text(stats.get(key))}" for key in ("min", "mean", "max", "std")]
        parts.insert(2, f"median {_text(median)}")
        parts += [f"{stats[key]} {key}" for key in ("nan", "inf") if stats.get(key)]
        return " · ".join(parts)
    if "top" in stats:
        top = ", ".join(f"{t['value']} ({t['count']})" for t in stats["top"][:_TOP_VALUES])
        more = " …" if len(stats["top"]) > _TOP_VALUES else ""
        return (f"top: {top or _MISSING}{more} · length {_text(stats.get('min_length'))} to "
                f"{_text(stats.get('max_length'))}")
    if "min" in stats:  # dates and times
        return f"from {_text(stats['min'])} to {_text(stats.get('max'))}"
    return ""


def _code(store: Store, state: ModelState, version: Version, run: Run | None) -> _Section:
    facts = version.facts
    git = facts.get("git") or {}
    recorded = [("commit", git.get("commit")), ("branch", git.get("branch")),
                ("snapshot", git.get("snapshot")), ("dirty", git.get("dirty")),
                ("notebook", facts.get("notebook")), ("code id", facts.get("code_id"))]
    blocks: list[_Block] = [_fields(recorded)] if any(v is not None for _, v in recorded) \
        else ["No code snapshot was recorded with the training run."]
    if run is not None and run.git_note:
        blocks.append(f"git state: {run.git_note}")
    blocks.append(_code_change(store, state, version, run))
    return _Section("Code", blocks)


def _code_change(store: Store, state: ModelState, version: Version, run: Run | None) -> _Block:
    """The code diff from the previous version's run, or one line saying why there is none."""
    from ..experiments._compare import _code as runs_code_diff

    earlier = [n for n in state.versions if n < version.number]
    if not earlier:
        return (f"Version {version.number} is the first version of {state.name}: there is "
                "no earlier code to compare with.")
    previous = state.versions[max(earlier)]
    before = _run(store, previous.facts["run_id"])
    why = f"No code diff to version {previous.number}: "
    if run is None or before is None:
        missing = previous if before is None else version
        return why + (f"the run of version {missing.number} ({missing.facts['run_id']}) "
                      "is not in this store.")
    try:
        diff = runs_code_diff(before, run)
    except GitError as exc:  # git itself refused (not installed, a broken repository)
        return why + str(exc)
    if diff.note and not diff.files:
        return why + diff.note
    if not diff.files:
        return f"The code is the same as version {previous.number}'s."
    return _Diff(f"Code change from version {previous.number} to version {version.number}",
                 diff)


def _named_values(title: str, what: str, values: Mapping[str, Any] | None,
                  none: str) -> _Section:
    if not values:
        return _Section(title, [none])
    return _Section(title, [_Table((what, "value"), [(key, _text(values[key]))
                                                     for key in sorted(values)])])


def _environment(version: Version, run: Run | None) -> _Section:
    title = "Environment"
    if run is None:
        return _Section(title, [_absent_run(version, "its environment is")])
    if run.env is None:
        return _Section(title, ["The environment was not captured for the training run."])
    packages: Mapping[str, Any] = run.env.get("packages") or {}
    blocks: list[_Block] = [_fields([("python", run.env.get("python")),
                                     ("platform", run.env.get("platform")),
                                     ("environment id", run.env.get("env_id"))])]
    if packages:
        blocks.append(_Table(("package", "version"),
                             [(name, _text(packages[name])) for name in sorted(packages)],
                             caption=f"{len(packages)} installed packages", folded=True))
    return _Section(title, blocks)


def _promotions(state: ModelState, version: Version) -> list[_Section]:
    requests = sorted((r for r in state.requests.values() if r.version == version.number),
                      key=lambda r: r.request_id)
    summary = (f"{len(requests)} promotion request(s) for this version, oldest first."
               if requests else "No promotion was requested for this version.")
    return [_Section("Promotion checks and approvals", [summary]),
            *(_request(r) for r in requests)]


def _request(request: Request) -> _Section:
    blocks: list[_Block] = [_fields([
        ("alias", f"@{request.alias}"), ("status", request.status),
        ("requested by", request.requested_by), ("requested at", request.requested_at),
        ("request note", request.note), ("decided by", request.decided_by),
        ("decided at", request.decided_at), ("decision note", request.decision_note),
    ])]
    if not request.checks:
        blocks.append("No checks: the alias's policy asked for none.")
    # Check details are paragraphs, not table cells, so they are never cut short.
    blocks += [f"{c['check']}: {'passed' if c['passed'] else 'FAILED'} — {c['detail']}"
               for c in request.checks]
    evidence = [(str(c["check"]), str(key), _text(value)) for c in request.checks
                for key, value in (c.get("evidence") or {}).items()]
    if evidence:
        blocks.append(_Table(("check", "evidence", "value"), evidence,
                             caption="evidence recorded with the checks"))
    return _Section(f"Request #{request.request_id} to @{request.alias}: {request.status}",
                    blocks, level=3)


def _packages(store: Store, version: Version) -> _Section:
    title = "Packages built"
    # package_built entries (``packaging._api.package`` of a reference, ``_state._apply``)
    keys = ("package_id", "name", "image", "digest", "at", "by", "ref")
    rows = [tuple(_text(p.get(key)) for key in keys) for p in version.packages]
    recorded = {p.get("package_id") for p in version.packages}
    # Packages made from the model id itself leave no audit entry, only a lineage edge.
    rows += [(package_id, *[_MISSING] * 5, "the model id (outside the registry)")
             for package_id in store.packages_of(version.model_id)
             if package_id not in recorded]
    if not rows:
        return _Section(title, ["No package was built from this model."])
    return _Section(title, [_Table(("package", "name", "image", "image digest", "built at",
                                    "built by", "built from"), rows)])


def _drift(store: Store, version: Version) -> _Section:
    from ..monitor._api import KIND_TAG, MONITORING

    runs = store.run_tags([KIND_TAG, "verdict", "model_id"],
                          having={KIND_TAG: MONITORING, "model_id": version.model_id})
    if runs.is_empty():
        return _Section("Drift history", ["No drift report recorded."])
    return _Section("Drift history", [_Table(
        ("date", "verdict", "monitoring run", "status"),
        [(_text(r["start_time"]), _text(r["verdict"]), r["run_id"], _text(r["status"]))
         for r in runs.iter_rows(named=True)])])


# -- rendering ------------------------------------------------------------------------

_HEADINGS = {1: "font-size:20px;margin:0 0 6px 0", 2: "font-size:16px;margin:18px 0 6px 0",
             3: "font-size:14px;margin:12px 0 4px 0"}


def _to_html(title: str, provenance: str, sections: Sequence[_Section]) -> str:
    parts = [_heading_html(1, title), _paragraph_html(provenance, "color:#555;")]
    for section in sections:
        parts.append(_heading_html(section.level, section.title))
        parts += [_block_html(block) for block in section.blocks]
    return '<div style="max-width:1100px">' + "".join(parts) + "</div>"


def _heading_html(level: int, text: str) -> str:
    return f'<h{level} style="{_HEADINGS[level]}">{_html.escape(text)}</h{level}>'


def _paragraph_html(text: str, style: str = "") -> str:
    return (f'<p style="margin:4px 0;font-size:13px;white-space:pre-wrap;{style}">'
            f"{_html.escape(text)}</p>")


def _block_html(block: _Block) -> str:
    if isinstance(block, str):
        return _paragraph_html(block)
    if isinstance(block, _Diff):
        return _html.section(block.title, block.diff._repr_html_())
    if block.folded:
        table = _html.table(block.columns, block.rows, max_rows=len(block.rows))
        return (f"<details><summary>{_html.escape(block.caption)}</summary>{table}"
                "</details>")
    return _html.table(block.columns, block.rows, caption=block.caption,
                       max_rows=len(block.rows))  # a document shows every row


# Characters Markdown could read as markup (HTML included), and an "_" that could start
# or end emphasis (one inside a word, as in model_id, cannot).
_MD_INLINE = re.compile(r"[\\`*\[\]<>&|~#]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
# What could start a block at the start of a line: a list, a setext underline, "1." or "1)".
_MD_LINE_START = re.compile(r"^(\d*)([-+=.)])")


def _md_inline(text: str) -> str:
    return _MD_INLINE.sub(lambda m: "\\" + m[0], text.strip())


def _md(text: str) -> str:
    """``text`` as Markdown that shows it literally: never HTML, a link, a list or a heading."""
    lines = [_MD_LINE_START.sub(r"\1\\\2", _md_inline(line)) for line in text.splitlines()]
    return "  \n".join(lines)  # two spaces: a hard line break within one paragraph


def _md_cell(text: str) -> str:
    # A table cell is inline text on one row: no block can start in it.
    return " ".join(_md_inline(line) for line in text.splitlines()) or " "


def _to_markdown(title: str, provenance: str, sections: Sequence[_Section]) -> str:
    lines = [f"# {_md(title)}", "", f"*{_md(provenance)}*", ""]
    for section in sections:
        lines += [f"{'#' * section.level} {_md(section.title)}", ""]
        for block in section.blocks:
            lines += [_block_md(block), ""]
    return "\n".join(lines)


def _block_md(block: _Block) -> str:
    if isinstance(block, str):
        return _md(block)
    if isinstance(block, _Diff):
        text = block.diff.to_text()
        longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
        fence = "`" * max(3, longest + 1)  # longer than any backtick run in the diff
        return f"**{_md(block.title)}**\n\n{fence}text\n{text}\n{fence}"
    lines = [f"*{_md(block.caption)}*", ""] if block.caption else []
    lines.append("| " + " | ".join(_md_cell(c) for c in block.columns) + " |")
    lines.append("|" + "---|" * len(block.columns))
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in block.rows]
    return "\n".join(lines)
