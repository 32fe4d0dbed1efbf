"""Train a reproduction's runs on the GPU machine (no rendering: reports are rendered at home).

The item features were embedded on the CPU machine and are selected in
prepared/features/*.current.json; the raw images and encoders do not travel, so the
embedding step is skipped and the runs read the selected features.
"""
import sys
import time
from pathlib import Path

from auxrec.experiments import reproduce as R
from auxrec.experiments.specs import load_spec


def main() -> None:
    spec_path, workdir, jobs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    spec = load_spec(Path(spec_path))
    counts = R.SeedCounts.from_spec(spec, None)
    started = time.time()


    def log(message: str) -> None:
        print(f"[{time.time() - started:6.0f} s] {message}", flush=True)


    with R.Reproduction(spec, Path(workdir), Path("/tmp/reports"), log, False, jobs, False) as reproduction:
        reproduction.ensure_prepared()  # a no-op where prepared/ travelled
        records = reproduction.run(R.expand_targets(["all"]), counts, list(spec.protocols))
    log(f"all {len(records)} runs finished")


if __name__ == "__main__":  # spawn workers re-import this file
    main()
