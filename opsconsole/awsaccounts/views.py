"""The AWS accounts page: everyone in the console sees it, admins register and change
accounts, operators check a baseline. A user limited to some tenants (tenants.scope) sees
no account: each one is a part of the fleet."""

from __future__ import annotations

import json

from django.contrib import messages
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from opsconsole.accounts.access import POST, role_required
from opsconsole.accounts.models import Role
from opsconsole.awsaccounts import services
from opsconsole.awsaccounts.forms import AwsAccountForm
from opsconsole.awsaccounts.models import DEFAULT_NAME, AwsAccount
from opsconsole.jobs.models import Job, JobStatus
from tenants.scope import refuse_scoped


def _fleet_only(request: HttpRequest, **_) -> None:
    refuse_scoped(request.user, "AWS accounts")


viewer_only = role_required(Role.VIEWER, visible=_fleet_only)
admin_only = role_required(Role.ADMIN, visible=_fleet_only)
admin_post = role_required(Role.ADMIN, visible=_fleet_only, methods=POST)
operator_post = role_required(Role.OPERATOR, visible=_fleet_only, methods=POST)


@viewer_only
def account_list(request: HttpRequest) -> HttpResponse:
    from tenants.models import Tenant

    accounts = AwsAccount.objects.annotate(tenant_count=Count("tenants"))
    return render(
        request,
        "awsaccounts/account_list.html",
        {
            "accounts": accounts,
            "default_name": DEFAULT_NAME,
            "default_tenants": Tenant.objects.filter(aws_account__isnull=True).count(),
        },
    )


@admin_only
def account_create(request: HttpRequest) -> HttpResponse:
    form = AwsAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        account = services.aws_account_register(form=form, request=request)
        messages.success(
            request, f"AWS account {account.name} registered: check its baseline in each region."
        )
        return redirect("awsaccounts:detail", name=account.name)
    return render(
        request, "awsaccounts/account_form.html", {"form": form, "title": "Register an AWS account"}
    )


@admin_only
def account_edit(request: HttpRequest, name: str) -> HttpResponse:
    account = get_object_or_404(AwsAccount, name=name)
    form = AwsAccountForm(request.POST or None, instance=account)
    if request.method == "POST" and form.is_valid():
        services.aws_account_update(form=form, request=request)
        messages.success(request, f"AWS account {account.name} saved.")
        return redirect("awsaccounts:detail", name=account.name)
    return render(
        request,
        "awsaccounts/account_form.html",
        {"form": form, "title": f"Edit {account.name}", "account": account},
    )


def _console_principal() -> str:
    """The console's own identity, as its last account check saw it (no AWS call here)."""
    job = Job.objects.filter(kind="account_check", status=JobStatus.SUCCEEDED).first()
    step = job and job.steps.filter(name="identity").first()
    arn = ((step and step.output) or {}).get("arn", "")
    if ":assumed-role/" in arn:
        # arn:aws:sts::<id>:assumed-role/<role>/<session> -> the role a trust policy names.
        head, _, rest = arn.partition(":assumed-role/")
        return head.replace(":sts::", ":iam::") + ":role/" + rest.split("/")[0]
    return arn


def trust_policy(account: AwsAccount, principal: str) -> str:
    """The trust policy the account's role needs, as the customer pastes it."""
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": principal or "<the console's role ARN>"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": account.external_id}},
            }
        ],
    }
    return json.dumps(policy, indent=2)


@viewer_only
def account_detail(request: HttpRequest, name: str) -> HttpResponse:
    account = get_object_or_404(AwsAccount, name=name)
    total, offboarded = services.tenant_counts(account)
    checks = [(check, services.missing_items(check.job)) for check in services.last_checks(account)]
    return render(
        request,
        "awsaccounts/account_detail.html",
        {
            "account": account,
            "tenant_total": total,
            "tenant_offboarded": offboarded,
            "checks": checks,
            "trust_policy": trust_policy(account, _console_principal()),
            "session_name": f"opsconsole-{account.name}",
        },
    )


@admin_post
def account_delete(request: HttpRequest, name: str) -> HttpResponse:
    account = get_object_or_404(AwsAccount, name=name)
    if request.POST.get("confirmed") != "yes":
        return render(
            request,
            "core/confirm_page.html",
            {
                "id": "confirm-delete",
                "action": request.path,
                "title": f"Remove the AWS account {account.name}?",
                "lines": [
                    "The console forgets the account and its role; nothing in AWS changes.",
                    "Refused while a tenant lives in it.",
                ],
                "confirm_label": "Remove",
                "cancel_url": reverse("awsaccounts:detail", args=[account.name]),
            },
        )
    try:
        services.aws_account_delete(account=account, request=request)
    except services.AccountInUse as exc:
        messages.error(request, str(exc))
        return redirect("awsaccounts:detail", name=account.name)
    messages.success(request, f"AWS account {name} removed.")
    return redirect("awsaccounts:list")


@operator_post
def account_check(request: HttpRequest, name: str, region: str) -> HttpResponse:
    account = get_object_or_404(AwsAccount, name=name)
    try:
        services.aws_account_check(account=account, region=region, request=request)
    except services.AccountCheckRefused as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Checking {account.name} in {region}.")
    return redirect("awsaccounts:detail", name=account.name)
