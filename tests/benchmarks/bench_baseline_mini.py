"""Log-mel statistics + logistic regression on every task of a built mini suite: chance vs baseline.

    python tests/benchmarks/bench_baseline_mini.py [SUITE_DIR]   (builds the default if missing)

Scene tasks: 64-band log-mel (25 ms / 10 ms) mean and std, plus mean and std of its time difference
(256 features), standardised, multinomial logistic regression (one-vs-rest for multilabel) with C
picked on the valid split from {0.01, 0.1, 1, 10}, scored on the test split with the task's primary
metric; k-fold tasks use heareval's folds (test i, valid i+1) and report the mean over folds.
Chance: the constant prediction of the training label frequencies (majority class for accuracy,
label prevalence for mAP). Event task: the same features per 100-ms frame over a 0.5-s window,
one-vs-rest logistic regression per frame, p > 0.5, a 3-frame median filter, runs of active frames
become events; onset F-measure (200 ms) and 1-s segment error rate; chance = predicting no events.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile
import torch
import torchaudio
from scipy.ndimage import median_filter
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.preprocessing import StandardScaler

from hear_wavjepa.builders.mini.build import build_mini, default_out
from hear_wavjepa.builders.mini.recipe import load_recipes
from hear_wavjepa.evaluation.metrics import get_metric, primary_value
from hear_wavjepa.hear_task import Task, load_task

SR = 16000
MEL = torchaudio.transforms.MelSpectrogram(SR, n_fft=400, hop_length=160, n_mels=64)
C_GRID = (0.01, 0.1, 1.0, 10.0)
FRAME_HOP = 10  # mel frames (100 ms) per event-task frame
FRAME_CONTEXT = 25  # mel frames on each side of an event-task frame


def log_mel(path: Path) -> np.ndarray:
    """(frames, 64) log-mel of one wav."""
    audio, _ = soundfile.read(str(path), dtype="float32")
    with torch.no_grad():
        mel = MEL(torch.from_numpy(audio))
    return torch.log(mel + 1e-6).T.numpy()


def stats(mel: np.ndarray) -> np.ndarray:
    delta = np.diff(mel, axis=0) if len(mel) > 1 else np.zeros_like(mel)
    return np.concatenate([mel.mean(0), mel.std(0), delta.mean(0), delta.std(0)])


def targets(task: Task, split: str) -> np.ndarray:
    index = {label: i for i, label in enumerate(task.labels)}
    y = np.zeros((len(task.clips[split]), len(task.labels)), dtype=np.float32)
    for row, clip in enumerate(task.clips[split]):
        for label in clip.labels:
            y[row, index[label]] = 1
    return y


def fit_predict(x_train, y_train, x_eval, c, multilabel):
    scaler = StandardScaler().fit(x_train)
    if multilabel:
        model = OneVsRestClassifier(LogisticRegression(C=c, max_iter=2000))
        model.fit(scaler.transform(x_train), y_train)
        return model.predict_proba(scaler.transform(x_eval))
    classes = y_train.argmax(1)
    model = LogisticRegression(C=c, max_iter=2000).fit(scaler.transform(x_train), classes)
    out = np.zeros((len(x_eval), y_train.shape[1]))
    out[:, model.classes_] = model.predict_proba(scaler.transform(x_eval))
    return out


def scene_scores(task: Task) -> tuple[float, float]:
    metric = get_metric(task.primary_metric)
    feats = {
        s: np.stack([stats(log_mel(task.wav_path(s, c))) for c in task.clips[s]])
        for s in task.splits
    }
    ys = {s: targets(task, s) for s in task.splits}
    multilabel = task.prediction_type == "multilabel"
    chance, base = [], []
    for train, valid, test in task.protocol_splits():
        x_tr, y_tr = (
            np.concatenate([feats[s] for s in train]),
            np.concatenate([ys[s] for s in train]),
        )
        best = max(
            C_GRID,
            key=lambda c: primary_value(
                metric(fit_predict(x_tr, y_tr, feats[valid], c, multilabel), ys[valid])
            ),
        )
        x_fit, y_fit = np.concatenate([x_tr, feats[valid]]), np.concatenate([y_tr, ys[valid]])
        base.append(
            primary_value(
                metric(fit_predict(x_fit, y_fit, feats[test], best, multilabel), ys[test])
            )
        )
        prior = np.broadcast_to(y_fit.mean(0) + 1e-9 * np.arange(y_fit.shape[1]), ys[test].shape)
        chance.append(primary_value(metric(np.array(prior), ys[test])))
    return float(np.mean(chance)), float(np.mean(base))


def frame_features(task: Task, split: str):
    """Per 100-ms frame: (features, multi-hot targets, (filename, time ms))."""
    index = {label: i for i, label in enumerate(task.labels)}
    xs, ys, where = [], [], []
    for clip in task.clips[split]:
        mel = log_mel(task.wav_path(split, clip))
        for centre in range(FRAME_HOP // 2, len(mel), FRAME_HOP):
            window = mel[max(0, centre - FRAME_CONTEXT) : centre + FRAME_CONTEXT]
            t_ms = centre * 10.0
            y = np.zeros(len(task.labels), dtype=np.float32)
            for e in clip.events:
                if e.start_ms <= t_ms < e.end_ms:
                    y[index[e.label]] = 1
            xs.append(stats(window))
            ys.append(y)
            where.append((clip.filename, t_ms))
    return np.stack(xs), np.stack(ys), where


def to_events(task: Task, probs: np.ndarray, where) -> dict[str, list[dict]]:
    events: dict[str, list[dict]] = {}
    names = [w[0] for w in where]
    for name in dict.fromkeys(names):
        rows = [i for i, n in enumerate(names) if n == name]
        active = median_filter(probs[rows] > 0.5, size=(3, 1))
        times = [where[i][1] for i in rows]
        events[name] = []
        for k, label in enumerate(task.labels):
            run = None
            for t, on in zip(times, active[:, k], strict=True):
                if on and run is None:
                    run = t
                if not on and run is not None:
                    events[name].append({"label": label, "start": run - 50.0, "end": t - 50.0})
                    run = None
            if run is not None:
                events[name].append({"label": label, "start": run - 50.0, "end": times[-1] + 50.0})
    return events


def event_scores(task: Task) -> tuple[float, float, float]:
    (train,), valid, test = task.protocol_splits()[0]
    x_tr, y_tr, _ = frame_features(task, train)
    x_va, y_va, _ = frame_features(task, valid)
    x_te, _, where = frame_features(task, test)
    probs = fit_predict(np.concatenate([x_tr, x_va]), np.concatenate([y_tr, y_va]), x_te, 0.1, True)
    predicted = to_events(task, probs, where)
    reference = {
        c.filename: [{"label": e.label, "start": e.start_ms, "end": e.end_ms} for e in c.events]
        for c in task.clips[test]
    }
    onset = primary_value(get_metric("event_onset_200ms_fms")(predicted, reference, task.labels))
    error = primary_value(get_metric("segment_1s_er")(predicted, reference, task.labels))
    return 0.0, onset, error


def main(argv: list[str]) -> int:
    suite = Path(argv[0]) if argv else default_out()
    if not suite.is_dir():
        print(f"building the default mini suite into {suite}")
        build_mini(suite)
    torch.set_num_threads(2)
    warnings.simplefilter("ignore", UserWarning)  # labels absent from a small training split
    warnings.simplefilter("ignore", ConvergenceWarning)
    shorts = {r.folder: r for r in load_recipes()}
    header = ("task", "short", "for", "metric", "chance", "baseline", "s")
    print("{:<24} {:<7} {:<7} {:<22} {:>7} {:>8} {:>5}".format(*header))
    for folder in sorted(p for p in suite.iterdir() if (p / "task_metadata.json").is_file()):
        start = time.perf_counter()
        task = load_task(folder, check_audio=False)
        recipe = shorts.get(folder.name)
        short = recipe.short if recipe else "-"
        stands = (recipe.stands_for or "-") if recipe else "-"
        if task.embedding_type == "event":
            chance, onset, error = event_scores(task)
            rows = [("event_onset_200ms_fms", chance, onset), ("segment_1s_er", 1.0, error)]
        else:
            rows = [(task.primary_metric, *scene_scores(task))]
        for metric, chance, score in rows:
            seconds = time.perf_counter() - start
            print(
                f"{folder.name:<24} {short:<7} {stands:<7} {metric:<22} {chance:>7.3f} "
                f"{score:>8.3f} {seconds:>5.0f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
