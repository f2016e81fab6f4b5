"""The Gaussian-process bandit of PB2 (Parker-Holder et al. 2020), on scikit-learn's
``GaussianProcessRegressor``: no hand-written GP, only a kernel put together from scikit-learn's own.

Inputs are rows ``[t, f, x_1 .. x_d]`` scaled to [0, 1]: the time a member's training step started, its
fitness then, and its hyperparameters (each on its own scale, :meth:`~pbt_evo.space.Variable.to_unit`);
targets are the fitness improvement per epoch that step achieved, standardised and clipped to [-2, 2]
(as Ray Tune does). The kernel is PB2's time-varying squared exponential (Ray Tune's ``TV_SquaredExp``):

    k((t, z), (t', z')) = c * (1 - eps) ** (|t - t'| / 2) * exp(-|z - z'|^2 / (2 l^2)) + noise

where ``(1 - eps) ** (d / 2)`` is ``exp(-d / l_t)`` with ``l_t = -2 / ln(1 - eps)``: scikit-learn's Matern
kernel with ``nu = 0.5`` on the time column (:class:`Columns` applies a kernel to some columns only),
``eps`` in Ray Tune's bounds [1e-5, 0.5]. Unlike Ray Tune (a fixed 1e-10 jitter) a WhiteKernel models the
noise of fitness.

A new point is the argmax of GP-UCB, ``mean + sqrt(beta) * std`` with Ray Tune's ``beta = 0.2 + max(0,
log(0.4 n))`` (n data rows; Ray Tune adds ``sqrt(beta) * variance``, the paper ``sqrt(beta) * std``), over
the free columns with the others fixed: the mean from the GP of the data, the std from the same kernel
given the points already chosen in this generation too (their std shrinks, so one batch spreads out:
Desautels et al. 2014, as PB2 and Ray Tune do).

>>> X = np.array([[0.0, 0.0, 0.1], [0.0, 0.5, 0.9], [1.0, 1.0, 0.5]]); y = np.array([0.2, -0.1, 0.4])
>>> model = fit(X, standardise(y))
>>> x = suggest(model, fixed=np.array([1.0, 1.0]), pending=np.zeros((0, 1)), rng=np.random.default_rng(0))
>>> x.shape, bool(0.0 <= x[0] <= 1.0)
((1,), True)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Hyperparameter, Kernel, Matern, WhiteKernel
from threadpoolctl import threadpool_limits

EPS_BOUNDS = (1e-5, 0.5)  # Ray Tune's bounds of the time kernel's forgetting rate eps
CANDIDATES = 512           # random points the acquisition is evaluated at before local refinement
REFINED = 2                # the best candidates refined by L-BFGS-B


def time_scale(eps: float) -> float:
    """The Matern-1/2 length scale ``l_t`` with ``exp(-d / l_t) == (1 - eps) ** (d / 2)``.

    >>> round(time_scale(0.1), 4), round(math.exp(-2.0 / time_scale(0.1)), 10) == round(0.9, 10)
    (18.9824, True)
    """
    return -2.0 / math.log1p(-eps)


class Columns(Kernel):
    """A scikit-learn kernel applied to some columns of the inputs only (scikit-learn's kernels see all).

    >>> k = Columns(RBF(1.0), (1,))
    >>> float(k(np.array([[0.0, 0.0]]), np.array([[5.0, 1.0]]))[0, 0]) == math.exp(-0.5)
    True
    """

    def __init__(self, kernel: Kernel, columns: tuple[int, ...]):
        self.kernel = kernel
        self.columns = columns  # kept as given: scikit-learn's clone checks that parameters are unchanged

    def get_params(self, deep: bool = True) -> dict:
        params = dict(kernel=self.kernel, columns=self.columns)
        if deep:
            params.update(("kernel__" + k, v) for k, v in self.kernel.get_params().items())
        return params

    @property
    def hyperparameters(self) -> list[Hyperparameter]:
        return [Hyperparameter("kernel__" + h.name, h.value_type, h.bounds, h.n_elements)
                for h in self.kernel.hyperparameters]

    @property
    def theta(self) -> np.ndarray:
        return self.kernel.theta

    @theta.setter
    def theta(self, theta: np.ndarray) -> None:
        self.kernel.theta = theta

    @property
    def bounds(self) -> np.ndarray:
        return self.kernel.bounds

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.kernel == other.kernel and self.columns == other.columns

    def __call__(self, X, Y=None, eval_gradient=False):
        X = np.atleast_2d(X)[:, list(self.columns)]
        Y = None if Y is None else np.atleast_2d(Y)[:, list(self.columns)]
        return self.kernel(X, Y, eval_gradient=eval_gradient)

    def diag(self, X):
        return self.kernel.diag(np.atleast_2d(X)[:, list(self.columns)])

    def is_stationary(self) -> bool:
        return self.kernel.is_stationary()

    @property
    def requires_vector_input(self) -> bool:
        return True


def time_varying_kernel(n_inputs: int) -> Kernel:
    """PB2's kernel over rows ``[t, z_1 .. z_{n-1}]`` (see the module docstring), at its initial values:
    ``c = 1``, ``eps = 0.1`` (Ray Tune's), ``l = 1``, noise 0.01.

    >>> k = time_varying_kernel(2)
    >>> a, b = np.array([[0.0, 0.2]]), np.array([[0.5, 0.6]])
    >>> bool(np.isclose(k(a, b)[0, 0], 0.9 ** 0.25 * math.exp(-0.16 / 2)))
    True
    """
    shortest, longest = time_scale(EPS_BOUNDS[1]), time_scale(EPS_BOUNDS[0])  # a larger eps forgets faster
    return (ConstantKernel(1.0, (1e-5, 1e5))
            * Columns(Matern(time_scale(0.1), (shortest, longest), nu=0.5), (0,))
            * Columns(RBF(1.0, (0.1, 10.0)), tuple(range(1, n_inputs)))
            + WhiteKernel(1e-2, (1e-6, 1.0)))


def standardise(y: np.ndarray) -> np.ndarray:
    """Targets to mean 0 and std 1, clipped to [-2, 2] (Ray Tune's ``standardize``).

    >>> standardise(np.array([1.0, 2.0, 3.0])).round(4).tolist()
    [-1.2247, 0.0, 1.2247]
    """
    return np.clip((y - y.mean()) / (y.std() + 1e-8), -2.0, 2.0)


def fit(X: np.ndarray, y: np.ndarray) -> GaussianProcessRegressor:
    """The GP of rows ``X`` (scaled to [0, 1]) and targets ``y`` (standardised), its kernel's parameters
    fitted by scikit-learn (L-BFGS-B from the initial values, no restarts: deterministic).

    >>> gp = fit(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([-1.0, 1.0]))
    >>> type(gp.kernel_).__name__
    'Sum'
    """
    gp = GaussianProcessRegressor(time_varying_kernel(X.shape[1]), alpha=1e-8, n_restarts_optimizer=0)
    with warnings.catch_warnings(), one_blas_thread():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a kernel parameter at its bound is no error
        return gp.fit(X, y)


def one_blas_thread() -> Any:
    """A context in which numpy's BLAS uses one thread: a GP of a few hundred rows is faster so, and many
    times faster on a machine whose cores are busy (measured: a fit of 200 rows 2.4 s -> 0.4 s at load 9
    on 2 cores)."""
    return threadpool_limits(1)


def with_pending(gp: GaussianProcessRegressor, pending: np.ndarray) -> GaussianProcessRegressor:
    """The GP's fitted kernel given its data and the ``pending`` rows too (targets 0: the std does not
    depend on them), for the std of a batch's next point.

    >>> gp = fit(np.array([[0.0, 0.0], [1.0, 1.0]]), np.array([-1.0, 1.0]))
    >>> p = np.array([[1.0, 0.5]])
    >>> bool(with_pending(gp, p).predict(p, return_std=True)[1][0] < gp.predict(p, return_std=True)[1][0])
    True
    """
    if len(pending) == 0:
        return gp
    X = np.vstack([gp.X_train_, pending])
    y = np.concatenate([gp.y_train_, np.zeros(len(pending))])
    return GaussianProcessRegressor(gp.kernel_, alpha=gp.alpha, optimizer=None).fit(X, y)


def kappa(n: int) -> float:
    """``sqrt(beta)`` of GP-UCB with ``n`` data rows (Ray Tune's ``beta = 0.2 + max(0, log(0.4 n))``).

    >>> round(kappa(10), 4), round(kappa(2), 4)
    (1.2595, 0.4472)
    """
    return math.sqrt(0.2 + max(0.0, math.log(0.4 * n)))


def ucb(mean_gp: GaussianProcessRegressor, std_gp: GaussianProcessRegressor, rows: np.ndarray,
        k: float) -> np.ndarray:
    """GP-UCB at ``rows``: ``mean + k * std``."""
    mean = mean_gp.predict(rows)
    _, std = std_gp.predict(rows, return_std=True)
    return mean + k * std


def suggest(gp: GaussianProcessRegressor, fixed: np.ndarray, pending: np.ndarray, rng: np.random.Generator,
            box: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The free columns (those after ``len(fixed)``) of the GP-UCB argmax of the fitted ``gp`` (:func:`fit`),
    with the first columns at ``fixed``; ``pending`` are free-column points chosen before in this batch.
    The argmax is searched over ``CANDIDATES`` random points of the ``box`` (lower and upper corners;
    default [0, 1]^d, a trust region for BG-PBT) drawn from ``rng``, the best ``REFINED`` of them refined
    by L-BFGS-B within the box.
    """
    with one_blas_thread():
        d = gp.X_train_.shape[1] - len(fixed)
        low, high = box if box is not None else (np.zeros(d), np.ones(d))
        std_gp = with_pending(gp, np.hstack([np.tile(fixed, (len(pending), 1)), pending]) if len(pending)
                              else np.zeros((0, gp.X_train_.shape[1])))
        k = kappa(len(gp.X_train_))

        def rows(free: np.ndarray) -> np.ndarray:
            free = np.atleast_2d(free)
            return np.hstack([np.tile(fixed, (len(free), 1)), free])

        candidates = low + rng.random((CANDIDATES, d)) * (high - low)
        values = ucb(gp, std_gp, rows(candidates), k)
        best_x, best_v = candidates[int(np.argmax(values))], float(values.max())
        for start in candidates[np.argsort(-values)[:REFINED]]:
            res = minimize(lambda z: -float(ucb(gp, std_gp, rows(z), k)[0]), start, method="L-BFGS-B",
                           bounds=list(zip(low, high)), options={"maxiter": 50})
            x = np.clip(res.x, low, high)
            v = float(ucb(gp, std_gp, rows(x), k)[0])
            if v > best_v:
                best_x, best_v = x, v
        return np.asarray(best_x, dtype=float)


def best_candidate(X: np.ndarray, y: np.ndarray, candidates: np.ndarray, pending: np.ndarray) -> int:
    """The index of the candidate row with the largest GP-UCB (the GP fitted on rows ``X`` and raw values
    ``y``, ``pending`` rows chosen before in this batch): a choice among discrete candidates (BG-PBT's
    architectures).

    >>> X = np.array([[0.0, 0.0], [0.0, 1.0]]); y = np.array([0.0, 1.0])
    >>> best_candidate(X, y, np.array([[0.0, 0.0], [0.0, 0.9]]), np.zeros((0, 2)))
    1
    """
    with one_blas_thread():
        gp = fit(X, standardise(y))
        std_gp = with_pending(gp, pending)
        return int(np.argmax(ucb(gp, std_gp, candidates, kappa(len(X)))))
