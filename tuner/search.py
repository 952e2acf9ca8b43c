"""Choosing the next candidates: random search, and a learned cost model with annealing.

`ModelSearch` ranks configurations with xgboost (`rank:pairwise`: only the order of
candidates matters, not their predicted seconds) trained on loop-program features
(tuner/features.py) of every measured candidate of the task, retrained before each batch.
A batch is chosen by simulated annealing over the model's scores (see the class), diverse
and partly random. Until enough candidates are measured, it searches at random.

Transfer: the model also trains on other workloads' records (their features are of loop
programs, not of one template's knobs), each workload its own ranking group, so a task
with records of others in the database starts with a model instead of at random.
"""

from __future__ import annotations

import math
import random

import numpy as np

from lathe.lowering.schedules import Config, Space


def random_config(template: str, space: Space, rnd: random.Random) -> Config:
    return Config(template, tuple((k.name, rnd.choice(k.candidates)) for k in space))


def full(template: str, space: Space, config: Config) -> Config:
    """`config` with every knob spelled out (knobs left out take their defaults): one text per point."""
    values = config.resolve(template, space)
    return Config(template, tuple((k.name, values[k.name]) for k in space))


class RandomSearch:
    def __init__(self, template: str, space: Space, seed: int = 0):
        self.template, self.space = template, space
        self.rnd = random.Random(seed)

    def observe(self, config: str, seconds: float | None, features: list[float]) -> None:
        pass

    def propose(self, n: int, tried: set[str], space_size: int) -> list[str]:
        out: list[str] = []
        for _ in range(50 * n):
            if len(out) >= n or len(tried) + len(out) >= space_size:
                break
            c = str(random_config(self.template, self.space, self.rnd))
            if c not in tried and c not in out:
                out.append(c)
        return out


Group = tuple[list[list[float]], list[float | None]]  # one workload's features and seconds (None: failed)


