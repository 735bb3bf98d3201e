"""doors: AML location fixes, device supervision

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 06:55:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('location_fixes',
    sa.Column('id', _ID, autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=32), nullable=False),
    sa.Column('channel_ref', sa.String(length=255), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('report_id', _ID, nullable=True),
    sa.Column('applied_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('raw', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['reports.id'], name=op.f('fk_location_fixes_report_id_reports')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_location_fixes')),
    sa.UniqueConstraint('channel', 'channel_ref', name='uq_location_fixes_channel_ref')
    )
    with op.batch_alter_table('location_fixes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_location_fixes_phone'), ['phone'], unique=False)
    with op.batch_alter_table('facility_devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('heartbeat_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('silent_since', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('facility_devices', schema=None) as batch_op:
        batch_op.drop_column('silent_since')
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('heartbeat_s')
    with op.batch_alter_table('location_fixes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_location_fixes_phone'))
    op.drop_table('location_fixes')
