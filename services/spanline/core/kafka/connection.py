"""aiokafka keyword arguments derived from settings, shared by producer, consumer and admin."""

from __future__ import annotations

from typing import Any

from spanline.core.settings import KafkaSettings


class BootstrapMissing(RuntimeError):
    pass


def common_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    if not settings.bootstrap:
        raise BootstrapMissing(
            "no Kafka bootstrap servers: set SPANLINE_KAFKA_BOOTSTRAP=host:port "
            "(or use `spanline up`, which starts the bundled broker)"
        )
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap,
        "client_id": settings.client_id,
        "request_timeout_ms": settings.request_timeout_ms,
        "security_protocol": settings.security_protocol,
    }
    if settings.sasl_mechanism:
        kwargs["sasl_mechanism"] = settings.sasl_mechanism
        kwargs["sasl_plain_username"] = settings.sasl_username
        if settings.sasl_password is not None:
            kwargs["sasl_plain_password"] = settings.sasl_password.get_secret_value()
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        kwargs["ssl_context"] = create_ssl_context()
    return kwargs
