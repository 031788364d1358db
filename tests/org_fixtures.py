"""Personas around the organisation ``acme``: alice (org admin), bob (writer),
carol (reader), mallory (outsider) and an anonymous visitor; acme/detector is
a private model of acme with two ready versions and an alias."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts import services as accounts
from registry import services
from tests.test_serving import SHARD, make_ready_version
from tests.tokens import api_token

PERSONAS = ["admin", "writer", "reader", "outsider", "anonymous"]


@pytest.fixture
def acme(owner):
    return accounts.create_organization("acme", owner, "Acme's models")


@pytest.fixture
def people(acme, owner, outsider, django_user_model):
    bob = django_user_model.objects.create_user("bob", password="bob-password-1")
    carol = django_user_model.objects.create_user("carol", password="carol-password-1")
    accounts.set_member(acme, "bob", "write", owner)
    accounts.set_member(acme, "carol", "read", owner)
    return {"admin": owner, "writer": bob, "reader": carol, "outsider": outsider, "anonymous": None}


@pytest.fixture
def detector(acme, owner):
    model = services.create_model(acme.account, "detector", "Finds things", public=False, actor=owner)
    make_ready_version(model, 1)
    make_ready_version(model, 2, shard=SHARD[1:] + SHARD[:1])
    services.move_alias(model, "production", 1, owner)
    return model


@pytest.fixture
def clients(people) -> dict[str, APIClient]:
    result = {}
    for persona, user in people.items():
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {api_token(user)}")
        result[persona] = client
    return result
