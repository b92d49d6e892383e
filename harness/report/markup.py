"""The page's HTML pieces: escaping, numbers, tables, embedded images, verdict badges.

Every string taken from results.json is HTML-escaped on its way to the page: cells go through `cell`,
and only markup built by the report is wrapped in `Markup`.
"""
from __future__ import annotations

import base64
import html
import math
import re

from ..judge.verdict import VERDICTS


class Markup(str):
    """HTML built by the report; any other str is escaped."""


def esc(x) -> str:
    return html.escape(str(x), quote=True)


def num(x, spec: str = ".3g") -> str:
    """A number for a table; a dash for missing or NaN (an untestable case has no p)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return str(x) if isinstance(x, bool) or not isinstance(x, (int, float)) else format(x, spec)


def interval(effect, ci, spec: str = "+.4f") -> str:
    return f"{num(effect, spec)} [{num(ci[0], spec)}, {num(ci[1], spec)}]"


def cell(x) -> str:
    if isinstance(x, Markup):
        return x
    if isinstance(x, float):
        return esc(num(x, ".4g"))
    if isinstance(x, list):
        return esc(", ".join(num(v, ".4g") if isinstance(v, float) else str(v) for v in x))
    return esc("—" if x is None else x)


def table(headers: list | None, rows: list[list], cls: str = "") -> Markup:
    head = "<thead><tr>" + "".join(f"<th>{cell(h)}</th>" for h in headers) + "</tr></thead>" if headers else ""
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    return Markup(f'<table class="{esc(cls)}">{head}<tbody>{body}</tbody></table>')


def img(data: bytes, alt: str, kind: str = "png") -> Markup:
    """An embedded figure: PNG bytes, or SVG (kind "svg+xml"), as a data URI the page's check counts."""
    return Markup(f'<img src="data:image/{kind};base64,{base64.b64encode(data).decode()}" alt="{esc(alt)}">')


def fold(summary: str, body: str, cls: str = "") -> Markup:
    """A `<details>` fold; `summary` and `body` are markup."""
    return Markup(f'<details class="{esc(cls)}"><summary>{summary}</summary>{body}</details>')


def verdict_class(verdict: str) -> str:
    """The CSS class of a verdict badge (harness.report.assets); "unknown" for text that is not a verdict."""
    return re.sub(r"\W+", "-", verdict).strip("-") if verdict in VERDICTS else "unknown"


def badge(verdict: str) -> Markup:
    return Markup(f'<span class="verdict {verdict_class(verdict)}">{esc(verdict)}</span>')


def flat(obj, prefix: str = "") -> list[tuple[str, object]]:
    """Nested dicts as (dotted path, leaf) rows, so new fields show up without code changes."""
    if isinstance(obj, dict) and obj:
        return [row for k, v in obj.items() for row in flat(v, f"{prefix}.{k}" if prefix else str(k))]
    return [(prefix, obj)]
