"""``nt.package``: from a logged model to a build context, and an image where it can."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _html
from .._config import config
from .._modelio import PICKLE, SKOPS, referenced_modules
from ..errors import InvalidInputError, UntrustedModelError
from ..registry._refs import is_reference
from ..serving._routing import schema_differences
from . import _build, _context, _lock
from ._check import checked_signature
from ._context import Version
from ._source import ModelSource, log_object, resolve

if TYPE_CHECKING:
    from ..store import Store
    from ..store._journal import JournalWriter

Progress = Callable[[str, float], None]
# Kubernetes object names (DNS-1123 labels), which image names accept too.
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Package:
    """A build context made by :func:`package`, and its image when one was built."""

    package_id: str
    name: str
    context: Path
    model_id: str
    run_id: str
    tag: str
    build_command: str
    image: _build.Image | None = None
    engine_missing: bool = False
    # routing.json of a package serving several versions; None for one model.
    routing: dict[str, Any] | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain values, ready for JSON."""
        return {"package_id": self.package_id, "name": self.name,
                "context": str(self.context), "model_id": self.model_id,
                "run_id": self.run_id, "tag": self.tag, "build_command": self.build_command,
                "image": self.image.to_dict() if self.image else None,
                "routing": self.routing}

    def __repr__(self) -> str:
        if self.image:
            built = f"image {self.image.tag} {self.image.digest[:19]}"
        else:
            why = "no container engine here" if self.engine_missing else "not built"
            built = f"{why}; build with: {self.build_command}"
        return f"<Package {self.name} {self.package_id} at {self.context}: {built}>"

    def _repr_html_(self) -> str:
        rows: dict[str, Any] = {"package_id": self.package_id, "context": str(self.context),
                                "model_id": self.model_id, "run_id": self.run_id}
        if self.routing:
            rows["versions"] = "; ".join(
                f"{role} {entry['version']}" + (f" {entry['share']:.0%}" if "share" in entry
                                                else "")
                for role, entries in (("champion", [self.routing["champion"]]),
                                      ("shadow", self.routing["shadows"]),
                                      ("canary", self.routing["canary"]))
                for entry in entries)
        if self.image:
            rows |= {"image": self.image.tag, "digest": self.image.digest,
                     "size_mb": self.image.size_bytes / 1e6, "engine": self.image.engine}
        else:
            if self.engine_missing:
                rows["image"] = "not built: no container engine here"
            rows["build with"] = self.build_command
        return _html.mapping(f"package {self.name}", rows)


def _default_name(source: ModelSource) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", source.name.lower()).strip("-")[:63].strip("-")
    return name or "model"


def check_name(name: str) -> str:
    """``name`` if it is usable as an image and Kubernetes name, else ``InvalidInputError``."""
    # fullmatch: with match, `$` also matches before a final newline and "pk\n" got through.
    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"package name {name!r} is not usable as an image and Kubernetes name; use "
            "lower-case letters, digits and '-' (at most 63, starting and ending with a "
            "letter or digit), e.g. 'churn-model'"
        )
    return name


def _server_roots(source: ModelSource) -> list[str]:
    roots = list(_lock.SERVER_DISTRIBUTIONS)
    if source.format == SKOPS:
        roots.append("skops")
    if source.frame in ("pandas", "polars"):
        roots.append(source.frame)
    return roots


def prepare(store: Store, ref: str, *, trusted: bool) -> tuple[ModelSource, bytes]:
    """The model ``ref`` names, its bytes, and its signature checked by a trial run."""
    source = resolve(store, ref)
    if source.format == PICKLE and not trusted:
        raise UntrustedModelError(
            f"model {source.model_id} is a pickle, which runs code when the server loads it; "
            "pass trusted=True (--trusted) if you trust it"
        )
    model_bytes = store.blob_path(source.sha256).read_bytes()
    signature = checked_signature(store, source, model_bytes, trusted=trusted)
    return dataclasses.replace(source, signature=signature), model_bytes


def _label(store: Store, ref: str, model_id: str) -> str:
    # A registry version is named by its number (what dashboards and alerts show);
    # a bare model id by itself.
    if is_reference(ref):
        from ..registry._refs import resolve as resolve_ref

        return str(resolve_ref(store, ref).version)
    return model_id


