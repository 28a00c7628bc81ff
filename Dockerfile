# syntax=docker/dockerfile:1
# One image for the three processes of audio-extract; the Helm chart chooses one by its command:
#   API       python -m audio_extract_api
#   operator  python -m kopf run --standalone -m audio_extract_operator ...
#   worker    tini -- python -m audio_extract_worker   (what the operator's Jobs run; needs ffmpeg;
#             tini as PID 1 passes the kubelet's SIGTERM on, which PID 1 itself would ignore
#             until Python has installed a handler)
# It runs as a numeric non-root user and writes nothing outside the volumes the chart mounts
# (/data, /scratch, /tmp), so the root filesystem can be mounted read-only.
#
# Layers are ordered so that a change to the project's Python code rebuilds only the last, small
# one: ffmpeg, then the dependencies (rebuilt only when pyproject.toml's dependency list changes),
# then the project's own wheel.
ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# The dependency lists of pyproject.toml as requirements files: an edit elsewhere in
# pyproject.toml (version, description, tool settings) writes the same files, so the stages that
# install from them stay cached.
FROM ${PYTHON_IMAGE} AS requirements
COPY pyproject.toml /src/
RUN python - <<'EOF'
import tomllib
with open("/src/pyproject.toml", "rb") as f:
    meta = tomllib.load(f)
with open("/requirements.txt", "w") as f:
    f.write("\n".join(meta["project"]["dependencies"]) + "\n")
with open("/build-requirements.txt", "w") as f:
    f.write("\n".join(meta["build-system"]["requires"]) + "\n")
EOF

# pip and the build backend, in a virtualenv of their own: the image's /opt/venv gets neither.
FROM ${PYTHON_IMAGE} AS tools
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=requirements /build-requirements.txt /tmp/
RUN python -m venv /opt/tools && /opt/tools/bin/pip install -r /tmp/build-requirements.txt

# pip compiles the bytecode here, so nothing is written at run time.
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY --from=requirements /requirements.txt /tmp/
RUN --mount=type=bind,from=tools,source=/opt/tools,target=/opt/tools \
    python -m venv --without-pip /opt/venv \
 && /opt/tools/bin/pip --python /opt/venv/bin/python install -r /tmp/requirements.txt

# The project as a wheel, built offline: the product's four packages only (pyproject.toml's
# wheel target); the dev tools and the tests are not in the build context.
FROM tools AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY common/ common/
COPY worker/ worker/
COPY operator/ operator/
COPY api/ api/
RUN /opt/tools/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels .

# tini (static) and ffmpeg/ffprobe for the worker (Debian bookworm ships 5.1, the version the tests run against),
# without most of the ~650 MB the ffmpeg package pulls in for video output, GPUs and fonts (mesa,
# LLVM, VA/VDPAU drivers, ...: loaded with dlopen, never by audio extraction). /out gets the two
# binaries and the shared libraries they load at start (ldd: the closure of DT_NEEDED) that the
# base does not already hold byte for byte, under the name the loader asks for, in the directory
# apt put them in (a default search directory, or one a RUNPATH names).
FROM ${PYTHON_IMAGE} AS ffmpeg
RUN set -eu; \
    ldconfig -p | awk '$NF ~ /^\// {print $NF}' | xargs readlink -f | sort -u | xargs sha256sum \
      | cut -d' ' -f1 > /tmp/base.sums; \
    apt-get update; \
    apt-get install -y --no-install-recommends ffmpeg tini; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /out/usr/bin; \
    cp /usr/bin/ffmpeg /usr/bin/ffprobe /out/usr/bin/; \
    cp /usr/bin/tini-static /out/usr/bin/tini; \
    ldd /usr/bin/ffmpeg /usr/bin/ffprobe | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}' | sort -u \
      | while read -r soname path; do \
          sum=$(sha256sum "$(readlink -f "$path")" | cut -d' ' -f1); \
          grep -qx "$sum" /tmp/base.sums && continue; \
          dir=$(dirname "$path"); case $dir in /lib/*) dir=/usr$dir;; esac; \
          mkdir -p "/out$dir"; cp -L "$path" "/out$dir/$soname"; \
        done

FROM ${PYTHON_IMAGE}
COPY --from=ffmpeg /out/ /
# refresh the loader's cache, and fail the build here if ffmpeg lacks a library
RUN ldconfig && ffmpeg -loglevel error -version >/dev/null && ffprobe -loglevel error -version >/dev/null
# The python image's standard library carries no bytecode, and nothing can write it at run time
# (read-only root filesystem, PYTHONDONTWRITEBYTECODE): compiled once here, or every worker pod
# compiles the modules it imports before its first ffprobe. pip compiles /opt/venv's itself.
RUN python -m compileall -q -j 0 -x '/(idlelib|tkinter|turtledemo|lib2to3|ensurepip)/' \
      "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"
COPY --from=deps /opt/venv /opt/venv
RUN --mount=type=bind,from=tools,source=/opt/tools,target=/opt/tools \
    --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    /opt/tools/bin/pip --python /opt/venv/bin/python install --no-deps --no-index /wheels/*.whl
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
USER 65532:65532
WORKDIR /tmp
EXPOSE 8000
CMD ["python", "-m", "audio_extract_api"]
