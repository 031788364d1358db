from __future__ import annotations

import uuid
from datetime import date, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models, transaction
from django.db.models import Max, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from converter import formats
from registry import readcache, storage
from registry.access import visible_filter
from webhooks import services as webhooks
from webhooks.models import Event

# First path segments of Modelport's own pages: an owner (user or organisation)
# with one of these names would have model pages that collide with them.
RESERVED_OWNER_NAMES = frozenset(
    "- api m static media login logout new settings tokens orgs organizations search docs about health".split()
)


def reserved_owner_validator(value: str) -> None:
    if str(value).lower() in RESERVED_OWNER_NAMES:
        raise ValidationError(f"'{value}' is reserved for Modelport's own pages; choose another name.")


def clean_origins(origins) -> list[str]:
    """Each origin as ``scheme://host[:port]``, for CORS lists and access
    links; anything with a path, query or fragment is refused in words."""
    cleaned = []
    for origin in origins:
        parts = urlsplit(origin)
        if (
            parts.scheme not in ("http", "https")
            or not parts.netloc
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            raise ValidationError(f"'{origin}' is not an origin: use scheme://host[:port] only.")
        cleaned.append(f"{parts.scheme}://{parts.netloc}")
    return cleaned


# \Z, not $: "$" also matches before a trailing newline.
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z"
model_name_validator = RegexValidator(
    MODEL_NAME_PATTERN,
    "Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


class ModelQuerySet(models.QuerySet):
    def visible_to(self, user, token=None) -> ModelQuerySet:
        """Public models plus those ``user`` (through ``token``, if any) may
        read: their own and their organisations'. Private models of others are
        treated as nonexistent everywhere (404, never 403)."""
        return self.filter(visible_filter(user, token))

    def with_downloads(self) -> ModelQuerySet:
        """Annotate ``downloads_30d``: loads of any version's model.json in the last 30 days."""
        per_model = (
            DownloadDay.objects.filter(version__model=OuterRef("pk"), day__gte=DownloadDay.window_start())
            .values("version__model")
            .annotate(total=Sum("count"))
            .values("total")
        )
        return self.annotate(downloads_30d=Coalesce(Subquery(per_model), 0))

    def with_latest_number(self) -> ModelQuerySet:
        """Annotate ``latest_number``: the newest ready version, in one query."""
        return self.annotate(latest_number=Max("versions__number", filter=Q(versions__status=Version.Status.READY)))


class Model(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=100, validators=[model_name_validator])
    description = models.TextField(blank=True)
    # The model card: Markdown, rendered sanitised (registry/cards.py).
    readme = models.TextField(blank=True)
    tags = models.JSONField(default=list, blank=True)
    license = models.CharField(max_length=64, blank=True)
    public = models.BooleanField(default=True)
    # Web origins allowed to load this model's files; empty means any origin.
    allowed_origins = models.JSONField(default=list, blank=True)
    # Versions are numbered after this: the last number a deleted model of
    # the same owner and name used, so a numbered URL (served as immutable)
    # never serves different bytes.
    number_floor = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_model_name_per_owner")]
        ordering = ["owner__username", "name"]

    def __str__(self) -> str:
        return self.full_name

    def get_absolute_url(self) -> str:
        return reverse("model-detail", args=[self.owner.username, self.name])

    @property
    def full_name(self) -> str:
        return f"{self.owner.username}/{self.name}"

    def allows_origin(self, origin: str) -> bool:
        return not self.allowed_origins or origin in self.allowed_origins

    def latest_ready(self) -> Version | None:
        return self.versions.filter(status=Version.Status.READY).order_by("-number").first()

    def version_at(self, ref: str) -> Version | None:
        """The ready version a URL's ``ref`` names: a number, ``latest`` or an alias."""
        if ref == "latest":
            return self.latest_ready()
        if ref.isdigit():
            return self.versions.filter(number=int(ref), status=Version.Status.READY).first()
        alias = self.aliases.select_related("version__model__owner").filter(name=ref).first()
        return alias.version if alias else None


class RetiredName(models.Model):
    """The highest version number a deleted model used, per owner and name."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=100)
    last_number = models.PositiveIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="unique_retired_name")]

    def __str__(self) -> str:
        return f"{self.owner_id}/{self.name} (up to {self.last_number})"


class Version(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        CONVERTING = "converting"
        READY = "ready"
        FAILED = "failed"

    class Failure(models.TextChoices):
        NONE = ""
        # The upload itself is at fault: the user must change the file.
        USER = "user"
        # Modelport is at fault (storage down, worker crashed): retrying the
        # same file may work.
        SYSTEM = "system"

    class InputFormat(models.TextChoices):
        KERAS_H5 = "keras-h5", "Keras HDF5 (.h5)"
        KERAS_V3 = "keras-v3", "Keras 3 (.keras)"
        SAVED_MODEL = "saved-model", "TensorFlow SavedModel"
        KERAS_SAVED_MODEL = "keras-saved-model", "Keras SavedModel (tf-keras model.save(dir))"
        TFJS = "tfjs", "TF.js model (model.json + weights)"

    class Quantization(models.TextChoices):
        FLOAT16 = "float16"
        UINT8 = "uint8"
        UINT16 = "uint16"

    class OutputFormat(models.TextChoices):
        LAYERS = "layers-model"
        GRAPH = "graph-model"

    # Variants a version can have: quantized copies, and a graph model of a Keras layers model.
    GRAPH_VARIANT = formats.GRAPH_VARIANT
    VARIANTS = formats.VARIANTS

    FINAL_STATES = (Status.READY, Status.FAILED)

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    failure = models.CharField(max_length=8, choices=Failure.choices, blank=True, default=Failure.NONE)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")

    upload_name = models.CharField(max_length=255)
    upload_size = models.BigIntegerField()
    upload_sha256 = models.CharField(max_length=64)
    upload_key = models.CharField(max_length=512)
    requested_format = models.CharField(max_length=24, choices=InputFormat.choices, blank=True)
    # SavedModels: which signature becomes the graph model (empty: serving_default).
    signature = models.CharField(max_length=128, blank=True)
    # Companion files sent beside the model file (a zip of them, for the sandbox to check).
    companions_upload_key = models.CharField(max_length=512, blank=True)

    input_format = models.CharField(max_length=24, choices=InputFormat.choices, blank=True)
    output_format = models.CharField(max_length=16, choices=OutputFormat.choices, blank=True)
    # Why a Keras upload became a graph model (what TF.js layers cannot express).
    graph_reason = models.TextField(blank=True)
    converter_version = models.CharField(max_length=32, blank=True)
    # The converted model: its model.json (weight paths point at the
    # model's content-addressed blobs) and those blobs, in manifest order.
    model_json_key = models.CharField(max_length=512, blank=True)
    model_json_sha256 = models.CharField(max_length=64, blank=True)
    blobs = models.JSONField(default=list, blank=True)  # [{"sha256", "size"}]
    attempts = models.PositiveSmallIntegerField(default=0)
    # While converting: the worker renews this; once it passes, the worker
    # is presumed dead and the job may be taken again.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    # TF.js vs TensorFlow on the same inputs: max_abs_error, max_rel_error,
    # atol, rtol, passed, inputs. Set on ready, and on a parity failure.
    parity = models.JSONField(default=dict, blank=True)
    # Variants: {"float16" | "uint8" | "uint16" | "graph": {"status", "error", "parity", "blobs",
    # "model_json_key", "model_json_sha256"}}, served under /m/…/{ref}/{variant}/.
    variants = models.JSONField(default=dict, blank=True)
    # Layers models: [{"name", "class_name", "output_shape"}] for choosing a cut.
    layers = models.JSONField(default=list, blank=True)
    # Companion files served beside model.json (converter/companions.py):
    # [{"name", "size", "sha256", "content_type", "key"}]; and the files of
    # the upload that were not kept, with why: [{"name", "reason"}].
    companions = models.JSONField(default=list, blank=True)
    skipped_files = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    conversion_seconds = models.FloatField(null=True, blank=True)
    # The browser check after ready: {"wasm" | "webgl": {"status": "pending" | "passed" |
    # "failed" | "error" | "skipped", "error", "max_abs_error", "load_ms", "first_predict_ms", …}}.
    backends = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "number"], name="unique_version_number")]
        ordering = ["model", "-number"]

    def __str__(self) -> str:
        return f"{self.model.full_name}@{self.number}"

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATES

    def model_json_path(self, ref: str | None = None, variant: str | None = None) -> str:
        args = [self.model.owner.username, self.model.name, ref or str(self.number)]
        if variant:
            return reverse("serve-variant-file", args=[*args, variant, "model.json"])
        return reverse("serve-file", args=[*args, "model.json"])

    def cut_path(self, layer: str, ref: str | None = None) -> str:
        return reverse("serve-cut", args=[self.model.owner.username, self.model.name, ref or str(self.number), layer])

    @property
    def size(self) -> int:
        """Bytes of weights a browser downloads for this version."""
        return sum(blob["size"] for blob in self.blobs)

    def _held(self, attempt: int | None) -> Version | None:
        """This version's row, locked; with ``attempt``, only while that
        attempt still holds the conversion lease (its fencing token)."""
        rows = Version.objects.select_for_update().filter(pk=self.pk)
        if attempt is not None:
            rows = rows.filter(attempts=attempt, status=self.Status.CONVERTING)
        return rows.first()

    def fail(self, message: str, failure: str, attempt: int | None = None, **facts) -> bool:
        """End the version as failed (and its pending variants with it);
        ``facts`` may set ``parity`` and ``input_format``. Returns False,
        changing nothing, if ``attempt`` no longer holds the lease."""
        with transaction.atomic():
            fresh = self._held(attempt)
            if fresh is None:
                return False
            fresh.status = self.Status.FAILED
            fresh.error = message
            fresh.failure = failure
            fresh.finished_at = timezone.now()
            fresh.lease_expires_at = None
            fresh.parity = facts.get("parity") or fresh.parity
            fresh.input_format = facts.get("input_format") or fresh.input_format
            fresh.variants = {
                quantization: {"status": "failed", "error": "The version itself failed to convert."}
                if variant.get("status") == "pending"
                else variant
                for quantization, variant in fresh.variants.items()
            }
            fresh.save()
            webhooks.emit(Event.VERSION_FAILED, fresh.model, version=fresh)
        return True

    def mark_ready(self, attempt: int, result: dict, published, variants: dict, seconds: float) -> Version | None:
        """Make the converted version visible, if ``attempt`` still holds the
        lease; returns the updated row, or None (the work must be discarded)."""
        with transaction.atomic():
            fresh = self._held(attempt)
            if fresh is None:
                return None
            fresh.status = self.Status.READY
            fresh.input_format = result["input_format"] or fresh.input_format or fresh.requested_format
            fresh.output_format = result["output_format"]
            fresh.graph_reason = result.get("graph_reason", "")
            fresh.converter_version = result["converter_version"]
            fresh.model_json_key = published.model_json_key
            fresh.model_json_sha256 = published.model_json_sha256
            fresh.blobs = published.blobs
            fresh.parity = result["parity"]
            fresh.layers = result["layers"]
            fresh.companions = result.get("companions", [])
            fresh.skipped_files = result.get("skipped_files", [])
            fresh.finished_at = timezone.now()
            fresh.conversion_seconds = round(seconds, 3)
            fresh.error = ""
            fresh.failure = self.Failure.NONE
            fresh.lease_expires_at = None
            fresh.variants = {**fresh.variants, **variants}
            fresh.save()
            fresh.record_blobs([published.blobs, *(v.get("blobs", []) for v in variants.values())])
            webhooks.emit(Event.VERSION_READY, fresh.model, version=fresh)
        return fresh

    def release(self, attempt: int) -> bool:
        """Give the job back to the queue after a system failure (if still ours)."""
        return bool(
            Version.objects.filter(pk=self.pk, attempts=attempt, status=self.Status.CONVERTING).update(
                status=self.Status.PENDING, lease_expires_at=None
            )
        )

    def record_blobs(self, blob_lists: list[list[dict]]) -> None:
        rows = {blob["sha256"]: blob["size"] for blobs in blob_lists for blob in blobs}
        Blob.objects.bulk_create(
            [Blob(model_id=self.model_id, sha256=sha, size=size) for sha, size in rows.items()],
            ignore_conflicts=True,
        )
        readcache.forget_after_commit()  # bulk_create sends no signals

    def pending_variants(self) -> list[str]:
        return sorted(q for q, variant in self.variants.items() if variant.get("status") == "pending")

    def variant_format(self, variant: str) -> str:
        return self.OutputFormat.GRAPH if variant == self.GRAPH_VARIANT else self.output_format

    def tfjs_loader(self, variant: str = "") -> str:
        """The TF.js function that loads this version, or its ``variant``."""
        return "loadGraphModel" if self.variant_format(variant) == self.OutputFormat.GRAPH else "loadLayersModel"

    def graph_variant_refusal(self) -> str:
        """Why this version cannot have a graph variant ('' if it can, or cannot tell yet)."""
        keras = (self.InputFormat.KERAS_H5, self.InputFormat.KERAS_V3)
        if self.input_format and self.input_format not in keras:
            return "A graph variant is made from Keras uploads (.keras or .h5) only."
        if self.output_format == self.OutputFormat.GRAPH:
            return f"Version {self.number} is a graph model already."
        return ""

    def requestable_variants(self) -> list[str]:
        """Variants the owner can still ask for (a failed one may be retried)."""
        return [
            variant
            for variant in self.VARIANTS
            if self.variants.get(variant, {}).get("status") not in ("pending", "ready")
            and (variant != self.GRAPH_VARIANT or not self.graph_variant_refusal())
        ]

    def companion(self, name: str) -> dict | None:
        return next((item for item in self.companions if item["name"] == name), None)

    def ready_variant(self, quantization: str) -> dict | None:
        variant = self.variants.get(quantization)
        return variant if variant and variant.get("status") == "ready" else None


class Blob(models.Model):
    """A weight file a model's versions (or variants) use, stored once by
    content at ``blobs/sha256/<sha256>`` and served at /m/{owner}/{name}/blobs/<sha256>."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="blobs")
    sha256 = models.CharField(max_length=64)
    size = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "sha256"], name="unique_blob_per_model")]

    def __str__(self) -> str:
        return f"{self.model.full_name}@{self.sha256[:12]}"

    @property
    def key(self) -> str:
        return storage.blob_key(self.sha256)


