"""Admin of workspace members: inviting one on one screen (username or email, role,
workspace), and the members inline of a workspace's page.

A workspace's admins invite existing accounts into the workspaces they administer; the
invited user is made a staff user if needed, so that they can log in (what they see stays
scoped to their memberships). A superuser may also invite someone who has no account yet:
the account is created with a generated password, shown once on the page that answers
(the console sends no email; the new member changes it with the admin's "Change
password").
"""

import secrets
from dataclasses import dataclass
from typing import Any, ClassVar

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.cache import add_never_cache_headers

from integrations.admin.scoping import (
    ADMIN_ROLES,
    ScopedHistoryAdmin,
    ScopedTabularInline,
    workspace_ids,
)
from integrations.models import WorkspaceMembership

Role = WorkspaceMembership.Role


@dataclass(frozen=True)
class Invitation:
    """What inviting a member did besides the membership."""

    username: str
    #: The generated password of an account created by the invitation (shown once).
    password: str | None = None
    made_staff: bool = False


def find_user(given: str) -> Any:
    """The account whose username is ``given`` or, failing that, whose email it is; None
    when there is none. Raises ``ValidationError`` when several accounts share the email."""
    user_model = get_user_model()
    manager = user_model._default_manager
    try:
        return manager.get_by_natural_key(given)
    except user_model.DoesNotExist:
        pass
    if "@" not in given:
        return None
    matches = list(manager.filter(email__iexact=given)[:2])
    if len(matches) > 1:
        raise ValidationError(
            "Several accounts have this email: give the username instead.", code="ambiguous"
        )
    return matches[0] if matches else None


