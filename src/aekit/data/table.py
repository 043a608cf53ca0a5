"""CSV tables: numeric columns as features, one column of labels (named, or found), a header or none."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np

from ..errors import AekitError, check
from ..limits import check_load_size
from .registry import Raw, register_format


def read_csv(path: Path, label_column: str | None = None) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """Read a numeric CSV table: (x (N, D) float64, labels or None, class names or None).

    A first row that is not all numbers is the header. label_column (a header name or a 0-based column
    number) is kept out of the features and used as labels. Rows are parsed one at a time into an array
    sized from the file's line count, which is checked against the load limit first.
    """
    try:
        ends = [0, 0]  # line feeds and carriage returns: rows end with either or both
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                ends[0] += block.count(b"\n")
                ends[1] += block.count(b"\r")
        lines = 1 + max(ends)
        with open(path, newline="", encoding="utf-8-sig") as f:
            return _parse_csv(path, csv.reader(f), lines, label_column)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise AekitError(f"{path}: not a readable CSV file ({e})") from None


def _parse_csv(path: Path, reader, lines: int, label_column: str | None):
    rows = (r for r in reader if any(cell.strip() for cell in r))
    first = next(rows, None)
    check(first is not None, f"{path}: the CSV file is empty")
    header = None
    if not all(_is_number(c) for c in first):
        header, first = [c.strip() for c in first], next(rows, None)
    check(first is not None, f"{path}: the CSV file has a header but no data rows")
    width = len(header or first)
    names = header or [str(i) for i in range(width)]
    label_idx = None
    if label_column is not None:
        if label_column in names:
            label_idx = names.index(label_column)
        else:
            check(
                label_column.isdigit() and int(label_column) < width,
                f"{path}: no column {label_column!r} (columns: {', '.join(names)})",
            )
            label_idx = int(label_column)
    keep = [j for j in range(width) if j != label_idx]
    check(keep, f"{path}: no feature columns left besides the label column")
    # float64 as read, then the float32 scaled copy and the split's copy of it: 16 bytes a value at most
    check_load_size(lines * len(keep) * 16, path, f"a table of up to {lines} rows and {len(keep)} columns")
    x = np.empty((lines, len(keep)), dtype=np.float64)
    label_ids = np.empty(lines if label_idx is not None else 0, dtype=np.int64)
    seen: dict[str, int] = {}
    n = 0
    for row in itertools.chain([first], rows):
        check(len(row) == width, f"{path}: line {reader.line_num} has {len(row)} fields, expected {width}")
        if n == len(x):  # mixed line endings: more rows than the count said
            check_load_size(2 * n * len(keep) * 16, path, f"a table of over {n} rows and {len(keep)} columns")
            x = np.concatenate([x, np.empty_like(x)])
            label_ids = np.concatenate([label_ids, np.empty_like(label_ids)])
        try:
            x[n] = [float(row[j]) for j in keep]
        except ValueError:
            j = next(j for j in keep if not _is_number(row[j]))
            raise AekitError(
                f"{path}: column {names[j]!r} is not numeric ({row[j]!r} on line {reader.line_num}); "
                "aekit reads numeric tables (name a label column with --label-column)"
            ) from None
        if label_idx is not None:
            label_ids[n] = seen.setdefault(row[label_idx].strip(), len(seen))
        n += 1
    x = x[:n]
    if label_idx is None:
        return x, None, None
    classes = sorted(seen, key=lambda c: (not _is_number(c), float(c) if _is_number(c) else 0.0, c))
    order = np.empty(len(seen), dtype=np.int64)
    order[[seen[c] for c in classes]] = np.arange(len(classes))
    return x, order[label_ids[:n]], classes


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@register_format(".csv", options=("label_column",), what=".csv tables")
def _csv(path: Path, options) -> Raw:
    return Raw(*read_csv(path, options.label_column))
