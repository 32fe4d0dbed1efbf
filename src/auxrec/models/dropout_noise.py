"""Dropout noise for CPU training: replayed over length groups, drawn ahead on a second thread.

**Replay** (`DropoutReplay`). Training on length groups (`auxrec.models.transformer`, "Length
groups") encodes a batch as a few groups of rows; each dropout site draws the noise of the whole
(B, L) batch the first time any group reaches it, exactly as ``F.dropout`` would
(``empty(...).bernoulli_(1 - p)``, divided by ``1 - p``), and every group multiplies by its rows
and columns of it. The random stream is consumed in the order and amount of the unsplit forward.

**Drawing ahead** (`NoisePrefetcher`). torch's CPU Bernoulli sampler is a serial loop over its
Mersenne Twister, ~7 ns per element here whatever the thread count: 37% of a SASRec step on
ML-100K at 2 threads (benchmarks/README.md, "Where an epoch's time goes"). Any faster generator
would change the numbers. Instead, the noise of the *next* batch is drawn on a background thread
while this batch computes, from a private generator that starts from the state the global one will
have then, assuming the next batch has this batch's shape and dropout sites. It is speculation
checked at every site: a drawn-ahead noise is used only if its shape, rate and dtype are the
site's and the global generator is exactly in the state the noise was drawn from; then the global
generator is moved to the state after it, as if it had drawn the noise itself. Anything else (a
batch of another shape, another draw from the global generator in between, the first batch)
discards the rest and draws as usual. So the numbers are the ones without drawing ahead, always;
only the time moves. It runs only where the job has two or more intra-op threads (a second core
to use), and stops after a few misses in a row (short, variable-length batches would waste it).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class NoiseSite:
    """What one dropout site draws: a tensor of ``shape`` and ``dtype``, kept with probability ``keep``."""

    shape: tuple[int, ...]
    keep: float
    dtype: torch.dtype

    def draw(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """``F.dropout``'s noise: 0 or 1/keep (`torch.nn.functional.dropout`'s CPU composite)."""
        noise = torch.empty(self.shape, dtype=self.dtype).bernoulli_(self.keep, generator=generator)
        return noise.div_(self.keep)


@dataclass
class _DrawnAhead:
    sites: list[NoiseSite]
    noises: list[torch.Tensor]
    states: list[torch.Tensor]  # the generator's state before each site, and after the last


def _draw_ahead(sites: list[NoiseSite], state: torch.Tensor) -> _DrawnAhead:
    generator = torch.Generator()
    generator.set_state(state)
    noises, states = [], [state]
    for site in sites:
        noises.append(site.draw(generator))
        states.append(generator.get_state())
    return _DrawnAhead(sites, noises, states)


class NoisePrefetcher:
    """Draws the next batch's dropout noise on a background thread (see the module docstring)."""

    misses_before_stopping = 3
    _executor: ThreadPoolExecutor | None = None  # one worker per process, shared by every model

    def __init__(self) -> None:
        self.pending: Future[_DrawnAhead] | None = None  # the next batch's noise, being drawn
        self.current: _DrawnAhead | None = None
        self.full_batch: list[NoiseSite] | None = None  # the sites of the last batch of the most rows
        self.hits = self.misses = self.misses_in_a_row = 0

    def __reduce__(self) -> tuple[type, tuple]:  # a copied or pickled model starts afresh
        return NoisePrefetcher, ()

    @property
    def active(self) -> bool:
        return self.misses_in_a_row < self.misses_before_stopping and torch.get_num_threads() >= 2

    def launch(self, sites: Sequence[NoiseSite], state: torch.Tensor) -> None:
        """Start drawing ``sites`` from ``state`` on the background thread."""
        if not self.active or not sites:
            return
        if NoisePrefetcher._executor is None:
            NoisePrefetcher._executor = ThreadPoolExecutor(1, thread_name_prefix="auxrec-dropout-noise")
        self.pending = NoisePrefetcher._executor.submit(_draw_ahead, list(sites), state)

    def take(self, index: int, site: NoiseSite) -> torch.Tensor | None:
        """Site ``index`` of the batch: its drawn-ahead noise (the global generator moved past it), or None."""
        if index == 0:
            pending, self.pending = self.pending, None
            try:
                self.current = pending.result() if pending is not None else None
            except Exception:  # noqa: BLE001  (e.g. out of memory in the drawing thread: draw in place)
                self.current = None
        drawn = self.current
        if drawn is None:
            return None
        generator = torch.default_generator
        # Sites come in order and the first mismatch drops the rest, so sites 0..index-1 were all taken.
        if (index >= len(drawn.sites) or drawn.sites[index] != site
                or not torch.equal(generator.get_state(), drawn.states[index])):
            self.current = None
            self._count(hit=False)
            return None
        generator.set_state(drawn.states[index + 1])
        if index == 0:  # chain: the next batch's noise, from the state after this batch's sites
            self.launch(self.full_batch or drawn.sites, drawn.states[-1])
        return drawn.noises[index]

    def finish(self, sites: Sequence[NoiseSite]) -> None:
        """After a batch's forward: count it, and draw ahead for the next one unless already drawing."""
        drawn, self.current = self.current, None
        if drawn is not None:  # every site of this batch was taken; a hit if that was every site drawn
            self._count(hit=len(drawn.sites) == len(sites))
        # Guess the next batch from the last batch of the most rows seen: an epoch's last, smaller
        # batch is followed by a full one (one miss per epoch instead of two).
        if sites and (self.full_batch is None or sites[0].shape[0] >= self.full_batch[0].shape[0]):
            self.full_batch = list(sites)
        if self.pending is None and self.full_batch is not None:
            self.launch(self.full_batch, torch.default_generator.get_state())

    def _count(self, hit: bool) -> None:
        if hit:
            self.hits, self.misses_in_a_row = self.hits + 1, 0
        else:
            self.misses, self.misses_in_a_row = self.misses + 1, self.misses_in_a_row + 1
            if self.pending is not None and not self.active:
                self.pending = None


