from __future__ import annotations

from html import unescape

import pytest
from django.test import Client

from registry import services
from registry.models import Model, Version
from registry.web import short_number

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text(response) -> str:
    """The page as a reader sees it: entities like &#x27; decoded."""
    return unescape(response.content.decode())


def add_version(model: Model, number: int, **fields) -> Version:
    defaults = {
        "upload_name": "model.h5",
        "upload_size": 15144,
        "upload_sha256": "0" * 64,
        "upload_key": f"uploads/test-{model.pk}-{number}/upload",
    }
    return Version.objects.create(model=model, number=number, **{**defaults, **fields})


PARITY = {
    "max_abs_error": 3.1e-7,
    "max_rel_error": 1.2e-6,
    "atol": 1e-4,
    "rtol": 1e-3,
    "passed": True,
    "inputs": [{"name": "dense_input", "shape": [2, 4], "dtype": "float32"}],
}


def add_ready_version(model: Model, number: int, **fields) -> Version:
    """A converted version, as far as the model page reads it."""
    defaults = {"status": Version.Status.READY, "output_format": Version.OutputFormat.LAYERS, "parity": PARITY}
    return add_version(model, number, **{**defaults, **fields})


def ready_variant(size: int, max_abs_error: float) -> dict:
    """A variant as conversions.services leaves it: its weights are blobs."""
    return {
        "status": "ready",
        "error": "",
        "parity": {**PARITY, "max_abs_error": max_abs_error, "atol": 0.01, "rtol": 0.01},
        "blobs": [{"sha256": "2" * 64, "size": size}],
        "model_json_key": "artifacts/test/1/float16/model.json",
        "model_json_sha256": "3" * 64,
    }


def test_home_lists_public_models_for_anonymous_visitors(client, public_model, private_model):
    page = client.get("/").content.decode()

    assert "/alice/digits/" in page
    assert "Handwritten digits" in page
    assert "/alice/secret/" not in page


def test_home_hides_private_models_of_other_users(outsider, public_model, private_model):
    page = signed_in(outsider).get("/").content.decode()

    assert "/alice/digits/" in page
    assert "/alice/secret/" not in page


def test_home_shows_own_private_model_with_badge(owner, private_model):
    page = signed_in(owner).get("/").content.decode()

    assert "/alice/secret/" in page
    assert "Private" in page


def test_home_shows_latest_ready_version_number(client, public_model):
    add_version(public_model, 1, status=Version.Status.READY, output_format=Version.OutputFormat.LAYERS)
    add_version(public_model, 2, status=Version.Status.FAILED)

    page = client.get("/").content.decode()

    assert "Latest ready version: <strong>1</strong>" in page


def test_home_explains_modelport_when_there_are_no_models(client):
    page = client.get("/").content.decode()

    assert "Nothing here yet" in page


def test_private_model_page_is_404_for_another_user(outsider, private_model):
    assert signed_in(outsider).get("/alice/secret/").status_code == 404


def test_private_model_page_is_404_for_anonymous_visitors(client, private_model):
    assert client.get("/alice/secret/").status_code == 404


def test_private_model_page_is_shown_to_its_owner(owner, private_model):
    response = signed_in(owner).get("/alice/secret/")

    assert response.status_code == 200
    assert "only alice can see and load it" in response.content.decode()


def test_unknown_model_page_is_404(client):
    assert client.get("/alice/nothing/").status_code == 404


def test_owner_sees_upload_form(owner, public_model):
    page = signed_in(owner).get("/alice/digits/").content.decode()

    assert 'id="upload-form"' in page
    assert 'action="/api/v1/models/alice/digits/versions/"' in page
    assert 'accept=".h5,.keras,.zip,.tar,.tar.gz,.tgz"' in page


def test_other_user_does_not_see_upload_form(outsider, public_model):
    page = signed_in(outsider).get("/alice/digits/").content.decode()

    assert "Upload a new version" not in page
    assert 'id="upload-form"' not in page


