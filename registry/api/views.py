from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, permissions, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from accounts.permissions import request_token
from registry import downloads, services, summary
from registry.access import Level, model_level, writable_owners
from registry.api.serializers import (
    LayerSerializer,
    ModelSerializer,
    ModelUpdateSerializer,
    SummarySerializer,
    VariantRequestSerializer,
    VersionSerializer,
    VersionUploadSerializer,
    absolute_url,
    node_snippet,
)
from registry.models import Model, Version
from registry.search import search

NEEDED_ROLE = {Level.WRITE: "write", Level.ADMIN: "admin"}


def model_for(request, owner: str, name: str, need: Level = Level.READ) -> Model:
    """The model, if the request may do ``need`` to it: 404 if it cannot even
    see it, 403 (in words) if it can see but not act."""
    token = request_token(request)
    model = (
        Model.objects.visible_to(request.user, token)
        .select_related("owner__organization")
        .filter(owner__username=owner, name=name)
        .first()
    )
    if model is None:
        raise Http404(f"No model '{owner}/{name}'.")
    level = model_level(request.user, token, model)
    if level < need:
        raise PermissionDenied(refusal(request, model, need))
    return model


def refusal(request, model: Model, need: Level) -> str:
    token = request_token(request)
    if token is not None and model_level(request.user, None, model) >= need:
        return f"This token ('{token.name}') cannot change '{model.full_name}': its scope or limits do not cover it."
    if hasattr(model.owner, "organization"):
        return f"Changing '{model.full_name}' needs the {NEEDED_ROLE[need]} role in {model.owner.username}."
    return f"Only {model.owner.username} can change '{model.full_name}'."


def visible_model(request, owner: str, name: str) -> Model:
    return model_for(request, owner, name, Level.READ)


def writable_model(request, owner: str, name: str) -> Model:
    return model_for(request, owner, name, Level.WRITE)


def administered_model(request, owner: str, name: str) -> Model:
    return model_for(request, owner, name, Level.ADMIN)


class OptionalPagination(PageNumberPagination):
    """Pages only when asked (``?page=``), so the plain list stays what
    existing clients read."""

    page_size = 24
    page_size_query_param = "page_size"
    max_page_size = 100

    def paginate_queryset(self, queryset, request, view=None):
        if "page" not in request.query_params and "page_size" not in request.query_params:
            return None
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {"oneOf": [schema, super().get_paginated_response_schema(schema)]}


class ModelList(generics.ListCreateAPIView):
    serializer_class = ModelSerializer
    pagination_class = OptionalPagination

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Words to find in name, description, tags or owner"),
            OpenApiParameter("tag", str, description="Only models with this tag"),
            OpenApiParameter(
                "output_format",
                str,
                description="Only models with a ready version of this format (layers-model, graph-model)",
            ),
            OpenApiParameter(
                "ordering", str, enum=["recent", "downloads", "name"], description="recent (default), downloads, name"
            ),
            OpenApiParameter("page", int, description="Ask for a page (then the answer has count/next/results)"),
        ]
    )
    def get(self, request, *args, **kwargs):
        """Models you can see, searched and filtered."""
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        models = Model.objects.visible_to(self.request.user, request_token(self.request))
        return search(models, self.request.query_params).select_related("owner").with_latest_number()

    def perform_create(self, serializer):
        data = serializer.validated_data
        user, token = self.request.user, request_token(self.request)
        wanted = data.get("owner", {}).get("username") or user.username
        owner = next((account for account in writable_owners(user, token) if account.username == wanted), None)
        if owner is None:
            if token is not None and wanted == user.username:
                raise PermissionDenied(f"This token ('{token.name}') cannot create models.")
            raise PermissionDenied(f"You cannot create models in '{wanted}': that needs the write role there.")
        serializer.instance = services.create_model(
            owner,
            data["name"],
            data.get("description", ""),
            data.get("public", True),
            data.get("allowed_origins", []),
            actor=user,
            token=token,
        )


