"""``python -m nbtrail.serving MODEL_FOLDER``: the entry point of model images."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import NbtrailError
from ._app import ServeSettings
from ._server import serve


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m nbtrail.serving",
                                     description="Serve a model folder made by nt.package.")
    parser.add_argument("folder", help="the model folder (model file, signature.json, "
                                       "lineage.json)")
    parser.add_argument("--host", default=env("NBTRAIL_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("NBTRAIL_PORT", "8080")))
    parser.add_argument("--workers", type=int, default=int(env("NBTRAIL_WORKERS", "1")))
    parser.add_argument("--range-policy", choices=["warn", "reject"],
                        default=env("NBTRAIL_RANGE_POLICY", "warn"))
    parser.add_argument("--max-body-bytes", type=int,
                        default=int(env("NBTRAIL_MAX_BODY_BYTES", str(10 << 20))))
    parser.add_argument("--log-dir", default=env("NBTRAIL_PREDICTION_LOG"),
                        help="folder of the prediction log (default: no log)")
    parser.add_argument("--trusted", action="store_true",
                        default=env("NBTRAIL_TRUSTED") == "1",
                        help="allow a pickled model (unpickling runs its code)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments (or NBTRAIL_* environment variables) and serve."""
    args = _arguments(argv)
    settings = ServeSettings(range_policy=args.range_policy,
                             max_body_bytes=args.max_body_bytes, log_dir=args.log_dir)
    try:
        serve(args.folder, host=args.host, port=args.port, workers=args.workers,
              settings=settings, trusted=args.trusted)
    except NbtrailError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
