"""Notebook output guard: mask telephone numbers in displayed frames, and warn.

``cemkit.guard()`` (or ``%load_ext cemkit``) installs display formatters in the running IPython
kernel for pandas DataFrames, Series and Stylers. Before a frame is rendered (text or HTML), every
string cell, index label and large integer in a column that is *not protected* is searched for
telephone-number-shaped values (:func:`tn_spans`: digit runs checked against the
``phonenumbers`` numbering plans); each one is replaced by ``[masked TN]`` and a
:class:`~cemkit.errors.PrivacyWarning` names the columns (never the values).

A column is protected when the frame came out of :func:`cemkit.protect` and the policy applied
an action other than ``keep`` to it (``DataFrame.attrs["cemkit_protected"]``, which pandas carries
through ``head``, selections and most operations): FPE pseudonyms look like numbers on purpose
and are left alone there.

Only what is displayed is checked (the rows pandas would show), so a 10-million-row frame costs
no more than its head and tail. The guard covers rich display (a frame as the last expression
of a cell, ``display(df)``). Everything else a cell shows goes through the same detector
(:mod:`cemkit.privacy.detect`): other displayed objects (scalars such as
``df.loc[4, "b_number"]``, ``.values``, ``.to_dict()``, ``.to_html()`` strings, Arrow and polars
frames) have the numbers in their text masked, and the kernel's ``sys.stdout`` and
``sys.stderr`` are wrapped so that ``print(df)`` is masked too. Integers under 9 digits shown
alone are counts and left as they are. Run ``cemkit scan-notebook`` before committing notebooks
to catch what went around the kernel (files written by hand).

Examples
--------
>>> text = "call +44 20 7946 0958 now"
>>> [text[start:end] for start, end in tn_spans(text)]
['+44 20 7946 0958']
>>> mask_text("from 020 7946 0958 to ext 201")
'from [masked TN] to ext 201'
"""

from __future__ import annotations

import sys
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from cemkit.errors import CemkitError, PrivacyWarning
from cemkit.privacy.detect import CANDIDATE as _CANDIDATE
from cemkit.privacy.detect import (  # noqa: F401 - tn_spans re-exported
    DEFAULT_REGIONS,
    MASK,
    has_candidate,
    mask_text,
    tn_spans,
)

#: ``DataFrame.attrs`` key where :func:`cemkit.protect` records the action applied per column.
PROTECTED_ATTR = "cemkit_protected"
#: Smallest integer checked as a telephone number (9 digits; see :meth:`_Masker.series`).
MIN_INTEGER_TN = 100_000_000


class _Masker:
    """Masks the displayed part of a frame; remembers which columns it had to mask."""

    def __init__(self, regions: Sequence[str]) -> None:
        self.regions = tuple(regions)
        self.cache: dict[str, str] = {}

    def text(self, value: str) -> str:
        out = self.cache.get(value)
        if out is None:
            out = mask_text(value, self.regions) if _CANDIDATE.search(value) else value
            if len(self.cache) < 100_000:
                self.cache[value] = out
        return out

    def series(self, s: pd.Series) -> tuple[pd.Series, int]:
        """Masked copy of a column (strings and integers of 7+ digits) and the cells masked."""
        if pd.api.types.is_integer_dtype(s.dtype):
            # Integers of up to 8 digits are counters, ids and row numbers far more often than
            # telephone numbers (which, stored as integers, have lost their '+' or leading 0
            # and still have 9 digits or more).
            as_text = s.astype("string")
            big = s.abs() >= MIN_INTEGER_TN
            if not big.fillna(False).any():
                return s, 0
            masked = as_text.where(
                ~big.fillna(False), as_text.map(lambda v: v if pd.isna(v) else self.text(str(v)))
            )
            hits = int((masked != as_text).fillna(False).sum())
            return (masked if hits else s), hits
        if not (pd.api.types.is_string_dtype(s.dtype) or s.dtype == object):
            return s, 0

        def one(v: Any) -> Any:
            return self.text(v) if isinstance(v, str) else v

        masked = s.map(one)
        hits = sum(1 for new, old in zip(masked, s, strict=True)
                   if isinstance(old, str) and new != old)  # fmt: skip
        return masked, hits

    def index(self, idx: pd.Index) -> tuple[pd.Index, int]:
        if isinstance(idx, pd.MultiIndex):
            levels = [self.series(pd.Series(idx.get_level_values(i)))
                      for i in range(idx.nlevels)]  # fmt: skip
            hits = sum(h for _, h in levels)
            if not hits:
                return idx, 0
            return pd.MultiIndex.from_arrays([s.to_numpy() for s, _ in levels],
                                             names=idx.names), hits  # fmt: skip
        masked, hits = self.series(pd.Series(idx))
        return (pd.Index(masked.to_numpy(), name=idx.name) if hits else idx), hits