ALIAS_NAME_PATTERN = r"^[a-z][a-z0-9._-]{0,49}\Z"
RESERVED_ALIASES = {"latest", "blobs", "cut"}
alias_name_validator = RegexValidator(
    ALIAS_NAME_PATTERN, "Use 1-50 lowercase letters, digits, '.', '_' or '-', starting with a letter."
)


class Alias(models.Model):
    """A movable name for a version (``production``, ``staging``…); ``latest``
    is automatic and not stored here."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=50, validators=[alias_name_validator])
    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="aliases")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="unique_alias_per_model")]
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.model.full_name}:{self.name}"


class AliasMove(models.Model):
    """The log of an alias: every set, move, rollback and removal."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="alias_moves")
    alias = models.CharField(max_length=50)
    from_version = models.ForeignKey(Version, on_delete=models.SET_NULL, null=True, related_name="+")
    to_version = models.ForeignKey(Version, on_delete=models.SET_NULL, null=True, related_name="+")
    moved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    moved_at = models.DateTimeField(auto_now_add=True)
    rollback = models.BooleanField(default=False)

    class Meta:
        ordering = ["-moved_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.model.full_name}:{self.alias} {self.from_version_id}->{self.to_version_id}"


class Cut(models.Model):
    """A version served cut at a layer (registry/cuts.py), made on first use."""

    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="cuts")
    layer = models.CharField(max_length=255)
    model_json_key = models.CharField(max_length=512)
    model_json_sha256 = models.CharField(max_length=64)
    blobs = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "layer"], name="unique_cut_per_layer")]

    def __str__(self) -> str:
        return f"{self.version}/cut/{self.layer}"


