"""Test-suite settings applied before torch is imported."""

import os

# OpenMP threads that spin while waiting make loop-heavy tests crawl when the cores are shared
# (CI runners, parallel jobs); a passive wait policy costs nothing when they are not.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
