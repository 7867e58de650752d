"""The pretraining loop: one process, or DistributedDataParallel under `torchrun`.

Per optimiser step (docs/pretraining.md, Training step): every rank builds its slice of the global
batch (`batches.py`), runs `accumulation` micro-batches forward and backward with the loss
normalised by the GLOBAL target count (so gradients equal those of one process on the whole
batch), updates the EMA teacher from the pre-update student, clips the gradient norm, and takes
the AdamW step with the step's learning rate and weight decay. Checkpoints (`state.py`) are
written every `train.checkpoint_every` steps and at exit; `resume=True` continues bit-exactly on
CPU.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from hear_wavjepa import paths
from hear_wavjepa.atomicio import write_text
from hear_wavjepa.checkpoint import save_checkpoint
from hear_wavjepa.model.config import WavJEPAConfig
from hear_wavjepa.model.jepa import WavJEPA
from hear_wavjepa.provenance import git_commit
from hear_wavjepa.training.batches import Batch, BatchMaker
from hear_wavjepa.training.decoded_corpus import Corpus, decode_corpus
from hear_wavjepa.training.feed import MemmapFeed, open_stream, stream_state
from hear_wavjepa.training.metrics_log import MetricsLog
from hear_wavjepa.training.monitor import Monitor, task_folders
from hear_wavjepa.training.processes import (
    Processes,
    all_sum,
    barrier,
    broadcast_text,
    gather,
    start_processes,
)
from hear_wavjepa.training.recipe import Recipe, RecipeError, load_recipe
from hear_wavjepa.training.scenes import build_renderer
from hear_wavjepa.training.schedules import schedule
from hear_wavjepa.training.sources import find_stream, stream_format
from hear_wavjepa.training.state import checkpoint_dir, list_checkpoints, load_state, save_state


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


def runs_dir() -> Path:
    return paths.runs_dir()


def resolve_run(run: str) -> Path:
    """A run given by name (under $HEAR_WAVJEPA_HOME/runs) or by path."""
    path = Path(run).expanduser()
    if not path.is_dir():
        path = runs_dir() / run
    if not (path / "config.yaml").is_file():
        raise ValueError(f"{run}: not a pretraining run (no config.yaml under {path})")
    return path


def _new_run(recipe: Recipe, name: str, procs: Processes) -> Path:
    if procs.main:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        name = recipe.train.name or f"{name}-{stamp}"
    run = runs_dir() / broadcast_text(name, procs)
    if procs.main:
        if (run / "config.yaml").exists():
            raise ValueError(f"{run}: the run exists; resume it with --resume {run.name}")
        run.mkdir(parents=True, exist_ok=True)
        write_text(run / "config.yaml", recipe.to_yaml())
        info = {
            "git_commit": git_commit() or "unknown",
            "command": sys.argv,
            "world_size": procs.world,
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        }
        write_text(run / "run.json", json.dumps(info, indent=1))
    barrier(procs)
    return run


def _open_corpus(recipe: Recipe, channels: int, procs: Processes) -> Corpus:
    cache = (
        Path(recipe.data.cache_dir).expanduser() if recipe.data.cache_dir else paths.corpora_dir()
    )
    kwargs = dict(
        channels=channels,
        clip_seconds=recipe.data.clip_seconds,
        loudness_dbfs=recipe.data.loudness_dbfs,
        skip_unreadable=recipe.data.skip_unreadable,
    )
    folder = (
        decode_corpus(recipe.data.path, cache, progress=procs.main, **kwargs)
        if procs.main
        else None
    )
    barrier(procs)
    if folder is None:  # the main process built it; the others find the same key
        folder = decode_corpus(recipe.data.path, cache, progress=False, **kwargs)
    return Corpus(folder)


def pretrain(
    recipe: Recipe | None = None,
    *,
    name: str = "run",
    resume: str | None = None,
    progress: bool = True,
) -> Path:
    """Train `recipe` in a new run folder (or continue run `resume`); return the run folder."""
    if resume is not None:
        run = resolve_run(resume)
        recipe = load_recipe(run / "config.yaml")
    if recipe is None:
        raise ValueError("pretrain needs a recipe or a run to resume")
    train, data = recipe.train, recipe.data
    procs = start_processes(train.device)
    try:
        if train.threads:
            torch.set_num_threads(train.threads)
        if data.clips_per_step % (procs.world * train.accumulation):
            raise RecipeError(
                f"data.clips_per_step {data.clips_per_step} is not divisible by "
                f"{procs.world} processes x train.accumulation {train.accumulation}"
            )
        if recipe.monitor.every:
            task_folders(recipe.monitor.tasks)  # a MonitorError before any work
        config = recipe.model_config()
        # The main process builds (or finds) the cached scene banks first; the others load them.
        renderer = build_renderer(recipe) if procs.main else None
        barrier(procs)
        if not procs.main:
            renderer = build_renderer(recipe)
        if stream_format(data.path, data.format) == "stream":
            source = find_stream(data.path)  # a missing shard: CorpusError naming it

            def open_feed(saved: dict | None):
                return open_stream(recipe, config, source, renderer, procs.rank, procs.world, saved)
        else:
            channels = 1 if renderer is not None else config.in_channels
            maker = BatchMaker(
                _open_corpus(recipe, channels, procs),
                config,
                clips_per_step=data.clips_per_step,
                crops_per_clip=data.crops_per_clip,
                seed=train.seed,
                renderer=renderer,
                clean_data_ratio=recipe.scenes.clean_data_ratio,
            )
            per_rank = data.clips_per_step // procs.world

            def open_feed(saved: dict | None):
                return MemmapFeed(maker, procs.rank * per_rank, per_rank, train.accumulation)

        if resume is None:
            run = _new_run(recipe, name, procs)
        return _train(recipe, config, open_feed, run, procs, resume is not None, progress)
    finally:
        if procs.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


#: the run's starting weights (step 0), exported like the final model: the learning check's
#: "random initialisation" is the very network that pretraining started from.
INIT_EXPORT = "init.safetensors"


def _param_groups(model: WavJEPA, frontend_lr_scale: float) -> list[dict]:
    """Every trainable parameter in one group (docs/pretraining.md), or two when the conv stacks'
    learning rate is scaled (`optim.frontend_lr_scale`); each group's `lr_scale` multiplies the
    schedule. Scale 0 freezes the conv stacks instead: no gradient, no optimiser state."""
    conv = model.encoder.frontend.stacks
    if frontend_lr_scale == 0.0:
        conv.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if frontend_lr_scale in (0.0, 1.0):
        return [{"params": trainable, "lr_scale": 1.0}]
    ids = {id(p) for p in conv.parameters()}
    return [
        {"params": [p for p in trainable if id(p) not in ids], "lr_scale": 1.0},
        {"params": [p for p in trainable if id(p) in ids], "lr_scale": frontend_lr_scale},
    ]


@dataclass
class _Trainer:
    """What one training run holds: the model, what runs its forward pass (the model, wrapped in
    DDP and/or torch.compile), its optimizer, and where it starts."""

    model: WavJEPA
    forward: torch.nn.Module
    ddp: DistributedDataParallel | None
    optimizer: torch.optim.Optimizer
    start: int
    last_good: Path | None
    autocast: bool
    saved: dict  # the resumed checkpoint's state.json ({} for a fresh run)


def _build(
    recipe: Recipe, config: WavJEPAConfig, run: Path, procs: Processes, resume: bool
) -> _Trainer:
    """The model (seeded; its step-0 weights exported once), optimizer, resumed state, device
    flags and wrappers."""
    train = recipe.train
    torch.manual_seed(train.seed)
    model = WavJEPA(config)
    if procs.main and not (run / INIT_EXPORT).is_file():
        _export(run / INIT_EXPORT, model, recipe, run, step=0)
    model = model.to(procs.device)
    optimizer = torch.optim.AdamW(
        _param_groups(model, recipe.optim.frontend_lr_scale),
        lr=0.0,
        betas=recipe.optim.betas,
        eps=recipe.optim.eps,
        weight_decay=recipe.optim.weight_decay,
    )
    start, last_good, saved = 0, None, {}
    if resume:
        checkpoints = list_checkpoints(run)
        if checkpoints:
            last_good = checkpoints[-1]
            saved = load_state(last_good, model, optimizer)
            start = saved["step"]
    if procs.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    autocast = procs.device.type == "cuda" and train.precision == "bf16"

    forward = ddp = None
    if procs.world > 1:
        ids = [procs.device.index] if procs.device.type == "cuda" else None
        forward = ddp = DistributedDataParallel(model, device_ids=ids)
    forward = forward or model
    if train.compile:
        forward = torch.compile(forward)
    return _Trainer(model, forward, ddp, optimizer, start, last_good, autocast, saved)


def _forward_backward(
    t: _Trainer, batches: list[Batch], procs: Processes, share: float
) -> tuple[float, float, float, float]:
    """Forward and backward over this rank's micro-batches, gradients summed for one global
    mean; returns (loss, target std, prediction std, context rank) summed over ranks."""
    local_count = sum(float(b.masks.targets.sum()) for b in batches)
    count = all_sum([local_count], procs)[0]
    # squared error, target std, prediction std, context rank: summed on the device, read once.
    on_device = {"dtype": torch.float64, "device": procs.device}
    stats = torch.zeros(4, **on_device)
    for m, batch in enumerate(batches):
        sync = t.ddp is None or m == len(batches) - 1
        no_sync = contextlib.nullcontext() if sync else t.ddp.no_sync()
        with no_sync, torch.autocast(procs.device.type, torch.bfloat16, enabled=t.autocast):
            out = t.forward(batch.audio.to(procs.device), batch.masks.to(procs.device))
            # DDP averages gradients over ranks: scale back to one global sum / count.
            loss = out.squared_error * (procs.world / count)
        loss.backward()
        parts = torch.stack(
            [out.squared_error, out.target_std, out.prediction_std, out.context_rank]
        )
        weights = torch.tensor([1.0, share, share, share], **on_device)
        stats += parts.detach().double() * weights
    if procs.world > 1:
        dist.all_reduce(stats)
    squared_error, target_std, prediction_std, context_rank = stats.tolist()
    return squared_error / count, target_std, prediction_std, context_rank


def _checkpoint(
    recipe: Recipe, config: WavJEPAConfig, t: _Trainer, feed, run: Path, step: int, procs: Processes
) -> Path:
    """Checkpoint `step` (model, optimiser, and every rank's stream positions); all ranks call."""
    extra = {"run": run.name}
    stream = stream_state(gather(feed.state(), procs), procs.world, recipe.data.workers)
    if stream is not None:
        extra["stream"] = stream
    if procs.main:
        save_state(run, step, t.model, t.optimizer, config, extra, recipe.train.keep_checkpoints)
    barrier(procs)
    return checkpoint_dir(run, step)


def _update(t: _Trainer, ema: float, grad_clip: float) -> float:
    """Teacher EMA from the pre-update student, gradient clipping, AdamW step; the grad norm."""
    t.model.update_teacher(ema)
    grad_norm = float(torch.nn.utils.clip_grad_norm_(t.model.parameters(), grad_clip))
    t.optimizer.step()
    t.optimizer.zero_grad(set_to_none=True)
    return grad_norm


def _check_finite(loss_value: float, step: int, last_good: Path | None) -> None:
    if not math.isfinite(loss_value):
        where = last_good if last_good is not None else "none (no checkpoint written yet)"
        raise TrainingDiverged(
            f"step {step}: the loss is {loss_value}; training stopped. "
            f"Last good checkpoint: {where}"
        )


def _train(
    recipe: Recipe,
    config: WavJEPAConfig,
    open_feed,
    run: Path,
    procs: Processes,
    resume: bool,
    progress: bool,
) -> Path:
    """The steps from the start (or the resumed checkpoint) to `train.steps`; `open_feed(saved
    stream state or None)` gives the feed of this rank's micro-batches."""
    train, data = recipe.train, recipe.data
    t = _build(recipe, config, run, procs, resume)
    model, optimizer, start, last_good = t.model, t.optimizer, t.start, t.last_good
    feed = open_feed(t.saved.get("stream"))
    monitor = _monitor(recipe, model, procs)
    columns = monitor.columns if monitor is not None else ()
    log = MetricsLog(run, start if resume else None, columns) if procs.main else None
    share = 1.0 / train.accumulation  # the stds are averaged over micro-batches
    crops_per_step = data.clips_per_step * data.crops_per_clip
    bar = tqdm(total=train.steps, initial=start, desc=f"pretrain {run.name}", unit="step",
               disable=not (progress and procs.main))  # fmt: skip
    began = time.perf_counter()
    step = start

    def checkpoint() -> Path:
        return _checkpoint(recipe, config, t, feed, run, step, procs)

    def probe() -> None:
        if recipe.monitor.every and (step % recipe.monitor.every == 0 or step == train.steps):
            if monitor is not None:
                _probe(monitor, model, step, log, bar, time.perf_counter() - began, run)
            barrier(procs)

    probe()

    prefetch = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batches")
    pending = prefetch.submit(feed.take, start)
    try:
        while step < train.steps:
            tick = time.perf_counter()
            values = schedule(recipe, step)
            for group in optimizer.param_groups:
                group.update(
                    lr=values["lr"] * group["lr_scale"], weight_decay=values["weight_decay"]
                )
            batches, token = pending.result()
            feed.consumed(token)
            if step + 1 < train.steps:  # build the next step's crops while this one trains
                pending = prefetch.submit(feed.take, step + 1)
            loss_value, *stds = _forward_backward(t, batches, procs, share)
            _check_finite(loss_value, step, last_good)
            grad_norm = _update(t, values["ema"], recipe.optim.grad_clip)
            step += 1
            target_std, prediction_std, context_rank = (v / procs.world for v in stds)
            logged = step % train.log_every == 0 or step == train.steps
            skipped = int(all_sum([feed.skipped], procs)[0]) if logged else 0
            if log is not None and logged:
                log.write({"step": step - 1, "loss": loss_value, **values,
                           "target_std": target_std, "prediction_std": prediction_std,
                           "context_rank": context_rank, "grad_norm": grad_norm,
                           "crops_per_s": crops_per_step / (time.perf_counter() - tick),
                           "elapsed_s": time.perf_counter() - began,
                           "skipped_clips": skipped})  # fmt: skip
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.4f}", tstd=f"{target_std:.3f}",
                            rank=f"{context_rank:.1f}")  # fmt: skip
            probe()
            if step % train.checkpoint_every == 0 and step < train.steps:
                last_good = checkpoint()
    except KeyboardInterrupt:
        if procs.world == 1 and step > start:
            checkpoint()
        raise
    finally:
        prefetch.shutdown(cancel_futures=True)
        feed.close()
        bar.close()
        if log is not None:
            log.close()

    last_good = checkpoint()
    if procs.main:
        _export(run / "model.safetensors", model, recipe, run, step=step)
    if monitor is not None and step > start:
        total = time.perf_counter() - began
        print(
            f"monitor: the probes took {monitor.seconds:.0f} s, "
            f"{100 * monitor.seconds / total:.0f}% of this run's {total:.0f} s"
        )
    barrier(procs)
    return run