def test_owner_can_choose_a_model_folder_instead_of_a_file(owner, public_model):
    page = text(signed_in(owner).get("/alice/digits/"))

    assert '<input id="upload-folder" type="file" webkitdirectory multiple' in page
    assert "A SavedModel or TF.js model folder (the one with <code>saved_model.pb</code> or" in page


@pytest.mark.parametrize("persona", ["outsider", "anonymous"])
def test_only_the_owner_sees_the_folder_picker(request, persona, public_model):
    client = signed_in(request.getfixturevalue("outsider")) if persona == "outsider" else Client()

    page = client.get("/alice/digits/").content.decode()

    assert "webkitdirectory" not in page
    assert 'id="upload-folder"' not in page


def test_anonymous_visitor_does_not_see_upload_form(client, public_model):
    page = client.get("/alice/digits/").content.decode()

    assert 'id="upload-form"' not in page


def test_model_page_shows_snippets_for_ready_versions(client, public_model):
    add_version(public_model, 1, status=Version.Status.READY, output_format=Version.OutputFormat.GRAPH)

    page = text(client.get("/alice/digits/"))

    assert "const model = await tf.loadGraphModel('http://testserver/m/alice/digits/1/model.json');" in page
    assert "const model = await tf.loadGraphModel('http://testserver/m/alice/digits/latest/model.json');" in page
    assert "vendor/tfjs/tf.min.js" in page


def test_usage_snippets_of_a_graph_model_load_it_with_load_graph_model(client, public_model):
    add_ready_version(public_model, 1, output_format=Version.OutputFormat.GRAPH, model_json_sha256="5" * 64)

    page = text(client.get("/alice/digits/"))

    assert "  tf.loadGraphModel('http://testserver/m/alice/digits/latest/model.json').then((model) => {" in page
    assert "const model = await tf.loadGraphModel('http://testserver/m/alice/digits/1/model.json', {" in page
    assert "tf.loadLayersModel" not in page


def test_ready_version_lists_its_companion_files_at_their_served_urls(client, public_model):
    labels = {"name": "labels.txt", "size": 2048, "sha256": "4" * 64, "content_type": "text/plain", "key": "k"}
    add_ready_version(public_model, 1, companions=[labels])

    page = text(client.get("/alice/digits/"))

    assert '<a href="http://testserver/m/alice/digits/1/labels.txt" class="filename">labels.txt</a>' in page
    assert "2.0\xa0KB" in page
    assert 'data-labels-url="http://testserver/m/alice/digits/1/labels.txt"' in page  # for "Try it"


def test_model_page_shows_why_a_version_failed(client, public_model):
    add_version(
        public_model,
        1,
        status=Version.Status.FAILED,
        failure=Version.Failure.USER,
        error="The converter failed on this model: Unknown layer: Funky",
    )

    page = client.get("/alice/digits/").content.decode()

    assert "The converter failed on this model: Unknown layer: Funky" in page
    assert "Fix the file and upload it again." in page
    assert 'id="try-it" hidden' in page


def test_create_page_requires_sign_in(client):
    response = client.get("/new/")

    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/new/"


def test_create_form_explains_invalid_name(owner):
    response = signed_in(owner).post("/new/", {"name": "bad name!", "public": "on"})

    assert response.status_code == 200
    assert "Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit." in text(response)
    assert not Model.objects.exists()


def test_create_form_requires_a_name(owner):
    response = signed_in(owner).post("/new/", {"name": ""})

    assert "This field is required." in response.content.decode()


def test_create_form_explains_duplicate_name(owner, public_model):
    response = signed_in(owner).post("/new/", {"name": "digits"})

    assert "You already have a model named 'digits'." in text(response)
    assert Model.objects.filter(owner=owner).count() == 1


def test_create_form_makes_model_and_redirects_to_it(owner):
    response = signed_in(owner).post("/new/", {"name": "mnist", "description": "Digits", "public": ""})

    assert response.status_code == 302
    assert response["Location"] == "/alice/mnist/"
    model = Model.objects.get(owner=owner, name="mnist")
    assert model.description == "Digits"
    assert model.public is False


