"""API of accounts: tokens, organisations and members, audit logs.

Managing tokens and organisations needs a sign-in session or a write token
without limits: a token limited to some models must not be able to mint a
token without those limits.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.models import ROLE_RANK, AccessToken, AuditEvent, Membership, Organization, Role
from accounts.permissions import ManagesAccount, request_token
from registry.access import reachable_filter
from registry.models import Model


class TokenSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uid", read_only=True)
    prefix = serializers.CharField(source="token_key", read_only=True, help_text="The token's first characters.")
    models = serializers.SerializerMethodField()
    organization = serializers.CharField(source="organization.name", allow_null=True, read_only=True, default=None)
    expires_at = serializers.DateTimeField(source="expiry", read_only=True, allow_null=True)
    created_at = serializers.DateTimeField(source="created", read_only=True)
    expired = serializers.BooleanField(source="is_expired", read_only=True)

    class Meta:
        model = AccessToken
        fields = ["id", "name", "prefix", "scope", "models", "organization", "expires_at", "expired", "created_at",
                  "last_used_at"]  # fmt: skip
        read_only_fields = fields

    def get_models(self, token: AccessToken) -> list[str] | None:
        if not token.limited_to_models:
            return None
        return sorted(model.full_name for model in token.limited_models.select_related("owner"))


class NewTokenSerializer(TokenSerializer):
    token = serializers.CharField(read_only=True, help_text="The secret: shown this once, stored only as a hash.")

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class TokenRequestSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    scope = serializers.ChoiceField(choices=AccessToken.Scope.choices, default=AccessToken.Scope.WRITE)
    models = serializers.ListField(
        child=serializers.RegexField(r"^[^/]+/[^/]+$"), required=False, allow_empty=False,
        help_text="Limit the token to these models (owner/name).",
    )  # fmt: skip
    organization = serializers.CharField(required=False, help_text="Limit the token to this organisation's models.")
    expires_in_days = serializers.IntegerField(min_value=1, max_value=3660, required=False)

    def validate(self, data: dict) -> dict:
        user = self.context["request"].user
        if "organization" in data:
            organization = Organization.objects.filter(account__username=data["organization"]).first()
            if organization is None or organization.role_of(user) is None:
                raise serializers.ValidationError(
                    {"organization": f"You are not a member of '{data['organization']}'."}
                )
            data["organization"] = organization
        if "models" in data:
            found = {}
            # Only models the user owns or whose organisation they belong to: a token
            # limited to someone else's public model would grant nothing and log into their audit.
            visible = Model.objects.filter(reachable_filter(user)).select_related("owner")
            for full_name in data["models"]:
                owner, name = full_name.split("/")
                model = visible.filter(owner__username=owner, name=name).first()
                if model is None:
                    raise serializers.ValidationError({"models": f"No model '{full_name}'."})
                found[model.pk] = model
            data["models"] = list(found.values())
        return data


class TokenList(GenericAPIView):
    permission_classes = [ManagesAccount]
    serializer_class = TokenSerializer

    def get_queryset(self):
        return AccessToken.objects.filter(user=self.request.user).select_related("organization__account")

    @extend_schema(responses=TokenSerializer(many=True), operation_id="tokens_list")
    def get(self, request):
        """Your tokens (never their secrets)."""
        return Response(TokenSerializer(self.get_queryset(), many=True).data)

    @extend_schema(request=TokenRequestSerializer, responses={201: NewTokenSerializer})
    def post(self, request):
        """A new token; the response holds its secret, shown this once."""
        body = TokenRequestSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        data = body.validated_data
        token, key = services.create_token(
            request.user,
            data["name"],
            data["scope"],
            models=data.get("models"),
            organization=data.get("organization"),
            expires_in_days=data.get("expires_in_days"),
            actor_token=request_token(request),
        )
        token.token = key
        return Response(NewTokenSerializer(token).data, status=status.HTTP_201_CREATED)


class TokenDetail(APIView):
    permission_classes = [ManagesAccount]

    def _token(self, request, token_id) -> AccessToken:
        token = AccessToken.objects.filter(user=request.user, uid=token_id).first()
        if token is None:
            raise Http404("You have no such token.")
        return token

    @extend_schema(responses=TokenSerializer)
    def get(self, request, token_id):
        return Response(TokenSerializer(self._token(request, token_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, token_id):
        """Revoke a token: it stops working at once."""
        services.revoke_token(self._token(request, token_id), request.user, request_token(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MemberSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]
        read_only_fields = fields


class OrganizationSerializer(serializers.ModelSerializer):
    name = serializers.CharField(max_length=150)
    members = serializers.SerializerMethodField()
    your_role = serializers.SerializerMethodField()
    models = serializers.SerializerMethodField()

    class Meta:
        model = Organization
        fields = ["name", "description", "created_at", "your_role", "members", "models"]
        read_only_fields = ["created_at", "your_role", "members", "models"]

    def get_your_role(self, organization: Organization) -> str | None:
        return organization.role_of(self.context["request"].user)

    def get_members(self, organization: Organization) -> list[dict] | None:
        """Members are listed to members only (and not through a token limited elsewhere)."""
        token = request_token(self.context["request"])
        if token is not None and (token.limited_to_models or token.organization_id not in (None, organization.pk)):
            return None
        if self.get_your_role(organization) is None:
            return None
        return MemberSerializer(organization.memberships.select_related("user"), many=True).data

    def get_models(self, organization: Organization) -> list[str]:
        request = self.context["request"]
        visible = Model.objects.visible_to(request.user, request_token(request)).filter(owner=organization.account)
        return [f"{organization.name}/{name}" for name in visible.values_list("name", flat=True)]


def find_organization(name: str) -> Organization:
    organization = Organization.objects.select_related("account").filter(account__username=name).first()
    if organization is None:
        raise Http404(f"No organisation '{name}'.")
    return organization


def organization_for(request, name: str, need: str) -> Organization:
    organization = find_organization(name)
    role = organization.role_of(request.user)
    if need != Role.READ and (role is None or ROLE_RANK[role] < ROLE_RANK[need]):
        raise PermissionDenied(f"This needs the {need} role in {organization.name}.")
    token = request_token(request)
    if token is not None and token.organization_id not in (None, organization.pk) and need != Role.READ:
        raise PermissionDenied(f"This token is limited to the organisation {token.organization.name}.")
    if token is not None and token.limited_to_models and need != Role.READ:
        raise PermissionDenied("This token is limited to some models; it cannot act for a whole organisation.")
    return organization


class OrganizationList(GenericAPIView):
    permission_classes = [ManagesAccount]
    serializer_class = OrganizationSerializer

    @extend_schema(responses=OrganizationSerializer(many=True), operation_id="orgs_list")
    def get(self, request):
        """The organisations you are a member of."""
        mine = Organization.objects.filter(memberships__user=request.user).select_related("account")
        return Response(OrganizationSerializer(mine, many=True, context={"request": request}).data)

    @extend_schema(responses={201: OrganizationSerializer})
    def post(self, request):
        """A new organisation, with you as its admin."""
        body = OrganizationSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        organization = services.create_organization(
            body.validated_data["name"], request.user, body.validated_data.get("description", "")
        )
        return Response(OrganizationSerializer(organization, context={"request": request}).data, status=201)


class OrganizationDetail(GenericAPIView):
    permission_classes = [permissions.AllowAny]
    serializer_class = OrganizationSerializer

    def get(self, request, org: str):
        """An organisation: its models you can see, and its members if you are one."""
        organization = find_organization(org)
        return Response(OrganizationSerializer(organization, context={"request": request}).data)


class MemberRequestSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class MemberDetail(APIView):
    permission_classes = [ManagesAccount]

    @extend_schema(request=MemberRequestSerializer, responses={200: MemberSerializer, 201: MemberSerializer})
    def put(self, request, org: str, username: str):
        """Add a member or change their role (org admins)."""
        organization = organization_for(request, org, Role.ADMIN)
        body = MemberRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        membership, created = services.set_member(organization, username, body.validated_data["role"], request.user)
        return Response(MemberSerializer(membership).data, status=201 if created else 200)

    @extend_schema(responses={204: None})
    def delete(self, request, org: str, username: str):
        """Remove a member (org admins; members may leave)."""
        organization = find_organization(org)
        if username != request.user.username:
            organization = organization_for(request, org, Role.ADMIN)
        elif organization.role_of(request.user) is None:
            raise Http404(f"'{username}' is not a member of {organization.name}.")
        services.remove_member(organization, username, request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor.username", allow_null=True, default=None)
    owner = serializers.CharField(source="owner.username")
    model = serializers.SerializerMethodField()
    token = serializers.CharField(source="token_key", help_text="The prefix of the token used, if any.")

    class Meta:
        model = AuditEvent
        fields = ["created_at", "actor", "token", "action", "owner", "model", "detail"]
        read_only_fields = fields

    def get_model(self, event: AuditEvent) -> str | None:
        return f"{event.owner.username}/{event.model_name}" if event.model_name else None


AUDIT_PAGE = 200


def audit_response(events) -> Response:
    rows = events.select_related("actor", "owner")[:AUDIT_PAGE]
    return Response(AuditEventSerializer(rows, many=True).data)


class OrganizationAudit(APIView):
    permission_classes = [permissions.IsAuthenticated]

    @extend_schema(responses=AuditEventSerializer(many=True))
    def get(self, request, org: str):
        """The organisation's audit log, newest first (org admins)."""
        organization = organization_for(request, org, Role.ADMIN)
        return audit_response(AuditEvent.objects.filter(owner=organization.account))


class AccountAudit(APIView):
    permission_classes = [ManagesAccount]

    @extend_schema(responses=AuditEventSerializer(many=True))
    def get(self, request):
        """Your own account's audit log: your models, tokens and links."""
        return audit_response(AuditEvent.objects.filter(owner=request.user))
