"""Naturalize every task of a built mini suite; print seconds per task, then the log-mel baseline
clean vs Nat (the Nat audio reduced to mono by the channel mean, as baselines see Nat-HEAR).

    python tests/benchmarks/bench_naturalize.py [SUITE_DIR [OUT_DIR]]

SUITE_DIR defaults to `$HEAR_WAVJEPA_HOME/tasks/mini` (skipped with a message when absent), OUT_DIR
to `<SUITE_DIR>-nat`. Settings: `tasks/nat.yaml`; banks are built first (timed separately) and
cached. A finished task in OUT_DIR is skipped by naturalize's resume, so time a fresh OUT_DIR.
Target: the whole default suite in under 10 minutes on 2 cores.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile
import torch

from hear_wavjepa.hear_task import load_task
from hear_wavjepa.paths import home
from hear_wavjepa.scenes.naturalize import load_nat_config, naturalize
from hear_wavjepa.scenes.noise import load_noise_bank
from hear_wavjepa.scenes.rooms import load_room_bank

try:  # the log-mel + logistic-regression baseline of the mini suite (same folder)
    import bench_baseline_mini as baseline
except ImportError:
    baseline = None


def _mono_log_mel(path: Path) -> np.ndarray:
    """(frames, 64) log-mel of the channel mean (the baseline's `log_mel` reads mono files)."""
    audio, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    with torch.no_grad():
        mel = baseline.MEL(torch.from_numpy(audio.mean(axis=1)))
    return torch.log(mel + 1e-6).T.numpy()


def naturalize_suite(suite: Path, out: Path) -> list[tuple[Path, Path]]:
    config = load_nat_config()
    start = time.perf_counter()
    load_room_bank(config.rooms)
    load_noise_bank(config.noise)
    print(f"banks (built or loaded): {time.perf_counter() - start:.0f} s")
    done = []
    total = 0.0
    print(f"{'task':<32} {'clips':>6} {'seconds':>8}")
    for folder in sorted(p for p in suite.iterdir() if (p / "task_metadata.json").is_file()):
        start = time.perf_counter()
        nat = naturalize(folder, out / folder.name, config, progress=False)
        seconds = time.perf_counter() - start
        total += seconds
        clips = sum(1 for _ in (nat / "16000").rglob("*.wav"))
        print(f"{folder.name:<32} {clips:>6} {seconds:>8.1f}")
        done.append((folder, nat))
    print(f"{'total':<32} {'':>6} {total:>8.1f}   ({os.cpu_count()} cores) -> {out}")
    return done


def compare_baseline(pairs: list[tuple[Path, Path]]) -> None:
    warnings.simplefilter("ignore")  # small splits: absent labels, convergence
    baseline.log_mel = _mono_log_mel
    torch.set_num_threads(2)
    print(f"\n{'task':<32} {'metric':<22} {'clean':>7} {'nat':>7}")
    drops = 0
    for clean_dir, nat_dir in pairs:
        scores = []
        for folder in (clean_dir, nat_dir):
            task = load_task(folder, check_audio=False)
            if task.embedding_type == "event":
                metric, score = "event_onset_200ms_fms", baseline.event_scores(task)[1]
            else:
                metric, score = task.primary_metric, baseline.scene_scores(task)[1]
            scores.append(score)
        drops += scores[1] < scores[0]
        print(f"{clean_dir.name:<32} {metric:<22} {scores[0]:>7.3f} {scores[1]:>7.3f}")
    print(f"the baseline drops on {drops} of {len(pairs)} Nat tasks")


def main(argv: list[str]) -> int:
    suite = Path(argv[0]) if argv else home() / "tasks" / "mini"
    if not suite.is_dir():
        print(f"skipped: no mini suite at {suite} (build it: hear-wavjepa tasks build-mini)")
        return 0
    out = Path(argv[1]) if len(argv) > 1 else suite.with_name(suite.name + "-nat")
    pairs = naturalize_suite(suite, out)
    if baseline is None:
        print("skipped the baseline comparison: tests/benchmarks/bench_baseline_mini.py is absent")
    else:
        compare_baseline(pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
