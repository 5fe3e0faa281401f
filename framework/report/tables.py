"""Tables that fit a terminal without cutting a number, and the same tables as CSV, JSON or Markdown.

A :class:`Sheet` is a table as plain strings (rich markup allowed in cells), each column with a priority. To fit a
width, the lowest-priority columns are left out first (and named under the table); if the columns that must stay
still do not fit, the rest are split into consecutive parts, each repeating the key columns. Numbers are never
wrapped, cut or elided; only text columns (names, messages) wrap, at a readable minimum width. So a table that
later gains columns (streaming, concurrency...) degrades by priority instead of squeezing every column.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass, field, replace
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Narrowest a wrapping text column is made (unless its longest word is wider).
TEXT_MIN = 12
#: Where a header may break: after a space, a slash or a hyphen, before an @ or a comma.
_BREAKS = re.compile(r"(?<=[ /\-])|(?=[@,])")


@dataclass(frozen=True)
class Column:
    head: str
    numeric: bool = True  # right-aligned, never wrapped or cut
    keep: int = 0  # 0: always shown; higher numbers are left out first when the table does not fit
    key: bool = False  # repeated in every part of a split table (the row's name)
    lines: bool = False  # text broken only at its own line breaks, each line kept whole (a JSON object's fields)


@dataclass(frozen=True)
class Sheet:
    title: str
    columns: list[Column]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)

    def plain_rows(self) -> list[list[str]]:
        return [[plain(c) for c in row] for row in self.rows]

    def records(self) -> list[dict[str, str]]:
        heads = _unique_heads(self.columns)
        return [dict(zip(heads, row)) for row in self.plain_rows()]

    def select(self, indexes: list[int], title: str | None = None) -> Sheet:
        return replace(
            self,
            title=self.title if title is None else title,
            columns=[self.columns[i] for i in indexes],
            rows=[[row[i] for i in indexes] for row in self.rows],
        )


@functools.lru_cache(maxsize=1 << 16)
def plain(cell: str) -> str:
    """A cell's text without rich markup (remembered: fitting a table of 500 cells measures each cell many times)."""
    return Text.from_markup(cell).plain


def _unique_heads(columns: list[Column]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for c in columns:
        name = c.head.strip()
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _words(text: str) -> list[str]:
    return [w for w in _BREAKS.split(text) if w]


def _wrap_head(head: str, width: int) -> str:
    """The header broken into lines of at most ``width`` (a single word wider than that stays whole)."""
    lines: list[str] = []
    for word in _words(head):
        if lines and len((lines[-1] + word).rstrip()) <= width:
            lines[-1] = lines[-1] + word
        else:
            lines.append(word)
    return "\n".join(line.rstrip() for line in lines)


@functools.lru_cache(maxsize=1 << 16)
def _cell_width(cell: str) -> int:
    """The widest line of a cell (markup applied to the whole cell first: a tag may span lines)."""
    return max((Text(line).cell_len for line in plain(cell).split("\n")), default=0)


def _widths(sheet: Sheet) -> list[tuple[int, int]]:
    """(narrowest, natural) content width of each column."""
    out = []
    for i, col in enumerate(sheet.columns):
        cells = [row[i] for row in sheet.rows]
        data = max((_cell_width(c) for c in cells), default=0)
        head_min = max((len(w.rstrip()) for w in _words(col.head)), default=0)
        natural = max(data, len(col.head))
        if col.numeric or col.lines:
            narrowest = max(data, head_min)
        else:
            longest_word = max(
                (len(w.rstrip()) for c in cells for line in plain(c).split("\n") for w in _words(line)), default=0
            )
            narrowest = max(head_min, longest_word, min(natural, TEXT_MIN))
        out.append((narrowest, natural))
    return out


def _rich(sheet: Sheet, widths: list[int]) -> Table:
    table = Table(
        title=sheet.title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1),
        header_style="bold",
    )
    for col, w in zip(sheet.columns, widths):
        table.add_column(
            _wrap_head(col.head, w),
            justify="right" if col.numeric else "left",
            width=w,
            no_wrap=col.numeric or col.lines,
            overflow="fold",
        )
    for row in sheet.rows:
        table.add_row(
            *(
                c if col.numeric else Text.from_markup(c) if col.lines else _wrap_text(c, w)
                for c, col, w in zip(row, sheet.columns, widths)
            )
        )
    return table


def _wrap_text(cell: str, width: int) -> Text:
    """A text cell broken at its own line breaks, and at spaces, slashes, hyphens and before @ into lines of at
    most ``width``; a word longer than that is folded by rich."""
    text = Text.from_markup(cell)
    offsets, pos = [], 0
    for n, source_line in enumerate(text.plain.split("\n")):
        if n:
            offsets.append(pos)  # just after the line break, which the piece before it then loses
        line = 0
        for word in _words(source_line):
            if line and line + len(word.rstrip()) > width:
                offsets.append(pos)
                line = 0
            line += len(word)
            pos += len(word)
        pos += 1  # the line break
    lines = text.divide(offsets)
    for piece in lines:
        piece.rstrip()
    return Text("\n").join(lines)


