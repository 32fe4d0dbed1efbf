"""`default_run_folder`: the run folder `auxrec train` picks when no --out is given."""

from auxrec.experiments.run_folder import RunFolder, default_run_folder


def _fill(path):
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")


def test_named_after_data_model_modalities_and_seed_and_never_an_existing_run(tmp_path):
    data = tmp_path / "prepared" / "ml-100k"
    root = tmp_path / "runs"

    def pick(**kwargs):
        return default_run_folder(data, "sasrec", ("text", "image"), 3, root=root, **kwargs)

    first = pick()
    assert first == root / "ml-100k" / "sasrec+text-image-seed3"
    assert default_run_folder(data, "bpr", (), 0, root=root) == root / "ml-100k" / "bpr-seed0"
    first.mkdir(parents=True)  # an empty folder is not a run: still free
    assert pick() == first
    (first / "config.json").write_text("{}")
    second = pick()
    assert second == root / "ml-100k" / "sasrec+text-image-seed3-2"
    _fill(RunFolder(second).staging.path)  # an interrupted run holds its name too
    assert pick() == root / "ml-100k" / "sasrec+text-image-seed3-3"
    assert pick(resume=True) == second  # the latest one started, to continue it
    assert pick(overwrite=True) == first


def test_resume_without_any_run_names_the_first(tmp_path):
    data = tmp_path / "hm"
    assert default_run_folder(data, "bert4rec", (), 1, resume=True, root=tmp_path) == tmp_path / "hm" / "bert4rec-seed1"
