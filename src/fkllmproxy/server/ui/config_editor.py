"""The Config page's editor: the config file's text, Validate, Save, backups, Restore.

The same checks and steps as ``/admin/config/source`` (server/admin_config_source.py):
the text is shown with its secrets redacted, a ``<redacted>`` left in place keeps the
value, Save carries the ETag of the version shown so that a save over a newer file is
refused, and every write keeps a backup. Plain forms, as the console's other changes
(CSRF token, same origin); no script is needed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fkllmproxy.config.source import etag_of, redact_source
from fkllmproxy.config.writer import Backup, backups
from fkllmproxy.server.runtime import RuntimeHolder
from fkllmproxy.server.ui.html import Html, esc, join

__all__ = ["Editor", "diff_html", "editor_body", "read_editor"]


@dataclass(frozen=True)
class Editor:
    """What the editor shows: the text, the tag of the version it came from, backups."""

    path: Path | None
    text: str
    etag: str
    backups: Sequence[Backup]


def _read(path: Path | None) -> Editor:
    if path is None:
        return Editor(None, "", "", ())
    try:
        content = path.read_bytes()
    except OSError as exc:
        return Editor(path, f"# {path} cannot be read: {exc.strerror}\n", '"unreadable"', ())
    text = redact_source(content.decode("utf-8", "replace"))
    return Editor(path, text, etag_of(content), backups(path))


async def read_editor(holder: RuntimeHolder) -> Editor:
    """The editor as the file is now on disk (read in a thread)."""
    return await asyncio.to_thread(_read, holder.runtime.loaded.config_path)


def diff_html(diff: dict[str, Any]) -> Html:
    """What a save changes, as a list (names and setting paths, never values)."""
    items = []
    for part in ("providers", "models", "keys", "pricing"):
        for change in ("added", "removed", "changed"):
            names = diff.get(part, {}).get(change) or []
            if names:
                items.append(f"<li>{esc(part)} {esc(change)}: {esc(', '.join(names))}</li>")
    if diff.get("settings"):
        items.append(f"<li>settings changed: {esc(', '.join(diff['settings']))}</li>")
    if not items:
        return Html('<p class="diff">No change to the effective configuration.</p>')
    return Html(f'<ul class="diff" aria-label="What this changes">{"".join(items)}</ul>')


def _csrf(csrf: str) -> str:
    return f'<input type="hidden" name="csrf" value="{esc(csrf)}">'


def editor_body(editor: Editor, csrf: str, diff: dict[str, Any] | None = None) -> Html:
    """The editing form and the backups with their Restore buttons."""
    if editor.path is None:
        return Html(
            '<section aria-labelledby="edit"><h2 id="edit">Edit the config file</h2>'
            "<p>This daemon runs on built-in defaults and the environment, with no config "
            "file to edit: start it with --config PATH (or FKLLM_CONFIG).</p></section>"
        )
    shown = diff_html(diff) if diff is not None else Html("")
    rows = join(
        Html(
            f'<li><span>{esc(b.name)}</span> <span class="hint">{esc(b.created)}, '
            f'{b.size} bytes</span> <form method="post" action="/ui/config/restore" '
            f'class="inline">{_csrf(csrf)}<input type="hidden" name="name" '
            f'value="{esc(b.name)}"><button type="submit" aria-label="Restore {esc(b.name)}">'
            "Restore</button></form></li>"
        )
        for b in editor.backups
    )
    listing = rows or Html('<li class="empty">No backups yet: each save keeps one.</li>')
    return Html(
        '<section aria-labelledby="edit"><h2 id="edit">Edit the config file</h2>'
        f'<form method="post" action="/ui/config/source" class="editor">{_csrf(csrf)}'
        f'<input type="hidden" name="etag" value="{esc(editor.etag)}">'
        f'<label for="config-text">{esc(editor.path)} (secrets shown as &lt;redacted&gt; '
        "are kept as they are when saved)</label>"
        # The newline after the tag is eaten by the HTML parser, so a first blank line
        # of the file is kept.
        f'<textarea id="config-text" name="text" rows="24" spellcheck="false">\n'
        f"{esc(editor.text)}</textarea>{shown}"
        '<button type="submit" name="action" value="validate">Validate</button> '
        '<button type="submit" name="action" value="save">Save</button>'
        '<span class="hint">Validate checks the text as check-config does and shows what '
        "it would change; Save writes it (the old file kept as a backup) and reloads.</span>"
        "</form></section>"
        '<section aria-labelledby="backups"><h2 id="backups">Backups</h2>'
        f'<ul class="backups">{listing}</ul></section>'
    )
