"""Failure isolation of a model batch: one bad request never sinks the others."""

from ray_serve.batching import run_isolated


def double_unless_poison(requests: list[int]) -> list[int]:
    if -1 in requests:
        raise ValueError("poison")
    return [request * 2 for request in requests]


async def test_a_healthy_batch_runs_in_one_call() -> None:
    calls: list[list[int]] = []

    def run(requests: list[int]) -> list[int]:
        calls.append(requests)
        return double_unless_poison(requests)

    assert await run_isolated(run, [1, 2, 3], lambda err: 0) == [2, 4, 6]
    assert calls == [[1, 2, 3]]


async def test_a_failing_request_fails_alone() -> None:
    outcomes = await run_isolated(
        double_unless_poison, [1, -1, 3], lambda err: f"error: {err}"
    )
    assert outcomes == [2, "error: poison", 6]
