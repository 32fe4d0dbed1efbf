"""Feature cache: hit, miss, invalidation (fingerprint, parameters, corruption), atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from auxrec.features.cache import FeatureCache, cache_key


def _entry() -> tuple[dict, np.ndarray, np.ndarray]:
    payload = {"modality": "text", "encoder": {"encoder": "x", "pooling": "mean"}, "fingerprint": "f1"}
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    present = np.array([False, True, True, False])
    return payload, matrix, present


def test_hit_after_store_and_select(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    payload, matrix, present = _entry()
    assert cache.lookup("text", payload, 4) == (None, "not cached")
    cache.store("text", payload, matrix, present, "x (test)")
    found, why = cache.lookup("text", payload, 4)
    assert why == "hit" and found is not None and found.description == "x (test)"
    np.testing.assert_array_equal(found.matrix, matrix)
    np.testing.assert_array_equal(found.present, present)
    assert not list(cache.root.glob(".*"))  # no temporary files left behind
    cache.select("text", payload)
    assert cache.current("text", "f1", 4)[0] is not None
    assert cache.current("text", "other-data", 4)[0] is None


def test_changed_fingerprint_or_parameters_miss(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    payload, matrix, present = _entry()
    cache.store("text", payload, matrix, present, "x")
    for changed in ({**payload, "fingerprint": "f2"}, {**payload, "encoder": {"encoder": "x", "pooling": "cls"}}):
        assert cache_key(changed) != cache_key(payload)
        assert cache.lookup("text", changed, 4)[0] is None


def test_stale_sidecar_under_the_same_key_is_rejected(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    payload, matrix, present = _entry()
    cache.store("text", payload, matrix, present, "x")
    _, sidecar = cache.paths("text", cache_key(payload))
    sidecar.write_text(sidecar.read_text().replace('"f1"', '"f0"'))
    found, why = cache.lookup("text", payload, 4)
    assert found is None and "stale" in why


def test_corrupted_or_truncated_array_file_is_rejected(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    payload, matrix, present = _entry()
    arrays = cache.store("text", payload, matrix, present, "x")
    data = bytearray(arrays.read_bytes())
    data[-20] ^= 0xFF
    arrays.write_bytes(bytes(data))
    found, why = cache.lookup("text", payload, 4)
    assert found is None and "corrupt" in why
    arrays.write_bytes(b"")
    assert cache.lookup("text", payload, 4)[0] is None
    cache.store("text", payload, matrix, present, "x")  # rebuilt entry is valid again
    assert cache.lookup("text", payload, 4)[1] == "hit"


def test_wrong_row_count_and_unreadable_sidecar_miss(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    payload, matrix, present = _entry()
    cache.store("text", payload, matrix, present, "x")
    assert "shape" in cache.lookup("text", payload, 5)[1]
    cache.paths("text", cache_key(payload))[1].write_text("{not json")
    assert "unreadable" in cache.lookup("text", payload, 4)[1]
