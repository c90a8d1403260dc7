"""One BLAS thread per process: set before numpy loads, by the CLI and the demo."""

from __future__ import annotations

import os
import sys

# Thread-count variables of the BLAS libraries numpy and scipy may load (OpenBLAS, MKL, and
# OpenMP builds of either).
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS")


def single_threaded_blas() -> None:
    """One BLAS thread for this process, unless the user set a count or numpy is loaded.

    Called for every command when the CLI loads. The fits' matrices are small (tens of
    columns): OpenBLAS's worker threads cost more
    than they save (on two shared cores the demo took 1.45x the CPU time with them), and
    with one thread the results' last digits no longer depend on the machine's core count.
    Read by the libraries when they load, so it must run before numpy is imported.
    """
    if "numpy" in sys.modules:
        return
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