class DropoutReplay:
    """The dropout noise of a whole (rows × length) batch, replayed on groups of its rows.

    ``apply(x, p, positional)`` is ``F.dropout(x, p, training=True)`` for the group ``x``
    (rows ``group_rows``, the last ``group_length`` positions): the first group to reach a
    dropout site draws that site's noise for the whole batch exactly as ``F.dropout`` would
    (from ``prefetcher`` when it drew that noise ahead), later groups reuse it.
    ``positional`` are the dimensions of ``x`` that run over positions (trimmed per group).
    """

    def __init__(self, rows: int, length: int, prefetcher: NoisePrefetcher | None = None) -> None:
        self.rows, self.length = rows, length
        self.prefetcher = prefetcher
        self.sites: list[NoiseSite] = []
        self.noises: list[torch.Tensor] = []
        self.site = 0
        self.group_rows: torch.Tensor | None = None
        self.group_length = length

    def start_group(self, group_rows: torch.Tensor, group_length: int) -> None:
        self.group_rows, self.group_length, self.site = group_rows, group_length, 0

    def apply(self, x: torch.Tensor, p: float, positional: Sequence[int]) -> torch.Tensor:
        if self.site == len(self.noises):  # first visit of this site: the whole batch's draw
            shape = list(x.shape)
            shape[0] = self.rows
            for dim in positional:
                shape[dim] = self.length
            site = NoiseSite(tuple(shape), 1 - p, x.dtype)
            noise = self.prefetcher.take(self.site, site) if self.prefetcher is not None else None
            self.sites.append(site)
            self.noises.append(site.draw() if noise is None else noise)
        noise = self.noises[self.site]
        self.site += 1
        for dim in positional:  # trim first, then gather the group's rows: copies only what is used
            noise = noise.narrow(dim, self.length - self.group_length, self.group_length)
        if self.group_rows is not None:
            noise = noise[self.group_rows]
        return x * noise

    def finish(self) -> None:
        """After the batch's forward (every site drawn): let the prefetcher draw ahead."""
        if self.prefetcher is not None:
            self.prefetcher.finish(self.sites)


_active_replay: ContextVar[DropoutReplay | None] = ContextVar("auxrec_dropout_replay", default=None)


@contextmanager
def replaying_dropout(replay: DropoutReplay) -> Iterator[DropoutReplay]:
    """Within: every `dropout` in training draws from (and replays) ``replay``."""
    token = _active_replay.set(replay)
    try:
        yield replay
    finally:
        _active_replay.reset(token)


def dropout(x: torch.Tensor, p: float, training: bool, positional: Sequence[int]) -> torch.Tensor:
    """``F.dropout``, unless a `DropoutReplay` is active (training on length groups)."""
    replay = _active_replay.get()
    if replay is None or not training or p == 0:
        return F.dropout(x, p, training=training)
    return replay.apply(x, p, positional)


class SequenceDropout(nn.Dropout):
    """``nn.Dropout`` of (B, L, ...) activations that takes part in a `DropoutReplay`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training, positional=(1,))
