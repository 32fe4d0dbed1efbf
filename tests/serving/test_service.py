"""The HTTP API of `auxrec serve` (`auxrec.serving.service`), through FastAPI's test client.

Every client mistake must come back as a 4xx with ``{"error": message}``; the test client
re-raises any exception that reached the server's catch-all, so none of these tests can
pass on a 500.
"""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from auxrec.serving.service import RecommendBatcher, _Options, create_app  # noqa: E402
from auxrec.serving.trained_model import (  # noqa: E402
    MAX_HISTORY,
    MAX_K,
    RecommendError,
    TrainedModel,
    load_run,
)


@pytest.fixture(scope="module")
def model(trained_runs: dict[str, Path]) -> TrainedModel:
    return load_run(trained_runs["sasrec_plus"])


@pytest.fixture(scope="module")
def client(model: TrainedModel):  # type: ignore[no-untyped-def]
    with TestClient(create_app(model)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def poprec_client(trained_runs: dict[str, Path]):  # type: ignore[no-untyped-def]
    with TestClient(create_app(load_run(trained_runs["poprec"]))) as test_client:
        yield test_client


def assert_error(response, status: int, fragment: str = "") -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    assert fragment.lower() in body["error"].lower(), body["error"]
    return str(body["error"])


def expected(recommendations) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    return list(zip(recommendations.items, recommendations.scores))


def answered(response) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
    assert response.status_code == 200, response.text
    return [(item["id"], item["score"]) for item in response.json()["items"]]


# -- endpoints -------------------------------------------------------------------------------
def test_health(client: TestClient, model: TrainedModel) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert (body["model"], body["users"], body["items"]) == (model.name, model.n_users, model.n_items)
    assert body["model"] == "sasrec+text,image,tabular"


@pytest.mark.parametrize("k, exclude_seen", [(10, True), (3, False), (MAX_K, True)])
def test_recommend_for_a_user_is_the_models_answer(client: TestClient, model: TrainedModel, k: int,
                                                   exclude_seen: bool) -> None:
    for user in list(model.user_ids[:3]):
        response = client.post("/recommend", json={"user": user, "k": k, "exclude_seen": exclude_seen})
        assert answered(response) == expected(model.recommend(users=user, k=k, exclude_seen=exclude_seen))
        body = response.json()
        assert body["user"] == user and body["unknown_items"] == []
        first = body["items"][0]
        assert set(first) == {"id", "score", "title", "image_url", "added_after_training"}
        assert first["added_after_training"] is False
        assert first["title"] == model.item(first["id"])["title"]
        assert first["image_url"] == f"/items/{first['id']}/image"


def test_a_numeric_user_id_is_the_same_user(client: TestClient, model: TrainedModel) -> None:
    user = model.user_ids[0]
    assert user.isdigit()
    assert answered(client.post("/recommend", json={"user": int(user)})) == \
        answered(client.post("/recommend", json={"user": user}))


def test_recommend_for_a_history_reports_unknown_items(client: TestClient, model: TrainedModel) -> None:
    history = [model.item_ids[3], "no-such-item", 1]
    response = client.post("/recommend", json={"history": history, "k": 5})
    assert answered(response) == expected(model.recommend(histories=[history], k=5)[0])
    assert response.json()["user"] is None
    assert response.json()["unknown_items"] == ["no-such-item"]


def test_recommend_within_candidates(client: TestClient, model: TrainedModel) -> None:
    candidates = list(model.item_ids[10:20])
    user = model.user_ids[1]
    settings = {"k": 5, "exclude_seen": False, "candidates": candidates}
    response = client.post("/recommend", json={"user": user, **settings})
    assert {item for item, _ in answered(response)} <= set(candidates)
    assert answered(response) == expected(model.recommend(users=user, **settings))


def test_users_pages_and_prefix_search(client: TestClient, model: TrainedModel) -> None:
    page = client.get("/users", params={"offset": 5, "limit": 7}).json()
    assert page["total"] == model.n_users
    assert [u["id"] for u in page["users"]] == list(model.user_ids[5:12])
    assert page["users"][0]["n_items"] == len(model.history(model.user_ids[5]))
    found = client.get("/users", params={"q": "1", "limit": 500}).json()
    assert [u["id"] for u in found["users"]] == [u for u in model.user_ids if u.startswith("1")]
    assert client.get("/users", params={"q": "zzz"}).json() == {"total": 0, "offset": 0, "users": []}


def test_user_history(client: TestClient, model: TrainedModel) -> None:
    user = model.user_ids[2]
    body = client.get(f"/users/{user}/history", params={"limit": 4}).json()
    assert body["total"] == len(model.history(user))
    assert [i["id"] for i in body["items"]] == model.history(user)[-4:]
    assert all(i["title"] and i["image_url"] for i in body["items"])


def test_item_search(client: TestClient, model: TrainedModel) -> None:
    title = model.item(model.item_ids[0])["title"]
    word = title.split()[-1].lower()
    body = client.get("/items", params={"q": word.upper(), "limit": 500}).json()
    assert model.item_ids[0] in [i["id"] for i in body["items"]]
    assert all(word in (i["title"] + model.item(i["id"])["description"]).lower() for i in body["items"])
    assert body["total"] == len(body["items"])
    assert len(client.get("/items", params={"limit": 3}).json()["items"]) == 3
    assert client.get("/items", params={"q": "no such words anywhere"}).json() == {"total": 0, "items": []}


def test_item_details_and_image(client: TestClient, model: TrainedModel) -> None:
    item = model.item_ids[4]
    body = client.get(f"/items/{item}").json()
    row = model.item(item)
    assert body["id"] == item and body["title"] == row["title"]
    assert body["text"] == {"description": row["description"]}
    assert body["attributes"]["category"] == row["category"] and body["attributes"]["tags"] == row["tags"]
    assert "image" not in body["attributes"]  # the file's path is the server's business
    assert body["added_after_training"] is False
    image = client.get(body["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == Path(row["image"]).read_bytes()


def test_items_added_after_training_are_marked(run_with_added_item: dict[str, Any]) -> None:
    new, twin, user = run_with_added_item["item"], run_with_added_item["twin"], run_with_added_item["user"]
    with TestClient(create_app(load_run(run_with_added_item["run"]))) as added_client:
        body = added_client.post("/recommend", json={"user": user, "k": 10}).json()
        marked = {item["id"]: item["added_after_training"] for item in body["items"]}
        assert marked[new] is True and marked[twin] is False  # the copy ranks beside its twin
        assert [item for item, added in marked.items() if added] == [new]
        detail = added_client.get(f"/items/{new}").json()
        twin_detail = added_client.get(f"/items/{twin}").json()
        assert detail["added_after_training"] is True and twin_detail["added_after_training"] is False
        assert detail["title"] == twin_detail["title"] and "added_after_training" not in detail["attributes"]
        image, twin_image = added_client.get(detail["image_url"]), added_client.get(twin_detail["image_url"])
        assert image.status_code == 200 and image.content == twin_image.content
        found = added_client.get("/items", params={"q": new}).json()["items"]
        assert [(item["id"], item["added_after_training"]) for item in found] == [(new, True)]
        in_history = added_client.post("/recommend", json={"history": [new], "k": 3}).json()
        assert in_history["unknown_items"] == [] and len(in_history["items"]) == 3


def test_similar_items(client: TestClient, model: TrainedModel) -> None:
    item = model.item_ids[0]
    body = client.get(f"/similar/{item}", params={"k": 4}).json()
    assert body["item"]["id"] == item
    assert [(i["id"], i["score"]) for i in body["items"]] == expected(model.similar_items(item, k=4))


def test_the_page_and_the_docs(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    # self-contained: no script, style, font or image from anywhere else
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page.text)
    assert not re.search(r"""url\(\s*["']?\s*(https?:)?//|@import""", page.text)
    assert 'data-testid="rec-card"' in page.text or "testid: \"rec-card\"" in page.text
    assert client.get("/docs").status_code == 200
    assert "/recommend" in client.get("/openapi.json").json()["paths"]


# -- bad requests ------------------------------------------------------------------------------
BAD_BODIES = [
    ({"user": "no-such-user"}, 404, "unknown user"),
    ({"user": "1", "k": 0}, 422, "k"),
    ({"user": "1", "k": -3}, 422, "k"),
    ({"user": "1", "k": MAX_K + 1}, 422, "k"),
    ({"user": "1", "k": 2.5}, 422, "k"),
    ({"user": "1", "k": "10"}, 422, "k"),
    ({"user": "1", "k": True}, 422, "k"),
    ({"user": "1", "k": None}, 422, "k"),
    ({"history": ["1"] * (MAX_HISTORY + 1)}, 422, "history"),
    ({"history": []}, 422, "history"),
    ({"history": "1,2"}, 422, "history"),
    ({"history": [["1"]]}, 422, "history"),
    ({"history": ["no-such-item", "nor-this"]}, 404, "no item of the history is known"),
    ({"user": ["1", "2"]}, 422, "user"),
    ({"user": 1.5}, 422, "user"),
    ({"user": None}, 422, "give a user"),
    ({"user": "1", "history": ["1"]}, 422, "not both"),
    ({}, 422, "give a user"),
    ({"k": 5}, 422, "give a user"),
    ({"user": "1", "exclude_seen": "yes"}, 422, "exclude_seen"),
    ({"user": "1", "candidates": ["no-such-item"]}, 404, "unknown item"),
    ({"user": "1", "candidates": []}, 422, "candidates"),
    ({"user": "1", "colour": "red"}, 422, "colour"),
]


@pytest.mark.parametrize("body, status, fragment", BAD_BODIES, ids=[str(b)[:60] for b, _, _ in BAD_BODIES])
def test_bad_recommend_requests(client: TestClient, body: dict[str, object], status: int,
                                fragment: str) -> None:
    assert_error(client.post("/recommend", json=body), status, fragment)


@pytest.mark.parametrize("content, fragment", [
    (b"{bad json", "not valid JSON"),
    (b"", "JSON object"),
    (b"[1, 2]", "JSON object"),
    (b'"user"', "JSON object"),
    (b"\xff\xfe", "JSON"),
])
def test_malformed_bodies(client: TestClient, content: bytes, fragment: str) -> None:
    response = client.post("/recommend", content=content, headers={"content-type": "application/json"})
    assert_error(response, 422, fragment)


@pytest.mark.parametrize("method, url, status, fragment", [
    ("get", "/items/no-such-item", 404, "unknown item"),
    ("get", "/items/no-such-item/image", 404, "unknown item"),
    ("get", "/users/no-such-user/history", 404, "unknown user"),
    ("get", "/similar/no-such-item", 404, "unknown item"),
    ("get", "/similar/1?k=0", 422, "k"),
    ("get", "/similar/1?k=ten", 422, "k"),
    ("get", f"/similar/1?k={MAX_K + 1}", 422, "k"),
    ("get", "/users?limit=0", 422, "limit"),
    ("get", "/users?offset=-1", 422, "offset"),
    ("get", "/users?limit=many", 422, "limit"),
    ("get", "/users/1/history?limit=0", 422, "limit"),
    ("get", "/items?limit=100000", 422, "limit"),
    ("get", "/no/such/page", 404, "no such page"),
    ("get", "/recommend", 405, "not allowed"),
    ("post", "/health", 405, "not allowed"),
    ("get", "/items/..%2F..%2Fetc%2Fpasswd/image", 404, ""),
    ("get", "/items/%2Fetc%2Fpasswd/image", 404, ""),
])
def test_bad_urls(client: TestClient, method: str, url: str, status: int, fragment: str) -> None:
    assert_error(client.request(method, url), status, fragment)


def test_what_poprec_cannot_answer(poprec_client: TestClient) -> None:
    assert_error(poprec_client.get("/similar/1"), 400, "no item representations")
    assert poprec_client.get("/health").json()["similar_items"] is False
    assert answered(poprec_client.post("/recommend", json={"history": ["1", "2"], "k": 3}))


def test_a_model_without_new_histories_refuses_them(trained_runs: dict[str, Path], tmp_path: Path) -> None:
    from auxrec.experiments.runs import train_run

    train_run("bpr", trained_runs["prepared"], tmp_path / "bpr", seed=0, protocols=("full",),
              training_layers=[("test", {"epochs": 1, "validation_protocol": "full"})])
    with TestClient(create_app(load_run(tmp_path / "bpr"))) as bpr:
        assert_error(bpr.post("/recommend", json={"history": ["1", "2"]}), 400, "scores only the users")
        assert bpr.get("/health").json()["scores_new_histories"] is False
        assert answered(bpr.post("/recommend", json={"user": "1", "k": 3}))


def test_images_only_from_the_item_table_and_missing_values_are_null(trained_runs: dict[str, Path]) -> None:
    model = load_run(trained_runs["sasrec_plus"])
    items = model.dataset.items.copy()
    column = model.dataset.item_columns.image
    first, second, third = (items["original_id"].astype(str) == i for i in ("1", "2", "3"))
    items.loc[first, column] = "/etc/passwd"  # not an image file type: never served
    items.loc[second, column] = None
    items.loc[third, column] = str(trained_runs["prepared"] / "missing.png")
    items.loc[first, "description"] = None
    items["price"] = items["price"].where(~second)  # NaN
    model.dataset.items = items
    with TestClient(create_app(model)) as test_client:
        for item in ("1", "2", "3"):
            assert_error(test_client.get(f"/items/{item}/image"), 404, "has no image")
        assert client_item(test_client, "1")["image_url"] is None
        assert client_item(test_client, "2")["image_url"] is None
        assert client_item(test_client, "1")["text"] == {"description": None}
        assert client_item(test_client, "2")["attributes"]["price"] is None
        assert test_client.get("/items/4/image").status_code == 200


def client_item(test_client: TestClient, item: str) -> dict:  # type: ignore[type-arg]
    return test_client.get(f"/items/{item}").json()  # type: ignore[no-any-return]


def test_unexpected_errors_are_json_500(model: TrainedModel) -> None:
    app = create_app(model)

    def broken() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        assert_error(test_client.get("/broken"), 500, "internal error")


# -- concurrency and micro-batching -------------------------------------------------------------
def test_concurrent_requests_are_batched_and_match_serial_answers(model: TrainedModel) -> None:
    app = create_app(model, batch_window_s=0.05)
    users = list(model.user_ids[:24])
    histories = [list(model.item_ids[i:i + 3]) for i in range(8)]
    requests = ([{"user": u, "k": 5 + i % 2} for i, u in enumerate(users)]
                + [{"history": h, "k": 5} for h in histories])
    serial = [expected(model.recommend(users=r["user"], k=r["k"])) if "user" in r
              else expected(model.recommend(histories=[r["history"]], k=r["k"])[0]) for r in requests]
    with TestClient(app) as test_client, ThreadPoolExecutor(max_workers=16) as pool:
        responses = list(pool.map(lambda body: test_client.post("/recommend", json=body), requests))
    for response, want in zip(responses, serial):
        got = answered(response)
        assert [i for i, _ in got] == [i for i, _ in want]
        assert [s for _, s in got] == pytest.approx([s for _, s in want], abs=1e-5)
    batcher = app.state.batcher
    assert batcher.n_requests == len(requests)
    assert batcher.n_calls < len(requests)  # scored in groups, not one by one


def test_a_bad_request_does_not_fail_its_batch(model: TrainedModel) -> None:
    batcher = RecommendBatcher(model, window_s=0.05)
    options = _Options(k=3, exclude_seen=True, candidates=None)

    async def together() -> list[object]:
        asked = [batcher.recommend(user, None, options) for user in ["1", "nobody", "2"]]
        return await asyncio.gather(*asked, return_exceptions=True)

    try:
        first, bad, second = asyncio.run(together())
    finally:
        batcher.close()
    assert isinstance(bad, RecommendError) and "nobody" in str(bad)
    assert first == model.recommend(users="1", k=3) and second == model.recommend(users="2", k=3)


def test_a_client_that_went_away_does_not_stop_scoring(model: TrainedModel) -> None:
    batcher = RecommendBatcher(model, window_s=0.05)
    options = _Options(k=3, exclude_seen=True, candidates=None)

    async def one_cancelled() -> list[object]:
        gone = asyncio.ensure_future(batcher.recommend("1", None, options))
        kept = asyncio.ensure_future(batcher.recommend("2", None, options))
        await asyncio.sleep(0.01)
        gone.cancel()  # within the batching window: its answer is never delivered
        later = batcher.recommend("3", None, options)
        return [await asyncio.wait_for(kept, 10), await asyncio.wait_for(later, 10)]

    try:
        second, third = asyncio.run(one_cancelled())
    finally:
        batcher.close()
    for answer, user in ((second, "2"), (third, "3")):
        alone = model.recommend(users=user, k=3)
        # Scored in a group, not alone: the last matmul may take another kernel (rounding differs).
        assert answer.items == alone.items and answer.scores == pytest.approx(alone.scores, abs=1e-5)


# -- the command ---------------------------------------------------------------------------------
def test_auxrec_serve_loads_the_run_once_and_runs_uvicorn(trained_runs: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn
    from typer.testing import CliRunner

    from auxrec.cli import app as cli

    served: list[dict] = []  # type: ignore[type-arg]
    monkeypatch.setattr(uvicorn, "run",
                        lambda application, **options: served.append({"app": application, **options}))
    result = CliRunner().invoke(cli, ["serve", str(trained_runs["poprec"]), "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/" in result.output and "poprec" in result.output
    assert len(served) == 1 and (served[0]["host"], served[0]["port"]) == ("127.0.0.1", 8123)
    with TestClient(served[0]["app"]) as test_client:
        assert test_client.get("/health").json()["model"] == "poprec"


def test_auxrec_serve_on_a_folder_that_is_no_run(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from auxrec.cli import USER_ERROR_EXIT_CODE
    from auxrec.cli import app as cli

    result = CliRunner().invoke(cli, ["serve", str(tmp_path)])
    assert result.exit_code == USER_ERROR_EXIT_CODE, result.output
    assert "Traceback" not in result.output and str(tmp_path) in result.output