def versions(store: Store, champion: str, source: ModelSource, model_bytes: bytes, *,
             shadow: Sequence[str], canary: Mapping[str, float], trusted: bool,
             allow_schema_change: bool) -> list[Version]:
    """The champion and its challengers, each checked; empty when there are none.

    One ``InvalidInputError`` line for a shadow or canary that is the champion (or the
    same model), a version both shadow and canary, a share outside (0, 1) or shares over
    1, and a challenger whose input columns differ (unless ``allow_schema_change``).
    """
    if isinstance(shadow, str):
        shadow = [shadow]
    if not isinstance(canary, Mapping):
        raise InvalidInputError("canary must map references to shares, e.g. "
                                "{'churn@challenger': 0.1}")
    for ref, share in canary.items():
        if isinstance(share, bool) or not isinstance(share, int | float) \
                or not 0 < share < 1:
            raise InvalidInputError(f"canary share of {ref!r} must be between 0 and 1 "
                                    f"(exclusive), got {share!r}")
    if sum(canary.values()) > 1:
        raise InvalidInputError(f"canary shares add up to {sum(canary.values()):g}, over 1; "
                                "lower them so the champion keeps a share")
    if not shadow and not canary:
        return []
    found = [Version("champion", champion if is_reference(champion) else None,
                     _label(store, champion, source.model_id), source, model_bytes)]
    wanted: list[tuple[Any, str, float]] = [("shadow", ref, 0.0) for ref in shadow]
    wanted += [("canary", ref, float(share)) for ref, share in canary.items()]
    for role, ref, share in wanted:
        if not isinstance(ref, str):
            raise InvalidInputError(f"a {role} must be a model id or registry reference "
                                    f"(e.g. 'churn@challenger'), got {ref!r}")
        other, other_bytes = prepare(store, ref, trusted=trusted)
        same = next((v for v in found if v.source.model_id == other.model_id), None)
        if same is not None:
            raise InvalidInputError(
                f"{role} {ref!r} is model {other.model_id}, already the {same.role} "
                f"({same.ref or same.version}); a version can take one part only")
        different = schema_differences(source.signature, other.signature)
        if different and not allow_schema_change:
            raise InvalidInputError(
                f"{role} {ref!r} takes other input columns than the champion "
                f"({', '.join(different)}); pass allow_schema_change=True "
                "(--allow-schema-change) to serve it anyway")
        found.append(Version(role, ref if is_reference(ref) else None,
                             _label(store, ref, other.model_id), other, other_bytes, share))
    labels = [v.version for v in found]
    if len(set(labels)) < len(labels):
        raise InvalidInputError(f"two versions would be labelled alike ({', '.join(labels)}); "
                                "name versions of one registered model, or model ids")
    return found


