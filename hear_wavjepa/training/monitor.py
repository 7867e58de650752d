"""Online probes while pretraining (docs/pretraining.md, Online probes).

Every `monitor.every` optimiser updates, at step 0 and at the last step, the main rank embeds a
fixed subset of a few held-out scene tasks with the student (context encoder) and with the EMA
teacher, each behind the HEAR module's own embedding code, and scores them with the evaluation
harness's kNN and linear probe. The scores go to metrics.csv as `probe/{encoder}/{protocol}/{task}`
(0-1, the task's primary metric) in rows whose `step` is the number of updates the weights have
had. At the last step it also compares the last layer with the mean of all layers for both
encoders (`embedding-choice.md`).
"""

from __future__ import annotations

import hashlib
import random
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hear_wavjepa.api import HearOptions, HearWavJEPA, get_scene_embeddings
from hear_wavjepa.evaluation.cache import CachedTask, SplitData
from hear_wavjepa.evaluation.embed import read_clip
from hear_wavjepa.evaluation.knn import knn_applies, run_knn
from hear_wavjepa.evaluation.linear import LinearSettings, run_linear
from hear_wavjepa.hear_task import Clip, Task, TaskError, load_task
from hear_wavjepa.model.jepa import AudioEncoder, WavJEPA
from hear_wavjepa.suite import default_tasks_dir, suite_tasks, task_name_of
from hear_wavjepa.training.metrics_log import probe_column

ENCODERS = ("student", "teacher")
PROTOCOLS = ("knn", "linear")
#: the layer choices compared at the last step: the HEAR module's default and the layer mean.
LAYER_CHOICES = ("last", "mean")


class MonitorError(ValueError):
    """A monitor setting that cannot be used; the message names the setting and the folder."""


@dataclass(frozen=True)
class ProbeTask:
    """A held-out task's fixed probe subset: clips per split and their audio (C, samples)."""

    short: str
    task: Task
    clips: dict[str, tuple[Clip, ...]]
    audio: dict[str, list[np.ndarray]]


def task_folders(spec: str) -> list[tuple[str, Path]]:
    """(short name, folder) of each probe task: `spec` is folders joined with "::", or "" for
    the mini suite's multiclass scene tasks."""
    if spec:
        folders = [Path(p).expanduser() for p in spec.split("::") if p]
        return [(task_name_of(f.name), f) for f in folders]
    root = default_tasks_dir("mini")
    chosen = [t for t in suite_tasks("mini") if knn_applies(t.embedding, t.prediction)]
    missing = [t.folder for t in chosen if not (root / t.folder).is_dir()]
    if missing:
        raise MonitorError(
            f"monitor.tasks: the mini suite is not built under {root} (missing {missing[0]}); "
            "run `hear-wavjepa tasks build-mini`, give monitor.tasks=FOLDER::FOLDER, or turn the "
            "probes off with monitor.every=0"
        )
    return [(t.short, root / t.folder) for t in chosen]


def probe_subset(task: Task, max_clips: int) -> dict[str, tuple[Clip, ...]]:
    """At most ~`max_clips` clips, each split's share in proportion to its size, picked in turns
    over the split's label sets (so every label set of a split is kept while the share allows);
    the same clips on every call."""
    total = sum(len(task.clips[s]) for s in task.splits)
    rng = random.Random(f"monitor:{task.task_name}")
    out = {}
    for split in task.splits:
        clips = sorted(task.clips[split], key=lambda c: c.filename)
        quota = max(1, round(max_clips * len(clips) / max(total, 1)))
        groups: dict[tuple[str, ...], list[Clip]] = defaultdict(list)
        for clip in clips:
            groups[clip.labels].append(clip)
        queues = [groups[k] for k in sorted(groups)]
        for queue in queues:
            rng.shuffle(queue)
        picked: list[Clip] = []
        while len(picked) < quota and any(queues):
            for queue in queues:
                if queue and len(picked) < quota:
                    picked.append(queue.pop())
        out[split] = tuple(picked)
    return out


