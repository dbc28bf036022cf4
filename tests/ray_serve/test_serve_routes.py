"""The Serve application's OpenAI-compatible routes, on the real deployment."""

import asyncio

import httpx
import pytest

pytestmark = pytest.mark.stack


async def test_models_route_names_versions_and_limits(serve: str) -> None:
    async with httpx.AsyncClient(base_url=serve, timeout=60) as http:
        cards = {m["id"]: m for m in (await http.get("/v1/models")).json()["data"]}
    assert cards["embedder"]["name"] == "all-MiniLM-L6-v2"
    assert cards["embedder"]["dimensions"] == 384
    assert cards["embedder"]["max_input_tokens"] == 256
    assert cards["summarizer"]["version"] == "q4_1-gguf"


async def test_bad_embedding_requests_fail_alone_among_good_ones(serve: str) -> None:
    good = [{"input": [f"sentence number {i}", "another"]} for i in range(8)]
    bad = [
        {"input": ["x"] * 257},
        {"model": "no-such-model", "input": "hello"},
    ]
    async with httpx.AsyncClient(base_url=serve, timeout=120) as http:
        responses = await asyncio.gather(
            *(http.post("/v1/embeddings", json=body) for body in [*good, *bad])
        )

    for response in responses[: len(good)]:
        assert response.status_code == 200, response.text
        body = response.json()
        assert [item["index"] for item in body["data"]] == [0, 1]
        assert len(body["data"][0]["embedding"]) == 384
        assert body["model_version"]
        assert body["usage"]["prompt_tokens"] > 0
    for response in responses[len(good) :]:
        assert response.status_code == 400
        assert response.json()["error"]["message"]


async def test_chat_completion_and_a_refused_one(serve: str) -> None:
    messages = [{"role": "user", "content": "Say hello to the queue workers."}]
    async with httpx.AsyncClient(base_url=serve, timeout=300) as http:
        ok, refused = await asyncio.gather(
            http.post(
                "/v1/chat/completions", json={"messages": messages, "max_tokens": 16}
            ),
            http.post(
                "/v1/chat/completions", json={"messages": messages, "max_tokens": 0}
            ),
        )
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["choices"][0]["message"]["content"]
    assert 0 < body["usage"]["completion_tokens"] <= 16
    assert body["model"] == "SmolLM2-135M-Instruct"
    assert refused.status_code == 400


async def test_ray_token_authentication_stays_on(stack, serve: str) -> None:
    url = f"{stack.dashboard_url}/api/serve/applications/"
    async with httpx.AsyncClient(timeout=30) as http:
        anonymous = await http.get(url)
        wrong = await http.get(url, headers={"Authorization": "Bearer not-the-token"})
    assert anonymous.status_code in (401, 403)
    assert wrong.status_code in (401, 403)
    assert stack.serve_applications()  # with the cluster's token
