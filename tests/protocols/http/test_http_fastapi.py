"""A real FastAPI app, end to end over a real connection."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def make_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.post("/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return {"created": item.model_dump(), "total": item.price * 2}

    @app.get("/stream")
    def stream() -> StreamingResponse:
        def numbers() -> Iterator[bytes]:
            for n in range(5):
                yield b"line %d\n" % n

        return StreamingResponse(numbers(), media_type="text/plain")

    return app


def test_fastapi_app(serve: Any) -> None:
    with serve(make_app()) as server, httpx.Client(base_url=server.url) as http:
        response = http.get("/items/42", params={"q": "café"})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"item_id": 42, "q": "café"}

        response = http.post("/items", json={"name": "pen", "price": 1.5, "tags": ["a", "b"]})
        assert response.status_code == 200
        assert response.json() == {"created": {"name": "pen", "price": 1.5, "tags": ["a", "b"]}, "total": 3.0}

        response = http.post("/items", json={"name": "pen"})
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["body", "price"]

        response = http.get("/nowhere")
        assert response.status_code == 404
        assert response.json() == {"detail": "Not Found"}

        with http.stream("GET", "/stream") as streamed:
            assert streamed.status_code == 200
            assert streamed.headers["transfer-encoding"] == "chunked"
            assert "".join(streamed.iter_text()) == "".join(f"line {n}\n" for n in range(5))

        assert http.get("/items/not-a-number").status_code == 422
