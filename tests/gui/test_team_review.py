"""A team project in the window (issue 18): another annotator's decisions appear on their own, a
decision made on a stale view asks before replacing theirs, every decision shows who made it;
File ▸ Open Team Project keeps the password out of the settings."""
from __future__ import annotations

import os
import stat

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox
from sqlalchemy.engine import make_url

import engine.annotate.review as review
from engine.base.regions import Region
from engine.base.types import Query
from engine.pipeline import search
from engine.project import Project
from pixret_desktop import credentials
from tests.gui.conftest import WAIT_MS
from tests.gui.test_review_flow import click_row


def evidence_rows(window) -> dict[str, object]:
    tree = window.evidence
    out = {}
    for i in range(tree.topLevelItemCount()):
        item = tree.topLevelItem(i)
        out[item.text(0)] = [item.child(k).text(1) for k in range(item.childCount())] or item.text(1)
    return out


def open_in_window(qtbot, ctl, project, db, qid):
    with qtbot.waitSignal(ctl.review_ctl.result_shown, timeout=WAIT_MS, check_params_cb=lambda q: q == qid):
        if db:
            ctl.open_team_project(db, project.folder)
        else:
            ctl.open_project(project.folder)
    qtbot.waitUntil(lambda: ctl.results.root is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: ctl.review_ctl.watcher is not None and ctl.review_ctl.watcher.listening.is_set(),
                    timeout=WAIT_MS)


def test_others_decisions_appear_and_a_stale_decision_asks_first(qtbot, make_window, team_project,
                                                                small_collection):
    project, db = team_project
    rel, poly = small_collection.query("object1")
    result = search(project, Query(project.image_id(rel), Region.from_polygons([poly])), top_k=10)
    qid = review.save_search(project, result)
    window, ctl = make_window()
    ctl.apply_settings({"author": "zoe"})
    open_in_window(qtbot, ctl, project, db, qid)
    colleague = Project.open(project.folder, db_url=db)  # ana, at another desk
    try:
        # ana rejects a hit: the window shows it within seconds, and who did it
        x = result.hits[2].image_id
        review.set_decision(colleague, qid, x, "rejected", author="ana")
        qtbot.waitUntil(lambda: ctl.results.status_of(x) == "rejected", timeout=WAIT_MS)
        assert window.statusBar().currentMessage() == f"ana rejected {result.hits[2].path.rsplit('/', 1)[-1]}"
        tip = ctl.results.data(ctl.results.index(ctl.results.row_of(x)), Qt.ToolTipRole)
        assert "by ana just now" in tip

        # zoe opens another hit; before her window hears of it, ana accepts it
        ctl.review_ctl.stop_watching()
        y = result.hits[1]
        with qtbot.waitSignal(ctl.canvas_ctl.image_loaded, timeout=WAIT_MS):
            click_row(qtbot, window.results, ctl.results.row_of(y.image_id))
        review.set_decision(colleague, qid, y.image_id, "accepted", y.region, author="ana")
        # zoe rejects it, on her stale view: asked, not overwritten
        with qtbot.waitSignal(ctl.review_ctl.conflict, timeout=WAIT_MS):
            qtbot.keyClick(window.canvas, Qt.Key_R)
        box = next(d for d in ctl.dialogs if d.objectName() == "conflict_box")
        assert f"{y.path}: changed by ana just now: unreviewed -> accepted" in box.text()
        assert ctl.results.status_of(y.image_id) == "accepted"  # theirs, as the catalog has it
        assert [d.author for d in review.history(project, qid, y.image_id)] == ["ana"]

        # "Use mine": her rejection goes in knowingly; ana's acceptance stays in the history
        with qtbot.waitSignal(ctl.review_ctl.decision_saved, timeout=WAIT_MS,
                              check_params_cb=lambda i, k: k == "rejected"):
            box.findChild(type(box.defaultButton()), "use_mine").click()
        assert [(d.kind, d.author) for d in review.history(project, qid, y.image_id)] == [("accepted", "ana"),
                                                                                          ("rejected", "zoe")]
        assert ctl.results.status_of(y.image_id) == "rejected"

        # the evidence panel says who decided, and the history
        window.act_evidence.trigger()
        qtbot.waitUntil(lambda: "history" in evidence_rows(window), timeout=WAIT_MS)
        rows = evidence_rows(window)
        assert rows["decided"] == "rejected by zoe just now"
        assert rows["history"] == "rejected by zoe just now, accepted by ana just now"  # newest first
    finally:
        colleague.close()


def test_open_team_project_keeps_the_password_out_of_the_settings(qtbot, make_window, pg_project, settings):
    window, ctl = make_window()
    url = pg_project.catalog.url
    dlg = ctl.ask_open_team_project()
    dlg.url.setText(url)
    dlg.password.setText("s3cret-pw")  # the test server trusts its socket; the password still travels
    dlg.remember.setChecked(True)
    dlg.folder.setText(str(pg_project.folder))
    with qtbot.waitSignal(ctl.project_ctl.images_loaded, timeout=WAIT_MS):
        dlg.buttons.button(QDialogButtonBox.Open).click()
    assert ctl.project.folder == pg_project.folder
    assert ctl.project.catalog.engine.dialect.name == "postgresql"
    assert ctl.images.total == len(pg_project.images())

    settings.q.sync()
    stored = open(settings.q.fileName(), encoding="utf-8").read()
    assert "s3cret-pw" not in stored
    assert settings.recent_team_projects() == [(credentials.without_password(url), str(pg_project.folder))]
    passfile = settings.password_file()
    assert stat.S_IMODE(os.stat(passfile).st_mode) == 0o600
    assert credentials.lookup(passfile, url) == "s3cret-pw"

    # next time the dialog offers the project, and the remembered password is used when none is typed
    dlg = ctl.ask_open_team_project()
    assert (dlg.url.text(), dlg.folder.text(), dlg.password.text()) == (
        credentials.without_password(url), str(pg_project.folder), "")
    dlg.reject()


def test_the_password_file_reads_and_writes_the_pgpass_format(tmp_path):
    passfile = tmp_path / "pixret-pgpass"
    url = "postgresql://ana@db.example.org:5433/pixret"
    credentials.remember(passfile, url, "a:b\\c")  # ':' and '\' are escaped in that format
    credentials.remember(passfile, "postgresql://bob@db.example.org/pixret", "other")
    assert passfile.read_text().splitlines() == ["db.example.org:5433:pixret:ana:a\\:b\\\\c",
                                                 "db.example.org:5432:pixret:bob:other"]
    assert stat.S_IMODE(os.stat(passfile).st_mode) == 0o600
    assert credentials.lookup(passfile, url) == "a:b\\c"
    assert credentials.lookup(passfile, "postgresql://ana@db.example.org:5433/elsewhere") is None
    credentials.remember(passfile, url, "new")  # replaced, not added
    assert credentials.lookup(passfile, url) == "new" and len(passfile.read_text().splitlines()) == 2
    credentials.forget(passfile, url)
    assert credentials.lookup(passfile, url) is None
    passfile.write_text("*:*:pixret:*:shared\n")  # a hand-written wildcard line
    assert credentials.lookup(passfile, url) == "shared"
    assert credentials.without_password("postgresql://ana:pw@h/db") == "postgresql://ana@h/db"
    for password in ("a@b:c/d", "p w", "x%y#z?"):  # whatever it holds, the URL gives it back
        assert make_url(credentials.with_password("postgresql://ana@h/db", password)).password == password
