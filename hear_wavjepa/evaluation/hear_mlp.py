"""heareval 2021.1.3's downstream protocol in plain torch (docs/hear-protocol.md, HEAR MLP).

The grid (`default`, `fast`, `faster` plus per-task overrides) is shuffled with Python's random
seeded 42 once per task and the first `grid_points` are trained on fold 0; the best (validation
score) is retrained on every other fold and all are tested. Each MLP is Linear → BatchNorm1d →
Dropout → ReLU per hidden layer and an output Linear, xavier-initialised, trained with Adam at
batch 1024 with no shuffling, early-stopped on the primary validation score counted in validation
checks (a NaN score, an event task's onset F when no event is predicted, stops it at once), and
tested with its best checkpoint.

Two modes. `batched` (default) trains all grid points of one architecture at once as a stack of
weights (G, in, out) with batched matmuls; grid point g of fold f draws its initialisation and
dropout masks from its own generators seeded from `seed + 1000 f + g`, so a stack equals training
each point alone. `sequential` trains heareval's own module (nn.Linear, nn.BatchNorm1d, nn.Dropout,
torch.optim.Adam) one grid point after another on torch's global RNG seeded once per task,
consuming random numbers in heareval's order (per layer: Linear's default init, then xavier;
torchinfo's random input; one draw per DataLoader iterator) for parity checks against heareval.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
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
# A stack of G MLPs of one architecture (batched mode)


@dataclass
class _Stack:
    """Weights of G same-shaped MLPs: per layer W (G, in, out) and b (G, 1, out); per hidden
    layer BatchNorm weight, bias and running statistics (G, 1, H)."""

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

        return _Stack(
            pick(self.weights, True),
            pick(self.biases, True),
            pick(self.bn_weight, True),
            pick(self.bn_bias, True),
            pick(self.running_mean, False),
            pick(self.running_var, False),
            {k: pick(v, False) for k, v in self.adam.items()},
            self.step,
        )

    def snapshot(self, g: int) -> dict[str, list[torch.Tensor]]:
        return {
            name: [t.detach()[g].clone() for t in getattr(self, name)]
            for name in ("weights", "biases", "bn_weight", "bn_bias", "running_mean", "running_var")
        }


def _init_layer(
    fan_in: int, fan_out: int, init: str, gain: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.nn.Linear's default init (kaiming weight, uniform bias), then heareval's xavier;
    returns W (in, out) and b (out,)."""
    weight = torch.empty(fan_out, fan_in)
    bias = torch.empty(fan_out)
    torch.nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
    torch.nn.init.uniform_(bias, -bound, bound, generator=generator)
    _xavier(init)(weight, gain=gain, generator=generator)
    return weight.T.contiguous(), bias


def _xavier(init: str) -> Callable[..., torch.Tensor]:
    if init not in ("xavier_uniform_", "xavier_normal_"):
        raise ValueError(f"unknown initialization {init!r}")
    return getattr(torch.nn.init, init)


def _init_stack(
    confs: Sequence[dict],
    nfeatures: int,
    nlabels: int,
    generators: Sequence[torch.Generator],
    device: torch.device,
) -> _Stack:
    layers = confs[0]["hidden_layers"]
    hidden = confs[0]["hidden_dim"]
    dims = [nfeatures] + [hidden] * layers + [nlabels]
    per_point = [
        [
            _init_layer(dims[i], dims[i + 1], conf["initialization"], _gain(i), gen)
            for i in range(len(dims) - 1)
        ]
        for conf, gen in zip(confs, generators, strict=True)
    ]
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


def _gain(layer: int) -> float:
    """heareval's xavier gain: 1 after the (linear) input, sqrt(2) after a ReLU."""
    return 1.0 if layer == 0 else math.sqrt(2.0)


