"""The pipeline graph, built by one function for both targets.

    ValidateData ──> Preprocess ──> Train (or Tune) ──> Evaluate ──> CheckAccuracy
                                                                      │ accuracy >= threshold
                                                                      ├──> RegisterModel
                                                                      ├──> CreateModel ──> BatchScore
                                                                      │ else
                                                                      └──> AccuracyTooLow (Fail)

Evaluate scores the test split and writes the drift-check baselines too (Model Monitor
statistics and constraints of the validation split's features with the trained model) that
RegisterModel attaches to the package: one job loads the model once for both.
BatchScore (only with ``batch_input``: ``run --batch-input``) is a batch transform of the
``BatchInput`` prefix with the created model, the same job as ``local-mlops transform``; it
writes one ``NAME.out`` per image under ``batch_output_prefix(...)/<execution id>/``.

Every step runs the one runtime image: processing steps call ``python3 -m mlops_container.<step>``,
training calls the image's ``train``. Only the ``Target`` (session, instance types, image, role)
differs between local and cloud; the definition is otherwise the same.
"""

from __future__ import annotations

from typing import Any

from sagemaker.drift_check_baselines import DriftCheckBaselines
from sagemaker.estimator import Estimator
from sagemaker.inputs import TrainingInput
from sagemaker.model import Model
from sagemaker.model_metrics import MetricsSource, ModelMetrics
from sagemaker.network import NetworkConfig
from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
from sagemaker.tuner import CategoricalParameter, ContinuousParameter, HyperparameterTuner
from sagemaker.workflow.condition_step import ConditionStep
from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
from sagemaker.workflow.execution_variables import ExecutionVariables
from sagemaker.workflow.fail_step import FailStep
from sagemaker.workflow.functions import Join, JsonGet
from sagemaker.workflow.model_step import ModelStep
from sagemaker.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString
from sagemaker.workflow.pipeline import Pipeline
from sagemaker.workflow.properties import PropertyFile
from sagemaker.workflow.retry import (
    SageMakerJobExceptionTypeEnum,
    SageMakerJobStepRetryPolicy,
)
from sagemaker.workflow.steps import (
    CacheConfig,
    ProcessingStep,
    TrainingStep,
    TransformStep,
    TuningStep,
)

from local_mlops.account.tags import project_tags
from local_mlops.config import Settings
from local_mlops.pipeline import contract, datasets

# Step names (also what `runs describe` and the docs show), in a module without the SDK.
from local_mlops.pipeline.steps import (  # noqa: E402
    BATCH_SCORE,
    CHECK,
    CREATE_MODEL,
    EVALUATE,
    FAIL,
    PREPROCESS,
    REGISTER,
    TRAIN,
    TUNE,
    VALIDATE,
)
from local_mlops.targets import Target
from local_mlops.targets import transform as batch_transform

# What the runtime image agrees on with the graph (channels, paths, metrics): pipeline/contract.py.
ACCURACY_PATH = contract.ACCURACY_PATH
METRIC_DEFINITIONS = contract.METRIC_DEFINITIONS
OBJECTIVE = contract.OBJECTIVE_METRIC
# What the serving image reads (containers/mlops_container/serving/decoding.py; a test compares).
CONTENT_TYPES = list(contract.CONTENT_TYPES)


def dataset_uri(settings: Settings) -> str:
    """Where the configured dataset lives in the bucket once imported (see datasets.py)."""
    return datasets.dataset_uri(settings, settings.dataset)


def batch_output_prefix(bucket: str, pipeline_name: str) -> str:
    """Where BatchScore writes, one folder per execution id below it."""
    return f"s3://{bucket}/pipelines/{pipeline_name}/batch"


