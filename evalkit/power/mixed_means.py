"""A random-intercept model (REML, Satterthwaite df) fitted from cluster summaries, vectorised
over simulation replicates.

With regressors constant within each PDU, the staff-level REML likelihood factorises into the
within-PDU sum of squares W (sigma_w^2 chi^2 on N - J df) and the PDU means
ybar_j ~ N(x_j'beta, v_j), v_j = sigma_b^2 + sigma_w^2 / n_j, so the fit needs only
(ybar, n, W). With lambda = sigma_b^2 / sigma_w^2 and d_j = lambda + 1/n_j, sigma_w^2 profiles
out as (W + r'D^-1 r) / (N - p) and the profiled REML criterion
(N - p) log sigma_w^2 + sum log d_j + log|X'D^-1 X| is minimised over lambda >= 0 (a grid,
then golden-section search). Satterthwaite df = 2 Var(c'beta)^2 / (g'Ag), g the gradient of
Var(c'beta) in (sigma_b^2, sigma_w^2) and A the inverse of the negative REML Hessian (found
numerically), as lmerTest does (Kuznetsova, Brockhoff and Christensen 2017); with sigma_b^2
on the boundary only sigma_w^2 varies. Written inside the
power stage: analysis is a later stage and is not imported.
"""

from __future__ import annotations

import numpy as np

GRID = np.concatenate([[0.0], np.logspace(-5, 2, 36)])
GOLDEN_STEPS = 30
_GOLD = (np.sqrt(5) - 1) / 2


def _gls(x: np.ndarray, y: np.ndarray, v: np.ndarray
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """GLS on cluster means with variances v: beta, (X'V^-1X)^-1, residuals, log|X'V^-1X|."""
    xv = np.swapaxes(x / v[:, :, None], 1, 2)
    xtvx = xv @ x
    factor = np.linalg.cholesky(xtvx)
    inverse = np.linalg.inv(xtvx)
    beta = (inverse @ (xv @ y[:, :, None]))[:, :, 0]
    resid = y - (x @ beta[:, :, None])[:, :, 0]
    logdet = 2 * np.sum(np.log(np.diagonal(factor, axis1=1, axis2=2)), axis=1)
    return beta, inverse, resid, logdet


def _profiled(x: np.ndarray, y: np.ndarray, n: np.ndarray, within: np.ndarray,
              lam: np.ndarray) -> np.ndarray:
    """Profiled REML criterion (lower is better) at lambda, per replicate."""
    total, p = n.sum(), x.shape[2]
    d = lam[:, None] + 1 / n[None, :]
    _, _, resid, logdet = _gls(x, y, d)
    sigma2 = (within + np.sum(resid**2 / d, axis=1)) / (total - p)
    return (total - p) * np.log(sigma2) + np.sum(np.log(d), axis=1) + logdet


def _best_lambda(x: np.ndarray, y: np.ndarray, n: np.ndarray, within: np.ndarray) -> np.ndarray:
    """lambda-hat per replicate: the best grid point, refined between its neighbours."""
    replicates = x.shape[0]

    def criterion(lam: np.ndarray) -> np.ndarray:
        return _profiled(x, y, n, within, lam)

    scores = np.stack([criterion(np.full(replicates, g)) for g in GRID])
    best = np.argmin(scores, axis=0)
    low = GRID[np.clip(best - 1, 0, len(GRID) - 1)]
    high = GRID[np.clip(best + 1, 0, len(GRID) - 1)]
    inner_low, inner_high = high - _GOLD * (high - low), low + _GOLD * (high - low)
    f_low, f_high = criterion(inner_low), criterion(inner_high)
    for _ in range(GOLDEN_STEPS):
        left = f_low < f_high          # the minimum lies in [low, inner_high]
        low, high = np.where(left, low, inner_low), np.where(left, inner_high, high)
        kept = np.where(left, inner_low, inner_high)
        f_kept = np.where(left, f_low, f_high)
        point = np.where(left, high - _GOLD * (high - low), low + _GOLD * (high - low))
        f_point = criterion(point)
        inner_low, f_low = np.where(left, point, kept), np.where(left, f_point, f_kept)
        inner_high, f_high = np.where(left, kept, point), np.where(left, f_kept, f_point)
    found = (low + high) / 2
    at_zero = criterion(np.zeros(replicates))
    return np.where(at_zero <= criterion(found), 0.0, found)


def _reml_loglik(x: np.ndarray, y: np.ndarray, n: np.ndarray, within: np.ndarray,
                 between: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """REML log-likelihood (up to a constant) at (sigma_b^2, sigma_w^2), per replicate."""
    v = between[:, None] + residual[:, None] / n[None, :]
    _, _, resid, logdet = _gls(x, y, v)
    within_df = n.sum() - n.size
    return -0.5 * (within_df * np.log(residual) + within / residual + np.sum(np.log(v), axis=1)
                   + logdet + np.sum(resid**2 / v, axis=1))


def _negative_hessian(x: np.ndarray, y: np.ndarray, n: np.ndarray, within: np.ndarray,
                      theta: np.ndarray) -> np.ndarray:
    """(R x 2 x 2) negative Hessian of the REML log-likelihood, central differences."""
    steps = 1e-4 * np.maximum(theta, 1e-3 * theta[:, 1:2])
    hessian = np.zeros((theta.shape[0], 2, 2))
    for k in range(2):
        for m in range(k, 2):
            total = np.zeros(theta.shape[0])
            for sk, sm, sign in ((1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)):
                point = theta.copy()
                point[:, k] += sk * steps[:, k]
                point[:, m] += sm * steps[:, m]
                total += sign * _reml_loglik(x, y, n, within, point[:, 0], point[:, 1])
            hessian[:, k, m] = hessian[:, m, k] = -total / (4 * steps[:, k] * steps[:, m])
    return hessian


def fit_mixed_means(x: np.ndarray, y: np.ndarray, n: np.ndarray, within: np.ndarray,
                    coefficients: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimates, SEs and Satterthwaite df (coefficients x R) of a REML random intercept.

    x: (R x J x p) PDU-level regressors, y: (R x J) PDU means, n: (J,) staff per PDU,
    within: (R,) pooled within-PDU sum of squares.
    """
    lam = _best_lambda(x, y, n, within)
    d = lam[:, None] + 1 / n[None, :]
    _, _, resid, _ = _gls(x, y, d)
    residual = (within + np.sum(resid**2 / d, axis=1)) / (n.sum() - x.shape[2])
    theta = np.column_stack([lam * residual, residual])
    v = theta[:, :1] + theta[:, 1:] / n[None, :]
    beta, inverse, _, _ = _gls(x, y, v)
    information = _negative_hessian(x, y, n, within, theta)
    covariance = np.linalg.pinv(information)
    estimates, errors, dfs = [], [], []
    for c in coefficients:
        variance = inverse[:, c, c]
        a = np.einsum("rjp,rp->rj", x, inverse[:, :, c]) / v
        gradient = np.stack([np.sum(a**2, axis=1), np.sum(a**2 / n[None, :], axis=1)], axis=1)
        spread = np.einsum("rk,rkm,rm->r", gradient, covariance, gradient)
        # sigma_b^2 on the boundary (0): only sigma_w^2 varies, as lmerTest then does
        spread_boundary = gradient[:, 1] ** 2 / information[:, 1, 1]
        spread = np.where(lam == 0, spread_boundary, spread)
        estimates.append(beta[:, c])
        errors.append(np.sqrt(variance))
        dfs.append(2 * variance**2 / np.maximum(spread, 1e-300))
    return np.array(estimates), np.array(errors), np.array(dfs)
