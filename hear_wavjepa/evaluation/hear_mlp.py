"""heareval 2021.1.3's downstream protocol in plain torch (spec/hear.md §A3.2).

The grid (`default`, `fast`, `faster` plus per-task overrides) is shuffled with Python's random
seeded 42 once per task and the first `grid_points` are trained on fold 0; the best (validation
score) is retrained on every other fold and all are tested. Each MLP is Linear → BatchNorm1d →
Dropout → ReLU per hidden layer and an output Linear, xavier-initialised, trained with Adam at
batch 1024 with no shuffling, early-stopped on the primary validation score counted in validation
checks, and tested with its best checkpoint.

Two modes. `batched` (default) trains all grid points of one architecture at once as a stack of
weights (G, in, out) with batched matmuls; grid point g of fold f draws its initialisation and
dropout masks from its own generators seeded from `seed + 1000 f + g`, so a stack equals training
each point alone. `sequential` trains one model after another on torch's global RNG seeded once per
task, consuming random numbers in heareval's order (per layer: Linear's default init, then xavier;
torchinfo's random input; one draw per DataLoader iterator) for parity checks against heareval.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.ndimage import median_filter
from sklearn.model_selection import ParameterGrid
from tqdm import tqdm

from hear_wavjepa.evaluation.cache import CachedTask, SplitData
from hear_wavjepa.evaluation.metrics import Metric, Score, get_metric, primary_value

_DEFAULT_GRID: dict[str, list[Any]] = {
    "hidden_layers": [1, 2],
    "hidden_dim": [1024],
    "dropout": [0.1],
    "lr": [3.2e-3, 1e-3, 3.2e-4, 1e-4],
    "patience": [20],
    "max_epochs": [500],
    "check_val_every_n_epoch": [3],
    "batch_size": [1024],
    "hidden_norm": ["BatchNorm1d"],
    "norm_after_activation": [False],
    "embedding_norm": ["Identity"],
    "initialization": ["xavier_uniform_", "xavier_normal_"],
    "optim": ["Adam"],
}

GRIDS: dict[str, dict[str, list[Any]]] = {
    "default": _DEFAULT_GRID,
    "fast": {**_DEFAULT_GRID, "max_epochs": [10, 50], "check_val_every_n_epoch": [3, 10]},
    "faster": {
        **_DEFAULT_GRID,
        "hidden_layers": [0, 1],
        "hidden_dim": [64, 128],
        "patience": [1, 3],
        "max_epochs": [10],
        "check_val_every_n_epoch": [1],
    },
}

#: heareval's TASK_SPECIFIC_PARAM_GRID (sed_eval is slow, so DCASE validates every 10 epochs).
TASK_SPECIFIC_PARAM_GRID: dict[str, dict[str, list[Any]]] = {
    "dcase2016_task2": {"check_val_every_n_epoch": [10]},
}

EVENT_POSTPROCESSING_GRID: dict[str, list[float]] = {
    "median_filter_ms": [250],
    "min_duration": [125, 250],
}

Postprocessing = tuple[tuple[str, float], ...]

#: Added to a grid point's seed for its dropout generator (kept apart from its init generator).
DROPOUT_SEED_OFFSET = 1_000_003


def task_grid(metadata: dict[str, Any], grid: str = "default") -> dict[str, list[Any]]:
    """The grid for a task: the named grid, then heareval's task overrides, then the metadata's."""
    if grid not in GRIDS:
        raise ValueError(f"unknown grid {grid!r}; known: {', '.join(GRIDS)}")
    out = dict(GRIDS[grid])
    out.update(TASK_SPECIFIC_PARAM_GRID.get(metadata.get("task_name", ""), {}))
    out.update(metadata.get("evaluation_params", {}).get("task_specific_param_grid", {}))
    return out


def sample_grid(grid: dict[str, list[Any]], grid_points: int, rng: random.Random) -> list[dict]:
    """sklearn ParameterGrid order, shuffled by `rng`, first `grid_points` kept (heareval)."""
    confs = list(ParameterGrid(grid))
    rng.shuffle(confs)
    return confs[:grid_points]


def postprocessing_grid(metadata: dict[str, Any]) -> list[Postprocessing]:
    """Event post-processing settings tried at each validation, as (name, value) tuples."""
    grid = metadata.get("evaluation_params", {}).get(
        "event_postprocessing_grid", EVENT_POSTPROCESSING_GRID
    )
    return [tuple(p.items()) for p in ParameterGrid(grid)]


def events_from_frames(
    probabilities: np.ndarray,
    timestamps: np.ndarray,
    labels: Sequence[str],
    median_filter_ms: float,
    min_duration: float,
    threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """One file's (T, C) frame probabilities at `timestamps` (ms) → events (heareval's rules):
    median filter of round(median_filter_ms / mean hop) frames, p > threshold, each run of active
    frames is an event from its first to its last frame timestamp, runs shorter than min_duration
    (ms) dropped; sorted by start."""
    order = np.argsort(timestamps, kind="stable")
    timestamps = timestamps[order]
    probabilities = probabilities[order]
    if median_filter_ms and len(timestamps) > 1:
        width = round(median_filter_ms / float(np.mean(np.diff(timestamps))))
        if width:
            probabilities = median_filter(probabilities, size=(width, 1))
    active = probabilities > threshold
    events = []
    for c in range(active.shape[1]):
        idx = np.flatnonzero(active[:, c])
        if len(idx) == 0:
            continue
        breaks = np.flatnonzero(np.diff(idx) != 1)
        starts = np.concatenate([[idx[0]], idx[breaks + 1]])
        ends = np.concatenate([idx[breaks], [idx[-1]]])
        for s, e in zip(starts, ends, strict=True):
            start, end = float(timestamps[s]), float(timestamps[e])
            if end - start >= min_duration:
                events.append({"label": labels[c], "start": start, "end": end})
    events.sort(key=lambda ev: ev["start"])
    return events


def events_for_files(
    probabilities: np.ndarray,
    filenames: Sequence[str],
    timestamps: np.ndarray,
    labels: Sequence[str],
    postprocessing: Postprocessing,
) -> dict[str, list[dict[str, Any]]]:
    """Frames of many files (rows) → {filename: events}; a repeated timestamp keeps its last row."""
    rows: dict[str, dict[float, int]] = {}
    for i, (name, ts) in enumerate(zip(filenames, timestamps.tolist(), strict=True)):
        rows.setdefault(name, {})[float(ts)] = i
    out = {}
    for name, by_ts in rows.items():
        idx = np.fromiter(by_ts.values(), dtype=np.int64)
        out[name] = events_from_frames(
            probabilities[idx], np.fromiter(by_ts.keys(), dtype=np.float64), labels,
            **dict(postprocessing),
        )  # fmt: skip
    return out


# ----------------------------------------------------------------------------------------------
# Data of one protocol split


@dataclass
class SplitArrays:
    """Embeddings (N, D), multi-hot targets (N, C); event tasks also the split's target events."""

    x: torch.Tensor
    y: torch.Tensor
    data: SplitData
    target_events: dict[str, list[dict[str, Any]]] | None = None


