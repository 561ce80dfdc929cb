//! The registry's tables in PostgreSQL's types, one migration a version. Times are Unix
//! seconds (`BIGINT`), as in SQLite.

pub(super) const SCHEMA_1: &str = r#"
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO meta (key, value) VALUES ('crl_number', 0);
CREATE TABLE employees (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoked_by TEXT,
    revoke_reason TEXT,
    revoke_note TEXT
);
CREATE TABLE invitations (
    id TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES employees(id),
    role TEXT NOT NULL,
    schedule TEXT,
    approved_by TEXT NOT NULL,
    reference TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    secret_hash BYTEA NOT NULL,
    used_at BIGINT,
    used_by TEXT
);
CREATE TABLE devices (
    id TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL REFERENCES employees(id),
    role TEXT NOT NULL,
    schedule TEXT,
    invitation_id TEXT NOT NULL UNIQUE REFERENCES invitations(id),
    hostname TEXT NOT NULL,
    os TEXT NOT NULL,
    ownership TEXT NOT NULL,
    wg_key BYTEA NOT NULL,
    status TEXT NOT NULL,
    enrolled_at BIGINT NOT NULL,
    approved_at BIGINT,
    approved_by TEXT,
    approve_reason TEXT,
    approve_note TEXT,
    ended_at BIGINT,
    ended_by TEXT,
    end_reason TEXT,
    end_note TEXT
);
CREATE UNIQUE INDEX devices_wg_key_in_service
    ON devices(wg_key) WHERE status IN ('pending', 'active');
CREATE INDEX devices_employee ON devices(employee_id);
CREATE TABLE certificates (
    serial BYTEA PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    not_before BIGINT NOT NULL,
    not_after BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revocation_reason TEXT
);
CREATE INDEX certificates_device ON certificates(device_id);
CREATE TABLE auditors (
    name TEXT PRIMARY KEY,
    serial BYTEA NOT NULL UNIQUE,
    not_after BIGINT NOT NULL,
    added_at BIGINT NOT NULL,
    added_by TEXT NOT NULL,
    add_reason TEXT NOT NULL,
    add_note TEXT,
    revoked_at BIGINT,
    revoked_by TEXT,
    revoke_reason TEXT,
    revoke_note TEXT
);
CREATE TABLE totp (
    device TEXT PRIMARY KEY REFERENCES devices(id),
    secret BYTEA NOT NULL,
    last_step BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE totp_failures (
    device TEXT PRIMARY KEY REFERENCES devices(id),
    failures BIGINT NOT NULL,
    last_failure BIGINT,
    locked_until BIGINT
);
CREATE TABLE actions (
    seq BIGSERIAL PRIMARY KEY,
    at BIGINT NOT NULL,
    operator TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
"#;

/// What several gateways share beyond the registry of one: who they are, the live
/// sessions, the policy in force, the schedule overrides; and the notification every change that another
/// gateway must act on sends (delivered at commit, to every gateway listening on
/// `ztgw_registry`).
pub(super) const SCHEMA_2: &str = r#"
INSERT INTO meta (key, value) VALUES ('replacements', 0);
CREATE TABLE gateways (
    name TEXT PRIMARY KEY,
    control TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    pools TEXT NOT NULL,
    started_at BIGINT NOT NULL
);
CREATE TABLE live_sessions (
    session TEXT PRIMARY KEY,
    device TEXT NOT NULL UNIQUE,
    employee TEXT NOT NULL,
    gateway TEXT NOT NULL,
    role TEXT NOT NULL,
    tunnel_address TEXT NOT NULL,
    started BIGINT NOT NULL,
    ends_at BIGINT NOT NULL
);
CREATE TABLE policies (
    sha256 TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    loaded_at BIGINT NOT NULL,
    loaded_by TEXT NOT NULL,
    in_force INTEGER NOT NULL
);
CREATE TABLE overrides (
    target TEXT PRIMARY KEY,
    until BIGINT NOT NULL,
    reason TEXT NOT NULL,
    operator TEXT NOT NULL
);
CREATE FUNCTION ztgw_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ztgw_registry', TG_TABLE_NAME);
    RETURN NULL;
END
$$;
CREATE TRIGGER actions_notify AFTER INSERT ON actions
    FOR EACH STATEMENT EXECUTE FUNCTION ztgw_notify();
CREATE TRIGGER replacements_notify AFTER UPDATE ON meta
    FOR EACH ROW WHEN (NEW.key = 'replacements') EXECUTE FUNCTION ztgw_notify();
"#;

/// The web console's operators (`ztgw operator add|revoke`), shared by every gateway of
/// the registry. A revocation is an action: it notifies the other gateways.
pub(super) const SCHEMA_3: &str = r#"
CREATE TABLE operators (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    serial BYTEA NOT NULL UNIQUE,
    not_after BIGINT NOT NULL,
    added_at BIGINT NOT NULL,
    added_by TEXT NOT NULL,
    add_reason TEXT NOT NULL,
    add_note TEXT,
    revoked_at BIGINT,
    revoked_by TEXT,
    revoke_reason TEXT,
    revoke_note TEXT
);
"#;