def package(
    model: object,
    *,
    shadow: Sequence[str] = (),
    canary: Mapping[str, float] | None = None,
    allow_schema_change: bool = False,
    name: str | None = None,
    output: str | Path | None = None,
    base_image: str | None = None,
    build: bool | None = None,
    trusted: bool = False,
    input_example: object = None,
    progress: Progress | None = None,
    store: Store | None = None,
) -> Package:
    """Turn a model into a container build context, and build it where an engine is present.

    ``model`` is a model id (``mdl_…``), a registry reference (``churn@champion``,
    ``churn/3``: the package is then recorded in the registry's audit trail), a run id (its
    latest model) or a fitted model object (logged first, into the active run or a new
    one, with ``input_example``).
    The context at ``output`` (default ``dist/<name>``) holds a Dockerfile (virtual env,
    non-root user, health check, OCI and lineage labels), ``requirements.lock`` pinned to
    the training environment, the model in skops format with ``signature.json`` and
    ``lineage.json``, the server, a README and Kubernetes manifests.

    ``shadow`` (references or model ids) are served beside ``model``: each gets every
    request's input off the response path and its answers go to the prediction log only.
    ``canary`` maps references to the share of requests they answer (sticky per request
    key). Every version gets its own folder under ``model/versions/`` and
    ``model/routing.json`` names them; a challenger must take the champion's input
    columns unless ``allow_schema_change=True``.

    ``build=None`` builds when podman or docker answers, ``True`` insists, ``False`` only
    writes the context. ``base_image`` defaults to ``python:<training python>-slim``.
    Pickled models need ``trusted=True``, which the image then also carries. ``progress``
    is called as ``progress(step, fraction)``. ``store`` holds the model and records the
    package (default: the configured store).

    Example:
        >>> pkg = nt.package(run.run_id, name="churn")           # doctest: +SKIP
        >>> pkg.context, pkg.image                               # doctest: +SKIP
        >>> nt.package("churn@champion", shadow=["churn@challenger"])  # doctest: +SKIP
    """
    from ulid import ULID

    from ..tracking._tracker import store_or_configured

    def step(text: str, fraction: float) -> None:
        if progress is not None:
            progress(text, fraction)

    step("resolving the model", 0.0)
    if name is not None:
        check_name(name)
    store = store_or_configured(store)
    if not isinstance(model, str):
        model = log_object(model, name=name or "model", input_example=input_example,
                           trusted=trusted, store=store)
    source, model_bytes = prepare(store, model, trusted=trusted)
    served = versions(store, model, source, model_bytes, shadow=shadow, canary=canary or {},
                      trusted=trusted, allow_schema_change=allow_schema_change)
    name = check_name(name if name is not None else _default_name(source))
    output = Path(output) if output is not None else Path("dist") / name
    tag = f"{name}:{source.sha256[:12]}"
    python = source.python or "3.11"
    base_image = base_image or f"python:{'.'.join(python.split('.')[:2])}-slim"
    isolation = config.current.build_isolation
    engine = None
    if build is not False:
        step("looking for a container engine", 0.05)
        engine = _build.find_engine()
        if engine is None and build:
            raise _build.BuildError(
                "no container engine answers (podman info / docker info failed); install "
                "podman or start docker, or call with build=False and build the context "
                "elsewhere"
            )
    command = _build.as_text(_build.build_command(engine or "docker", output.resolve(), tag,
                                                  isolation if engine else None))

    step("pinning packages", 0.1)
    models = [(v.source, v.model_bytes) for v in served] or [(source, model_bytes)]
    roots = list(dict.fromkeys(
        [root for other, _ in models for root in _server_roots(other)]
        + sorted({dist for other, data in models
                  for dist in _lock.distributions_for(referenced_modules(data, other.format))})))
    # The champion's environment pins first; a challenger adds only what it alone needs.
    pins: dict[str, str] = {}
    for other, _ in reversed(models):
        pins |= other.packages
    lockfile = _lock.render(_lock.lock(roots, pins), python)

    step("writing the build context", 0.2)
    package_id = f"pkg_{ULID()}"
    _context.write_context(
        output, source=source, model_bytes=model_bytes, lockfile=lockfile, name=name,
        package_id=package_id, base_image=base_image, image=tag, build_command=command,
        trusted=trusted, versions=served,
    )
    result = Package(package_id=package_id, name=name, context=output.resolve(),
                     model_id=source.model_id, run_id=source.run_id, tag=tag,
                     build_command=command, engine_missing=build is None and engine is None,
                     routing=_context.routing(served) if served else None)
    challengers = [v.source.model_id for v in served[1:]]
    # Recorded before the build too, so a failed build still leaves the context on record.
    _record(store.writer(), result, base_image, challengers)
    if engine is not None:
        step(f"building the image with {engine}", 0.3)
        image = _build.build(engine, output.resolve(), tag, isolation=isolation,
                             on_output=lambda line: step(line, 0.5))
        result = dataclasses.replace(result, image=image)
        _record(store.writer(), result, base_image, challengers)
    # Registered versions: each one's audit trail lists the package and its part in it.
    for ref, role, model_id in ([(model, "champion", result.model_id)] + [
            (v.ref, v.role, v.source.model_id) for v in served[1:]]):
        if ref is None or not is_reference(ref):
            continue
        from ..registry._api import record_use
        from ..registry._state import PACKAGED

        record_use(store, ref, PACKAGED, {
            "package_id": result.package_id, "name": result.name, "model_id": model_id,
            "image": result.image.tag if result.image else None,
            "digest": result.image.digest if result.image else None}
            | ({"role": role} if served else {}))
    step("done", 1.0)
    return result


def _record(writer: JournalWriter, result: Package, base_image: str,
            challengers: Sequence[str] = ()) -> None:
    from ..store import Edge, PackageMade

    now = time.time()
    image = result.image
    writer.append(PackageMade(
        package_id=result.package_id, model_id=result.model_id, run_id=result.run_id,
        name=result.name, context_path=str(result.context), base_image=base_image,
        image_tag=image.tag if image else None, image_digest=image.digest if image else None,
        image_size_bytes=image.size_bytes if image else None, created_at=now,
    ).to_journal())
    for model_id in (result.model_id, *challengers):
        writer.append(Edge(model_id, result.package_id, "packaged", now).to_journal())
    writer.flush()
