"""`migratrack aws terraform` parsed back with python-hcl2: the same resources provision creates,
plus the Lambda alert processor; and `package-lambda`: a zip with an importable handler."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import hcl2
import pytest
from typer.testing import CliRunner

from migratrack.aws import spec
from migratrack.cli.main import app


def unquote(value: Any) -> Any:
    return value[1:-1] if isinstance(value, str) and value.startswith('"') and value.endswith('"') else value


def load(directory: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """resource type -> name -> attributes, from main.tf."""
    doc = hcl2.loads((directory / "main.tf").read_text())
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for block in doc["resource"]:
        for rtype, named in block.items():
            for name, body in named.items():
                out.setdefault(unquote(rtype), {})[unquote(name)] = body
    return out


def test_the_terraform_holds_what_provision_creates(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["aws", "terraform", "-o", str(tmp_path / "tf")])
    assert result.exit_code == 0, result.output
    d = tmp_path / "tf"
    variables = {unquote(k) for block in hcl2.loads((d / "variables.tf").read_text())["variable"] for k in block}
    assert {"migration_alert_email", "region", "namespace"} <= variables
    r = load(d)

    topic = r["aws_sns_topic"]["alerts"]
    assert unquote(topic["name"]) == spec.TOPIC_NAME and "local.tags" in topic["tags"]
    subs = {unquote(s["protocol"]): s for s in r["aws_sns_topic_subscription"].values()}
    assert "var.migration_alert_email" in subs["email"]["endpoint"]
    assert "aws_lambda_function.alert_processor.arn" in subs["lambda"]["endpoint"]
    assert unquote(r["aws_ssm_parameter"]["alert_topic_arn"]["name"]) == spec.PARAMETER_NAME
    assert "aws_sns_topic.alerts.arn" in r["aws_ssm_parameter"]["alert_topic_arn"]["value"]

    dash = r["aws_cloudwatch_dashboard"]["migrations"]
    assert unquote(dash["dashboard_name"]) == spec.DASHBOARD_NAME
    titles = re.findall(r'"title": "([^"]+)"', dash["dashboard_body"])
    assert titles == [w["properties"]["title"] for w in spec.dashboard_body("ns", "r")["widgets"]]
    text = dash["dashboard_body"]
    text = text[text.index("{"):text.rindex("}") + 1].replace("${var.namespace}", "NS").replace("${var.region}", "R")
    assert json.loads(text) == spec.dashboard_body("NS", "R")  # provision's dashboard, to the letter

    alarms = {unquote(a["alarm_name"]): a for a in r["aws_cloudwatch_metric_alarm"].values()}
    for want in spec.alarms():
        have = alarms.pop(want.name)
        assert unquote(have["metric_name"]) == want.metric
        assert float(have["threshold"]) == want.threshold
        assert unquote(have["comparison_operator"]) == want.comparison
        assert unquote(have["treat_missing_data"]) == want.treat_missing_data
        assert "aws_sns_topic.alerts.arn" in str(have["alarm_actions"])
    assert alarms == {}

    fn = r["aws_lambda_function"]["alert_processor"]
    assert unquote(fn["handler"]) == "migratrack.aws.lambda_handler"
    assert unquote(fn["function_name"]) == spec.LAMBDA_NAME
    assert "aws_iam_role.alert_processor.arn" in fn["role"]
    assert unquote(r["aws_cloudwatch_log_group"]["alert_processor"]["name"]) == "/aws/lambda/migration-tracker"
    assert "sts:AssumeRole" in r["aws_iam_role"]["alert_processor"]["assume_role_policy"]
    assert unquote(r["aws_lambda_permission"]["sns"]["principal"]) == "sns.amazonaws.com"


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed")
def test_terraform_fmt_finds_nothing_to_change(tmp_path: Path) -> None:
    CliRunner().invoke(app, ["aws", "terraform", "-o", str(tmp_path)])
    done = subprocess.run(["terraform", "fmt", "-check", "-diff", str(tmp_path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_lambda_package_holds_an_importable_handler(tmp_path: Path) -> None:
    out = tmp_path / "lambda.zip"
    result = CliRunner().invoke(app, ["aws", "package-lambda", "-o", str(out)])
    assert result.exit_code == 0, result.output
    with zipfile.ZipFile(out) as z:
        names = z.namelist()
        assert "migratrack/aws/__init__.py" in names and not any("__pycache__" in n for n in names)
        z.extractall(tmp_path / "pkg")
    # a bare interpreter (-S: no site-packages, -I: no environment): only what the zip holds
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import migratrack.aws, migratrack.service, httpx, yaml; "
            "import json; print(json.dumps([callable(migratrack.aws.lambda_handler), migratrack.__file__]))")
    done = subprocess.run([sys.executable, "-S", "-I", "-c", code, str(tmp_path / "pkg")], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    handler_ok, where = json.loads(done.stdout)
    assert handler_ok and where.startswith(str(tmp_path / "pkg"))


def test_package_lambda_refuses_a_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["aws", "package-lambda", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output