def split_arrays(task: CachedTask, splits: Sequence[str], device: torch.device) -> SplitArrays:
    """Concatenate the cached splits `splits` (train folds) into tensors on `device`."""
    parts = [task.load(s) for s in splits]
    x = np.concatenate([p.embeddings for p in parts])
    y = np.concatenate([task.multi_hot(p) for p in parts])
    if task.prediction_type == "multiclass" and not np.all(y.sum(axis=1) == 1):
        bad = int(np.argmax(y.sum(axis=1) != 1))
        raise ValueError(
            f"{task.path}: multiclass task but row {bad} of {'+'.join(splits)} has "
            f"{int(y[bad].sum())} labels"
        )
    events = None
    if task.embedding_type == "event":
        events = {}
        for s in splits:
            events.update(task.split_events(s))
    data = parts[0] if len(parts) == 1 else None
    return SplitArrays(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device), data, events)  # type: ignore[arg-type]


def check_train_classes(task: CachedTask, train: SplitArrays, others: Sequence[SplitArrays]):
    """ValueError if a class occurs in valid/test but never in the training folds."""
    seen = train.y.sum(0) > 0
    for other in others:
        missing = (other.y.sum(0) > 0) & ~seen
        if missing.any():
            names = [task.labels[i] for i in torch.nonzero(missing).flatten().tolist()]
            raise ValueError(
                f"{task.path}: classes {names[:5]} occur in split {other.data.split} but not in "
                "its training folds"
            )


