"""API of webhooks, per model (its admins) and per organisation (its admins)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from accounts.api import organization_for
from accounts.models import Role
from accounts.permissions import ReadOnlyToken
from registry.api.views import administered_model
from webhooks import services
from webhooks.models import Delivery, Event, Webhook


class WebhookSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uid", read_only=True)
    model = serializers.SerializerMethodField()

    class Meta:
        model = Webhook
        fields = ["id", "url", "events", "model", "active", "created_at"]
        read_only_fields = fields

    def get_model(self, hook: Webhook) -> str | None:
        return f"{hook.owner.username}/{hook.model_name}" if hook.model_name else None


class NewWebhookSerializer(WebhookSerializer):
    secret = serializers.CharField(read_only=True, help_text="Verify deliveries with it (Standard Webhooks).")

    class Meta(WebhookSerializer.Meta):
        fields = [*WebhookSerializer.Meta.fields, "secret"]
        read_only_fields = fields


class WebhookRequestSerializer(serializers.Serializer):
    url = serializers.URLField(max_length=2000)
    secret = serializers.CharField(required=False, allow_blank=True, help_text="whsec_…; made for you if left out")
    events = serializers.ListField(child=serializers.ChoiceField(choices=Event.choices), allow_empty=False)


class DeliverySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uid", read_only=True)
    webhook_id = serializers.CharField(source="message_id", read_only=True)

    class Meta:
        model = Delivery
        fields = ["id", "webhook_id", "event", "status", "attempts", "response_status", "error", "created_at",
                  "last_attempt_at", "delivered_at", "body"]  # fmt: skip
        read_only_fields = fields


PERMISSIONS = [IsAuthenticated, ReadOnlyToken]


def _owner_and_model(request, kwargs):
    """The owner account and model (or None, for an organisation's hooks) the URL names."""
    if "org" in kwargs:
        return organization_for(request, kwargs["org"], Role.ADMIN).account, None
    model = administered_model(request, kwargs["owner"], kwargs["name"])
    return model.owner, model


def _hooks(owner, model):
    hooks = Webhook.objects.filter(owner=owner).select_related("owner")
    return hooks.filter(model=model) if model is not None else hooks.filter(model__isnull=True)


class WebhookList(GenericAPIView):
    permission_classes = PERMISSIONS
    serializer_class = WebhookSerializer

    @extend_schema(responses=WebhookSerializer(many=True))
    def get(self, request, **kwargs):
        owner, model = _owner_and_model(request, kwargs)
        return Response(WebhookSerializer(_hooks(owner, model), many=True).data)

    @extend_schema(request=WebhookRequestSerializer, responses={201: NewWebhookSerializer})
    def post(self, request, **kwargs):
        """A webhook: ``events`` among version.ready, version.failed, alias.moved, model.deleted."""
        owner, model = _owner_and_model(request, kwargs)
        body = WebhookRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        hook = services.create(owner, data["url"], data["events"], request.user, model, data.get("secret", ""))
        return Response(NewWebhookSerializer(hook).data, status=status.HTTP_201_CREATED)


def _hook(request, kwargs) -> Webhook:
    owner, model = _owner_and_model(request, kwargs)
    hook = _hooks(owner, model).filter(uid=kwargs["webhook_id"]).first()
    if hook is None:
        raise Http404("No such webhook.")
    return hook


class WebhookDetail(GenericAPIView):
    permission_classes = PERMISSIONS
    serializer_class = WebhookSerializer

    def get(self, request, **kwargs):
        return Response(WebhookSerializer(_hook(request, kwargs)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, **kwargs):
        _hook(request, kwargs).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


class DeliveryList(GenericAPIView):
    permission_classes = PERMISSIONS
    serializer_class = DeliverySerializer

    @extend_schema(responses=DeliverySerializer(many=True))
    def get(self, request, **kwargs):
        """The hook's deliveries, newest first, with the receiver's status codes."""
        deliveries = _hook(request, kwargs).deliveries.all()[:100]
        return Response(DeliverySerializer(deliveries, many=True).data)


class Redeliver(GenericAPIView):
    permission_classes = PERMISSIONS
    serializer_class = DeliverySerializer

    @extend_schema(request=None, responses={202: DeliverySerializer})
    def post(self, request, **kwargs):
        """Send a delivery again, with the same webhook-id and body."""
        delivery = _hook(request, kwargs).deliveries.filter(uid=kwargs["delivery_id"]).first()
        if delivery is None:
            raise Http404("No such delivery.")
        return Response(DeliverySerializer(services.redeliver(delivery)).data, status=status.HTTP_202_ACCEPTED)
