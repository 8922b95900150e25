"""Classification metrics: thin scikit-learn wrappers, checked against hand counts and for bad input."""

import numpy as np
import pytest
import torch

from latentmed.errors import LatentmedError
from latentmed.metrics import classification as cl


def test_auc_binary_and_multiclass():
    y = [0, 0, 1, 1]
    s = [0.1, 0.6, 0.4, 0.9]
    assert cl.auc(y, s) == 0.75  # 3 of 4 positive-negative pairs ordered correctly
    assert cl.auc(torch.tensor(y), torch.tensor([[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.1, 0.9]])) == 0.75
    y3 = np.array([0, 1, 2, 0, 1, 2])
    p3 = np.eye(3)[[0, 1, 2, 0, 2, 1]] * 0.8 + 0.2 / 3
    value = cl.auc(y3, p3)
    assert 0.5 < value < 1
    with pytest.raises(LatentmedError, match="one class"):
        cl.auc([1, 1], [0.2, 0.3])
    with pytest.raises(LatentmedError, match="classes but y_score is 1-D"):
        cl.auc(y3, np.linspace(0, 1, 6))


def test_macro_f1_mae_confusion():
    y = [0, 1, 2, 2, 1, 0]
    p = [0, 2, 2, 2, 1, 1]
    # per-class F1: class0 2/3, class1 1/2, class2 4/5
    np.testing.assert_allclose(cl.macro_f1(y, p), (2 / 3 + 1 / 2 + 4 / 5) / 3)
    np.testing.assert_allclose(cl.macro_f1(y, p, labels=[1, 2]), (1 / 2 + 4 / 5) / 2)
    np.testing.assert_allclose(cl.mae(y, p), 2 / 6)
    np.testing.assert_array_equal(cl.confusion(y, p), [[1, 1, 0], [0, 1, 1], [0, 0, 2]])
    np.testing.assert_array_equal(cl.confusion(y, p, labels=[2, 0]), [[2, 0], [0, 1]])
    acc = cl.MacroF1(labels=[1, 2])
    acc.update(y[:3], p[:3])
    acc.update(torch.tensor(y[3:]), torch.tensor(p[3:]))
    np.testing.assert_allclose(acc.compute(), (1 / 2 + 4 / 5) / 2)
    m = cl.MAE()
    m.update(y, p)
    np.testing.assert_allclose(m.compute(), 2 / 6)
    m.reset()
    with pytest.raises(LatentmedError, match="no data"):
        m.compute()


def test_classification_bad_input():
    with pytest.raises(LatentmedError, match="3 samples but y_pred has 2"):
        cl.mae([1, 2, 3], [1, 2])
    with pytest.raises(LatentmedError, match="1-D"):
        cl.macro_f1(np.zeros((2, 2)), [0, 1])
    with pytest.raises(LatentmedError, match="empty"):
        cl.confusion([], [])
    with pytest.raises(LatentmedError, match="numeric"):
        cl.mae(["a", "b"], ["a", "b"])
    with pytest.raises(LatentmedError, match="map the labels to integers"):  # the classes keep tensor states
        cl.MacroF1().update(["a", "b"], ["a", "b"])
