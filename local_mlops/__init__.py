"""local-mlops: a local-first MLOps pipeline for image classification on the SageMaker SDK."""

__version__ = "0.1.0"