class MembershipForm(forms.ModelForm):
    """A membership whose user is given by username or email: only superusers get to
    browse users (and, with ``may_create_accounts``, create the account of a newcomer).

    The user and the workspace of an existing membership stay as they are (remove it and
    add another instead).
    """

    username = forms.CharField(
        max_length=254,
        label="Username or email",
        help_text="The member's login name, or the email of their account.",
    )
    #: Refuse demoting the workspace's last admin (inline, the formset checks that).
    checks_last_admin = True
    #: Set for superusers by the admin: a newcomer's account is created.
    may_create_accounts: ClassVar[bool] = False

    class Meta:
        model = WorkspaceMembership
        fields = ["username", "workspace", "role"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.new_account: tuple[str, str] | None = None  # (username, email)
        self.invitation: Invitation | None = None
        if self.instance.pk:
            self.fields["username"].initial = self.instance.user.get_username()
            for name in ("username", "workspace"):
                if name in self.fields:
                    self.fields[name].disabled = True
        elif self.may_create_accounts:
            self.fields["username"].help_text += " Without an account, one is created."

    def clean_username(self) -> str:
        if self.instance.pk:
            return self.instance.user.get_username()
        given = self.cleaned_data["username"].strip()
        user = find_user(given)
        if user is None:
            if not self.may_create_accounts:
                raise ValidationError(
                    f"No user is called “{given}” and no account has this email; a superuser "
                    "creates accounts.",
                    code="unknown_user",
                )
            self.new_account = self._account_for(given)
            return given
        if not user.is_active:
            raise ValidationError(
                "This account is deactivated; a superuser reactivates accounts.", code="inactive"
            )
        self.instance.user = user
        return user.get_username()

    @staticmethod
    def _account_for(given: str) -> tuple[str, str]:
        """The username and email of a newcomer's account (an email is both)."""
        user_model = get_user_model()
        email = ""
        if "@" in given:
            validate_email(given)
            email = given
        username = user_model._meta.get_field(user_model.USERNAME_FIELD)
        if not isinstance(username, models.Field):
            raise TypeError(f"{user_model.USERNAME_FIELD} is not a field of {user_model}")
        username.run_validators(given)
        return given, email

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        member: WorkspaceMembership = self.instance
        workspace = cleaned.get("workspace")
        workspace_id = workspace.pk if workspace else member.workspace_id
        if (
            member.user_id
            and workspace_id
            and WorkspaceMembership.objects.filter(
                user_id=member.user_id, workspace_id=workspace_id
            )
            .exclude(pk=member.pk)
            .exists()
        ):
            self.add_error("username", "This user is already a member of this workspace.")
        if (
            self.checks_last_admin
            and member.pk
            and cleaned.get("role") != Role.ADMIN
            and not WorkspaceMembership.keeps_an_admin(member.workspace_id, removed=[member.pk])
        ):
            self.add_error("role", WorkspaceMembership.LAST_ADMIN_MESSAGE)
        return cleaned

    def save(self, commit: bool = True) -> WorkspaceMembership:
        if self.instance.pk is None:
            self.invitation = self._admit()
        return super().save(commit)

    def _admit(self) -> Invitation:
        """Create the newcomer's account, or make the invited user able to log in."""
        if self.new_account is not None:
            username, email = self.new_account
            password = secrets.token_urlsafe(12)
            self.instance.user = get_user_model()._default_manager.create_user(
                username, email, password, is_staff=True
            )
            return Invitation(username, password=password)
        user = self.instance.user
        if user.is_staff:
            return Invitation(user.get_username())
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        return Invitation(user.get_username(), made_staff=True)


class InlineMembershipForm(MembershipForm):
    checks_last_admin = False

    class Meta(MembershipForm.Meta):
        fields = ["username", "role"]


class MembershipFormSet(forms.BaseInlineFormSet):
    """A workspace's members, edited together: each user once, and an admin kept."""

    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        kept = [
            form
            for form in self.forms
            # A private formset method, missing from the stubs.
            if form.cleaned_data and not self._should_delete_form(form)  # type: ignore[attr-defined]
        ]
        usernames = [f.cleaned_data.get("username") for f in kept]
        if len(usernames) != len(set(usernames)):
            raise ValidationError("A user is listed more than once.")
        if self.instance.pk is None:
            return
        removed = [
            f.instance.pk
            for f in self.forms
            if f.instance.pk and (f not in kept or f.cleaned_data.get("role") != Role.ADMIN)
        ]
        added = sum(f.cleaned_data.get("role") == Role.ADMIN for f in kept)
        if not WorkspaceMembership.keeps_an_admin(self.instance.pk, removed=removed, added=added):
            raise ValidationError(WorkspaceMembership.LAST_ADMIN_MESSAGE)


class MembershipUsername:
    """The username, for read-only membership pages (the form field is not a model field)."""

    @admin.display(description="Username")
    def username(self, membership: WorkspaceMembership) -> str:
        return membership.user.get_username()


class MembershipInline(MembershipUsername, ScopedTabularInline):
    model = WorkspaceMembership
    form = InlineMembershipForm
    formset = MembershipFormSet
    fields = ["username", "role"]
    extra = 0
    write_roles = ADMIN_ROLES


@admin.register(WorkspaceMembership)
class WorkspaceMembershipAdmin(MembershipUsername, ScopedHistoryAdmin):
    """Members see their workspaces' members; the workspaces' admins invite members (the
    add page) and manage them."""

    form = MembershipForm
    write_roles = ADMIN_ROLES
    list_display = ["user", "workspace", "role", "created_at"]
    list_filter = ["role", "workspace"]
    list_select_related = ["user", "workspace"]
    search_fields = ["user__username", "user__email", "workspace__name"]
    fields = ["username", "workspace", "role"]

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        """Also refused for the last admin of a workspace."""
        return super().has_delete_permission(request, obj) and (
            not isinstance(obj, WorkspaceMembership)  # None: may the user delete any
            or obj.role != Role.ADMIN
            or WorkspaceMembership.keeps_an_admin(obj.workspace_id, removed=[obj.pk], lock=False)
        )

    def get_form(
        self,
        request: HttpRequest,
        obj: WorkspaceMembership | None = None,
        change: bool = False,
        **kwargs: Any,
    ) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, change, **kwargs)
        creates = obj is None and request.user.is_superuser
        return type(form.__name__, (form,), {"may_create_accounts": creates})

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """The workspace, when the user administers only one (or it is in the URL)."""
        initial: dict[str, Any] = super().get_changeform_initial_data(request)
        administered = workspace_ids(request, ADMIN_ROLES)
        if "workspace" not in initial and administered is not None and len(administered) == 1:
            initial["workspace"] = next(iter(administered))
        return initial

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        extra_context = {**(extra_context or {}), "title": "Invite a member"}
        return super().add_view(request, form_url, extra_context)

    def save_model(
        self, request: HttpRequest, obj: WorkspaceMembership, form: Any, change: bool
    ) -> None:
        super().save_model(request, obj, form, change)
        request._invitation = form.invitation  # type: ignore[attr-defined]  # for response_add

    def response_add(
        self, request: HttpRequest, obj: WorkspaceMembership, post_url_continue: Any = None
    ) -> HttpResponse:
        invitation: Invitation | None = getattr(request, "_invitation", None)
        if invitation is None:
            return super().response_add(request, obj, post_url_continue)
        if invitation.password:
            return self._new_account_page(request, obj, invitation)
        message = f"{invitation.username} is now {obj.get_role_display()} of {obj.workspace}."
        if invitation.made_staff:
            message += " They were given access to the console (a staff account) to log in."
        self.message_user(request, message)
        view = "add" if "_addanother" in request.POST else "changelist"
        return HttpResponseRedirect(reverse(f"admin:integrations_workspacemembership_{view}"))

    def _new_account_page(
        self, request: HttpRequest, membership: WorkspaceMembership, invitation: Invitation
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Account created",
            "membership": membership,
            "invitation": invitation,
            "login_url": request.build_absolute_uri(reverse("admin:login")),
        }
        response = TemplateResponse(
            request, "admin/integrations/workspacemembership/new_account.html", context
        )
        add_never_cache_headers(response)  # the password is shown once, never cached
        return response
