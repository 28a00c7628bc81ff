"""`python -m audio_extract_client.cli`: the same as the `audio-extract` command."""

from . import main

main()
