from __future__ import annotations

from django.shortcuts import render


def home(request):
    return render(request, "registry/home.html", {})


def create_model(request):
    return render(request, "registry/home.html", {})


def model_detail(request, owner, name):
    return render(request, "registry/home.html", {})
