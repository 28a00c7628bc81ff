"""Helpers the test tiers (and the benchmarks) share; never part of the image.

pytest puts ``tests/`` on ``sys.path`` (``pythonpath`` in ``pyproject.toml``), so every tier imports
them as ``support.<module>``; the benchmarks add ``tests/`` themselves.

- ``waiting``: ``wait_for`` (poll until a condition holds).
- ``cluster_objects``: the generated CRD, a restricted pod, the store's claim.
- ``operator_process``: the operator as a subprocess under the chart's RBAC for it.
- ``chart``: the chart rendered by ``helm template``, and identities acting under its Roles.
- ``media_server``: generated media (``audio_extract_dev.media``) served to pods.
- ``faults``: the operator with a fault injected (``crash-after-send``).
"""
