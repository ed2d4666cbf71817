"""The AWQ backend (transformers 5 + GPTQModel).  ``backend.AwqBackend`` is what
``engine.load_backend`` builds for ``AwqSettings``; torch is imported only then."""
