"""Small linear models in numpy: multinomial logistic regression over dense + sparse features.

Dense features are a ``(n, d)`` array; sparse ones a :class:`Sparse` batch (CSR: ``indptr``,
``indices``, ``values``) over ``width`` hashed columns. Training is full-batch Adam on the
cross-entropy with L2, which is plenty for thousands of examples and keeps the package free
of scikit-learn on the request path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LinearModel", "Sparse", "softmax"]


@dataclass(frozen=True)
class Sparse:
    """A CSR batch: row ``i`` has ``values[indptr[i]:indptr[i+1]]`` at ``indices[...]``."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    width: int

    @property
    def rows(self) -> int:
        return len(self.indptr) - 1

    def row_ids(self) -> np.ndarray:
        return np.repeat(np.arange(self.rows), np.diff(self.indptr))

    def take(self, rows: np.ndarray) -> Sparse:
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        pieces = [np.arange(s, e) for s, e in zip(starts, ends, strict=True)]
        picks = np.concatenate(pieces).astype(np.int64) if pieces else np.zeros(0, dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return Sparse(indptr, self.indices[picks], self.values[picks], self.width)

    def matmul(self, weights: np.ndarray, row_ids: np.ndarray | None = None) -> np.ndarray:
        """``(rows, k)``: this batch times a ``(width, k)`` matrix."""
        out = np.zeros((self.rows, weights.shape[1]), dtype=np.float64)
        if self.rows == 1:  # the request path: one text, one small product
            if len(self.indices):
                out[0] = self.values @ weights[self.indices]
            return out
        if len(self.indices):
            rows = self.row_ids() if row_ids is None else row_ids
            products = weights[self.indices] * self.values[:, None]
            for k in range(weights.shape[1]):  # bincount: a C loop, far faster than np.add.at
                out[:, k] = np.bincount(rows, weights=products[:, k], minlength=self.rows)
        return out

    def transpose_matmul(self, error: np.ndarray, row_ids: np.ndarray | None = None) -> np.ndarray:
        """``(width, k)``: this batch, transposed, times a ``(rows, k)`` matrix (the gradient)."""
        out = np.zeros((self.width, error.shape[1]), dtype=np.float64)
        if len(self.indices):
            rows = self.row_ids() if row_ids is None else row_ids
            for k in range(error.shape[1]):
                out[:, k] = np.bincount(self.indices, weights=self.values * error[rows, k], minlength=self.width)
        return out


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return result


@dataclass
class LinearModel:
    """``softmax(dense @ W_dense + sparse @ W_sparse + b)`` over ``k`` classes (k=1: a logistic
    regression, ``sigmoid`` instead of softmax)."""

    w_dense: np.ndarray
    w_sparse: np.ndarray
    bias: np.ndarray

    @classmethod
    def zeros(cls, dense_dim: int, sparse_dim: int, classes: int) -> LinearModel:
        return cls(np.zeros((dense_dim, classes)), np.zeros((sparse_dim, classes)), np.zeros(classes))

    def logits(self, dense: np.ndarray | None, sparse: Sparse | None, row_ids: np.ndarray | None = None) -> np.ndarray:
        rows = dense.shape[0] if dense is not None else sparse.rows if sparse is not None else 0
        out = np.tile(self.bias, (rows, 1)).astype(np.float64)
        if dense is not None and self.w_dense.size:
            out += dense @ self.w_dense
        if sparse is not None and self.w_sparse.size:
            out += sparse.matmul(self.w_sparse, row_ids)
        return out

    def proba(self, dense: np.ndarray | None, sparse: Sparse | None) -> np.ndarray:
        logits = self.logits(dense, sparse)
        if logits.shape[1] == 1:
            result: np.ndarray = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return result
        return softmax(logits)

    def fit(
        self,
        dense: np.ndarray | None,
        sparse: Sparse | None,
        targets: np.ndarray,
        *,
        l2: float = 1e-3,
        epochs: int = 300,
        learning_rate: float = 0.05,
        sample_weight: np.ndarray | None = None,
    ) -> LinearModel:
        """Fit in place. ``targets``: class ids for softmax, or values in [0, 1] for k=1."""
        n = len(targets)
        classes = self.bias.shape[0]
        if classes == 1:
            onehot = np.asarray(targets, dtype=np.float64).reshape(n, 1)
        else:
            onehot = np.zeros((n, classes))
            onehot[np.arange(n), np.asarray(targets, dtype=np.int64)] = 1.0
        weight = np.ones(n) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        weight = weight / weight.sum()
        params = [self.w_dense, self.w_sparse, self.bias]
        moments = [np.zeros_like(p) for p in params]
        squares = [np.zeros_like(p) for p in params]
        row_ids = sparse.row_ids() if sparse is not None else None
        for step in range(1, epochs + 1):
            logits = self.logits(dense, sparse, row_ids)
            predicted = 1.0 / (1.0 + np.exp(-logits)) if classes == 1 else softmax(logits)
            error = (predicted - onehot) * weight[:, None]
            grads = [
                (dense.T @ error if dense is not None and self.w_dense.size else np.zeros_like(self.w_dense))
                + l2 * self.w_dense,
                np.zeros_like(self.w_sparse),
                error.sum(axis=0),
            ]
            if sparse is not None and self.w_sparse.size and row_ids is not None and len(sparse.indices):
                grads[1] = sparse.transpose_matmul(error, row_ids) + l2 * self.w_sparse
            for param, grad, moment, square in zip(params, grads, moments, squares, strict=True):
                moment *= 0.9
                moment += 0.1 * grad
                square *= 0.999
                square += 0.001 * grad * grad
                param -= learning_rate * (moment / (1 - 0.9**step)) / (np.sqrt(square / (1 - 0.999**step)) + 1e-8)
        return self