def protected_columns(frame: pd.DataFrame | pd.Series) -> set[str]:
    """Columns a policy protected (any action but ``keep``), from ``attrs["cemkit_protected"]``."""
    actions = frame.attrs.get(PROTECTED_ATTR) or {}
    return {str(c) for c, a in actions.items() if a != "keep"}


def _window(frame: pd.DataFrame | pd.Series) -> pd.DataFrame | pd.Series:
    """The rows pandas would display (head and tail around the ellipsis)."""
    max_rows = pd.get_option("display.max_rows")
    if max_rows is None or len(frame) <= max_rows:
        return frame
    # Longer than max_rows, so pandas still truncates it the same way, showing only rows of
    # this head and tail; the caller restores the real size in the rendered text.
    half = max_rows // 2 + 1
    return pd.concat([frame.iloc[:half], frame.iloc[-half:]])


def mask_frame(
    frame: pd.DataFrame | pd.Series,
    regions: Sequence[str] = DEFAULT_REGIONS,
    *,
    displayed_only: bool = True,
) -> tuple[pd.DataFrame | pd.Series, list[str]]:
    """A masked copy of the displayed part of a frame and the names of the columns masked.

    Columns the frame's policy protected are left alone; every other column (and the index)
    has its telephone-number-shaped values replaced by ``[masked TN]``. With
    ``displayed_only`` (the default) only the rows pandas would display are kept and checked.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"caller": ["+44 20 7946 0958", "ext 201"], "calls": [3, 1]})
    >>> masked, columns = mask_frame(df)
    >>> masked["caller"].tolist(), columns
    (['[masked TN]', 'ext 201'], ['caller'])
    """
    masker = _Masker(regions)
    window = _window(frame) if displayed_only else frame
    skip = protected_columns(frame)
    hit_columns: list[str] = []
    if isinstance(window, pd.Series):
        out_s = window
        if str(window.name) not in skip:
            out_s, hits = masker.series(window)
            if hits:
                hit_columns.append(str(window.name))
        new_index, hits = masker.index(window.index)
        if hits:
            hit_columns.append("(index)")
            out_s = out_s.set_axis(new_index)
        return out_s, hit_columns
    out = window.copy(deep=False)
    for pos, name in enumerate(window.columns):
        if str(name) in skip:
            continue
        masked, hits = masker.series(window.iloc[:, pos])
        if hits:
            out.isetitem(pos, masked)
            hit_columns.append(str(name))
    new_index, hits = masker.index(window.index)
    if hits:
        out.index = new_index
        hit_columns.append("(index)")
    return out, hit_columns


def _fix_dimensions(text: str, shown: Any, full: Any) -> str:
    """Let the rendered window report the frame's real size."""
    if len(shown) == len(full):
        return text
    ncols = full.shape[1] if getattr(full, "ndim", 1) == 2 else None
    if ncols is not None:
        text = text.replace(f"{len(shown)} rows × {ncols} columns",
                            f"{len(full)} rows × {ncols} columns")  # fmt: skip
        return text.replace(f"[{len(shown)} rows x {ncols} columns]",
                            f"[{len(full)} rows x {ncols} columns]")  # fmt: skip
    return text.replace(f"Length: {len(shown)}", f"Length: {len(full)}")


