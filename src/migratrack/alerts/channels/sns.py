"""AWS SNS through boto3 (the ``[aws]`` extra). The topic's ARN comes from the configuration or
from a Parameter Store name (the seed's ``/migration/alert-topic-arn``). boto3's own settings
apply: ``AWS_ENDPOINT_URL`` (or the channel's ``endpoint_url``), ``AWS_REGION`` /
``AWS_DEFAULT_REGION`` (or the channel's ``region``), and its credential chain."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from migratrack.alerts.config import DEFAULT_SNS_PARAMETER, ChannelConfig
from migratrack.alerts.model import Answer, Notification
from migratrack.errors import ConfigurationError

_RETRY_CODES = {"Throttling", "ThrottlingException", "ThrottledException", "InternalError", "InternalFailure",
                "ServiceUnavailable", "KMSThrottling", "RequestTimeout"}


def client(service: str, region: str | None, endpoint_url: str | None) -> Any:
    try:
        import boto3
    except ImportError as exc:
        raise ConfigurationError("the SNS channel needs boto3: pip install 'migratrack[aws]'") from exc
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None
    return boto3.client(service, region_name=region, endpoint_url=endpoint)


@dataclass
class SNSChannel:
    name: str
    topic_arn: str | None
    parameter: str
    region: str | None
    endpoint_url: str | None
    supports_resolve: bool = True
    _sns: Any = field(default=None, repr=False)

    def resolve_topic(self) -> str:
        """The topic ARN: configured, or read once from the Parameter Store."""
        if self.topic_arn is None:
            ssm = client("ssm", self.region, self.endpoint_url)
            self.topic_arn = str(ssm.get_parameter(Name=self.parameter, WithDecryption=True)["Parameter"]["Value"])
        return self.topic_arn

    def send(self, notice: Notification) -> Answer:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            topic = self.resolve_topic()
            if self._sns is None:
                self._sns = client("sns", self.region, self.endpoint_url)
            args: dict[str, Any] = {
                "TopicArn": topic, "Subject": _subject(notice.title),
                "Message": json.dumps(notice.to_dict(), default=str),
                "MessageAttributes": {
                    "level": {"DataType": "String", "StringValue": notice.level.value},
                    "kind": {"DataType": "String", "StringValue": notice.kind.value},
                    "migration": {"DataType": "String", "StringValue": notice.migration_id},
                },
            }
            if topic.endswith(".fifo"):  # a FIFO topic de-duplicates retries by this id itself
                args["MessageDeduplicationId"] = notice.key[:128]
                args["MessageGroupId"] = notice.migration_id[:128]
            reply = self._sns.publish(**args)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            return Answer(ok=False, retry=code in _RETRY_CODES or status >= 500,
                          detail=f"AWS {code or status}: {exc.response.get('Error', {}).get('Message', '')}"[:300])
        except (BotoCoreError, OSError) as exc:
            return Answer(ok=False, retry=True, detail=f"no answer: {type(exc).__name__}: {exc}"[:300])
        return Answer(ok=True, retry=False, detail=f"SNS MessageId {reply.get('MessageId')}")


def _subject(title: str) -> str:
    # SNS subjects: at most 100 printable ASCII characters, no line breaks
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in title)
    return text[:100] or "migratrack alert"


def build(name: str, config: ChannelConfig) -> SNSChannel:
    return SNSChannel(name, config.topic_arn, config.parameter or DEFAULT_SNS_PARAMETER, config.region,
                      config.endpoint_url)
