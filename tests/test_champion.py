"""The registry keeps at most one champion, even when two promotions race."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from db import registry
from db.engine import make_engine


@pytest.fixture
def two_candidates(engine, trained_store) -> tuple[str, str]:
    """The trained store's model registered twice in a fresh store, as candidates ``a`` and ``b``."""
    trained = registry.load_model(make_engine(trained_store["url"]), trained_store["version"])
    with engine.begin() as conn:
        for version in ("a", "b"):
            registry.register(conn, trained, sst_source="cobe", base_period="1991-2020", metrics={},
                              device="cpu", version=version)
    return "a", "b"


def test_the_store_refuses_a_second_champion(engine, two_candidates) -> None:
    registry.promote(engine, "a")
    with pytest.raises(IntegrityError):
        with engine.begin() as conn:
            conn.execute(text("UPDATE model SET status = 'champion' WHERE version = 'b'"))
    registry.promote(engine, "b")
    assert {m.version: m.status for m in registry.list_models(engine)} == {"a": "retired", "b": "champion"}


# PostgreSQL only: SQLite serialises writers, so promotions cannot interleave there.
@pytest.mark.parametrize("store_url", ["postgresql"], indirect=True)
def test_racing_promotions_leave_one_champion_and_a_clear_error(engine, two_candidates) -> None:
    outcome: dict[str, BaseException | None] = {}

    def promote_b() -> None:
        try:
            registry.promote(engine, "b")
            outcome["b"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["b"] = exc

    with engine.connect() as conn:
        with conn.begin():
            registry.promote_in(conn, "a")
            racer = threading.Thread(target=promote_b)
            racer.start()
            time.sleep(1.0)
            assert racer.is_alive(), "the second promotion must wait for the first one's transaction"
        racer.join(timeout=30)
    assert isinstance(outcome["b"], registry.ConcurrentPromotion)
    assert "enso models promote b" in str(outcome["b"])
    assert registry.champion(engine).version == "a"
    assert {m.version: m.status for m in registry.list_models(engine)} == {"a": "champion", "b": "candidate"}
