"""Step executors local mode lacks: RegisterModel (ModelStep(model.register(...))) and Tuning.

Both subclass the SDK's ``_StepExecutor`` and return the properties the cloud's Describe call
would: DescribeModelPackage and DescribeHyperParameterTuningJob shapes, so that
``step.properties.ModelPackageArn``, ``properties.BestTrainingJob.TrainingJobName`` and
``TuningStep.get_top_model_s3_uri(...)`` resolve exactly as on SageMaker.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import tarfile
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from botocore.exceptions import ClientError
from sagemaker.local.pipeline import _StepExecutor, _StepExecutorFactory
from sagemaker.utils import unique_name_from_base
from sagemaker.workflow.steps import StepTypeEnum

from local_mlops.targets.localmode import hyperparameters as hp
from local_mlops.targets.localmode.outcomes import JobFailedError

logger = logging.getLogger(__name__)


def flatten_metrics(report: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of an evaluation report; ``{"accuracy": {"value": x}}`` becomes accuracy."""
    found: dict[str, float] = {}
    if isinstance(report, dict):
        if "value" in report and isinstance(report["value"], int | float) and prefix:
            found[prefix] = float(report["value"])
            return found
        for key, value in report.items():
            # The SageMaker template nests under "metrics" or "<problem>_metrics": drop that level.
            name = key if not prefix or prefix.endswith("metrics") else f"{prefix}.{key}"
            found.update(flatten_metrics(value, name))
    elif isinstance(report, bool):
        return found
    elif isinstance(report, int | float) and prefix:
        found[prefix] = float(report)
    return found


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


class RegisterModelStepExecutor(_StepExecutor):
    """Writes a model package to the local registry (``create_model_package`` semantics)."""

    def execute(self) -> dict:
        executor = self.pipline_executor
        args = executor.evaluate_step_arguments(self.step)
        session = executor.sagemaker_session
        try:
            group = args.get("ModelPackageGroupName")
            if not group:
                raise ValueError(
                    "only versioned model packages (a ModelPackageGroupName) are supported"
                )
            spec = args.get("InferenceSpecification") or {}
            containers = spec.get("Containers") or [{}]
            model_metrics = args.get("ModelMetrics") or {}
            return session.registry.register(
                group,
                model_data_url=containers[0].get("ModelDataUrl"),
                image=containers[0].get("Image"),
                approval_status=args.get("ModelApprovalStatus") or "PendingManualApproval",
                description=args.get("ModelPackageDescription"),
                model_metrics=model_metrics,
                drift_check_baselines=args.get("DriftCheckBaselines"),
                metrics=self._read_metrics(model_metrics),
                pipeline_execution_arn=executor.execution.execution_arn,
                customer_metadata=args.get("CustomerMetadataProperties"),
                inference_specification=spec,
            )
        except Exception as e:  # noqa: BLE001 - becomes the step's failure, as in the SDK
            executor.execution.update_step_failure(self.step.name, f"{type(e).__name__}: {e}")
            raise AssertionError("unreachable") from e

    def _read_metrics(self, model_metrics: dict) -> dict[str, float]:
        """The numbers in the statistics report the package points to (e.g. accuracy)."""
        metrics: dict[str, float] = {}
        session = self.pipline_executor.sagemaker_session
        for section in model_metrics.values():
            if not isinstance(section, dict):
                continue
            statistics = section.get("Statistics") or {}
            uri = statistics.get("S3Uri")
            if not isinstance(uri, str) or not uri.startswith("s3://"):
                continue
            bucket, key = _split_s3(uri)
            try:
                report = json.loads(session.read_s3_file(bucket, key))
            except (ClientError, ValueError) as exc:
                logger.warning("could not read model metrics at %s: %s", uri, exc)
                continue
            metrics.update(flatten_metrics(report))
        return metrics


