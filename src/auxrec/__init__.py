"""auxrec: multi-modal sequential recommendation.

Item text, images and tabular attributes become embeddings that are fused into
transformer recommenders (SASRec+, BERT4Rec+). Importing the package is cheap: heavy
optional parts (encoders, plotting) are imported lazily where they are used.
"""

__version__ = "0.1.0"
