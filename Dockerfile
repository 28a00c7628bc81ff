# syntax=docker/dockerfile:1
# One image for the three processes of audio-extract; the Helm chart chooses one by its command:
#   API       python -m audio_extract_api
#   operator  python -m kopf run --standalone -m audio_extract_operator ...
#   worker    python -m audio_extract_worker   (what the operator's Jobs run; needs ffmpeg)
# It runs as a numeric non-root user and writes nothing outside the volumes the chart mounts
# (/data, /scratch, /tmp), so the root filesystem can be mounted read-only.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common/ common/
COPY worker/ worker/
COPY operator/ operator/
COPY api/ api/
COPY localcluster/ localcluster/
# pip compiles the bytecode here, so nothing is written at run time.
RUN /opt/venv/bin/pip install .

FROM ${PYTHON_IMAGE}
# ffmpeg/ffprobe for the worker (Debian bookworm ships 5.1, the version the tests run against).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp
EXPOSE 8000
CMD ["python", "-m", "audio_extract_api"]
