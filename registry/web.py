"""Server-rendered pages. Uploads and status polling go through the REST API
from static/js/, so the browser and scripts share one code path."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Max, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from registry import services
from registry.api.serializers import absolute_url, load_snippet
from registry.forms import NewModelForm
from registry.models import Model, Version


def home(request):
    models = (
        Model.objects.visible_to(request.user)
        .select_related("owner")
        .annotate(latest_version=Max("versions__number", filter=Q(versions__status=Version.Status.READY)))
    )
    return render(request, "registry/home.html", {"models": models})


@login_required
def create_model(request):
    form = NewModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            model = services.create_model(request.user, **form.cleaned_data)
        except services.RegistryError as exc:
            form.add_error("name", exc.message)
        else:
            messages.success(request, f"Created {model.full_name}. Upload a first version below.")
            return redirect(model)
    return render(request, "registry/model_create.html", {"form": form})


def model_detail(request, owner: str, name: str):
    model = get_object_or_404(
        Model.objects.visible_to(request.user).select_related("owner"), owner__username=owner, name=name
    )
    versions = list(model.versions.select_related("model__owner"))
    for version in versions:
        version.model_url = absolute_url(request, version.model_json_path()) if version.is_ready else ""
        version.snippet = load_snippet(version, version.model_url) if version.is_ready else ""
    latest = next((version for version in versions if version.is_ready), None)
    latest_url = absolute_url(request, reverse("serve-file", args=[owner, name, "latest", "model.json"]))
    context = {
        "model": model,
        "versions": versions,
        "latest": latest,
        "latest_url": latest_url,
        "latest_snippet": load_snippet(latest, latest_url) if latest else "",
        "is_owner": model.owner_id == request.user.id,
        "input_formats": Version.InputFormat.choices,
        "input_format_labels": dict(Version.InputFormat.choices),
    }
    return render(request, "registry/model_detail.html", context)
