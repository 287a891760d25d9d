"""``migratrack aws package-lambda -o FILE.zip``: the alert processor's deployment package.

The zip holds the ``migratrack`` package and the distributions the handler imports (pydantic and
pydantic-settings, PyYAML, tenacity, httpx for the Slack/PagerDuty channels, and what they
require), copied from this environment, at the zip's root where Lambda's Python finds them.
boto3 is left out: the Lambda runtime has it. Compiled parts (pydantic-core) are this machine's:
build on Linux x86_64 with the Python of the Lambda runtime (python3.11), or in its container
image, for a package that runs there.
"""

from __future__ import annotations

import re
import zipfile
from importlib import metadata
from pathlib import Path

import migratrack

#: what the handler's code path imports; their own requirements follow
ROOTS = ("pydantic", "pydantic-settings", "PyYAML", "tenacity", "httpx")
#: in the Lambda runtime already
PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"})
_SKIP = re.compile(r"(__pycache__|\.pyc$|\.dist-info/RECORD$)")


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0]


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(roots: tuple[str, ...] = ROOTS) -> list[metadata.Distribution]:
    """``roots`` and everything they require (extras and environment markers that do not apply are
    left out), but what the Lambda runtime provides."""
    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = _normal(todo.pop())
        if name in seen or name in PROVIDED:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional requirement this environment does not have
        seen[name] = dist
        for req in dist.requires or []:
            marker = req.partition(";")[2]
            if "extra ==" in marker or "extra==" in marker:
                continue
            if "python_version <" in marker or "sys_platform == \"win32\"" in marker:
                continue
            todo.append(_name(req))
    return list(seen.values())


def build(output: Path) -> list[str]:
    """Write the zip; returns the top-level names it holds."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tops: set[str] = set()
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as z:
        package = Path(migratrack.__file__).parent
        for path in sorted(package.rglob("*")):
            rel = path.relative_to(package.parent).as_posix()
            if path.is_file() and not _SKIP.search(rel):
                z.write(path, rel)
        tops.add("migratrack")
        for dist in distributions():
            for file in dist.files or []:
                rel = file.as_posix()
                if rel.startswith("..") or rel.startswith("/") or _SKIP.search(rel) or rel.startswith("bin/"):
                    continue
                source = Path(str(dist.locate_file(file)))
                if source.is_file():
                    z.write(source, rel)
                    tops.add(rel.split("/", 1)[0])
    return sorted(tops)
