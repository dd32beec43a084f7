"""initial schema"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None


def upgrade() -> None:
    
    op.create_table('accounts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('claim_token_hash', sa.String(length=64), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('owner_user_id', sa.String(length=32), nullable=True),
    sa.Column('created_by_ip', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('claim_token_hash', name=op.f('uq_accounts_claim_token_hash')),
    sa.UniqueConstraint('name', name=op.f('uq_accounts_name'))
    )
    op.create_index('ix_accounts_kind_expires_at', 'accounts', ['kind', 'expires_at'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('actor', sa.String(length=320), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    op.create_index(op.f('ix_audit_events_account_id'), 'audit_events', ['account_id'], unique=False)

    op.create_table('tombstones',
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('keep_until', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_tombstones')),
    sa.UniqueConstraint('name', name=op.f('uq_tombstones_name'))
    )
    op.create_table('used_challenges',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_used_challenges'))
    )
    op.create_table('users',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.String(length=32), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_reason', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_api_tokens_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('blobs',
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_blobs_account_id_accounts')),
    sa.PrimaryKeyConstraint('account_id', 'sha256', name=op.f('pk_blobs'))
    )
    op.create_table('kv_namespaces',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=512), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_kv_namespaces_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kv_namespaces')),
    sa.UniqueConstraint('account_id', 'title', name='uq_kv_namespaces_account_title')
    )
    op.create_table('memberships',
    sa.Column('user_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_memberships_account_id_accounts')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_memberships_user_id_users')),
    sa.PrimaryKeyConstraint('user_id', 'account_id', name=op.f('pk_memberships'))
    )
    op.create_table('scripts',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('current_deployment_id', sa.String(length=36), nullable=True),
    sa.Column('current_version_id', sa.String(length=36), nullable=True),
    sa.Column('subdomain_enabled', sa.Boolean(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_scripts_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_scripts')),
    sa.UniqueConstraint('account_id', 'name', name='uq_scripts_account_name')
    )
    op.create_table('kv_entries',
    sa.Column('namespace_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=True),
    sa.Column('expiration', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_kv_entries_account_id_accounts')),
    sa.ForeignKeyConstraint(['namespace_id'], ['kv_namespaces.id'], name=op.f('fk_kv_entries_namespace_id_kv_namespaces')),
    sa.PrimaryKeyConstraint('namespace_id', 'key', name=op.f('pk_kv_entries'))
    )
    op.create_index(op.f('ix_kv_entries_account_id'), 'kv_entries', ['account_id'], unique=False)

    op.create_table('versions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('script_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('main_module', sa.String(length=512), nullable=False),
    sa.Column('compatibility_date', sa.String(length=10), nullable=False),
    sa.Column('compatibility_flags', sa.JSON(), nullable=False),
    sa.Column('bindings', sa.JSON(), nullable=False),
    sa.Column('annotations', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_versions_account_id_accounts')),
    sa.ForeignKeyConstraint(['script_id'], ['scripts.id'], name=op.f('fk_versions_script_id_scripts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_versions'))
    )
    op.create_index(op.f('ix_versions_account_id'), 'versions', ['account_id'], unique=False)
    op.create_index(op.f('ix_versions_script_id'), 'versions', ['script_id'], unique=False)

    op.create_table('deployments',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('script_id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.String(length=32), nullable=False),
    sa.Column('version_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('annotations', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('author', sa.String(length=320), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_deployments_account_id_accounts')),
    sa.ForeignKeyConstraint(['script_id'], ['scripts.id'], name=op.f('fk_deployments_script_id_scripts')),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_deployments_version_id_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deployments'))
    )
    op.create_index(op.f('ix_deployments_script_id'), 'deployments', ['script_id'], unique=False)

    op.create_table('modules',
    sa.Column('version_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=512), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_modules_version_id_versions')),
    sa.PrimaryKeyConstraint('version_id', 'name', name=op.f('pk_modules'))
    )
    


def downgrade() -> None:
    
    op.drop_table('modules')
    with op.batch_alter_table('deployments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_deployments_script_id'))

    op.drop_table('deployments')
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_versions_script_id'))
        batch_op.drop_index(batch_op.f('ix_versions_account_id'))

    op.drop_table('versions')
    with op.batch_alter_table('kv_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_kv_entries_account_id'))

    op.drop_table('kv_entries')
    op.drop_table('scripts')
    op.drop_table('memberships')
    op.drop_table('kv_namespaces')
    op.drop_table('blobs')
    op.drop_table('api_tokens')
    op.drop_table('users')
    op.drop_table('used_challenges')
    op.drop_table('tombstones')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_account_id'))

    op.drop_table('audit_events')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index('ix_accounts_kind_expires_at')

    op.drop_table('accounts')
    
