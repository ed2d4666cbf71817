"""The GPU check kit behind ``bench/gpu_check.py`` (README: "Checking a GPU")."""
