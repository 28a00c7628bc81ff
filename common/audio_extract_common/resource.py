"""The ExtractionBatch custom resource, by the names it had before its models were split by what they
hold: ``batch_resource`` (group, version, kind, names), ``batch_spec``, ``batch_status`` and
``spec_rules``. Import from those."""

from __future__ import annotations

from .batch_resource import (
    API_VERSION,
    CATEGORIES,
    GROUP,
    KIND,
    PLURAL,
    SHORT_NAMES,
    SINGULAR,
    VERSION,
    manifest,
)
from .batch_spec import (
    AudioTrack,
    BatchSpec,
    ExtractionJob,
    JobIndex,
    Options,
    Output,
    Source,
    TrackLanguage,
    Trim,
)
from .batch_status import (
    TERMINAL_STATES,
    BatchStatus,
    Condition,
    Delivery,
    ErrorCode,
    InputFile,
    JobError,
    JobState,
    JobStatus,
    OutputFile,
    Phase,
    Step,
    StepTimings,
)
from .ids import MAX_JOBS
from .spec_rules import MAX_URL_LENGTH, HttpUrl

__all__ = [
    "API_VERSION",
    "CATEGORIES",
    "GROUP",
    "KIND",
    "MAX_JOBS",
    "MAX_URL_LENGTH",
    "PLURAL",
    "SHORT_NAMES",
    "SINGULAR",
    "TERMINAL_STATES",
    "VERSION",
    "AudioTrack",
    "BatchSpec",
    "BatchStatus",
    "Condition",
    "Delivery",
    "ErrorCode",
    "ExtractionJob",
    "HttpUrl",
    "InputFile",
    "JobError",
    "JobIndex",
    "JobState",
    "JobStatus",
    "Options",
    "Output",
    "OutputFile",
    "Phase",
    "Source",
    "Step",
    "StepTimings",
    "TrackLanguage",
    "Trim",
    "manifest",
]
