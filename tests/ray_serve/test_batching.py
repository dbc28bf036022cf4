"""Batching logic: one bad request never sinks the others, and the Embedder's forward
passes stay within their text and token budgets."""

from ray_serve.batching import run_isolated
from ray_serve.embedder import forward_groups


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


def test_forward_groups_fit_the_token_budget_and_keep_every_text() -> None:
    lengths = [200, 10, 210, 12, 190, 11, 205, 9]
    groups = forward_groups(lengths, max_texts=64, max_tokens=450)
    assert sorted(p for group in groups for p in group) == list(range(len(lengths)))
    for group in groups:
        assert len(group) == 1 or len(group) * max(lengths[p] for p in group) <= 450
    assert groups[0] == [7, 1, 5, 3]  # the short texts together, shortest first
    assert forward_groups(lengths, max_texts=3, max_tokens=10**6)[0] == [7, 1, 5]
    assert forward_groups([500], max_texts=8, max_tokens=100) == [[0]]
