"""The dashboard's own CSS and JavaScript, served from the package under a versioned path.

``/static/<hash>/<name>``: the hash is of the files' contents, so a page always asks for the
assets it was built with and a browser may cache them for a year. No CDN, no build step.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

from fastapi import APIRouter
from starlette.responses import Response

_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}
_DIR = files("migratrack.web") / "static"
ASSETS: dict[str, bytes] = {
    f.name: f.read_bytes() for f in _DIR.iterdir() if f.is_file() and any(f.name.endswith(x) for x in _TYPES)
}
VERSION = hashlib.sha256(b"".join(ASSETS[n] for n in sorted(ASSETS))).hexdigest()[:12]

router = APIRouter(include_in_schema=False)


def url(name: str) -> str:
    return f"/static/{VERSION}/{name}"


@router.get("/static/{version}/{name}")
def asset(version: str, name: str) -> Response:
    body = ASSETS.get(name)
    if body is None:
        return Response("no such asset", status_code=404, media_type="text/plain")
    ctype = next(t for x, t in _TYPES.items() if name.endswith(x))
    # another version's URL (a page from before an upgrade) gets today's file, uncached
    cache = "public, max-age=31536000, immutable" if version == VERSION else "no-cache"
    return Response(body, media_type=ctype, headers={"Cache-Control": cache})
