"""What changed between two policies, in a reviewer's words (``cemkit policy diff OLD NEW``).

Every change says where (``columns.a_number``, ``key``, ``default``, ``report``), what it was,
what it becomes, and whether protection gets ``stronger``, ``weaker`` or merely ``different``
— with the reason (e.g. "now reversible by key holders", "3 more digits readable"). A change
of policy content without a raised ``version`` is itself reported.

Examples
--------
>>> from cemkit.privacy.policy import load_policy
>>> changes = diff_policies(load_policy("default"), load_policy("strict"))
>>> [c.verdict for c in changes if c.where == "columns.a_number"]
['stronger']
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cemkit.privacy.explain import describe_action
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
    load_policy,
)

Verdict = Literal["stronger", "weaker", "different", "note"]

#: How much of the original value each action leaves to a recipient (higher: less).
ACTION_STRENGTH = {"keep": 0, "generalize": 2, "scan_text": 2, "fpe": 2, "tokenize": 3, "drop": 4,
                   "grid": 2, "bin": 2}  # fmt: skip


@dataclass(frozen=True)
class Change:
    """One change between two policies."""

    where: str
    before: str
    after: str
    verdict: Verdict
    why: str

    def __str__(self) -> str:
        why = f" ({self.why})" if self.why else ""
        return f"[{self.verdict}] {self.where}: {self.before} -> {self.after}{why}"


def _seconds(every: str) -> int:
    import pandas as pd

    return int(pd.Timedelta(every).total_seconds())


def _same_action(old: Rule, new: Rule) -> tuple[Verdict, list[str]]:
    why: list[str] = []
    score = 0
    if isinstance(old, TokenizeRule | FpeRule) and isinstance(new, TokenizeRule | FpeRule):
        d = new.keep_digits - old.keep_digits
        if d:
            score -= d
            why.append(f"{abs(d)} {'more' if d > 0 else 'fewer'} digit(s) readable")
    if isinstance(old, TokenizeRule) and isinstance(new, TokenizeRule) and old.length != new.length:
        why.append(f"tokens of {new.length} instead of {old.length} hex characters; "
                   "new tokens differ from old ones")  # fmt: skip
    if isinstance(old, FpeRule) and isinstance(new, FpeRule):
        if old.tweak != new.tweak:
            why.append("another tweak: encrypted numbers differ from old ones")
        if old.too_short != new.too_short:
            score += 1 if new.too_short == "drop" else -1
            why.append(
                f"numbers too short to encrypt are now "
                f"{'removed' if new.too_short == 'drop' else 'tokenized'}"
            )
    if isinstance(old, GeneralizeRule) and isinstance(new, GeneralizeRule):
        if old.digits is not None and new.digits is not None and old.digits != new.digits:
            d = new.digits - old.digits
            score -= d
            why.append(f"{abs(d)} {'more' if d > 0 else 'fewer'} digit(s) kept")
        elif old.every is not None and new.every is not None and old.every != new.every:
            coarser = _seconds(new.every) > _seconds(old.every)
            score += 1 if coarser else -1
            why.append(
                f"times {'coarser' if coarser else 'finer'}: {new.every} instead of {old.every}"
            )
        elif old.params() != new.params():
            why.append("numbers and times swapped")
    if isinstance(old, GridRule) and isinstance(new, GridRule):
        if old.size_m != new.size_m:
            score += 1 if new.size_m > old.size_m else -1
            why.append(f"grid squares of {new.size_m:g} m instead of {old.size_m:g} m")
        if old.output != new.output:
            score += 1 if new.output == "index" else -1
            why.append("squares now given by " + ("their numbers (no degrees)"
                       if new.output == "index" else "the degrees of their centres"))  # fmt: skip
    if isinstance(old, BinRule) and isinstance(new, BinRule) and old.step != new.step:
        score += 1 if new.step > old.step else -1
        why.append(f"bins of {new.step:g} instead of {old.step:g}")
    if isinstance(old, ScanTextRule) and isinstance(new, ScanTextRule):
        lost = sorted(set(old.entities) - set(new.entities))
        gained = sorted(set(new.entities) - set(old.entities))
        if lost:
            score -= len(lost)
            why.append(f"no longer looks for {', '.join(lost)}")
        if gained:
            score += len(gained)
            why.append(f"now also looks for {', '.join(gained)}")
        if old.replace_with != new.replace_with:
            score += 1 if new.replace_with == "label" else -1
            why.append(
                "findings now replaced by "
                + (
                    "labels (not linkable)"
                    if new.replace_with == "label"
                    else "keyed codes (linkable)"
                )
            )
        if old.min_digits != new.min_digits:
            score += 1 if new.min_digits < old.min_digits else -1
            why.append(
                f"digit runs of {new.min_digits}+ (was {old.min_digits}+) count as phone numbers"
            )
        if set(old.regions) != set(new.regions):
            why.append(f"regions {', '.join(new.regions)} (were {', '.join(old.regions)})")
    if old.note != new.note and not why:
        return "note", ["only the reviewer note changed"]
    verdict: Verdict = "stronger" if score > 0 else "weaker" if score < 0 else "different"
    return verdict, why


def _compare(old: Rule, new: Rule) -> tuple[Verdict, str]:
    if old.action == new.action:
        same_verdict, same_why = _same_action(old, new)
        return same_verdict, "; ".join(same_why)
    why: list[str] = []
    if new.reversible_by != old.reversible_by:
        if new.reversible_by == "anyone":
            why.append("now kept in clear")
        elif new.reversible_by == "key holders":
            why.append("now reversible by key holders")
        elif old.reversible_by == "key holders":
            why.append("no longer reversible by key holders")
        else:
            why.append("no longer in clear")
    if new.linkable != old.linkable and new.action != "keep":
        why.append("now linkable across data sets" if new.linkable else "no longer linkable")
    if new.action == "drop":
        why.append("the column is no longer in the output")
    if old.action == "drop":
        why.append("the column is now in the output")
    old_digits = getattr(old, "keep_digits", 0) or getattr(old, "digits", 0) or 0
    new_digits = getattr(new, "keep_digits", 0) or getattr(new, "digits", 0) or 0
    if new_digits != old_digits:
        d = new_digits - old_digits
        why.append(f"{abs(d)} {'more' if d > 0 else 'fewer'} digit(s) readable")
    delta = ACTION_STRENGTH[new.action] - ACTION_STRENGTH[old.action]
    if delta == 0:
        delta = (old.reversible_by == "key holders") - (new.reversible_by == "key holders")
    verdict: Verdict = "stronger" if delta > 0 else "weaker" if delta < 0 else "different"
    return verdict, "; ".join(why)


def _rules(old: Policy, new: Policy, section: str, names: list[str]) -> list[Change]:
    changes = []
    for name in names:
        quarantine = section == "quarantine"
        table_old = old.quarantine if quarantine else old.columns
        table_new = new.quarantine if quarantine else new.columns
        if name not in table_old and name not in table_new:
            continue
        o = old.rule_for(name, quarantine=quarantine)
        n = new.rule_for(name, quarantine=quarantine)
        if o == n:
            continue
        verdict, why = _compare(o, n)
        if o.action == n.action and o.params() == n.params():  # only the note changed
            before, after = f"note {o.note or '(none)'!r}", f"note {n.note or '(none)'!r}"
        else:
            before = describe_action(o) + ("" if name in table_old else " (by default)")
            after = describe_action(n) + ("" if name in table_new else " (by default)")
        changes.append(Change(f"{section}.{name}", before, after, verdict, why))
    return changes


def diff_policies(old: Policy | str | Path, new: Policy | str | Path) -> list[Change]:
    """Every change from ``old`` to ``new`` (key, default, report, then column by column)."""
    from cemkit.schema import BY_NAME

    old, new = load_policy(old), load_policy(new)
    changes: list[Change] = []
    if old.name != new.name:
        changes.append(Change("name", old.name, new.name, "note", ""))
    ok, nk = old.key, new.key
    if (ok.id if ok else None) != (nk.id if nk else None):
        changes.append(
            Change(
                "key",
                f"key id {ok.id}" if ok else "no key",
                f"key id {nk.id}" if nk else "no key",
                "different",
                "pseudonyms made under the new policy do not link with old outputs",
            )
        )
    elif ok and nk and ok.source != nk.source:
        changes.append(
            Change(
                "key",
                f"read from {ok.source}",
                f"read from {nk.source}",
                "note",
                "same key id; make sure both sources hold the same key",
            )
        )
    if old.default != new.default:
        weaker = new.default == "keep"
        changes.append(Change(
            "default", old.default, new.default, "weaker" if weaker else "stronger",
            "columns the policy does not name now pass through unprotected" if weaker
            else "columns the policy does not name are now removed"))  # fmt: skip
    ko, kn = old.report.min_group_size, new.report.min_group_size
    if ko != kn:
        changes.append(Change(
            "report.min_group_size", f"{ko} customers", f"{kn} customers",
            "stronger" if kn > ko else "weaker",
            f"reports {'hide' if kn > ko else 'show'} groups of {min(ko, kn)} to "
            f"{max(ko, kn) - 1} customers"))  # fmt: skip
    names = list(dict.fromkeys([*old.columns, *new.columns, *BY_NAME]))
    changes += _rules(old, new, "columns", names)
    changes += _rules(old, new, "quarantine", list(QUARANTINE_COLUMNS))
    if old.description != new.description:
        changes.append(Change("description", "old text", "new text", "note", ""))
    content = [c for c in changes if c.where not in ("name", "description")]
    if content and old.name == new.name and str(old.version) == str(new.version):
        changes.insert(
            0,
            Change(
                "version",
                str(old.version),
                str(new.version),
                "note",
                "the content changed but the version was not raised",
            ),
        )
    return changes


def format_diff(old: Policy | str | Path, new: Policy | str | Path) -> str:
    """The diff as a Markdown document for a reviewer."""
    old, new = load_policy(old), load_policy(new)
    changes = diff_policies(old, new)
    lines = [f"# Policy changes: {old.name} v{old.version} -> {new.name} v{new.version}", "",
             f"- old sha256: {old.sha256}", f"- new sha256: {new.sha256}", ""]  # fmt: skip
    if not changes:
        lines.append("No change in what the policy does.")
        return "\n".join(lines) + "\n"
    counts = {v: sum(c.verdict == v for c in changes)
              for v in ("weaker", "stronger", "different", "note")}  # fmt: skip
    lines.append(
        f"{len(changes)} change(s): {counts['weaker']} weaker, {counts['stronger']} "
        f"stronger, {counts['different']} different, {counts['note']} note(s)."
    )
    if counts["weaker"]:
        lines.append("")
        lines.append("**Protection gets weaker in places: review those first.**")
    lines.append("")
    order = {"weaker": 0, "different": 1, "stronger": 2, "note": 3}
    for c in sorted(changes, key=lambda c: order[c.verdict]):
        why = f" — {c.why}" if c.why else ""
        lines.append(f"- **{c.verdict}** `{c.where}`: {c.before} → {c.after}{why}")
    return "\n".join(lines) + "\n"
