"""Archives in the shape ``run`` writes them, generated without fetching audio: the plan
(:mod:`.plan`: who wrote which calls in which objects) and the writing (:mod:`.generate`).
Shared by the bench (tests/bench/shape: the big runs and their measurements) and the CI
smoke test (tests/e2e/test_service_shape.py)."""
