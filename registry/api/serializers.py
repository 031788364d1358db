from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from rest_framework import serializers

from converter import companions as companion_rules
from converter.formats import BROWSER_BACKENDS
from converter.modeljson import sri
from registry import cards, downloads
from registry.models import Model, Version, clean_origins, model_name_validator


def absolute_url(request, path: str) -> str:
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL + path
    return request.build_absolute_uri(path)


def node_snippet(node: str) -> str:
    """A graph model's intermediate output, e.g. as a feature extractor."""
    return f"const features = await model.executeAsync(inputs, '{node}');"


def load_snippet(version: Version, url: str, variant: str = "") -> str:
    return f"const model = await tf.{version.tfjs_loader(variant)}('{url}');"


PARITY_FIGURES = ("max_abs_error", "max_rel_error", "atol", "rtol")


def backend_rows(version: Version, variant: dict | None = None) -> list[dict]:
    """Where the version (or one of its variants) was run against TensorFlow:
    TF.js' cpu backend in Node (the check it must pass to be ready), then
    Chromium's backends."""
    if not version.is_ready or (variant is not None and variant.get("status") != "ready"):
        return []
    checked = variant if variant is not None else {"parity": version.parity, "backends": version.backends}
    parity, backends = checked.get("parity") or {}, checked.get("backends") or {}
    if parity.get("reference") == "none":
        cpu = {"status": "skipped", "error": "There is no TensorFlow original to compare with."}
    else:
        cpu = {"status": "passed" if parity.get("passed") else "failed", "error": ""}
        cpu.update({key: parity[key] for key in PARITY_FIGURES if key in parity})
    rows = [{"name": "cpu", "runtime": "node", **cpu}]
    for name in BROWSER_BACKENDS:
        if name in backends:
            rows.append({"name": name, "runtime": "chromium", "error": "", **_unstuck(backends[name])})
    return rows


def _unstuck(outcome: dict) -> dict:
    """A check still pending long after its time limit: its worker died."""
    since = parse_datetime(str(outcome.get("since") or "")) if outcome.get("status") == "pending" else None
    if since is not None and timezone.now() - since > timedelta(seconds=4 * settings.BROWSER_CHECK_SECONDS):
        return {**outcome, "status": "error", "error": "The browser check did not finish (its worker stopped)."}
    return outcome


