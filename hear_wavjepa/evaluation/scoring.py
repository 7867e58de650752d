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
from dataclasses import asdict
from pathlib import Path
from typing import Any

from hear_wavjepa import __version__
from hear_wavjepa.atomicio import write_json
from hear_wavjepa.evaluation.cache import load_cached_task
from hear_wavjepa.evaluation.hear_mlp import run_hear_mlp
from hear_wavjepa.evaluation.knn import KnnSettings, run_knn
from hear_wavjepa.evaluation.linear import LinearSettings, run_linear
from hear_wavjepa.provenance import git_commit

PROTOCOLS = ("mlp", "linear", "knn")


class ScoresExist(ValueError):
    """A stored score would be replaced by one made with other settings."""


SCORES_FILE = "scores.json"


def _settings(protocol: str, grid: str, grid_points: int, mode: str, knn: KnnSettings) -> dict:
    if protocol == "mlp":
        return {"grid": grid, "grid_points": grid_points, "mode": mode, "seed": 42}
    if protocol == "linear":
        return asdict(LinearSettings())
    return asdict(knn)


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
    knn = knn or KnnSettings()
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
        settings = _settings(protocol, grid, grid_points, mode, knn)
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
        if protocol == "mlp":
            result = run_hear_mlp(task, grid, grid_points, mode, device, seed=42)
        elif protocol == "linear":
            result = run_linear(task, LinearSettings(), device)
        else:
            result = run_knn(task, knn)
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


def headline(scores: dict[str, Any], protocol: str) -> float | None:
    """The number a table reports: test_<primary> (TVT) or its fold mean (k-fold), or None."""
    entry = scores.get(protocol)
    if entry is None:
        return None
    result = entry["result"]
    if protocol != "mlp":
        return result.get("test_score_mean")
    if "test" in result:
        return result["test"]["test_score"]
    return result["aggregated_scores"]["test_score_mean"]
