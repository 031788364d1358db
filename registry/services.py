"""Workflows of the registry: create models, accept uploads."""

from __future__ import annotations

import hashlib
import logging
import tempfile
import zipfile
from pathlib import PurePosixPath
from typing import IO

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from accounts.models import AuditEvent
from accounts.services import record
from conversions import queue
from converter import companions
from converter.errors import ConversionError
from converter.formats import sniff
from registry import readcache, storage
from registry.errors import Refused
from registry.models import RESERVED_ALIASES, Alias, AliasMove, Blob, Model, RetiredName, Version
from webhooks import services as webhooks
from webhooks.models import Event

logger = logging.getLogger(__name__)


class RegistryError(Refused):
    """A request the registry refuses."""


def create_model(
    owner,
    name: str,
    description: str = "",
    public: bool = True,
    allowed_origins: list[str] | None = None,
    actor=None,
    token=None,
) -> Model:
    """A new model of ``owner`` (a user or an organisation account), made by
    ``actor`` (default: the owner itself)."""
    actor = actor or owner
    retired = RetiredName.objects.filter(owner=owner, name=name).first()
    try:
        with transaction.atomic():
            model = Model.objects.create(
                owner=owner,
                name=name,
                description=description,
                public=public,
                allowed_origins=allowed_origins or [],
                number_floor=retired.last_number if retired else 0,
            )
    except IntegrityError:
        whose = "You already have" if owner.pk == actor.pk else f"{owner.username} already has"
        raise RegistryError(f"{whose} a model named '{name}'.", status=409) from None
    record(AuditEvent.Action.MODEL_CREATED, owner, actor=actor, model=model, token=token, public=public)
    return model


LONG_TEXT_FIELDS = ("readme", "description")


def update_model(model: Model, changes: dict, actor, token=None) -> Model:
    before = {field: getattr(model, field) for field in changes}
    for field, value in changes.items():
        setattr(model, field, value)
    model.save()
    changed = {
        # Texts are logged by length: the log says a README changed, it does not keep every copy.
        field: {"from_chars": len(before[field]), "to_chars": len(value)}
        if field in LONG_TEXT_FIELDS
        else {"from": before[field], "to": value}
        for field, value in changes.items()
        if before[field] != value
    }
    if changed:
        record(AuditEvent.Action.MODEL_UPDATED, model.owner, actor=actor, model=model, token=token, changed=changed)
    return model


def _hash_and_size(fileobj: IO[bytes]) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    fileobj.seek(0)
    while chunk := fileobj.read(1024 * 1024):
        digest.update(chunk)
        size += len(chunk)
    fileobj.seek(0)
    return digest.hexdigest(), size


def upload_version(
    model: Model,
    user,
    fileobj: IO[bytes],
    filename: str,
    requested_format: str = "",
    variants: list[str] | None = None,
    signature: str = "",
    token=None,
    companion_files: list | None = None,
) -> Version:
    """Store the upload (and the companion files sent with it), create the
    next version and queue its conversion.

    The file is checked cheaply first (empty? a model at all?) so obvious
    mistakes get an immediate 400 instead of a failed version.
    """
    packed_companions = pack_companions(companion_files or [])
    sha256, size = _hash_and_size(fileobj)
    if size == 0:
        raise RegistryError("The uploaded file is empty.")
    if size > settings.MAX_UPLOAD_BYTES:
        raise RegistryError(f"The upload is larger than the {settings.MAX_UPLOAD_BYTES} byte limit.", status=413)
    try:
        sniff(fileobj)  # magic bytes only: what the upload holds is for the sandbox to find out
    except ConversionError as exc:
        raise RegistryError(str(exc)) from None

    version = Version(
        model=model,
        created_by=user,
        upload_name=filename[:255],
        upload_size=size,
        upload_sha256=sha256,
        requested_format=requested_format,
        variants={quantization: {"status": "pending"} for quantization in variants or []},
        signature=signature,
    )
    version.upload_key = f"uploads/{version.uid}/upload"
    storage.put_blob(version.upload_key, fileobj)
    if packed_companions is not None:
        version.companions_upload_key = f"uploads/{version.uid}/companions.zip"
        storage.put_blob(version.companions_upload_key, packed_companions)
    try:
        with transaction.atomic():
            Model.objects.select_for_update().filter(pk=model.pk).first()
            version.number = max(model.versions.aggregate(n=Max("number"))["n"] or 0, model.number_floor) + 1
            version.save()
            transaction.on_commit(lambda: queue.enqueue_conversion(version.pk))
    except Exception:
        storage.delete_prefix(f"uploads/{version.uid}")
        raise
    record(
        AuditEvent.Action.VERSION_UPLOADED,
        model.owner,
        actor=user,
        model=model,
        token=token,
        version=version.number,
        upload={"name": version.upload_name, "size": size, "sha256": sha256},
        variants=sorted(version.variants),
        companions=[upload.name for upload in companion_files or []],
    )
    return version


