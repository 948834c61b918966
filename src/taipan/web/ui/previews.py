"""What the web UI shows of documents and downloads: a rendered preview of a notebook (sanitised HTML,
never a script), of an environment or project file, and a channel's downloads per day and per
package as server-rendered SVG.

Previews are keyed by family here (the UI's own small registry, like the serving HANDLERS).
"""

from __future__ import annotations

import html
import io
import json
import tarfile
import zipfile
from collections.abc import Callable
from typing import Any

import nh3
from markupsafe import Markup

MAX_PREVIEW = 8 * 1024 * 1024
# What rendered notebook HTML may keep: nh3's safe defaults without images (no requests from a preview).
TAGS = set(nh3.ALLOWED_TAGS) - {"img"}
MAX_CELLS = 500
MAX_OUTPUT = 20_000


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _markdown(source: str) -> str:
    from markdown_it import MarkdownIt

    # Raw HTML in Markdown is escaped (html=False), and the result is sanitised once more.
    rendered = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").render(source)
    return nh3.clean(rendered, tags=TAGS, link_rel="noopener noreferrer nofollow")


def notebook_html(data: bytes) -> Markup:
    nb = json.loads(data)
    language = ((nb.get("metadata") or {}).get("language_info") or {}).get("name") or ""
    parts = []
    for n, cell in enumerate(nb.get("cells") or []):
        if n >= MAX_CELLS:
            parts.append('<p class="muted">(further cells not shown)</p>')
            break
        if not isinstance(cell, dict):
            continue
        source = _text(cell.get("source"))
        kind = cell.get("cell_type")
        if kind == "markdown":
            parts.append(f'<div class="nb-markdown">{_markdown(source)}</div>')
        elif kind == "code":
            count = cell.get("execution_count")
            label = f"In [{count if count is not None else ' '}]:"
            parts.append(f'<div class="nb-code"><span class="muted">{html.escape(label)}</span>'
                         f'<pre><code class="language-{html.escape(language)}">{html.escape(source)}</code></pre>')
            for output in cell.get("outputs") or []:
                parts.append(_output(output))
            parts.append("</div>")
        else:
            parts.append(f"<pre>{html.escape(source)}</pre>")
    return Markup("\n".join(parts))


def _output(output: Any) -> str:
    if not isinstance(output, dict):
        return ""
    kind = output.get("output_type")
    if kind == "stream":
        text = _text(output.get("text"))
    elif kind in ("execute_result", "display_data"):
        data = output.get("data") or {}
        if "text/markdown" in data:
            return f'<div class="nb-output">{_markdown(_text(data["text/markdown"])[:MAX_OUTPUT])}</div>'
        if "text/html" in data:
            # Rich HTML output (e.g. a DataFrame) is kept only as far as the sanitiser allows.
            return f'<div class="nb-output">{nh3.clean(_text(data["text/html"])[:MAX_OUTPUT], tags=TAGS)}</div>'
        text = _text(data.get("text/plain")) or ("(an image)" if any(k.startswith("image/") for k in data) else "")
    elif kind == "error":
        text = f"{output.get('ename', '')}: {output.get('evalue', '')}"
    else:
        text = ""
    return f'<pre class="nb-output">{html.escape(text[:MAX_OUTPUT])}</pre>' if text else ""


def yaml_text(data: bytes) -> Markup:
    return Markup(f"<pre><code>{html.escape(data.decode('utf-8-sig', errors='replace'))}</code></pre>")


def project_text(data: bytes) -> Markup:
    """The anaconda-project.yml inside an archive (or the bare file)."""
    from taipan.domain.detect import PROJECT_FILES

    text: bytes | None = None
    if zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = sorted((n for n in zf.namelist() if n.rsplit("/", 1)[-1] in PROJECT_FILES), key=len)
            text = zf.read(names[0])[:MAX_PREVIEW] if names else None
    else:
        try:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
                for member in tar:
                    if member.isfile() and member.name.rsplit("/", 1)[-1] in PROJECT_FILES:
                        extracted = tar.extractfile(member)
                        text = extracted.read(MAX_PREVIEW) if extracted else None
                        break
        except (tarfile.TarError, EOFError, OSError):
            text = data  # the bare anaconda-project.yml
    return yaml_text(text) if text is not None else Markup('<p class="muted">No anaconda-project.yml found.</p>')


PREVIEWS: dict[str, Callable[[bytes], Markup]] = {
    "notebook": notebook_html, "anaconda_env": yaml_text, "anaconda_project": project_text,
    "sbom": lambda data: yaml_text(json.dumps(json.loads(data), indent=2).encode()),
}


def bar_chart(values: list[tuple[str, int]], *, title: str, horizontal: bool = False) -> Markup:
    """A small accessible SVG bar chart (role=img, a title, and each bar's value as its tooltip)."""
    esc = html.escape
    peak = max((v for _, v in values), default=0) or 1
    if horizontal:
        width, row = 520, 22
        height = row * max(1, len(values)) + 10
        bars = []
        for i, (label, v) in enumerate(values):
            w = round(320 * v / peak)
            y = 5 + i * row
            bars.append(f'<g><title>{esc(label)}: {v}</title><text x="0" y="{y + 15}" font-size="12">'
                        f'{esc(label[:28])}</text><rect x="190" y="{y + 3}" width="{max(w, 1)}" height="{row - 6}" '
                        f'fill="#2f6f9f"/><text x="{196 + w}" y="{y + 15}" font-size="12">{v}</text></g>')
    else:
        width, height, base = 640, 180, 150
        step = width / max(1, len(values))
        bars = []
        for i, (label, v) in enumerate(values):
            h = round(130 * v / peak)
            x = round(i * step + 2)
            bar_width = max(1, round(step) - 4)
            bars.append(f'<g><title>{esc(label)}: {v}</title><rect x="{x}" y="{base - h}" width="{bar_width}"'
                        f' height="{max(h, 0)}" fill="#2f6f9f"/></g>')
        if values:
            bars.append(f'<text x="0" y="{base + 18}" font-size="12">{esc(values[0][0])}</text>'
                        f'<text x="{width}" y="{base + 18}" font-size="12" text-anchor="end">'
                        f'{esc(values[-1][0])}</text>'
                        f'<text x="0" y="12" font-size="12">max {peak}</text>')
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height + 20}" '
                  f'viewBox="0 0 {width} {height + 20}"><title>{esc(title)}</title>{"".join(bars)}</svg>')