class TuningStepExecutor(_StepExecutor):
    """Runs the trials of a tuning job as local training jobs, a few at a time."""

    def execute(self) -> dict:
        executor = self.pipline_executor
        args = executor.evaluate_step_arguments(self.step)
        try:
            return self._tune(args)
        except Exception as e:  # noqa: BLE001 - becomes the step's failure, as in the SDK
            executor.execution.update_step_failure(self.step.name, f"{type(e).__name__}: {e}")
            raise AssertionError("unreachable") from e

    def _tune(self, args: dict) -> dict:
        session = self.pipline_executor.sagemaker_session
        client = self.pipline_executor.local_sagemaker_client
        if "TrainingJobDefinitions" in args:
            raise ValueError(
                "multi-algorithm tuning (TrainingJobDefinitions) is not supported locally"
            )
        config = args["HyperParameterTuningJobConfig"]
        definition = args["TrainingJobDefinition"]
        objective = config["HyperParameterTuningJobObjective"]
        maximize = objective["Type"] == "Maximize"
        metric_name = objective["MetricName"]
        limits = config.get("ResourceLimits", {})
        max_jobs = int(limits.get("MaxNumberOfTrainingJobs", 1))
        parallel = max(
            1,
            min(
                int(limits.get("MaxParallelTrainingJobs", 1)),
                session.max_parallel_trials,
                session.core_budget.total if session.core_budget else os.cpu_count() or 1,
            ),
        )
        ranges = hp.parse_ranges(config.get("ParameterRanges", {}))
        seed = config.get("RandomSeed")
        sampler = hp.make_sampler(config.get("Strategy", "Bayesian"), ranges, seed, maximize)
        tuning_job_name = args.get("HyperParameterTuningJobName") or unique_name_from_base(
            self.step.name, max_length=24
        )
        regex = next(
            (
                m["Regex"]
                for m in definition.get("AlgorithmSpecification", {}).get("MetricDefinitions", [])
                if m["Name"] == metric_name
            ),
            None,
        )
        started = dt.datetime.now(dt.UTC)
        summaries: list[dict] = []
        lock = threading.Lock()

        def run_trial(index: int, token: Any, params: dict[str, str]) -> dict:
            job_name = f"{tuning_job_name}-{index:03d}-{os.urandom(4).hex()}"
            request = self._trial_request(definition, params)
            summary: dict[str, Any] = {
                "TrainingJobName": job_name,
                "TrainingJobArn": session.arn("training-job", job_name),
                "TunedHyperParameters": params,
                "CreationTime": dt.datetime.now(dt.UTC),
                "TrainingStartTime": dt.datetime.now(dt.UTC),
            }
            try:
                client.create_training_job(job_name, **request)
                value = self._objective(client, job_name, request, metric_name, regex)
                summary["TrainingJobStatus"] = "Completed"
                if value is None:
                    summary["ObjectiveStatus"] = "Failed"
                    summary["FailureReason"] = f"objective metric {metric_name!r} not reported"
                else:
                    summary["ObjectiveStatus"] = "Succeeded"
                    summary["FinalHyperParameterTuningJobObjectiveMetric"] = {
                        "Type": objective["Type"],
                        "MetricName": metric_name,
                        "Value": value,
                    }
            except JobFailedError as exc:
                summary["TrainingJobStatus"] = "Failed"
                summary["ObjectiveStatus"] = "Failed"
                summary["FailureReason"] = str(exc)
                value = None
            summary["TrainingEndTime"] = dt.datetime.now(dt.UTC)
            sampler.tell(token, value)
            with lock:
                summaries.append(summary)
            return summary

        client.parallel_jobs = parallel  # each trial holds its share of the core budget
        pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="trial")
        try:
            running: set[Future] = set()
            submitted = 0
            exhausted = False
            while True:
                while not exhausted and submitted < max_jobs and len(running) < parallel:
                    asked = sampler.ask()
                    if asked is None:
                        exhausted = True
                        break
                    token, params = asked
                    running.add(pool.submit(run_trial, submitted + 1, token, params))
                    submitted += 1
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # surface programming errors, not trial failures
        except BaseException:
            # Stopping (Ctrl-C): do not wait for the running trials; removing the run's
            # containers ends them.
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        finally:
            client.parallel_jobs = 1
        pool.shutdown(wait=True)

        scored = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
        if not scored:
            reasons = "; ".join(s.get("FailureReason", "?")[:300] for s in summaries)
            raise RuntimeError(
                f"all {len(summaries)} training jobs of the tuning job failed: {reasons}"
            )
        scored.sort(
            key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
            reverse=maximize,
        )
        unscored = [s for s in summaries if s not in scored]
        completed = sum(1 for s in summaries if s["TrainingJobStatus"] == "Completed")
        return {
            "HyperParameterTuningJobName": tuning_job_name,
            "HyperParameterTuningJobArn": session.arn(
                "hyper-parameter-tuning-job", tuning_job_name
            ),
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition,
            "HyperParameterTuningJobStatus": "Completed",
            "CreationTime": started,
            "HyperParameterTuningEndTime": dt.datetime.now(dt.UTC),
            "TrainingJobStatusCounters": {
                "Completed": completed,
                "InProgress": 0,
                "RetryableError": 0,
                "NonRetryableError": len(summaries) - completed,
                "Stopped": 0,
            },
            "ObjectiveStatusCounters": {
                "Succeeded": len(scored),
                "Pending": 0,
                "Failed": len(summaries) - len(scored),
            },
            "BestTrainingJob": scored[0],
            "TrainingJobSummaries": scored + unscored,
        }

    @staticmethod
    def _trial_request(definition: dict, params: dict[str, str]) -> dict:
        """A CreateTrainingJob request from the tuning job's training definition."""
        request = {
            k: v
            for k, v in definition.items()
            if k
            not in (
                "StaticHyperParameters",
                "HyperParameterTuningResourceConfig",
                "DefinitionName",
                "TuningObjective",
                "HyperParameterRanges",
            )
        }
        resource = definition.get("ResourceConfig") or definition.get(
            "HyperParameterTuningResourceConfig", {}
        )
        request["ResourceConfig"] = {
            "InstanceType": resource.get("InstanceType", "local"),
            "InstanceCount": int(resource.get("InstanceCount", 1)),
            "VolumeSizeInGB": resource.get("VolumeSizeInGB", 30),
        }
        request["HyperParameters"] = {**definition.get("StaticHyperParameters", {}), **params}
        return request

    def _objective(
        self, client: Any, job_name: str, request: dict, metric_name: str, regex: str | None
    ) -> float | None:
        """Prefer the metrics file the image wrote; else the last regex match in the log."""
        output_path = request.get("OutputDataConfig", {}).get("S3OutputPath", "")
        if output_path.startswith("s3://"):
            value = self._metric_from_output(output_path, job_name, metric_name)
            if value is not None:
                return value
        outcome = client.outcomes.get(job_name)
        if regex and outcome is not None:
            return hp.parse_objective(outcome.log, regex)
        return None

    def _metric_from_output(
        self, output_path: str, job_name: str, metric_name: str
    ) -> float | None:
        session = self.pipline_executor.sagemaker_session
        bucket, prefix = _split_s3(output_path.rstrip("/"))
        key = f"{prefix}/{job_name}/output/output.tar.gz".lstrip("/")
        try:
            body = session.s3_client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError:
            return None
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
            for member in archive.getmembers():
                if member.name.lstrip("./") in ("data/metrics.json", "metrics.json"):
                    extracted = archive.extractfile(member)
                    if extracted is None:
                        continue
                    metrics = json.load(extracted)
                    value = metrics.get(metric_name)
                    return float(value) if isinstance(value, int | float) else None
        return None


class ExtendedStepExecutorFactory(_StepExecutorFactory):
    """The SDK's factory plus executors for RegisterModel and Tuning steps."""

    def get(self, step: Any) -> _StepExecutor:
        if step.step_type == StepTypeEnum.REGISTER_MODEL:
            return RegisterModelStepExecutor(self.pipeline_executor, step)
        if step.step_type == StepTypeEnum.TUNING:
            return TuningStepExecutor(self.pipeline_executor, step)
        return super().get(step)
