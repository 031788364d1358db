"""Access links and the audit log of a model."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import AuditEventSerializer, audit_response
from accounts.models import AuditEvent
from accounts.permissions import request_token
from registry import links
from registry.api.serializers import absolute_url
from registry.api.views import administered_model, writable_model
from registry.models import AccessLink, clean_origins


class AccessLinkRequestSerializer(serializers.Serializer):
    ref = serializers.CharField(max_length=50, help_text="A version number, or an alias (including latest) to follow.")
    ttl_seconds = serializers.IntegerField(min_value=1, max_value=links.MAX_TTL_SECONDS)
    origins = serializers.ListField(
        child=serializers.URLField(), required=False, default=list,
        help_text="Web origins allowed to use the link; empty: any.",
    )  # fmt: skip

    def validate_origins(self, origins: list[str]) -> list[str]:
        return clean_origins(origins)


class AccessLinkSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uid", read_only=True)
    model_url = serializers.SerializerMethodField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)

    class Meta:
        model = AccessLink
        fields = ["id", "ref", "model_url", "origins", "created_by", "created_at", "expires_at", "revoked_at", "state"]
        read_only_fields = fields

    def get_model_url(self, link: AccessLink) -> str:
        return absolute_url(self.context["request"], links.url_path(link))


class AccessLinkList(APIView):
    @extend_schema(responses=AccessLinkSerializer(many=True))
    def get(self, request, owner: str, name: str):
        """The model's access links, newest first (writers)."""
        model = writable_model(request, owner, name)
        return Response(AccessLinkSerializer(model.access_links.all(), many=True, context={"request": request}).data)

    @extend_schema(request=AccessLinkRequestSerializer, responses={201: AccessLinkSerializer})
    def post(self, request, owner: str, name: str):
        """A read-only link to the model's model.json for a browser app: no header,
        no token; it opens that model.json and its weights only, until it expires."""
        model = writable_model(request, owner, name)
        body = AccessLinkRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        link = links.mint(
            model, data["ref"], data["ttl_seconds"], data["origins"], request.user, request_token(request)
        )
        return Response(AccessLinkSerializer(link, context={"request": request}).data, status=status.HTTP_201_CREATED)


class AccessLinkDetail(APIView):
    @extend_schema(responses={204: None})
    def delete(self, request, owner: str, name: str, link_id):
        """Revoke a link: it stops working at once."""
        model = writable_model(request, owner, name)
        link = model.access_links.filter(uid=link_id).first()
        if link is None:
            raise Http404(f"Model '{model.full_name}' has no such access link.")
        links.revoke(link, request.user, request_token(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ModelAudit(APIView):
    @extend_schema(responses=AuditEventSerializer(many=True))
    def get(self, request, owner: str, name: str):
        """The model's audit log, newest first (its admins)."""
        model = administered_model(request, owner, name)
        return audit_response(AuditEvent.objects.filter(model=model))
