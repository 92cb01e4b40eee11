"""The HTTP application: KServe V2 REST, plain JSON ``/predict``, health and metrics.

Expected mistakes answer 4xx with a JSON ``{"error", "problems"?, "request_id"}`` body
and the server keeps serving: bodies are parsed and checked field by field in
``_protocol`` and value by value in ``_signature`` before the model sees them. A failure
inside the model answers 500 with the request id only, and the traceback goes to the
server's log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import NbtrailError
from ._batching import Batcher
from ._bundle import ModelBundle
from ._predlog import PredictionLog
from ._protocol import (
    HEADER_LENGTH,
    ProtocolError,
    columns_from_plain,
    columns_from_v2,
    decode_json,
    encode_json,
    parse_v2,
    split_binary,
    v2_model_metadata,
    v2_tensor,
)
from ._routing import (
    SHADOW_QUEUE,
    Output,
    Routed,
    Routing,
    ShadowJob,
    ShadowWorker,
    load_routing,
    schema_differences,
    single,
)
from ._signature import RangePolicy, SignatureError

log = logging.getLogger("nbtrail.serving")

# prometheus_client's multi-process mode: set for servers with several worker processes.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class ServeSettings:
    """How the server treats requests.

    Attributes:
        range_policy: ``"warn"`` answers values outside the training range with a warning,
            ``"reject"`` refuses them with 422.
        max_body_bytes: Larger request bodies get 413.
        log_dir: Folder of the prediction log; ``None`` logs no predictions.
        log_max_bytes: Size at which a prediction log file is rotated.
        log_max_files: Prediction log files kept; older ones are deleted.
        shadow_queue: Requests a shadow version may have waiting; past that its work is
            dropped (and counted) so that it never holds up an answer.
    """

    range_policy: RangePolicy = "warn"
    max_body_bytes: int = 10 << 20
    log_dir: str | None = None
    log_max_bytes: int = 64 << 20
    log_max_files: int = 100
    shadow_queue: int = SHADOW_QUEUE


class _RequestFailed(Exception):
    def __init__(self, status: int, error: str, problems: list[dict[str, str]] | None = None):
        super().__init__(error)
        self.status, self.error, self.problems = status, error, problems


class _Metrics:
    def __init__(self) -> None:
        multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        # In multi-process mode values live in files shared by the workers, not a registry.
        self.registry = None if multiprocess else CollectorRegistry()
        kwargs: dict[str, Any] = {"registry": self.registry}
        self.requests = Counter("nbtrail_requests", "HTTP requests answered",
                                ["endpoint", "status"], **kwargs)
        self.latency = Histogram(
            "nbtrail_request_duration_seconds", "Time to answer a request", ["endpoint"],
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
            **kwargs,
        )
        self.rows = Counter("nbtrail_predicted_rows", "Rows predicted", **kwargs)
        self.errors = Counter("nbtrail_prediction_errors", "Requests the model failed on",
                              **kwargs)
        self.validation_failures = Counter(
            "nbtrail_validation_failures", "Requests refused by the signature check",
            ["reason"], **kwargs)
        # Per version: a package may serve a champion with shadows and canaries.
        self.model_rows = Counter("nbtrail_model_rows", "Rows predicted by each version",
                                  ["version", "role"], **kwargs)
        self.model_latency = Histogram(
            "nbtrail_model_duration_seconds", "Time of each version's model call",
            ["version", "role"],
            buckets=(.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10),
            **kwargs,
        )
        self.model_errors = Counter("nbtrail_model_errors", "Requests a version failed on",
                                    ["version", "role"], **kwargs)
        self.shadow_dropped = Counter(
            "nbtrail_shadow_dropped", "Requests a shadow skipped because its queue was full",
            ["version"], **kwargs)
        self.out_of_range = Counter(
            "nbtrail_out_of_range_values", "Requests with values outside the training range",
            ["column"], **kwargs)

    def exposition(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)


class _JSON(JSONResponse):
    """A JSON response that is valid JSON whatever it holds (see ``encode_json``)."""

    def render(self, content: Any) -> bytes:
        return encode_json(content)


def _error(status: int, error: str, request_id: str,
           problems: list[dict[str, str]] | None = None) -> Response:
    body: dict[str, Any] = {"error": error, "request_id": request_id}
    if problems:
        body["problems"] = problems
    return _JSON(body, status_code=status, headers={"X-Request-ID": request_id})


def create_app(bundle: ModelBundle | Routing,
               settings: ServeSettings | None = None) -> Starlette:
    """The ASGI application serving ``bundle``, or every version of a routing.

    With a :class:`Routing`, the champion answers (or a canary, for its share of the
    requests) and each shadow gets the same checked input off the response path.

    Example:
        >>> app = create_app(ModelBundle.load("dist/churn/model"))  # doctest: +SKIP
        >>> uvicorn.run(app, port=8080)                              # doctest: +SKIP
    """
    settings = settings or ServeSettings()
    routing = bundle if isinstance(bundle, Routing) else single(bundle)
    bundle = routing.champion.bundle
    several = len(routing.models) > 1
    metrics = _Metrics()
    prediction_log = (PredictionLog(settings.log_dir, max_bytes=settings.log_max_bytes,
                                    max_files=settings.log_max_files)
                      if settings.log_dir else None)
    signature = bundle.signature
    metadata = v2_model_metadata(bundle.name, bundle.version, bundle.platform, signature)
    outputs = ["predict", "predict_proba"] if bundle.has_probabilities else ["predict"]
    batchers = {m.version: Batcher(m.bundle) for m in routing.models if m.role != "shadow"}
    routing_of = {m.version: m for m in routing.models}

    def write_log(request_id: str, columns: dict[str, list[Any]],
                  outputs: list[Output]) -> None:
        assert prediction_log is not None
        answered = outputs[0]
        prediction = answered.prediction
        assert prediction is not None  # the answering version's output is a success
        n_rows = len(prediction.predictions)
        prediction_log.append(
            request_id=request_id, model=bundle.name, model_id=answered.model_id,
            model_sha256=routing_of[answered.version].bundle.sha256, columns=columns,
            predictions=prediction.predictions.tolist(),
            probabilities=prediction.probability_rows(),
            models=[o.rows(n_rows) for o in outputs] if several else None)

    def record(output: Output, n_rows: int) -> None:
        labels = (output.version, output.role)
        if output.latency_ms is not None:
            metrics.model_latency.labels(*labels).observe(output.latency_ms / 1e3)
        if output.prediction is not None:
            metrics.model_rows.labels(*labels).inc(n_rows)
        elif output.latency_ms is not None:  # it ran and failed (not dropped, not refused)
            metrics.model_errors.labels(*labels).inc()

    shadows = [ShadowWorker(m, index, on_output=record,
                            on_drop=metrics.shadow_dropped.labels(m.version).inc,
                            max_queue=settings.shadow_queue,
                            own_check=bool(schema_differences(signature.spec,
                                                              m.bundle.signature.spec)))
               for index, m in enumerate(routing.shadows)]

    async def read_body(request: Request) -> bytes:
        encoding = request.headers.get("content-encoding", "identity")
        if encoding.lower() != "identity":
            raise _RequestFailed(415, f"request bodies with Content-Encoding {encoding!r} are "
                                      "not supported; send them uncompressed")
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            raise _RequestFailed(413, f"request body over {settings.max_body_bytes} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > settings.max_body_bytes:
                raise _RequestFailed(413, f"request body over {settings.max_body_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def check_model(request: Request) -> Routed | None:
        """The version the path names (``None``: none named, routing decides)."""
        name = request.path_params["name"]
        if name != bundle.name:
            raise _RequestFailed(404, f"no model {name!r}; this server serves {bundle.name!r}")
        version = request.path_params.get("version")
        if version is None:
            return None
        pinned = routing.by_version(version)
        if pinned is None:
            have = ", ".join(repr(m.version) for m in routing.models if m.role != "shadow")
            raise _RequestFailed(404, f"no version {version!r} of {bundle.name!r}; "
                                      f"this server has {have}")
        return pinned

    def request_key(request: Request, body: Any = None) -> str | None:
        key = request.headers.get("x-request-key")
        if key is None and isinstance(body, dict) and body.get("key") is not None:
            key = str(body["key"])
        return key

    async def run_model(columns: dict[str, list[Any]], request_id: str,
                        probabilities: bool = True, *, key: str | None = None,
                        pinned: Routed | None = None
                        ) -> tuple[Routed, Any, list[dict[str, str]]]:
        answering = pinned or (routing.answering(key) if routing.canaries
                               else routing.champion)
        try:
            checked = answering.bundle.signature.check(columns,
                                                       range_policy=settings.range_policy)
        except SignatureError as exc:
            metrics.validation_failures.labels("signature").inc()
            raise _RequestFailed(422, "the input does not match the model's signature",
                                 [p.to_dict() for p in exc.problems]) from None
        for warning in checked.warnings:
            metrics.out_of_range.labels(warning.field).inc()
        start = time.perf_counter()
        try:
            result = await batchers[answering.version].predict(checked,
                                                               probabilities=probabilities)
        except Exception:
            metrics.errors.inc()
            metrics.model_errors.labels(answering.version, answering.role).inc()
            log.exception("prediction failed (request %s, version %s)", request_id,
                          answering.version)
            raise _RequestFailed(500, "the model failed on this input; see the server log "
                                      "for this request id") from None
        answered = Output(answering.role, answering.version, answering.bundle.model_id,
                          result, (time.perf_counter() - start) * 1e3)
        metrics.rows.inc(checked.n_rows)
        record(answered, checked.n_rows)
        if shadows:
            # The log line waits for the shadows' outputs; the answer does not.
            done = None if prediction_log is None else (
                lambda outputs: write_log(request_id, columns, outputs))
            shadow_request = ShadowJob(columns, checked, answered, done, len(shadows))
            for shadow in shadows:
                shadow.submit(shadow_request)
        elif prediction_log is not None:
            write_log(request_id, columns, [answered])
        return answering, result, [w.to_dict() for w in checked.warnings]

    def endpoint(name: str, handler: Callable[[Request, str], Awaitable[Response]]
                 ) -> Callable[[Request], Awaitable[Response]]:
        latency = metrics.latency.labels(name)

        async def wrapped(request: Request) -> Response:
            request_id = request.headers.get("x-request-id") or f"req_{uuid.uuid4().hex}"
            start = time.perf_counter()
            try:
                response = await handler(request, request_id)
            except _RequestFailed as exc:
                response = _error(exc.status, exc.error, request_id, exc.problems)
            except ProtocolError as exc:
                metrics.validation_failures.labels("protocol").inc()
                response = _error(400, str(exc), request_id)
            except NbtrailError as exc:
                response = _error(400, str(exc), request_id)
            except Exception:
                # A bug, not a bad request: logged, and still answered in the error shape.
                log.exception("request %s failed", request_id)
                response = _error(500, "internal error; see the server log for this "
                                       "request id", request_id)
            response.headers["X-Request-ID"] = request_id
            latency.observe(time.perf_counter() - start)
            metrics.requests.labels(name, str(response.status_code)).inc()
            return response

        return wrapped

    async def live(request: Request, request_id: str) -> Response:
        return _JSON({"live": True})

    async def ready(request: Request, request_id: str) -> Response:
        return _JSON({"ready": True})

    async def server_metadata(request: Request, request_id: str) -> Response:
        from .. import __version__

        return _JSON({"name": "nbtrail", "version": __version__,
                      "extensions": ["binary_tensor_data"]})

    async def model_metadata(request: Request, request_id: str) -> Response:
        check_model(request)
        return _JSON(metadata)

    async def model_ready(request: Request, request_id: str) -> Response:
        check_model(request)
        return _JSON({"name": bundle.name, "ready": True})

    async def infer(request: Request, request_id: str) -> Response:
        pinned = check_model(request)
        header, binary = split_binary(await read_body(request),
                                      request.headers.get(HEADER_LENGTH))
        parsed = parse_v2(decode_json(header, "the JSON part of the body"), binary, outputs)
        wanted = parsed.outputs or dict.fromkeys(outputs)
        answering, result, warnings = await run_model(
            columns_from_v2(parsed, signature), request_id,
            probabilities="predict_proba" in wanted, key=request_key(request), pinned=pinned)
        served = {"X-Model-Version": answering.version}
        if result.probabilities is None and "predict_proba" in wanted:
            # A challenger without probabilities: asked for, an error; by default, left out.
            if parsed.outputs:
                raise _RequestFailed(400, f"version {answering.version} answers no "
                                          "predict_proba; ask for predict only")
            wanted = {"predict": wanted["predict"]}
        arrays = {"predict": result.predictions, "predict_proba": result.probabilities}
        tensors = [v2_tensor(name, arrays[name], binary=parsed.binary(name))
                   for name in wanted]
        answer: dict[str, Any] = {"model_name": bundle.name,
                                  "model_version": answering.version,
                                  "id": parsed.id if parsed.id is not None else request_id,
                                  "outputs": [tensor for tensor, _ in tensors]}
        if warnings:
            answer["parameters"] = {"warnings": warnings}
        if not any(parsed.binary(name) for name in wanted):
            return _JSON(answer, headers=served)
        # Binary tensor data extension: the JSON part, then each output's bytes in order.
        head = encode_json(answer)
        raw = b"".join(data for _, data in tensors)
        return Response(head + raw, media_type="application/octet-stream",
                        headers={HEADER_LENGTH: str(len(head))} | served)

    async def predict(request: Request, request_id: str) -> Response:
        body = decode_json(await read_body(request))
        answering, result, warnings = await run_model(
            columns_from_plain(body), request_id, key=request_key(request, body))
        answer: dict[str, Any] = {"predictions": result.predictions.tolist()}
        if result.probabilities is not None:
            answer["probabilities"] = result.probability_rows()
        if warnings:
            answer["warnings"] = warnings
        answer["model_version"] = answering.version
        return _JSON(answer, headers={"X-Model-Version": answering.version})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    async def info(request: Request, request_id: str) -> Response:
        return _JSON({
            "model": bundle.name, "version": bundle.version, "signature": signature.spec,
            "lineage": bundle.lineage,
            "versions": [{"role": m.role, "version": m.version, "ref": m.ref,
                          "model_id": m.bundle.model_id, "share": m.share}
                         for m in routing.models],
            "endpoints": ["/predict", f"/v2/models/{bundle.name}/infer", "/v2/health/ready",
                          "/metrics"],
        })

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        request_id = request.headers.get("x-request-id") or f"req_{uuid.uuid4().hex}"
        return _error(status, f"{detail}: {request.method} {request.url.path}", request_id)

    routes = [
        Route("/", endpoint("info", info)),
        Route("/v2/health/live", endpoint("live", live)),
        Route("/v2/health/ready", endpoint("ready", ready)),
        Route("/v2", endpoint("server_metadata", server_metadata)),
        Route("/v2/", endpoint("server_metadata", server_metadata)),
        Route("/v2/models/{name}", endpoint("model_metadata", model_metadata)),
        Route("/v2/models/{name}/versions/{version}", endpoint("model_metadata",
                                                               model_metadata)),
        Route("/v2/models/{name}/ready", endpoint("model_ready", model_ready)),
        Route("/v2/models/{name}/versions/{version}/ready", endpoint("model_ready",
                                                                     model_ready)),
        Route("/v2/models/{name}/infer", endpoint("infer", infer), methods=["POST"]),
        Route("/v2/models/{name}/versions/{version}/infer", endpoint("infer", infer),
              methods=["POST"]),
        Route("/predict", endpoint("predict", predict), methods=["POST"]),
        Route("/metrics", metrics_endpoint),
    ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for shadow in shadows:
            shadow.start()
        yield
        for shadow in shadows:
            shadow.close()
        for batcher in batchers.values():
            batcher.close()
        if prediction_log is not None:
            prediction_log.close()

    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found},
                    lifespan=lifespan)
    app.state.bundle = bundle
    app.state.routing = routing
    app.state.prediction_log = prediction_log
    return app


def load_app(folder: str | Path, settings: ServeSettings, *, trusted: bool = False) -> Starlette:
    """Load the model folder (and the versions its ``routing.json`` names) and build its app."""
    return create_app(load_routing(folder, trusted=trusted), settings)
