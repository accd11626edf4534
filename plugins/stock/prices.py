"""Price files: reading either CSV format into date order, and fetching one from a URL."""

from __future__ import annotations

import csv
import hashlib
import io
import math
import urllib.parse
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import zoo
from zoo import DownloadError, fetch, read_text, suggest

COURSE_COLUMNS = ("Open", "High", "Low", "Volume", "Close")  # the course file has no header row


@dataclass
class Prices:
    """A price file read and put in date order: one row of values per day."""

    names: list[str]  # the columns of `values`: the features, then the target
    values: list[list[float]]
    dates: list[str] | None


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def download(url: str, folder: Path, sha256: str, config) -> Path:
    """A price file from `url`, kept in `folder` under a name of its own, downloaded once.

    Without a sha256 to compare with, the download is kept only if it reads as a price file with the
    columns the config asks for; either way a bad or failed download leaves nothing behind.
    """
    name = Path(urllib.parse.urlparse(url).path).name or "prices.csv"
    path = folder / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"  # two URLs never share a file

    def check(tmp: Path) -> None:
        try:
            read_prices(tmp, config, label="the file")
        except zoo.ZooError as e:
            raise zoo.ZooError(f"{url} is not a price file zoo can read ({e}); nothing was saved") from None

    try:
        return fetch(url, path, sha256 or None, check=check)
    except DownloadError as e:
        saved = "" if "nothing was saved" in e.reason else "; nothing was saved"
        raise zoo.ZooError(f"could not download {url} ({e.reason}){saved}") from None


def read_prices(path: Path, config, label: str | None = None) -> Prices:
    """Read the course's format (no header, # comments, newest first) or a header format such as
    Yahoo's Date,Open,High,Low,Close,Adj Close,Volume; every problem is named with its line number.
    `label` names the file in messages (default: its path)."""
    where = label or str(path)
    text = read_text(path, "price file", where)
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    comments = [line.lstrip("# ").strip() for _, line in lines if line.lstrip().startswith("#")]
    rows = [(n, [cell.strip() for cell in next(csv.reader(io.StringIO(line)))])
            for n, line in lines if not line.lstrip().startswith("#")]
    if not rows:
        raise zoo.ZooError(f"{where} has no data rows")
    if not all(is_number(cell) for cell in rows[0][1]):  # a header row
        header, rows = rows[0][1], rows[1:]
    elif comments and len(comments[-1].split(",")) == len(rows[0][1]):  # "# Open,High,..." as in the course
        header = [c.strip() for c in comments[-1].split(",")]
    elif len(rows[0][1]) == len(COURSE_COLUMNS):
        header = list(COURSE_COLUMNS)
    else:
        raise zoo.ZooError(f"{where} has no header row: add one (Date,Open,...) or a '# Open,High,...' comment line")
    lower: dict[str, int] = {}
    for i, name in enumerate(header):  # a column named twice: which one is read would be a guess
        if name.lower() in lower:
            raise zoo.ZooError(f"{where} names the column {name!r} twice (columns {lower[name.lower()] + 1} and "
                               f"{i + 1}): rename one")
        lower[name.lower()] = i
    wanted = config.columns() + [config.target]
    for name in wanted:
        if name.lower() not in lower:
            shown = ", ".join(header) if len(", ".join(header)) < 200 else ", ".join(header)[:200] + "..."
            raise zoo.ZooError(f"{where} has no column {name!r}{suggest(name, header)} (it has: {shown})")
    columns = [lower[name.lower()] for name in wanted]
    dated = lower.get("date")
    values, dates = [], []
    for n, cells in rows:
        if len(cells) != len(header):
            raise zoo.ZooError(f"{where} line {n} has {len(cells)} cells, the header has {len(header)}")
        row = []
        for name, i in zip(wanted, columns):
            cell = cells[i]
            if not is_number(cell) or not math.isfinite(float(cell)):
                what = "is empty" if cell in ("", "null", "NaN", "nan") else f"is {cell!r}, not a number"
                raise zoo.ZooError(f"{where} line {n}: {name} {what}")
            row.append(float(cell))
        values.append(row)
        if dated is not None:
            try:
                dates.append(date.fromisoformat(cells[dated]).isoformat())
            except ValueError:
                raise zoo.ZooError(f"{where} line {n}: Date {cells[dated]!r} is not a YYYY-MM-DD date") from None
    if dates:
        seen: dict[str, int] = {}
        for (n, _), day in zip(rows, dates):  # two rows of one day: a file joined twice, or a shifted series
            if day in seen:
                raise zoo.ZooError(f"{where} line {n}: the date {day} is on line {seen[day]} already; each day must "
                                   f"be one row")
            seen[day] = n
    if dated is not None and config.order == "auto":
        order = sorted(range(len(values)), key=dates.__getitem__)
        values, dates = [values[i] for i in order], [dates[i] for i in order]
    elif config.order in ("auto", "newest-first"):
        values.reverse()
        dates.reverse()
    return Prices(wanted, values, dates or None)


def is_number(cell: str) -> bool:
    """A decimal number as a CSV writes one: Python's digit separators (`8_31`, which float() reads as
    831) are not, nor are words float() takes (`infinity`) other than the empty-cell markers."""
    if "_" in cell:
        return False
    try:
        float(cell)
    except ValueError:
        return False
    return True
