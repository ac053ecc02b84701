"""A run to kill: one processing step that sleeps in its container (a test helper script).

    python orphan_run.py IMAGE SECONDS

Settings (S3 endpoint, bucket, state dir) come from the environment, as for the CLI; the run
goes through the local ``open_target`` and ``stop_on_signals`` exactly as ``local-mlops run`` does.
"""

from __future__ import annotations

import sys

from sagemaker.processing import Processor
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.steps import ProcessingStep

from local_mlops.config import load_settings
from local_mlops.devenv import processes
from local_mlops.targets.local import open_target

ROLE = "arn:aws:iam::000000000000:role/LocalMlopsTest"


def main(image: str, seconds: str) -> None:
    settings = load_settings({})
    target = open_target(settings, settings.s3_endpoint, True, None)
    sleeper = Processor(
        image_uri=image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        entrypoint=[
            "python3",
            "-c",
            f"print('sleeping', flush=True); import time; time.sleep({seconds})",
        ],
        sagemaker_session=target.session,
    )
    pipeline = Pipeline(
        name=f"orphan-{settings.bucket}",
        steps=[ProcessingStep(name="Sleep", step_args=sleeper.run())],
        sagemaker_session=target.session,
    )
    pipeline.upsert(role_arn=ROLE)
    with processes.stop_on_signals():
        pipeline.start()


if __name__ == "__main__":
    main(*sys.argv[1:3])
