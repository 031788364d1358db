from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def test_owner_creates_model_and_gets_201(owner_client):
    response = owner_client.post(
        "/api/v1/models/", {"name": "mnist", "description": "digits", "public": False}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["full_name"] == "alice/mnist"
    assert response.json()["public"] is False
    assert response.json()["latest_version"] is None


def test_create_rejects_duplicate_name_with_409(owner_client, public_model):
    response = owner_client.post("/api/v1/models/", {"name": "digits"}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "You already have a model named 'digits'."}


def test_create_rejects_bad_name_with_words(owner_client):
    response = owner_client.post("/api/v1/models/", {"name": "../etc"}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "name: Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit."
    )


def test_create_without_token_is_401(anon_client):
    response = anon_client.post("/api/v1/models/", {"name": "x"}, format="json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Authentication credentials were not provided."}


def test_create_with_wrong_token_is_401(anon_client):
    anon_client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = anon_client.post("/api/v1/models/", {"name": "x"}, format="json")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token."}


def test_list_shows_public_models_and_own_private_ones(
    owner_client, outsider_client, anon_client, public_model, private_model
):
    names = lambda client: sorted(m["full_name"] for m in client.get("/api/v1/models/").json())  # noqa: E731
    assert names(owner_client) == ["alice/digits", "alice/secret"]
    assert names(outsider_client) == ["alice/digits"]
    assert names(anon_client) == ["alice/digits"]


def test_unknown_model_is_404_with_detail(anon_client):
    response = anon_client.get("/api/v1/models/alice/nope/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No model 'alice/nope'."}


def test_private_model_is_404_for_outsider_and_anonymous(outsider_client, anon_client, owner_client, private_model):
    assert owner_client.get("/api/v1/models/alice/secret/").status_code == 200
    for client in (outsider_client, anon_client):
        response = client.get("/api/v1/models/alice/secret/")
        assert response.status_code == 404
        assert response.json() == {"detail": "No model 'alice/secret'."}


def test_outsider_cannot_change_or_delete_public_model(outsider_client, public_model):
    response = outsider_client.patch("/api/v1/models/alice/digits/", {"description": "mine"}, format="json")
    assert response.status_code == 403
    assert response.json() == {"detail": "Only alice can change 'alice/digits'."}
    assert outsider_client.delete("/api/v1/models/alice/digits/").status_code == 403


def test_owner_updates_description_and_visibility(owner_client, public_model):
    response = owner_client.patch(
        "/api/v1/models/alice/digits/", {"description": "new", "public": False}, format="json"
    )
    assert response.status_code == 200
    public_model.refresh_from_db()
    assert (public_model.description, public_model.public) == ("new", False)


def test_openapi_schema_and_docs_are_served(anon_client):
    schema = anon_client.get("/api/schema/?format=json")
    assert schema.status_code == 200
    assert "/api/v1/models/{owner}/{name}/versions/" in schema.json()["paths"]
    docs = anon_client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"drf_spectacular_sidecar/swagger-ui-dist" in docs.content  # served locally, not from a CDN
