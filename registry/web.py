"""Server-rendered pages. Uploads and status polling go through the REST API
from static/js/, so the browser and scripts share one code path."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.models import AuditEvent
from converter.modeljson import sri
from registry import cards, downloads, links, services, storage, summary
from registry.access import Level, model_level, writable_owners
from registry.api.serializers import VersionSerializer, absolute_url, backend_rows, load_snippet
from registry.forms import AccessLinkForm, ModelCardForm, NewModelForm
from registry.models import ALIAS_NAME_PATTERN, RESERVED_ALIASES, Model, Version, alias_name_validator
from registry.search import search
from webhooks import services as webhooks
from webhooks.models import Event

ALIAS_NAME_HINT = f"{alias_name_validator.message} Reserved: {', '.join(sorted(RESERVED_ALIASES))}."


def home(request):
    found = search(Model.objects.visible_to(request.user), request.GET).select_related("owner").with_latest_number()
    orderings = [("recent", "Recently updated"), ("downloads", "Downloads (30 days)"), ("name", "Name")]
    page = Paginator(found, 24).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "models": page,
        "page": page,
        "query": query.urlencode(),
        "q": request.GET.get("q", ""),
        "tag": request.GET.get("tag", ""),
        "format": request.GET.get("output_format", ""),
        "ordering": request.GET.get("ordering", "recent"),
        "formats": Version.OutputFormat.values,
        "orderings": orderings,
        "searching": any(request.GET.get(key) for key in ("q", "tag", "output_format")),
    }
    return render(request, "registry/home.html", context)


@login_required
@require_POST
def edit_card(request, owner: str, name: str):
    model = model_at_level(request, owner, name, Level.ADMIN)
    form = ModelCardForm(request.POST)
    if form.is_valid():
        services.update_model(model, form.cleaned_data, request.user)
        messages.success(request, "Saved the model card.")
    else:
        messages.error(request, " ".join(error for errors in form.errors.values() for error in errors))
    return back_to(owner, name, "model-card")


@login_required
def create_model(request):
    owners = {account.username: account for account in writable_owners(request.user)}
    initial = {"owner": request.GET.get("owner", request.user.username)}
    form = NewModelForm(request.POST or None, owners=list(owners), initial=initial)
    if request.method == "POST" and form.is_valid():
        fields = dict(form.cleaned_data)
        try:
            owner = owners.get(fields.pop("owner") or request.user.username, request.user)
            model = services.create_model(owner, **fields, actor=request.user)
        except services.RegistryError as exc:
            form.add_error("name", exc.message)
        else:
            messages.success(request, f"Created {model.full_name}. Upload a first version below.")
            return redirect(model)
    return render(request, "registry/model_create.html", {"form": form})


def visible_model(request, owner: str, name: str) -> Model:
    return get_object_or_404(
        Model.objects.visible_to(request.user).select_related("owner__organization"), owner__username=owner, name=name
    )


def model_at_level(request, owner: str, name: str, level: Level) -> Model:
    """The model, for a page action that needs ``level`` on it; a 404 otherwise,
    like a model the user cannot see."""
    model = visible_model(request, owner, name)
    if model_level(request.user, None, model) < level:
        raise Http404("No such page.")
    return model


def back_to(owner: str, name: str, section: str):
    return redirect(reverse("model-detail", args=[owner, name]) + f"#{section}")


def link_refs(model: Model, ready: list[Version]) -> list[tuple[str, str]]:
    aliases = [("latest", "latest (follows)")] if ready else []
    aliases += [(alias, f"{alias} (follows)") for alias in model.aliases.values_list("name", flat=True)]
    return aliases + [(str(version.number), f"version {version.number}") for version in ready]


def decorate(request, versions: list[Version]) -> list[Version]:
    """What registry/version_rows.html shows of each version."""
    api = VersionSerializer(context={"request": request})
    for version in versions:
        version.model_url = absolute_url(request, version.model_json_path()) if version.is_ready else ""
        version.snippet = load_snippet(version, version.model_url) if version.is_ready else ""
        version.verified = parity_summary(version.parity)
        version.checked = backends_summary(backend_rows(version))
        version.variant_rows = [
            {
                **variant,
                "verified": parity_summary(variant["parity"]),
                "checked": backends_summary(variant["backends"]),
                "snippet": variant["snippet"] or "",
            }
            for variant in api.get_variants(version)
        ]
        version.requestable = version.requestable_variants()
        version.variants_checked_pending = any(
            row["checked"] and row["checked"]["pending"] for row in version.variant_rows
        )
        version.files = api.get_companions(version)
    return versions


# The TF.js Modelport checks models with (package.json), as users load it from a CDN.
TFJS_CDN = "https://cdn.jsdelivr.net/npm/@tensorflow/tfjs@4.22.0"


def usage_snippets(request, latest: Version, latest_url: str) -> dict:
    """How to load the newest version from an ES module, a plain <script>
    page, and with the browser checking every file (registry/serving.py)."""
    loader = latest.tfjs_loader()
    verify = absolute_url(request, reverse("verify-module"))
    return {
        "module": f"import * as tf from '{TFJS_CDN}/+esm';\n\nconst model = await tf.{loader}('{latest_url}');",
        "script": f'<script src="{TFJS_CDN}/dist/tf.min.js"></script>\n<script>\n'
        f"  tf.{loader}('{latest_url}').then((model) => {{\n    // model.predict(…)\n  }});\n</script>",
        "verified": f"import {{verifiedFetch}} from '{verify}';\n\n"
        f"const model = await tf.{loader}('{latest.model_url}', {{\n"
        f"  fetchFunc: verifiedFetch({{integrity: '{sri(latest.model_json_sha256)}'}}),\n}});",
    }


def model_summary(latest: Version | None) -> dict | None:
    if latest is None:
        return None
    try:
        made = summary.summarise(latest)
    except (storage.StorageError, summary.SummaryError):
        return None  # the page still works; the summary is an extra
    sizes = [{"name": "full model", "bytes": latest.size}]
    sizes += [
        {"name": "graph model" if name == Version.GRAPH_VARIANT else name, "bytes": sum(b["size"] for b in v["blobs"])}
        for name, v in sorted(latest.variants.items())
        if v.get("status") == "ready"
    ]
    return {**made, "sizes": sizes}


def playground(latest: Version | None) -> dict:
    """What "Try it" needs of the newest version: its inputs (as the parity
    check ran them) and the companions that name its classes."""
    files = {item["name"]: item["url"] for item in getattr(latest, "files", [])}
    return {
        "try_inputs_json": json.dumps(latest.parity.get("inputs", []) if latest else []),
        "try_metadata_url": files.get("metadata.json", ""),
        "try_labels_url": files.get("labels.txt", ""),
    }


def alias_table_rows(request, owner: str, name: str):
    """The rows of the aliases table as the page renders them, for
    static/js/aliases.js to swap in after a change."""
    model = visible_model(request, owner, name)
    latest = model.versions.filter(status=Version.Status.READY).order_by("-number").first()
    context = {
        "aliases": alias_rows(request, model, latest),
        "can_write": model_level(request.user, None, model) >= Level.WRITE,
    }
    return render(request, "registry/alias_rows_list.html", context)


def version_rows(request, owner: str, name: str):
    """Rows of the versions table, rendered as the page renders them, for
    the page's polling script to swap in (``?number=`` repeated)."""
    model = visible_model(request, owner, name)
    numbers = [int(number) for number in request.GET.getlist("number") if number.isdigit()][:50]
    versions = decorate(request, list(model.versions.select_related("model__owner").filter(number__in=numbers)))
    level = model_level(request.user, None, model)
    context = {"versions": versions, "can_write": level >= Level.WRITE, "model": model}
    return render(request, "registry/version_rows_list.html", context)


