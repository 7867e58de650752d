"""Run the downstream protocols on one cached task and store its `scores.json`.

`scores.json` holds, per protocol, the settings, seed, code version and git commit that made the
result, and the result itself: for `mlp` heareval's `test.predicted-scores.json` structure, for
`linear` and `knn` per-fold scores with mean and std, and `task_digest`, the digest of the task
content (metadata, vocabulary, split files) it was computed on. A stored result whose settings and
task digest match is reused; one made with other settings or on other content (clips added or
removed under the same folder name) is never replaced silently (`ScoresExist`) unless `rerun`.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hear_wavjepa import __version__
from hear_wavjepa.atomicio import write_json
from hear_wavjepa.evaluation.cache import CachedTask, cache_digest, load_cached_task
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
#: per suite, {task folder: digest of the content last evaluated}; tables show no other scores
DIGESTS_FILE = "task-digests.json"
#: per suite, {task folder: chance score}
CHANCE_FILE = "chance.json"


def protocol_settings(
    protocols: Sequence[str],
    grid: str = "default",
    grid_points: int = 8,
    mode: str = "batched",
    knn: KnnSettings | None = None,
) -> dict[str, dict]:
    """{protocol: the settings a score of it records}."""
    unknown = [p for p in protocols if p not in PROTOCOLS]
    if unknown:
        raise ValueError(f"unknown protocols {unknown}; known: {', '.join(PROTOCOLS)}")
    # the settings never depend on the device
    options = Options(grid, grid_points, mode, "cpu", knn or KnnSettings())
    return {p: PROTOCOLS[p].settings(options) for p in protocols}


def _legacy_digest(stored: dict[str, Any]) -> str | None:
    """The task digest of a score stored before scores carried one: from the cache it names."""
    path = stored.get("embedding_path")
    if not path:
        return None
    try:
        return cache_digest(path)
    except (OSError, ValueError, KeyError):
        match = re.search(r"-([0-9a-f]{12})$", Path(path).name)  # `<task>-<digest>` cache dirs
        return match.group(1) if match else None


def read_scores(path: Path | str) -> dict[str, Any]:
    """A scores file's content ({} if absent); every protocol entry carries its `task_digest`."""
    path = Path(path)
    if not path.exists():
        return {}
    try:
        stored = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: unreadable scores file ({err}); delete it") from err
    for protocol in PROTOCOLS:
        entry = stored.get(protocol)
        if isinstance(entry, dict) and "task_digest" not in entry:
            entry["task_digest"] = _legacy_digest(stored)
    return stored


def to_run(
    path: Path | str, digest: str, wanted: dict[str, dict], rerun: bool = False
) -> list[str]:
    """The protocols of `wanted` ({protocol: settings}) without a usable score in the scores file
    `path` for the task of digest `digest`. Unless `rerun` (then all of them), a stored score made
    on other task content or with other settings raises `ScoresExist`."""
    stored = read_scores(path)
    if rerun:
        return list(wanted)
    out = []
    for protocol, settings in wanted.items():
        previous = stored.get(protocol)
        if previous is None:
            out.append(protocol)
        elif previous.get("task_digest") != digest:
            raise ScoresExist(
                f"{path}: the stored {protocol} score was made on other content of task "
                f"{stored.get('task')} (digest {previous.get('task_digest')}; its files now give "
                f"{digest}: clips or labels changed); pass rerun=True (CLI: --rerun) to recompute"
            )
        elif previous.get("settings") != settings:
            raise ScoresExist(
                f"{path}: a {protocol} score made with other settings {previous.get('settings')} "
                f"is stored; pass rerun=True (CLI: --rerun) to replace it with {settings}"
            )
    return out


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
    called with each protocol's name before it runs. See `to_run` for what is reused.
    """
    cache_dir = Path(cache_dir)
    options = Options(grid, grid_points, mode, device, knn or KnnSettings())
    wanted = protocol_settings(protocols, grid, grid_points, mode, options.knn)
    path = Path(scores_path) if scores_path is not None else cache_dir / SCORES_FILE
    task = load_cached_task(cache_dir)
    digest = cache_digest(cache_dir)
    pending = to_run(path, digest, wanted, rerun)
    stored = read_scores(path)
    stored.update(task=cache_dir.name, embedding_path=str(cache_dir))
    for protocol in pending:
        settings = wanted[protocol]
        if progress is not None:
            progress(protocol)
        result = PROTOCOLS[protocol].run(task, options)
        stored[protocol] = {
            "settings": settings,
            "seed": settings.get("seed"),
            "task_digest": digest,
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