def test_same_name_is_free_for_another_user(outsider, public_model):
    response = signed_in(outsider).post("/new/", {"name": "digits", "public": "on"})

    assert response["Location"] == "/mallory/digits/"


def test_login_page_signs_in_and_logout_needs_post(client, owner):
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "alice", "password": "alice-password-1"})
    assert response["Location"] == "/"

    assert 'action="/logout/"' in client.get("/").content.decode()
    assert client.get("/logout/").status_code == 405
    assert client.post("/logout/").status_code == 302
    assert "Sign in" in client.get("/").content.decode()


def test_model_page_escapes_user_text(owner):
    services.create_model(owner, "xss", "<script>alert(1)</script>")

    page = signed_in(owner).get("/alice/xss/").content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (0.0, "0"),
        (3.14159e-7, "3.1e-7"),
        (1e-4, "1e-4"),
        (0.0042, "4.2e-3"),
        (0.2149, "0.21"),
        (12.0, "12"),
        (1234.0, "1.2e3"),
    ],
)
def test_short_number_writes_two_significant_digits(value, written):
    assert short_number(value) == written


def test_ready_version_shows_its_parity_figures(client, public_model):
    add_ready_version(public_model, 1)

    page = text(client.get("/alice/digits/"))

    assert "✓ max error 3.1e-7" in page
    assert (
        "TF.js (in Node) vs TensorFlow on dense_input [2, 4] float32: max absolute error 3.1e-7, "
        "max relative error 1.2e-6; allowed 1e-4 + 1e-3×|value|."
    ) in page


def test_ready_version_without_parity_figures_shows_a_dash(client, public_model):
    add_ready_version(public_model, 1, parity={})

    page = text(client.get("/alice/digits/"))

    assert "max error" not in page
    assert '<td data-label="Verified"><span class="muted">—</span>' in page


def test_version_that_failed_parity_shows_its_figures(client, public_model):
    error = (
        "TF.js predictions differ from TensorFlow's: max absolute error 0.215, max relative error 0.43 "
        "(allowed 0.0001 + 0.001×|value|)."
    )
    add_version(
        public_model,
        1,
        status=Version.Status.FAILED,
        failure=Version.Failure.USER,
        error=error,
        parity={**PARITY, "max_abs_error": 0.215, "max_rel_error": 0.43, "passed": False},
    )

    page = text(client.get("/alice/digits/"))

    assert error in page
    assert "✗ max error 0.21" in page
    assert "max absolute error 0.21, max relative error 0.43; allowed 1e-4 + 1e-3×|value|." in page


def test_ready_variants_are_listed_with_size_parity_and_snippet(client, public_model):
    add_ready_version(public_model, 1, variants={"float16": ready_variant(2048, 2.4e-4)})

    page = text(client.get("/alice/digits/"))

    assert "const model = await tf.loadLayersModel('http://testserver/m/alice/digits/1/float16/model.json');" in page
    assert "2.0\xa0KB" in page
    assert "✓ max error 2.4e-4" in page
    assert "Variants: quantized copies are smaller downloads, slightly less exact" in page


def test_variant_of_a_graph_model_loads_with_load_graph_model(client, public_model):
    add_ready_version(
        public_model, 1, output_format=Version.OutputFormat.GRAPH, variants={"uint8": ready_variant(1024, 3e-3)}
    )

    page = text(client.get("/alice/digits/"))

    assert "const model = await tf.loadGraphModel('http://testserver/m/alice/digits/1/uint8/model.json');" in page


def test_graph_variant_of_a_layers_model_loads_with_load_graph_model(client, public_model):
    add_ready_version(public_model, 1, variants={"graph": ready_variant(1024, 2e-6)})

    page = text(client.get("/alice/digits/"))

    assert "const model = await tf.loadLayersModel('http://testserver/m/alice/digits/1/model.json');" in page
    assert "const model = await tf.loadGraphModel('http://testserver/m/alice/digits/1/graph/model.json');" in page
    assert '<span class="variant-name">graph model</span>' in page