def pack_companions(files: list) -> IO[bytes] | None:
    """Companion files sent with an upload, checked by name and size (their
    content is for the sandbox to check) and packed into one zip."""
    if not files:
        return None
    if len(files) > companions.MAX_COUNT:
        raise RegistryError(f"Send at most {companions.MAX_COUNT} companion files.")
    names = [PurePosixPath(upload.name.replace("\\", "/")).name for upload in files]
    for name, upload in zip(names, files, strict=True):
        if refusal := companions.name_refusal(name):
            raise RegistryError(f"Companion files: {refusal}")
        if upload.size > companions.MAX_BYTES:
            raise RegistryError(f"The companion file {name} is larger than {companions.MAX_BYTES // 1024**2} MiB.")
    if len(set(names)) != len(names):
        raise RegistryError("Two companion files have the same name.")
    if sum(upload.size for upload in files) > companions.MAX_TOTAL_BYTES:
        raise RegistryError(
            f"The companion files are larger than {companions.MAX_TOTAL_BYTES // 1024**2} MiB together."
        )
    packed, _ = pack_directory(files, names)
    return packed


def delete_model(model: Model, actor=None, token=None) -> None:
    """Delete a model with its versions, then their stored files, keeping
    weight blobs that another model also uses."""
    uids = list(model.versions.values_list("uid", flat=True))
    shas = list(model.blobs.values_list("sha256", flat=True))
    name = model.full_name
    last_number = max(model.versions.aggregate(n=Max("number"))["n"] or 0, model.number_floor)
    with transaction.atomic():
        # First among this transaction's commit hooks: a webhook enqueue that
        # fails after the commit must not keep a deleted model served.
        readcache.forget_after_commit()
        RetiredName.objects.update_or_create(owner=model.owner, name=model.name, defaults={"last_number": last_number})
        record(
            AuditEvent.Action.MODEL_DELETED, model.owner, actor=actor, model=model, token=token, versions=last_number
        )
        webhooks.model_deleted(model)
        model.delete()

    def remove_files() -> None:
        try:
            for uid in uids:
                storage.delete_prefix(f"uploads/{uid}")
                storage.delete_prefix(f"artifacts/{uid}")
            still_used = set(Blob.objects.filter(sha256__in=shas).values_list("sha256", flat=True))
            for sha in set(shas) - still_used:
                storage.delete_blob(storage.blob_key(sha))
        except storage.StorageError:
            logger.exception("could not delete all files of deleted model %s", name)

    transaction.on_commit(remove_files)


def request_variant(version: Version, quantization: str, actor=None, token=None) -> Version:
    """Ask for a variant of a version (idempotent)."""
    with transaction.atomic():
        version = Version.objects.select_for_update().select_related("model__owner").get(pk=version.pk)
        if version.status == Version.Status.FAILED:
            raise RegistryError(f"Version {version.number} failed to convert, so it has no variants.", status=409)
        if quantization == Version.GRAPH_VARIANT and (refusal := version.graph_variant_refusal()):
            raise RegistryError(refusal, status=409)
        current = version.variants.get(quantization, {}).get("status")
        if current in ("pending", "ready"):
            return version
        version.variants = {**version.variants, quantization: {"status": "pending"}}
        version.save(update_fields=["variants"])
        record(
            AuditEvent.Action.VARIANT_REQUESTED,
            version.model.owner,
            actor=actor,
            model=version.model,
            token=token,
            version=version.number,
            variant=quantization,
        )
        if version.is_ready:
            transaction.on_commit(lambda: queue.enqueue_variants(version.pk))
    return version


