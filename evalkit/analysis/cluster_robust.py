"""Cluster-robust variance estimators for least squares: CR2, CR1S, Satterthwaite df, HTZ test.

CR2 is the bias-reduced linearisation estimator of Bell & McCaffrey (2002) with the
small-sample tests of Pustejovsky & Tipton (2018, JBES 36(4)), using an independent,
homoskedastic working model (as R's clubSandwich does for `lm` and estimatr for `lm_robust`).

Everything is computed cluster by cluster: for each cluster j we keep three p-dimensional
summaries (X_j' A_j X_j, X_j' A_j^2 X_j and X_j' A_j e_j), where A_j = (I - H_jj)^(-1/2) is the
CR2 adjustment. The n x n hat matrix is never formed, so the cost is O(n p^2 + G^2 p^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evalkit.analysis.results import f_sf

# Eigenvalues of I - H_jj at or below this are treated as zero (generalised inverse square
# root), the same absolute threshold clubSandwich and estimatr use.
EIGEN_TOLERANCE = 1e-12


@dataclass
class ClusterPieces:
    """Per-cluster summaries from which every CR2 quantity is computed."""

    bread: np.ndarray       # M = (X'X)^-1, p x p
    x_a_x: np.ndarray       # G x p x p: X_j' A_j X_j
    x_aa_x: np.ndarray      # G x p x p: X_j' A_j^2 X_j
    scores: np.ndarray      # G x p: X_j' A_j e_j (CR2) or X_j' e_j (CR0/CR1)

    @property
    def n_clusters(self) -> int:
        return int(self.scores.shape[0])


def cluster_rows(cluster: np.ndarray) -> list[np.ndarray]:
    """Row indices of each cluster, for integer codes 0..G-1."""
    order = np.argsort(cluster, kind="stable")
    boundaries = np.flatnonzero(np.diff(cluster[order])) + 1
    return np.split(order, boundaries)


def bread_matrix(X: np.ndarray) -> np.ndarray:
    """(X'X)^-1 via a Cholesky factorisation (X must have full column rank)."""
    cho = np.linalg.cholesky(X.T @ X)
    inverse_factor = np.linalg.solve(cho, np.eye(X.shape[1]))
    return inverse_factor.T @ inverse_factor


def _cr2_cluster_summaries(
    x_j: np.ndarray, e_j: np.ndarray, bread: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """X_j'A_jX_j, X_j'A_j^2X_j and X_j'A_je_j without forming the n_j x n_j matrix A_j.

    With X_j = U S W' (thin SVD), H_jj = U K U' where K = S W'MW S. If K = V diag(l) V', then
    I - H_jj has eigenvalues 1 - l on the columns of Q = U V and 1 elsewhere, so
    A_j^k = I + Q diag(f(1 - l)^k - 1) Q' with f(x) = x^(-1/2) (0 when x is ~0).
    """
    u, s, wt = np.linalg.svd(x_j, full_matrices=False)
    keep = s > s.max(initial=0.0) * 1e-10
    u, s, wt = u[:, keep], s[keep], wt[keep]
    ws = wt.T * s                                   # W S, p x r
    eigvals, eigvecs = np.linalg.eigh(ws.T @ bread @ ws)
    residual_eig = 1.0 - eigvals
    safe = np.where(residual_eig > EIGEN_TOLERANCE, residual_eig, 1.0)
    inv_sqrt = np.where(residual_eig > EIGEN_TOLERANCE, safe ** -0.5, 0.0)
    x_q = ws @ eigvecs                              # X_j' Q, p x r
    q_e = eigvecs.T @ (u.T @ e_j)                   # Q' e_j
    x_x = x_j.T @ x_j
    x_a_x = x_x + (x_q * (inv_sqrt - 1.0)) @ x_q.T
    x_aa_x = x_x + (x_q * (inv_sqrt**2 - 1.0)) @ x_q.T
    score = x_j.T @ e_j + x_q @ ((inv_sqrt - 1.0) * q_e)
    return x_a_x, x_aa_x, score


def cr2_pieces(
    X: np.ndarray, residuals: np.ndarray, cluster: np.ndarray, bread: np.ndarray | None = None
) -> ClusterPieces:
    """Per-cluster CR2 summaries (Bell & McCaffrey 2002) for regressors X and residuals.

    For 2SLS pass the first-stage fitted regressors as X and the structural residuals, as
    estimatr's iv_robust does.
    """
    bread = bread_matrix(X) if bread is None else bread
    summaries = [_cr2_cluster_summaries(X[rows], residuals[rows], bread)
                 for rows in cluster_rows(cluster)]
    x_a_x, x_aa_x, scores = (np.stack(parts) for parts in zip(*summaries, strict=True))
    return ClusterPieces(bread=bread, x_a_x=x_a_x, x_aa_x=x_aa_x, scores=scores)


def sandwich(pieces: ClusterPieces) -> np.ndarray:
    """M (sum_j s_j s_j') M from the per-cluster scores."""
    meat = pieces.scores.T @ pieces.scores
    return pieces.bread @ meat @ pieces.bread


def cr1s_vcov(X: np.ndarray, residuals: np.ndarray, cluster: np.ndarray) -> np.ndarray:
    """CR1S (Stata-style) sandwich: CR0 times G(N-1) / ((G-1)(N-p))."""
    bread = bread_matrix(X)
    rows = cluster_rows(cluster)
    scores = np.stack([X[r].T @ residuals[r] for r in rows])
    n, p = X.shape
    g = len(rows)
    scale = g * (n - 1) / ((g - 1) * (n - p))
    return scale * (bread @ (scores.T @ scores) @ bread)


def _p_array(pieces: ClusterPieces, constraints: np.ndarray) -> np.ndarray:
    """q x q x G x G array P whose traces and squares give the CR2 variance moments.

    P[s,t,k,l] = [k = l] c_s'M X_k'A_k^2X_k M c_t - c_s'M X_k'A_kX_k M X_l'A_lX_l M c_t, the
    covariance of the CR2 cluster contributions under the working model (Pustejovsky &
    Tipton 2018, section 3, with Phi = I).
    """
    cm = constraints @ pieces.bread                                   # q x p
    diag_part = np.einsum("sa,kab,tb->kst", cm, pieces.x_aa_x, cm)    # G x q x q
    h = np.einsum("sa,kab->ksb", cm, pieces.x_a_x)                    # G x q x p
    h_bread = h @ pieces.bread                                          # G x q x p
    cross = np.einsum("ksb,ltb->stkl", h_bread, h, optimize=True)     # q x q x G x G
    p_array = -cross
    g = pieces.n_clusters
    idx = np.arange(g)
    p_array[:, :, idx, idx] += np.transpose(diag_part, (1, 2, 0))
    return p_array


def satterthwaite_df(pieces: ClusterPieces, contrast: np.ndarray) -> float:
    """Bell-McCaffrey / Satterthwaite df for c'beta under CR2: tr(P)^2 / sum(P^2)."""
    p_matrix = _p_array(pieces, np.atleast_2d(contrast))[0, 0]
    return float(np.trace(p_matrix) ** 2 / np.sum(p_matrix**2))


def _symmetric_power(matrix: np.ndarray, power: float) -> np.ndarray:
    """Power of a symmetric positive semi-definite matrix via its eigen-decomposition."""
    eigvals, eigvecs = np.linalg.eigh(matrix)
    scaled = np.where(eigvals > EIGEN_TOLERANCE, np.abs(eigvals) ** power, 0.0)
    return (eigvecs * scaled) @ eigvecs.T


def wald_statistic(beta: np.ndarray, vcov: np.ndarray, constraints: np.ndarray) -> float:
    """Q = (C beta)' (C V C')^-1 (C beta) for the null C beta = 0."""
    c_beta = constraints @ beta
    return float(c_beta @ np.linalg.solve(constraints @ vcov @ constraints.T, c_beta))


def htz_test(
    pieces: ClusterPieces, beta: np.ndarray, vcov: np.ndarray, constraints: np.ndarray
) -> dict[str, float | str]:
    """Approximate Hotelling's T^2 (HTZ) test of C beta = 0 (Pustejovsky & Tipton 2018).

    The CR2 estimate of C V C' is approximated by a Wishart with nu degrees of freedom chosen
    to match its total variance; F = (nu - q + 1) / (nu q) * Q on (q, nu - q + 1) df.
    """
    q = constraints.shape[0]
    p_array = _p_array(pieces, constraints)
    omega = np.einsum("stkk->st", p_array)
    omega_nsqrt = _symmetric_power(omega, -0.5)
    b = np.einsum("as,stkl,tb->abkl", omega_nsqrt, p_array, omega_nsqrt)
    var_total = (np.einsum("stkl,tskl->st", b, b)
                 + np.einsum("sskl,ttkl->st", b, b))
    nu = q * (q + 1) / float(np.sum(var_total))
    q_stat = wald_statistic(beta, vcov, constraints)
    df_denom = nu - q + 1
    delta = max(df_denom / nu, 0.0)
    f_stat = delta * q_stat / q
    p_value = float(f_sf(f_stat, q, df_denom)) if df_denom > 0 else float("nan")
    return {"test": "HTZ", "statistic": float(f_stat), "df_num": float(q),
            "df_denom": float(df_denom), "p_value": p_value, "delta": float(delta)}


def naive_f_test(
    beta: np.ndarray, vcov: np.ndarray, constraints: np.ndarray, n_clusters: int
) -> dict[str, float | str]:
    """Naive Wald F = Q / q on (q, G - 1) df, without small-sample correction of V."""
    q = constraints.shape[0]
    f_stat = wald_statistic(beta, vcov, constraints) / q
    df_denom = n_clusters - 1
    return {"test": "naive-F", "statistic": float(f_stat), "df_num": float(q),
            "df_denom": float(df_denom), "p_value": float(f_sf(f_stat, q, df_denom))}
