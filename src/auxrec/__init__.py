"""auxrec: multi-modal sequential recommendation.

Item text, images and tabular attributes become embeddings that are fused into
transformer recommenders (SASRec+, BERT4Rec+). Importing the package is cheap: heavy
optional parts (encoders, plotting) are imported lazily where they are used, and so are
the functions below (they need torch)::

    import auxrec
    auxrec.prepare("ml-100k", source="data/ml-100k", out="prepared/ml-100k")
    auxrec.train("sasrec", data="prepared/ml-100k", out="runs/sasrec", epochs=50)
    model = auxrec.load_run("runs/sasrec")
    model.recommend(users="42", k=10)
"""

from importlib import import_module
from typing import Any

__version__ = "0.1.0"
# name → module that defines it (PEP 562 lazy attributes: `import auxrec` never imports torch)
_LAZY = {
    "generate": "auxrec.api", "prepare": "auxrec.api", "train": "auxrec.api",
    "load_run": "auxrec.serving.trained_model", "TrainedModel": "auxrec.serving.trained_model",
    "Recommendations": "auxrec.serving.trained_model", "RecommendError": "auxrec.serving.trained_model",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'auxrec' has no attribute {name!r}")
