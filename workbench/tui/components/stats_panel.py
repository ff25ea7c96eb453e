"""The numbers of a run at a glance: progress, speed, optimiser state, scores, device."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ..display_format import count, duration, metric, metric_label
from ..run_watcher import RunHistory


class StatsPanel(Static):
    def show(self, history: RunHistory) -> None:
        last = history.train[-1] if history.train else {}
        valid = history.valid[-1] if history.valid else {}
        status = history.status
        name = history.metric
        best = history.best()
        step = last.get("step", status.get("step"))
        cells = [
            (
                "step",
                f"{step:,} · ep {last.get('epoch', status.get('epoch', '—'))}"
                if isinstance(step, int)
                else "—",
            ),
            ("loss", _loss(last)),
            ("tok/s", count(last.get("tgt_tokens_per_s"))),
            ("lr", f"{last['lr']:.2e}" if isinstance(last.get("lr"), (int, float)) else "—"),
            ("grad", f"{last['grad_norm']:.3g}" if isinstance(last.get("grad_norm"), (int, float)) else "—"),
            (f"valid {metric_label(name)}", metric(name, valid.get(name))),
            ("best", f"{metric(name, best[0])} @{count(best[1])}" if best else "—"),
            ("ETA", duration(history.eta_seconds())),
            ("time", duration(last.get("wall"))),
            ("on", on_what(status)),  # in a wide column: the cells before it are always there
            ("memory", f"{history.memory_mb:.0f} MB" if history.memory_mb else "—"),
            ("params", count(status.get("params")) if status.get("params") else "—"),
            # Token accuracy under teacher forcing, from the validation's loss pass (runs since it exists).
            *([("valid acc", metric("accuracy", valid["accuracy"]))] if _extra_accuracy(name, valid) else []),
        ]
        grid = Table.grid(expand=True, padding=(0, 1))
        for ratio in (4, 5, 4, 5):
            grid.add_column(ratio=ratio, no_wrap=True, overflow="ellipsis")
        for row in range(0, len(cells), 4):
            grid.add_row(
                *(
                    Text.assemble((f"{label} ", "dim"), (value, "bold"))
                    for label, value in cells[row : row + 4]
                )
            )
        self.update(grid)


def _extra_accuracy(headline: str, valid: dict) -> bool:
    return headline != "accuracy" and isinstance(valid.get("accuracy"), (int, float))


def _loss(record: dict) -> str:
    if not isinstance(record.get("loss"), (int, float)):
        return "—"
    ppl = record.get("ppl")
    return f"{record['loss']:.3f}" + (f" ppl {ppl:.3g}" if isinstance(ppl, (int, float)) else "")


def on_what(status: dict) -> str:
    """The device, and how many processes share the run: the trainer's "cpu (2 threads)" as
    "cpu · 2 threads", "2 × cpu · 1 thread" for two processes."""
    device = str(status.get("device") or "—")
    kind, _, detail = device.partition(" (")
    if detail.endswith(")"):
        device = f"{kind} · {detail[:-1]}"
    processes = status.get("processes")
    return f"{processes} × {device}" if isinstance(processes, int) and processes > 1 else device