def load_probe_task(short: str, folder: Path, max_clips: int, samples: int) -> ProbeTask:
    """Read a task folder's probe subset, each clip cut to its first `samples` at 16 kHz."""
    try:
        task = load_task(folder, sample_rate=16_000)
    except TaskError as exc:
        raise MonitorError(f"monitor.tasks: {exc}") from exc
    if not knn_applies(task.embedding_type, task.prediction_type):
        raise MonitorError(
            f"monitor.tasks: {folder} is a {task.embedding_type}/{task.prediction_type} task; "
            "the probes need multiclass scene tasks"
        )
    clips = probe_subset(task, max_clips)
    audio = {
        split: [read_clip(task, split, c, 16_000)[:, :samples] for c in chosen]
        for split, chosen in clips.items()
    }
    return ProbeTask(short, task, clips, audio)


class SharedFrontEnd(torch.nn.Module):
    """A copy of the training front end that computes each distinct input once for as long as
    the weights stay the same: the student and teacher copies share it, and a frozen front end
    keeps its outputs from one probe to the next. (B, C, samples) -> (B, C * frames, D)."""

    def __init__(self, frontend: torch.nn.Module) -> None:
        super().__init__()
        self.inner = frontend
        self.weights: dict[str, torch.Tensor] | None = None
        self.outputs: dict[bytes, torch.Tensor] = {}

    def sync(self, source: torch.nn.Module) -> None:
        """Take `source`'s weights; forget the stored outputs if they changed."""
        state = source.state_dict()
        if self.weights is None or any(
            not torch.equal(v, self.weights[k]) for k, v in state.items()
        ):
            self.inner.load_state_dict(state)
            self.weights = {k: v.detach().clone() for k, v in state.items()}
            self.outputs.clear()

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        data = wave.detach().contiguous().cpu().numpy()
        key = hashlib.blake2b(data.tobytes(), digest_size=16).digest() + repr(data.shape).encode()
        if key not in self.outputs:
            self.outputs[key] = self.inner(wave)
        return self.outputs[key]


def encoder_copy(model: WavJEPA, which: str, into: AudioEncoder) -> AudioEncoder:
    """`into` (whose front end is a SharedFrontEnd) holding the student's weights, or the
    shared front end plus the teacher."""
    into.frontend.sync(model.encoder.frontend)
    source = model.encoder.transformer if which == "student" else model.teacher
    into.transformer.load_state_dict(source.state_dict())
    return into.eval()


def embed(encoder: AudioEncoder, layers: str, probe: ProbeTask, batch: int = 64) -> CachedTask:
    """The probe subset's scene embeddings as an in-memory embedding cache."""
    depth = encoder.config.encoder.depth
    options = HearOptions(layers="last" if layers == "last" else list(range(1, depth + 1)))
    model = HearWavJEPA(encoder, options, source="monitor")
    loaded = {}
    for split, clips in probe.clips.items():
        audio = probe.audio[split]
        rows: list[np.ndarray | None] = [None] * len(audio)
        by_length: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, a in enumerate(audio):
            by_length[a.shape].append(i)
        for indices in by_length.values():
            for start in range(0, len(indices), batch):
                chunk = indices[start : start + batch]
                wave = torch.from_numpy(np.stack([audio[i] for i in chunk]))
                with torch.no_grad():
                    emb = get_scene_embeddings(wave, model).cpu().numpy()
                for i, row in zip(chunk, emb, strict=True):
                    rows[i] = row
        loaded[split] = SplitData(
            split=split,
            embeddings=np.stack(rows).astype(np.float32),
            labels=[list(c.labels) for c in clips],
            filenames=[c.filename for c in clips],
            timestamps=None,
        )
    task = probe.task
    return CachedTask(task.path, task.metadata, task.labels, task.splits, loaded)


def scores(cached: CachedTask, device: torch.device) -> dict[str, float]:
    """{protocol: mean test score over folds} of one embedded probe subset. The secondary
    metrics' warnings (e.g. ROC AUC on a small fold that lacks a class) are silenced: only the
    primary metric is logged."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        linear = run_linear(cached, LinearSettings(), device=str(device), progress=False)
        knn = run_knn(cached)
    return {"knn": knn["test_score_mean"], "linear": linear["test_score_mean"]}


def own_random_state(device: torch.device):
    """A context in which torch's random state (CPU, and `device` on CUDA) may be used freely:
    it is restored afterwards, so the probes leave the training's random streams alone."""
    return torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else [])


