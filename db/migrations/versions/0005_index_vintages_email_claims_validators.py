"""index vintages kept whole per product, exactly-once email claims, HTTP validators

* ``index_vintage`` becomes append-only and per product (``product``, ``seq``,
  ``stored_at``, ``acceptance``, ``changes``, ``etag``, ``last_modified``; the
  checksum is no longer unique: a file may return to an earlier content); every
  vintage keeps its values in the new table ``index_value``; the former table
  ``index_observation`` becomes a view of the newest ``nino34`` vintage (through
  the view ``index_current``). Vintages replaced before this migration kept no
  values: they stay as records of the files (checksum, URL, time) with an empty
  ``index_value``; the vintage the store held becomes the newest one.
* ``email_delivery`` gains the state 'sending' and a partial unique index: one
  claim per (init month, recipients) at a time.
* ``sst_grid`` gains ``etag`` / ``last_modified`` (conditional re-downloads).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

SENDING = sa.text("status = 'sending'")

FORECAST_VERIFICATION = """
CREATE VIEW forecast_verification AS
SELECT f.model_version, f.kind, f.init_month, f.target_month, f.lead_months,
       f.nino34 AS forecast_nino34, f.nino34_anomaly AS forecast_anomaly, f.phase AS forecast_phase,
       f.p_la_nina, f.p_neutral, f.p_el_nino,
       o.nino34 AS observed_nino34, o.anomaly AS observed_anomaly, o.oni AS observed_oni,
       o.phase AS observed_phase,
       f.nino34_anomaly - o.anomaly AS anomaly_error,
       CASE WHEN o.phase IS NULL THEN NULL WHEN o.phase = f.phase THEN 1 ELSE 0 END AS phase_hit
FROM forecast f
LEFT JOIN index_observation o ON o.month = f.target_month
"""

INDEX_CURRENT = """
CREATE VIEW index_current AS
SELECT v.product, x.month, x.nino34, x.anomaly, x.oni, x.phase, v.format AS source, x.vintage_id,
       v.seq AS vintage_seq, v.stored_at AS updated_at