# ----------------------------------------------------------------------------------------------
# A stack of G MLPs of one architecture


@dataclass
class _Stack:
    """Weights of G same-shaped MLPs: per layer W (G, in, out) and b (G, 1, out)."""

    weights: list[torch.Tensor]
    biases: list[torch.Tensor]
    bn_weight: list[torch.Tensor]
    bn_bias: list[torch.Tensor]
    running_mean: list[torch.Tensor]
    running_var: list[torch.Tensor]
    adam: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    step: int = 0

    def params(self) -> list[torch.Tensor]:
        return self.weights + self.biases + self.bn_weight + self.bn_bias

    def select(self, keep: torch.Tensor) -> _Stack:
        """The sub-stack of grid points `keep` (indices), Adam state included."""

        def pick(ts: list[torch.Tensor], grad: bool) -> list[torch.Tensor]:
            return [t.detach()[keep].clone().requires_grad_(grad) for t in ts]

        out = _Stack(
            pick(self.weights, True),
            pick(self.biases, True),
            pick(self.bn_weight, True),
            pick(self.bn_bias, True),
            pick(self.running_mean, False),
            pick(self.running_var, False),
            {k: pick(v, False) for k, v in self.adam.items()},
            self.step,
        )
        return out

    def snapshot(self, g: int) -> dict[str, list[torch.Tensor]]:
        return {
            name: [t.detach()[g].clone() for t in getattr(self, name)]
            for name in ("weights", "biases", "bn_weight", "bn_bias", "running_mean", "running_var")
        }


