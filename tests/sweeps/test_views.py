"""The live notebook view leaves its final state as static HTML in the saved output."""

import optuna
import pytest
from IPython.core.displaypub import CapturingDisplayPublisher
from IPython.core.interactiveshell import InteractiveShell

import nbtrail as nt
from nbtrail.sweeps import _progress

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def notebook(monkeypatch, tmp_path):
    """An IPython shell whose display messages are kept, seen by nbtrail as a notebook."""
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    shell = InteractiveShell.instance()
    published = CapturingDisplayPublisher()
    monkeypatch.setattr(shell, "display_pub", published)
    monkeypatch.setattr(_progress, "in_notebook", lambda: True)
    yield published.outputs
    InteractiveShell.clear_instance()


def saved_outputs(messages):
    """The outputs a notebook saves: each display, replaced by later updates of its id."""
    outputs = []
    for message in messages:
        display_id = (message["transient"] or {}).get("display_id")
        if message["update"]:
            outputs = [(i, message["data"] if i == display_id else data)
                       for i, data in outputs]
        else:
            outputs.append((display_id, message["data"]))
    return [data for _, data in outputs]


def objective(trial):
    return trial.suggest_float("x", 0, 1)


def assert_final_static_view(messages, text):
    (data,) = saved_outputs(messages)
    # Only static mimetypes: a widget view would be picked by nbconvert and show as a blank.
    assert set(data) == {"text/html", "text/plain"}
    assert data["text/html"].startswith('<div class="nbtrail-sweep"')
    assert text in data["text/html"] and text in data["text/plain"]
    assert "<script" not in data["text/html"] and "done" in data["text/plain"]


def test_the_saved_output_of_a_sweep_is_its_final_html(store, notebook):
    nt.sweep(objective, n_trials=5, name="nb", sampler=optuna.samplers.RandomSampler(seed=0))
    assert_final_static_view(notebook, "nb: 5/5 trials · best")
    assert len(notebook) >= 2  # shown, then redrawn in place: live


def test_a_background_sweep_leaves_its_final_html_once_waited_for(store, notebook):
    sweep = nt.sweep(objective, n_trials=4, name="bg-nb", background=True)
    assert sweep.wait(60).trials().height == 4
    assert_final_static_view(notebook, "bg-nb: 4/4 trials · best")
    # The last drawing comes from the waiting thread: notebook runners such as nbconvert
    # only take the display updates of the cell that is executing.
    assert notebook[-1]["update"]
