"""E-mail over SMTP (stdlib smtplib). ``smtp_url``: ``smtp://[user:password@]host[:port]``, with
``?starttls=true`` to upgrade the connection (port 587 by default then), or ``smtps://`` for TLS
from the start (port 465)."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from migratrack.alerts.config import ChannelConfig
from migratrack.alerts.model import Answer, Notification
from migratrack.errors import ConfigurationError


@dataclass(frozen=True)
class SMTPServer:
    host: str
    port: int
    tls: bool
    starttls: bool
    user: str | None
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> SMTPServer:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ConfigurationError(f"an SMTP URL looks like smtp://user:password@host:587?starttls=true "
                                     f"or smtps://host:465; got scheme {parts.scheme!r}")
        query = {k: v[-1].lower() for k, v in parse_qs(parts.query).items()}
        tls = parts.scheme == "smtps"
        starttls = query.get("starttls", "false") in ("1", "true", "yes")
        port = parts.port or (465 if tls else 587 if starttls else 25)
        return cls(parts.hostname, port, tls, starttls, unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None)


def compose(notice: Notification, sender: str, to: list[str]) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = notice.title[:200]
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    # the same over every retry, so a mail system that saw it already can tell
    msg["Message-ID"] = f"<{notice.key}@migratrack>"
    body = "\n".join(notice.lines())
    if notice.link:
        body += f"\n\nDashboard: {notice.link}"
    msg.set_content(body + f"\n\nfingerprint {notice.fingerprint}\n")
    return msg


@dataclass
class EmailChannel:
    name: str
    server: SMTPServer
    sender: str
    to: list[str]
    timeout: float
    supports_resolve: bool = True

    def send(self, notice: Notification) -> Answer:
        s = self.server
        msg = compose(notice, self.sender, self.to)
        try:
            smtp = (smtplib.SMTP_SSL(s.host, s.port, timeout=self.timeout, context=ssl.create_default_context())
                    if s.tls else smtplib.SMTP(s.host, s.port, timeout=self.timeout))
            with smtp:
                if s.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if s.user:
                    smtp.login(s.user, s.password or "")
                refused = smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            return Answer(ok=False, retry=False, detail=f"recipients refused: {sorted(exc.recipients)}")
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            return Answer(ok=False, retry=exc.smtp_code < 500, detail=f"SMTP {exc.smtp_code} {text}"[:300])
        except (OSError, smtplib.SMTPException) as exc:
            return Answer(ok=False, retry=True, detail=f"no answer: {type(exc).__name__}: {exc}"[:300])
        detail = f"SMTP accepted for {len(self.to) - len(refused)} of {len(self.to)} recipients"
        return Answer(ok=True, retry=False, detail=detail + (f"; refused {sorted(refused)}" if refused else ""))


def build(name: str, config: ChannelConfig) -> EmailChannel:
    assert config.smtp_url is not None
    return EmailChannel(name, SMTPServer.from_url(config.smtp_url), config.sender, list(config.to), config.timeout)
