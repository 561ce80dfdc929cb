//! Streaming the journal to the security operations centre (#19): `ztgw serve` exports
//! every journal record to Debian's rsyslog over TLS (RFC 5425) on the internal network.
//! Laptops are admitted and disconnect; the receiver hangs with records sent to it and
//! unread, and is killed; admissions go on; the receiver comes back: every sequence
//! number arrives, in order, none missing (any twice is told apart by its number), and a
//! repeat carries the same chain hash.

use std::collections::BTreeMap;
use std::time::Duration;

use ztgw_tests::netns;
use ztgw_tests::rsyslog::Rsyslog;
use ztgw_tests::site::{ALWAYS, Posture, Site, lab_policy};

/// The collector's address on the internal network.
const SOC: &str = "10.20.0.60";

/// The sequence number and chain hash of one received message.
fn parse(message: &str) -> (u64, String) {
    let field = |name: &str| {
        message
            .split(&format!(" {name}=\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_else(|| panic!("no {name} in {message:?}"))
            .to_owned()
    };
    (
        field("seq")
            .parse()
            .unwrap_or_else(|_| panic!("{message:?}")),
        field("chain"),
    )
}

/// Waits until the export has delivered everything the journal holds.
fn caught_up(site: &Site) -> bool {
    netns::eventually(Duration::from_secs(30), || {
        let page = site.metrics();
        Site::metric(&page, "ztgw_export_lag_records{target=\"soc\"}") == Some(0.0)
            && Site::metric(&page, "ztgw_export_connected{target=\"soc\"}") == Some(1.0)
    })
}

/// One laptop admitted, then disconnected by its employee.
fn a_session(site: &mut Site, employee: &str) {
    let laptop = site.laptop(employee, "finance", Posture::Compliant);
    let agent = laptop.connect().expect("admitted");
    let out = laptop.agent(&["disconnect"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(agent);
}

#[test]
fn every_journal_record_reaches_the_soc_in_order_across_a_receiver_crash() {
    let mut rsyslog = Rsyslog::prepare(SOC, 6514);
    let ca = rsyslog.ca.display().to_string();
    let mut site = Site::new_with(&lab_policy(ALWAYS), |settings| {
        format!(
            "{settings}\n[export.soc]\nkind = \"syslog\"\naddress = \"{SOC}:6514\"\nca_file = \"{ca}\"\nbatch = 50\n"
        )
    });
    site.internal
        .ip(&["addr", "add", &format!("{SOC}/32"), "dev", "lo"]);
    rsyslog.start(&site.internal);
    a_session(&mut site, "e8001");
    a_session(&mut site, "e8002");
    assert!(caught_up(&site), "the receiver gets everything");
    let before_crash = rsyslog.messages().len();
    assert!(before_crash > 10, "{before_crash} messages");

    // The receiver hangs: what is sent now reaches its socket and is never read. It is
    // killed right after (before the gateway counts those records as delivered): they
    // must come again once it is back.
    rsyslog.freeze();
    let sent = |site: &Site| {
        Site::metric(
            &site.metrics(),
            "ztgw_export_records_sent_total{target=\"soc\"}",
        )
        .unwrap_or(0.0)
    };
    let before = sent(&site);
    site.invitation("e8100", "finance");
    assert!(
        netns::eventually(Duration::from_secs(5), || sent(&site) > before),
        "the invitation's records are sent to the hung receiver"
    );
    rsyslog.kill();
    // Admissions go on without the receiver, and the export falls behind.
    a_session(&mut site, "e8003");
    a_session(&mut site, "e8004");
    assert!(
        netns::eventually(Duration::from_secs(10), || {
            let page = site.metrics();
            Site::metric(&page, "ztgw_export_connected{target=\"soc\"}") == Some(0.0)
                && Site::metric(&page, "ztgw_export_lag_records{target=\"soc\"}")
                    .is_some_and(|lag| lag > 0.0)
        }),
        "the lag shows while the receiver is away"
    );

    rsyslog.start(&site.internal);
    a_session(&mut site, "e8005");
    assert!(caught_up(&site), "the export resumes from its cursor");

    // Every record, from the first, in order; repeats only as repeats.
    let messages = rsyslog.messages();
    let mut seen: BTreeMap<u64, String> = BTreeMap::new();
    let mut next = 0;
    let mut repeats = 0;
    for m in &messages {
        assert!(m.starts_with('<'), "an RFC 5424 message: {m:?}");
        let (seq, chain) = parse(m);
        assert_eq!(chain.len(), 64, "{m:?}");
        if let Some(first) = seen.get(&seq) {
            assert_eq!(first, &chain, "a repeat carries the same chain hash");
            repeats += 1;
            continue;
        }
        assert_eq!(
            seq, next,
            "record {seq} arrived where {next} was due (a gap)"
        );
        seen.insert(seq, chain);
        next += 1;
    }
    eprintln!("{} records, {repeats} received twice", seen.len());
    let page = site.metrics();
    let sent = Site::metric(&page, "ztgw_export_records_sent_total{target=\"soc\"}")
        .expect("sent counter");
    assert!(sent >= seen.len() as f64, "{sent}");

    // The messages are the journal's: the ended sessions are there, each as journaled.
    let ended = site.journal("session.ended");
    assert_eq!(ended.len(), 5);
    let received_ends = messages
        .iter()
        .filter(|m| m.contains(" session.ended [ztgw@32473 "))
        .count();
    assert!(received_ends >= 5, "{received_ends}");
    let verified = site.ztgw_ok(&["journal", "verify"]);
    assert!(verified.contains("intact"), "{verified}");
}
