"""Pages for access tokens and organisations (plain forms, no scripts)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts import services
from accounts.forms import MemberForm, NewOrganizationForm, NewTokenForm
from accounts.models import AccessToken, AuditEvent, Organization, Role
from registry.models import Model

AUDIT_ROWS = 100


def _token_form(request, data=None) -> NewTokenForm:
    """Models and organisations a token may be limited to: the user's own and their organisations'."""
    orgs = Organization.objects.filter(memberships__user=request.user).select_related("account")
    reachable = Model.objects.filter(Q(owner=request.user) | Q(owner__in=[org.account for org in orgs]))
    names = [model.full_name for model in reachable.select_related("owner").order_by("owner__username", "name")]
    return NewTokenForm(data, model_names=names, organizations=[org.name for org in orgs])


@login_required
def tokens(request):
    form = _token_form(request, request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        chosen = [name.split("/", 1) for name in data["models"]]
        models = [Model.objects.get(owner__username=owner, name=name) for owner, name in chosen] or None
        organization = (
            Organization.objects.get(account__username=data["organization"]) if data["organization"] else None
        )
        _, new_key = services.create_token(
            request.user,
            data["name"],
            data["scope"],
            models=models,
            organization=organization,
            expires_in_days=int(data["expires_in_days"]) if data["expires_in_days"] else None,
        )
        form = _token_form(request)
    rows = AccessToken.objects.filter(user=request.user).select_related("organization__account")
    return render(request, "accounts/tokens.html", {"form": form, "tokens": rows, "new_key": new_key})


@login_required
@require_POST
def revoke_token(request, token_id):
    token = get_object_or_404(AccessToken, user=request.user, uid=token_id)
    services.revoke_token(token, request.user)
    messages.success(request, f"Revoked the token “{token.name}”. It stopped working at once.")
    return redirect("tokens")


@login_required
def organizations(request):
    form = NewOrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            organization = services.create_organization(
                form.cleaned_data["name"], request.user, form.cleaned_data["description"]
            )
        except services.AccountsError as exc:
            form.add_error("name", exc.message)
        else:
            messages.success(request, f"Created {organization.name}. You are its admin.")
            return redirect("organization", organization.name)
    mine = request.user.memberships.select_related("organization__account")
    return render(request, "accounts/organizations.html", {"form": form, "memberships": mine})


def organization(request, org: str):
    found = get_object_or_404(Organization.objects.select_related("account"), account__username=org)
    role = found.role_of(request.user)
    context = {
        "organization": found,
        "role": role,
        "is_admin": role == Role.ADMIN,
        "models": Model.objects.visible_to(request.user).filter(owner=found.account).with_latest_number(),
        "memberships": found.memberships.select_related("user") if role else [],
        "roles": Role.choices,
        "member_form": MemberForm(),
        "events": AuditEvent.objects.filter(owner=found.account).select_related("actor", "owner")[:AUDIT_ROWS]
        if role == Role.ADMIN
        else [],
    }
    return render(request, "accounts/organization.html", context)


@login_required
@require_POST
def member(request, org: str):
    """Add, change or remove a member (org admins; a member may leave)."""
    found = get_object_or_404(Organization.objects.select_related("account"), account__username=org)
    role = found.role_of(request.user)
    username = request.POST.get("username", "")
    leaving = request.POST.get("remove") and username == request.user.username and role
    if role != Role.ADMIN and not leaving:
        raise Http404("No such page.")
    try:
        if request.POST.get("remove"):
            services.remove_member(found, username, request.user)
            messages.success(request, f"{username} is no longer a member of {found.name}.")
        else:
            form = MemberForm(request.POST)
            if not form.is_valid():
                messages.error(request, "Choose a user and a role (read, write or admin).")
                return redirect("organization", found.name)
            services.set_member(found, username, form.cleaned_data["role"], request.user)
            messages.success(request, f"{username} is now {form.cleaned_data['role']} in {found.name}.")
    except services.AccountsError as exc:
        messages.error(request, exc.message)
    if leaving:
        return redirect("organizations")
    return redirect("organization", found.name)
