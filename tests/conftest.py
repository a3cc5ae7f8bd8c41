import numpy as np
import pytest


@pytest.fixture
def rng(request):
    # A fresh seed per test (recorded in the test id's output on failure).
    seed = np.random.SeedSequence().entropy % (2**32)
    request.node.user_properties.append(("seed", seed))
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)
