"""the product version of every SST grid; the view relative_index

NOAA replaced ERSSTv5 with ERSSTv6 in 2026 (the whole record moved by about
0.2 °C), so a store must never mix two versions of one source: each grid now
records its product version ('cobe-sst v1', 'ersst v5', 'ersst v6'), and an
index on (source, product_version) lets every ingest check it cheaply. Grids
stored before this revision were COBE-SST (v1) or ERSSTv5, the only ERSST
version the system fetched until now.

The view ``relative_index`` is the relative Niño 3.4 index and RONI as the
system reads them (db.phase): CPC's file (product 'relative') where it has the
month, and before its first month the index computed from the stored grids
(product 'relative-grids'); ``product`` says which.

Revision ID: 0008
Revises: 0005
Create Date: 2026-12-02 12:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0005'
branch_labels = None
depends_on = None

RELATIVE_INDEX = """
CREATE VIEW relative_index AS
SELECT c.month, c.anomaly AS relative_anomaly, c.oni AS roni, c.phase, c.product, c.source, c.vintage_id,
       c.updated_at
FROM index_current c
WHERE c.product = 'relative'
   OR (c.product = 'relative-grids'
       AND (c.month < (SELECT min(r.month) FROM index_current r WHERE r.product = 'relative')
            OR NOT EXISTS (SELECT 1 FROM index_current r WHERE r.product = 'relative')))
"""


def upgrade() -> None:
    with op.batch_alter_table('sst_grid', schema=None) as batch_op:
        batch_op.add_column(sa.Column('product_version', sa.String(length=32), nullable=True))
    op.execute("UPDATE sst_grid SET product_version = CASE source WHEN 'cobe' THEN 'cobe-sst v1' "
               "WHEN 'ersst' THEN 'ersst v5' ELSE source END")
    with op.batch_alter_table('sst_grid', schema=None) as batch_op:
        batch_op.alter_column('product_version', existing_type=sa.String(length=32), nullable=False)
        batch_op.create_index('ix_sst_grid_source_product_version', ['source', 'product_version'], unique=False)
    op.execute(RELATIVE_INDEX)


def downgrade() -> None:
    op.execute("DROP VIEW relative_index")
    with op.batch_alter_table('sst_grid', schema=None) as batch_op:
        batch_op.drop_index('ix_sst_grid_source_product_version')
        batch_op.drop_column('product_version')
