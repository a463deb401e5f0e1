"""A tiny Prometheus text-format registry: counters and gauges with labels, no dependency.

Gauges may be callables evaluated at scrape time (outbox depth, sink state), so the values are never stale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Labels = tuple[tuple[str, str], ...]


def _fmt_labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    """Counters (``inc``) and gauges (``set`` or ``gauge_fn``), rendered by :meth:`render`."""

    def __init__(self, namespace: str = "havel_gateway") -> None:
        self.ns = namespace
        self._help: dict[str, tuple[str, str]] = {}
        self._values: dict[str, dict[Labels, float]] = {}
        self._fns: dict[str, Callable[[], dict[Labels, float] | float]] = {}

    def describe(self, name: str, kind: str, help_text: str) -> None:
        """Declare a metric (``counter`` or ``gauge``) with its help line."""
        self._help[name] = (kind, help_text)
        self._values.setdefault(name, {})

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        """Add to a counter."""
        key = tuple(sorted(labels.items())) if labels else ()
        series = self._values.get(name)
        if series is None:
            series = self._values[name] = {}
        series[key] = series.get(key, 0.0) + value

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge."""
        self._values.setdefault(name, {})[tuple(sorted(labels.items()))] = value

    def gauge_fn(self, name: str, fn: Callable[[], dict[Labels, float] | float]) -> None:
        """A gauge computed at scrape time: ``fn`` returns a value or {labels: value}."""
        self._fns[name] = fn

    def get(self, name: str, **labels: str) -> float:
        """Current value of one series (0 when absent)."""
        return self._values.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def total(self, name: str) -> float:
        """Sum over all label sets of one metric."""
        return sum(self._values.get(name, {}).values())

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready view: {metric: {"label=value,...": value}}."""
        out: dict[str, Any] = {}
        for name, series in self._values.items():
            out[name] = {",".join(f"{k}={v}" for k, v in lbl) or "": val for lbl, val in series.items()}
        return out

    def render(self) -> str:
        """The Prometheus text exposition format (0.0.4)."""
        lines: list[str] = []
        names = sorted(set(self._values) | set(self._fns) | set(self._help))
        for name in names:
            full = f"{self.ns}_{name}"
            kind, help_text = self._help.get(name, ("gauge" if name in self._fns else "counter", name))
            lines.append(f"# HELP {full} {help_text}")
            lines.append(f"# TYPE {full} {kind}")
            series: dict[Labels, float] = dict(self._values.get(name, {}))
            if name in self._fns:
                try:
                    got = self._fns[name]()
                except Exception:  # a scrape must never take the daemon down
                    got = {}
                series.update(got if isinstance(got, dict) else {(): float(got)})
            for labels, value in sorted(series.items()):
                lines.append(f"{full}{_fmt_labels(labels)} {value:g}")
        return "\n".join(lines) + "\n"