def relevance(values: list[float]) -> list[float]:
    """Labels of one workload's working candidates by their rank in it, 0 (slowest) to 30
    (fastest): the ranker learns orders, and a rank says the same in every workload, where
    a ratio to the fastest crowds most of a wide space's candidates into its lowest labels."""
    order = sorted(range(len(values)), key=lambda i: -values[i])
    labels = [0.0] * len(values)
    for r, i in enumerate(order):
        labels[i] = float(1 + (29 * r) // max(len(values) - 1, 1))
    return labels


def centred(features: list[list[float]], reference: list[list[float]]) -> np.ndarray:
    """Each feature beside its difference from the median over `reference` (the task's own
    candidates): trees split on "more bytes per flop than this task's typical candidate" as
    well as on absolute values, which differ between workloads of different sizes."""
    X = np.asarray(features, dtype=np.float64)
    median = np.median(np.asarray(reference, dtype=np.float64), axis=0)
    return np.hstack([X, X - median]).astype(np.float32)


class Ranker:
    """xgboost `rank:pairwise` over features centred per workload (see `centred`)."""

    def __init__(self, booster):
        self.booster = booster

    def score(self, features: list[list[float]], reference: list[list[float]] | None = None) -> list[float]:
        """Higher is faster. `reference`: the workload's candidates to centre on (its
        measured ones, as in training); by default `features` themselves."""
        import xgboost as xgb

        X = centred(features, reference if reference else features)
        return [float(v) for v in self.booster.predict(xgb.DMatrix(X))]


def train_ranker(groups: list[Group]) -> Ranker | None:
    """One query group per workload: only orders within a workload are learned (seconds of
    different workloads do not compare), so records of every workload teach one model; each
    group's features are centred on its own candidates. None without 2 working candidates."""
    import xgboost as xgb

    X: list[np.ndarray] = []
    labels: list[float] = []
    sizes: list[int] = []
    for feats, seconds in groups:
        rows = [(f, s) for f, s in zip(feats, seconds) if f]
        if len({len(f) for f, _ in rows}) > 1:
            continue
        ok = [i for i, (_, s) in enumerate(rows) if s]
        if len(rows) < 2 or not ok:
            continue
        X.append(centred([f for f, _ in rows], [rows[i][0] for i in ok]))
        ranks = dict(zip(ok, relevance([rows[i][1] for i in ok])))  # type: ignore[misc]
        labels += [ranks.get(i, -1.0) + 1.0 for i in range(len(rows))]  # a failed candidate below every working one
        sizes.append(len(rows))
    if sum(1 for label in labels if label > 0) < 2 or len({x.shape[1] for x in X}) != 1:
        return None
    d = xgb.DMatrix(np.vstack(X), label=np.asarray(labels, dtype=np.float32))
    d.set_group(sizes)
    params = {"objective": "rank:pairwise", "eta": 0.3, "max_depth": 6, "verbosity": 0, "nthread": 1}
    return Ranker(xgb.train(params, d, num_boost_round=60))


def pairwise_accuracy(scores: list[float], seconds: list[float], min_ratio: float = 1.0) -> tuple[float, int]:
    """The share of pairs of working candidates that `scores` order as their seconds do
    (higher score: faster; a tie is half right), over the pairs whose seconds differ by more than `min_ratio`;
    and how many pairs that was."""
    right = 0.0
    total = 0
    for i in range(len(seconds)):
        for j in range(i + 1, len(seconds)):
            a, b = seconds[i], seconds[j]
            if max(a, b) <= min_ratio * min(a, b):
                continue
            total += 1
            right += 0.5 if scores[i] == scores[j] else float((scores[i] > scores[j]) == (a < b))
    return (right / total if total else math.nan), total


def knob_distance(a: str, b: str) -> int:
    """How many knobs two configurations (spelled out in full) set differently."""
    va, vb = dict(Config.parse(a).values), dict(Config.parse(b).values)
    return sum(1 for k in va.keys() | vb.keys() if va.get(k) != vb.get(k))


class ModelSearch(RandomSearch):
    """xgboost ranking over features, simulated annealing over its predictions, ε-greedy,
    diverse batches.

    Featurising a candidate lowers it (a tenth of a second or so), which is what the search
    spends, so every featurised candidate is kept and re-scored by each new model, and a
    round featurises at most `new_per_round` more: annealing chains start from the best
    measured configurations and the best-scored unmeasured ones (and some random ones), and
    walk one knob at a time (to a neighbouring value of an ordered knob, or any value).
    The batch is the best-scored, each at least `min_distance` knobs from the others in it
    (no near-duplicates: a batch of one configuration's twins measures one thing), and a
    share `epsilon` of it random (exploration)."""

    def __init__(
        self,
        template: str,
        space: Space,
        featurize,
        seed: int = 0,
        epsilon: float = 0.2,
        min_train: int = 8,
        sa_steps: int = 8,
        new_per_round: int = 64,
        min_distance: int = 2,
        prior: dict[str, Group] | None = None,
        key: str = "",
    ):
        super().__init__(template, space, seed)
        self.featurize = featurize  # config text -> features (lowering the candidate)
        # transfer: other workloads' measured features and seconds, by workload key (own `key` left out)
        self.prior, self.key = prior if prior is not None else {}, key
        self.epsilon, self.min_train, self.sa_steps = epsilon, min_train, sa_steps
        self.new_per_round, self.min_distance = new_per_round, min_distance
        self.X: list[list[float]] = []
        self.observed: list[str] = []
        self.seconds: list[float | None] = []
        self.features: dict[str, list[float]] = {}
        self.model = None
        self.chosen_by_model = 0

    def observe(self, config: str, seconds: float | None, features: list[float]) -> None:
        if features:
            self.features[config] = features
            self.X.append(features)
            self.observed.append(config)
            self.seconds.append(seconds)

    def _train(self) -> None:
        own = (self.X, self.seconds)
        others = [g for key, g in self.prior.items() if key != self.key]
        if sum(1 for s in self.seconds if s) + sum(1 for _, ss in others for s in ss if s) < self.min_train:
            self.model = None
            return
        self.model = train_ranker([own, *others])

    def _features(self, config: str) -> list[float]:
        if config not in self.features:
            try:
                self.features[config] = self.featurize(config)
            except Exception:  # a candidate that does not lower: the worker will say why
                self.features[config] = []
        return self.features[config]

    def _score(self, configs: list[str]) -> list[float]:
        feats = [self._features(c) for c in configs]
        width = max((len(f) for f in feats if f), default=0)
        if not width or self.model is None:
            return [0.0] * len(configs)
        valid = [f for f in feats if len(f) == width]
        # centred on the task's measured working candidates, as its group was in training
        # (before any: on the candidates scored, the transfer's first proposals)
        reference = [f for f, s in zip(self.X, self.seconds) if s and len(f) == width]
        scores = iter(self.model.score(valid, reference or valid))
        return [next(scores) if len(f) == width else -math.inf for f in feats]

    def _neighbour(self, config: str) -> str:
        """`config` with one knob changed: to a neighbouring value of an ordered knob half the
        time (small steps where the model's landscape is smooth), else to any other value."""
        values = dict(Config.parse(config).values)
        k = self.rnd.choice([k for k in self.space if len(k.candidates) > 1] or list(self.space))
        current = values.get(k.name, k.default)
        ordered = all(isinstance(v, int) for v in k.candidates) and current in k.candidates
        if ordered and self.rnd.random() < 0.5:
            i = k.candidates.index(current) + self.rnd.choice((-1, 1))
            values[k.name] = k.candidates[min(max(i, 0), len(k.candidates) - 1)]
        else:
            values[k.name] = self.rnd.choice([v for v in k.candidates if v != current] or list(k.candidates))
        return str(Config(self.template, tuple((kk.name, values.get(kk.name, kk.default)) for kk in self.space)))

    def _anneal(self, starts: list[str], tried: set[str]) -> dict[str, float]:
        """Scores of every featurised candidate after annealing chains from `starts`."""
        known = list(self.features)
        scores = dict(zip(known, self._score(known)))  # every candidate seen so far, by the new model
        scores.update(zip(starts, self._score([c for c in starts])))
        finite = [v for v in scores.values() if math.isfinite(v)]
        temperature = float(np.std(finite)) if len(finite) > 1 else 1.0
        current = list(starts)
        budget = self.new_per_round
        for _ in range(self.sa_steps):
            proposals = [self._neighbour(c) for c in current]
            new = list(dict.fromkeys(p for p in proposals if p not in scores))[:budget]
            budget -= len(new)
            scores.update(zip(new, self._score(new)))
            for idx, (c, p) in enumerate(zip(current, proposals)):
                if p not in scores:
                    continue
                delta = scores[p] - scores[c]
                if delta >= 0 or self.rnd.random() < math.exp(delta / max(temperature, 1e-6)):
                    current[idx] = p
            temperature *= 0.7
            if budget <= 0:
                break
        return scores

    def propose(self, n: int, tried: set[str], space_size: int) -> list[str]:
        self._train()
        if self.model is None:
            return super().propose(n, tried, space_size)
        measured = [c for _, c in sorted((s, c) for c, s in zip(self.observed, self.seconds) if s)]
        known = [c for c in self.features if c not in tried and self.features[c]]
        best_unmeasured = [c for _, c in sorted(zip(self._score(known), known), key=lambda x: -x[0])] if known else []
        starts = list(
            dict.fromkeys([*measured[:n], *best_unmeasured[: n // 2], *super().propose(n, tried, space_size)])
        )
        scores = self._anneal(starts, tried)
        ranked = [c for c, v in sorted(scores.items(), key=lambda x: -x[1]) if c not in tried and math.isfinite(v)]
        n_random = sum(1 for _ in range(n) if self.rnd.random() < self.epsilon)
        out = self._diverse(ranked, n - n_random)
        self.chosen_by_model = len(out)  # the batch's first ones; the rest are random
        out += [c for c in super().propose(n, tried | set(out), space_size) if c not in out][: n - len(out)]
        return out

    def _diverse(self, ranked: list[str], n: int) -> list[str]:
        """The best of `ranked`, each at least `min_distance` knobs from those chosen before it
        (relaxed a knob at a time when too few are that far apart)."""
        for distance in range(self.min_distance, -1, -1):
            out: list[str] = []
            for c in ranked:
                if len(out) >= n:
                    break
                if all(knob_distance(c, o) >= distance for o in out):
                    out.append(c)
            if len(out) >= min(n, len(ranked)):
                return out
        return ranked[:n]
