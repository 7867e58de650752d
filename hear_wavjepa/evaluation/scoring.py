"""Run the downstream protocols on one cached task and store its `scores.json`.

`scores.json` holds, per protocol, the settings, seed, code version and git commit that made the
result, and the result itself: for `mlp` heareval's `test.predicted-scores.json` structure, for
`linear` and `knn` per-fold scores with mean and std. A stored result whose settings match is
reused; one made with other settings is never replaced silently (`ScoresExist`) unless `rerun`.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hear_wavjepa import __version__
from hear_wavjepa.atomicio import write_json
from hear_wavjepa.evaluation.cache import CachedTask, load_cached_task
from hear_wavjepa.evaluation.hear_mlp import run_hear_mlp
from hear_wavjepa.evaluation.knn import KnnSettings, knn_applies, run_knn
from hear_wavjepa.evaluation.linear import LinearSettings, run_linear
from hear_wavjepa.evaluation.tables import NOT_APPLICABLE, Cell
from hear_wavjepa.provenance import git_commit


@dataclass(frozen=True)
class Options:
    """What `score_task` was asked for, as the protocols read it."""

    grid: str
    grid_points: int
    mode: str
    device: str
    knn: KnnSettings


@dataclass(frozen=True)
class Protocol:
    """A downstream protocol: its settings (stored with each result, compared on reuse), how it
    runs on a cached task, and which tasks it is defined for (embedding, prediction)."""

    settings: Callable[[Options], dict]
    run: Callable[[CachedTask, Options], dict[str, Any]]
    applies: Callable[[str, str], bool] = lambda embedding, prediction: True


def _mlp_settings(o: Options) -> dict:
    return {"grid": o.grid, "grid_points": o.grid_points, "mode": o.mode, "seed": 42}


#: the protocols by name, in table order
PROTOCOLS: dict[str, Protocol] = {
    "mlp": Protocol(
        _mlp_settings,
        lambda task, o: run_hear_mlp(task, o.grid, o.grid_points, o.mode, o.device, seed=42),
    ),
    "linear": Protocol(
        lambda o: asdict(LinearSettings()),
        lambda task, o: run_linear(task, LinearSettings(), o.device),
    ),
    "knn": Protocol(lambda o: asdict(o.knn), lambda task, o: run_knn(task, o.knn), knn_applies),
}


def applies(protocol: str, embedding: str, prediction: str) -> bool:
    """Whether `protocol` is defined for tasks of this embedding and prediction type."""
    return PROTOCOLS[protocol].applies(embedding, prediction)


class ScoresExist(ValueError):
    """A stored score would be replaced by one made with other settings."""


SCORES_FILE = "scores.json"


def score_task(
    cache_dir: Path | str,
    *,
    protocols: Sequence[str] = PROTOCOLS,
    grid: str = "default",
    grid_points: int = 8,
    mode: str = "batched",
    device: str = "cpu",
    knn: KnnSettings | None = None,
    rerun: bool = False,
    scores_path: Path | str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Score one cached task with `protocols`; update and return its scores file's content.

    The scores file is `scores_path`, by default `scores.json` in the cache dir; `progress` is
    called with each protocol's name before it runs.
    """
    cache_dir = Path(cache_dir)
    options = Options(grid, grid_points, mode, device, knn or KnnSettings())
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; known: {', '.join(PROTOCOLS)}")
    path = Path(scores_path) if scores_path is not None else cache_dir / SCORES_FILE
    stored: dict[str, Any] = {}
    if path.exists():
        try:
            stored = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: unreadable scores file ({err}); delete it") from err
    task = load_cached_task(cache_dir)
    stored.update(task=cache_dir.name, embedding_path=str(cache_dir))
    for protocol in protocols:
        settings = PROTOCOLS[protocol].settings(options)
        previous = stored.get(protocol)
        if previous is not None and not rerun:
            if previous.get("settings") == settings:
                continue
            raise ScoresExist(
                f"{path}: a {protocol} score made with other settings {previous.get('settings')} "
                f"is stored; pass rerun=True (CLI: --rerun) to replace it with {settings}"
            )
        if progress is not None:
            progress(protocol)
        result = PROTOCOLS[protocol].run(task, options)
        stored[protocol] = {
            "settings": settings,
            "seed": settings.get("seed"),
            "code_version": __version__,
            "git_commit": git_commit(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "result": result,
        }
        write_json(path, stored)
    return stored


def cell(scores: dict[str, Any], protocol: str) -> Cell | str | None:
    """The headline of one stored result: test score (TVT) or fold mean ± std; "n/a" where the
    protocol does not apply, None where nothing is stored."""
    entry = scores.get(protocol)
    if entry is None:
        return None
    result = entry["result"]
    if result.get("status") == "n/a":
        return NOT_APPLICABLE
    if protocol == "mlp":
        if "test" in result:
            return Cell(float(result["test"]["test_score"]))
        folds = [k for k in result if k.startswith("fold")]
        agg = result["aggregated_scores"]
        return Cell(float(agg["test_score_mean"]), _num(agg.get("test_score_std")), len(folds))
    mean = result.get("test_score_mean")
    if mean is None:
        return None
    return Cell(float(mean), _num(result.get("test_score_std")), len(result.get("folds", [])))


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def headline(scores: dict[str, Any], protocol: str) -> float | None:
    """The number a table reports: test_<primary> (TVT) or its fold mean (k-fold), or None."""
    value = cell(scores, protocol)
    return value.mean if isinstance(value, Cell) else None
