//! The registry on PostgreSQL (#21, step 1): Debian's PostgreSQL started by the test, the
//! same scenarios the SQLite registry passes (`registry::conformance`), migrations applied
//! once by gateways starting together, a newer schema refused, and the database going
//! away and coming back.

use std::sync::Arc;

use ztgw_gateway::registry::postgres::PgRegistry;
use ztgw_gateway::registry::{Registry, RegistryError, conformance};
use ztgw_tests::postgres::Postgres;

fn open(pg: &Postgres, db: &str) -> Arc<dyn Registry> {
    Arc::new(PgRegistry::open(&pg.database(db), None, None, 4).expect("open"))
}

#[test]
fn postgres_passes_what_every_registry_must() {
    let pg = Postgres::start();
    conformance::an_invitation_is_redeemed_once_even_under_a_race(open(&pg, "race"));
    conformance::a_wireguard_key_belongs_to_one_device_in_service(open(&pg, "wgkey"));
    conformance::revocation_lists_only_unexpired_revoked_certificates(open(&pg, "crl"));
    conformance::what_gateways_share(open(&pg, "shared"));
    conformance::operators_are_added_listed_and_revoked(open(&pg, "operators"));
}

#[test]
fn migrations_run_once_and_a_newer_schema_is_refused() {
    let mut pg = Postgres::start();
    let url = pg.database("shared");
    // Three gateways start together on an empty database.
    let opened: Vec<_> = (0..3)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgRegistry::open(&url, None, None, 2).map(|_| ()))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    assert!(opened.iter().all(Result::is_ok), "{opened:?}");
    assert_eq!(
        pg.psql(
            "shared",
            "SELECT string_agg(version::text, ',' ORDER BY version) FROM ztgw_migrations"
        ),
        Ok("1,2,3".into()),
        "each migration applied once"
    );

    // The database goes away and comes back: calls fail meanwhile, then work again.
    let reg = PgRegistry::open(&url, None, None, 2).expect("open");
    assert!(reg.devices().expect("devices").is_empty());
    pg.stop();
    assert!(matches!(reg.devices(), Err(RegistryError::Storage(_))));
    pg.restart();
    let back = (0..50).find_map(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        reg.devices().ok()
    });
    assert_eq!(back, Some(Vec::new()), "the registry reconnects");

    pg.psql(
        "shared",
        "INSERT INTO ztgw_migrations (version) VALUES (99)",
    )
    .expect("insert");
    let refused = PgRegistry::open(&url, None, None, 2).expect_err("a newer schema");
    assert!(
        matches!(&refused, RegistryError::Corrupt(m) if m.contains("schema version 99")),
        "{refused:?}"
    );
}

/// A gateway whose `[registry]` is PostgreSQL invites, enrols and revokes through it: the
/// records are in the database (read back with psql), and the password comes from an
/// owner-only file, never from the URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_keeps_its_registry_in_postgres() {
    use ztgw_tests::{GatewayOptions, TestGateway, secret_file};

    let mut pg = Postgres::start();
    pg.psql("postgres", "ALTER USER ztgw PASSWORD 'n0t-in-the-url'")
        .expect("password");
    let url = pg.database("gw");
    let dir = tempfile::tempdir().expect("tempdir");
    let password = dir.path().join("registry.pass");
    secret_file(&password, "n0t-in-the-url\n");
    let gw = TestGateway::start(GatewayOptions {
        replace: vec![(
            "[journal]".into(),
            format!(
                "[registry]\nurl = {url:?}\npassword_file = {:?}\npool_size = 3\n\n[journal]",
                password.display().to_string()
            ),
        )],
        ..GatewayOptions::default()
    })
    .await;
    let agent = gw.enrol("e4242").await;
    assert_eq!(
        pg.psql(
            "gw",
            &format!(
                "SELECT employee_id || ' ' || status FROM devices WHERE id = '{}'",
                agent.device_id()
            )
        ),
        Ok("e4242 active".into())
    );
    let actions = pg
        .psql(
            "gw",
            "SELECT string_agg(action, ',' ORDER BY seq) FROM actions",
        )
        .expect("actions");
    assert!(
        actions.contains("invitation.created") && actions.contains("device.enrolled"),
        "{actions}"
    );
    assert!(
        gw.ctx().registry.next_crl_number().expect("crl") >= 1,
        "the CRL numbers come from the database too"
    );

    // `ztgw backup` covers a gateway's own files; the shared database is pg_dump's.
    let refused = ztgw_gateway::backup::seal(
        gw.ctx(),
        &ztgw_pki::Secret::new("a passphrase long enough".to_owned()),
    )
    .expect_err("a backup of a PostgreSQL registry");
    assert!(refused.to_string().contains("pg_dump"), "{refused}");

    // The database goes away: the gateway says so, and grants nothing without it.
    let addr = gw.running.metrics_addr;
    let health = move || ztgw_tests::http_get(addr, "/health");
    assert_eq!(
        tokio::task::spawn_blocking(health).await.expect("health").0,
        200
    );
    pg.stop();
    let (code, body) = tokio::task::spawn_blocking(health).await.expect("health");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("the registry cannot be read"), "{body}");
    let (_, metrics) = tokio::task::spawn_blocking(move || ztgw_tests::http_get(addr, "/metrics"))
        .await
        .expect("metrics");
    assert!(metrics.contains("ztgw_registry_up 0"), "{metrics}");
    let invitation = gw.admin(ztgw_gateway::admin::AdminRequest::Invite {
        employee: ztgw_pki::EmployeeId::new("e4243").expect("id"),
        role: Some("finance".into()),
        schedule: None,
        approved_by: "Head of IT".into(),
        reference: "DEC-1".into(),
        valid_for_secs: None,
    });
    assert!(
        invitation.is_err(),
        "no invitation without the registry: {invitation:?}"
    );
    pg.restart();
    let mut back = false;
    for _ in 0..50 {
        if tokio::task::spawn_blocking(health).await.expect("health").0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(back, "healthy again once the database is back");
}

