from __future__ import annotations

from django.contrib import admin

from registry.models import Model, Version


@admin.register(Model)
class ModelAdmin(admin.ModelAdmin):
    list_display = ["name", "owner", "public", "created_at"]
    search_fields = ["name", "owner__username"]


@admin.register(Version)
class VersionAdmin(admin.ModelAdmin):
    list_display = ["model", "number", "status", "input_format", "output_format", "created_at"]
    list_filter = ["status"]
    readonly_fields = [field.name for field in Version._meta.fields]
