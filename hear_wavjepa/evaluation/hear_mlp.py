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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import ParameterGrid
from tqdm import tqdm

from hear_wavjepa.evaluation.cache import CachedTask
from hear_wavjepa.evaluation.folds import SplitArrays, fold_arrays
from hear_wavjepa.evaluation.mlp_stack import (
    _adam_step,
    _forward,
    _gain,
    _init_stack,
    _predict_stack,
    _Stack,
    _stack_loss,
    _xavier,
)
from hear_wavjepa.evaluation.scorer import Postprocessing, Scorer, heareval_loss, predict_logits
from hear_wavjepa.evaluation.threads import cpu_threads

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


def _dataloader_seed() -> None:
    """The draw a DataLoader makes from torch's global RNG when an iterator starts."""
    torch.empty((), dtype=torch.int64).random_()


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
        lr = [confs[i]["lr"] for i in active]
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
    """heareval's protocol on a cached task; returns the `test.predicted-scores.json` structure.
    On the CPU it runs with `threads.protocol_threads()` intra-op threads."""
    if mode not in ("batched", "sequential"):
        raise ValueError(f"mode must be batched or sequential, got {mode!r}")
    device = torch.device(device)
    with cpu_threads(device):
        return _run_hear_mlp(task, grid, grid_points, mode, device, seed)


def _run_hear_mlp(
    task: CachedTask, grid: str, grid_points: int, mode: str, device: torch.device, seed: int
) -> dict[str, Any]:
    scorer = Scorer.for_task(task)
    maximize = scorer.maximize
    confs = sample_grid(task_grid(task.metadata, grid), grid_points, random.Random(seed))
    folds = list(fold_arrays(task, device))
    arrays = [(train, valid, test) for _, train, valid, test in folds]

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
        for (test_split, _, _, test), point in zip(folds, split_points, strict=True):
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