def _init_layer(
    fan_in: int, fan_out: int, init: str, gain: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.nn.Linear's default init (kaiming weight, uniform bias), then heareval's xavier."""
    weight = torch.empty(fan_out, fan_in)
    bias = torch.empty(fan_out)
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    torch.nn.init.uniform_(bias, -bound, bound, generator=generator)
    if init == "xavier_uniform_":
        torch.nn.init.xavier_uniform_(weight, gain=gain, generator=generator)
    elif init == "xavier_normal_":
        torch.nn.init.xavier_normal_(weight, gain=gain, generator=generator)
    else:
        raise ValueError(f"unknown initialization {init!r}")
    return weight.T.contiguous(), bias


def _init_stack(
    confs: Sequence[dict],
    nfeatures: int,
    nlabels: int,
    generators: Sequence[torch.Generator | None],
    device: torch.device,
) -> _Stack:
    layers = confs[0]["hidden_layers"]
    hidden = confs[0]["hidden_dim"]
    dims = [nfeatures] + [hidden] * layers + [nlabels]
    per_point = []
    for conf, gen in zip(confs, generators, strict=True):
        layers_g = []
        for i in range(len(dims) - 1):
            gain = 1.0 if i == 0 else math.sqrt(2.0)
            layers_g.append(_init_layer(dims[i], dims[i + 1], conf["initialization"], gain, gen))
        per_point.append(layers_g)
        if gen is None:  # torchinfo.summary's random input (64, nfeatures) in heareval
            torch.rand(64, nfeatures)
    weights = [
        torch.stack([p[i][0] for p in per_point]).to(device).requires_grad_()
        for i in range(len(dims) - 1)
    ]
    biases = [
        torch.stack([p[i][1] for p in per_point])[:, None, :].to(device).requires_grad_()
        for i in range(len(dims) - 1)
    ]
    g = len(confs)

    def const(value: float, grad: bool) -> list[torch.Tensor]:
        return [
            torch.full((g, 1, hidden), value, device=device).requires_grad_(grad)
            for _ in range(layers)
        ]

    return _Stack(
        weights, biases, const(1.0, True), const(0.0, True), const(0.0, False), const(1.0, False)
    )


def _forward(
    stack: _Stack,
    x: torch.Tensor,
    train: bool,
    dropout: float,
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """Logits (G, B, C) of every stacked MLP on the shared input x (B, D)."""
    h = x
    layers = len(stack.weights) - 1
    for i in range(layers):
        h = torch.matmul(h, stack.weights[i]) + stack.biases[i]
        if train:
            if h.shape[1] < 2:
                raise ValueError(
                    "a training batch of 1 item cannot be batch-normalised (BatchNorm1d, as in "
                    "heareval); the training set size is 1 more than a multiple of the batch size"
                )
            mean = h.mean(dim=1, keepdim=True)
            var = h.var(dim=1, unbiased=False, keepdim=True)
            with torch.no_grad():
                n = h.shape[1]
                stack.running_mean[i].mul_(0.9).add_(0.1 * mean)
                stack.running_var[i].mul_(0.9).add_(0.1 * var * n / (n - 1))
        else:
            mean, var = stack.running_mean[i], stack.running_var[i]
        h = (h - mean) / torch.sqrt(var + 1e-5) * stack.bn_weight[i] + stack.bn_bias[i]
        if train and dropout > 0:
            masks = []
            for gen in generators:
                mask = torch.empty(h.shape[1:], device=h.device).bernoulli_(
                    1 - dropout, generator=gen
                )
                masks.append(mask.div_(1 - dropout))
            h = h * torch.stack(masks)
        h = torch.relu(h)
    return torch.matmul(h, stack.weights[-1]) + stack.biases[-1]


def _loss(logits: torch.Tensor, y: torch.Tensor, multiclass: bool) -> torch.Tensor:
    """Per-point mean loss (G,): CE on argmax(one-hot) or BCE-with-logits."""
    g, b, c = logits.shape
    if multiclass:
        target = y.argmax(dim=1).repeat(g)
        loss = F.cross_entropy(logits.reshape(g * b, c), target, reduction="none")
        return loss.view(g, b).mean(dim=1)
    target = y.expand(g, b, c)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2))


def _adam_step(stack: _Stack, lr: torch.Tensor) -> None:
    """torch.optim.Adam's update (betas 0.9/0.999, eps 1e-8) with a learning rate per point."""
    params = stack.params()
    if not stack.adam:
        stack.adam = {
            "m": [torch.zeros_like(p) for p in params],
            "v": [torch.zeros_like(p) for p in params],
        }
    stack.step += 1
    bc1 = 1 - 0.9**stack.step
    bc2_sqrt = math.sqrt(1 - 0.999**stack.step)
    with torch.no_grad():
        for p, m, v in zip(params, stack.adam["m"], stack.adam["v"], strict=True):
            grad = p.grad
            m.lerp_(grad, 0.1)
            v.mul_(0.999).addcmul_(grad, grad, value=0.001)
            denom = (v.sqrt() / bc2_sqrt).add_(1e-8)
            step = (lr / bc1).view(-1, *([1] * (p.dim() - 1)))
            p.sub_(step * m / denom)
            p.grad = None


def _predict(
    stack: _Stack, x: torch.Tensor, batch_size: int, multiclass: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode (logits, probabilities), each (G, N, C)."""
    with torch.no_grad():
        chunks = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
        logits = torch.cat([_forward(stack, c, False, 0.0, []) for c in chunks], dim=1)
    probs = torch.softmax(logits, dim=-1) if multiclass else torch.sigmoid(logits)
    return logits, probs


# ----------------------------------------------------------------------------------------------
# Scoring of one model's predictions


@dataclass
class Scorer:
    """Scores predictions of one split the way heareval's validation/test epoch ends do."""

    task: CachedTask
    metrics: list[Metric]
    multiclass: bool
    monitor_loss: bool
    post_grid: list[Postprocessing]

    @classmethod
    def for_task(cls, task: CachedTask) -> Scorer:
        """The task's metrics (`evaluation`, primary first) and its monitored quantity."""
        monitor_loss = not task.metadata.get("use_scoring_for_early_stopping", True)
        is_event = task.embedding_type == "event"
        return cls(
            task,
            [get_metric(name) for name in task.evaluation],
            task.prediction_type == "multiclass",
            monitor_loss,
            postprocessing_grid(task.metadata) if is_event else [],
        )

    @property
    def maximize(self) -> bool:
        """Whether the monitored value is better when larger (val_loss and error rates are not)."""
        return False if self.monitor_loss else self.metrics[0].maximize

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> float:
        return float(_loss(logits[None], y, self.multiclass)[0])

    def validate(
        self, logits: torch.Tensor, probs: torch.Tensor, split: SplitArrays
    ) -> tuple[float, Postprocessing]:
        """The monitored value and (event tasks) the best post-processing of this validation."""
        if self.monitor_loss:
            value = self.loss(logits, split.y)
            post = self._best_postprocessing(probs, split)[1] if split.target_events else ()
            return value, post
        if split.target_events is None:
            return primary_value(self._scene(self.metrics[0], probs, split)), ()
        return self._best_postprocessing(probs, split)

    def _scene(self, metric: Metric, probs: torch.Tensor, split: SplitArrays) -> Score:
        return metric(probs.cpu().numpy(), split.y.cpu().numpy())

    def _events(self, probs: torch.Tensor, split: SplitArrays, post: Postprocessing) -> dict:
        data = split.data
        return events_for_files(
            probs.cpu().numpy(), data.filenames, data.timestamps, self.task.labels, post
        )

    def _best_postprocessing(
        self, probs: torch.Tensor, split: SplitArrays
    ) -> tuple[float, Postprocessing]:
        scored = []
        for post in self.post_grid:
            events = self._events(probs, split, post)
            value = primary_value(self.metrics[0](events, split.target_events, self.task.labels))
            scored.append((0.0 if math.isnan(value) else value, post))
        scored.sort(reverse=True)
        return scored[0]

    def test(
        self, logits: torch.Tensor, probs: torch.Tensor, split: SplitArrays, post: Postprocessing
    ) -> dict[str, float]:
        """heareval's test dict: test_loss, test_<metric> (and sub-scores), test_score."""
        out = {"test_loss": self.loss(logits, split.y)}
        events = self._events(probs, split, post) if split.target_events is not None else None
        for metric in self.metrics:
            if events is not None:
                score = metric(events, split.target_events, self.task.labels)
            else:
                score = self._scene(metric, probs, split)
            if isinstance(score, tuple):
                values = {f"test_{metric.name}_{k}": float(v) for k, v in score}
                values[f"test_{metric.name}"] = primary_value(score)
            else:
                values = {f"test_{metric.name}": float(score)}
            out.update(values)
        out["test_score"] = out[f"test_{self.metrics[0].name}"]
        return out


# ----------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainedPoint:
    """One trained grid point: its conf, best validation score/epoch/post-processing and weights."""

    conf: dict[str, Any]
    validation_score: float
    epoch: int
    postprocessing: Postprocessing
    state: dict[str, list[torch.Tensor]]
    time_in_min: float
    last_epoch: int


def _better(value: float, best: float | None, maximize: bool) -> bool:
    if best is None:
        return True
    return value > best if maximize else value < best


def train_stack(
    confs: Sequence[dict],
    train: SplitArrays,
    valid: SplitArrays,
    scorer: Scorer,
    maximize: bool,
    seeds: Sequence[int | None],
    device: torch.device,
    desc: str = "train",
) -> list[TrainedPoint]:
    """Train same-architecture grid points together; return each one's best checkpoint.

    Point i initialises from a CPU generator seeded `seeds[i]` and draws its dropout masks from a
    generator on `device` seeded `seeds[i] + DROPOUT_SEED_OFFSET`; `None` seeds (sequential mode)
    use torch's global RNG and also make the draws heareval's DataLoaders make.
    """
    start = time.time()
    arch = {(c["hidden_layers"], c["hidden_dim"], c["batch_size"], c["dropout"]) for c in confs}
    if len(arch) != 1:
        raise ValueError(f"a stack needs one architecture, got {sorted(arch)}")
    for c in confs:
        if c["hidden_norm"] != "BatchNorm1d" or c["norm_after_activation"] or c["optim"] != "Adam":
            raise ValueError(f"unsupported MLP setting in {c}")
    conf0 = confs[0]
    if conf0["hidden_layers"] == 0:  # no hidden layer: no norm, no dropout
        conf0 = {**conf0, "dropout": 0.0}
    batch_size, dropout = conf0["batch_size"], conf0["dropout"]
    multiclass = scorer.multiclass
    sequential_rng = seeds[0] is None
    if sequential_rng and len(confs) != 1:
        raise ValueError("the global RNG (seed None) trains one grid point at a time")
    init_gens = [None if s is None else torch.Generator().manual_seed(s) for s in seeds]
    generators = [
        None if s is None else torch.Generator(device).manual_seed(s + DROPOUT_SEED_OFFSET)
        for s in seeds
    ]
    stack = _init_stack(confs, train.x.shape[1], train.y.shape[1], init_gens, device)
    lr_all = torch.tensor([c["lr"] for c in confs], device=device)
    active = list(range(len(confs)))  # original indices of the points still in the stack
    best: list[float | None] = [None] * len(confs)
    es_best = [-math.inf if maximize else math.inf] * len(confs)
    wait = [0] * len(confs)
    stopped = [False] * len(confs)
    last_epoch = [0] * len(confs)
    results: list[dict[str, Any] | None] = [None] * len(confs)
    n_epochs = max(c["max_epochs"] for c in confs)
    for epoch in tqdm(range(n_epochs), desc=desc, leave=False):
        keep = [i for i in active if epoch < confs[i]["max_epochs"] and not stopped[i]]
        if not keep:
            break
        if keep != active:
            stack = stack.select(torch.tensor([active.index(i) for i in keep], device=device))
            active = keep
        gens = [generators[i] for i in active]
        for i in active:
            last_epoch[i] = epoch
        lr = lr_all[active]
        if sequential_rng:  # the train DataLoader iterator's base seed
            torch.empty((), dtype=torch.int64).random_()
        for i in range(0, len(train.x), batch_size):
            logits = _forward(stack, train.x[i : i + batch_size], True, dropout, gens)
            _loss(logits, train.y[i : i + batch_size], multiclass).sum().backward()
            _adam_step(stack, lr)
        checking = [i for i in active if (epoch + 1) % confs[i]["check_val_every_n_epoch"] == 0]
        if not checking:
            continue
        if sequential_rng:  # the valid DataLoader iterator's base seed
            torch.empty((), dtype=torch.int64).random_()
        logits, probs = _predict(stack, valid.x, batch_size, multiclass)
        for i in checking:
            g = active.index(i)
            value, post = scorer.validate(logits[g], probs[g], valid)
            ckpt_value = value if not math.isnan(value) else (-math.inf if maximize else math.inf)
            if _better(ckpt_value, best[i], maximize):
                best[i] = ckpt_value
                results[i] = {"epoch": epoch, "post": post, "state": stack.snapshot(g)}
            if not math.isfinite(value):
                stopped[i] = True
            elif (value > es_best[i]) if maximize else (value < es_best[i]):
                es_best[i], wait[i] = value, 0
            else:
                wait[i] += 1
                if wait[i] >= confs[i]["patience"]:
                    stopped[i] = True
    minutes = (time.time() - start) / 60
    out = []
    for i, conf in enumerate(confs):
        if results[i] is None:
            raise ValueError(
                f"grid point {conf} was never validated (max_epochs {conf['max_epochs']} < "
                f"check_val_every_n_epoch {conf['check_val_every_n_epoch']})"
            )
        r = results[i]
        out.append(
            TrainedPoint(conf, best[i], r["epoch"], r["post"], r["state"], minutes, last_epoch[i])
        )
    return out


def _restore(state: dict[str, list[torch.Tensor]]) -> _Stack:
    """A one-point stack holding a best-checkpoint snapshot."""
    fields = {k: [t[None].clone() for t in v] for k, v in state.items()}
    return _Stack(**fields)


def _hparams(conf: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float)) else str(v) for k, v in conf.items()}


