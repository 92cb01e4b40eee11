"""Progress of a sweep: a live view in a notebook, a progress line in a script.

Both show the same state — trials done of the total, the best value so far and, in the
notebook, a chart of the value of each trial — from one :class:`Progress` object that the
sweep feeds with finished trials. The HTML is static (no script): the notebook view is
that HTML redrawn in place, so the saved notebook shows the final state in every viewer.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import TYPE_CHECKING, Protocol

from .._html import escape
from ._trials import constraints, is_feasible

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

# Redraw at most this often: a sweep of fast trials must not spend its time drawing.
MIN_REDRAW_SECONDS = 0.25
FINISHED_STATES = ("complete", "pruned", "fail")


class Progress:
    """What the views show, built from the study's trials (thread-safe).

    Counts are of the trials this session ran (``mine``), out of its ``total``; the best
    value and the chart cover the whole study, other sessions and workers included.
    """

    def __init__(self, name: str, directions: list[str], total: int | None) -> None:
        self.name = name
        self.directions = directions
        self.total = total
        # number -> (state, first value, mine, feasible)
        self._trials: dict[int, tuple[str, float | None, bool, bool]] = {}
        self._lock = threading.Lock()
        self.finished = False

    def add(self, trial: FrozenTrial, *, mine: bool) -> None:
        """Count a trial; the same trial again replaces its earlier state."""
        state = trial.state.name.lower()
        value = trial.values[0] if trial.values else None
        feasible = is_feasible(constraints(trial).values())
        with self._lock:
            self._trials[trial.number] = (state, value, mine, feasible)

    def counts(self) -> dict[str, int]:
        """Trials of this session per state (complete, pruned, fail); ``study``: all finished."""
        with self._lock:
            states = [state for state, _, mine, _ in self._trials.values() if mine]
            study = sum(1 for state, *_ in self._trials.values() if state in FINISHED_STATES)
        counts = {state: states.count(state) for state in FINISHED_STATES}
        counts["study"] = study
        return counts

    def points(self, *, feasible_only: bool = False) -> list[tuple[int, float]]:
        """(trial number, first objective value) of the study's complete trials, in order."""
        with self._lock:
            return sorted((n, v) for n, (s, v, _, feasible) in self._trials.items()
                          if s == "complete" and v is not None and math.isfinite(v)
                          and (feasible or not feasible_only))

    def best(self) -> tuple[int, float] | None:
        """The best complete trial of a single-objective sweep (feasible, as Optuna's)."""
        points = self.points(feasible_only=True)
        if not points or len(self.directions) != 1:
            return None
        pick = max if self.directions[0] == "maximize" else min
        return pick(points, key=lambda p: p[1])

    def summary(self) -> str:
        """One line: ``rf: 12/50 trials · best 0.93 (trial 7) · 3 pruned · 1 failed``."""
        counts = self.counts()
        done = sum(counts[s] for s in FINISHED_STATES)
        parts = [f"{self.name}: {done}/{self.total} trials" if self.total else
                 f"{self.name}: {done} trials"]
        best = self.best()
        if best is not None:
            parts.append(f"best {best[1]:.6g} (trial {best[0]})")
        elif len(self.directions) > 1:
            parts.append(f"{len(self.directions)} objectives")
        parts += [f"{counts[s]} {label}" for s, label in (("pruned", "pruned"), ("fail", "failed"))
                  if counts[s]]
        if counts["study"] > done:
            parts.append(f"{counts['study']} in the study")
        if self.finished:
            parts.append("done")
        return " · ".join(parts)

    def html(self) -> str:
        """Static HTML: a progress bar, the summary and a chart of value per trial."""
        counts = self.counts()
        done = sum(counts[s] for s in FINISHED_STATES)
        share = min(done / self.total, 1.0) if self.total else (1.0 if self.finished else 0.0)
        bar = (
            '<div style="width:320px;height:8px;background:#e5e7eb;border-radius:4px;'
            f'margin:4px 0"><div style="width:{share * 100:.1f}%;height:8px;'
            'background:#2563eb;border-radius:4px"></div></div>'
        )
        # The class marks a sweep's view for tests of converted notebooks and for styling.
        return (f'<div class="nbtrail-sweep" style="font-family:sans-serif;font-size:12px">'
                f"<div>{escape(self.summary())}</div>{bar}{self._chart()}</div>")

    def _chart(self, width: int = 320, height: int = 110, pad: int = 6) -> str:
        points = self.points()
        if not points:
            return ""
        numbers = [n for n, _ in points]
        values = [v for _, v in points]
        n_lo, n_hi = min(numbers), max(max(numbers), min(numbers) + 1)
        v_lo, v_hi = min(values), max(values)
        if v_hi == v_lo:
            v_lo, v_hi = v_lo - 1, v_hi + 1

        def xy(n: float, v: float) -> tuple[str, str]:
            x = pad + (n - n_lo) / (n_hi - n_lo) * (width - 2 * pad)
            y = height - pad - (v - v_lo) / (v_hi - v_lo) * (height - 2 * pad)
            return f"{x:.1f}", f"{y:.1f}"

        dots = "".join('<circle cx="{}" cy="{}" r="2" fill="#2563eb"/>'.format(*xy(n, v))
                       for n, v in points)
        best_line = ""
        feasible = self.points(feasible_only=True)
        if len(self.directions) == 1 and feasible:
            pick = max if self.directions[0] == "maximize" else min
            running: list[str] = []
            best = feasible[0][1]
            for n, v in feasible:  # as best(): an infeasible trial is never the best
                best = pick(best, v)
                running.append(",".join(xy(n, best)))
            best_line = (f'<polyline points="{" ".join(running)}" fill="none" '
                         'stroke="#dc2626" stroke-width="1.5"/>')
        label = (f"value per trial ({v_lo:.4g} … {v_hi:.4g})"
                 + (", red: best so far" if best_line else ""))
        return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
                f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(label)}" '
                f'style="border:1px solid #e5e7eb">{dots}{best_line}</svg>'
                f'<div style="color:#6b7280">{escape(label)}</div>')


