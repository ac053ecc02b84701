"""Pin guard: the private SDK names the extended local mode relies on (fails loudly on upgrade)."""

from __future__ import annotations

import inspect

import sagemaker


def test_sdk_version_is_pinned() -> None:
    assert sagemaker.__version__ == "2.257.7", (
        "local_mlops.targets.localmode subclasses private SageMaker SDK classes; re-verify every hook "
        "in tests/unit/localmode/test_sdk_pins.py before moving the pin"
    )


def test_private_hooks_exist() -> None:
    from sagemaker.local import entities, local_session, pipeline
    from sagemaker.local.exceptions import StepExecutionException
    from sagemaker.local.image import _SageMakerContainer, _stream_output
    from sagemaker.workflow import _steps_compiler
    from sagemaker.workflow._utils import _RegisterModelStep
    from sagemaker.workflow.steps import StepTypeEnum, TuningStep

    assert StepExecutionException and _stream_output and _RegisterModelStep
    assert hasattr(local_session.LocalSession, "_initialize")
    assert isinstance(local_session.LocalSagemakerClient._pipelines, dict)
    assert isinstance(local_session.LocalSagemakerClient._training_jobs, dict)
    assert isinstance(local_session.LocalSagemakerClient._processing_jobs, dict)
    assert hasattr(local_session.LocalSagemakerClient.create_model, "__wrapped__")
    from sagemaker.workflow.pipeline import Pipeline

    # LocalTarget.start calls these bodies without the telemetry decorator.
    assert hasattr(Pipeline.create, "__wrapped__") and hasattr(Pipeline.start, "__wrapped__")
    assert "sagemaker_config" in inspect.signature(local_session.LocalSession.__init__).parameters
    assert hasattr(entities._LocalPipeline, "start") and isinstance(
        entities._LocalPipeline._executions, dict
    )
    assert hasattr(entities._LocalPipelineExecution, "_initialize_step_execution")
    for name in (
        "mark_step_executing",
        "update_step_properties",
        "update_step_failure",
        "update_execution_success",
        "update_execution_failure",
    ):
        assert hasattr(entities._LocalPipelineExecution, name)
    step = entities._LocalPipelineExecutionStep("s", StepTypeEnum.TRAINING, None)
    assert isinstance(step._step_type_to_output_format_map, dict)
    assert hasattr(step, "_construct_metadata")
    assert hasattr(entities, "_LocalTrainingJob") and hasattr(entities, "_LocalProcessingJob")
    assert hasattr(pipeline.LocalPipelineExecutor, "_execute_step")
    assert hasattr(pipeline.LocalPipelineExecutor, "evaluate_pipeline_variable")
    assert hasattr(pipeline, "_StepExecutor") and hasattr(pipeline._StepExecutorFactory, "get")
    assert "pipeline_executor" in inspect.signature(pipeline._StepExecutor.__init__).parameters
    assert "pipline_executor" in inspect.getsource(pipeline._StepExecutor.__init__)  # sic
    assert hasattr(_steps_compiler.CompiledStep, "arguments")
    assert "_request_dict" in inspect.getsource(_steps_compiler.CompiledStep.__init__)
    assert hasattr(TuningStep, "get_top_model_s3_uri")
    from sagemaker.session import _STATUS_CODE_TABLE, _check_job_status

    assert _check_job_status and _STATUS_CODE_TABLE["COMPLETED"] == "Completed"
    for attr in ("container_root", "container_entrypoint"):
        assert attr in inspect.getsource(_SageMakerContainer)


def test_the_training_archive_hook_is_where_the_sdk_calls_it() -> None:
    """``artifacts.retrieve_artifacts`` mirrors this SDK body; ``train`` calls it by this name."""
    from sagemaker.local.image import _SageMakerContainer

    params = list(inspect.signature(_SageMakerContainer.retrieve_artifacts).parameters)
    assert params == ["self", "compose_data", "output_data_config", "job_name"]
    assert "self.retrieve_artifacts(compose_data" in inspect.getsource(_SageMakerContainer.train)
    body = inspect.getsource(_SageMakerContainer.retrieve_artifacts)
    assert body.count("create_tar_file(") == 2 and "move_to_destination(" in body


def test_the_docker_run_hooks_are_where_the_sdk_calls_them() -> None:
    """``JobContainer`` keeps the compose data and swaps the command ``_compose`` returns."""
    from sagemaker.local.image import _SageMakerContainer

    params = list(inspect.signature(_SageMakerContainer._generate_compose_file).parameters)
    assert params == ["self", "command", "additional_volumes", "additional_env_vars"]
    assert list(inspect.signature(_SageMakerContainer._compose).parameters) == ["self", "detached"]
    for job in (_SageMakerContainer.train, _SageMakerContainer.process):
        body = inspect.getsource(job)
        assert "self._generate_compose_file(" in body and "self._compose()" in body
        assert "subprocess.Popen(\n            compose_command" in body