def test_pending_and_failed_variants_show_their_state(client, public_model):
    add_ready_version(
        public_model,
        1,
        variants={
            "uint8": {"status": "pending"},
            "uint16": {"status": "failed", "error": "TF.js predictions differ from TensorFlow's: too far."},
        },
    )

    page = text(client.get("/alice/digits/"))

    assert "data-variants-pending>" in page
    assert '<span class="status status-pending">Pending</span>' in page
    assert "TF.js predictions differ from TensorFlow's: too far." in page
    assert "/m/alice/digits/1/uint8/model.json" not in page


def test_failed_version_with_variants_asked_at_upload_is_not_polled(client, public_model):
    add_version(public_model, 1, status=Version.Status.FAILED, variants={"float16": {"status": "pending"}})

    page = text(client.get("/alice/digits/"))

    assert "data-variants-pending" not in page
    assert 'class="variants"' not in page
    assert "data-variants-note hidden" in page


def test_owner_sees_variant_request_control_for_ready_version(owner, public_model):
    add_ready_version(
        public_model, 1, input_format=Version.InputFormat.KERAS_V3,
        variants={"float16": ready_variant(2048, 2.4e-4), "uint8": {"status": "failed"}},
    )  # fmt: skip
    add_version(public_model, 2, status=Version.Status.CONVERTING)

    page = text(signed_in(owner).get("/alice/digits/"))

    assert page.count("data-variant-form") == 1
    assert 'action="/api/v1/models/alice/digits/versions/1/variants/"' in page
    assert (
        '<option value="uint8">uint8</option><option value="uint16">uint16</option>'
        '<option value="graph">graph model</option>' in page
    )
    assert '<option value="float16">' not in page


@pytest.mark.parametrize(
    "fields",
    [
        {"input_format": Version.InputFormat.SAVED_MODEL, "output_format": Version.OutputFormat.GRAPH},
        {"input_format": Version.InputFormat.KERAS_V3, "output_format": Version.OutputFormat.GRAPH},
        {"input_format": Version.InputFormat.TFJS},
    ],
    ids=["saved-model", "keras-served-as-graph", "tfjs"],
)
def test_graph_variant_is_offered_only_for_keras_layers_models(owner, public_model, fields):
    add_ready_version(public_model, 1, **fields)

    page = text(signed_in(owner).get("/alice/digits/"))

    assert '<option value="uint8">uint8</option>' in page
    assert '<option value="graph">' not in page


def test_owner_sees_no_variant_control_once_all_variants_exist(owner, public_model):
    variants = {variant: ready_variant(1024, 1e-4) for variant in Version.VARIANTS}
    add_ready_version(public_model, 1, variants=variants)

    page = text(signed_in(owner).get("/alice/digits/"))

    assert "data-variant-form" not in page


@pytest.mark.parametrize("persona", ["outsider", "anonymous"])
def test_only_the_owner_sees_the_variant_request_control(request, persona, public_model):
    add_ready_version(public_model, 1, variants={"float16": ready_variant(2048, 2.4e-4)})
    client = signed_in(request.getfixturevalue("outsider")) if persona == "outsider" else Client()

    page = text(client.get("/alice/digits/"))

    assert "/m/alice/digits/1/float16/model.json" in page
    assert "data-variant-form" not in page
    assert "Make a variant" not in page


def test_other_user_sees_no_variants_block_for_a_version_without_variants(outsider, public_model):
    add_ready_version(public_model, 1)

    page = text(signed_in(outsider).get("/alice/digits/"))

    assert 'class="variants"' not in page
    assert "data-variants-note hidden" in page


