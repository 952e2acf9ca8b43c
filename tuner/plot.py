"""The tuning curve: best-so-far GFLOP/s against trials, one line per task.

Drawn from the database (every record of the model's tasks, in the order they were
appended), so a resumed run's plot shows the whole history, failures included as trials
that gained nothing. matplotlib is an optional extra: `pip install 'lathe[plot]'`.
"""

from __future__ import annotations

import os

from lathe.errors import LatheError
from lathe.tuner.records import Record
from lathe.tuner.tasks import Task

PLOT_HINT = "pip install 'lathe[plot]'"


def check_plotting() -> None:
    """Said before tuning starts, not after it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise LatheError("--plot needs matplotlib", note=PLOT_HINT) from None


def best_so_far(task: Task, recs: list[Record]) -> list[float]:
    """GFLOP/s of the best working configuration after each of the task's trials (0 before one works)."""
    best = 0.0
    curve = []
    for r in recs:
        if r.workload == task.key and r.target == task.target:
            best = max(best, r.gflops if r.status == "ok" else 0.0)
            curve.append(best)
    return curve


def plot_curves(tasks: list[Task], recs: list[Record], path: str | os.PathLike) -> None:
    check_plotting()
    import matplotlib

    matplotlib.use("Agg")  # files only: no display is needed or wanted
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for t in tasks:
        curve = best_so_far(t, recs)
        if curve:
            ax.step(range(1, len(curve) + 1), curve, where="post", label=f"{t.name} (×{t.weight}, {t.template})")
    ax.set_xlabel("trials of the task")
    ax.set_ylabel("best GFLOP/s so far")
    ax.set_title("lathe tune: tuning curves")
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
    try:
        fig.savefig(path, dpi=100)
    except OSError as e:
        raise LatheError(f"cannot write the plot {path}: {e.strerror}") from None
    finally:
        plt.close(fig)
