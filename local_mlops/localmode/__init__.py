"""SageMaker SDK v2 local mode, extended by subclassing to run the product's whole graph."""

from local_mlops.localmode.session import ExtendedLocalPipelineSession

__all__ = ["ExtendedLocalPipelineSession"]