def model_detail(request, owner: str, name: str, link_form: AccessLinkForm | None = None):
    model = visible_model(request, owner, name)
    versions = decorate(request, list(model.versions.select_related("model__owner")))
    ready = [version for version in versions if version.is_ready]
    loads = downloads.totals([version.pk for version in versions])
    for version in versions:
        version.downloads_30d = loads.get(version.pk, 0)
    latest = ready[0] if ready else None
    latest_url = absolute_url(request, reverse("serve-file", args=[owner, name, "latest", "model.json"]))
    level = model_level(request.user, None, model)
    can_write = level >= Level.WRITE
    context = {
        "model": model,
        "versions": versions,
        "ready_versions": ready,
        "aliases": alias_rows(request, model, latest),
        "alias_name_hint": ALIAS_NAME_HINT,
        "alias_name_pattern": ALIAS_NAME_PATTERN.removeprefix("^").removesuffix(r"\Z"),
        "layers_versions": [version for version in ready if version.output_format == Version.OutputFormat.LAYERS],
        "latest": latest,
        "latest_url": latest_url,
        "latest_snippet": load_snippet(latest, latest_url) if latest else "",
        **playground(latest),
        "summary": model_summary(latest),
        "usage": usage_snippets(request, latest, latest_url) if latest else None,
        "can_write": can_write,
        "can_admin": level >= Level.ADMIN,
        "downloads_30d": sum(loads.values()),
        "readme_html": cards.render(model.readme) if model.readme else "",
        "card_form": ModelCardForm(
            initial={"readme": model.readme, "tags": ", ".join(model.tags), "license": model.license}
        )
        if level >= Level.ADMIN
        else None,
        "is_organization": hasattr(model.owner, "organization"),
        "link_form": link_form or (AccessLinkForm(refs=link_refs(model, ready)) if can_write else None),
        "access_links": [
            {"link": link, "url": absolute_url(request, links.url_path(link))}
            for link in model.access_links.select_related("created_by")[:50]
        ]
        if can_write
        else [],
        "webhooks": model.webhooks.prefetch_related("deliveries") if level >= Level.ADMIN else [],
        "webhook_events": Event.values,
        "new_webhook_secret": request.session.pop(f"webhook-secret-{model.pk}", None),
        "events": AuditEvent.objects.filter(model=model).select_related("actor", "owner")[:100]
        if level >= Level.ADMIN
        else [],
        # Variants exist only for ready versions; the owner can make them, others only see them.
        "show_variants_note": latest is not None
        and (can_write or any(version.variants for version in versions if version.is_ready)),
        "input_formats": Version.InputFormat.choices,
        "quantizations": Version.Quantization.values,
        "graph_variant": Version.GRAPH_VARIANT,
    }
    return render(request, "registry/model_detail.html", context)


