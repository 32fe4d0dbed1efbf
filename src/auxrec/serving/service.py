"""`auxrec serve RUN`: a trained run behind a small HTTP API, with a web page at ``/``.

``create_app(model)`` builds the FastAPI application; ``serve_run(RUN)`` loads the run
once and runs it under uvicorn. Endpoints (all JSON; docs at ``/docs``)::

    GET  /health                    {"status": "ok", "model": ..., "users": n, "items": n}
    POST /recommend                 {"user": "42", "k": 10} or {"history": ["1", "50"], "k": 10}
    GET  /users?q=&offset=&limit=   a page of user ids (prefix search)
    GET  /users/{id}/history        the user's most recent items (title, image_url)
    GET  /items?q=&limit=           items whose title or text contains q
    GET  /items/{id}                title, text, attributes, image_url
    GET  /items/{id}/image          the image file
    GET  /similar/{id}?k=           the closest items by learnt representation

Every mistake a client can make is answered with a 4xx and ``{"error": "one readable
message"}``: 422 when the request does not have the documented shape, 404 for an unknown
user or item, 400 for a well-formed request the run cannot answer.

Scoring runs in one worker thread, never on the event loop. Requests that arrive
together are micro-batched (`RecommendBatcher`): the worker waits a few milliseconds for
more, then scores each group of requests with the same options in one
`TrainedModel.recommend` call, so concurrent clients share the model's batched scoring.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import torch
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from auxrec.serving.trained_model import (
    MAX_HISTORY,
    MAX_K,
    Recommendations,
    RecommendError,
    TrainedModel,
    as_id,
    load_run,
)

logger = logging.getLogger(__name__)

MAX_PAGE = 500  # users or items per page of /users, /items and /users/{id}/history
MAX_CANDIDATES = 100_000
# Files /items/{id}/image will send, by suffix; anything else in the image column is not served.
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".bmp": "image/bmp"}

ItemId = StrictStr | StrictInt


class UnknownId(RecommendError):
    """A user or item id the run does not know (answered with 404)."""


# -- request and response bodies ---------------------------------------------------------
class RecommendRequest(BaseModel):
    """A known ``user`` or a new user's ``history`` (item ids, oldest first), never both."""

    model_config = ConfigDict(extra="forbid")

    user: ItemId | None = Field(None, description="a known user id", examples=["42"])
    history: list[ItemId] | None = Field(None, min_length=1, max_length=MAX_HISTORY, examples=[["1", "50"]],
                                         description="a new user's items, oldest first")
    k: StrictInt = Field(10, ge=1, le=MAX_K, description="how many items to return")
    exclude_seen: StrictBool = Field(True, description="never recommend an item of the history")
    candidates: list[ItemId] | None = Field(None, min_length=1, max_length=MAX_CANDIDATES,
                                            description="rank only these items")

    @model_validator(mode="after")
    def one_of_user_or_history(self) -> RecommendRequest:
        if (self.user is None) == (self.history is None):
            raise ValueError("give a user or a history, not both" if self.user is not None
                             else "give a user (a known user id) or a history (a list of item ids)")
        return self


class ItemSummary(BaseModel):
    id: str
    title: str
    image_url: str | None = None
    score: float | None = None
    added_after_training: bool = Field(False, description="added by `auxrec add-items` (known by its content "
                                       "alone)")


class RecommendResponse(BaseModel):
    user: str | None
    items: list[ItemSummary]
    unknown_items: list[str]


class ItemPage(BaseModel):
    total: int
    items: list[ItemSummary]


class UserSummary(BaseModel):
    id: str
    n_items: int


class UserPage(BaseModel):
    total: int
    offset: int
    users: list[UserSummary]


class HistoryResponse(BaseModel):
    user: str
    total: int
    items: list[ItemSummary]  # the most recent ones, oldest first


class SimilarResponse(BaseModel):
    item: ItemSummary
    items: list[ItemSummary]


class ItemDetail(BaseModel):
    id: str
    title: str
    text: dict[str, Any]
    attributes: dict[str, Any]
    image_url: str | None = None
    added_after_training: bool = False


class Health(BaseModel):
    status: str
    model: str
    users: int
    items: int
    scores_new_histories: bool
    similar_items: bool