class ModelDetail(generics.RetrieveUpdateDestroyAPIView):
    def get_serializer_class(self):
        return ModelSerializer if self.request.method == "GET" else ModelUpdateSerializer

    def get_object(self):
        need = Level.READ if self.request.method in permissions.SAFE_METHODS else Level.ADMIN
        return model_for(self.request, self.kwargs["owner"], self.kwargs["name"], need)

    def perform_update(self, serializer):
        serializer.instance = services.update_model(
            serializer.instance, serializer.validated_data, self.request.user, request_token(self.request)
        )

    def perform_destroy(self, instance: Model) -> None:
        services.delete_model(instance, self.request.user, request_token(self.request))


class VersionList(generics.ListAPIView):
    serializer_class = VersionSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        model = visible_model(self.request, self.kwargs["owner"], self.kwargs["name"])
        return model.versions.select_related("model__owner")

    def list(self, request, *args, **kwargs):
        versions = list(self.get_queryset())
        context = {**self.get_serializer_context(), "downloads": downloads.totals([v.pk for v in versions])}
        return Response(VersionSerializer(versions, many=True, context=context).data)

    @extend_schema(request=VersionUploadSerializer, responses={202: VersionSerializer})
    def post(self, request, owner: str, name: str):
        model = writable_model(request, owner, name)
        upload = VersionUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        if data.get("files"):
            file, filename = services.pack_directory(data["files"], data["paths"])
        else:
            file, filename = data["file"], data["file"].name
        version = services.upload_version(
            model,
            request.user,
            file,
            filename,
            data.get("format", ""),
            data.get("variants", []),
            data.get("signature", ""),
            token=request_token(request),
            companion_files=data.get("companions", []),
        )
        return Response(VersionSerializer(version, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


def find_version(model: Model, number: int) -> Version:
    version = model.versions.select_related("model__owner").filter(number=number).first()
    if version is None:
        raise Http404(f"Model '{model.full_name}' has no version {number}.")
    return version


class VersionDetail(generics.RetrieveAPIView):
    serializer_class = VersionSerializer

    def get_object(self) -> Version:
        model = visible_model(self.request, self.kwargs["owner"], self.kwargs["name"])
        return find_version(model, self.kwargs["number"])


class VariantCreate(generics.GenericAPIView):
    serializer_class = VariantRequestSerializer

    @extend_schema(request=VariantRequestSerializer, responses={202: VersionSerializer})
    def post(self, request, owner: str, name: str, number: int):
        """Ask for a variant of a version: quantized (float16, uint8, uint16), or a graph model (graph)."""
        version = find_version(writable_model(request, owner, name), number)
        body = VariantRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.request_variant(
            version, body.validated_data["variant"], request.user, request_token(request)
        )
        return Response(VersionSerializer(version, context={"request": request}).data, status=status.HTTP_202_ACCEPTED)


class VersionLayers(generics.GenericAPIView):
    serializer_class = LayerSerializer

    @extend_schema(responses=LayerSerializer(many=True))
    def get(self, request, owner: str, name: str, number: int):
        """The layers of a layers-model version, to pick a cut (a transfer-learning
        base); for a graph model, its named nodes, to ask for with ``model.execute``."""
        version = find_version(visible_model(request, owner, name), number)
        if version.output_format == Version.OutputFormat.GRAPH:
            layers = [{**node, "cut_url": None, "snippet": node_snippet(node["name"])} for node in version.layers]
        else:
            layers = []
            for layer in version.layers:
                url = absolute_url(request, version.cut_path(layer["name"]))
                layers.append({**layer, "cut_url": url, "snippet": f"const base = await tf.loadLayersModel('{url}');"})
        return Response(LayerSerializer(layers, many=True).data)


class VersionSummary(generics.GenericAPIView):
    serializer_class = SummarySerializer

    def get(self, request, owner: str, name: str, number: int):
        """What the version's model is: its inputs and outputs (names, shapes,
        dtypes), its layers like model.summary() with the weight bytes of a
        cut at each, its parameters and weight bytes."""
        version = find_version(visible_model(request, owner, name), number)
        if not version.is_ready:
            raise services.RegistryError(f"Version {number} is not ready: it has no model yet.", status=409)
        return Response(SummarySerializer(summary.summarise(version)).data)
