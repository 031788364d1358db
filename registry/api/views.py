from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, permissions, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from registry import services
from registry.api.serializers import (
    LayerSerializer,
    ModelSerializer,
    ModelUpdateSerializer,
    VariantRequestSerializer,
    VersionSerializer,
    VersionUploadSerializer,
    absolute_url,
    node_snippet,
)
from registry.models import Model, Version


def visible_model(request, owner: str, name: str) -> Model:
    model = (
        Model.objects.visible_to(request.user).select_related("owner").filter(owner__username=owner, name=name).first()
    )
    if model is None:
        raise Http404(f"No model '{owner}/{name}'.")
    return model


def owned_model(request, owner: str, name: str) -> Model:
    model = visible_model(request, owner, name)
    if model.owner_id != request.user.id:
        raise PermissionDenied(f"Only {model.owner.username} can change '{model.full_name}'.")
    return model


class ModelList(generics.ListCreateAPIView):
    serializer_class = ModelSerializer

    def get_queryset(self):
        return Model.objects.visible_to(self.request.user).select_related("owner").with_latest_number()

    def perform_create(self, serializer):
        data = serializer.validated_data
        serializer.instance = services.create_model(
            self.request.user,
            data["name"],
            data.get("description", ""),
            data.get("public", True),
            data.get("allowed_origins", []),
        )


class ModelDetail(generics.RetrieveUpdateDestroyAPIView):
    def get_serializer_class(self):
        return ModelSerializer if self.request.method == "GET" else ModelUpdateSerializer

    def get_object(self):
        if self.request.method in permissions.SAFE_METHODS:
            return visible_model(self.request, self.kwargs["owner"], self.kwargs["name"])
        return owned_model(self.request, self.kwargs["owner"], self.kwargs["name"])

    def perform_destroy(self, instance: Model) -> None:
        services.delete_model(instance)


class VersionList(generics.ListAPIView):
    serializer_class = VersionSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        model = visible_model(self.request, self.kwargs["owner"], self.kwargs["name"])
        return model.versions.select_related("model__owner")

    @extend_schema(request=VersionUploadSerializer, responses={202: VersionSerializer})
    def post(self, request, owner: str, name: str):
        model = owned_model(request, owner, name)
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
        version = find_version(owned_model(request, owner, name), number)
        body = VariantRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.request_variant(version, body.validated_data["variant"])
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
