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
from auxrec.experiments.specs import find_spec, load_spec

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "remote_gpu"


def _tool(name: str, *args: Path) -> None:
    subprocess.run([sys.executable, str(TOOLS / name), *map(str, args)], check=True, capture_output=True)


def test_packed_runs_restore_to_the_same_weights(tmp_path: Path) -> None:
    work = tmp_path / "work"
    # The shipped synthetic spec at one epoch per model: the round trip needs weights, not good ones.
    shipped = find_spec("synthetic").read_text()
    one_epoch = shipped.replace("epochs = 6", "epochs = 1").replace("epochs = 10", "epochs = 1")
    assert one_epoch.count("epochs = 1\n") == 3
    (tmp_path / "synthetic.toml").write_text(one_epoch)
    spec = load_spec(tmp_path / "synthetic.toml")
    reproduce(spec, ["table1"], work, tmp_path / "reports", log=lambda _: None, progress=False)
    packed = tmp_path / "runs.tar.gz"
    _tool("pack.py", work, packed)
    back = tmp_path / "back"
    with tarfile.open(packed) as tar:
        names = tar.getnames()
        tar.extractall(back, filter="data")
    assert not any(name.startswith("prepared/") or name.endswith("checkpoint.pt") for name in names)
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

    # The archive names the prepared data it was trained on; other data is refused before any reuse.
    assert "prepared.sha256.json" in names
    negatives = min((work / "prepared" / "negatives").glob("*.npz"))
    content = bytearray(negatives.read_bytes())
    content[len(content) // 2] ^= 0xFF  # one byte of the drawn negatives changed
    negatives.write_bytes(bytes(content))
    refused = subprocess.run([sys.executable, str(TOOLS / "restore.py"), str(back)], check=False,
                             capture_output=True, text=True)
    assert refused.returncode != 0
    assert "is not the data these runs were trained on" in refused.stderr and negatives.name in refused.stderr
