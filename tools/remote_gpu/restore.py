"""Put the frozen item-feature buffers back into weights packed by pack.py, after checking
that the prepared data beside the runs is the data they were trained on."""
import hashlib
import json
import sys
from pathlib import Path

import torch

from auxrec.data.dataset import PreparedDataset
from auxrec.experiments.run_folder import RunFolder
from auxrec.experiments.runs import build_model
from auxrec.models import lookup

root = Path(sys.argv[1])
listing = root / "prepared.sha256.json"
if listing.is_file():  # archives from before it existed carry no hashes
    packed = json.loads(listing.read_text())
    data_paths = {Path(RunFolder(config.parent).read_config()["data"]["path"])
                  for config in root.rglob("config.json") if RunFolder(config.parent).is_finished()}
    for data in sorted(data_paths):
        differ = [name for name, digest in packed.items()
                  if (data / name).is_file() and hashlib.sha256((data / name).read_bytes()).hexdigest() != digest]
        if differ:
            sys.exit(f"{data} is not the data these runs were trained on: {', '.join(differ)} differ; "
                     "prepare and embed it as the packing machine did before reusing them")
        print(f"{data}: {sum((data / name).is_file() for name in packed)} of {len(packed)} data files present, "
              "all identical")
for stripped in sorted(root.rglob("weights-stripped.pt")):
    run = RunFolder(stripped.parent.parent)  # RUN/model/weights-stripped.pt
    config = run.read_config()
    dataset = PreparedDataset.load(config["data"]["path"])
    assert dataset.fingerprint == config["data"]["fingerprint"]
    _, config_class = lookup(config["model"])
    model, _ = build_model(config["model"], config_class(**config["model_config"]), dataset,
                           tuple(config["item_features"]))
    state = torch.load(stripped, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("fusion.features_") for k in missing), (missing, unexpected)
    torch.save(model.state_dict(), run.weights_path)
    stripped.unlink()
    print(f"restored {run.path} (+{len(missing)} feature buffers)")
