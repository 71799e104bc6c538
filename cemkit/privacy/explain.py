"""Explain a policy as a document a privacy officer can sign off (``cemkit policy explain``).

For every column the document says what happens to it, whether the result can be linked
across data sets, whether it can be reversed and by whom, what a recipient can still learn,
and which key is used. The same content renders as Markdown (:func:`explain_markdown`) and as
HTML (:func:`explain_html`); a :class:`~cemkit.privacy.policy.Policy` shows it as its rich
display when it is the last expression of a notebook cell.

The document is built from :meth:`Policy.properties` and the PII classes of the canonical
schema only, never from data, so it is deterministic: the same policy file gives the same
document (the golden-file tests rely on it).

Examples
--------
>>> from cemkit.privacy.policy import load_policy
>>> text = explain_markdown(load_policy("default"))
>>> text.splitlines()[0]
'# Privacy policy `default`, version 1'
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from typing import Any

from cemkit.privacy.policy import (
    QUARANTINE_COLUMNS,
    BinRule,
    FpeRule,
    GeneralizeRule,
    GridRule,
    Policy,
    Rule,
    ScanTextRule,
    TokenizeRule,
)

#: PII classes of the loader quarantine columns (see ``cemkit.io.base.QUARANTINE_SCHEMA``).
#: ``file`` is a source name (a path, which can name an account): an indirect identifier.
QUARANTINE_PII = {"file": "quasi", "line": "none", "field": "none", "reason": "none",
                  "raw": "free_text"}  # fmt: skip

#: Plain words for the PII classes of :class:`cemkit.schema.PII`.
PII_WORDS = {
    "none": "not personal",
    "tn": "telephone number (direct identifier)",
    "direct": "direct identifier",
    "quasi": "indirect identifier",
    "free_text": "free text (may hold anything)",
    "source": "source-specific column",
}

#: PII classes for which keeping a value in clear is a finding in the document.
PERSONAL = ("tn", "direct", "free_text")

HEADERS = ("Column", "Kind of data", "What happens", "Linkable across data sets?",
           "Reversible? By whom?", "What a recipient can still learn", "Key")  # fmt: skip


@dataclass(frozen=True)
class ColumnRow:
    """One line of the explanation: a column and what the policy does to it."""

    column: str
    pii: str
    what: str
    linkable: str
    reversible: str
    learns: str
    key: str
    note: str | None
    caution: str | None


def pii_class(column: str, *, quarantine: bool = False) -> str:
    """The PII class of a canonical or quarantine column.

    A ``src_*`` column a shipped loader declares (its class-level ``extensions``) has the PII
    class the loader declares for it; any other ``src_*`` column is "source" (unknown: only
    the source that adds it knows what it holds).
    """
    from cemkit.schema_measurements import ALL_COLUMNS as BY_NAME

    if quarantine:
        return QUARANTINE_PII.get(column, "free_text")
    col = BY_NAME.get(column) or declared_extensions().get(column)
    return col.pii.value if col is not None else "source"


@functools.cache
def declared_extensions() -> dict[str, Any]:
    """Source-specific columns the shipped loaders declare, by name.

    A name two loaders declare with different PII classes is left out (unknown, "source").
    """
    from cemkit.io.base import registry

    out: dict[str, Any] = {}
    clash: set[str] = set()
    for loader in registry:
        for col in loader.extensions:
            if col.name in out and out[col.name].pii != col.pii:
                clash.add(col.name)
            out.setdefault(col.name, col)
    return {name: col for name, col in out.items() if name not in clash}


def describe_action(rule: Rule) -> str:
    """What a rule does, with its parameters, in plain words."""
    if isinstance(rule, TokenizeRule):
        kept = (f"; the first {rule.keep_digits} digit(s) stay readable" if rule.keep_digits
                else "; no digits stay readable")  # fmt: skip
        return f"replaced by a keyed code (HMAC-SHA256, {rule.length} hex characters){kept}"
    if isinstance(rule, FpeRule):
        kept = (f"; the first {rule.keep_digits} digit(s) stay readable" if rule.keep_digits
                else "")  # fmt: skip
        tweak = "a fixed tweak" if rule.tweak else "a tweak derived from the key id"
        short = "removed" if rule.too_short == "drop" else "replaced by a keyed code"
        return (f"encrypted into another number of the same length (FF3-1, {tweak}){kept}; "
                f"values too short to encrypt are {short}")  # fmt: skip
    if isinstance(rule, GeneralizeRule):
        if rule.digits is not None:
            return f"cut to its first {rule.digits} digit(s)"
        return f"rounded down to {rule.every}"
    if isinstance(rule, GridRule):
        out = ("the row/column number of the square (no degrees)" if rule.output == "index"
               else "the degrees of the square's centre")  # fmt: skip
        return (f"position generalized to a grid of {rule.size_m:g} m squares; the column "
                f"holds {out}")  # fmt: skip
    if isinstance(rule, BinRule):
        return f"rounded down to a multiple of {rule.step:g}"
    if isinstance(rule, ScanTextRule):
        how = ("a label such as <PHONE_NUMBER>" if rule.replace_with == "label"
               else "a keyed code, linkable to the same number elsewhere")  # fmt: skip
        return (f"searched for {', '.join(rule.entities)}; each finding replaced by {how}; "
                f"any run of {rule.min_digits}+ digits counts as a phone number")  # fmt: skip
    return str(rule.summary)


def _linkable(rule: Rule, key_id: str | None) -> str:
    if rule.action == "keep":
        return "yes: the value itself"
    if rule.linkable:
        return f"yes, with other outputs made with key {key_id}"
    return "no"


def _reversible(rule: Rule, key_id: str | None) -> str:
    if rule.reversible_by == "anyone":
        return "nothing to reverse: kept in clear"
    if rule.reversible_by == "key holders":
        return f"yes, by holders of key {key_id} (`cemkit reveal`, recorded in the manifest)"
    if rule.action == "drop":
        return "no: the value is gone"
    return "no"


def _row(column: str, rule: Rule, policy: Policy, *, quarantine: bool) -> ColumnRow:
    key_id = policy.key.id if policy.key else None
    pii = pii_class(column, quarantine=quarantine)
    caution = None
    if rule.action == "keep" and pii in PERSONAL:
        caution = f"{PII_WORDS[pii]} kept in clear"
    elif rule.action == "keep" and pii == "source":
        caution = "source-specific column kept in clear: check what it holds"
    return ColumnRow(
        column=column,
        pii=PII_WORDS[pii],
        what=describe_action(rule),
        linkable=_linkable(rule, key_id),
        reversible=_reversible(rule, key_id),
        learns=rule.reveals(),
        key=key_id if rule.needs_key and key_id else "none",
        note=rule.note,
        caution=caution,
    )


def explanation(policy: Policy) -> dict[str, Any]:
    """The content of the document as data: header facts, summary lines, column rows."""
    from cemkit.schema import BY_NAME

    key = policy.key
    default_rule = policy.rule_for("\0unnamed")
    columns = [_row(n, r, policy, quarantine=False) for n, r in policy.columns.items()]
    quarantine = [_row(n, r, policy, quarantine=True) for n, r in policy.quarantine.items()]
    unnamed = [c for c in BY_NAME if c not in policy.columns]
    unnamed_q = [c for c in QUARANTINE_COLUMNS if c not in policy.quarantine]
    rules = list(policy.columns.items())
    by_key = [n for n, r in rules if r.reversible_by == "key holders"]
    linkable = [n for n, r in rules if r.linkable and r.action != "keep"]
    prefixes = [f"{n} ({r.keep_digits})" for n, r in rules
                if isinstance(r, TokenizeRule | FpeRule) and r.keep_digits]  # fmt: skip
    kept_personal = [row.column for row in columns + quarantine if row.caution]
    kept_by_class: dict[str, list[str]] = {}
    for q, named in ((False, policy.columns), (True, policy.quarantine)):
        for n, r in named.items():
            if r.action == "keep":
                kept_by_class.setdefault(pii_class(n, quarantine=q), []).append(
                    f"quarantine.{n}" if q else n
                )
    order = ["tn", "direct", "free_text", "quasi", "source", "none"]
    kept_clear = [f"{c} ({PII_WORDS.get(c, c)}): {', '.join(kept_by_class[c])}"
                  for c in sorted(kept_by_class, key=lambda c: order.index(c)
                                  if c in order else len(order))]  # fmt: skip
    source_names = [c for c in ("record_id", "quarantine.file")
                    if c in kept_by_class.get("quasi", [])]  # fmt: skip
    facts = [
        ("Policy", f"{policy.name}, version {policy.version}"),
        ("Policy sha256", policy.sha256),
        (
            "Key",
            (
                f"id {key.id}, read from {key.source}; the key itself is never in the policy"
                if key
                else "none: no column needs a key"
            ),
        ),
        ("Columns not named", f"{default_rule.summary} (default: {policy.default})"),
        (
            "Smallest group in reports",
            f"{policy.report.min_group_size} customers; smaller groups are suppressed or merged",
        ),
    ]
    summary = [
        "Reversible by key holders: " + (", ".join(by_key) if by_key else "no column"),
        "Pseudonyms linkable across data sets made with the same key: "
        + (", ".join(linkable) if linkable else "none"),
        "Kept number prefixes (digits): " + (", ".join(prefixes) if prefixes else "none"),
        "Personal data kept in clear: " + (", ".join(kept_personal) if kept_personal else "none"),
        "Every column kept in clear, by PII class: "
        + ("; ".join(kept_clear) if kept_clear else "none")
        + (
            f" (number-like file names in {' and '.join(source_names)} are tokenized)"
            if source_names
            else ""
        ),
    ]
    return {
        "title": f"Privacy policy `{policy.name}`, version {policy.version}",
        "description": policy.description.strip(),
        "facts": facts,
        "summary": summary,
        "columns": columns,
        "quarantine": quarantine,
        "unnamed": unnamed,
        "unnamed_quarantine": unnamed_q,
        "default_summary": str(default_rule.summary),
        "release": policy.release.explain()
        if policy.release is not None
        else [
            "No differentially private release: the policy has no `release:` section, so "
            + "`cemkit release` refuses to publish anything under it."
        ],
    }


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(rows: list[ColumnRow]) -> list[str]:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for r in rows:
        learns = r.learns + (f" **Caution: {r.caution}.**" if r.caution else "")
        what = r.what + (f" _Note: {r.note}_" if r.note else "")
        cells = (f"`{r.column}`", r.pii, what, r.linkable, r.reversible, learns, r.key)
        lines.append("| " + " | ".join(_md_cell(c) for c in cells) + " |")
    return lines


def explain_markdown(policy: Policy) -> str:
    """The policy explained as a Markdown document.

    Examples
    --------
    >>> from cemkit.privacy.policy import load_policy
    >>> "| `a_number` |" in explain_markdown(load_policy("default"))
    True
    """
    doc = explanation(policy)
    out = [f"# {doc['title']}", ""]
    if doc["description"]:
        out += [doc["description"], ""]
    out += ["| | |", "|---|---|"]
    out += [f"| {k} | {_md_cell(v)} |" for k, v in doc["facts"]]
    out += ["", "## In short", ""]
    out += [f"- {s}" for s in doc["summary"]]
    out += ["", "## Columns", ""]
    out += _md_table(doc["columns"])
    if doc["unnamed"]:
        names = ", ".join(f"`{c}`" for c in doc["unnamed"])
        out += [
            "",
            (
                f"Canonical columns the policy does not name, and therefore "
                f"{doc['default_summary']}: {names}."
            ),
            "Source-specific columns (`src_*`) not named are treated the same way.",
        ]
    else:
        out += [
            "",
            (
                f"Every canonical column is named. Source-specific columns (`src_*`) not "
                f"named are {doc['default_summary']}."
            ),
        ]
    out += ["", "## Quarantine (rows a loader could not read)", ""]
    out += _md_table(doc["quarantine"])
    if doc["unnamed_quarantine"]:
        out += ["", f"Not named, therefore {doc['default_summary']}: "
                + ", ".join(f"`{c}`" for c in doc["unnamed_quarantine"]) + "."]  # fmt: skip
    out += ["", "## Releases with differential privacy", ""]
    out += [f"- {_md_cell(s)}" for s in doc["release"]]
    return "\n".join(out) + "\n"


_CSS = (
    ".cemkit-policy table{border-collapse:collapse;margin:0.5em 0}"
    ".cemkit-policy th,.cemkit-policy td{border:1px solid #bbb;padding:4px 8px;"
    "text-align:left;vertical-align:top}"
    ".cemkit-policy th{background:#eee}"
    ".cemkit-policy .caution{color:#a40000;font-weight:bold}"
    ".cemkit-policy .note{color:#555;font-style:italic}"
)


def _html_table(rows: list[ColumnRow]) -> list[str]:
    e = html.escape
    out = ["<table>", "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in HEADERS)
           + "</tr></thead>", "<tbody>"]  # fmt: skip
    for r in rows:
        what = e(r.what) + (f' <span class="note">Note: {e(r.note)}</span>' if r.note else "")
        learns = e(r.learns) + (
            f' <span class="caution">Caution: {e(r.caution)}.</span>' if r.caution else ""
        )
        cells = (f"<code>{e(r.column)}</code>", e(r.pii), what, e(r.linkable),
                 e(r.reversible), learns, e(r.key))  # fmt: skip
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out += ["</tbody>", "</table>"]
    return out


def explain_html(policy: Policy, *, standalone: bool = True) -> str:
    """The policy explained as HTML: a whole page, or a fragment for notebooks.

    Examples
    --------
    >>> from cemkit.privacy.policy import load_policy
    >>> explain_html(load_policy("default")).startswith("<!DOCTYPE html>")
    True
    """
    e = html.escape
    doc = explanation(policy)
    title = doc["title"].replace("`", "")
    body = ['<div class="cemkit-policy">', f"<h1>{e(title)}</h1>"]
    if doc["description"]:
        body.append(f"<p>{e(doc['description'])}</p>")
    body.append("<table>")
    body += [f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in doc["facts"]]
    body += ["</table>", "<h2>In short</h2>", "<ul>"]
    body += [f"<li>{e(s)}</li>" for s in doc["summary"]]
    body += ["</ul>", "<h2>Columns</h2>"]
    body += _html_table(doc["columns"])
    if doc["unnamed"]:
        body.append(f"<p>Canonical columns the policy does not name, and therefore "
                    f"{e(doc['default_summary'])}: "
                    + ", ".join(f"<code>{e(c)}</code>" for c in doc["unnamed"])
                    + ". Source-specific columns (<code>src_*</code>) not named are treated "
                    "the same way.</p>")  # fmt: skip
    else:
        body.append(
            "<p>Every canonical column is named. Source-specific columns "
            f"(<code>src_*</code>) not named are {e(doc['default_summary'])}.</p>"
        )
    body.append("<h2>Quarantine (rows a loader could not read)</h2>")
    body += _html_table(doc["quarantine"])
    if doc["unnamed_quarantine"]:
        body.append(f"<p>Not named, therefore {e(doc['default_summary'])}: "
                    + ", ".join(f"<code>{e(c)}</code>" for c in doc["unnamed_quarantine"])
                    + ".</p>")  # fmt: skip
    body += ["<h2>Releases with differential privacy</h2>", "<ul>"]
    body += [f"<li>{e(s)}</li>" for s in doc["release"]]
    body += ["</ul>", "</div>"]
    if not standalone:
        return f"<style>{_CSS}</style>\n" + "\n".join(body) + "\n"
    head = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
            f"<title>{e(title)}</title>", f"<style>body{{font-family:sans-serif}}{_CSS}</style>",
            "</head>", "<body>"]  # fmt: skip
    return "\n".join([*head, *body, "</body>", "</html>"]) + "\n"
