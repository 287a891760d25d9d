"""``migratrack aws terraform -o DIR``: the infrastructure of ``aws provision`` as Terraform, plus
the Lambda alert processor (function, IAM role, log group, the SNS subscription that triggers it).

The resources come from aws/spec.py, as provision's do. Three files are written: variables.tf,
main.tf and outputs.tf. Terraform runs nothing here; ``terraform apply`` needs the Lambda package
(``migratrack aws package-lambda -o migratrack-lambda.zip``) beside them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from migratrack.aws import spec

NS_MARK = "__MIGRATRACK_NAMESPACE__"
REGION_MARK = "__MIGRATRACK_REGION__"
LAMBDA_RUNTIME = "python3.11"


def _q(value: str) -> str:
    """An HCL string literal (JSON's escaping is HCL's, but for template sequences)."""
    return json.dumps(value).replace("${", "$${").replace("%{", "%%{")


def _heredoc(value: Any, **refs: str) -> str:
    """A JSON document as an HCL heredoc, with the namespace and region (and ``refs``: marker ->
    expression) interpolated; terraform fmt leaves a heredoc's text as it is."""
    text = json.dumps(value, indent=2, sort_keys=True).replace("${", "$${").replace("%{", "%%{")
    text = text.replace(NS_MARK, "${var.namespace}").replace(REGION_MARK, "${var.region}")
    for mark, expr in refs.items():
        text = text.replace(mark, "${" + expr + "}")
    return "<<-EOT\n" + "\n".join("    " + line for line in text.splitlines()) + "\n  EOT"


VARIABLES = f'''variable "migration_alert_email" {{
  description = "Address that receives migration alerts (the seed's MIGRATION_ALERT_EMAIL)"
  type        = string
}}

variable "region" {{
  description = "AWS region"
  type        = string
  default     = {_q(spec.DEFAULT_REGION)}
}}

variable "namespace" {{
  description = "CloudWatch namespace migratrack publishes to (MIGRATRACK_CLOUDWATCH_NAMESPACE)"
  type        = string
  default     = {_q(spec.DEFAULT_NAMESPACE)}
}}

variable "stall_minutes" {{
  description = "Minutes without a progress report before the stalled alarm fires"
  type        = number
  default     = {spec.DEFAULT_STALL_MINUTES}
}}

variable "lambda_package" {{
  description = "The alert processor's deployment package (migratrack aws package-lambda -o FILE)"
  type        = string
  default     = "migratrack-lambda.zip"
}}

variable "slack_webhook_url" {{
  description = "Slack incoming webhook the alert processor posts to (empty: none)"
  type        = string
  default     = ""
  sensitive   = true
}}
'''

OUTPUTS = '''output "alert_topic_arn" {
  value = aws_sns_topic.alerts.arn
}

output "dashboard_name" {
  value = aws_cloudwatch_dashboard.migrations.dashboard_name
}

output "alert_processor_arn" {
  value = aws_lambda_function.alert_processor.arn
}
'''


def _alarm(key: str, alarm: spec.Alarm) -> str:
    periods = "var.stall_minutes" if alarm.metric == spec.PROGRESS_UPDATES else str(alarm.evaluation_periods)
    return f'''resource "aws_cloudwatch_metric_alarm" "{key}" {{
  alarm_name          = {_q(alarm.name)}
  alarm_description   = {_q(alarm.description) if alarm.metric != spec.PROGRESS_UPDATES else
                          '"No progress reported for ${var.stall_minutes} minutes (no data counts as stalled)"'}
  namespace           = var.namespace
  metric_name         = {_q(alarm.metric)}
  statistic           = {_q(alarm.statistic)}
  comparison_operator = {_q(alarm.comparison)}
  threshold           = {alarm.threshold:g}
  period              = {alarm.period}
  evaluation_periods  = {periods}
  treat_missing_data  = {_q(alarm.treat_missing_data)}
  alarm_actions       = [aws_sns_topic.alerts.arn]
  tags                = local.tags
}}
'''