# -- the item table as the API shows it ----------------------------------------------------
class Catalogue:
    """Titles, search text and image files of a run's items, read once from the item table.

    Items added after training (`auxrec add-items`) follow the dataset's, with the same columns.
    """

    def __init__(self, model: TrainedModel) -> None:
        self.model = model
        columns = model.dataset.item_columns
        items = model.dataset.items.sort_values("item")
        added = model.added.items if model.added is not None else items.iloc[:0]
        self.added = set(added["original_id"].astype(str))
        items = pd.concat([items, added], ignore_index=True) if len(added) else items
        ids = items["original_id"].astype(str)
        self.text_columns = [c for c in columns.text if c in items.columns]
        title_column = "title" if "title" in items.columns else (self.text_columns or [None])[0]
        titles = (items[title_column].astype("string").fillna("") if title_column
                  else pd.Series("", index=items.index))
        self.title_column = title_column
        self.titles = dict(zip(ids, (t if t else f"item {i}" for t, i in zip(titles, ids))))
        search = ids.str.lower()
        for column in self.text_columns:
            search = search + "\n" + items[column].astype("string").fillna("").str.lower()
        self.search_text = pd.Series(search.to_numpy(), index=ids.to_numpy())
        self.image_column = columns.image if columns.image in items.columns else None
        self.images: dict[str, Path] = {}
        if self.image_column:
            for item, value in zip(ids, items[self.image_column]):
                if isinstance(value, str) and value and Path(value).suffix.lower() in IMAGE_TYPES:
                    path = Path(value)
                    self.images[item] = path if path.is_absolute() else model.dataset.path / path

    def summary(self, item: str, score: float | None = None) -> ItemSummary:
        return ItemSummary(id=item, title=self.titles.get(item, item), score=score,
                           image_url=self.image_url(item), added_after_training=item in self.added)

    def image_url(self, item: str) -> str | None:
        return f"/items/{quote(item, safe='')}/image" if item in self.images else None

    def image_file(self, item: str) -> Path:
        """The image file of ``item``: only the one its row in the item table names, never a client's path."""
        self.check_item(item)
        path = self.images.get(item)
        if path is None or not path.is_file():
            raise UnknownId(f"item {item!r} has no image")
        return path

    def check_item(self, item: str) -> None:
        if item not in self.titles:
            raise UnknownId(f"unknown item {item!r}: this run's dataset has no such item id")

    def search(self, q: str, limit: int) -> tuple[int, list[str]]:
        q = q.strip().lower()
        matches = self.search_text.index if not q else self.search_text.index[
            self.search_text.str.contains(q, regex=False).to_numpy()]
        if q:  # titles that start with the text first, then the rest, each in item order
            starts = pd.Series([self.titles[i].lower().startswith(q) for i in matches], dtype=bool)
            matches = matches[starts.to_numpy()].append(matches[~starts.to_numpy()])
        return len(matches), list(matches[:limit])

    def detail(self, item: str) -> ItemDetail:
        self.check_item(item)
        row = {key: _json_value(value) for key, value in self.model.item(item).items()}
        hidden = {"id", self.image_column, "has_metadata", "added_after_training"}
        text = {c: row.get(c) for c in self.text_columns if c != self.title_column}
        hidden |= {self.title_column, *text}
        attributes = {k: v for k, v in row.items() if k not in hidden}
        return ItemDetail(id=item, title=self.titles[item], text=text, attributes=attributes,
                          image_url=self.image_url(item), added_after_training=item in self.added)


# -- micro-batching ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Options:
    k: int
    exclude_seen: bool
    candidates: tuple[str, ...] | None


@dataclass
class _Pending:
    user: str | None
    history: list[str] | None
    options: _Options
    future: concurrent.futures.Future[Recommendations] = field(default_factory=concurrent.futures.Future)


