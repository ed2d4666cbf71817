"""The AWQ backend (transformers 5 + GPTQModel).  ``format`` registers the AWQ model format
(``engine.registry``); ``backend.AwqBackend`` is what ``engine.load_backend`` builds for
``AwqSettings``; torch is imported only then."""