def _warn(columns: list[str]) -> None:
    warnings.warn(
        PrivacyWarning(
            f"cemkit guard masked telephone numbers in column(s) {', '.join(columns)} of a "
            "displayed frame; protect the data with cemkit.protect(df, policy) before "
            "displaying it"
        ),
        stacklevel=2,
    )


#: Representations of displayed objects that the guard masks (text a person reads).
_TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex")


def _warn_value(what: str) -> None:
    warnings.warn(
        PrivacyWarning(
            f"cemkit guard masked telephone numbers in {what}; protect the data with "
            "cemkit.protect(df, policy) before showing it"
        ),
        stacklevel=3,
    )


def _small_integer(obj: Any) -> bool:
    """Integers under 9 digits are counts, not numbers (as in :meth:`_Masker.series`)."""
    import numbers

    return (isinstance(obj, numbers.Integral) and not isinstance(obj, bool)
            and abs(int(obj)) < MIN_INTEGER_TN)  # fmt: skip


class _MaskedStream:
    """``sys.stdout``/``sys.stderr`` of a guarded kernel: what is printed is masked too."""

    def __init__(self, stream: Any, regions: Sequence[str]) -> None:
        self._stream = stream
        self._regions = tuple(regions)
        self._busy = False

    def write(self, text: Any) -> Any:
        if isinstance(text, str) and not self._busy and has_candidate(text):
            masked = mask_text(text, self._regions)
            if masked != text:
                text = masked
                self._busy = True  # the warning itself is written to a stream
                try:
                    _warn_value("printed output")
                finally:
                    self._busy = False
        return self._stream.write(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Guard:
    """The installed formatters and what they replaced (to uninstall)."""

    def __init__(self, ipython: Any, regions: Sequence[str]) -> None:
        self.ipython = ipython
        self.regions = tuple(regions)
        self.replaced: list[tuple[Any, type, Any]] = []
        self.format: Any = None
        self.streams: dict[str, Any] = {}

    def render_styler(self, styler: Any) -> str:
        """A Styler renders every row it holds: check them all; drop the styling if masked."""
        try:
            masked, columns = mask_frame(styler.data, self.regions, displayed_only=False)
            if not columns:
                return str(styler._repr_html_())
            text = str(masked._repr_html_()) + (
                "<p><em>Styling removed: cemkit guard masked telephone numbers.</em></p>"
            )
        except Exception as exc:  # noqa: BLE001 - never fall back to the unmasked frame
            return f"[frame hidden: cemkit guard could not check it ({type(exc).__name__})]"
        _warn(columns)
        return text

    def render(self, obj: Any, kind: str) -> str:
        try:
            masked, columns = mask_frame(obj, self.regions)
            if kind == "html":
                if isinstance(masked, pd.Series):
                    return ""
                text = masked._repr_html_() or ""
            else:
                text = repr(masked)
            text = _fix_dimensions(text, masked, obj)
        except Exception as exc:  # noqa: BLE001 - never fall back to the unmasked frame
            return f"[frame hidden: cemkit guard could not check it ({type(exc).__name__})]"
        if columns:
            _warn(columns)
        return text

    def install(self) -> None:
        formatters = self.ipython.display_formatter.formatters
        plain = formatters["text/plain"]
        html = formatters["text/html"]

        def as_plain(obj: Any, p: Any, cycle: bool) -> None:
            p.text(self.render(obj, "plain"))

        def as_html(obj: Any) -> str | None:
            if isinstance(obj, pd.Series):
                return None
            return self.render(obj, "html")

        def hidden(obj: Any) -> None:
            return None  # other representations would bypass the mask

        self._register(plain, as_plain)
        self._register(html, as_html)
        from pandas.io.formats.style import Styler

        old = html.for_type(Styler, self.render_styler)
        self.replaced.append((html, Styler, old))
        for mime in ("text/markdown", "text/latex", "application/vnd.dataresource+json",
                     "application/json"):  # fmt: skip
            if mime in formatters:
                self._register(formatters[mime], hidden)
        # Everything else that is displayed (scalars, dicts, arrays, HTML strings, Arrow and
        # polars frames, ...) and everything printed goes through the same detector.
        shell_formatter = self.ipython.display_formatter
        self.format = shell_formatter.format
        shell_formatter.format = self.format_any
        self.streams = {}
        for name in ("stdout", "stderr"):
            stream = getattr(sys, name)
            if not isinstance(stream, _MaskedStream):
                self.streams[name] = stream
                setattr(sys, name, _MaskedStream(stream, self.regions))

    def format_any(self, obj: Any, include: Any = None, exclude: Any = None) -> Any:
        """IPython's ``DisplayFormatter.format``, with the text of other objects masked."""
        from pandas.io.formats.style import Styler

        data, metadata = self.format(obj, include=include, exclude=exclude)
        if isinstance(obj, pd.DataFrame | pd.Series | Styler) or _small_integer(obj):
            return data, metadata  # frames: masked per column above; small ints are counts
        masked_any = False
        out = {}
        for mime, value in data.items():
            if mime not in _TEXT_MIMES or not isinstance(value, str) or not has_candidate(value):
                # images, and charts (cemkit reports draw aggregates; their specs hold epoch
                # times that look like numbers) are left alone
                out[mime] = value
                continue
            masked = mask_text(value, self.regions)
            out[mime] = masked
            masked_any = masked_any or masked != value
        if masked_any:
            _warn_value(f"a displayed {type(obj).__name__}")
        return out, metadata

    def _register(self, formatter: Any, func: Callable[..., Any]) -> None:
        for cls in (pd.DataFrame, pd.Series):
            old = formatter.for_type(cls, func)
            self.replaced.append((formatter, cls, old))

    def uninstall(self) -> None:
        if getattr(self, "format", None) is not None:
            self.ipython.display_formatter.format = self.format
            self.format = None
        for name, stream in getattr(self, "streams", {}).items():
            if isinstance(getattr(sys, name), _MaskedStream):
                setattr(sys, name, stream)
        self.streams = {}
        for formatter, cls, old in reversed(self.replaced):
            formatter.pop(cls, None)
            if old is not None:
                formatter.for_type(cls, old)
        self.replaced.clear()


_installed: _Guard | None = None


def _ipython(ipython: Any) -> Any:
    if ipython is not None:
        return ipython
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with ipykernel
        get_ipython = None
    ip = get_ipython() if get_ipython is not None else None
    if ip is None:
        raise CemkitError("cemkit.guard() needs a running IPython or Jupyter session",
                          hint="call it from a notebook cell, or `%load_ext cemkit`")  # fmt: skip
    return ip


def guard(ipython: Any = None, *, regions: Sequence[str] = DEFAULT_REGIONS) -> None:
    """Install the notebook output guard in the running IPython kernel (idempotent).

    Parameters
    ----------
    ipython : IPython.core.interactiveshell.InteractiveShell, optional
        The shell; by default the running one.
    regions : sequence of str
        Regions whose national number formats are recognized.

    Examples
    --------
    In a notebook cell::

        import cemkit
        cemkit.guard()        # or: %load_ext cemkit
        df                    # TN-shaped values in unprotected columns show as [masked TN]
    """
    global _installed
    ip = _ipython(ipython)
    if _installed is not None:
        _installed.uninstall()
    _installed = _Guard(ip, regions)
    _installed.install()


def unguard() -> None:
    """Remove the guard's formatters (``%unload_ext cemkit``)."""
    global _installed
    if _installed is not None:
        _installed.uninstall()
        _installed = None


def is_guarded() -> bool:
    """Whether the guard is installed in this process."""
    return _installed is not None


class _CallableModule(types.ModuleType):
    """Lets ``cemkit.guard()`` work even after ``import cemkit.guard`` made the name a module."""

    def __call__(self, ipython: Any = None, *, regions: Sequence[str] = DEFAULT_REGIONS) -> None:
        guard(ipython, regions=regions)


sys.modules[__name__].__class__ = _CallableModule