class Monitor:
    """The probes of one run: its tasks (read once) and a scratch encoder for the copies. Its
    methods leave torch's random state as they found it."""

    def __init__(self, section, model: WavJEPA, steps: int, log: Callable[[str], None] = print):
        self.steps = steps
        samples = int(section.clip_seconds * 16_000)
        self.tasks = [
            load_probe_task(short, folder, section.max_clips, samples)
            for short, folder in task_folders(section.tasks)
        ]
        self.device = next(model.parameters()).device
        with own_random_state(self.device):
            self.scratch = AudioEncoder(model.config)
        self.scratch.frontend = SharedFrontEnd(self.scratch.frontend)
        self.scratch.to(self.device)
        self.seconds = 0.0
        clips = sum(len(c) for p in self.tasks for c in p.clips.values())
        names = ", ".join(p.short for p in self.tasks)
        log(f"monitor: probing {names} ({clips} clips) every {section.every} steps")

    @property
    def columns(self) -> list[str]:
        return [
            *(probe_column(e, p, t.short) for e in ENCODERS for p in PROTOCOLS for t in self.tasks),
            "probe_s",
        ]

    def _scores(self, model: WavJEPA, layers: str) -> dict[str, float]:
        """{probe column: score} of both encoders with `layers` ("last" or "mean"); the time
        taken is added to `seconds`."""
        began = time.perf_counter()
        out = {}
        with own_random_state(self.device):
            for which in ENCODERS:
                encoder = encoder_copy(model, which, self.scratch)
                for probe in self.tasks:
                    cached = embed(encoder, layers, probe)
                    for protocol, value in scores(cached, self.device).items():
                        out[probe_column(which, protocol, probe.short)] = value
        self.seconds += time.perf_counter() - began
        return out

    def probe(self, model: WavJEPA, step: int) -> dict[str, float]:
        """The probe row of the weights after `step` updates (last layer, as the HEAR module)."""
        began = time.perf_counter()
        row: dict[str, float] = {"step": step, **self._scores(model, "last")}
        row["probe_s"] = time.perf_counter() - began
        return row

    def summary(self, row: dict[str, float]) -> str:
        """One line: each encoder's mean probe score over the tasks (x 100), and the cost."""
        means = []
        for protocol in PROTOCOLS:
            for which in ENCODERS:
                values = [row[probe_column(which, protocol, p.short)] for p in self.tasks]
                means.append(f"{protocol} {which} {100 * sum(values) / len(values):.1f}")
        return f"probe @ step {row['step']}: {', '.join(means)} ({row['probe_s']:.0f} s)"

    def layer_choice(self, model: WavJEPA, last_row: dict[str, float]) -> str:
        """Markdown: both encoders with the last layer (`last_row`, the final probe) and with
        the mean of all layers, per task and averaged (scores x 100)."""
        mean_row = self._scores(model, "mean")
        shorts = [p.short for p in self.tasks]
        lines = [
            f"# Which embedding, after {last_row['step']} steps",
            "",
            "kNN and linear-probe scores (x 100, primary metric, mean over folds) on the "
            "monitor's probe subsets. `last`: the final layer after the encoder's LayerNorm "
            "(the HEAR module's default); `mean`: the mean of all layer outputs.",
            "",
        ]
        for protocol in PROTOCOLS:
            lines += [
                f"| {protocol} | " + " | ".join(shorts) + " | mean |",
                "|---" * (len(shorts) + 2) + "|",
            ]
            for which in ENCODERS:
                for layers, row in (("last", last_row), ("mean", mean_row)):
                    values = [100 * row[probe_column(which, protocol, s)] for s in shorts]
                    cells = " | ".join(f"{v:.1f}" for v in values)
                    lines.append(
                        f"| {which}, {layers} | {cells} | {sum(values) / len(values):.1f} |"
                    )
            lines.append("")
        return "\n".join(lines)
