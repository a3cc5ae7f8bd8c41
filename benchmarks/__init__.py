"""fastpid benchmarks: one script per question, sharing harness.py. See README.md."""