class RecommendBatcher:
    """Scores requests in one worker thread, in groups of those that arrived within ``window_s``.

    A group holds up to ``max_batch`` requests of the same kind (user or history) and
    options; it is scored with one `TrainedModel.recommend` call. Should that call fail
    (one request of the group is bad), each request of the group is scored on its own,
    so a bad request never fails its neighbours.
    """

    def __init__(self, model: TrainedModel, window_s: float = 0.003, max_batch: int = 64) -> None:
        self.model = model
        self.window_s = window_s
        self.max_batch = max_batch
        self.n_requests = 0
        self.n_calls = 0  # recommend calls made for groups (the batching: n_calls < n_requests)
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    async def recommend(self, user: str | None, history: list[str] | None,
                        options: _Options) -> Recommendations:
        pending = _Pending(user, history, options)
        self._start()
        self._queue.put(pending)
        return await asyncio.wrap_future(pending.future)

    def close(self) -> None:
        with self._lock:
            if self._thread is not None:
                self._queue.put(None)
                self._thread.join()
                self._thread = None

    def _start(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._work, name="auxrec-scoring", daemon=True)
                self._thread.start()

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            waiting = [first]
            deadline = time.monotonic() + self.window_s
            stop = False
            while len(waiting) < self.max_batch:
                try:
                    more = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                waiting.append(more)
            groups: dict[tuple[bool, _Options], list[_Pending]] = {}
            for pending in waiting:
                groups.setdefault((pending.history is not None, pending.options), []).append(pending)
            for (is_history, options), group in groups.items():
                self._score(group, is_history, options)
            if stop:
                return

    def _score(self, group: list[_Pending], is_history: bool, options: _Options) -> None:
        self.n_requests += len(group)
        try:
            self.n_calls += 1
            k, seen, only = options.k, options.exclude_seen, options.candidates
            if is_history:
                histories = [p.history or [] for p in group]
                results = self.model.recommend(histories=histories, k=k, exclude_seen=seen, candidates=only)
            else:
                users = [p.user for p in group]
                results = self.model.recommend(users=users, k=k, exclude_seen=seen, candidates=only)
            assert isinstance(results, list) and len(results) == len(group)
        except Exception as error:  # noqa: BLE001 - answered per request below, never lost
            if len(group) == 1:
                _settle(group[0].future, error=error)
                return
            for pending in group:
                self._score([pending], is_history, options)
            return
        for pending, result in zip(group, results):
            _settle(pending.future, result)


def _settle(future: concurrent.futures.Future[Recommendations], result: Recommendations | None = None,
            error: BaseException | None = None) -> None:
    """Answer a request unless its client went away (a cancelled future must not stop the worker)."""
    if not future.set_running_or_notify_cancel():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


# -- the application ---------------------------------------------------------------------------
def create_app(model: TrainedModel, batch_window_s: float = 0.003, max_batch: int = 64) -> FastAPI:
    """The API and web page for ``model``; scoring is micro-batched (see `RecommendBatcher`)."""
    catalogue = Catalogue(model)
    user_index = model.user_ids
    user_set = set(user_index)
    batcher = RecommendBatcher(model, window_s=batch_window_s, max_batch=max_batch)
    model_class = type(model.model)
    with torch.no_grad():
        has_similar = model.model.item_vectors() is not None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        batcher.close()

    app = FastAPI(title=f"auxrec — {model.name}", lifespan=lifespan,
                  description="Recommendations from a trained auxrec run. Errors are `{\"error\": message}`.")
    app.state.model = model
    app.state.batcher = batcher
    app.state.catalogue = catalogue

    @app.exception_handler(RecommendError)
    async def recommend_error(request: Request, error: RecommendError) -> JSONResponse:
        return JSONResponse({"error": str(error)}, status_code=404 if isinstance(error, UnknownId) else 400)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": _validation_message(error.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        message = error.detail if error.status_code != 404 else f"no such page: {request.url.path}"
        return JSONResponse({"error": str(message)}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
        logger.exception("unexpected error answering %s %s", request.method, request.url.path)
        return JSONResponse({"error": f"internal error ({type(error).__name__}); see the server log"},
                            status_code=500)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        html = resources.files("auxrec.serving").joinpath("static/index.html").read_text(encoding="utf-8")
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    @app.get("/health")
    def health() -> Health:
        return Health(status="ok", model=model.name, users=model.n_users, items=model.n_items,
                      scores_new_histories=bool(model_class.scores_new_histories), similar_items=has_similar)

    @app.post("/recommend", responses={400: {}, 404: {}, 422: {}})
    async def recommend(body: RecommendRequest) -> RecommendResponse:
        """Top-k for a known ``user`` or a new ``history`` (oldest first)."""
        user = as_id(body.user) if body.user is not None else None
        history = [as_id(i) for i in body.history] if body.history is not None else None
        candidates = tuple(dict.fromkeys(as_id(c) for c in body.candidates)) if body.candidates else None
        if user is not None and user not in user_set:
            raise UnknownId(f"unknown user {user!r}: this run's dataset has no such user id "
                            "(for a new user, send their recent items as a history)")
        if history is not None:
            if not model_class.scores_new_histories:
                raise RecommendError(f"{model.config['model']} learns a vector per user and scores only the "
                                     "users it was trained on; a history needs a run of sasrec, bert4rec or "
                                     "poprec")
            if not any(i in catalogue.titles for i in history):
                raise UnknownId(f"no item of the history is known to this run (e.g. {history[0]!r})")
        for item in candidates or ():
            catalogue.check_item(item)
        result = await batcher.recommend(user, history, _Options(body.k, body.exclude_seen, candidates))
        return RecommendResponse(user=result.user if user is not None else None,
                                 items=[catalogue.summary(i, s) for i, s in zip(result.items, result.scores)],
                                 unknown_items=result.unknown_items)

    @app.get("/users")
    def users(q: str = Query("", max_length=200, description="user ids starting with this"),
              offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=MAX_PAGE)) -> UserPage:
        """A page of user ids, in the dataset's order, with how many items each has."""
        ids = user_index if not q else user_index[user_index.str.lower().str.startswith(q.strip().lower())]
        page = list(ids[offset:offset + limit])
        return UserPage(total=len(ids), offset=offset,
                        users=[UserSummary(id=u, n_items=len(model.history(u))) for u in page])

    @app.get("/users/{user}/history", responses={404: {}})
    def history(user: str, limit: int = Query(50, ge=1, le=MAX_PAGE)) -> HistoryResponse:
        """The user's ``limit`` most recent items, oldest first."""
        if user not in user_set:
            raise UnknownId(f"unknown user {user!r}: this run's dataset has no such user id")
        items = model.history(user)
        recent = [catalogue.summary(i) for i in items[-limit:]]
        return HistoryResponse(user=user, total=len(items), items=recent)

    @app.get("/items")
    def items(q: str = Query("", max_length=200, description="text the title or description contains"),
              limit: int = Query(30, ge=1, le=MAX_PAGE)) -> ItemPage:
        """Items whose id, title or text contains ``q`` (case-insensitive); titles starting with it first."""
        total, found = catalogue.search(q, limit)
        return ItemPage(total=total, items=[catalogue.summary(i) for i in found])

    @app.get("/items/{item}", responses={404: {}})
    def item(item: str) -> ItemDetail:
        return catalogue.detail(item)

    @app.get("/items/{item}/image", response_class=FileResponse, responses={404: {}})
    def image(item: str) -> FileResponse:
        path = catalogue.image_file(item)
        return FileResponse(path, media_type=IMAGE_TYPES[path.suffix.lower()],
                            headers={"Cache-Control": "max-age=3600"})

    @app.get("/similar/{item}", responses={400: {}, 404: {}})
    def similar(item: str, k: int = Query(10, ge=1, le=MAX_K)) -> SimilarResponse:
        """The ``k`` items closest to ``item`` in the model's learnt item representations."""
        catalogue.check_item(item)
        result = model.similar_items(item, k=k)
        return SimilarResponse(item=catalogue.summary(item),
                               items=[catalogue.summary(i, s) for i, s in zip(result.items, result.scores)])

    return app


