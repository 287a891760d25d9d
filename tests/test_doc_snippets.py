"""Every code snippet in the README and docs/ runs as written (or is marked not to).

A small runner reads the fenced blocks of each page:

- ``python``: run in a fresh interpreter, in a folder holding ``examples/plan.yaml`` as
  ``plan.yaml``, with a prelude that defines the placeholders the prose leaves to the reader
  (``rows``, ``copy``, ``copy_row``, ``create_schema``, ``OPERATOR_TOKEN``) and what the snippets
  before it on the page set up (the import of ``MigrationProgressTracker``, a ``tracker``);
- ``yaml`` with ``phases:``: a plan, checked by ``migratrack check-plan``;
- ``sh``/``bash``: run by bash in such a folder, ``migratrack`` on the PATH and a stub ``aws``;
- ``console``: a transcript (commands and their output, often against a server): every
  ``$ migratrack …`` line must parse (the command and its options exist);
- ``js``, ``nginx``, ``ini``: configuration for other programs, not run; ``text`` and blocks
  without a language are output or diagrams.

A block preceded by ``<!-- not-run: why -->`` is not run; the reason is required. Nothing is
skipped silently: a code block in any other language fails the test until it is handled here.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from migratrack.alerts.config import load_config
from migratrack.cli.main import app
from migratrack.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = {"python", "yaml", "sh", "bash", "console", "json"}
NOT_CODE = {"", "text"}
CONFIG = {"js", "nginx", "ini"}
PRELUDE = """\
from migratrack import MigrationProgressTracker
tracker = MigrationProgressTracker("docs-example")  # what a snippet continuing an earlier one uses
rows = [b"x" * 512] * 2000
def copy(row): pass
def copy_row(row): pass
def create_schema(): pass
OPERATOR_TOKEN = "mt_example"
"""
_FENCE = re.compile(r"^```(\w*)\s*$")
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(\S.*?)\s*-->")


@dataclass(frozen=True)
class Snippet:
    page: Path
    line: int
    lang: str
    code: str
    not_run: str | None

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def snippets(page: Path) -> list[Snippet]:
    out: list[Snippet] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        i += 1
        body = []
        while i < len(lines) and lines[i].rstrip() != "```":
            body.append(lines[i])
            i += 1
        before = lines[start - 1] if start else ""
        marker = _NOT_RUN.search(before)
        out.append(Snippet(page, start + 1, m.group(1), "\n".join(body) + "\n", marker.group(1) if marker else None))
        i += 1
    return out


ALL = [s for page in PAGES for s in snippets(page)]
CODE = [s for s in ALL if s.lang not in NOT_CODE]


def test_every_code_block_is_of_a_kind_the_runner_knows() -> None:
    unknown = [s.name + " " + s.lang for s in CODE if s.lang not in RUN | CONFIG]
    assert not unknown, f"teach tests/test_doc_snippets.py to run these, or mark them not-run: {unknown}"
    assert len([s for s in CODE if s.lang in RUN and s.not_run is None]) >= 10  # the runner found them


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copy(ROOT / "examples" / "plan.yaml", tmp_path / "plan.yaml")
    (tmp_path / "data").mkdir()
    for name in ("a.parquet", "b.parquet"):
        (tmp_path / "data" / name).write_bytes(b"x")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "migratrack").write_text(f'#!/bin/sh\nexec {sys.executable} -m migratrack.cli "$@"\n')
    (bin_dir / "aws").write_text("#!/bin/sh\nexit 0\n")  # the snippets' `aws s3 cp`
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    for var in ("MIGRATRACK_URL", "MIGRATRACK_TOKEN", "REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MIGRATRACK_STORAGE_URL", f"sqlite:///{tmp_path}/docs.db")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH"))
                                                     if p))
    return tmp_path


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


RUNNABLE = [s for s in CODE if s.lang in RUN]


@pytest.mark.parametrize("snippet", RUNNABLE, ids=[s.name for s in RUNNABLE])
def test_snippet(snippet: Snippet, workdir: Path) -> None:
    if snippet.not_run is not None:
        assert len(snippet.not_run) > 10, f"{snippet.name}: say why it is not run"
        return
    if snippet.lang == "python":
        proc = _run([sys.executable, "-c", PRELUDE + snippet.code], workdir)
        assert proc.returncode == 0, f"{snippet.name}\n{proc.stderr}"
    elif snippet.lang == "json":  # an example of what the API or a receiver gets: valid JSON
        json.loads(snippet.code)
    elif snippet.lang == "yaml":
        (workdir / "snippet.yaml").write_text(snippet.code)
        doc = yaml.safe_load(snippet.code) or {}
        if "channels" in doc:  # an alert routing file
            load_config(Settings(), workdir / "snippet.yaml")
            return
        if "groups" in doc:  # Prometheus alerting rules over migratrack's metrics
            proc = _run(["promtool", "check", "rules", str(workdir / "snippet.yaml")], workdir)
            assert proc.returncode == 0, f"{snippet.name}\n{proc.stdout}\n{proc.stderr}"
            return
        assert "phases:" in snippet.code, f"{snippet.name}: yaml snippets are plans or alert routing files"
        result = CliRunner().invoke(app, ["check-plan", str(workdir / "snippet.yaml")])
        assert result.exit_code == 0, f"{snippet.name}\n{result.output}"
    elif snippet.lang in ("sh", "bash"):
        proc = _run(["bash", "-e", "-c", snippet.code], workdir)
        assert proc.returncode == 0, f"{snippet.name}\n{proc.stdout}\n{proc.stderr}"
    else:  # console: the migratrack command lines of a transcript parse
        for line in snippet.code.splitlines():
            if not line.startswith("$ migratrack "):
                continue
            command = line[2:].split(" | ")[0].split(" # ")[0]
            args = shlex.split(command)[1:]
            cut = args.index("--") if "--" in args else len(args)  # what follows -- is the wrapped command's
            result = CliRunner().invoke(app, [*args[:cut], "--help", *args[cut:]])
            assert result.exit_code == 0, f"{snippet.name}: {command}\n{result.output}"