def _monitor(recipe: Recipe, model: WavJEPA, procs: Processes) -> Monitor | None:
    """The main rank's probe monitor (None elsewhere, or when `monitor.every` is 0)."""
    if not (recipe.monitor.every and procs.main):
        return None
    return Monitor(recipe.monitor, model, recipe.train.steps, log=tqdm.write)


def _probe(
    monitor: Monitor, model: WavJEPA, step: int, log: MetricsLog, bar, elapsed: float, run: Path
) -> None:
    """Probe the weights after `step` updates, log the row and a one-line summary; at the last
    step also compare the layer choices (run/embedding-choice.md)."""
    row = monitor.probe(model, step)
    log.write(row)
    share = monitor.seconds / max(elapsed + row["probe_s"], 1e-9)
    bar.write(f"{monitor.summary(row)}; probes so far: {100 * share:.0f}% of the run time")
    if step == monitor.steps:
        write_text(run / "embedding-choice.md", monitor.layer_choice(model, row))


def _export(path: Path, model: WavJEPA, recipe: Recipe, run: Path, step: int) -> None:
    """Write the training model as a checkpoint that `hear_wavjepa.load_model` reads."""
    extra = {"run": run.name, "git_commit": git_commit() or "unknown", "recipe": recipe.to_dict()}
    save_checkpoint(path, model.state_dict(), model.config, step=step, extra=extra)
