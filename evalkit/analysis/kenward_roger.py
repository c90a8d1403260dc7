"""Kenward-Roger adjusted Var(beta) and df for the random-intercept model, in closed form.

Method: Kenward & Roger (1997), Biometrics 53, 983-997, as pbkrtest implements it
(`vcovAdj`, `Lb_ddf`; used by lmerTest's `ddf = "Kenward-Roger"`), with variance parameters
(tau2, sigma2), G_1 = Z Z' and G_2 = I. Every matrix met is, within a cluster of size n,
of the form a I + b J, so traces and X' (a I + b J) X reduce to per-cluster sums:
(a1 I + b1 J)(a2 I + b2 J) = a1 a2 I + (a1 b2 + b1 a2 + n b1 b2) J.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Block = tuple[np.ndarray, np.ndarray]   # per-cluster (a, b) of a I + b J


@dataclass
class KenwardRogerParts:
    """Unadjusted and adjusted Var(beta), P_i = -X' S^-1 G_i S^-1 X and W = 2 IE^-1."""

    phi: np.ndarray
    phi_adjusted: np.ndarray
    P: list[np.ndarray]
    W: np.ndarray


def _times(left: Block, right: Block, sizes: np.ndarray) -> Block:
    return left[0] * right[0], left[0] * right[1] + left[1] * right[0] + sizes * left[1] * right[1]


def _trace(block: Block, sizes: np.ndarray) -> float:
    return float((sizes * (block[0] + block[1])).sum())


def kenward_roger_parts(X: np.ndarray, cluster: np.ndarray, tau2: float,
                        sigma2: float) -> KenwardRogerParts:
    """pbkrtest's `vcovAdj` for V = sigma2 I + tau2 Z Z' (block-diagonal in clusters)."""
    n_clusters = int(cluster.max()) + 1
    sizes = np.bincount(cluster, minlength=n_clusters).astype(float)
    X_sums = np.zeros((n_clusters, X.shape[1]))
    np.add.at(X_sums, cluster, X)
    order = np.argsort(cluster, kind="stable")
    starts = np.searchsorted(cluster[order], np.arange(n_clusters + 1))
    X_sorted = X[order]
    crossprods = np.stack([X_sorted[a:b].T @ X_sorted[a:b]                # X_g' X_g
                           for a, b in zip(starts[:-1], starts[1:], strict=True)])

    def quad(block: Block) -> np.ndarray:          # X' (a I + b J) X
        return np.einsum("g,gij->ij", block[0], crossprods) + (X_sums.T * block[1]) @ X_sums

    ones, zeros = np.ones(n_clusters), np.zeros(n_clusters)
    inverse = (ones / sigma2, -tau2 / (sigma2 * (sigma2 + sizes * tau2)))
    G = [(zeros, ones), (ones, zeros)]
    H = [_times(g, inverse, sizes) for g in G]                       # G_i S^-1
    phi = np.linalg.inv(quad(inverse))
    P = [-quad(_times(inverse, h, sizes)) for h in H]
    Q = [[quad(_times(_times(inverse, H[i], sizes), H[j], sizes)) for j in range(2)]
         for i in range(2)]
    info = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            info[i, j] = (_trace(_times(H[i], H[j], sizes), sizes)
                          - 2 * np.sum(phi * Q[i][j]) + np.trace(phi @ P[i] @ phi @ P[j]))
    W = 2 * np.linalg.inv(info)
    U = sum(W[i, j] * (Q[i][j] - P[i] @ phi @ P[j]) for i in range(2) for j in range(2))
    return KenwardRogerParts(phi, phi + 2 * phi @ U @ phi, P, W)


def kenward_roger_df(L: np.ndarray, parts: KenwardRogerParts) -> float:
    """Denominator df for H0: L beta = 0 (pbkrtest `Lb_ddf`), L with q rows."""
    L = np.atleast_2d(L)
    q = L.shape[0]
    phi = parts.phi
    theta = L.T @ np.linalg.solve(L @ phi @ L.T, L)
    u = [theta @ phi @ P @ phi for P in parts.P]
    A1 = sum(parts.W[i, j] * np.trace(u[i]) * np.trace(u[j]) for i in range(2) for j in range(2))
    A2 = sum(parts.W[i, j] * np.trace(u[i] @ u[j]) for i in range(2) for j in range(2))
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    denominator = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / denominator, (q - g) / denominator, (q + 2 - g) / denominator
    v0, v1, v2 = 1 + c1 * B, 1 - c2 * B, 1 - c3 * B
    v0 = 0.0 if abs(v0) < 1e-10 else v0
    ratio = (1 - A2 / q) / v1 if v1 != 0 else 0.0
    rho = ratio**2 * v0 / v2 / q
    return 4 + (q + 2) / (q * rho - 1)
