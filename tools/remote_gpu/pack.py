"""Pack the finished runs of a work folder into one tar (prepared data, checkpoints and
unfinished runs left out; weights kept only for seed-0 Table 1 runs, without the frozen
item-feature buffers, which `restore.py` puts back from the prepared features).

The prepared data stays behind, but the SHA-256 of its data files (Parquet tables, item
features, negatives) travels as `prepared.sha256.json`: `restore.py` checks that the prepared
folder the runs are unpacked beside holds the same data, so runs trained on one machine are
only ever reused (or extended by more seeds) on the same data and features.
"""
import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import torch

from auxrec.experiments.reproduce import TABLE1
from auxrec.experiments.run_folder import RunFolder

root, out = Path(sys.argv[1]), Path(sys.argv[2])
# --without-weights: tables only (small enough to keep in the repository); the figures then need seed 0 retrained
keep = set() if "--without-weights" in sys.argv[3:] else {f"runs/{variant.key}/seed-0" for variant in TABLE1}
n_files = n_weights = 0
with tarfile.open(out, "w:gz") as tar:
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == "prepared" or not path.is_file() or RunFolder.is_unfinished(rel):
            continue
        if path == RunFolder(path.parent).checkpoint_path or path.name == ".lock":
            continue
        if path == RunFolder(path.parent.parent).weights_path:  # RUN/model/weights.pt
            if str(rel.parent.parent) not in keep:
                continue
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = {k: v for k, v in state.items() if not k.startswith("fusion.features_")}
            buffer = io.BytesIO()
            torch.save(state, buffer)
            info = tarfile.TarInfo(str(rel.with_name("weights-stripped.pt")))
            info.size = buffer.tell()
            buffer.seek(0)
            tar.addfile(info, buffer)
            n_weights += 1
            continue
        tar.add(path, arcname=str(rel))
        n_files += 1
    prepared = root / "prepared"
    hashes = {str(path.relative_to(prepared)): hashlib.sha256(path.read_bytes()).hexdigest()
              for suffix in ("*.parquet", "*.npz") for path in sorted(prepared.rglob(suffix))}
    listing = json.dumps(hashes, indent=1, sort_keys=True).encode()
    info = tarfile.TarInfo("prepared.sha256.json")
    info.size = len(listing)
    tar.addfile(info, io.BytesIO(listing))
print(f"packed {n_files} files and {n_weights} stripped weights into {out} ({out.stat().st_size / 2**20:.1f} MiB)")