FROM index_value x
JOIN index_vintage v ON v.id = x.vintage_id
WHERE v.seq = (SELECT max(v2.seq) FROM index_vintage v2 WHERE v2.product = v.product)
"""

INDEX_OBSERVATION = """
CREATE VIEW index_observation AS
SELECT month, product, nino34, anomaly, oni, phase, source, vintage_id, updated_at
FROM index_current
WHERE product = 'nino34'
"""


def upgrade() -> None:
    bind = op.get_bind()
    op.execute("DROP VIEW forecast_verification")
    held = bind.execute(sa.text("SELECT DISTINCT vintage_id FROM index_observation")).scalars().all()
    with op.batch_alter_table('index_vintage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('product', sa.String(length=16), nullable=False, server_default='nino34'))
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('stored_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('etag', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('last_modified', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('acceptance', sa.String(length=16), nullable=False,
                                      server_default='checked'))
        batch_op.add_column(sa.Column('changes', sa.Text(), nullable=False, server_default=''))
        batch_op.drop_constraint('uq_index_vintage_sha256', type_='unique')
    op.execute("UPDATE index_vintage SET seq = id, stored_at = downloaded_at")
    if held:  # the vintage the store held is the newest
        bind.execute(sa.text("UPDATE index_vintage SET seq = :top WHERE id = :held"),
                     {"top": bind.execute(sa.text("SELECT max(id) FROM index_vintage")).scalar_one() + 1,
                      "held": held[0]})
    with op.batch_alter_table('index_vintage', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('stored_at', existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_unique_constraint('uq_index_vintage_product_seq', ['product', 'seq'])
        batch_op.create_check_constraint(op.f('ck_index_vintage_acceptance_values'),
                                         "acceptance IN ('checked', 'accept-shrink')")
    op.create_table('index_value',
    sa.Column('vintage_id', sa.Integer(), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('nino34', sa.Float(), nullable=True),
    sa.Column('anomaly', sa.Float(), nullable=True),
    sa.Column('oni', sa.Float(), nullable=True),
    sa.Column('phase', sa.String(length=8), nullable=True),
    sa.CheckConstraint("phase IN ('la_nina', 'neutral', 'el_nino')", name=op.f('ck_index_value_phase_values')),
    sa.ForeignKeyConstraint(['vintage_id'], ['index_vintage.id'], name=op.f('fk_index_value_vintage_id_index_vintage')),
    sa.PrimaryKeyConstraint('vintage_id', 'month', name=op.f('pk_index_value'))
    )
    op.execute("INSERT INTO index_value (vintage_id, month, nino34, anomaly, oni, phase) "
               "SELECT vintage_id, month, nino34, anomaly, oni, phase FROM index_observation")
    op.drop_table('index_observation')
    for view in (INDEX_CURRENT, INDEX_OBSERVATION, FORECAST_VERIFICATION):
        op.execute(view)

    with op.batch_alter_table('sst_grid', schema=None) as batch_op:
        batch_op.add_column(sa.Column('etag', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('last_modified', sa.Text(), nullable=True))

    with op.batch_alter_table('email_delivery', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_email_delivery_status_values'), type_='check')
        batch_op.create_check_constraint(op.f('ck_email_delivery_status_values'),
                                         "status IN ('sending', 'sent', 'failed')")
    op.create_index('uq_email_delivery_claim', 'email_delivery', ['init_month', 'recipients'], unique=True,
                    postgresql_where=SENDING, sqlite_where=SENDING)


def downgrade() -> None:
    op.drop_index('uq_email_delivery_claim', table_name='email_delivery')
    op.execute("UPDATE email_delivery SET status = 'failed' WHERE status = 'sending'")
    with op.batch_alter_table('email_delivery', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_email_delivery_status_values'), type_='check')
        batch_op.create_check_constraint(op.f('ck_email_delivery_status_values'), "status IN ('sent', 'failed')")
    with op.batch_alter_table('sst_grid', schema=None) as batch_op:
        batch_op.drop_column('last_modified')
        batch_op.drop_column('etag')

    for view in ("forecast_verification", "index_observation", "index_current"):
        op.execute(f"DROP VIEW {view}")
    op.create_table('index_observation',
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('nino34', sa.Float(), nullable=True),
    sa.Column('anomaly', sa.Float(), nullable=True),
    sa.Column('oni', sa.Float(), nullable=True),
    sa.Column('phase', sa.String(length=8), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('vintage_id', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("phase IN ('la_nina', 'neutral', 'el_nino')", name=op.f('ck_index_observation_phase_values')),
    sa.ForeignKeyConstraint(['vintage_id'], ['index_vintage.id'], name=op.f('fk_index_observation_vintage_id_index_vintage')),
    sa.PrimaryKeyConstraint('month', name=op.f('pk_index_observation'))
    )
    # The newest nino34 vintage becomes the stored index again; older vintages and other products go.
    op.execute("INSERT INTO index_observation (month, nino34, anomaly, oni, phase, source, vintage_id, updated_at) "
               "SELECT x.month, x.nino34, x.anomaly, x.oni, x.phase, v.format, v.id, v.stored_at "
               "FROM index_value x JOIN index_vintage v ON v.id = x.vintage_id "
               "WHERE v.product = 'nino34' AND v.seq = "
               "(SELECT max(seq) FROM index_vintage WHERE product = 'nino34')")
    op.drop_table('index_value')
    op.execute("DELETE FROM index_vintage WHERE id NOT IN (SELECT DISTINCT vintage_id FROM index_observation)")
    with op.batch_alter_table('index_vintage', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_index_vintage_acceptance_values'), type_='check')
        batch_op.drop_constraint('uq_index_vintage_product_seq', type_='unique')
        for column in ('changes', 'acceptance', 'last_modified', 'etag', 'stored_at', 'seq', 'product'):
            batch_op.drop_column(column)
        batch_op.create_unique_constraint(op.f('uq_index_vintage_sha256'), ['sha256'])
    op.execute(FORECAST_VERIFICATION)