def test_upload_form_offers_variants(owner, public_model):
    page = text(signed_in(owner).get("/alice/digits/"))

    for variant in ("float16", "uint8", "uint16", "graph"):
        assert f'<input type="checkbox" name="variants" value="{variant}">' in page
    assert "Also make variants" in page


def test_aliases_are_listed_with_their_urls_and_latest_is_automatic(client, owner, public_model):
    add_ready_version(public_model, 1)
    add_ready_version(public_model, 2)
    services.move_alias(public_model, "production", 1, owner)

    page = text(client.get("/alice/digits/"))

    assert '<tbody class="alias" data-alias="latest" data-version="2" data-automatic>' in page
    assert '<span class="alias-name">latest</span> <span class="badge badge-auto">automatic</span>' in page
    assert "follows the newest ready version" in page
    assert "const model = await tf.loadLayersModel('http://testserver/m/alice/digits/latest/model.json');" in page
    assert '<tbody class="alias" data-alias="production" data-version="1">' in page
    assert "const model = await tf.loadLayersModel('http://testserver/m/alice/digits/production/model.json');" in page
    assert "numbered URLs never change; a load that started on one version finishes on it" in page


def test_alias_of_a_graph_model_loads_with_load_graph_model(client, owner, public_model):
    add_ready_version(public_model, 1, output_format=Version.OutputFormat.GRAPH)
    services.move_alias(public_model, "staging", 1, owner)

    page = text(client.get("/alice/digits/"))

    assert "const model = await tf.loadGraphModel('http://testserver/m/alice/digits/staging/model.json');" in page


def test_aliases_section_is_hidden_until_a_version_is_ready(client, public_model):
    add_version(public_model, 1, status=Version.Status.CONVERTING)

    page = text(client.get("/alice/digits/"))

    assert '<section class="card" id="aliases" hidden' in page
    assert 'data-alias="latest"' not in page


def test_owner_sees_alias_controls_with_ready_versions_and_name_rules(owner, public_model):
    add_ready_version(public_model, 1)
    add_ready_version(public_model, 2)
    add_version(public_model, 3, status=Version.Status.CONVERTING)
    services.move_alias(public_model, "production", 1, owner)

    page = text(signed_in(owner).get("/alice/digits/"))

    assert 'id="alias-form"' in page
    assert 'data-aliases-url="/api/v1/models/alice/digits/aliases/"' in page
    assert '<option value="2">2</option><option value="1">1</option>' in page
    assert '<option value="3">' not in page
    assert 'pattern="[a-z][a-z0-9._-]{0,49}"' in page
    assert (
        "Use 1-50 lowercase letters, digits, '.', '_' or '-', starting with a letter. Reserved: blobs, cut, latest."
    ) in page
    assert page.count("data-alias-remove") == 1  # not for the automatic latest
    assert page.count("data-alias-rollback") == 1


@pytest.mark.parametrize("persona", ["outsider", "anonymous"])
def test_only_the_owner_sees_alias_controls(request, persona, owner, public_model):
    add_ready_version(public_model, 1)
    services.move_alias(public_model, "production", 1, owner)
    client = signed_in(request.getfixturevalue("outsider")) if persona == "outsider" else Client()

    page = text(client.get("/alice/digits/"))

    assert "/m/alice/digits/production/model.json" in page
    assert 'id="alias-form"' not in page
    assert "data-alias-rollback" not in page
    assert "data-alias-remove" not in page


def test_alias_history_shows_who_when_from_to_and_rollbacks(owner, public_model):
    add_ready_version(public_model, 1)
    add_ready_version(public_model, 2)
    services.move_alias(public_model, "production", 1, owner)
    services.move_alias(public_model, "production", 2, owner)
    services.rollback_alias(public_model, "production", owner)

    page = text(signed_in(owner).get("/alice/digits/"))

    assert 'History <span class="muted">(3 moves)</span>' in page
    moves = page.split('<ol class="alias-log">')[1].split("</ol>")[0]
    assert moves.index("2 → 1") < moves.index("1 → 2") < moves.index("set to 1")
    assert moves.count("by alice") == 3
    assert moves.count('<span class="tag">rollback</span>') == 1
    assert ">Roll back to 2</button>" in page


