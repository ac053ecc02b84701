"""Code that runs inside the project's PyTorch runtime image.

Each module with a ``main(argv=None)`` is an entry point run as
``python3 -m mlops_container.<module>``. The package uses only the SageMaker
container contract (files and environment variables, see :mod:`contract`);
it never imports the SageMaker SDK or the orchestration package.
"""
