"""heareval.score's metrics, re-implemented: scene metrics on arrays, event metrics on event dicts.

Scene metrics take `predictions` (N, C) probabilities and `targets` (N, C) multi-hot, as heareval
does. Event metrics take `predictions` and `targets` as {filename: [{"label", "start", "end"}]}
with times in milliseconds, plus the vocabulary's label order; they follow sed_eval 0.2.1 (overall
micro counts accumulated file by file over the files in `predictions`) without depending on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import average_precision_score, roc_auc_score

#: A metric's value: a float, or heareval's tuple of (sub-score name, value), primary first.
Score = float | tuple[tuple[str, float], ...]
Events = Mapping[str, Sequence[Mapping[str, Any]]]

_EPS = float(np.spacing(1))


@dataclass(frozen=True)
class Metric:
    """One heareval score function. `event` metrics take event dicts and the label list."""

    name: str
    fn: Callable[..., Score]
    maximize: bool = True
    event: bool = False

    def __call__(self, predictions: Any, targets: Any, labels: Sequence[str] = ()) -> Score:
        if self.event:
            return self.fn(predictions, targets, labels)
        return self.fn(np.asarray(predictions), np.asarray(targets))


def primary_value(score: Score) -> float:
    """The value heareval logs under the metric's bare name (the first sub-score of a tuple)."""
    return float(score[0][1]) if isinstance(score, tuple) else float(score)


def _check_2d(predictions: np.ndarray, targets: np.ndarray) -> None:
    if predictions.ndim != 2 or targets.ndim != 2 or predictions.shape != targets.shape:
        raise ValueError(
            f"scene metrics need (N, C) predictions and targets of one shape, "
            f"got {predictions.shape} and {targets.shape}"
        )
    if len(targets) == 0:
        raise ValueError("scene metrics need at least one item, got 0")


