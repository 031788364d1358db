from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Max, Q
from django.urls import reverse

from registry import storage

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
model_name_validator = RegexValidator(
    MODEL_NAME_PATTERN,
    "Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit.",
)


class ModelQuerySet(models.QuerySet):
    def visible_to(self, user) -> ModelQuerySet:
        """Public models plus the user's own. Private models of others are
        treated as nonexistent everywhere (404, never 403)."""
        if user is not None and user.is_authenticated:
            return self.filter(Q(public=True) | Q(owner=user))
        return self.filter(public=True)

    def with_latest_number(self) -> ModelQuerySet:
        """Annotate ``latest_number``: the newest ready version, in one query."""
        return self.annotate(latest_number=Max("versions__number", filter=Q(versions__status=Version.Status.READY)))


class Model(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=100, validators=[model_name_validator])
    description = models.TextField(blank=True)
    public = models.BooleanField(default=True)
    # Web origins allowed to load this model's files; empty means any origin.
    allowed_origins = models.JSONField(default=list, blank=True)
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

    input_format = models.CharField(max_length=24, choices=InputFormat.choices, blank=True)
    output_format = models.CharField(max_length=16, choices=OutputFormat.choices, blank=True)
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
    # Quantized variants: {"float16": {"status", "error", "parity", "blobs",
    # "model_json_key", "model_json_sha256"}}, served under /m/…/{ref}/{quantization}/.
    variants = models.JSONField(default=dict, blank=True)
    # Layers models: [{"name", "class_name", "output_shape"}] for choosing a cut.
    layers = models.JSONField(default=list, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    conversion_seconds = models.FloatField(null=True, blank=True)

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

    def pending_variants(self) -> list[str]:
        return sorted(q for q, variant in self.variants.items() if variant.get("status") == "pending")

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


ALIAS_NAME_PATTERN = r"^[a-z][a-z0-9._-]{0,49}$"
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