def build_parameters(
    settings: Settings, target: Target, instance_count: int = 1, batch_input: str = ""
) -> dict[str, Any]:
    """The pipeline's parameters; each can be overridden per execution. ``BatchInput`` (the
    images BatchScore scores) only when the graph has that step."""
    params = [
        ParameterString("InputData", default_value=dataset_uri(settings)),
        ParameterString("Backbone", default_value=settings.backbone),
        ParameterInteger("Epochs", default_value=settings.epochs),
        ParameterFloat("LearningRate", default_value=settings.learning_rate),
        ParameterInteger("BatchSize", default_value=64),
        ParameterInteger("ImageSize", default_value=32),
        ParameterFloat("AccuracyThreshold", default_value=settings.accuracy_threshold),
        ParameterString("ProcessingInstanceType", default_value=target.processing_instance_type),
        ParameterString("TrainingInstanceType", default_value=target.training_instance_type),
        # Training hosts (torch.distributed across them; tuning trials too): `run --instance-count`.
        ParameterInteger("TrainingInstanceCount", default_value=instance_count),
        ParameterString("ModelApprovalStatus", default_value=settings.approval_status),
    ]
    if batch_input:
        params.append(ParameterString("BatchInput", default_value=batch_input))
    return {p.name: p for p in params}


def _processor(
    target: Target, p: dict[str, Any], module: str, name: str, tags: list[dict[str, str]]
) -> Processor:
    return Processor(
        role=target.role_arn,
        image_uri=target.image_uri,
        instance_count=1,
        instance_type=p["ProcessingInstanceType"],
        entrypoint=["python3", "-m", f"mlops_container.{module}"],
        sagemaker_session=target.session,
        base_job_name=f"local-mlops-{name}",
        tags=tags,
        # The steps read and write only their mounted folders: no network, on both targets.
        network_config=NetworkConfig(enable_network_isolation=True),
    )


