"""The one small CNN of the baselines (nn/classifier.py) and its training loop (train/classifier.py)."""

import numpy as np
import pytest
import torch

from latentmed.errors import LatentmedError
from latentmed.nn.classifier import SmallCNN, build_classifier
from latentmed.train.classifier import fit_classifier, predict_logits


def _bars(n=48, seed=0):
    """Class k: a bright bar in row block k (4 classes), plus noise; labels: [class is odd, class >= 2]."""
    g = torch.Generator().manual_seed(seed)
    y = np.arange(n) % 4
    x = 0.3 * torch.randn(n, 1, 16, 16, generator=g)
    for i, k in enumerate(y):
        x[i, :, 4 * k:4 * k + 4] += 1.5
    return x, y


def test_small_cnn_shapes_and_bad_arch():
    assert SmallCNN(3, 5)(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    assert build_classifier("small", 1, 2)(torch.zeros(1, 1, 16, 16)).shape == (1, 2)
    with pytest.raises(LatentmedError, match="unknown classifier arch 'resnet'"):
        build_classifier("resnet", 1, 2)


def test_fit_classifier_learns_classes_and_labels_and_is_seeded():
    x, y = _bars()
    xt, yt = _bars(seed=1)
    net = fit_classifier(x, y, epochs=1, min_steps=24, batch_size=16, lr=3e-3, num_outputs=5, seed=0)
    logits = predict_logits(net, xt)
    assert logits.shape == (48, 5)  # num_outputs: a grade absent from training keeps its column
    assert (logits.argmax(1).numpy() == yt).mean() > 0.9
    again = predict_logits(fit_classifier(x, y, epochs=1, min_steps=24, batch_size=16, lr=3e-3, num_outputs=5,
                                          seed=0), xt)
    assert torch.equal(logits, again)  # same seed, same result
    labels = np.stack([y % 2, y >= 2], 1).astype(int)  # multi-label: BCE
    net = fit_classifier(x, labels, epochs=1, min_steps=24, batch_size=16, lr=3e-3, cosine=True, seed=0)
    probs = torch.sigmoid(predict_logits(net, xt)).numpy()
    assert probs.shape == (48, 2) and ((probs > 0.5) == np.stack([yt % 2, yt >= 2], 1)).mean() > 0.9
    with pytest.raises(LatentmedError, match="47 targets for 48 images"):
        fit_classifier(x, y[:47])