class AccessLink(models.Model):
    """A read-only URL of one model's model.json, pinned to a version or
    following an alias, for browser apps loading a private model without a
    token: ``?access=<id>:<signature>``, which tfjs repeats on every weight
    URL (registry/links.py)."""

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="access_links")
    # A version number or an alias name (including "latest").
    ref = models.CharField(max_length=50)
    # Web origins allowed to use the link; empty means any.
    origins = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.model.full_name}@{self.ref} link {self.uid}"

    @property
    def is_expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def state(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.is_expired else "active"


class DownloadDay(models.Model):
    """Loads of a version's model.json on one day (UTC), counted without
    keeping who loaded it (registry/downloads.py)."""

    version = models.ForeignKey(Version, on_delete=models.CASCADE, related_name="download_days")
    day = models.DateField()
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "day"], name="unique_download_day")]

    WINDOW_DAYS = 30

    def __str__(self) -> str:
        return f"{self.version} {self.day}: {self.count}"

    @classmethod
    def window_start(cls) -> date:
        """The first day counted in "the last 30 days" (today included)."""
        return timezone.now().date() - timedelta(days=cls.WINDOW_DAYS - 1)


class ReadGeneration(models.Model):
    """One row: a number replaced after every write that changes what /m/
    answers, so each process knows when to drop what it remembers
    (registry/readcache.py)."""

    value = models.BigIntegerField()

    def __str__(self) -> str:
        return f"read generation {self.value}"
