"""HTML for the console: the two page templates and small, escaping builders.

Templates are plain ``string.Template`` files in ``templates/`` (read once); everything
put into them is escaped here unless it is ``Html`` built by these helpers, so a key
name or a model a client made up cannot inject markup. No template engine: the pages
are a layout and some tables, and Jinja2 would add a dependency and its import to the
daemon's memory for that.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from string import Template

from fkllmproxy import __version__

__all__ = ["NAV", "Html", "asset", "esc", "layout", "login_page", "notice", "table"]

NAV = (
    ("overview", "Overview", "/ui/"),
    ("providers", "Providers", "/ui/providers"),
    ("keys", "Keys", "/ui/keys"),
    ("usage", "Usage", "/ui/usage"),
    ("config", "Config", "/ui/config"),
)
_PACKAGE = resources.files(__package__)


class Html(str):
    """Markup that is already safe (built here): ``esc`` passes it through."""

    __slots__ = ()


def esc(value: object) -> Html:
    if isinstance(value, Html):
        return value
    return Html(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[object]) -> Html:
    return Html("".join(esc(p) for p in parts))


@cache
def _template(name: str) -> Template:
    return Template((_PACKAGE / "templates" / name).read_text(encoding="utf-8"))


@cache
def asset(name: str) -> tuple[bytes, str] | None:
    """A file of ``static/`` and a short hash of it (for cache-busting URLs)."""
    if "/" in name or name.startswith("."):
        return None
    path = _PACKAGE / "static" / name
    if not path.is_file():
        return None
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:12]


def _version(name: str) -> str:
    found = asset(name)
    return found[1] if found else "0"


def notice(text: object, kind: str = "info") -> Html:
    """A message box; errors are announced to screen readers at once (``role=alert``)."""
    role = "alert" if kind == "error" else "status"
    return Html(f'<div class="notice {esc(kind)}" role="{role}">{esc(text)}</div>')


def table(
    caption: str,
    headers: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    id: str | None = None,
    empty: str = "Nothing yet.",
) -> Html:
    """A data table with a caption and column headers; the first cell heads its row."""
    body = []
    for row in rows:
        cells = [f'<th scope="row">{esc(row[0])}</th>']
        cells += [f"<td>{esc(cell)}</td>" for cell in row[1:]]
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not body:
        body.append(f'<tr><td colspan="{len(headers)}" class="empty">{esc(empty)}</td></tr>')
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headers)
    ident = f' id="{esc(id)}"' if id else ""
    return Html(
        f"<table{ident}><caption>{esc(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def layout(page: str, title: str, body: Html, *, csrf: str, message: Html | None = None) -> bytes:
    current = ' aria-current="page"'
    nav = "\n".join(
        f'<li><a href="{href}"{current if key == page else ""}>{label}</a></li>'
        for key, label, href in NAV
    )
    return (
        _template("layout.html")
        .substitute(
            title=esc(title),
            page=esc(page),
            csrf=esc(csrf),
            version=esc(__version__),
            nav=nav,
            notice=message or "",
            body=body,
            css_version=_version("console.css"),
            js_version=_version("console.js"),
        )
        .encode()
    )


def login_page(message: Html | None = None) -> bytes:
    return (
        _template("login.html")
        .substitute(notice=message or "", css_version=_version("console.css"))
        .encode()
    )
