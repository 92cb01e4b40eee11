"""A store of two runs with figures, a 20-step image series, an image with a hostile name,
tables, texts and dicts.

The server, sidebar and dashboard tests read it; built in the test's own process (through
nbtrail's public API) and closed before a server opens it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

import nbtrail as nt

STEPS = 20
HOSTILE = '<img src=x onerror="alert(1)">'


def sample(step: int, tint: int) -> np.ndarray:
    """A 32×32 RGB image that differs per step (its red channel is the step)."""
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, :, 0] = step * 10
    image[:, :, 1] = np.linspace(0, 255, 32, dtype=np.uint8)
    image[:, :, 2] = tint
    return image


def build_media_store(home: Path) -> dict[str, str]:
    """Runs ``gallery`` and ``gallery-b`` in a store at ``home``; their ids by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with nt.config(home=str(home), capture_git=False, capture_environment=False):
        ids = {}
        for name, tint in (("gallery", 0), ("gallery-b", 200)):
            with nt.run(name=name) as run:
                fig, ax = plt.subplots(figsize=(3, 2))
                ax.plot([0, 1, 4, 9] if tint == 0 else [9, 4, 1, 0])
                ax.set_title(name)
                run.log_figure(fig, "curve")
                plt.close(fig)
                for step in range(STEPS):
                    run.log_image(sample(step, tint), "samples", step=step)
                # Its name is markup, and needs escaping in a URL path (a quote, a space).
                run.log_image(sample(0, tint), HOSTILE)
                run.log_table(pd.DataFrame({
                    "id": range(50), "score": np.linspace(0, 1, 50),
                    HOSTILE: ["<b>bold?</b>"] * 50}), "predictions")
                run.log_text(f"# Notes of {name}\n\n{HOSTILE}\n", "notes.md")
                run.log_text("<html><script>alert(1)</script></html>", "page.html")
                run.log_dict({"lr": 0.1, "layers": [64, 32]}, "config.yaml")
                ids[name] = run.run_id
        nt.sync()
    return ids
