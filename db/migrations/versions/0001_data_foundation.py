"""data foundation: sst grids, index, ingest log

Revision ID: 0001
Revises: 
Create Date: 2026-11-29 09:01:58.781349
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('index_vintage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('downloaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_month', sa.Date(), nullable=False),
    sa.Column('last_month', sa.Date(), nullable=False),
    sa.Column('n_months', sa.Integer(), nullable=False),
    sa.Column('base_period', sa.String(length=16), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_index_vintage')),
    sa.UniqueConstraint('sha256', name=op.f('uq_index_vintage_sha256'))
    )
    op.create_table('ingest_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('month', sa.Date(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('url', sa.Text(), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('run_id', sa.String(length=64), nullable=True),
    sa.CheckConstraint("outcome IN ('stored', 'unchanged', 'revised', 'not_published', 'rejected', 'failed')", name=op.f('ck_ingest_log_outcome_values')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingest_log'))
    )
    with op.batch_alter_table('ingest_log', schema=None) as batch_op:
        batch_op.create_index('ix_ingest_log_source_month', ['source', 'month'], unique=False)

    op.create_table('sst_grid',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('month', sa.Date(), nullable=False),
    sa.Column('nlat', sa.Integer(), nullable=False),
    sa.Column('nlon', sa.Integer(), nullable=False),
    sa.Column('lat', sa.LargeBinary(), nullable=False),
    sa.Column('lon', sa.LargeBinary(), nullable=False),
    sa.Column('values_zstd', sa.LargeBinary(), nullable=False),
    sa.Column('land_mask_zstd', sa.LargeBinary(), nullable=False),
    sa.Column('land_fraction', sa.Float(), nullable=False),
    sa.Column('nino34', sa.Float(), nullable=False),
    sa.Column('source_url', sa.Text(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('file_size', sa.BigInteger(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('first_stored_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sst_grid')),
    sa.UniqueConstraint('source', 'month', name='uq_sst_grid_source_month')
    )
    if op.get_bind().dialect.name == "postgresql":
        # The blobs are zstd already: skip PostgreSQL's own TOAST compression (pure CPU cost).
        for column in ("values_zstd", "land_mask_zstd"):
            op.execute(f"ALTER TABLE sst_grid ALTER COLUMN {column} SET STORAGE EXTERNAL")
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


def downgrade() -> None:
    op.drop_table('index_observation')
    op.drop_table('sst_grid')
    with op.batch_alter_table('ingest_log', schema=None) as batch_op:
        batch_op.drop_index('ix_ingest_log_source_month')

    op.drop_table('ingest_log')
    op.drop_table('index_vintage')
