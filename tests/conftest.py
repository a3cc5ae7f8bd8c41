import os
import signal

import numpy as np
import pytest


@pytest.fixture
def rng(request):
    # A fresh seed per test (recorded in the test id's output on failure).
    seed = np.random.SeedSequence().entropy % (2**32)
    request.node.user_properties.append(("seed", seed))
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)


# FASTPID_TEST_TIMEOUT=N (seconds): every test fails once it has run that long, naming itself,
# instead of hanging the run (benchmarks/gpu_run.sh sets it for the cuda tests on the GPU
# machine, which has no pytest-timeout). Unix only (SIGALRM); unset, nothing changes.
_TIMEOUT = int(os.environ.get("FASTPID_TEST_TIMEOUT", "0") or 0)


@pytest.fixture(autouse=_TIMEOUT > 0)
def _time_limit(request):
    def expired(signum, frame):
        raise TimeoutError(f"{request.node.nodeid} ran past FASTPID_TEST_TIMEOUT={_TIMEOUT} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(_TIMEOUT)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)