def test_alias_without_an_earlier_version_cannot_be_rolled_back(owner, public_model):
    add_ready_version(public_model, 1)
    services.move_alias(public_model, "production", 1, owner)

    page = text(signed_in(owner).get("/alice/digits/"))

    assert 'data-alias-rollback disabled title="No earlier version to roll back to.">Roll back</button>' in page
    assert 'History <span class="muted">(1 move)</span>' in page


def test_removed_alias_is_not_listed(owner, public_model):
    add_ready_version(public_model, 1)
    services.move_alias(public_model, "production", 1, owner)
    services.delete_alias(public_model, "production", owner)

    page = text(signed_in(owner).get("/alice/digits/"))

    assert 'data-alias="production"' not in page
    assert 'data-alias="latest"' in page


def test_layers_panel_offers_ready_layers_model_versions(client, public_model):
    add_ready_version(public_model, 1)
    add_ready_version(public_model, 2, output_format=Version.OutputFormat.GRAPH)
    add_ready_version(public_model, 3)
    add_version(public_model, 4, status=Version.Status.CONVERTING)

    page = text(client.get("/alice/digits/"))

    assert '<section class="card" id="layers">' in page
    assert "data-layers-panel" in page
    assert (
        '<option value="3" data-model-url="http://testserver/m/alice/digits/3/model.json" '
        'data-layers-url="/api/v1/models/alice/digits/versions/3/layers/">3</option>'
    ) in page
    assert 'data-layers-url="/api/v1/models/alice/digits/versions/1/layers/"' in page
    assert "/versions/2/layers/" not in page
    assert "/versions/4/layers/" not in page
    assert "a smaller download, and files the browser already cached for the full model are not fetched again" in page


def test_layers_panel_is_hidden_for_a_graph_model(client, public_model):
    add_ready_version(public_model, 1, output_format=Version.OutputFormat.GRAPH)

    page = text(client.get("/alice/digits/"))

    assert '<section class="card" id="layers" hidden>' in page
    assert "data-layers-url" not in page


def test_model_page_says_why_a_keras_upload_is_a_graph_model(client, public_model):
    reason = (
        "Layer 'attention' (MultiHeadAttention) has no TF.js equivalent: TF.js 4.22 does not implement it. "
        "Served as a graph model."
    )
    add_version(
        public_model,
        1,
        status=Version.Status.READY,
        output_format=Version.OutputFormat.GRAPH,
        graph_reason=reason,
        parity=PARITY,
        model_json_key="artifacts/x/1/model.json",
    )

    page = client.get("/alice/digits/").content.decode()

    assert f"<strong>Graph model:</strong> {reason}" in page.replace("&#x27;", "'")
    assert "tf.loadGraphModel(" in page


def test_the_make_run_admin_signs_in_creates_a_model_and_reaches_its_page(client):
    """The account `make run` creates is called admin: its model pages are
    /admin/<name>/, so Django's admin site lives under /-/admin/."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_superuser("admin", password="first-run-password")

    signed = client.post("/login/", {"username": "admin", "password": "first-run-password"})
    assert signed.status_code == 302
    created = client.post("/new/", {"name": "first", "description": "My first model", "public": "on"})
    assert created["Location"] == "/admin/first/"
    page = client.get("/admin/first/")
    assert page.status_code == 200
    assert "My first model" in text(page)
    assert client.get("/-/admin/").status_code == 200  # Django's admin site, for the superuser


@pytest.mark.parametrize("name", ["api", "m", "static", "login", "new", "-", "API"])
def test_owner_names_that_are_route_prefixes_are_refused_in_words(name):
    from django.contrib.auth import get_user_model
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        get_user_model()(username=name, password="x").full_clean()
    assert f"'{name}' is reserved for Modelport's own pages; choose another name." in str(refused.value)