def top1_acc(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Mean of argmax(pred) == argmax(target); for multi-hot targets argmax is the first label."""
    _check_2d(predictions, targets)
    return float(np.mean(predictions.argmax(axis=1) == targets.argmax(axis=1)))


def chroma_acc(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Top-1 accuracy on vocabulary indices modulo 12 (NSynth's pitch class)."""
    _check_2d(predictions, targets)
    return float(np.mean(predictions.argmax(axis=1) % 12 == targets.argmax(axis=1) % 12))


def mean_average_precision(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Macro average precision (sklearn), as heareval's mAP."""
    _check_2d(predictions, targets)
    return float(average_precision_score(targets, predictions, average="macro"))


def d_prime(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Mean over classes of norm.ppf(AUC)·√2; ±inf if a class has AUC 1 or 0, NaN on ValueError."""
    _check_2d(predictions, targets)
    try:
        auc = roc_auc_score(targets, predictions, average=None)
    except ValueError:
        return math.nan
    return float(np.mean(stats.norm().ppf(auc) * np.sqrt(2.0)))


def aucroc(predictions: np.ndarray, targets: np.ndarray) -> float:
    """Macro ROC AUC (sklearn), NaN on ValueError."""
    _check_2d(predictions, targets)
    try:
        return float(roc_auc_score(targets, predictions, average="macro"))
    except ValueError:
        return math.nan


def _seconds(events: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, float]]:
    """(label, onset s, offset s) as heareval hands them to sed_eval (ms / 1000)."""
    return [(str(e["label"]), e["start"] / 1000.0, e["end"] / 1000.0) for e in events]


def _precision_recall_f(ntp: float, nsys: float, nref: float) -> tuple[float, float, float]:
    """sed_eval 0.2.1: NaN precision when Nsys = 0, NaN recall when Nref = 0; F = 0 if P = R = 0."""
    precision = math.nan if nsys == 0 else ntp / nsys
    recall = math.nan if nref == 0 else ntp / nref
    if precision == 0 and recall == 0:
        return 0.0, precision, recall
    return 2 * precision * recall / (precision + recall), precision, recall


def _event_based(
    predictions: Events,
    targets: Events,
    labels: Sequence[str],
    t_collar: float,
    evaluate_offset: bool = False,
    percentage_of_length: float = 0.5,
) -> tuple[tuple[str, float], ...]:
    """sed_eval EventBasedMetrics (onset, optional offset, optimal matching): overall (F, P, R)."""
    known = {str(label) for label in labels}
    ntp = nsys = nref = 0
    for filename in predictions:
        est, ref = _file_events(predictions, targets, filename, known)
        nsys += len(est)
        nref += len(ref)
        if not est or not ref:
            continue
        r_label = np.array([r[0] for r in ref], dtype=object)[:, None]
        e_label = np.array([e[0] for e in est], dtype=object)[None, :]
        r_on = np.array([r[1] for r in ref])[:, None]
        e_on = np.array([e[1] for e in est])[None, :]
        hit = (r_label == e_label) & (np.abs(r_on - e_on) <= t_collar)
        if evaluate_offset:
            r_off = np.array([r[2] for r in ref])[:, None]
            e_off = np.array([e[2] for e in est])[None, :]
            tolerance = np.maximum(t_collar, percentage_of_length * (r_off - r_on))
            hit &= np.abs(r_off - e_off) <= tolerance
        rows, cols = linear_sum_assignment(hit, maximize=True)
        ntp += int(hit[rows, cols].sum())
    f, p, r = _precision_recall_f(ntp, nsys, nref)
    return (("f_measure", f), ("precision", p), ("recall", r))


def _file_events(predictions: Events, targets: Events, filename: str, known):
    """(estimated, reference) events of one file in seconds; labels must be in `known`."""
    est = _seconds(predictions[filename])
    ref = _seconds(targets.get(filename, ()))
    for label, _, _ in est + ref:
        if label not in known:
            raise ValueError(f"event label {label!r} of {filename} is not in the vocabulary")
    return est, ref


def _event_roll(
    events: list[tuple[str, float, float]], index: dict[str, int], resolution: float
) -> np.ndarray:
    """sed_eval's event roll: (ceil(max offset / res), C), active from floor(on) to ceil(off)."""
    max_offset = max((off for _, _, off in events), default=0.0)
    roll = np.zeros((math.ceil(max_offset / resolution), len(index)))
    for label, on, off in events:
        roll[math.floor(on / resolution) : math.ceil(off / resolution), index[label]] = 1
    return roll


def _fit_length(roll: np.ndarray, length: int) -> np.ndarray:
    if length <= roll.shape[0]:
        return roll[:length]
    return np.vstack([roll, np.zeros((length - roll.shape[0], roll.shape[1]))])


def _segment_error_rate(
    predictions: Events, targets: Events, labels: Sequence[str], resolution: float = 1.0
) -> tuple[tuple[str, float], ...]:
    """sed_eval SegmentBasedMetrics overall error rate: (S + D + I) / N over 1 s segments."""
    index = {str(label): i for i, label in enumerate(labels)}
    subs = dels = ins = nref = 0.0
    for filename in predictions:
        est, ref = _file_events(predictions, targets, filename, index)
        length_s = max(
            max((o for _, _, o in ref), default=0.0), max((o for _, _, o in est), default=0.0)
        )
        length = math.ceil(length_s / resolution)
        ref_roll = _fit_length(_event_roll(ref, index, resolution), length)
        est_roll = _fit_length(_event_roll(est, index, resolution), length)
        n_ref = ref_roll.sum(axis=1)
        n_sys = est_roll.sum(axis=1)
        n_tp = ((ref_roll + est_roll) > 1).sum(axis=1)
        subs += float(np.sum(np.minimum(n_ref, n_sys) - n_tp))
        dels += float(np.sum(np.maximum(0, n_ref - n_sys)))
        ins += float(np.sum(np.maximum(0, n_sys - n_ref)))
        nref += float(n_ref.sum())
    error_rate = subs / (nref + _EPS) + dels / (nref + _EPS) + ins / (nref + _EPS)
    return (("error_rate", error_rate),)


def event_onset_200ms_fms(predictions: Events, targets: Events, labels: Sequence[str]) -> Score:
    """Onset-only event F-measure with a 200 ms collar: (f_measure, precision, recall)."""
    return _event_based(predictions, targets, labels, t_collar=0.2)


def event_onset_50ms_fms(predictions: Events, targets: Events, labels: Sequence[str]) -> Score:
    """Onset-only event F-measure with a 50 ms collar: (f_measure, precision, recall)."""
    return _event_based(predictions, targets, labels, t_collar=0.05)


def event_onset_offset_50ms_20perc_fms(
    predictions: Events, targets: Events, labels: Sequence[str]
) -> Score:
    """Onset+offset event F-measure (50 ms collar, offset within max(50 ms, 20 % of length))."""
    return _event_based(
        predictions, targets, labels, t_collar=0.05, evaluate_offset=True, percentage_of_length=0.2
    )


def segment_1s_er(predictions: Events, targets: Events, labels: Sequence[str]) -> Score:
    """Segment-based error rate on 1 s segments (lower is better): (error_rate,)."""
    return _segment_error_rate(predictions, targets, labels, resolution=1.0)


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("top1_acc", top1_acc),
        Metric("pitch_acc", top1_acc),
        Metric("chroma_acc", chroma_acc),
        Metric("mAP", mean_average_precision),
        Metric("d_prime", d_prime),
        Metric("aucroc", aucroc),
        Metric("event_onset_200ms_fms", event_onset_200ms_fms, event=True),
        Metric("event_onset_50ms_fms", event_onset_50ms_fms, event=True),
        Metric(
            "event_onset_offset_50ms_20perc_fms", event_onset_offset_50ms_20perc_fms, event=True
        ),
        Metric("segment_1s_er", segment_1s_er, maximize=False, event=True),
    )
}


def get_metric(name: str) -> Metric:
    """The registered metric `name`; ValueError naming the known ones otherwise."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return METRICS[name]
