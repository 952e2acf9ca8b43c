"""Which task gets the next batch of trials: Ansor's gradient-based task scheduler.

A model's latency is f = Σ wᵢ·gᵢ, with wᵢ the calls per run of task i and gᵢ its best
latency so far. After a warm-up round for every task (heaviest first), the next batch goes
to the task whose next round is expected to lower f the most (Zheng et al., OSDI'20, §6):

    ∂f/∂tᵢ ≈ wᵢ · (α·backward + (1-α)·forward)
    backward = (gᵢ(rᵢ) - gᵢ(rᵢ - Δ)) / Δ            the recent improvement per round
    forward  = min(gᵢ - gᵢ/rᵢ, β·Cᵢ / max_k Vₖ) - gᵢ  the optimistic next step

where rᵢ is the task's rounds so far, Cᵢ its floating-point work and Vₖ the best
throughput of the similar tasks (same template, itself included): a task far slower than
its like can gain much. The task with the most negative gradient is chosen; a task that
finished (its space measured, or stopped early) is not.

Since a task's trials are decided round by round, its ETA can only be an estimate: the
share of the budget it has had so far, kept for the rest of the budget (`task_eta`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol


class TaskState(Protocol):
    weight: int
    template: str
    flops: float
    rounds: int
    best_s: float | None
    history: list[float | None]  # best seconds after each round
    finished: bool


@dataclass(frozen=True)
class GradientScheduler:
    alpha: float = 0.2  # weight of the backward (observed) slope against the forward (optimistic) one
    beta: float = 2.0  # how far below its similar tasks' best throughput a task is still worth tuning
    window: int = 3  # rounds the backward slope spans

    def gradient(self, i: int, tasks: list[TaskState]) -> float:
        t = tasks[i]
        similar = [k.flops / k.best_s for k in tasks if k.template == t.template and k.best_s]
        g = t.best_s
        if g is None:  # nothing of it works yet: its latency is what its like would give, if any
            if not similar:
                return 0.0
            g = t.flops / max(similar)
        h = [x for x in t.history if x is not None]
        backward = (h[-1] - h[-1 - self.window]) / self.window if len(h) > self.window else 0.0
        forward_next = g - g / max(t.rounds, 1)
        if similar:
            forward_next = min(forward_next, self.beta * t.flops / max(similar))
        return max(t.weight, 1) * (self.alpha * backward + (1 - self.alpha) * (forward_next - g))

    def pick(self, tasks: list[TaskState]) -> int | None:
        """The index of the task for the next round; None when every task finished."""
        live = [i for i, t in enumerate(tasks) if not t.finished]
        if not live:
            return None
        warm_up = [i for i in live if tasks[i].rounds == 0]
        if warm_up:
            return warm_up[0]
        grads = {i: self.gradient(i, tasks) for i in live}
        return min(live, key=lambda i: (grads[i] if math.isfinite(grads[i]) else 0.0, i))


def task_eta(
    done: int, done_all: int, budget: int, spent_s: float, untried: int, warm_up: int, round_left: int = 0
) -> tuple[int, float] | None:
    """A task's expected trials in all and the seconds until it has them, if it keeps the share
    of the run's trials it has had (`done` of `done_all`) for the rest of the `budget`, at its
    own seconds per trial so far (`spent_s` / `done`: a big kernel's candidates take longer to
    build and time); at least the `round_left` trials of its round in progress, never more
    than its `untried` configurations. Until the warm-up (one round per task, `warm_up` trials
    in all) is over, the share is of the warm-up: the first task's first round is not the whole
    run's. None before it has a trial."""
    if done <= 0:
        return None
    share = done / max(done_all, min(warm_up, budget), 1)
    more = min(max(round(share * max(budget - done_all, 0)), round_left), untried)
    return done + more, more * spent_s / done
