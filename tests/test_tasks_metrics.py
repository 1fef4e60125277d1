"""GLUE metrics against hand-computed cases (the arithmetic is in the comments)."""

import math

import pytest

from lvbert.tasks import metrics as M


def test_accuracy():
    assert M.accuracy([1, 0, 1, 1], [1, 1, 1, 0]) == 0.5


def test_f1_binary():
    # tp = 2 (rows 0, 2), fp = 1 (row 3), fn = 1 (row 1): 2*2 / (2*2 + 1 + 1) = 2/3
    assert M.f1([1, 0, 1, 1], [1, 1, 1, 0]) == pytest.approx(2 / 3)
    # the positive class is a choice: for class 0, tp = 0 -> 0
    assert M.f1([1, 0, 1, 1], [1, 1, 1, 0], positive=0) == 0.0


def test_macro_f1():
    # class 0: F1 1; class 1: tp 1, fp 1, fn 1 -> 1/2; class 2: same -> 1/2; mean 2/3
    assert M.macro_f1([0, 2, 1, 0, 1, 2], [0, 1, 2, 0, 1, 2]) == pytest.approx(2 / 3)


def test_matthews_binary():
    # tp 2, fp 1, tn 2, fn 1: (2*2 - 1*1) / sqrt(3*3*3*3) = 3/9
    assert M.matthews_corr([1, 1, 0, 0, 1, 0], [1, 0, 0, 0, 1, 1]) == pytest.approx(1 / 3)
    assert M.matthews_corr([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    assert M.matthews_corr([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)


def test_matthews_multiclass():
    # n 6, correct 4, t = p = (2, 2, 2): (4*6 - 12) / sqrt((36 - 12) * (36 - 12)) = 1/2
    assert M.matthews_corr([0, 2, 1, 0, 1, 2], [0, 1, 2, 0, 1, 2]) == pytest.approx(0.5)


def test_matthews_constant_prediction_is_zero():
    assert M.matthews_corr([1, 1, 1, 1], [1, 0, 1, 0]) == 0.0


def test_pearson():
    # dx = (-1.5, -.5, .5, 1.5), dy = (-3, -1, 0, 4): 11 / sqrt(5 * 26)
    assert M.pearson([1, 2, 3, 4], [2, 4, 5, 9]) == pytest.approx(11 / math.sqrt(130))
    assert M.pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert M.pearson([2, 2, 2], [1, 2, 3]) == 0.0


def test_spearman_with_ties():
    # ranks x = (1, 2.5, 2.5, 4), y = (1, 3, 2, 4): 4.5 / sqrt(4.5 * 5)
    assert M.spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / math.sqrt(22.5))
    # monotone but not linear: Spearman 1, Pearson below 1
    x, y = [1, 2, 3, 4, 5], [1, 4, 9, 16, 100]
    assert M.spearman(x, y) == pytest.approx(1.0)
    assert M.pearson(x, y) < 0.99


def test_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    x = [0.3, 1.2, 2.2, 2.2, 4.0, 3.1, 0.0, 5.0]
    y = [0.0, 1.0, 2.5, 2.0, 4.2, 2.9, 0.4, 4.8]
    assert M.pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert M.spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])


def test_compute_and_errors():
    assert M.compute(["accuracy", "f1"], [1, 0], [1, 1]) == {"accuracy": 0.5, "f1": pytest.approx(2 / 3)}
    with pytest.raises(ValueError):
        M.accuracy([1], [1, 0])
    with pytest.raises(ValueError):
        M.accuracy([], [])
