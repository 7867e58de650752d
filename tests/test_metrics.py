"""heareval metric re-implementations against hand-computed values."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest

from hear_wavjepa.evaluation.metrics import METRICS, get_metric, primary_value

LABELS = ["bird", "cat", "dog"]


def test_top1_and_pitch_acc():
    preds = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    targets = np.array([[0, 1], [0, 1], [0, 1]])
    assert METRICS["top1_acc"](preds, targets) == pytest.approx(2 / 3)
    assert METRICS["pitch_acc"](preds, targets) == pytest.approx(2 / 3)


def test_top1_multilabel_target_uses_first_positive():
    preds = np.array([[0.1, 0.2, 0.7]])
    targets = np.array([[0, 1, 1]])  # argmax of the target is class 1
    assert METRICS["top1_acc"](preds, targets) == 0.0


def test_chroma_acc_is_index_mod_12():
    preds = np.zeros((2, 14))
    targets = np.zeros((2, 14))
    preds[0, 13], targets[0, 1] = 1, 1  # 13 % 12 == 1 % 12: an octave error counts
    preds[1, 2], targets[1, 3] = 1, 1
    assert METRICS["chroma_acc"](preds, targets) == 0.5
    assert METRICS["top1_acc"](preds, targets) == 0.0


SCENE_PREDS = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
SCENE_TARGETS = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])


def test_map_macro():
    # class 0 ranked .9(+) .8(-) .3(+) .1(-): AP = (1/1 + 2/3) / 2; class 1 ranks the same way.
    assert METRICS["mAP"](SCENE_PREDS, SCENE_TARGETS) == pytest.approx((1 + 2 / 3) / 2)


def test_aucroc_and_d_prime():
    # each class: 3 of the 4 positive/negative pairs are ordered correctly.
    assert METRICS["aucroc"](SCENE_PREDS, SCENE_TARGETS) == pytest.approx(0.75)
    expected = NormalDist().inv_cdf(0.75) * math.sqrt(2)
    assert METRICS["d_prime"](SCENE_PREDS, SCENE_TARGETS) == pytest.approx(expected)


def test_d_prime_is_infinite_when_a_class_separates_perfectly():
    preds = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    targets = np.array([[1, 0], [0, 1], [1, 0], [0, 1]])
    assert METRICS["aucroc"](preds, targets) == 1.0
    assert METRICS["d_prime"](preds, targets) == math.inf


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_d_prime_and_aucroc_nan_when_a_class_has_one_kind_of_label():
    preds = np.array([[0.9, 0.1], [0.6, 0.4]])
    targets = np.array([[1, 0], [1, 0]])  # class 1 never positive: roc_auc_score raises
    assert math.isnan(METRICS["d_prime"](preds, targets))
    assert math.isnan(METRICS["aucroc"](preds, targets))


def _ev(label, start, end):
    return {"label": label, "start": start, "end": end}


def test_event_onset_fms_200ms_and_50ms():
    ref = {"a.wav": [_ev("dog", 0, 1000), _ev("cat", 2000, 3000), _ev("dog", 5000, 5500)]}
    est = {
        "a.wav": [
            _ev("dog", 150, 900),  # onset 150 ms late: a hit at 200 ms, a miss at 50 ms
            _ev("cat", 2300, 3100),  # 300 ms late: a miss
            _ev("dog", 5100, 5400),  # 100 ms late
            _ev("dog", 8000, 8500),  # nothing there
        ]
    }
    f, p, r = (v for _, v in METRICS["event_onset_200ms_fms"](est, ref, LABELS))
    assert (p, r) == (0.5, pytest.approx(2 / 3))
    assert f == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert dict(METRICS["event_onset_50ms_fms"](est, ref, LABELS)) == {
        "f_measure": 0.0,
        "precision": 0.0,
        "recall": 0.0,
    }


def test_event_matching_is_optimal_not_greedy():
    # ref A (200 ms) and B (0 ms); X (100 ms) fits both, Y (350 ms) fits only A. Greedy matching
    # would give A-X and leave B unmatched; the optimal matching is A-Y, B-X.
    ref = {"a.wav": [_ev("dog", 200, 900), _ev("dog", 0, 100)]}
    est = {"a.wav": [_ev("dog", 100, 500), _ev("dog", 350, 900)]}
    assert primary_value(METRICS["event_onset_200ms_fms"](est, ref, LABELS)) == 1.0


def test_event_nothing_predicted_gives_nan_precision_and_f():
    ref = {"a.wav": [_ev("dog", 0, 1000)]}
    score = dict(METRICS["event_onset_200ms_fms"]({"a.wav": []}, ref, LABELS))
    assert math.isnan(score["precision"]) and math.isnan(score["f_measure"])
    assert score["recall"] == 0.0


def test_event_metrics_only_visit_predicted_files():
    ref = {"a.wav": [_ev("dog", 0, 1000)], "b.wav": [_ev("cat", 0, 1000)]}
    est = {"a.wav": [_ev("dog", 0, 1000)]}
    assert dict(METRICS["event_onset_200ms_fms"](est, ref, LABELS))["recall"] == 1.0


def test_onset_offset_variant_checks_offsets():
    ref = {"a.wav": [_ev("dog", 0, 1000)]}
    # offset tolerance max(50 ms, 20 % of 1000 ms) = 200 ms
    near = {"a.wav": [_ev("dog", 20, 1150)]}
    far = {"a.wav": [_ev("dog", 20, 1300)]}
    metric = METRICS["event_onset_offset_50ms_20perc_fms"]
    assert primary_value(metric(near, ref, LABELS)) == 1.0
    assert primary_value(metric(far, ref, LABELS)) == 0.0


def test_segment_1s_error_rate():
    ref = {"a.wav": [_ev("dog", 0, 1500), _ev("cat", 1000, 2000)]}
    est = {"a.wav": [_ev("dog", 0, 800), _ev("bird", 1200, 1900)]}
    # segment 0: dog/dog, correct. segment 1: ref {dog, cat}, est {bird}: S = 1, D = 1, I = 0.
    # N = 3 reference activities -> ER = 2 / 3.
    assert METRICS["segment_1s_er"](est, ref, LABELS) == (("error_rate", pytest.approx(2 / 3)),)


def test_registry_flags_and_errors():
    assert not METRICS["segment_1s_er"].maximize
    assert all(m.maximize for name, m in METRICS.items() if name != "segment_1s_er")
    with pytest.raises(ValueError, match="unknown metric"):
        get_metric("f1")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        METRICS["event_onset_200ms_fms"]({"a.wav": [_ev("cow", 0, 1)]}, {}, LABELS)
    with pytest.raises(ValueError, match="one shape"):
        METRICS["top1_acc"](np.zeros((2, 3)), np.zeros((2, 2)))