class View(Protocol):
    """Something that shows a :class:`Progress` and is told when it changed."""

    def update(self) -> None:
        """Redraw (views may skip redraws that come too fast)."""

    def close(self) -> None:
        """Draw the final state."""


class _Throttle:
    def __init__(self) -> None:
        self._last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last < MIN_REDRAW_SECONDS:
            return False
        self._last = now
        return True


class TextView:
    """A progress line on stderr, rewritten in place on a terminal."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._throttle = _Throttle()
        self._tty = sys.stderr.isatty()
        self._width = 0

    def update(self) -> None:
        """Rewrite the line (a terminal) or print a new one (a log), at most 4 times a second."""
        if self._throttle.due():
            self._write(final=False)

    def close(self) -> None:
        """Print the final line."""
        self._write(final=True)

    def _write(self, *, final: bool) -> None:
        line = self.progress.summary()
        if self._tty:
            sys.stderr.write("\r" + line.ljust(self._width) + ("\n" if final else ""))
            self._width = len(line)
        elif final or not self.progress.total or self._logged_share():
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def _logged_share(self) -> bool:
        # In a log, one line per tenth of the sweep is enough.
        counts = self.progress.counts()
        done = sum(counts[s] for s in FINISHED_STATES)
        step = max(1, (self.progress.total or 1) // 10)
        return done % step == 0


class NotebookView:
    """A live view that is also its own static, final output in the saved notebook.

    One display output of ``text/html`` (and ``text/plain``), redrawn in place through an
    IPython display handle: JupyterLab, VS Code and Colab update it live (from a
    background sweep's thread too), and whatever the notebook saves is the last drawing,
    which nbconvert, GitHub and any other viewer show as it is. No ipywidget on purpose:
    a widget's saved output is a widget-view reference that viewers without a widget
    frontend render as a blank, and they pick it over the HTML beside it.
    """

    def __init__(self, progress: Progress) -> None:
        from IPython.display import display

        self.progress = progress
        self._throttle = _Throttle()
        self._handle = display(self._bundle(), raw=True, display_id=True)

    def _bundle(self) -> dict[str, str]:
        return {"text/plain": self.progress.summary(), "text/html": self.progress.html()}

    def update(self) -> None:
        """Redraw the output in place, at most 4 times a second."""
        if self._throttle.due():
            self._handle.update(self._bundle(), raw=True)

    def close(self) -> None:
        """Draw the final state: what the saved notebook keeps."""
        self._handle.update(self._bundle(), raw=True)


class NullView:
    """Shows nothing (``progress=False``)."""

    def update(self) -> None:
        """Nothing to redraw."""

    def close(self) -> None:
        """Nothing to draw."""


def in_notebook() -> bool:
    """True inside a Jupyter kernel (not a terminal IPython)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def make_view(progress: Progress, enabled: bool) -> View:
    """The view that fits where the code runs."""
    if not enabled:
        return NullView()
    return NotebookView(progress) if in_notebook() else TextView(progress)