def move_alias(model: Model, name: str, number: int, user, rollback: bool = False, token=None) -> tuple[Alias, bool]:
    """Point alias ``name`` at version ``number`` (which must be ready) and
    log the move. Returns the alias and whether it was created."""
    if name in RESERVED_ALIASES or name.isdigit():
        raise RegistryError(f"'{name}' is reserved and cannot be used as an alias name.")
    version = model.versions.filter(number=number).first()
    if version is None:
        raise RegistryError(f"Model '{model.full_name}' has no version {number}.", status=404)
    if not version.is_ready:
        raise RegistryError(f"Version {number} is {version.status}; only a ready version can be aliased.", status=409)
    with transaction.atomic():
        alias = Alias.objects.select_for_update().filter(model=model, name=name).first()
        previous = alias.version if alias else None
        created = alias is None
        if created:
            alias = Alias.objects.create(model=model, name=name, version=version)
        elif previous != version:
            alias.version = version
            alias.save(update_fields=["version", "updated_at"])
        if previous != version:
            AliasMove.objects.create(
                model=model, alias=name, from_version=previous, to_version=version, moved_by=user, rollback=rollback
            )
            webhooks.emit(
                Event.ALIAS_MOVED,
                model,
                version=version,
                alias=name,
                rollback=rollback,
                from_version=previous.number if previous else None,
            )
            record(
                AuditEvent.Action.ALIAS_ROLLED_BACK if rollback else AuditEvent.Action.ALIAS_MOVED,
                model.owner,
                actor=user,
                model=model,
                token=token,
                alias=name,
                from_version=previous.number if previous else None,
                to_version=version.number,
            )
    return alias, created


def rollback_alias(model: Model, name: str, user, token=None) -> Alias:
    """Move the alias back to where its last move took it from."""
    last = AliasMove.objects.filter(model=model, alias=name).first()
    if last is None:
        raise RegistryError(f"Model '{model.full_name}' has no alias '{name}'.", status=404)
    if last.from_version is None:
        raise RegistryError(f"Alias '{name}' has no earlier version to roll back to.", status=409)
    alias, _ = move_alias(model, name, last.from_version.number, user, rollback=True, token=token)
    return alias


def delete_alias(model: Model, name: str, user, token=None) -> None:
    with transaction.atomic():
        alias = Alias.objects.select_for_update().filter(model=model, name=name).first()
        if alias is None:
            raise RegistryError(f"Model '{model.full_name}' has no alias '{name}'.", status=404)
        AliasMove.objects.create(model=model, alias=name, from_version=alias.version, to_version=None, moved_by=user)
        record(
            AuditEvent.Action.ALIAS_DELETED,
            model.owner,
            actor=user,
            model=model,
            token=token,
            alias=name,
            from_version=alias.version.number,
        )
        alias.delete()


def pack_directory(files: list, paths: list[str]) -> tuple[IO[bytes], str]:
    """A model directory uploaded as separate files (a browser's folder
    picker) becomes one zip, so it flows like any archive upload."""
    packed = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024, suffix=".zip")
    seen: set[str] = set()
    total = 0
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_STORED) as archive:
        for upload, path in zip(files, paths, strict=True):
            clean = PurePosixPath(path.replace("\\", "/"))
            if clean.is_absolute() or ".." in clean.parts or not clean.parts or str(clean) in seen:
                raise RegistryError(f"The path {path!r} is not a relative path inside the model directory.")
            seen.add(str(clean))
            total += upload.size
            if total > settings.MAX_UPLOAD_BYTES:
                raise RegistryError(
                    f"The upload is larger than the {settings.MAX_UPLOAD_BYTES} byte limit.", status=413
                )
            with archive.open(str(clean), "w") as target:
                for chunk in upload.chunks():
                    target.write(chunk)
    packed.seek(0)
    top = PurePosixPath(paths[0]).parts
    return packed, f"{top[0] if len(top) > 1 else 'model'}.zip"
