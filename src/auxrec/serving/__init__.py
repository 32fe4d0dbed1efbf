"""Using a trained run: recommendations in Python (`trained_model`), in batch, as a service, exported."""

from auxrec.serving.trained_model import Recommendations, RecommendError, TrainedModel, load_run

__all__ = ["RecommendError", "Recommendations", "TrainedModel", "load_run"]
