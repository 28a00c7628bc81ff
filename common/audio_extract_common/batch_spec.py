"""The ExtractionBatch spec: what a batch asks for, the body of POST /v1/batch plus cancellation.

The API validates request bodies with these models, the operator reads the resource with them and
``make crds`` generates the CRD's spec schema from them (a test fails on drift). Field names follow
the public contract exactly; every field has a description because ``kubectl explain`` shows it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, cast

from pydantic import (
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)

from . import filenames
from .formats import BITRATE_RE, Format, Priority, Quality, check_bitrate, check_sample_rate
from .ids import MAX_JOBS
from .spec_rules import URL_CEL, Channels, HttpUrl, SampleRate, Seconds, SpecModel


class TrackLanguage(SpecModel):
    """An audio stream chosen by its language tag."""

    language: str = Field(
        pattern=r"^[a-z]{3}$",
        description="ISO 639-2 code (three lowercase letters, e.g. `eng`), matched against the "
        "stream's language tag; bibliographic and terminology codes (`fre`/`fra`) are one language.",
    )


def _audio_track(value: Any, handler: ValidatorFunctionWrapHandler) -> int | TrackLanguage:
    """One message for the field, not one per branch of the union."""
    try:
        return cast("int | TrackLanguage", handler(value))
    except ValidationError:
        raise ValueError(
            'must be a 0-based index among the audio streams or {"language": "<ISO 639-2 code>"}'
        ) from None


MAX_AUDIO_TRACK = 1023
"""Far more audio streams than a container holds; bounded so that a number of hundreds of digits
is refused here, naming the field, and never reaches the API server or ffmpeg."""

AudioTrack = Annotated[
    Annotated[StrictInt, Field(ge=0, le=MAX_AUDIO_TRACK)] | TrackLanguage,
    WrapValidator(_audio_track),
]


class Source(SpecModel):
    """Where the video comes from."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.type != 'url' || has(self.url)",
                    "message": "url is required when type is url",
                    "fieldPath": ".url",
                },
                {
                    "rule": "self.type != 'upload' || has(self.file)",
                    "message": "file is required when type is upload",
                    "fieldPath": ".file",
                },
            ]
        }
    )

    type: Literal["url", "upload"] = Field(
        description="`url`: fetched over HTTP(S); `upload`: an uploaded file."
    )
    url: HttpUrl | None = Field(
        default=None,
        description="The video's http(s) URL (at most 2048 characters, no credentials). "
        "Required when type=url.",
        json_schema_extra={"x-kubernetes-validations": URL_CEL},
    )
    file: str | None = Field(
        default=None,
        pattern=r"^upl_[0-9a-f]{16}$",
        description="An upload id (`upl_<16 hex>`) returned by POST /v1/uploads. Required when type=upload.",
    )
    audioTrack: AudioTrack | None = Field(
        default=None,
        description="Which audio stream to extract: a 0-based index among the source's audio streams, "
        'or {"language": "eng"}. Default: the stream ffmpeg would choose (the default-flagged one). '
        "No such stream fails the job with NO_AUDIO_STREAM.",
        # Integer or object: a structural schema cannot type that (and CEL cannot see an untyped
        # field), so the CRD keeps the value as given with these value checks, and the operator
        # refuses the rest (an InvalidSpec batch) with the same model the API uses.
        json_schema_extra={
            "x-kubernetes-preserve-unknown-fields": True,
            "minimum": 0,
            "maximum": MAX_AUDIO_TRACK,
            "required": ["language"],
            "maxProperties": 1,
        },
    )

    @model_validator(mode="after")
    def _one_location(self) -> Source:
        if self.type == "url" and not self.url:
            raise ValueError("url is required when type is url")
        if self.type == "upload" and not self.file:
            raise ValueError("file is required when type is upload")
        return self


