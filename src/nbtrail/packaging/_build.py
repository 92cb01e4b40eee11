"""Building the image with whichever container engine is present: podman, else docker."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import ProcessError

_ENGINES = ("podman", "docker")


class BuildError(ProcessError):
    """The container engine failed to build the image; the message quotes its output."""


@dataclass(frozen=True)
class Image:
    """A built image."""

    tag: str
    digest: str
    size_bytes: int
    engine: str

    def to_dict(self) -> dict[str, object]:
        """Plain values, ready for JSON."""
        return {"tag": self.tag, "digest": self.digest, "size_bytes": self.size_bytes,
                "engine": self.engine}


def find_engine() -> str | None:
    """The first engine that answers (a docker client without a daemon does not)."""
    for name in _ENGINES:
        path = shutil.which(name)
        if path is None:
            continue
        try:
            answered = subprocess.run([path, "info"], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if answered.returncode == 0:
            return name
    return None


def build_command(engine: str, context: Path, tag: str, isolation: str | None) -> list[str]:
    """The build command line for ``engine``."""
    if engine == "podman":
        # The docker format keeps HEALTHCHECK, which the OCI image format has no field for.
        command = ["podman", "build", "--format", "docker"]
        if isolation:
            command += ["--isolation", isolation]
        return [*command, "-t", tag, str(context)]
    return [engine, "build", "-t", tag, str(context)]


def as_text(command: list[str]) -> str:
    """A command line to copy into a shell."""
    return shlex.join(command)


def build(engine: str, context: Path, tag: str, *, isolation: str | None,
          on_output: Callable[[str], None] | None = None) -> Image:
    """Build ``context`` as ``tag`` and inspect the result."""
    command = build_command(engine, context, tag, isolation)
    tail: list[str] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace") as process:
        assert process.stdout is not None
        for line in process.stdout:
            tail = [*tail[-39:], line.rstrip()]
            if on_output is not None:
                on_output(line.rstrip())
    if process.returncode != 0:
        raise BuildError(f"{as_text(command)} failed with exit code {process.returncode}; "
                         "its last lines:\n" + "\n".join(tail))
    inspected = subprocess.run([engine, "image", "inspect", tag], capture_output=True,
                               text=True, check=False)
    if inspected.returncode != 0:
        raise BuildError(f"the image {tag} was built but cannot be inspected: "
                         f"{inspected.stderr.strip()}")
    info = json.loads(inspected.stdout)[0]
    digest = info.get("Digest") or info.get("Id", "")
    if digest and ":" not in digest:
        digest = f"sha256:{digest}"
    return Image(tag=tag, digest=digest, size_bytes=int(info.get("Size", 0)), engine=engine)
