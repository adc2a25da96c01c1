"""The settings a flow run (or the ``enso`` command) works with: ``ENSO_*`` plus Prefect Secret blocks.

A password may be given as its value (``ENSO_SMTP_PASSWORD``, ``ENSO_DATABASE_PASSWORD``)
or as the name of a Prefect Secret block that holds it (``ENSO_SMTP_PASSWORD_BLOCK``,
``ENSO_DATABASE_PASSWORD_BLOCK``): then the value lives encrypted in Prefect's database,
not in any worker's environment. :func:`run_settings` reads the environment and
loads the named blocks from the Prefect API. The domain library
(:mod:`enso.config`) knows no Prefect, so this happens here, at the edge.
"""

from __future__ import annotations

from pydantic import SecretStr

from enso.config import SECRET_BLOCK_FIELDS, Settings, load_settings


class SecretBlockError(ValueError):
    """A Secret block named in the settings cannot be read."""


def read_secret_block(name: str, setting: str) -> str:
    """The value of the Prefect Secret block ``name`` (named by setting ``setting``), or a clear error."""
    from prefect.blocks.system import Secret

    try:
        value = Secret.load(name, _sync=True).get()  # type: ignore[union-attr]
    except ValueError as error:
        raise SecretBlockError(
            f"{setting}={name!r}: no Prefect Secret block of that name at the Prefect API ({error}). Create it "
            f"with: python -c \"from prefect.blocks.system import Secret; Secret(value='...').save('{name}')\"") \
            from None
    if not isinstance(value, str) or not value:
        raise SecretBlockError(f"{setting}={name!r}: the Secret block holds no text value")
    return value


def with_secret_blocks(settings: Settings) -> Settings:
    """``settings`` with every password named by a ``*_BLOCK`` setting loaded from its Prefect Secret block."""
    update = {field: SecretStr(read_secret_block(block, f"ENSO_{block_field.upper()}"))
              for field, block_field in SECRET_BLOCK_FIELDS.items()
              if (block := getattr(settings, block_field))}
    return settings.model_copy(update=update) if update else settings


def run_settings() -> Settings:
    """Settings from the ``ENSO_*`` environment, with Secret blocks resolved (one API call per named block)."""
    return with_secret_blocks(load_settings())