def _forward(
    stack: _Stack,
    x: torch.Tensor,
    train: bool,
    dropout: float,
    generators: Sequence[torch.Generator],
) -> torch.Tensor:
    """Logits (G, B, C) of every stacked MLP on the shared input x (B, D).

    BatchNorm runs as one fused `F.batch_norm` over the G·H channels of a (B, G·H) view; each
    point draws its dropout mask (B, H) from its own generator into one (G, B, H) buffer.
    """
    h = x
    g = len(stack.weights[0])
    for i in range(len(stack.weights) - 1):
        if h.dim() == 2:
            h = h.expand(g, *h.shape)
        h = torch.baddbmm(stack.biases[i], h, stack.weights[i])
        _, b, hidden = h.shape
        if train and b < 2:
            raise ValueError(
                "a training batch of 1 item cannot be batch-normalised (BatchNorm1d, as in "
                "heareval); the training set size is 1 more than a multiple of the batch size"
            )
        flat = h.transpose(0, 1).reshape(b, g * hidden)
        flat = F.batch_norm(
            flat,
            stack.running_mean[i].view(-1),
            stack.running_var[i].view(-1),
            stack.bn_weight[i].view(-1),
            stack.bn_bias[i].view(-1),
            training=train,
            momentum=0.1,
            eps=1e-5,
        )
        h = flat.view(b, g, hidden).transpose(0, 1)
        if train and dropout > 0:
            mask = torch.empty((g, b, hidden), device=h.device)
            for k, gen in enumerate(generators):
                mask[k].bernoulli_(1 - dropout, generator=gen)
            h = h * mask.div_(1 - dropout)
        h = torch.relu(h)
    if h.dim() == 2:
        h = h.expand(g, *h.shape)
    return torch.baddbmm(stack.biases[-1], h, stack.weights[-1])


def _stack_loss(logits: torch.Tensor, y: torch.Tensor, multiclass: bool) -> torch.Tensor:
    """Per-point mean loss (G,) of logits (G, B, C): CE on argmax(one-hot), or BCE-with-logits."""
    g, b, c = logits.shape
    if multiclass:
        target = y.argmax(dim=1).repeat(g)
        loss = F.cross_entropy(logits.reshape(g * b, c), target, reduction="none")
        return loss.view(g, b).mean(dim=1)
    target = y.expand(g, b, c)
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2))


def heareval_loss(logits: torch.Tensor, y: torch.Tensor, multiclass: bool) -> torch.Tensor:
    """heareval's loss of one model's logits (N, C): CE on argmax(one-hot), or BCE-with-logits."""
    if multiclass:
        return F.cross_entropy(logits, y.argmax(dim=1))
    return F.binary_cross_entropy_with_logits(logits, y)


def _adam_step(stack: _Stack, lr: torch.Tensor) -> None:
    """torch.optim.Adam's update (betas 0.9/0.999, eps 1e-8) with a learning rate per point,
    as `_foreach` ops over all tensors of the stack."""
    params = stack.params()
    grads = [p.grad for p in params]
    if not stack.adam:
        stack.adam = {key: [torch.zeros_like(p) for p in params] for key in ("m", "v")}
    m, v = stack.adam["m"], stack.adam["v"]
    stack.step += 1
    bc1 = 1 - 0.9**stack.step
    bc2_sqrt = math.sqrt(1 - 0.999**stack.step)
    with torch.no_grad():
        torch._foreach_lerp_(m, grads, 0.1)
        torch._foreach_mul_(v, 0.999)
        torch._foreach_addcmul_(v, grads, grads, value=0.001)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bc2_sqrt)
        torch._foreach_add_(denom, 1e-8)
        updates = torch._foreach_div(m, denom)
        for p, u in zip(params, updates, strict=True):
            p.sub_(u.mul_((lr / bc1).view(-1, *([1] * (p.dim() - 1)))))
            p.grad = None


