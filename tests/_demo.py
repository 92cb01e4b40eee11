"""Build a demo project: a git repository whose store holds runs on two branches and a sweep.

Run as a script in a fresh interpreter (``python -P tests/_demo.py FOLDER``) so nothing of the
test process (trackers, settings, cwd) leaks into it; only nbtrail's public API is used.
The store is the one nt picks from the repository: ``FOLDER/.nbtrail``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def build_in_subprocess(repo: Path) -> Path:
    """Build the demo project at ``repo`` in a fresh interpreter; return its store folder."""
    src = Path(__file__).resolve().parents[1] / "src"
    env = {k: v for k, v in os.environ.items() if k != "NBTRAIL_HOME"}
    env["PYTHONPATH"] = str(src)
    # -P: the script's folder (tests/, whose packages shadow PyPI names) stays off sys.path.
    result = subprocess.run([sys.executable, "-P", __file__, str(repo)], env=env,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise AssertionError(f"building the demo store failed:\n{result.stderr}")
    return repo / ".nbtrail"


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def build(repo: Path) -> None:
    """Runs on main and feat/more-trees, a failed run, and a sweep of five trials."""
    import numpy as np
    import optuna
    import polars as pl
    from sklearn.linear_model import LogisticRegression

    import nbtrail as nt

    repo.mkdir(parents=True, exist_ok=True)
    os.chdir(repo)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.email", "demo@example.com")
    _git(repo, "config", "user.name", "demo")
    (repo / "train.py").write_text("C = 1.0\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "baseline")

    rng = np.random.default_rng(0)
    frame = pl.DataFrame({"age": rng.normal(40, 10, 300), "income": rng.normal(50, 15, 300),
                          "plan": rng.choice(["basic", "pro"], 300).tolist()})
    X = frame.select("age", "income").to_pandas()  # the model learns its feature names
    y = (frame["age"] + frame["income"] > 90).to_numpy()

    def train(name: str, C: float, losses: list[float]) -> None:
        model = LogisticRegression(C=C, max_iter=200).fit(X, y)
        with nt.run(name=name, tags={"team": "risk"}) as run:
            run.log_params({"C": C, "solver": "lbfgs"})
            for step, loss in enumerate(losses):
                run.log_metric("loss", loss, step=step)
            run.log_metric("val_f1", round(float(model.score(X, y)) * min(C, 1.5) / 1.5, 4))
            run.log_dataset(frame, name="customers", role="train")
            run.log_model(model, name="churn", input_example=frame.select("age", "income")
                          .head(5))
            notes = repo / "notes.txt"
            notes.write_text(f"{name}: C={C}\n")
            run.log_artifact(notes, name="notes.txt")
            notes.unlink()

    train("baseline", 1.0, [0.9, 0.6, 0.45, 0.4, 0.38])
    train("strong-reg", 0.1, [0.95, 0.75, 0.66, 0.62, 0.6])
    _git(repo, "switch", "-q", "-c", "feat/more-trees")
    (repo / "train.py").write_text("C = 3.0\nTREES = 200\n")
    _git(repo, "commit", "-qam", "more trees")
    train("more-trees", 3.0, [0.85, 0.5, 0.35, 0.3, 0.28, 0.27])
    _git(repo, "switch", "-q", "main")
    try:
        with nt.run(name="crashed") as run:
            run.log_param("C", -1)
            raise ValueError("C must be positive")
    except ValueError:
        pass

    def objective(trial: optuna.Trial) -> float:
        C = trial.suggest_float("C", 0.01, 10, log=True)
        for step in range(3):
            trial.report(1 - 0.1 / (step + 1) / C, step)
        return float(LogisticRegression(C=C, max_iter=200).fit(X, y).score(X, y))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    nt.sweep(objective, n_trials=5, name="c-search", direction="maximize", progress=False,
             sampler=optuna.samplers.RandomSampler(seed=0))
    nt.sync()


if __name__ == "__main__":
    build(Path(sys.argv[1]).resolve())