def main_tf() -> str:
    body = spec.dashboard_body(NS_MARK, REGION_MARK)
    tags = ", ".join(f"{_q(k)} = {_q(v)}" for k, v in spec.tags().items())
    alarm_keys = {"migratrack-phase-failed": "phase_failed", "migratrack-error-rate-high": "error_rate_high",
                  "migratrack-migration-stalled": "migration_stalled"}
    alarms = "\n".join(_alarm(alarm_keys[a.name], a) for a in spec.alarms())
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "__LOG_GROUP_ARN__:*"},
        {"Effect": "Allow", "Action": ["ssm:GetParameter"], "Resource": "__PARAMETER_ARN__"}]}
    assume = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                      "Principal": {"Service": "lambda.amazonaws.com"}}]}
    return f'''terraform {{
  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }}
  }}
}}

provider "aws" {{
  region = var.region
}}

locals {{
  tags = {{ {tags} }}
}}

# -- alerts: the topic, its e-mail subscription, and where the alert channel finds it ----------

resource "aws_sns_topic" "alerts" {{
  name = {_q(spec.TOPIC_NAME)}
  tags = local.tags
}}

resource "aws_sns_topic_subscription" "email" {{
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = var.migration_alert_email
}}

resource "aws_ssm_parameter" "alert_topic_arn" {{
  name        = {_q(spec.PARAMETER_NAME)}
  description = "migratrack: the SNS topic alerts go to"
  type        = "String"
  value       = aws_sns_topic.alerts.arn
  tags        = local.tags
}}

# -- CloudWatch: the dashboard (the seed's six widgets) and the alarms ------------------------

resource "aws_cloudwatch_dashboard" "migrations" {{
  dashboard_name = {_q(spec.DASHBOARD_NAME)}
  dashboard_body = {_heredoc(body)}
}}

{alarms}
# -- the Lambda alert processor: SNS -> migratrack's alert routing ----------------------------

resource "aws_cloudwatch_log_group" "alert_processor" {{
  name              = {_q(spec.LOG_GROUP)}
  retention_in_days = 30
  tags              = local.tags
}}

resource "aws_iam_role" "alert_processor" {{
  name               = "migratrack-alert-processor"
  assume_role_policy = {_heredoc(assume)}
  tags               = local.tags
}}

resource "aws_iam_role_policy" "alert_processor" {{
  name   = "migratrack-alert-processor"
  role   = aws_iam_role.alert_processor.id
  policy = {_heredoc(policy, __LOG_GROUP_ARN__="aws_cloudwatch_log_group.alert_processor.arn",
                    __PARAMETER_ARN__="aws_ssm_parameter.alert_topic_arn.arn")}
}}

resource "aws_lambda_function" "alert_processor" {{
  function_name    = {_q(spec.LAMBDA_NAME)}
  role             = aws_iam_role.alert_processor.arn
  handler          = {_q(spec.LAMBDA_HANDLER)}
  runtime          = {_q(LAMBDA_RUNTIME)}
  filename         = var.lambda_package
  source_code_hash = filebase64sha256(var.lambda_package)
  timeout          = 30
  environment {{
    variables = {{
      MIGRATION_ALERT_EMAIL = var.migration_alert_email
      SLACK_WEBHOOK_URL     = var.slack_webhook_url
      MIGRATRACK_LOG_JSON   = "1"
    }}
  }}
  tags       = local.tags
  depends_on = [aws_cloudwatch_log_group.alert_processor, aws_iam_role_policy.alert_processor]
}}

resource "aws_lambda_permission" "sns" {{
  statement_id  = "AllowSNSInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.alert_processor.function_name
  principal     = "sns.amazonaws.com"
  source_arn    = aws_sns_topic.alerts.arn
}}

resource "aws_sns_topic_subscription" "alert_processor" {{
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "lambda"
  endpoint  = aws_lambda_function.alert_processor.arn
}}
'''


def write(directory: Path) -> list[Path]:
    """Write variables.tf, main.tf and outputs.tf into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for name, text in (("variables.tf", VARIABLES), ("main.tf", main_tf()), ("outputs.tf", OUTPUTS)):
        path = directory / name
        path.write_text(text, encoding="utf-8")
        out.append(path)
    return out
