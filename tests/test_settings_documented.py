"""Every setting a user can give is documented where it is defined and shown by `auxrec models`."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from auxrec.cli import app
from auxrec.config import describe_settings
from auxrec.models import REGISTRY
from auxrec.training.config import TrainingConfig

runner = CliRunner()


@pytest.mark.parametrize("config_class", [TrainingConfig, *(c for _, c in REGISTRY.values())],
                         ids=lambda c: c.__name__)
def test_every_setting_has_a_type_a_default_and_a_meaning(config_class: type) -> None:
    for setting in describe_settings(config_class):
        assert setting.description, f"{config_class.__name__}.{setting.name} has no Field(description=...)"
        assert setting.type and "Annotated" not in setting.type


def test_auxrec_models_lists_models_and_settings() -> None:
    listing = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert listing.exit_code == 0 and all(name in listing.output for name in REGISTRY)
    detail = runner.invoke(app, ["models", "sasrec"], env={"COLUMNS": "200"})
    assert detail.exit_code == 0
    for setting in ("aux_on_output", "max_length", "learning_rate", "validation_protocol"):
        assert setting in detail.output
    unknown = runner.invoke(app, ["models", "sasrc"])
    assert unknown.exit_code == 2