/// With `[registry] ca_file` the connection is TLS and the server's certificate is
/// checked: the right CA connects; another CA's server is refused, and so is a
/// connection without TLS to a server that asks for it.
#[test]
fn tls_to_the_database_checks_the_server() {
    let pg = Postgres::start_tls();
    pg.database("tls");
    let url = pg.tcp_url("tls");
    let ca = std::fs::read(pg.ca.as_ref().expect("a CA")).expect("ca.pem");
    let reg = PgRegistry::open(&url, None, Some(&ca), 2).expect("TLS with the right CA");
    assert!(reg.devices().expect("devices").is_empty());
    assert_eq!(
        pg.psql("tls", "SELECT count(*) FROM pg_stat_ssl WHERE ssl"),
        Ok("1".into()),
        "the registry's pooled connection is encrypted (psql's own, on the socket, is not)"
    );
    let other = tempfile::tempdir().expect("tempdir");
    let [other_ca, _, _] = ztgw_tests::server_certificate(other.path(), &["127.0.0.1"]);
    let other_ca = std::fs::read(other_ca).expect("other ca");
    let refused = PgRegistry::open(&url, None, Some(&other_ca), 2).expect_err("another CA");
    assert!(format!("{refused}").contains("certificate"), "{refused}");
    let plain = PgRegistry::open(&url, None, None, 2).expect_err("no TLS");
    assert!(
        format!("{plain}").contains("pg_hba") || format!("{plain}").contains("no encryption"),
        "{plain}"
    );
}

/// Two gateways on one database: a change one makes (an action recorded, a session of
/// the other's replaced) reaches the other's hook within moments, through
/// LISTEN/NOTIFY; a change that concerns no one else (a device's first claim) sends
/// nothing; and after the database restarts the hook is called again, since what
/// happened meanwhile is unknown.
#[test]
fn changes_reach_the_other_gateways() {
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    let mut pg = Postgres::start();
    let url = pg.database("notify");
    let a = PgRegistry::open(&url, None, None, 2).expect("a");
    let b = PgRegistry::open(&url, None, None, 2).expect("b");
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    b.on_change(Arc::new(move || {
        let _ = tx.lock().map(|t| t.send(Instant::now()));
    }))
    .expect("listen");
    // Called once when it starts listening.
    rx.recv_timeout(Duration::from_secs(5)).expect("first call");
    let drain = || while rx.recv_timeout(Duration::from_millis(300)).is_ok() {};
    drain();

    let sent = Instant::now();
    a.record_action(&ztgw_gateway::registry::ActionRecord {
        at: time::OffsetDateTime::now_utc(),
        operator: "op".into(),
        action: "device.revoked".into(),
        target: "dev-x".into(),
        detail: String::new(),
    })
    .expect("action");
    let heard = rx.recv_timeout(Duration::from_secs(1)).expect("notified");
    assert!(heard - sent < Duration::from_secs(1));
    drain();

    let live = |session: &str, gateway: &str| ztgw_gateway::registry::LiveSession {
        session: session.into(),
        device: ztgw_pki::DeviceId::from_random([7; 10]),
        employee: ztgw_pki::EmployeeId::new("e1").expect("id"),
        gateway: gateway.into(),
        role: "finance".into(),
        tunnel_address: "100.64.0.2".into(),
        started: time::OffsetDateTime::now_utc(),
        ends_at: time::OffsetDateTime::now_utc(),
    };
    b.claim_session(&live("s-b", "b")).expect("claim");
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "a first claim is no one else's business"
    );
    a.claim_session(&live("s-a", "a")).expect("claim");
    rx.recv_timeout(Duration::from_secs(1))
        .expect("b hears that its session was replaced");

    pg.stop();
    pg.restart();
    rx.recv_timeout(Duration::from_secs(15))
        .expect("called again once listening again");
}
