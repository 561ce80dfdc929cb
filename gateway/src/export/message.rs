//! What a receiver gets for one journal record: an RFC 5424 syslog message framed for
//! TLS transport (RFC 5425), or one JSON line. Pure functions.
//!
//! Both carry the record's sequence number and chain hash: the numbers are consecutive
//! (headers and checkpoints are records too), so a receiver sees a gap, and the chain hash
//! ties a message to the journal an auditor verifies.

use time::format_description::well_known::Rfc3339;
use ztgw_journal::follow::Followed;
use ztgw_journal::frame::Kind;

/// The structured-data id of our parameters. 32473 is the private enterprise number
/// RFC 5612 sets aside for documentation; receivers match the name `ztgw`.
pub const SD_ID: &str = "ztgw@32473";

/// Facility 13, "log audit" (RFC 5424, 6.2.1).
const FACILITY_LOG_AUDIT: u8 = 13;

/// RFC 5424 severities used.
const WARNING: u8 = 4;
const NOTICE: u8 = 5;
const INFORMATIONAL: u8 = 6;

/// The record's type: the event's `type`, `journal.checkpoint` or `journal.segment`.
pub fn record_type(record: &Followed, json: &serde_json::Value) -> String {
    match record.kind {
        Kind::Event => json
            .get("type")
            .and_then(|t| t.as_str())
            .unwrap_or("event")
            .to_owned(),
        Kind::Checkpoint => "journal.checkpoint".into(),
        Kind::SegmentHeader => "journal.segment".into(),
    }
}

/// How urgent a record is for the people watching the SIEM: refusals, revocations,
/// incidents and failures are warnings; the journal's own records are informational.
pub fn severity(kind: &str) -> u8 {
    if kind.starts_with("journal.") {
        INFORMATIONAL
    } else if [
        "denied",
        "refused",
        "revoked",
        "incident",
        "failed",
        "unavailable",
    ]
    .iter()
    .any(|w| kind.contains(w))
    {
        WARNING
    } else {
        NOTICE
    }
}

/// The record's JSON text: an event exactly as it was journaled; a checkpoint or a
/// segment header as [`Followed::json`] puts it.
fn json_text(record: &Followed, json: &serde_json::Value) -> String {
    match (record.kind, std::str::from_utf8(&record.payload)) {
        (Kind::Event, Ok(text)) if json.is_object() => text.to_owned(),
        _ => json.to_string(),
    }
}

/// One record as an RFC 5424 message, octet-counted (`LEN SP MSG`, RFC 5425 4.3).
pub fn syslog_frame(record: &Followed, hostname: &str) -> Vec<u8> {
    let json = record.json();
    let kind = record_type(record, &json);
    let text = json_text(record, &json);
    let pri = FACILITY_LOG_AUDIT * 8 + severity(&kind);
    let time = record
        .time
        .format(&Rfc3339)
        .unwrap_or_else(|_| "-".to_owned());
    let message = format!(
        "<{pri}>1 {time} {host} ztgw - {msgid} [{SD_ID} seq=\"{seq}\" chain=\"{chain}\"] {text}",
        host = header_field(hostname, 255),
        msgid = header_field(&kind, 32),
        seq = record.seq,
        chain = ztgw_journal::hex(&record.chain),
    );
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

/// One record as a JSON line: `{"seq","time","chain","gateway","type","event"}` and a
/// newline.
pub fn json_line(record: &Followed, gateway: &str) -> Vec<u8> {
    let event = record.json();
    let kind = record_type(record, &event);
    let head = serde_json::json!({
        "seq": record.seq,
        "time": record.time.format(&Rfc3339).unwrap_or_default(),
        "chain": ztgw_journal::hex(&record.chain),
        "gateway": gateway,
        "type": kind,
    })
    .to_string();
    // The event goes in as journaled (the head is an object: drop its closing brace).
    let mut out = head.into_bytes();
    out.pop();
    out.extend_from_slice(b",\"event\":");
    out.extend_from_slice(json_text(record, &event).as_bytes());
    out.extend_from_slice(b"}\n");
    out
}

/// A syslog header field: printable US-ASCII without spaces, at most `max` characters;
/// `-` (the nil value) when nothing is left.
fn header_field(s: &str, max: usize) -> String {
    let kept: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if kept.is_empty() { "-".into() } else { kept }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;

    use super::*;

    fn record(kind: Kind, payload: &str) -> Followed {
        Followed {
            seq: 42,
            time: OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("time"),
            chain: [0xab; 32],
            kind,
            payload: payload.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_syslog_message_is_rfc5424_octet_counted() {
        let r = record(
            Kind::Event,
            r#"{"type":"admission.denied","device":"dev-1","note":"a ] \" b"}"#,
        );
        let frame = String::from_utf8(syslog_frame(&r, "gw.finances.gov.ma")).expect("utf-8");
        let (len, msg) = frame.split_once(' ').expect("length");
        assert_eq!(len.parse::<usize>().expect("number"), msg.len());
        let chain = "ab".repeat(32);
        assert_eq!(
            msg,
            format!(
                "<108>1 2027-01-15T08:00:00Z gw.finances.gov.ma ztgw - admission.denied [ztgw@32473 seq=\"42\" chain=\"{chain}\"] {{\"type\":\"admission.denied\",\"device\":\"dev-1\",\"note\":\"a ] \\\" b\"}}"
            ),
            "facility 13 (log audit), severity 4 (warning)"
        );
        let c = record(Kind::Checkpoint, r#"{"size":43,"root":"00"}"#);
        let text = String::from_utf8(syslog_frame(&c, "gw one\n")).expect("utf-8");
        assert!(
            text.contains("<110>1 2027-01-15T08:00:00Z gwone ztgw - journal.checkpoint "),
            "{text}"
        );
        let body: serde_json::Value =
            serde_json::from_str(text.rsplit_once("] ").expect("message").1).expect("JSON");
        assert_eq!(
            body,
            serde_json::json!({"type": "journal.checkpoint", "size": 43, "root": "00"})
        );
    }

    #[test]
    fn a_json_line_carries_sequence_and_chain() {
        let r = record(Kind::Event, r#"{"type":"session.started","session":"s-1"}"#);
        let line = json_line(&r, "gw");
        assert_eq!(line.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&line).expect("json");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["type"], "session.started");
        assert_eq!(v["chain"], "ab".repeat(32));
        assert_eq!(v["event"]["session"], "s-1");
        assert_eq!(v["time"], "2027-01-15T08:00:00Z");
        assert!(
            String::from_utf8_lossy(&line).ends_with(
                r#""event":{"type":"session.started","session":"s-1"}}
"#
            ),
            "the event as journaled"
        );
    }

    #[test]
    fn severities() {
        assert_eq!(severity("session.started"), NOTICE);
        assert_eq!(severity("device.revoked"), WARNING);
        assert_eq!(severity("incident.reported"), WARNING);
        assert_eq!(severity("journal.checkpoint"), INFORMATIONAL);
    }
}
