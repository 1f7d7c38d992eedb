"""`pixret-desktop --self-test`, in-process (the frozen build's run is packaging/smoke.sh)."""
from __future__ import annotations

import io
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before the self-test's window creates the QApplication

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import engine.pipeline as pipeline  # noqa: E402
from pixret_desktop import selftest  # noqa: E402

SMALL = {"n_objects": 1, "views": 4, "n_distractors": 4, "seed": 0}  # the failure tests need no full demo


def test_self_test_passes_on_the_real_engine_and_window(tmp_path):
    out = io.StringIO()
    code = selftest.run_self_test(out, workdir=tmp_path)
    report = out.getvalue()
    assert code == 0, report
    for step in ("imports", "demo images", "index", "search", "main window"):
        assert f"[ ok ] {step}" in report, report
    assert "FAIL" not in report and "self-test passed" in report
    assert "27 images indexed" in report and "27 images listed" in report  # the full demo collection
    assert "platform offscreen" in report


def test_a_search_without_hits_fails_the_self_test(tmp_path, monkeypatch):
    def no_hits(project, query, **kwargs):
        return pipeline.SearchResult(query, kwargs.get("method", "sv"), ())

    monkeypatch.setattr(pipeline, "search", no_hits)
    out = io.StringIO()
    code = selftest.run_self_test(out, workdir=tmp_path, demo_options=SMALL, gui=False)
    report = out.getvalue()
    assert code != 0
    assert "[FAIL] search" in report and "returned no hits" in report, report
    assert "self-test FAILED (search)" in report


def test_wrong_hits_and_regions_fail_the_self_test(tmp_path, monkeypatch):
    """Hits that came back but are not the object's views, or are badly outlined, are failures."""
    real = pipeline.search

    def shifted(project, query, **kwargs):
        result = real(project, query, **kwargs)
        moved = tuple(pipeline.Hit(h.image_id, h.path, h.score, h.region.transform(
            np.array([[1.0, 0, 400], [0, 1, 0], [0, 0, 1]])) if h.region is not None else None, h.evidence, h.stage)
            for h in result.hits)
        return pipeline.SearchResult(result.query, result.method, moved, result.uncertainty, result.timings)

    monkeypatch.setattr(pipeline, "search", shifted)
    out = io.StringIO()
    assert selftest.run_self_test(out, workdir=tmp_path, demo_options=SMALL, gui=False) == 1
    assert "[FAIL] search" in out.getvalue() and "IoU <= 0.5" in out.getvalue(), out.getvalue()


def test_an_exception_in_a_step_is_reported_and_fails(tmp_path, monkeypatch):
    import engine.project

    def broken(*args, **kwargs):
        raise RuntimeError("the catalog is on fire")

    monkeypatch.setattr(engine.project.Project, "create", broken)
    out = io.StringIO()
    assert selftest.run_self_test(out, workdir=tmp_path, demo_options=SMALL, gui=False) == 1
    report = out.getvalue()
    assert "[FAIL] index" in report and "RuntimeError: the catalog is on fire" in report, report
    assert "search" not in report.split("[FAIL] index")[1].split("\n", 1)[0]  # later engine steps not run


def test_command_line_flags(monkeypatch, capsys):
    from pixret_desktop import __version__
    from pixret_desktop.app import build_parser, main

    monkeypatch.setattr(selftest, "main", lambda: 3)
    assert main(["--self-test"]) == 3
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"pixret-desktop {__version__}"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--self-test", "--demo"])


def test_the_self_test_checks_a_team_catalog_on_a_real_postgresql_server(tmp_path, monkeypatch, pg_url):
    from sqlalchemy import select

    import engine.annotate.review as review
    from engine.catalog.tables import QueryRow
    from engine.project import Project

    monkeypatch.setenv(selftest.TEAM_DB_VAR, pg_url)
    out = io.StringIO()
    code = selftest.run_self_test(out, workdir=tmp_path, demo_options=SMALL, gui=False)
    report = out.getvalue()
    assert code == 0, report
    assert "[ ok ] team catalog" in report and "postgresql+psycopg database" in report, report
    assert "psycopg 3." in report and "libpq" in report  # the imports step names the client it loaded
    # the search and its decision are on the server, in a project of the demo's images
    with Project.open(tmp_path / "team-project", db_url=pg_url) as project:
        assert len(project.indexed_images()) == 8
        with project.catalog.session() as session:
            (qid,) = session.scalars(select(QueryRow.id)).all()
        assert [d.kind for d in review.decisions(project, qid).values()] == ["accepted"]
