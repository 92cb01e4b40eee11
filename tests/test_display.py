"""Rich display is static HTML with everything escaped."""

import pytest

import nbtrail as nt
from nbtrail import cli

from .conftest import git

HOSTILE = '<script>alert("x")</script>" onmouseover="boom'


def test_run_html_escapes_hostile_names_and_values(home):
    with nt.run(name=HOSTILE, tags={HOSTILE: HOSTILE}) as run:
        run.log_params({HOSTILE: HOSTILE})
        run.log_metric(HOSTILE, 1.0)
    html = nt.get_run(run.run_id)._repr_html_()
    assert "<script" not in html
    assert 'onmouseover="boom' not in html
    assert "&lt;script&gt;" in html
    for banned in ("<iframe", "http://", "https://"):
        assert banned not in html


def test_lineage_html_is_static(home):
    with nt.run(name=HOSTILE) as run:
        pass
    html = nt.lineage(run.run_id, direction="both")._repr_html_()
    assert "<script" not in html and "&lt;script&gt;" in html


def _runs_without_git(tmp_path, monkeypatch):
    """A run made outside git, and a run with its child made with capture off in a repo."""
    with nt.run(name="outside") as outside:
        pass
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "-c", "user.name=Ada", "-c", "user.email=ada@example.com",
        "commit", "-q", "--allow-empty", "-m", "start")
    monkeypatch.chdir(repo)
    with nt.config(capture_git=False), nt.run(name="off") as off, nt.run(name="child") as child:
        pass
    with nt.run(name="captured") as captured:
        pass
    return [nt.get_run(r.run_id) for r in (outside, off, child, captured)]


def test_a_run_without_git_says_why(home, tmp_path, monkeypatch, capsys):
    outside, off, child, captured = _runs_without_git(tmp_path, monkeypatch)
    assert outside.git is None and off.git is None and child.git is None
    assert outside.git_note == "not in a git repository"
    assert off.git_note == child.git_note == "not recorded: git capture was off (capture_git=False)"
    assert captured.git is not None and captured.git_note is None
    assert "not in a git repository" in outside._repr_html_()
    assert "git capture was off" in off._repr_html_()
    assert "git capture was off" not in captured._repr_html_()
    assert "not in a git repository" not in off._repr_html_()

    # The sidebar's run view shows the server's note, `nbtrail runs show` prints it.
    from nbtrail.server._runs import run_details
    from nbtrail.tracking._tracker import get_tracker

    store = get_tracker().store
    assert run_details(store, off.run_id)["run"]["git_note"] == off.git_note
    assert run_details(store, captured.run_id)["run"]["git_note"] is None
    for run in (outside, off):
        assert cli.main(["--store", str(home), "runs", "show", run.run_id]) == 0
        assert f"  ({run.git_note})" in capsys.readouterr().out.splitlines()


def test_a_run_goes_on_without_git_when_git_refuses_the_repository(home, monkeypatch):
    # As git does in a repository another user owns ("dubious ownership"), common in
    # containers: the run is recorded without git state, and says why.
    from nbtrail.errors import GitError
    from nbtrail.tracking import _git

    refusal = ("`git rev-parse --show-toplevel` failed in /repo: fatal: detected dubious "
               "ownership in repository at '/repo'")

    def refuse(start):
        raise GitError(f"{refusal}\nTo add an exception for this directory, call: ...")

    monkeypatch.setattr(_git, "capture_git", refuse)
    with (pytest.warns(UserWarning, match="git state not recorded: .*dubious ownership"),
          nt.run(name="refused") as run):
        pass
    got = nt.get_run(run.run_id)
    assert got.status == "finished" and got.git is None
    assert got.git_note == f"not recorded: git failed: {refusal}"
    assert "dubious ownership" in got._repr_html_()