def _predict_stack(stack: _Stack, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Eval-mode logits (G, N, C)."""
    with torch.no_grad():
        chunks = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
        return torch.cat([_forward(stack, c, False, 0.0, []) for c in chunks], dim=1)


# ----------------------------------------------------------------------------------------------
# heareval's own module, trained one grid point at a time (sequential mode)


def heareval_net(conf: dict[str, Any], nfeatures: int, nlabels: int) -> torch.nn.Sequential:
    """heareval's FullyConnectedPrediction as nn modules built in its order (so they draw the
    same random numbers): per hidden layer Linear → BatchNorm1d → Dropout → ReLU, then Linear."""
    init = _xavier(conf["initialization"])
    modules: list[torch.nn.Module] = []
    dim = nfeatures
    for i in range(conf["hidden_layers"]):
        linear = torch.nn.Linear(dim, conf["hidden_dim"])
        init(linear.weight, gain=_gain(i))
        modules += [
            linear,
            torch.nn.BatchNorm1d(conf["hidden_dim"]),
            torch.nn.Dropout(conf["dropout"]),
            torch.nn.ReLU(),
        ]
        dim = conf["hidden_dim"]
    projection = torch.nn.Linear(dim, nlabels)
    init(projection.weight, gain=_gain(conf["hidden_layers"]))
    return torch.nn.Sequential(*modules, projection)


def predict_logits(net: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Eval-mode logits (N, C), batch by batch."""
    net.eval()
    with torch.no_grad():
        return torch.cat([net(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def _dataloader_seed() -> None:
    """The draw a DataLoader makes from torch's global RNG when an iterator starts."""
    torch.empty((), dtype=torch.int64).random_()


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
        return float(heareval_loss(logits, y, self.multiclass))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """heareval's predictions: softmax (multiclass) or sigmoid of logits (N, C)."""
        return torch.softmax(logits, dim=-1) if self.multiclass else torch.sigmoid(logits)

    def validate(self, logits: torch.Tensor, split: SplitArrays) -> tuple[float, Postprocessing]:
        """The monitored value and (event tasks) the best post-processing of this validation."""
        probs = self.probabilities(logits)
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
        """heareval's pick: the post-processing ranked first with NaN counted as 0 (ties go to the
        larger setting), returned with its raw score (NaN when no event is predicted), which is
        the value heareval monitors."""
        scored = []
        for post in self.post_grid:
            events = self._events(probs, split, post)
            value = primary_value(self.metrics[0](events, split.target_events, self.task.labels))
            scored.append((0.0 if math.isnan(value) else value, post, value))
        _, post, value = max(scored, key=lambda s: (s[0], s[1]))
        return value, post

    def test(
        self, logits: torch.Tensor, split: SplitArrays, post: Postprocessing
    ) -> dict[str, float]:
        """heareval's test dict: test_loss, test_<metric> (and sub-scores), test_score."""
        probs = self.probabilities(logits)
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
    """One trained grid point: its conf, best validation score/epoch/post-processing and the
    weights of that best checkpoint (a stack snapshot, or the state of heareval's module)."""

    conf: dict[str, Any]
    validation_score: float
    epoch: int
    postprocessing: Postprocessing
    state: dict[str, Any]
    time_in_min: float
    last_epoch: int
    net: torch.nn.Module | None = None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Eval-mode logits (N, C) of the best checkpoint."""
        if self.net is not None:
            self.net.load_state_dict(self.state)
            return predict_logits(self.net, x, self.conf["batch_size"])
        stack = _Stack(**{k: [t[None].clone() for t in v] for k, v in self.state.items()})
        return _predict_stack(stack, x, self.conf["batch_size"])[0]


@dataclass
class _Watch:
    """Lightning 1.x's ModelCheckpoint (a strict improvement replaces; NaN is stored as the
    worst value, so it is kept only from the first check) and EarlyStopping (patience counted in
    validation checks; a non-finite value, e.g. a NaN onset F, stops at once)."""

    maximize: bool
    patience: int
    best: float | None = None
    wait: int = 0
    stopped: bool = False
    es_best: float = field(init=False)

    def __post_init__(self) -> None:
        self.es_best = self._worst

    @property
    def _worst(self) -> float:
        return -math.inf if self.maximize else math.inf

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.maximize else value < than

    def check(self, value: float) -> bool:
        """Record one validation value; True if it is the new best checkpoint."""
        kept = self._worst if math.isnan(value) else value
        improved = self.best is None or self._better(kept, self.best)
        if improved:
            self.best = kept
        if not math.isfinite(value):
            self.stopped = True
        elif self._better(value, self.es_best):
            self.es_best, self.wait = value, 0
        else:
            self.wait += 1
            self.stopped = self.wait >= self.patience
        return improved


def _check_confs(confs: Sequence[dict]) -> None:
    arch = {(c["hidden_layers"], c["hidden_dim"], c["batch_size"], c["dropout"]) for c in confs}
    if len(arch) != 1:
        raise ValueError(f"a stack needs one architecture, got {sorted(arch)}")
    for c in confs:
        if c["hidden_norm"] != "BatchNorm1d" or c["norm_after_activation"] or c["optim"] != "Adam":
            raise ValueError(f"unsupported MLP setting in {c}")


def _never_validated(conf: dict) -> ValueError:
    return ValueError(
        f"grid point {conf} was never validated (max_epochs {conf['max_epochs']} < "
        f"check_val_every_n_epoch {conf['check_val_every_n_epoch']})"
    )


def train_stack(
    confs: Sequence[dict],
    train: SplitArrays,
    valid: SplitArrays,
    scorer: Scorer,
    maximize: bool,
    seeds: Sequence[int],
    device: torch.device,
    desc: str = "train",
) -> list[TrainedPoint]:
    """Train same-architecture grid points together; return each one's best checkpoint.

    Point i initialises from a CPU generator seeded `seeds[i]` and draws its dropout masks from a
    generator on `device` seeded `seeds[i] + DROPOUT_SEED_OFFSET`, so a stack trains each point
    as it would train alone.
    """
    start = time.time()
    _check_confs(confs)
    batch_size = confs[0]["batch_size"]
    dropout = confs[0]["dropout"] if confs[0]["hidden_layers"] else 0.0
    init_gens = [torch.Generator().manual_seed(s) for s in seeds]
    generators = [torch.Generator(device).manual_seed(s + DROPOUT_SEED_OFFSET) for s in seeds]
    stack = _init_stack(confs, train.x.shape[1], train.y.shape[1], init_gens, device)
    lr_all = torch.tensor([c["lr"] for c in confs], device=device)
    active = list(range(len(confs)))  # original indices of the points still in the stack
    watches = [_Watch(maximize, c["patience"]) for c in confs]
    last_epoch = [0] * len(confs)
    results: list[dict[str, Any] | None] = [None] * len(confs)
    for epoch in tqdm(range(max(c["max_epochs"] for c in confs)), desc=desc, leave=False):
        keep = [i for i in active if epoch < confs[i]["max_epochs"] and not watches[i].stopped]
        if not keep:
            break
        if keep != active:
            stack = stack.select(torch.tensor([active.index(i) for i in keep], device=device))
            active = keep
        gens = [generators[i] for i in active]
        for i in active:
            last_epoch[i] = epoch
        lr = lr_all[active]
        for i in range(0, len(train.x), batch_size):
            logits = _forward(stack, train.x[i : i + batch_size], True, dropout, gens)
            _stack_loss(logits, train.y[i : i + batch_size], scorer.multiclass).sum().backward()
            _adam_step(stack, lr)
        checking = [i for i in active if (epoch + 1) % confs[i]["check_val_every_n_epoch"] == 0]
        if not checking:
            continue
        logits = _predict_stack(stack, valid.x, batch_size)
        for i in checking:
            g = active.index(i)
            value, post = scorer.validate(logits[g], valid)
            if watches[i].check(value):
                results[i] = {"epoch": epoch, "post": post, "state": stack.snapshot(g)}
    minutes = (time.time() - start) / 60
    out = []
    for i, conf in enumerate(confs):
        r = results[i]
        if r is None:
            raise _never_validated(conf)
        best = watches[i].best
        point = TrainedPoint(conf, best, r["epoch"], r["post"], r["state"], minutes, last_epoch[i])
        out.append(point)
    return out


def train_net(
    conf: dict,
    train: SplitArrays,
    valid: SplitArrays,
    scorer: Scorer,
    maximize: bool,
    device: torch.device,
) -> TrainedPoint:
    """Train heareval's module for one grid point on torch's global RNG, drawing random numbers
    in heareval's order: the module's init, torchinfo's random input (64, D), and one draw per
    DataLoader iterator; `torch.optim.Adam`, heareval's losses, batches in file order."""
    start = time.time()
    _check_confs([conf])
    nfeatures = train.x.shape[1]
    net = heareval_net(conf, nfeatures, train.y.shape[1]).to(device)
    torch.rand(64, nfeatures)  # torchinfo.summary's input (eval mode: no other draw)
    optimizer = torch.optim.Adam(net.parameters(), lr=conf["lr"])
    watch = _Watch(maximize, conf["patience"])
    batch_size = conf["batch_size"]
    best = None
    for epoch in tqdm(range(conf["max_epochs"]), desc="train", leave=False):
        last_epoch = epoch
        _dataloader_seed()
        net.train()
        for i in range(0, len(train.x), batch_size):
            batch = slice(i, i + batch_size)
            loss = heareval_loss(net(train.x[batch]), train.y[batch], scorer.multiclass)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if (epoch + 1) % conf["check_val_every_n_epoch"]:
            continue
        _dataloader_seed()
        value, post = scorer.validate(predict_logits(net, valid.x, batch_size), valid)
        if watch.check(value):
            state = {k: t.detach().clone() for k, t in net.state_dict().items()}
            best = (epoch, post, state)
        if watch.stopped:
            break
    if best is None:
        raise _never_validated(conf)
    epoch, post, state = best
    minutes = (time.time() - start) / 60
    return TrainedPoint(conf, watch.best, epoch, post, state, minutes, last_epoch, net)


def _hparams(conf: dict[str, Any]) -> dict[str, Any]:
    return {k: v if isinstance(v, (str, int, float)) else str(v) for k, v in conf.items()}


def aggregate_folds(per_fold: dict[str, dict[str, float]]) -> dict[str, float]:
    """`<key>_mean` and `<key>_std` (pandas, ddof=1) over folds of every numeric per-fold key;
    an infinite value (d' of a perfectly separated class) gives mean inf and std NaN (heareval)."""
    frame = pd.DataFrame(list(per_fold.values())).select_dtypes("number")
    out = {}
    with np.errstate(invalid="ignore"):
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

    def fit(fold: int, points: Sequence[int]) -> list[TrainedPoint]:
        train, valid, _ = arrays[fold]
        if mode == "sequential":
            return [train_net(confs[points[0]], train, valid, scorer, maximize, device)]
        seeds = [seed + 1000 * fold + g for g in points]
        group = [confs[i] for i in points]
        return train_stack(group, train, valid, scorer, maximize, seeds, device)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if mode == "sequential":  # heareval: seed_everything(42) once per task
            torch.manual_seed(seed)
        trained: list[TrainedPoint] = [None] * len(confs)  # type: ignore[list-item]
        order = [[i] for i in range(len(confs))] if mode == "sequential" else _groups(confs)
        for group in tqdm(order, desc=f"grid {task.path.name}", leave=False):
            for i, point in zip(group, fit(0, group), strict=True):
                trained[i] = point
        # Best validation score; on ties the earlier grid point (a stable sort, as heareval's).
        choose = max if maximize else min
        best_index = choose(range(len(confs)), key=lambda i: trained[i].validation_score)
        split_points = [trained[best_index]]
        for f in range(1, len(folds)):
            split_points += fit(f, [best_index])
        results: dict[str, Any] = {}
        for (_, _, test_split), point, (_, _, test) in zip(
            folds, split_points, arrays, strict=True
        ):
            if mode == "sequential":
                _dataloader_seed()  # the test DataLoader's
            scores = scorer.test(point.logits(test.x), test, point.postprocessing)
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