def build_pipeline(
    settings: Settings,
    target: Target,
    *,
    tune: bool = False,
    cache: bool = True,
    max_jobs: int = 4,
    max_parallel_jobs: int = 2,
    strategy: str = "Bayesian",
    spot: bool = False,
    pretrained_uri: str = "",
    instance_count: int = 1,
    batch_input: str = "",
) -> Pipeline:
    """The whole graph, for either target.

    ``pretrained_uri`` (a state dict in S3, see weights.py) adds the training job's
    ``pretrained`` channel: the backbone starts from it and the head trains alone for one epoch.
    ``instance_count`` is the default of ``TrainingInstanceCount``: the training job's (and every
    tuning trial's) hosts, which train together with torch.distributed (see the image's train).
    ``batch_input`` (an S3 prefix of images) adds the ``BatchInput`` parameter, defaulting to it,
    and the BatchScore step after CreateModel; without it the graph has neither.
    """
    p = build_parameters(settings, target, instance_count, batch_input)
    cache_config = CacheConfig(enable_caching=cache, expire_after="P30D")
    retry = [
        SageMakerJobStepRetryPolicy(
            exception_types=[
                SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
            ],
            max_attempts=2,
            interval_seconds=1,
        )
    ]
    prefix = f"s3://{target.bucket}/pipelines/{settings.pipeline_name}"
    # On every job and model the steps create: `cloud status` and `cloud down` find them by it.
    tags = project_tags(settings, "local-mlops run")

    # The dataset's shards: manifest, classes and images packed (see datasets.pack_shard).
    shards = Join(on="", values=[p["InputData"], f"{datasets.SHARDS}/"])

    # ValidateData: the manifest and every image it names; hard problems fail the run here.
    validate = ProcessingStep(
        name=VALIDATE,
        step_args=_processor(target, p, "validate", "validate", tags).run(
            inputs=[ProcessingInput(source=shards, destination=contract.PROCESSING_INPUT_DATA)],
            outputs=[ProcessingOutput(output_name="report", source=contract.PROCESSING_REPORT)],
        ),
        cache_config=cache_config,
        retry_policies=retry,
    )

    # Preprocess: dedupe, stratified split, resize, normalization stats, monitoring baseline.
    preprocess = ProcessingStep(
        name=PREPROCESS,
        step_args=_processor(target, p, "preprocess", "preprocess", tags).run(
            inputs=[ProcessingInput(source=shards, destination=contract.PROCESSING_INPUT_DATA)],
            outputs=[
                ProcessingOutput(output_name=name, source=f"{contract.PROCESSING_OUTPUT}/{name}")
                for name in contract.PREPROCESS_OUTPUTS
            ],
            arguments=["--image-size", p["ImageSize"].to_string()],
        ),
        depends_on=[validate],
        cache_config=cache_config,
        retry_policies=retry,
    )
    outputs = preprocess.properties.ProcessingOutputConfig.Outputs

    # Train (or Tune): transfer learning on a torchvision backbone in the runtime image.
    estimator = Estimator(
        image_uri=target.image_uri,
        role=target.role_arn,
        instance_count=p["TrainingInstanceCount"],
        instance_type=p["TrainingInstanceType"],
        output_path=f"{prefix}/models",
        sagemaker_session=target.session,
        base_job_name="local-mlops-train",
        tags=tags,
        metric_definitions=METRIC_DEFINITIONS,
        hyperparameters={
            "backbone": p["Backbone"],
            "epochs": p["Epochs"],
            "learning_rate": p["LearningRate"],
            "batch_size": p["BatchSize"],
            **({"weights": "channel", "freeze_epochs": 1} if pretrained_uri else {}),
        },
        use_spot_instances=spot,
        max_run=3600,
        max_wait=7200 if spot else None,
        checkpoint_s3_uri=f"{prefix}/checkpoints" if spot else None,
        # Channels in, the model out: nothing else (ImageNet weights come as the pretrained
        # channel, fetched by the host). Hosts of a distributed job still reach each other.
        enable_network_isolation=True,
    )
    train_inputs = {
        name: TrainingInput(s3_data=outputs[name].S3Output.S3Uri)
        for name in (contract.TRAIN_CHANNEL, contract.VALIDATION_CHANNEL)
    }
    if pretrained_uri:
        train_inputs[contract.PRETRAINED_CHANNEL] = TrainingInput(s3_data=pretrained_uri)
    if tune:
        tuner = HyperparameterTuner(
            estimator,
            objective_metric_name=OBJECTIVE,
            hyperparameter_ranges={
                "learning_rate": ContinuousParameter(1e-4, 1e-2, scaling_type="Logarithmic"),
                "batch_size": CategoricalParameter([32, 64, 128]),
            },
            metric_definitions=METRIC_DEFINITIONS,
            objective_type="Maximize",
            strategy=strategy,
            max_jobs=max_jobs,
            max_parallel_jobs=max_parallel_jobs,
            base_tuning_job_name="local-mlops-tune",
        )
        fit: Any = TuningStep(
            name=TUNE,
            step_args=tuner.fit(inputs=train_inputs),
            cache_config=cache_config,
            retry_policies=retry,
        )
        model_data: Any = fit.get_top_model_s3_uri(
            top_k=0, s3_bucket=target.bucket, prefix=f"pipelines/{settings.pipeline_name}/models"
        )
    else:
        fit = TrainingStep(
            name=TRAIN,
            step_args=estimator.fit(inputs=train_inputs),
            cache_config=cache_config,
            retry_policies=retry,
        )
        model_data = fit.properties.ModelArtifacts.S3ModelArtifacts

    # Evaluate: metrics on the held-out test split, in SageMaker's model-quality format, and
    # the monitor's reference (statistics.json, constraints.json, the PCA basis, model-quality
    # constraints) from the same model on the validation split.
    report = PropertyFile(
        name="EvaluationReport",
        output_name=contract.EVALUATION_OUTPUT,
        path=contract.EVALUATION_FILE,
    )
    evaluate = ProcessingStep(
        name=EVALUATE,
        step_args=_processor(target, p, "evaluate", "evaluate", tags).run(
            inputs=[
                ProcessingInput(source=model_data, destination=contract.PROCESSING_MODEL),
                ProcessingInput(
                    source=outputs[contract.TEST_SPLIT].S3Output.S3Uri,
                    destination=contract.PROCESSING_TEST,
                ),
                ProcessingInput(
                    source=outputs[contract.VALIDATION_CHANNEL].S3Output.S3Uri,
                    destination=contract.PROCESSING_VALIDATION,
                ),
            ],
            outputs=[
                ProcessingOutput(
                    output_name=contract.EVALUATION_OUTPUT, source=contract.PROCESSING_EVALUATION
                ),
                ProcessingOutput(
                    output_name=contract.BASELINE_STEP_OUTPUT, source=contract.PROCESSING_BASELINE
                ),
            ],
            arguments=[
                "--validation-dir",
                contract.PROCESSING_VALIDATION,
                "--baseline-dir",
                contract.PROCESSING_BASELINE,
            ],
        ),
        property_files=[report],
        cache_config=cache_config,
        retry_policies=retry,
    )
    evaluate_outputs = evaluate.properties.ProcessingOutputConfig.Outputs
    accuracy = JsonGet(step_name=evaluate.name, property_file=report, json_path=ACCURACY_PATH)
    evaluation_uri = Join(
        on="/",
        values=[
            evaluate_outputs[contract.EVALUATION_OUTPUT].S3Output.S3Uri,
            contract.EVALUATION_FILE,
        ],
    )
    baseline_uri = evaluate_outputs[contract.BASELINE_STEP_OUTPUT].S3Output.S3Uri

    def baseline_file(name: str) -> MetricsSource:
        return MetricsSource(
            s3_uri=Join(on="/", values=[baseline_uri, name]), content_type="application/json"
        )

    # RegisterModel + CreateModel when the accuracy clears the threshold. They reference the
    # serving image (ONNX Runtime on the artifact's model.onnx, no torch).
    model = Model(
        image_uri=target.model_image_uri,
        model_data=model_data,
        role=target.role_arn,
        sagemaker_session=target.session,
        name=None,
    )
    register = ModelStep(
        name=REGISTER,
        step_args=model.register(
            content_types=list(contract.CONTENT_TYPES),
            response_types=list(contract.RESPONSE_TYPES),
            inference_instances=["ml.m5.large", "ml.c5.large"],
            transform_instances=["ml.m5.large"],
            model_package_group_name=settings.model_package_group,
            approval_status=p["ModelApprovalStatus"],
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(
                    s3_uri=evaluation_uri, content_type="application/json"
                )
            ),
            drift_check_baselines=DriftCheckBaselines(
                model_data_statistics=baseline_file(contract.STATISTICS_FILE),
                model_data_constraints=baseline_file(contract.CONSTRAINTS_FILE),
                model_statistics=MetricsSource(
                    s3_uri=evaluation_uri, content_type="application/json"
                ),
                model_constraints=baseline_file(contract.MODEL_QUALITY_CONSTRAINTS_FILE),
            ),
            description=f"{settings.dataset} image classifier",
        ),
    )
    create_model = ModelStep(
        name=CREATE_MODEL,
        step_args=model.create(instance_type="ml.m5.large", tags=tags),
    )
    fail = FailStep(
        name=FAIL,
        error_message=Join(
            on=" ",
            values=["Test accuracy", accuracy, "is below the threshold", p["AccuracyThreshold"]],
        ),
    )
    if_steps: list[Any] = [register, create_model]

    # BatchScore (optional): the created model scores BatchInput, as `local-mlops transform` does.
    if batch_input:
        scorer = batch_transform.transformer(
            target,
            target.session,
            model_name=create_model.properties.ModelName,
            output_path=Join(
                on="/",
                values=[
                    batch_output_prefix(target.bucket, settings.pipeline_name),
                    ExecutionVariables.PIPELINE_EXECUTION_ID,
                ],
            ),
            top=batch_transform.DEFAULT_TOP,
            tags=tags,
        )
        if_steps.append(
            TransformStep(
                name=BATCH_SCORE,
                step_args=batch_transform.start(scorer, p["BatchInput"]),
                retry_policies=retry,
            )
        )

    check = ConditionStep(
        name=CHECK,
        conditions=[ConditionGreaterThanOrEqualTo(left=accuracy, right=p["AccuracyThreshold"])],
        if_steps=if_steps,
        else_steps=[fail],
    )

    return Pipeline(
        name=settings.pipeline_name,
        parameters=list(p.values()),
        steps=[validate, preprocess, fit, evaluate, check],
        sagemaker_session=target.session,
    )
