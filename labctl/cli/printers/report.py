"""The HTML report of `labctl check --report DIR`: one page, readable on a projector, that opens
with no network (inline CSS, no scripts, screenshots as files beside it).

Each run shows the class matrix (student x check: PASS / FAIL / SKIP with the reason under
FAIL and SKIP), then every student's screenshots. The newest run comes first and open; earlier
runs are folded below it. Everything shown is escaped: page titles and reasons come from the
students' sites.
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any, Final

from labctl.cli.terminal import xml_text

WORDS: Final = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}
# No network and no scripts, ever: a hostile page title cannot reach out of a cell.
CSP: Final = "default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'"
STYLE: Final = """
body { font: 20px/1.4 system-ui, "DejaVu Sans", sans-serif; margin: 1.2em; color: #111;
  background: #fff; }
h1 { font-size: 1.6em; margin: 0 0 .4em; }
h2 { font-size: 1.3em; margin: 1em 0 .4em; }
h3 { font-size: 1.1em; margin: 1em 0 .4em; }
table.matrix { border-collapse: collapse; margin: .4em 0; }
.matrix th, .matrix td { border: 2px solid #fff; padding: .35em .6em; text-align: left;
  vertical-align: top; }
.matrix thead th { background: #222; color: #fff; font-size: .85em; }
.matrix tbody th { background: #eee; }
td.pass { background: #1e7b34; color: #fff; font-weight: bold; }
td.fail { background: #b3261e; color: #fff; font-weight: bold; }
td.skip { background: #f2c94c; color: #111; font-weight: bold; }
td.none { background: #ddd; color: #555; }
td small { display: block; font-weight: normal; font-size: .7em; max-width: 22em; }
.total { font-weight: bold; }
.student { margin: .8em 0; }
.student h4 { margin: 0 0 .3em; font-size: 1em; }
.badge { padding: 0 .4em; color: #fff; }
.badge.pass { background: #1e7b34; }
.badge.fail { background: #b3261e; }
.badge.skip { background: #f2c94c; color: #111; }
.why { font-weight: normal; font-size: .85em; }
.shots { display: flex; flex-wrap: wrap; gap: .8em; }
figure { margin: 0; width: 400px; border: 4px solid #ddd; }
figure.pass { border-color: #1e7b34; }
figure.fail { border-color: #b3261e; }
figure img { display: block; width: 400px; height: 250px; object-fit: cover;
  object-position: top; }
figcaption { padding: .2em .4em; font-size: .75em; }
details { margin-top: 1.5em; }
summary { font-size: 1.2em; cursor: pointer; }
.error { color: #b3261e; font-weight: bold; }
"""


def render_report(runs: list[dict[str, Any]]) -> str:
    """The whole page for `runs` (newest first, as ops/report.py lists them)."""
    title = f"labctl check: {runs[0].get('title', '')}" if runs else "labctl check"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if not runs:
        parts.append("<p>No runs yet.</p>")
    for number, run in enumerate(runs):
        section = _run(run, newest=number == 0)
        if number == 0:
            parts.append(section)
        else:
            parts.append(f"<details><summary>{_e(_heading(run))}</summary>{section}</details>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _heading(run: dict[str, Any]) -> str:
    labs = run.get("labs", [])
    passed = sum(1 for lab in labs if lab.get("passed"))
    return f"{run.get('time', run.get('run', ''))}: {passed} of {len(labs)} pass every check"


def _run(run: dict[str, Any], *, newest: bool) -> str:
    labs: list[dict[str, Any]] = run.get("labs", [])
    names: list[str] = run.get("check_names") or _names(labs)
    rows = [_row(lab, names) for lab in labs]
    head = "".join(f"<th>{_e(name)}</th>" for name in names)
    galleries = [_gallery(lab, newest) for lab in labs if _shots(lab)]
    return (
        f'<section class="run" id="run-{_e(run.get("run", ""))}">'
        f"<h2>{_e(_heading(run))}</h2>"
        f'<table class="matrix"><thead><tr><th>student</th>{head}<th>passed</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        + (f"<h3>Screenshots</h3>{''.join(galleries)}" if galleries else "")
        + "</section>"
    )


def _names(labs: Iterable[dict[str, Any]]) -> list[str]:
    found: dict[str, None] = {}
    for lab in labs:
        for check in lab.get("checks", []):
            found.setdefault(str(check.get("name", "")), None)
    return list(found)


def _label(lab: dict[str, Any]) -> str:
    return str(lab.get("student") or lab.get("lab") or "?")


def _row(lab: dict[str, Any], names: list[str]) -> str:
    label = _e(_label(lab))
    if lab.get("error"):
        return (
            f'<tr data-student="{label}"><th scope="row">{label}</th>'
            f'<td class="fail error" colspan="{len(names) + 1}">not checked: '
            f"{_e(lab['error'])}</td></tr>"
        )
    by_name = {str(c.get("name")): c for c in lab.get("checks", [])}
    cells = []
    for name in names:
        check = by_name.get(name)
        attrs = f'data-student="{label}" data-check="{_e(name)}"'
        if check is None:
            cells.append(f'<td class="none" {attrs}>-</td>')
            continue
        status = _status(check)
        reason = _e(check.get("reason", ""))
        shown = f"<small>{reason}</small>" if status != "pass" else ""
        cells.append(f'<td class="{status}" {attrs} title="{reason}">{WORDS[status]}{shown}</td>')
    graded = [c for c in lab.get("checks", []) if c.get("status") != "skip"]
    done = sum(1 for c in graded if c.get("status") == "pass")
    return (
        f'<tr data-student="{label}"><th scope="row">{label}</th>{"".join(cells)}'
        f'<td class="total">{done}/{len(graded)}</td></tr>'
    )


def _shots(lab: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [
        (check, shot) for check in lab.get("checks", []) for shot in check.get("screenshots", [])
    ]


def _status(check: dict[str, Any]) -> str:
    status = str(check.get("status", "fail"))
    return status if status in WORDS else "fail"


def _gallery(lab: dict[str, Any], newest: bool) -> str:
    """One student: the checks that took screenshots, their verdicts, then the pictures."""
    label = _e(_label(lab))
    heads = []
    figures = []
    for check in lab.get("checks", []):
        shots = check.get("screenshots", [])
        if not shots:
            continue
        status = _status(check)
        heads.append(
            f'<span class="badge {status}">{_e(check.get("name", ""))} '
            f'{WORDS[status]}</span> <span class="why">{_e(check.get("reason", ""))}</span>'
        )
        figures += [_figure(lab, status, shot, newest) for shot in shots]
    return (
        f'<div class="student" data-student="{label}"><h4>{label} {" ".join(heads)}</h4>'
        f'<div class="shots">{"".join(figures)}</div></div>'
    )


def _figure(lab: dict[str, Any], status: str, shot: dict[str, Any], newest: bool) -> str:
    file = _e(shot.get("file", ""))
    label = _e(_label(lab))
    path = _e(shot.get("path", ""))
    address = f"http://{_e(lab.get('domain', ''))}{path}"
    loading = "eager" if newest else "lazy"  # folded runs load their images when opened
    return (
        f'<figure class="{status}" data-student="{label}" data-path="{path}">'
        f'<a href="{file}"><img src="{file}" alt="{label}: {address}" '
        f'width="400" height="250" loading="{loading}"></a>'
        f"<figcaption>{address}</figcaption></figure>"
    )


def _e(value: object) -> str:
    """A value for the page: HTML-escaped, with control and bidi characters shown, not obeyed
    (a page title could otherwise reorder the reason around it)."""
    return escape(xml_text(str(value)))
