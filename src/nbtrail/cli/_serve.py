"""Sharing and shipping: ``nbtrail dashboard``, ``nbtrail package`` and ``nbtrail serve``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import InvalidInputError
from . import _render as render
from ._common import (
    PROG,
    Options,
    add_command,
    non_negative_int,
    open_store,
    positive_int,
    progress_line,
)


def register(commands: Any, options: Options) -> None:
    """Add ``dashboard``, ``package`` and ``serve`` to the ``nbtrail`` commands."""
    _add_dashboard(commands, options)
    _add_package(commands, options)
    _add_serve(commands, options)


# -- dashboard --------------------------------------------------------------------------


def _add_dashboard(commands: Any, options: Options) -> None:
    dashboard = add_command(
        commands, "dashboard", _dashboard, [options.store],
        help="serve the read-only team dashboard (needs nbtrail[dashboard])",
        description="Serve a Panel dashboard over the store: runs, run details, comparison, "
                    "branches, sweeps, lineage, monitoring, the model registry and serving "
                    "packages' live view. It never "
                    "writes to the store; on a folder where nothing was logged yet it starts "
                    "empty, with a hint.",
    )
    dashboard.add_argument("--port", metavar="N", type=non_negative_int, default=5006,
                           help="the port to listen on, 0 for any free one (default: 5006)")
    dashboard.add_argument("--address", metavar="HOST", default="127.0.0.1",
                           help="the address to listen on (default: 127.0.0.1; 0.0.0.0 "
                                "shares it on the network: set --basic-auth or --token)")
    access = dashboard.add_mutually_exclusive_group()
    access.add_argument("--basic-auth", metavar="USER:PASS", type=_user_password,
                        help="require this user name and password (HTTP basic auth)")
    access.add_argument("--token", metavar="T",
                        help="require this token (?token=T once, or an Authorization: "
                             "Bearer T header)")
    dashboard.add_argument("--show", action="store_true", help="open it in a browser")


def _user_password(text: str) -> tuple[str, str]:
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise argparse.ArgumentTypeError("expected USER:PASSWORD, both non-empty")
    return user, password


def _dashboard(args: argparse.Namespace) -> int:
    from ..dashboards import serve

    # No existence check, unlike the reading commands: the dashboard starts on a store
    # where nothing was logged yet and says how to log the first run.
    store = open_store(args, must_exist=False, read_only=True)
    serve(store, port=args.port, address=args.address, basic_auth=args.basic_auth,
          token=args.token, show=args.show)
    return 0


# -- package ----------------------------------------------------------------------------


def _add_package(commands: Any, options: Options) -> None:
    package = add_command(
        commands, "package", _package, [options.store, options.json],
        help="turn a logged model into a container build context (and image)",
        description="Write a build context for the model (Dockerfile, pinned lockfile, the "
                    "model in skops format, its signature and lineage, the server, "
                    "Kubernetes manifests) and build the image when podman or docker answers.",
    )
    package.add_argument("ref", metavar="RUN_OR_MODEL",
                         help="a model id (mdl_...), a registry reference (churn@champion, "
                              "churn/3) or a run id (its latest model)")
    package.add_argument("--name", help="image and Kubernetes name (default: the model's name)")
    package.add_argument("--output", metavar="DIR",
                         help="the context folder (default: dist/NAME)")
    package.add_argument("--base-image", metavar="IMAGE",
                         help="default: python:<training Python>-slim")
    package.add_argument("--build", action=argparse.BooleanOptionalAction, default=None,
                         help="build the image (default: when a container engine answers)")
    package.add_argument("--trusted", action="store_true",
                         help="allow a pickled model (its code runs when the server loads it)")
    package.add_argument("--shadow", metavar="REF", action="append", default=[],
                         help="also serve this version as a shadow: it sees every request, "
                              "its answers are only logged (repeatable)")
    package.add_argument("--canary", metavar="REF=SHARE", action="append", default=[],
                         type=_canary,
                         help="let this version answer SHARE of the requests, e.g. "
                              "churn@challenger=0.1 (repeatable)")
    package.add_argument("--allow-schema-change", action="store_true",
                         help="serve challengers whose input columns differ from the "
                              "champion's")


def _canary(text: str) -> tuple[str, float]:
    ref, sep, share = text.rpartition("=")
    try:
        value = float(share)
    except ValueError:
        value = None
    if not sep or not ref or value is None:
        raise argparse.ArgumentTypeError("expected REF=SHARE, e.g. churn@challenger=0.1")
    return ref, value


def _package(args: argparse.Namespace) -> int:
    from ..packaging._api import package

    canary = dict(args.canary)
    if len(canary) < len(args.canary):
        raise InvalidInputError("--canary names one reference twice; give each one share")

    result = package(
        args.ref, name=args.name, output=args.output, base_image=args.base_image,
        build=args.build, trusted=args.trusted, shadow=args.shadow,
        canary=canary, allow_schema_change=args.allow_schema_change,
        progress=None if args.json else lambda step, _: progress_line(step),
        store=open_store(args),
    )
    if args.json:
        render.print_json(result.to_dict())
        return 0
    print(f"package {result.package_id}\ncontext {result.context}")
    if result.image is not None:
        print(f"image   {result.image.tag}\ndigest  {result.image.digest}\n"
              f"size    {render.format_size(result.image.size_bytes)}")
    else:
        if result.engine_missing:
            print("no container engine answers here (podman info / docker info), so the "
                  "image was not built", file=sys.stderr)
        print(f"build   {result.build_command}")
    return 0


# -- serve ------------------------------------------------------------------------------


def _add_serve(commands: Any, options: Options) -> None:
    serve = add_command(
        commands, "serve", _serve, [options.store],
        help="serve a packaged model over HTTP (KServe V2 and POST /predict)",
        description="Serve a package folder, its model folder, or a logged model by id, "
                    "without a container.",
    )
    serve.add_argument("source", metavar="DIR_OR_RUN",
                       help=f"a folder made by {PROG} package, a model or run id, or a "
                            "registry reference (churn@champion)")
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    serve.add_argument("--port", type=non_negative_int, default=8080, help="default: 8080")
    serve.add_argument("--workers", type=positive_int, default=1,
                       help="worker processes (default: 1)")
    serve.add_argument("--range-policy", choices=["warn", "reject"], default="warn",
                       help="values outside the training range: warn (default) or reject")
    serve.add_argument("--log-dir", metavar="DIR", help="keep a prediction log in DIR")
    serve.add_argument("--max-body-bytes", type=positive_int, default=10 << 20,
                       help="larger requests get 413 (default: 10 MiB)")
    serve.add_argument("--trusted", action="store_true",
                       help="allow a pickled model (its code runs when loaded)")


def _serve(args: argparse.Namespace) -> int:
    from ..packaging._local import serve

    # A package folder needs no store: it is only read if SOURCE is a model or run id.
    serve(args.source, host=args.host, port=args.port, workers=args.workers,
          range_policy=args.range_policy, log_dir=args.log_dir,
          max_body_bytes=args.max_body_bytes, trusted=args.trusted,
          store=open_store(args, must_exist=False))
    return 0