@login_required
@require_POST
def create_link(request, owner: str, name: str):
    model = model_at_level(request, owner, name, Level.WRITE)
    ready = list(model.versions.filter(status=Version.Status.READY))
    form = AccessLinkForm(request.POST, refs=link_refs(model, ready))
    if not form.is_valid():
        return model_detail(request, owner, name, link_form=form)
    data = form.cleaned_data
    try:
        link = links.mint(model, data["ref"], data["ttl_seconds"], data["origins"], request.user)
    except services.RegistryError as exc:
        messages.error(request, exc.message)
    else:
        until = f"{link.expires_at:%Y-%m-%d %H:%M} UTC"
        messages.success(request, f"Minted an access link to {data['ref']}/model.json, valid until {until}.")
    return back_to(owner, name, "access-links")


@login_required
@require_POST
def revoke_link(request, owner: str, name: str, link_id):
    model = model_at_level(request, owner, name, Level.WRITE)
    links.revoke(get_object_or_404(model.access_links, uid=link_id), request.user)
    messages.success(request, "Revoked the access link. It stopped working at once.")
    return back_to(owner, name, "access-links")


@login_required
@require_POST
def create_webhook(request, owner: str, name: str):
    model = model_at_level(request, owner, name, Level.ADMIN)
    try:
        hook = webhooks.create(
            model.owner, request.POST.get("url", ""), request.POST.getlist("events"), request.user, model
        )
    except webhooks.WebhookError as exc:
        messages.error(request, exc.message)
    else:
        # Shown once on the next page, like a token.
        request.session[f"webhook-secret-{model.pk}"] = hook.secret
        messages.success(request, f"Added a webhook to {hook.url}.")
    return back_to(owner, name, "webhooks")


