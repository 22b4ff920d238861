"""Headless Chromium (Debian's ``chromium`` package) for tests of pages we generate: render to a screenshot, dump the
DOM as the browser built it. Skips locally when it is missing, fails under ``CI=true`` (``.ci/run`` installs it)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

from pgserver import unavailable

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--hide-scrollbars")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        unavailable("chromium is not installed: apt-get install chromium")
    assert path is not None
    return path


def _run(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="gk-chromium-") as profile:
        return subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *args, page.resolve().as_uri()],
                              capture_output=True, text=True, timeout=120, check=False)


def screenshot(page: Path, dest: Path, *, width: int = 1100, height: int = 2400) -> Path:
    proc = _run(page, f"--screenshot={dest}", f"--window-size={width},{height}")
    assert proc.returncode == 0 and dest.exists(), proc.stderr[-2000:]
    return dest


def dump_dom(page: Path) -> str:
    proc = _run(page, "--dump-dom")
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-2000:]
    return proc.stdout


class Dom(HTMLParser):
    """Just enough of the dumped DOM to assert on: elements with their attributes, and the text of table cells by
    table id."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.text_by_id: dict[str, str] = {}
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._ids: list[tuple[str, str, list[str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        self.elements.append((tag, attributes))
        if tag == "table" and "id" in attributes:
            self._table = attributes["id"]
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = []
        if "id" in attributes:
            self._ids.append((tag, attributes["id"], []))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._table is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        if self._ids and self._ids[-1][0] == tag:
            _, ident, parts = self._ids.pop()
            self.text_by_id[ident] = "".join(parts)
            if self._ids:
                self._ids[-1][2].extend(parts)

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._ids:
            self._ids[-1][2].append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str]]:
        return [a for t, a in self.elements if t == tag and all(a.get(k.replace("_", "-")) == v
                                                                  for k, v in attrs.items())]

    def rows(self, table: str) -> list[list[str]]:
        """Body rows (the header row dropped)."""
        return self.tables.get(table, [])[1:]
