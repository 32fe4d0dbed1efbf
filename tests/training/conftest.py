"""Shared by the training tests: a run killed right after a checkpoint, as `kill` would leave it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from auxrec.training import trainer


@pytest.fixture
def killed_after_epoch() -> Callable[[int], contextlib.AbstractContextManager[None]]:
    """``with killed_after_epoch(2): train...``: training dies just after epoch 2's checkpoint is saved."""

    @contextlib.contextmanager
    def killing(epoch: int) -> Iterator[None]:
        original_save = trainer._save_checkpoint

        def save_then_die(path, state):  # type: ignore[no-untyped-def]
            original_save(path, state)
            if state["epoch"] == epoch:
                raise KeyboardInterrupt(f"killed after epoch {epoch}")

        trainer._save_checkpoint = save_then_die
        try:
            with pytest.raises(KeyboardInterrupt):
                yield
        finally:
            trainer._save_checkpoint = original_save

    return killing