def aggregate_folds(per_fold: dict[str, dict[str, float]]) -> dict[str, float]:
    """`<key>_mean` and `<key>_std` (pandas, ddof=1) over folds of every numeric per-fold key."""
    frame = pd.DataFrame(list(per_fold.values())).select_dtypes("number")
    out = {}
    for key in frame.columns:
        out[f"{key}_mean"] = float(frame[key].mean())
        out[f"{key}_std"] = float(frame[key].std(ddof=1))
    return out


def _groups(confs: Sequence[dict]) -> list[list[int]]:
    """Indices of `confs` grouped by architecture (first-appearance order)."""
    groups: dict[tuple, list[int]] = {}
    for i, c in enumerate(confs):
        key = (c["hidden_layers"], c["hidden_dim"], c["batch_size"], c["dropout"])
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def run_hear_mlp(
    task: CachedTask,
    grid: str = "default",
    grid_points: int = 8,
    mode: str = "batched",
    device: str | torch.device = "cpu",
    seed: int = 42,
) -> dict[str, Any]:
    """heareval's protocol on a cached task; returns the `test.predicted-scores.json` structure."""
    if mode not in ("batched", "sequential"):
        raise ValueError(f"mode must be batched or sequential, got {mode!r}")
    device = torch.device(device)
    scorer = Scorer.for_task(task)
    maximize = scorer.maximize
    confs = sample_grid(task_grid(task.metadata, grid), grid_points, random.Random(seed))
    folds = task.protocol_splits()
    arrays = []
    for train_splits, valid_split, test_split in folds:
        train = split_arrays(task, train_splits, device)
        valid = split_arrays(task, [valid_split], device)
        test = split_arrays(task, [test_split], device)
        check_train_classes(task, train, [valid, test])
        arrays.append((train, valid, test))

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if mode == "sequential":
            torch.manual_seed(seed)

        def gens(fold: int, points: Sequence[int]) -> list[int | None]:
            if mode == "sequential":
                return [None] * len(points)
            return [seed + 1000 * fold + g for g in points]

        train, valid, _ = arrays[0]
        trained: list[TrainedPoint | None] = [None] * len(confs)
        order = [[i] for i in range(len(confs))] if mode == "sequential" else _groups(confs)
        for group in tqdm(order, desc=f"grid {task.path.name}", leave=False):
            points = train_stack(
                [confs[i] for i in group], train, valid, scorer, maximize, gens(0, group), device
            )
            for i, p in zip(group, points, strict=True):
                trained[i] = p
        # Best validation score; on ties the earlier grid point (a stable sort, as heareval's).
        choose = max if maximize else min
        best_index = choose(range(len(confs)), key=lambda i: trained[i].validation_score)
        split_points = [trained[best_index]]
        for f in range(1, len(folds)):
            train, valid, _ = arrays[f]
            split_points += train_stack(
                [confs[best_index]], train, valid, scorer, maximize, gens(f, [best_index]), device
            )
        results: dict[str, Any] = {}
        for (_, _, test_split), point, (_, _, test) in zip(
            folds, split_points, arrays, strict=True
        ):
            if mode == "sequential":  # the test DataLoader iterator's base seed
                torch.empty((), dtype=torch.int64).random_()
            stack = _restore(point.state)
            logits, probs = _predict(stack, test.x, point.conf["batch_size"], scorer.multiclass)
            scores = scorer.test(logits[0], probs[0], test, point.postprocessing)
            scores.update(
                validation_score=point.validation_score,
                epoch=point.epoch,
                time_in_min=point.time_in_min,
            )
            results[test_split] = scores
    if len(results) > 1:
        results["aggregated_scores"] = aggregate_folds(results)
    best = trained[best_index]
    results["hparams"] = _hparams(best.conf)
    results["postprocessing"] = [list(p) for p in best.postprocessing]
    results["score_mode"] = "max" if maximize else "min"
    results["embedding_path"] = str(task.path)
    return results
