"""Aliases: movable names for versions, with a log and one-call rollback."""

from __future__ import annotations

from types import SimpleNamespace

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from registry import services
from registry.api.serializers import AliasMoveRequestSerializer, AliasMoveSerializer, AliasSerializer
from registry.api.views import request_token, visible_model, writable_model
from registry.models import alias_name_validator


class AliasList(APIView):
    @extend_schema(responses=AliasSerializer(many=True))
    def get(self, request, owner: str, name: str):
        """All aliases of a model, including the automatic ``latest``."""
        model = visible_model(request, owner, name)
        aliases = list(model.aliases.select_related("version__model__owner"))
        latest = model.latest_ready()
        if latest:
            aliases.insert(0, SimpleNamespace(name="latest", version=latest, updated_at=None, automatic=True))
        return Response(AliasSerializer(aliases, many=True, context={"request": request}).data)


class AliasDetail(APIView):
    def _alias(self, model, alias: str):
        found = model.aliases.select_related("version__model__owner").filter(name=alias).first()
        if found is None:
            raise Http404(f"Model '{model.full_name}' has no alias '{alias}'.")
        return found

    @extend_schema(responses=AliasSerializer)
    def get(self, request, owner: str, name: str, alias: str):
        model = visible_model(request, owner, name)
        return Response(AliasSerializer(self._alias(model, alias), context={"request": request}).data)

    @extend_schema(request=AliasMoveRequestSerializer, responses={200: AliasSerializer, 201: AliasSerializer})
    def put(self, request, owner: str, name: str, alias: str):
        """Set or move an alias to a ready version; every move is logged."""
        model = writable_model(request, owner, name)
        alias_name_validator(alias)
        body = AliasMoveRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        moved, created = services.move_alias(
            model, alias, body.validated_data["version"], request.user, token=request_token(request)
        )
        return Response(
            AliasSerializer(moved, context={"request": request}).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(responses={204: None})
    def delete(self, request, owner: str, name: str, alias: str):
        services.delete_alias(writable_model(request, owner, name), alias, request.user, request_token(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AliasLog(APIView):
    @extend_schema(responses=AliasMoveSerializer(many=True))
    def get(self, request, owner: str, name: str, alias: str):
        """Every move of the alias, newest first: who, when, from, to."""
        model = visible_model(request, owner, name)
        moves = model.alias_moves.filter(alias=alias).select_related("from_version", "to_version", "moved_by")
        return Response(AliasMoveSerializer(moves, many=True).data)


class AliasRollback(APIView):
    @extend_schema(request=None, responses=AliasSerializer)
    def post(self, request, owner: str, name: str, alias: str):
        """Move the alias back to the version it pointed at before its last move."""
        rolled = services.rollback_alias(
            writable_model(request, owner, name), alias, request.user, request_token(request)
        )
        return Response(AliasSerializer(rolled, context={"request": request}).data)
