"""Put the frozen item-feature buffers back into weights packed by pack.py."""
import sys
from pathlib import Path

import torch

from auxrec.data.dataset import PreparedDataset
from auxrec.experiments.run_folder import RunFolder
from auxrec.experiments.runs import build_model
from auxrec.models import lookup

root = Path(sys.argv[1])
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
