"""Rows from the benchmarks whose ``run(quick) -> dict`` returns free-form results.

``bench_bulk`` and ``bench_server`` report plain dicts. A dict with a ``"rows"`` list of row dicts
(``name``, ``measured``, ``ratio``, ``target``...) is taken as is; any other dict becomes one row
per nested dict plus one row for its top-level numbers, where ``X``, ``X_min`` and ``X_max`` make
one figure with its spread and a key named ``ratio`` (or ending in ``_ratio``) is the row's ratio.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from typing import Any

from benchmarks._util import Row, Stat

__all__ = ["external_rows", "load_runner"]


def load_runner(module: str) -> Callable[[bool], Any] | None:
    """``benchmarks.<module>.run``, or ``None`` when the module does not exist."""
    if importlib.util.find_spec(f"benchmarks.{module}") is None:
        return None
    runner: Callable[[bool], Any] = importlib.import_module(f"benchmarks.{module}").run
    return runner


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _stat(value: object) -> Stat | None:
    """A number, or a ``{"median", "min", "max"}`` dict, as a ``Stat``."""
    number = _number(value)
    if number is not None:
        return Stat(number, number, number, 1)
    if isinstance(value, Mapping) and _number(value.get("median")) is not None:
        median = float(value["median"])
        low, high = _number(value.get("min")), _number(value.get("max"))
        return Stat(median, median if low is None else low, median if high is None else high, 0)
    return None


def _numbers_row(group: str, name: str, values: Mapping[str, Any]) -> Row | None:
    measured: dict[str, Stat] = {}
    ratio: Stat | None = None
    target = _number(values.get("target"))
    for key, value in values.items():
        if key.endswith(("_min", "_max")) or key == "target":
            continue
        stat = _stat(value)
        if stat is None:
            continue
        low, high = _number(values.get(f"{key}_min")), _number(values.get(f"{key}_max"))
        if low is not None and high is not None:
            stat = Stat(stat.median, low, high, 0)
        if key == "ratio" or key.endswith("_ratio"):
            ratio = stat
        else:
            measured[key] = stat
    if not measured and ratio is None:
        return None
    note = values.get("note")
    return Row(
        group,
        name,
        ratio_label="" if ratio is None else "ratio",
        ratio=ratio,
        target=target,
        measured=measured,
        note=note if isinstance(note, str) else "",
    )


def _row_from_dict(group: str, entry: Mapping[str, Any]) -> Row:
    measured = {
        str(k): s for k, v in (entry.get("measured") or {}).items() if (s := _stat(v)) is not None
    }
    return Row(
        group,
        str(entry.get("name", "?")),
        ratio_label=str(entry.get("ratio_label", "ratio")),
        ratio=_stat(entry.get("ratio")),
        target=_number(entry.get("target")),
        measured=measured,
        status=str(entry.get("status", "ok")),
        note=str(entry.get("note", "")),
        at_least=entry.get("at_least") is True,
        ratio_unit=str(entry.get("ratio_unit", "x")),
    )


def external_rows(group: str, result: object) -> list[Row]:
    if not isinstance(result, Mapping):
        return [Row(group, "result", status="error", note=f"run() returned {type(result)}")]
    if isinstance(result.get("rows"), list):
        return [_row_from_dict(group, e) for e in result["rows"] if isinstance(e, Mapping)]
    rows: list[Row] = []
    top = _numbers_row(group, "results", result)
    if top is not None:
        rows.append(top)
    for key, value in result.items():
        if isinstance(value, Mapping) and _stat(value) is None:
            row = _numbers_row(group, str(key), value)
            if row is not None:
                rows.append(row)
    return rows or [Row(group, "results", status="error", note="no numbers in the result")]
