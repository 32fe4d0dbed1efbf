"""The file names of a run folder, for `auxrec.experiments.run_folder.RunFolder`.

Only `RunFolder` builds paths from them. They live in this import-free module rather than
in `RunFolder`'s because `auxrec.io` (below every package) must recognise a run folder
written before the output marker existed by its config file, and importing
`auxrec.experiments` from `auxrec.io` would make the packages import each other.
"""

CONFIG_NAME = "config.json"
VERSIONS_NAME = "versions.json"
MODEL_FOLDER = "model"
# What `NeuralRecommender.save` writes into the model folder (PopRec keeps counts instead).
WEIGHTS_NAME = "weights.pt"
TRAINING_LOG_NAME = "training_log.json"
METRICS_NAME = "metrics.json"
BREAKDOWN_NAME = "breakdown.json"
RANKS_FOLDER = "ranks"
# What the trainer writes after every epoch into the staging folder (`auxrec.training.trainer`).
CHECKPOINT_NAME = "checkpoint.pt"
# Ends the names of unfinished outputs: a run's staging folder, a file being written.
PARTIAL_SUFFIX = ".partial"