def _overhead(n: int) -> int:
    """Columns' padding and separators in the box above: one space each side, no outer edge."""
    return 3 * (n - 1) if n else 0


def _fit_widths(sheet: Sheet, width: int | None, shrink_text: bool = True) -> list[int] | None:
    """Widths that fit ``width`` (None: natural widths), or None if even the narrowest do not. Without
    ``shrink_text`` the text columns keep their natural width (names are not wrapped)."""
    pairs = _widths(sheet)
    natural = [n for _, n in pairs]
    if width is None or sum(natural) + _overhead(len(pairs)) <= width:
        return natural
    least = [m if c.numeric or shrink_text else n for (m, n), c in zip(pairs, sheet.columns)]
    slack = width - sum(least) - _overhead(len(pairs))
    if slack < 0:
        return None
    out = list(least)
    # first the figures' headers unfold, then the text columns grow back towards their natural width
    numeric_first = sorted(range(len(pairs)), key=lambda i: not sheet.columns[i].numeric)
    for i in numeric_first:
        grow = min(pairs[i][1] - out[i], slack)
        out[i] += grow
        slack -= grow
    return out


@dataclass(frozen=True)
class Fitted:
    """The parts a sheet is shown in, and the columns left out to fit."""

    parts: list[tuple[Sheet, list[int]]]
    hidden: list[str]


def fit(sheet: Sheet, width: int | None) -> Fitted:
    """Leave out low-priority columns, then split, until every part fits ``width`` (None: no limit).

    Columns of priority 2 and up go before names are wrapped; then names wrap and the rest may go too."""
    for least_kept, shrink in ((2, False), (1, True)):
        shown = list(range(len(sheet.columns)))
        while _fit_widths(sheet.select(shown), width, shrink) is None:
            droppable = [i for i in shown if sheet.columns[i].keep >= least_kept]
            if not droppable:
                break
            shown.remove(max(droppable, key=lambda i: (sheet.columns[i].keep, i)))
        hidden = [c.head for i, c in enumerate(sheet.columns) if i not in shown]
        widths = _fit_widths(sheet.select(shown), width, shrink)
        if widths is not None:
            return Fitted([(sheet.select(shown), widths)], hidden)
    keys = [i for i in shown if sheet.columns[i].key]
    rest = [i for i in shown if i not in keys]
    groups: list[list[int]] = []
    for i in rest:
        if groups and _fit_widths(sheet.select(keys + groups[-1] + [i]), width) is not None:
            groups[-1].append(i)
        else:
            groups.append([i])
    parts = []
    for n, group in enumerate(groups, 1):
        part = sheet.select(keys + group, f"{sheet.title} ({n} of {len(groups)})")
        part = replace(part, notes=sheet.notes if n == len(groups) else [])
        # a column too wide for the terminal on its own is shown whole: wrapping would cut its numbers
        parts.append((part, _fit_widths(part, width) or [n for _, n in _widths(part)]))
    return Fitted(parts, hidden)


def print_sheet(console: Console, sheet: Sheet, width: int | None) -> None:
    """Show ``sheet`` within ``width`` columns (None: at its natural width, all columns: ``--wide``)."""
    fitted = fit(sheet, width)
    for part, widths in fitted.parts:
        table = _rich(part, widths)
        need = sum(widths) + _overhead(len(widths))
        console.print(table, width=max(need, width or 0, len(part.title)))
        if len(fitted.parts) > 1 and not part.notes:
            console.print()
        for note in part.notes:
            console.print(note, width=width or max(need, 80), highlight=False)
    if fitted.hidden:
        console.print(
            f"[dim]not shown to fit {width} columns: {', '.join(fitted.hidden)} (--wide shows every column)[/dim]",
            width=width,
            highlight=False,
        )
    console.print()


def to_markdown(sheet: Sheet) -> str:
    heads = _unique_heads(sheet.columns)
    esc = [h.replace("|", "\\|") for h in heads]
    lines = [f"### {sheet.title}", "", "| " + " | ".join(esc) + " |"]
    lines.append("|" + "|".join("---:" if c.numeric else "---" for c in sheet.columns) + "|")
    for row in sheet.plain_rows():
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |")
    lines += [""] + [plain(n) for n in sheet.notes] + ([""] if sheet.notes else [])
    return "\n".join(lines)


def to_csv(sheet: Sheet) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_unique_heads(sheet.columns))
    writer.writerows(sheet.plain_rows())
    return out.getvalue()


def to_json(sheet: Sheet) -> dict[str, Any]:
    return {"title": sheet.title, "rows": sheet.records(), "notes": [plain(n) for n in sheet.notes]}
