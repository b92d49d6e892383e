"""Promise 10: a reports folder that fills up during a session stops it with one line naming the folder
and the fix (no INTERNALERROR, no traceback), and the runs it finished stay in the cache. A real session
under xdist, a real file system (a tmpfs) that the kernel says is full. A folder that is already full or
read-only when the session starts is refused before anything runs: tests/test_bad_input.py."""
from __future__ import annotations

from harness.chaos import FILLER, Session, plugin_env
from harness.spec import results


def test_a_reports_folder_that_fills_up_stops_the_session_with_one_line_and_keeps_finished_runs(
        tiny_images, tmp_path, tmpfs):
    disk = tmpfs(80)  # room enough to start (the start wants 64 MB free)
    env = {**plugin_env(tmp_path, "fill_disk", FILLER), "ADVHYP_FILL": str(disk)}
    session = Session(tmp_path, tiny_images, "-n", "2", "-p", "fill_disk", f"--reports-dir={disk}/reports",
                      "--epochs=1", env=env)
    rc = session.finish()
    folder = next((disk / "reports").iterdir())
    message = (f"advhyp: cannot write {folder / 'results.json'} (the disk is full): free space in {folder} or "
               f"point --reports-dir at another folder")
    out = session.output
    assert rc == 2, out[-3000:]  # the session stopped, as for an interrupt
    assert out.count(message) == 1 and f"\n{message}" in out, out[-3000:]  # once, a line of its own
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    doc = results.load(folder)  # as written when the session started, before the disk filled
    assert doc.partial is True and doc.session["state"] == "running" and not (folder / "index.html").exists()
    finished = list((tmp_path / "cache" / "runs").glob("*/result.json"))
    assert len(finished) == 4, out[-3000:]  # the test running when the disk filled ran to its end