@login_required
@require_POST
def webhook_action(request, owner: str, name: str, webhook_id, delivery_id=None):
    """Delete a webhook, or redeliver one of its deliveries."""
    model = model_at_level(request, owner, name, Level.ADMIN)
    hook = get_object_or_404(model.webhooks, uid=webhook_id)
    if delivery_id is not None:
        webhooks.redeliver(get_object_or_404(hook.deliveries, uid=delivery_id))
        messages.success(request, "Sending it again.")
    else:
        hook.delete()
        messages.success(request, f"Removed the webhook to {hook.url}.")
    return back_to(owner, name, "webhooks")


def alias_rows(request, model: Model, latest: Version | None) -> list[dict]:
    """The aliases as the API lists them (automatic ``latest`` first), each
    with its snippet and move log."""
    moves: dict[str, list] = {}
    for move in model.alias_moves.select_related("from_version", "to_version", "moved_by"):
        moves.setdefault(move.alias, []).append(
            {
                "from_version": move.from_version.number if move.from_version else None,
                "to_version": move.to_version.number if move.to_version else None,
                "moved_by": move.moved_by.username if move.moved_by else None,
                "moved_at": move.moved_at,
                "rollback": move.rollback,
            }
        )
    rows = [(alias.name, alias.version, alias.updated_at, False) for alias in model.aliases.select_related("version")]
    if latest:
        rows.insert(0, ("latest", latest, None, True))
    result = []
    for name, version, updated_at, automatic in rows:
        version.model = model  # model_json_path() needs the owner, already loaded
        url = absolute_url(request, version.model_json_path(name))
        log = [] if automatic else moves.get(name, [])
        result.append(
            {
                "name": name,
                "version": version.number,
                "updated_at": updated_at,
                "automatic": automatic,
                "model_url": url,
                "snippet": load_snippet(version, url),
                "log": log,
                "rollback_to": log[0]["from_version"] if log else None,
            }
        )
    return result


def short_number(value: float) -> str:
    """Two significant digits (1.2e-7, 0.03, 6e-8)."""
    rounded = float(f"{value:.1e}")
    if rounded == 0:
        return "0"
    if 0.01 <= abs(rounded) < 100:
        return f"{rounded:g}"
    mantissa, exponent = f"{rounded:.1e}".split("e")
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def backends_summary(rows: list[dict]) -> dict | None:
    """ "Verified on cpu, wasm, webgl", what did not pass and the first-prediction times."""
    if not rows:
        return None
    passed = [row["name"] for row in rows if row["status"] == "passed"]
    problems = []
    for row in rows:
        if row["status"] == "failed" and row.get("max_abs_error") is not None:
            problems.append(f"{row['name']}: failed (max error {short_number(row['max_abs_error'])})")
        elif row["status"] != "passed":
            reason = f" — {row['error']}" if row.get("error") else ""
            problems.append(f"{row['name']}: {row['status']}{reason}")
    timings = [
        f"{row['name']} {short_duration(row['first_predict_ms'])}"
        for row in rows
        if row.get("first_predict_ms") is not None
    ]
    return {
        "verified": f"Verified on {', '.join(passed)}" if passed else "",
        "problems": problems,
        "timings": f"First prediction in Chromium: {', '.join(timings)}." if timings else "",
        "pending": any(row["status"] == "pending" for row in rows),
    }


def short_duration(milliseconds: float) -> str:
    return f"{milliseconds:.0f} ms" if milliseconds < 1000 else f"{milliseconds / 1000:.1f} s"


def parity_summary(parity: dict) -> dict | None:
    """The TF.js-vs-TensorFlow figures as a short cell text and a sentence."""
    if not parity or parity.get("max_abs_error") is None:
        return None
    inputs = ", ".join(
        f"{item['name']} [{', '.join(str(dim) for dim in item['shape'])}] {item['dtype']}"
        for item in parity.get("inputs", [])
    )
    details = (
        f"TF.js (in Node) vs TensorFlow on {inputs or 'fixed inputs'}: "
        f"max absolute error {short_number(parity['max_abs_error'])}, "
        f"max relative error {short_number(parity['max_rel_error'])}; "
        f"allowed {short_number(parity['atol'])} + {short_number(parity['rtol'])}×|value|."
    )
    return {
        "passed": bool(parity.get("passed")),
        "summary": f"max error {short_number(parity['max_abs_error'])}",
        "details": details,
    }
