"""The lab's progress bar: drawn on a terminal or when asked, never into a pipe or a log."""

from __future__ import annotations

import io

from streams.lab.progress import Progress, wanted


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_shows_the_share_done_and_ends_its_line() -> None:
    stream = io.StringIO()
    bar = Progress("replaying", 200, "events", enabled=True, stream=stream)
    bar.update(100)
    bar.close()

    drawn = stream.getvalue()
    assert drawn.startswith("\rreplaying [###############...............]  50% 100/200 events")
    assert drawn.endswith("\n") and "100% 200/200" not in drawn


def test_nothing_is_drawn_unless_asked_or_on_a_terminal() -> None:
    stream = io.StringIO()
    bar = Progress("replaying", 10, "events", enabled=wanted(False, stream), stream=stream)
    bar.update(10)
    bar.close()
    assert stream.getvalue() == ""
    assert wanted(True, stream) and wanted(False, Terminal())
