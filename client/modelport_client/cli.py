"""``modelport``: push models to a Modelport registry, wait for them, move aliases, pull files.

Exit status: 0 done; 1 the registry refused or the conversion failed (the
reason is printed); 2 wrong usage.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from modelport_client import config
from modelport_client.client import Client, ModelportError, split_ref

VARIANTS = ["float16", "uint8", "uint16", "graph"]
FORMATS = ["keras-h5", "keras-v3", "saved-model", "keras-saved-model", "tfjs"]

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = config.load()
    if args.command == "login":
        return login(args, settings)
    client = Client(args.url or settings["url"], settings["token"])
    try:
        return args.run(client, args)
    except ModelportError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "status": exc.status}))
        else:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
        return 1
    finally:
        client.close()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="modelport", description="Push models to a Modelport registry, wait for them, move aliases, pull files."
    )
    top.add_argument("--url", help="the registry (default: $MODELPORT_URL, then `modelport login`'s)")
    top.add_argument("--json", action="store_true", help="print JSON for scripts")
    commands = top.add_subparsers(dest="command", required=True)

    login_cmd = commands.add_parser("login", help="store the registry URL and a token (file mode 0600)")
    login_cmd.add_argument("--token", help="an access token (asked for if not given)")

    push = commands.add_parser("push", help="upload a new version of a model")
    push.add_argument("model", metavar="OWNER/NAME")
    push.add_argument("path", type=Path, metavar="PATH", help="a model file, or a folder (SavedModel, TF.js)")
    push.add_argument("--create", action="store_true", help="create the model first if it does not exist")
    push.add_argument("--private", action="store_true", help="with --create: a private model")
    push.add_argument("--wait", action="store_true", help="wait until the version is ready or failed")
    push.add_argument("--alias", help="with --wait: point this alias at the version once ready")
    push.add_argument("--variant", action="append", default=[], choices=VARIANTS, help="also make this variant")
    push.add_argument("--format", choices=FORMATS, default="", help="override format detection")
    push.add_argument("--timeout", type=float, default=3600, help="seconds --wait waits (default 3600)")
    push.set_defaults(run=run_push)

    status = commands.add_parser("status", help="a version's status (default: latest)")
    status.add_argument("model", metavar="OWNER/NAME[@REF]")
    status.set_defaults(run=run_status)

    ls = commands.add_parser("ls", help="models you can see")
    ls.add_argument("owner", nargs="?", metavar="OWNER")
    ls.set_defaults(run=run_ls)

    alias = commands.add_parser("alias", help="set, roll back or show the log of an alias")
    alias.add_argument("action", choices=["set", "rollback", "log"])
    alias.add_argument("model", metavar="OWNER/NAME")
    alias.add_argument("alias", metavar="ALIAS")
    alias.add_argument("version", nargs="?", type=int, metavar="VERSION", help="for set")
    alias.set_defaults(run=run_alias)

    pull = commands.add_parser("pull", help="download model.json and weights, ready to host elsewhere")
    pull.add_argument("model", metavar="OWNER/NAME[@REF]")
    pull.add_argument("directory", type=Path, metavar="DIR")
    pull.set_defaults(run=run_pull)
    return top


def login(args, settings) -> int:
    url = (args.url or settings["url"]).rstrip("/")
    token = args.token or getpass.getpass(f"Access token for {url} (from its Tokens page): ")
    client = Client(url, token)
    try:
        client.api("GET", "tokens/")
    except ModelportError as exc:
        err.print(f"[red]error:[/red] {url} did not accept the token: {exc}", highlight=False)
        return 1
    finally:
        client.close()
    path = config.save(url, token)
    out.print(f"Signed in to {url}; saved in {path}.", highlight=False)
    return 0


def run_push(client: Client, args) -> int:
    owner, name, ref = split_ref(args.model)
    if ref:
        raise ModelportError("push takes OWNER/NAME, without @REF.")
    if args.alias and not args.wait:
        raise ModelportError("--alias needs --wait: an alias can only point at a ready version.")
    if args.create and client.create_model(owner, name, public=not args.private, exist_ok=True):
        _say(args, f"Created {owner}/{name}.")
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        console=err, disable=args.json, transient=True,
    ) as bar:  # fmt: skip

        def progress(total: int):
            task = bar.add_task(f"Uploading {args.path.name}", total=total)
            return lambda size: bar.advance(task, size)

        version = client.upload(owner, name, args.path, args.variant, args.format, progress)
    _say(args, f"Uploaded {args.path.name} as {owner}/{name} version {version['number']}.")
    if not args.wait:
        _emit(args, version)
        return 0
    with err.status("Converting…", spinner="dots") as line:
        version = client.wait(
            owner, name, version["number"], args.timeout,
            on_poll=lambda v: None if args.json else line.update(f"Version {v['number']}: {v['status']}…"),
        )  # fmt: skip
    if version["status"] != "ready":
        if args.json:
            _emit(args, version)
        else:
            err.print(f"[red]Version {version['number']} failed:[/red] {version['error']}", highlight=False)
        return 1
    result = {**version}
    if args.alias:
        result["alias"] = client.set_alias(owner, name, args.alias, version["number"])
    if args.json:
        _emit(args, result)
    else:
        out.print(f"[green]Version {version['number']} is ready[/green]: {version['model_url']}", highlight=False)
        if args.alias:
            out.print(f"{args.alias} → version {version['number']}: {result['alias']['model_url']}", highlight=False)
    return 0


def run_status(client: Client, args) -> int:
    owner, name, ref = split_ref(args.model)
    version = client.version(owner, name, ref or "latest")
    if args.json:
        _emit(args, version)
        return 0
    table = Table(show_header=False, box=None)
    parity = version.get("parity") or {}
    rows = [
        ("version", str(version["number"])),
        ("status", version["status"] + (f" — {version['error']}" if version["error"] else "")),
        ("format", f"{version['input_format'] or '?'} → {version['format'] or '?'}"),
        ("url", version["model_url"] or "—"),
        ("parity", f"max error {parity['max_abs_error']:.2g}" if parity.get("max_abs_error") is not None else "—"),
        ("variants", ", ".join(f"{v['variant']} ({v['status']})" for v in version["variants"]) or "—"),
    ]
    for key, value in rows:
        table.add_row(f"[bold]{key}[/bold]", value)
    out.print(table)
    return 0 if version["status"] != "failed" else 1


def run_ls(client: Client, args) -> int:
    models = client.models(args.owner)
    if args.json:
        _emit(args, models)
        return 0
    table = Table("model", "latest", "visibility", "description")
    for model in models:
        table.add_row(
            model["full_name"], str(model["latest_version"] or "—"),
            "public" if model["public"] else "private", model["description"][:60],
        )  # fmt: skip
    out.print(table)
    return 0


def run_alias(client: Client, args) -> int:
    owner, name, _ = split_ref(args.model)
    if args.action == "set":
        if args.version is None:
            raise ModelportError("alias set needs a VERSION.")
        result = client.set_alias(owner, name, args.alias, args.version)
    elif args.action == "rollback":
        result = client.rollback(owner, name, args.alias)
    else:
        moves = client.alias_log(owner, name, args.alias)
        if args.json:
            _emit(args, moves)
            return 0
        table = Table("when", "who", "from", "to", "")
        for move in moves:
            table.add_row(
                move["moved_at"], move["moved_by"] or "—", str(move["from_version"] or "—"),
                str(move["to_version"] or "—"), "rollback" if move["rollback"] else "",
            )  # fmt: skip
        out.print(table)
        return 0
    if args.json:
        _emit(args, result)
    else:
        out.print(f"{args.alias} → version {result['version']}: {result['model_url']}", highlight=False)
    return 0


def run_pull(client: Client, args) -> int:
    owner, name, ref = split_ref(args.model)
    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), console=err, disable=args.json,
        transient=True,
    ) as bar:  # fmt: skip

        def progress(total: int, filename: str):
            task = bar.add_task(filename[:16], total=total or None)
            return lambda size: bar.advance(task, size)

        pulled = client.pull(owner, name, ref or "latest", args.directory, progress)
    if args.json:
        _emit(args, {**pulled, "directory": str(args.directory)})
    else:
        out.print(
            f"Pulled {owner}/{name} version {pulled['version']} into {args.directory}: {len(pulled['files'])} files.",
            highlight=False,
        )
    return 0


def _say(args, message: str) -> None:
    if not args.json:
        err.print(message, highlight=False)


def _emit(args, data) -> None:
    if args.json:
        print(json.dumps(data))
    else:
        out.print_json(data=data)


if __name__ == "__main__":
    sys.exit(main())
