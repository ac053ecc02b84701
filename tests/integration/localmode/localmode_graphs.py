"""Small pipeline graphs on the tiny image, written exactly as for the cloud."""

from __future__ import annotations

from typing import Any

from sagemaker.estimator import Estimator
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.processing import ProcessingOutput, Processor
from sagemaker.tuner import ContinuousParameter, HyperparameterTuner, IntegerParameter
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterFloat, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.retry import SageMakerJobExceptionTypeEnum, SageMakerJobStepRetryPolicy
from sagemaker.workflow.steps import CacheConfig, ProcessingStep, TrainingStep, TuningStep

ROLE = "arn:aws:iam::000000000000:role/LocalMlopsTest"

METRIC_DEFINITIONS = [{"Name": "val_accuracy", "Regex": r"val_accuracy=([0-9.]+)"}]
RETRY_KILLED = SageMakerJobStepRetryPolicy(
    exception_types=[SageMakerJobExceptionTypeEnum.INTERNAL_ERROR],
    max_attempts=2,
    interval_seconds=1,
    backoff_rate=1.0,
)


def estimator(
    session: Any,
    image: str,
    bucket: str,
    entry_point: list[str] | None = None,
    **hyperparameters: Any,
) -> Estimator:
    return Estimator(
        container_entry_point=entry_point,
        image_uri=image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        output_path=f"s3://{bucket}/models",
        sagemaker_session=session,
        hyperparameters=hyperparameters or None,
        metric_definitions=METRIC_DEFINITIONS,
    )


def probe_step(session: Any, image: str, name: str, env: dict[str, Any]) -> ProcessingStep:
    """A processing step whose Environment shows what an upstream property resolved to."""
    processor = Processor(
        image_uri=image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        entrypoint=["python3", "/opt/program/evaluate.py"],
        sagemaker_session=session,
        env=env,
    )
    return ProcessingStep(name=name, step_args=processor.run(arguments=["--accuracy", "1"]))


def train_evaluate_register(
    session: Any,
    image: str,
    bucket: str,
    *,
    cache: bool = False,
    retry: bool = False,
    hyperparameters: dict[str, Any] | None = None,
    train_seconds: float = 0,
) -> Pipeline:
    """Train -> Evaluate -> CheckAccuracy -> (Register, CreateModel, UseArn) | AccuracyTooLow.

    ``train_seconds``: Train sleeps that long first (a job that takes a while, e.g. to kill
    something in the middle of it).
    """
    entry = ["sh", "-c", f"sleep {train_seconds}; exec train"] if train_seconds else None
    accuracy = ParameterFloat(name="EvalAccuracy", default_value=0.9)
    threshold = ParameterFloat(name="Threshold", default_value=0.5)
    group = ParameterString(name="ModelGroup", default_value="tiny-models")
    cache_config = CacheConfig(enable_caching=True, expire_after="P1D") if cache else None

    train = TrainingStep(
        name="Train",
        step_args=estimator(session, image, bucket, entry, **(hyperparameters or {})).fit(),
        cache_config=cache_config,
        retry_policies=[RETRY_KILLED] if retry else None,
    )
    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluator = Processor(
        image_uri=image,
        role=ROLE,
        instance_count=1,
        instance_type="local",
        entrypoint=["python3", "/opt/program/evaluate.py"],
        sagemaker_session=session,
    )
    evaluate = ProcessingStep(
        name="Evaluate",
        step_args=evaluator.run(
            arguments=["--accuracy", accuracy.to_string()],
            outputs=[
                ProcessingOutput(
                    output_name="evaluation",
                    source="/opt/ml/processing/evaluation",
                    destination=f"s3://{bucket}/evaluation",
                )
            ],
        ),
        property_files=[report],
        cache_config=cache_config,
        depends_on=[train],
    )
    model = Model(
        image_uri=image,
        model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
        role=ROLE,
        sagemaker_session=session,
    )
    metrics = ModelMetrics(
        model_statistics=MetricsSource(
            s3_uri=Join(
                on="/",
                values=[
                    evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri,
                    "evaluation.json",
                ],
            ),
            content_type="application/json",
        )
    )
    register = ModelStep(
        name="Register",
        step_args=model.register(
            content_types=["application/x-image"],
            response_types=["application/json"],
            inference_instances=["ml.m5.large"],
            transform_instances=["ml.m5.large"],
            model_package_group_name=group,
            approval_status="PendingManualApproval",
            model_metrics=metrics,
        ),
    )
    create_model = ModelStep(name="CreateModel", step_args=model.create(instance_type="local"))
    use_arn = probe_step(
        session, image, "UseArn", {"MODEL_PACKAGE_ARN": register.properties.ModelPackageArn}
    )
    measured = JsonGet(
        step_name=evaluate.name, property_file=report, json_path="metrics.accuracy.value"
    )
    fail = FailStep(
        name="AccuracyTooLow",
        error_message=Join(
            on=" ", values=["accuracy", measured, "is below the threshold", threshold]
        ),
    )
    check = ConditionStep(
        name="CheckAccuracy",
        conditions=[ConditionGreaterThanOrEqualTo(left=measured, right=threshold)],
        if_steps=[register, create_model, use_arn],
        else_steps=[fail],
    )
    return Pipeline(
        name=f"tiny-train-{bucket}",
        parameters=[accuracy, threshold, group],
        steps=[train, evaluate, check],
        sagemaker_session=session,
    )


def tune_graph(
    session: Any, image: str, bucket: str, strategy: str, *, cache: bool = False, **static: Any
) -> Pipeline:
    """Tune (3 jobs, 2 at a time) -> a consumer of get_top_model_s3_uri(top_k=0)."""
    tuner = HyperparameterTuner(
        estimator(session, image, bucket, **static),
        objective_metric_name="val_accuracy",
        hyperparameter_ranges={
            "lr": ContinuousParameter(0.001, 0.1, scaling_type="Logarithmic"),
            "depth": IntegerParameter(1, 5),
        },
        metric_definitions=METRIC_DEFINITIONS,
        max_jobs=3,
        max_parallel_jobs=2,
        strategy=strategy,
        random_seed=7,
    )
    tune = TuningStep(
        name="Tune",
        step_args=tuner.fit(),
        cache_config=CacheConfig(enable_caching=True) if cache else None,
    )
    consume = probe_step(
        session,
        image,
        "UseBestModel",
        {"MODEL_URI": tune.get_top_model_s3_uri(top_k=0, s3_bucket=bucket, prefix="models")},
    )
    return Pipeline(
        name=f"tiny-tune-{strategy.lower()}-{bucket}",
        steps=[tune, consume],
        sagemaker_session=session,
    )
