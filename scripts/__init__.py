"""Python tooling that lives under ``scripts/``: the model rollout operator (``scripts.rollout_operator``).

The shell helpers next to this package (``cluster/``, ``docker/``, ``tools/``) are not Python modules.
"""
