"""auxrec: multi-modal sequential recommendation.

Item text, images and tabular attributes become embeddings that are fused into
transformer recommenders (SASRec+, BERT4Rec+). Importing the package is cheap: heavy
optional parts (encoders, plotting) are imported lazily where they are used, and so is
the recommendation API below (it needs torch)::

    import auxrec
    model = auxrec.load_run("runs/sasrec-plus")
    model.recommend(users="42", k=10)
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Recommendations", "TrainedModel", "__version__", "load_run"]
_LAZY = {"load_run", "TrainedModel", "Recommendations", "RecommendError"}


def __getattr__(name: str) -> Any:
    # PEP 562: `auxrec.load_run` imports torch only when first used, never on `import auxrec`.
    if name in _LAZY:
        from auxrec import serving

        return getattr(serving, name)
    raise AttributeError(f"module 'auxrec' has no attribute {name!r}")
