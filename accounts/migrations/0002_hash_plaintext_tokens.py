"""Tokens made before hashed tokens (DRF's authtoken, stored in plaintext)
become hashed write tokens that keep working; the plaintext table goes."""

from __future__ import annotations

import uuid

from django.db import migrations
from knox.crypto import hash_token
from knox.settings import CONSTANTS

PLAINTEXT_TABLE = "authtoken_token"


def hash_plaintext_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if PLAINTEXT_TABLE not in connection.introspection.table_names():
        return
    AccessToken = apps.get_model("accounts", "AccessToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {PLAINTEXT_TABLE}")
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        token = AccessToken(
            digest=hash_token(key),
            token_key=key[: CONSTANTS.TOKEN_KEY_LENGTH],
            user_id=user_id,
            uid=uuid.uuid4(),
            name="API token (from before hashed tokens)",
            scope="write",
        )
        token.save(force_insert=True)
        AccessToken.objects.filter(pk=token.pk).update(created=created)
    schema_editor.execute(f"DROP TABLE {PLAINTEXT_TABLE}")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [migrations.RunPython(hash_plaintext_tokens, migrations.RunPython.noop)]
