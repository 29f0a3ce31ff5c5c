from __future__ import annotations

import numpy as np

from majordome.router._linear import LinearModel
from majordome.router.text_features import hash_features, normalise_text


def test_softmax_regression_learns_a_separable_problem_from_sparse_and_dense_views() -> None:
    rng = np.random.default_rng(0)
    texts = [f"apple banana {i}" for i in range(30)] + [f"car engine {i}" for i in range(30)]
    labels = np.array([0] * 30 + [1] * 30)
    dense = rng.normal(size=(60, 4))
    dense[:, 0] += labels * 2  # the dense view is informative too
    sparse = hash_features(texts, 2**10)
    model = LinearModel.zeros(4, 2**10, 2).fit(dense, sparse, labels, epochs=200)
    proba = model.proba(dense, sparse)
    assert (proba.argmax(axis=1) == labels).mean() == 1.0
    assert np.allclose(proba.sum(axis=1), 1.0)
    subset = sparse.take(np.array([0, 59]))
    assert subset.rows == 2
    assert np.allclose(model.proba(dense[[0, 59]], subset), proba[[0, 59]])


def test_logistic_regression_fits_soft_targets() -> None:
    x = np.linspace(-2, 2, 50)[:, None]
    y = (x[:, 0] > 0).astype(float)
    model = LinearModel.zeros(1, 0, 1).fit(x, None, y, epochs=400, l2=0.0)
    p = model.proba(x, None)
    assert p[0] < 0.2 and p[-1] > 0.8 and p.shape == (50,)


def test_features_are_stable_normalised_and_accent_insensitive() -> None:
    a = hash_features(["Idées de réel !"], 2**12)
    b = hash_features(["idees de reel"], 2**12)
    assert np.allclose(np.linalg.norm(a.values), 1.0)
    assert sorted(a.indices.tolist()) == sorted(b.indices.tolist())  # crc32: same columns in any process
    assert normalise_text("Ça VA?") == "ca va?"