class Trim(SpecModel):
    """The part of the source to extract, in seconds."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.start) || !has(self.end) || self.start < self.end",
                    "message": "trim start must be before its end",
                },
            ]
        }
    )

    start: Seconds | None = Field(
        default=None, description="Seconds from the beginning (decimals allowed); default 0."
    )
    end: Seconds | None = Field(
        default=None,
        gt=0,
        description="Seconds from the beginning, after start; default the end of the media.",
    )

    @model_validator(mode="after")
    def _in_order(self) -> Trim:
        if self.start is not None and self.end is not None and self.start >= self.end:
            raise ValueError("trim start must be before its end")
        return self


class Output(SpecModel):
    """The audio file to produce."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.bitrate) || self.format in ['mp3', 'aac', 'ogg', 'opus']",
                    "message": "bitrate applies to lossy formats only (mp3, aac, ogg, opus)",
                    "fieldPath": ".bitrate",
                },
            ]
        }
    )

    format: Format = Field(
        description="Output container and codec: mp3, aac (ADTS), flac, wav, ogg (Vorbis), opus (Ogg Opus)."
    )
    quality: Quality = Field(default=Quality.medium, description="Quality tier; `bitrate` overrides it.")
    bitrate: str | None = Field(
        default=None,
        pattern=BITRATE_RE.pattern,
        max_length=5,  # what the pattern allows; bounds the CEL rules' cost estimate
        description="Bitrate override like `192k`, lossy formats only, range checked per codec.",
    )
    normalize: bool = Field(
        default=False, description="EBU R128 loudness normalization to -23 LUFS, -1 dBTP."
    )
    preserveMetadata: bool = Field(default=False, description="Copy the source's tags into the output.")
    sampleRate: SampleRate | None = Field(
        default=None,
        description="Output sample rate in Hz; opus takes 8000, 12000, 16000, 24000 or 48000 only. "
        "Default: the source's rate where the format takes it, else the nearest it does.",
    )
    channels: Channels | None = Field(
        default=None, description="1 (mono) or 2 (stereo). Default: the source's, downmixed to 2 above 2."
    )
    trim: Trim | None = Field(
        default=None,
        description="Extract only from `start` to `end` (seconds). A start past the media's end fails "
        "the job with EXTRACTION_FAILED. A trimmed job is always re-encoded, to cut on the exact sample.",
    )

    @model_validator(mode="after")
    def _fits_the_format(self) -> Output:
        if self.bitrate is not None:
            check_bitrate(self.format, self.bitrate)
        if self.sampleRate is not None:
            check_sample_rate(self.format, self.sampleRate)
        return self


class Options(SpecModel):
    """How the job is named, ordered and reported."""

    filename: str | None = Field(
        default=None,
        max_length=filenames.MAX_RAW_LENGTH,
        description="Output file name without extension; sanitized, never refused: path separators "
        "become `_`, control characters and reserved device names go, Unicode stays, a name ending in "
        "the output's extension does not get it twice. Default: the source's base name, else the job id.",
    )
    priority: Priority = Field(
        default=Priority.normal, description="Admission order: high, normal, low. Never preempts."
    )
    webhook: HttpUrl | None = Field(
        default=None,
        description="Per-job webhook URL; overrides the batch's `webhook`.",
        json_schema_extra={"x-kubernetes-validations": URL_CEL},
    )


class ExtractionJob(SpecModel):
    """One extraction: a source in, an audio file out."""

    source: Source = Field(description="Where the video comes from.")
    output: Output = Field(description="The audio file to produce.")
    options: Options = Field(default_factory=Options, description="Naming, priority and webhook.")


JobIndex = Annotated[int, Field(ge=0, lt=MAX_JOBS, description="A 0-based job index.")]


class BatchSpec(SpecModel):
    """The desired batch: the same body as POST /v1/batch, plus cancellation."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                # The operator builds one Job per entry when the batch is created; later edits
                # could never reach them, so the API server refuses them instead.
                {"rule": "self.jobs == oldSelf.jobs", "message": "jobs are immutable", "fieldPath": ".jobs"},
                {
                    "rule": "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
                    "message": "a cancelled batch cannot be resumed",
                    "fieldPath": ".cancel",
                },
                {
                    "rule": "!has(self.cancelJobs) || self.cancelJobs.all(i, i < size(self.jobs))",
                    "message": "cancelJobs names a job index the batch does not have",
                    "fieldPath": ".cancelJobs",
                },
            ]
        }
    )

    jobs: list[ExtractionJob] = Field(min_length=1, max_length=MAX_JOBS, description="1 to 10 extractions.")
    webhook: HttpUrl | None = Field(
        default=None,
        description="Batch-level webhook URL: job events (unless a job names its own) and batch.completed.",
        json_schema_extra={"x-kubernetes-validations": URL_CEL},
    )
    cancel: bool = Field(
        default=False, description="Set to true to cancel every unfinished job of the batch."
    )
    cancelJobs: list[JobIndex] = Field(
        default_factory=list,
        max_length=MAX_JOBS,
        description="Indexes (0-based) of single jobs to cancel.",
    )

    @model_validator(mode="after")
    def _cancel_indexes_exist(self) -> BatchSpec:
        if any(i >= len(self.jobs) for i in self.cancelJobs):
            raise ValueError("cancelJobs names a job index the batch does not have")
        return self
