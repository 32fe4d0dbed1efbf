"""tools/remote_gpu: packing runs without their frozen feature buffers, and putting them back.

The ML-1M and ML-100K reports were trained on a borrowed GPU and came back through
pack.py / restore.py; this checks that the round trip gives back the same weights.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import torch

from auxrec.experiments.reproduce import TABLE1, reproduce
from auxrec.experiments.specs import load_spec

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "remote_gpu"
SPEC = """
name = "tiny-remote"
protocols = ["full"]
[data]
loader = "synthetic"
synthetic_preset = "tiny"
synthetic_overrides = { n_users = 80, n_items = 160, images = true, image_size = 8 }
[seeds]
table1 = 1
table2 = 2
table3 = 1
[training]
epochs = 1
batch_size = 64
[models.sasrec.model]
max_length = 10
hidden_dim = 16
[models.bert4rec.model]
max_length = 10
hidden_dim = 16
[models.kebert4rec.model]
max_length = 10
hidden_dim = 16
[models.bpr.training]
epochs = 1
[models.transrec.training]
epochs = 1
"""


def _tool(name: str, *args: Path) -> None:
    subprocess.run([sys.executable, str(TOOLS / name), *map(str, args)], check=True, capture_output=True)


def test_packed_runs_restore_to_the_same_weights(tmp_path: Path) -> None:
    spec_path = tmp_path / "tiny.toml"
    spec_path.write_text(SPEC)
    work = tmp_path / "work"
    reproduce(load_spec(spec_path), ["table1"], work, tmp_path / "reports", log=lambda _: None, progress=False)
    packed = tmp_path / "runs.tar.gz"
    _tool("pack.py", work, packed)
    back = tmp_path / "back"
    with tarfile.open(packed) as tar:
        names = tar.getnames()
        tar.extractall(back, filter="data")
    assert not any(name.startswith("prepared") or name.endswith("checkpoint.pt") for name in names)
    with_features = [v for v in TABLE1 if v.aux]
    for variant in with_features:  # the "+" models travel without their feature buffers
        stripped = torch.load(back / "runs" / variant.key / "seed-0" / "model" / "weights-stripped.pt",
                              weights_only=True)
        assert stripped and not any(key.startswith("fusion.features_") for key in stripped)
    _tool("restore.py", back)
    for variant in TABLE1:
        original = work / "runs" / variant.key / "seed-0" / "model" / "weights.pt"
        if not original.is_file():  # PopRec keeps counts, not weights
            continue
        restored = torch.load(back / "runs" / variant.key / "seed-0" / "model" / "weights.pt", weights_only=True)
        expected = torch.load(original, weights_only=True)
        assert restored.keys() == expected.keys()
        assert all(torch.equal(restored[key], expected[key]) for key in expected), variant.label