class VersionSerializer(serializers.ModelSerializer):
    format = serializers.CharField(source="output_format", read_only=True)
    input_format = serializers.ChoiceField(
        choices=Version.InputFormat.choices, allow_blank=True, read_only=True,
        help_text="The upload's format as detected; empty until the conversion has read it.",
    )  # fmt: skip
    upload = serializers.SerializerMethodField()
    model_url = serializers.SerializerMethodField()
    snippet = serializers.SerializerMethodField()
    variants = serializers.SerializerMethodField()
    size = serializers.IntegerField(read_only=True, help_text="Bytes of weights a browser downloads.")
    downloads_30d = serializers.SerializerMethodField(help_text="Loads of this version's model.json, last 30 days.")
    backends = serializers.SerializerMethodField(
        help_text="Per TF.js backend (cpu in Node; wasm and webgl in headless Chromium): status (passed, failed, "
        "error, skipped, pending), parity figures and, in Chromium, load_ms and first_predict_ms."
    )
    model_json_integrity = serializers.SerializerMethodField(
        help_text="Subresource Integrity of the numbered model.json (sha256-<base64>), for /m/-/verify.mjs."
    )
    companions = serializers.SerializerMethodField(
        help_text="Files served beside model.json (metadata.json, labels.txt, …): name, url, size, sha256, "
        "integrity, content_type."
    )
    skipped_files = serializers.SerializerMethodField(help_text="Files of the upload that were not kept, and why.")

    class Meta:
        model = Version
        fields = [
            "number", "status", "error", "failure", "format", "graph_reason", "input_format", "signature",
            "converter_version",
            "upload", "size", "model_url", "snippet", "created_at", "started_at", "finished_at",
            "conversion_seconds", "attempts", "parity", "backends", "variants", "downloads_30d",
            "model_json_integrity", "companions", "skipped_files",
        ]  # fmt: skip
        read_only_fields = fields

    def get_downloads_30d(self, version: Version) -> int:
        known = self.context.get("downloads")  # for a list: one query for all its versions
        if known is None:
            known = downloads.totals([version.pk])
        return known.get(version.pk, 0)

    def get_backends(self, version: Version) -> list[dict]:
        return backend_rows(version)

    def get_upload(self, version: Version) -> dict:
        return {"name": version.upload_name, "size": version.upload_size, "sha256": version.upload_sha256}

    def get_model_url(self, version: Version) -> str | None:
        if not version.is_ready:
            return None
        return absolute_url(self.context["request"], version.model_json_path())

    def get_snippet(self, version: Version) -> str | None:
        url = self.get_model_url(version)
        return load_snippet(version, url) if url else None

    def get_model_json_integrity(self, version: Version) -> str | None:
        return sri(version.model_json_sha256) if version.is_ready else None

    def get_companions(self, version: Version) -> list[dict]:
        if not version.is_ready:
            return []
        request = self.context["request"]
        base = version.model_json_path().removesuffix("model.json")
        return [
            {
                "name": item["name"],
                "url": absolute_url(request, base + item["name"]),
                "size": item["size"],
                "sha256": item["sha256"],
                "integrity": sri(item["sha256"]),
                "content_type": item["content_type"],
            }
            for item in version.companions
        ]

    def get_skipped_files(self, version: Version) -> list[dict]:
        return version.skipped_files

    def get_variants(self, version: Version) -> list[dict]:
        request = self.context["request"]
        rows = []
        for name, variant in sorted(version.variants.items()):
            ready = variant.get("status") == "ready" and version.is_ready
            url = absolute_url(request, version.model_json_path(variant=name)) if ready else None
            rows.append(
                {
                    "variant": name,
                    "quantization": None if name == Version.GRAPH_VARIANT else name,
                    "format": version.variant_format(name) or None,
                    "status": variant.get("status"),
                    "error": variant.get("error", ""),
                    "parity": variant.get("parity") or {},
                    "size": sum(blob["size"] for blob in variant.get("blobs", [])),
                    "model_url": url,
                    "model_json_integrity": sri(variant["model_json_sha256"]) if url else None,
                    "snippet": load_snippet(version, url, name) if url else None,
                    "backends": backend_rows(version, variant) if name == Version.GRAPH_VARIANT else [],
                }
            )
        return rows


# The multipart parts tf.io.http sends (tfjs-core io/http.ts), and where they land.
TFJS_SAVE_PARTS = {"model.json": "saved_model_json", "model.weights.bin": "saved_weights"}


class VersionUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=True, required=False,
        help_text="The model: .h5, .keras, or a SavedModel / TF.js model as .zip/.tar.gz",
    )  # fmt: skip
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), required=False,
        help_text="Instead of `file`: a model directory's files (e.g. a SavedModel), with `paths`.",
    )  # fmt: skip
    paths = serializers.ListField(
        child=serializers.CharField(max_length=1024), required=False,
        help_text="The relative path of each of `files`, in the same order (e.g. variables/variables.index).",
    )  # fmt: skip
    format = serializers.ChoiceField(
        choices=Version.InputFormat.choices, required=False, allow_blank=True,
        help_text="Override format detection.",
    )  # fmt: skip
    signature = serializers.RegexField(
        r"^[A-Za-z0-9_.-]{1,128}$", required=False, allow_blank=True,
        help_text="SavedModel signature to convert (default serving_default).",
    )  # fmt: skip
    variants = serializers.ListField(
        child=serializers.ChoiceField(choices=Version.VARIANTS), required=False,
        help_text="Variants to make as well (repeat the field for several): quantized copies (float16, uint8, "
        "uint16), and `graph`, a TF.js graph model of a Keras upload beside its layers model.",
    )  # fmt: skip

    companions = serializers.ListField(
        child=serializers.FileField(), required=False,
        help_text="Companion files to serve beside model.json (metadata.json, labels.txt, a vocabulary…): "
        f"{', '.join('.' + ext for ext in companion_rules.CONTENT_TYPES)}, at most {companion_rules.MAX_COUNT}, "
        f"{companion_rules.MAX_BYTES // 1024**2} MiB each. A TF.js model's folder or archive may simply contain them.",
    )  # fmt: skip

    def get_fields(self):
        fields = super().get_fields()
        # What TF.js sends from a page: model.save(tf.io.http(url)) posts these two parts.
        # (A source without dots: DRF would read "model.json" as a nested field.)
        fields["model.json"] = serializers.FileField(
            source="saved_model_json", required=False,
            help_text="Instead of `file`: a model saved with TF.js' tf.io.http (its model.json part).",
        )  # fmt: skip
        fields["model.weights.bin"] = serializers.FileField(
            source="saved_weights", required=False, allow_empty_file=True,
            help_text="With `model.json`: the weights tf.io.http sends.",
        )  # fmt: skip
        return fields

    def validate(self, data: dict) -> dict:
        saved = [(name, data.pop(source)) for name, source in TFJS_SAVE_PARTS.items() if data.get(source)]
        if saved and saved[0][0] != "model.json":
            raise serializers.ValidationError("`model.weights.bin` was sent without its `model.json`.")
        if saved:
            if data.get("file") or data.get("files"):
                raise serializers.ValidationError(
                    "Send a model saved by tf.io.http, or `file`, or `files`: one of them."
                )
            return {**data, "files": [part for _, part in saved], "paths": [name for name, _ in saved]}
        if bool(data.get("file")) == bool(data.get("files")):
            raise serializers.ValidationError(
                "Send either one `file`, or a directory as `files` with `paths` (or a model saved with tf.io.http)."
            )
        if data.get("files") and len(data["files"]) != len(data.get("paths", [])):
            raise serializers.ValidationError("Send one `paths` entry (the relative path) for each of `files`.")
        return data


class VariantRequestSerializer(serializers.Serializer):
    variant = serializers.ChoiceField(
        choices=Version.VARIANTS, required=False, help_text="float16, uint8, uint16, or graph."
    )
    quantization = serializers.ChoiceField(
        choices=Version.Quantization.choices, required=False, help_text="The same as `variant`, for quantizations."
    )

    def validate(self, data: dict) -> dict:
        if bool(data.get("variant")) == bool(data.get("quantization")):
            raise serializers.ValidationError("Send one `variant` (float16, uint8, uint16 or graph).")
        return {"variant": data.get("variant") or data["quantization"]}


