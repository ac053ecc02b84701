"""The inference server: SageMaker's hosting contract over uvicorn, ONNX Runtime by default.

Nothing here imports torch (the serving image has none): the PyTorch backend is loaded lazily,
only in the runtime image and only for artifacts without ``model.onnx``. Modules:
``settings`` (environment), ``decoding`` (request bodies to pixel arrays), ``backends``
(the model), ``batcher`` (dynamic batching), ``app`` (the ASGI app), ``server`` (entry point).
"""
