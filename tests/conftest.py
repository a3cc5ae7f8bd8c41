import os
import signal
import subprocess
import sys
import time

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


def assert_ctrl_c_stops_the_call(script, *args):
    """Runs ``script`` in a child Python that prints "ready" before a long call, prints
    "interrupted <time.monotonic()>" when the call raises KeyboardInterrupt, then "next call
    correct" or "WRONG" after another call; sends it SIGINT 1.5 s into the call and asserts that
    the call stopped within a second and that the next call was correct."""
    child = subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(1.5)  # well into the call (the scripts' calls take 10 to 15 s on two cores)
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        out, _ = child.communicate(timeout=120)
    finally:
        child.kill()
    lines = out.split("\n")
    assert lines[0].startswith("interrupted"), out
    assert float(lines[0].split()[1]) - sent <= 1.0
    assert lines[1] == "next call correct"