class ModelSerializer(serializers.ModelSerializer):
    owner = serializers.CharField(
        source="owner.username", required=False,
        help_text="On create: the user or organisation to own the model (default: you).",
    )  # fmt: skip
    name = serializers.CharField(max_length=100, validators=[model_name_validator])
    full_name = serializers.CharField(read_only=True)
    latest_version = serializers.SerializerMethodField()
    latest_url = serializers.SerializerMethodField()
    downloads_30d = serializers.SerializerMethodField(help_text="Loads of any version's model.json, last 30 days.")
    allowed_origins = serializers.ListField(
        child=serializers.URLField(), required=False,
        help_text="Origins (scheme://host[:port]) allowed to load the model's files; empty: any origin.",
    )  # fmt: skip
    readme = serializers.CharField(
        required=False, allow_blank=True, max_length=cards.MAX_README_CHARS, trim_whitespace=False,
        help_text="The model card, in Markdown.",
    )  # fmt: skip
    readme_html = serializers.SerializerMethodField(help_text="The model card rendered and sanitised.")
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    license = serializers.CharField(required=False, allow_blank=True, max_length=64, help_text="e.g. apache-2.0")

    class Meta:
        model = Model
        fields = [
            "owner",
            "name",
            "full_name",
            "description",
            "readme",
            "readme_html",
            "tags",
            "license",
            "public",
            "allowed_origins",
            "latest_version",
            "latest_url",
            "downloads_30d",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "full_name",
            "readme_html",
            "downloads_30d",
            "latest_version",
            "latest_url",
            "created_at",
            "updated_at",
        ]

    def validate_allowed_origins(self, origins: list[str]) -> list[str]:
        return clean_origins(origins)

    def validate_tags(self, tags: list[str]) -> list[str]:
        try:
            return cards.clean_tags(tags)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def get_readme_html(self, model: Model) -> str:
        return cards.render(model.readme) if model.readme else ""

    def get_downloads_30d(self, model: Model) -> int:
        if hasattr(model, "downloads_30d"):  # from a with_downloads() queryset
            return model.downloads_30d
        return sum(downloads.totals(list(model.versions.values_list("pk", flat=True))).values())

    def get_latest_version(self, model: Model) -> int | None:
        if not hasattr(model, "latest_number"):  # not from a with_latest_number() queryset
            latest = model.latest_ready()
            model.latest_number = latest.number if latest else None
        return model.latest_number

    def get_latest_url(self, model: Model) -> str | None:
        if self.get_latest_version(model) is None:
            return None
        path = reverse("serve-file", args=[model.owner.username, model.name, "latest", "model.json"])
        return absolute_url(self.context["request"], path)


class ModelUpdateSerializer(ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    name = serializers.CharField(read_only=True)


class AliasSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    version = serializers.IntegerField(source="version.number", read_only=True)
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    automatic = serializers.BooleanField(read_only=True, default=False)
    model_url = serializers.SerializerMethodField()

    def get_model_url(self, alias) -> str:
        return absolute_url(self.context["request"], alias.version.model_json_path(alias.name))


class AliasMoveRequestSerializer(serializers.Serializer):
    version = serializers.IntegerField(min_value=1)


class AliasMoveSerializer(serializers.Serializer):
    alias = serializers.CharField()
    from_version = serializers.IntegerField(source="from_version.number", allow_null=True, default=None)
    to_version = serializers.IntegerField(source="to_version.number", allow_null=True, default=None)
    moved_by = serializers.CharField(source="moved_by.username", allow_null=True, default=None)
    moved_at = serializers.DateTimeField()
    rollback = serializers.BooleanField()


class TensorSerializer(serializers.Serializer):
    name = serializers.CharField()
    shape = serializers.JSONField(allow_null=True, help_text="Dimensions; null where any size goes (the batch)")
    dtype = serializers.CharField()


class SummaryLayerSerializer(serializers.Serializer):
    name = serializers.CharField()
    class_name = serializers.CharField()
    output_shape = serializers.JSONField(allow_null=True)
    parameters = serializers.IntegerField()
    cut_bytes = serializers.IntegerField(help_text="Weight bytes a cut at this layer downloads")


class SummarySerializer(serializers.Serializer):
    parameters = serializers.IntegerField()
    weight_bytes = serializers.IntegerField()
    inputs = TensorSerializer(many=True)
    outputs = TensorSerializer(many=True)
    layers = SummaryLayerSerializer(many=True, help_text="Top-level layers (layers models; empty for graph models)")
    more_layers = serializers.IntegerField(help_text="Layers left out of `layers` (very large models)")


class LayerSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="A layer (layers models) or a named node (graph models)")
    class_name = serializers.CharField(help_text="The layer's class, or the node's op")
    output_shape = serializers.JSONField(allow_null=True)
    cut_url = serializers.CharField(allow_null=True, help_text="Layers models: model.json of the model cut here")
    snippet = serializers.CharField(help_text="How to get this layer's or node's output in TF.js")
