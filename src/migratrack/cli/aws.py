"""`migratrack aws provision|teardown|terraform|package-lambda` (docs/aws.md)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from migratrack.cli.common import console
from migratrack.errors import ConfigurationError, MigratrackError

app = typer.Typer(help="The AWS side: CloudWatch dashboard and alarms, SNS, Parameter Store, Terraform, the "
                       "Lambda package.", no_args_is_help=True)

T = TypeVar("T")

RegionOpt = Annotated[str | None, typer.Option(
    "--region", help="AWS region [default: AWS_REGION, else AWS_DEFAULT_REGION or the profile's, else us-east-1]")]
EndpointOpt = Annotated[str | None, typer.Option(
    "--endpoint-url", help="an AWS endpoint other than AWS's own [default: MIGRATRACK_AWS_ENDPOINT_URL, "
                           "AWS_ENDPOINT_URL]")]
NamespaceOpt = Annotated[str | None, typer.Option(
    "--namespace", help="CloudWatch namespace [default: MIGRATRACK_CLOUDWATCH_NAMESPACE, Migratrack/Migration]")]
EmailOpt = Annotated[str | None, typer.Option("--email", help="address to subscribe [default: MIGRATION_ALERT_EMAIL]")]
StallOpt = Annotated[int, typer.Option("--stall-minutes", min=1, max=1440,
                                       help="minutes without progress before the stalled alarm fires")]


def _aws(fn: Callable[[], T]) -> T:
    """Run an AWS call: its failures become one clear line, never a traceback."""
    try:
        return fn()
    except MigratrackError:
        raise
    except Exception as exc:
        name = type(exc).__name__
        if name in ("NoCredentialsError", "PartialCredentialsError"):
            raise ConfigurationError("no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                                     "AWS_PROFILE") from None
        if name in ("EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"):
            raise ConfigurationError(f"cannot reach AWS: {exc}; check --endpoint-url and the network") from None
        response: Any = getattr(exc, "response", None)
        if isinstance(response, dict):
            err = response.get("Error", {})
            raise ConfigurationError(f"AWS refused: {err.get('Code')}: {err.get('Message')}") from None
        raise ConfigurationError(f"AWS call failed: {name}: {exc}") from None


def _provisioner(region: str | None, endpoint: str | None, namespace: str | None, email: str | None,
                 stall: int) -> Any:
    from migratrack.aws.provision import Config, provisioner

    config = Config.from_settings(region=region, endpoint_url=endpoint, namespace=namespace, email=email,
                                  stall_minutes=stall)
    return config, provisioner(config)


@app.command()
def provision(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the plan, change nothing")] = False,
    region: RegionOpt = None, endpoint_url: EndpointOpt = None, namespace: NamespaceOpt = None,
    email: EmailOpt = None, stall_minutes: StallOpt = 30,
) -> None:
    """Create (idempotently) the CloudWatch dashboard and alarms, the SNS topic with its e-mail
    subscription, and the Parameter Store entry /migration/alert-topic-arn; all tagged."""
    from migratrack.aws.provision import changed

    config, p = _aws(lambda: _provisioner(region, endpoint_url, namespace, email, stall_minutes))
    steps = _aws(lambda: p.provision(dry_run=dry_run))
    console.print(f"{'plan' if dry_run else 'provision'}: region {config.region}, namespace {config.namespace}",
                  highlight=False, markup=False)
    for s in steps:
        console.print(str(s), highlight=False, markup=False)
    if not changed(steps):
        console.print("nothing to change: everything is as provisioned", highlight=False, markup=False)
    elif dry_run:
        console.print("dry run: nothing was changed", highlight=False, markup=False)


@app.command()
def teardown(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print what would go, remove nothing")] = False,
    region: RegionOpt = None, endpoint_url: EndpointOpt = None, stall_minutes: StallOpt = 30,
) -> None:
    """Remove what `aws provision` created (tagged migratrack:managed=true), and nothing else."""
    from migratrack.aws.provision import changed

    config, p = _aws(lambda: _provisioner(region, endpoint_url, None, None, stall_minutes))
    steps = _aws(lambda: p.teardown(dry_run=dry_run))
    for s in steps:
        console.print(str(s), highlight=False, markup=False)
    if not changed(steps):
        console.print(f"nothing to remove in {config.region}", highlight=False, markup=False)


@app.command()
def terraform(
    output: Annotated[Path, typer.Option("-o", "--output", help="directory to write the .tf files into")],
) -> None:
    """Write the same infrastructure as Terraform (plus the Lambda alert processor)."""
    from migratrack.aws.terraform import write

    if output.exists() and not output.is_dir():
        raise ConfigurationError(f"{output} exists and is not a directory")
    for path in write(output):
        console.print(f"wrote {path}", highlight=False, markup=False)
    console.print("next: migratrack aws package-lambda -o " + str(output / "migratrack-lambda.zip") +
                  ", then terraform init && terraform apply -var migration_alert_email=you@example.com",
                  highlight=False, markup=False)


@app.command("package-lambda")
def package_lambda(
    output: Annotated[Path, typer.Option("-o", "--output", help="the zip file to write")],
) -> None:
    """Build the alert processor's deployment package (handler migratrack.aws.lambda_handler)."""
    from migratrack.aws.package import build

    if output.is_dir():
        raise ConfigurationError(f"{output} is a directory: give the zip file's path, e.g. {output}/lambda.zip")
    try:
        tops = build(output)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {output}: {exc.strerror or exc}") from None
    size = output.stat().st_size / 1024 / 1024
    console.print(f"wrote {output} ({size:.1f} MiB, {len(tops)} top-level entries); handler "
                  "migratrack.aws.lambda_handler", highlight=False, markup=False)
