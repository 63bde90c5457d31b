"""``manage.py seed_demo``: an idempotent demo setup for local development (``make run``).

Ensures a ``demo`` workspace with a Segment source, a superuser ``admin`` (admin of the
workspace) and a disabled webhook integration, then prints how to log in and send a test
event, whether integrations may call local URLs (``make run`` allows them) and, the first
time, the webhook's generated signing secret (never again). Running it again changes
nothing but the admin password, which is read from (or, the first time,
generated into) ``var/demo-admin-password``.
"""

import os
import secrets
import shlex
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.urls import reverse

from integrations.models import Integration, Source, Workspace, WorkspaceMembership

WORKSPACE_SLUG = "demo"
WORKSPACE_NAME = "Demo"
SOURCE_NAME = "Demo Segment source"
ADMIN_USERNAME = "admin"
INTEGRATION_NAME = "Demo webhook"
INTEGRATION_SETTINGS = {"url": "https://example.com/webhook"}


def default_password_file() -> Path:
    return Path(settings.BASE_DIR) / "var" / "demo-admin-password"


def read_or_create_password(path: Path) -> str:
    """The password stored in ``path``; a new random one is written there (0600) if none."""
    try:
        password = path.read_text().strip()
    except FileNotFoundError:
        password = ""
    if password:
        return password
    password = secrets.token_urlsafe(12)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    os.chmod(path, 0o600)  # an existing (empty) file keeps its mode with O_CREAT
    return password


def local_urls_line() -> str:
    """Whether integrations may call local URLs here (``make run`` allows them)."""
    if settings.INTEGRATIONS_ALLOW_PRIVATE_URLS:
        return (
            "  Local URLs:      allowed here (INTEGRATIONS_ALLOW_PRIVATE_URLS=true): the demo\n"
            "                   webhook may point at a receiver on this machine, e.g.\n"
            "                   http://127.0.0.1:9000/"
        )
    return (
        "  Local URLs:      refused (INTEGRATIONS_ALLOW_PRIVATE_URLS is off): point the demo\n"
        "                   webhook at a public URL"
    )


class Command(BaseCommand):
    help = (
        "Create (idempotently) a demo workspace, Segment source, superuser 'admin' and a "
        "disabled webhook integration, and print how to use them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--base-url",
            default="http://127.0.0.1:8000",
            help="Base URL of the console, used in the printed URLs (default: %(default)s).",
        )
        parser.add_argument(
            "--password-file",
            type=Path,
            default=None,
            help="File holding the admin password; created with a random one if missing "
            "(default: var/demo-admin-password in the project).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        base_url = options["base_url"].rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise CommandError("--base-url must start with http:// or https://")
        password_file: Path = options["password_file"] or default_password_file()
        password = read_or_create_password(password_file)

        with transaction.atomic():
            workspace, _ = Workspace.objects.get_or_create(
                slug=WORKSPACE_SLUG, defaults={"name": WORKSPACE_NAME}
            )
            source = (
                Source.objects.filter(workspace=workspace, name=SOURCE_NAME, kind="segment")
                .order_by("pk")
                .first()
            )
            if source is None:
                source = Source.objects.create(
                    workspace=workspace, name=SOURCE_NAME, kind="segment"
                )

            user_model = get_user_model()
            admin, _ = user_model.objects.get_or_create(username=ADMIN_USERNAME)
            changed = not (admin.is_superuser and admin.is_staff and admin.is_active)
            admin.is_superuser = admin.is_staff = admin.is_active = True
            # Re-hashing an unchanged password would log out every open admin session.
            if not admin.check_password(password):
                admin.set_password(password)
                changed = True
            if changed:
                admin.save()

            WorkspaceMembership.objects.update_or_create(
                user=admin, workspace=workspace, defaults={"role": WorkspaceMembership.Role.ADMIN}
            )

            # Created disabled; if someone later enables or edits it, it is left alone.
            # Its generated signing secret is printed once, when it is created.
            webhook_secret = ""
            if not Integration.objects.filter(
                workspace=workspace, name=INTEGRATION_NAME, kind="webhook"
            ).exists():
                integration = Integration(
                    workspace=workspace, name=INTEGRATION_NAME, kind="webhook", enabled=False
                )
                integration.set_settings(dict(INTEGRATION_SETTINGS))
                integration.save()
                webhook_secret = integration.generated_secrets["secret"]

        track_body = '{"userId":"demo-user","event":"Demo Event"}'
        curl = " ".join(
            [
                "curl -u",
                shlex.quote(f"{source.write_key}:"),
                "-H 'Content-Type: application/json'",
                "-d",
                shlex.quote(track_body),
                f"{base_url}/v1/track",
            ]
        )
        lines = [
            "== Demo console ===============================================================",
            f"  Admin:           {base_url}{reverse('admin:index')}",
            f"  Login:           {ADMIN_USERNAME} / {password}",
            f"                   (password kept in {password_file})",
            f"  Write key:       {source.write_key}",
            f"  Segment webhook: {base_url}{source.webhook_path}",
            local_urls_line(),
            "  Send a test track call:",
            f"    {curl}",
        ]
        if webhook_secret:
            lines += [
                f"  Webhook secret:  {webhook_secret}",
                f"                   ({INTEGRATION_NAME}'s signing secret: shown only now)",
            ]
        lines.append("=" * 79)
        self.stdout.write("\n".join(lines))
