"""Rich display is static HTML with everything escaped."""

import nbtrail as nt

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
