"""Development tools of audio-extract, never part of the image: the CRD generator (``make crds``),
a verifying webhook receiver and the media generator that ``make dev`` and the tests share.

The product (``audio_extract_common``, ``_api``, ``_operator``, ``_worker``) never imports this
package; the import-linter contracts in ``pyproject.toml`` keep it so.
"""