def _json_value(value: Any) -> Any:
    """A value of the item table as JSON can carry it: missing values (NaN, NA, NaT) become null."""
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    try:
        missing = bool(pd.isna(value))
    except (TypeError, ValueError):
        missing = False
    if missing:
        return None
    if isinstance(value, float | int | bool | str) or value is None:
        return value
    return str(value)  # timestamps, decimals and other scalars, as text


def _validation_message(errors: Sequence[Any]) -> str:
    """One line from pydantic's errors: ``k: Input should be less than or equal to 1000``."""
    messages = []
    for error in errors:
        kind, location = error.get("type", ""), list(error.get("loc", ()))
        if kind == "json_invalid":
            messages.append(f"the body is not valid JSON ({error.get('ctx', {}).get('error', 'malformed')})")
            continue
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if location and location[-1] in {"str", "int"}:  # a branch of `ItemId`, a text or integer id
            location, message = location[:-1], "an id must be text or a whole number"
        if location and location[0] in {"body", "query", "path"}:
            location = location if len(location) == 1 else location[1:]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
        if where == "body" and kind in {"missing", "model_attributes_type", "dict_type"}:
            message = "the body must be a JSON object, e.g. {\"user\": \"42\", \"k\": 10}"
        messages.append(f"{where}: {message}" if where and where != "body" else message)
    return "; ".join(dict.fromkeys(messages)) or "invalid request"


def serve_run(run_dir: Path | str, host: str = "127.0.0.1", port: int = 8000,
              log: Callable[[str], None] = print) -> None:
    """Load ``run_dir`` once and serve it with uvicorn until interrupted."""
    import uvicorn

    model = load_run(run_dir)
    app = create_app(model)
    shown = f"[{host}]" if ":" in host else host
    log(f"serving {model.name} ({model.n_users:,} users, {model.n_items:,} items) from {run_dir}")
    log(f"open http://{shown}:{port}/ (API docs at http://{shown}:{port}/docs); Ctrl+C stops")
    uvicorn.run(app, host=host, port=port, log_level="warning")
