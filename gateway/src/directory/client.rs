//! Reading the directory: connect to the first server that answers (LDAPS, or LDAP
//! upgraded with StartTLS, the server's certificate checked against the configured CA),
//! bind as the gateway's account, and find who is in which telework group.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ldap3::asn1::{PL, StructureTag};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, ResultEntry, Scope};
use ztgw_config::settings::{DirectoryKind, DirectorySection};
use ztgw_pki::EmployeeId;

use super::{DirectoryError, DirectoryView, Person};

/// Most entries one search may return, and most groups walked.
pub const MAX_ENTRIES: usize = 100_000;
/// How deep nested groups are followed on servers without an in-chain rule.
pub const MAX_DEPTH: usize = 16;
/// Largest password file read.
const MAX_PASSWORD_BYTES: u64 = 4096;

/// Active Directory's "in chain" matching rule: membership through nested groups.
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";

/// A value put into a filter, escaped (RFC 4515): `*`, `(`, `)`, `\` and NUL cannot
/// change the filter.
pub fn escape(value: &str) -> String {
    ldap3::ldap_escape(value).into_owned()
}

/// Reads the directory's view of telework; of `known` (the employees the gateway knows),
/// those who are in the directory but in no telework group are told apart from those
/// the directory no longer has.
pub async fn read(
    d: &DirectorySection,
    known: &[EmployeeId],
) -> Result<DirectoryView, DirectoryError> {
    let d = d.clone();
    let known = known.to_vec();
    contained(async move {
        let (mut ldap, url) = open(&d).await?;
        let view = view(&d, &mut ldap, &url, &known).await;
        let _ = ldap.unbind().await;
        view
    })
    .await?
}

/// Runs one exchange with the directory in a task of its own: ldap3 panics on some
/// malformed answers, and a hostile or broken server must not stop the task that asked
/// (the directory sync, an enrolment). Such a panic is an error like any other.
async fn contained<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, DirectoryError> {
    tokio::spawn(work).await.map_err(|e| {
        tracing::error!(error = %e, "the directory's answer could not be read");
        DirectoryError::Search(
            "the directory sent an answer that could not be read (see the gateway's log)".into(),
        )
    })
}

/// A connection to the first server that answers, bound as the gateway's account, and
/// that server's URL.
async fn open(d: &DirectorySection) -> Result<(Ldap, String), DirectoryError> {
    let password = password(d)?;
    let tls = Arc::new(tls_config(d)?);
    let timeout = d.timeout.get();
    let mut failures = Vec::new();
    for url in &d.urls {
        match tokio::time::timeout(timeout, connect(url, tls.clone(), timeout)).await {
            Ok(Ok(mut ldap)) => {
                match tokio::time::timeout(timeout, ldap.simple_bind(&d.bind_dn, password.expose()))
                    .await
                {
                    // A server too slow to answer: the next one is tried.
                    Err(_) => {
                        failures.push(format!("{url}: the bind timed out"));
                        continue;
                    }
                    Ok(answer) => {
                        // A refused bind is not tried elsewhere: the password is wrong.
                        if let Err(e) = answer.and_then(|r| r.success()) {
                            return Err(DirectoryError::Bind(format!(
                                "{url}: binding as {} was refused: {e}",
                                d.bind_dn
                            )));
                        }
                    }
                }
                return Ok((ldap, url.clone()));
            }
            Ok(Err(e)) => failures.push(format!("{url}: {e}")),
            Err(_) => failures.push(format!("{url}: no answer within {timeout:?}")),
        }
    }
    Err(DirectoryError::Unreachable(failures.join("; ")))
}

/// The employee proved who they are with their directory password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginProof {
    /// The employee whose account bound.
    pub employee: EmployeeId,
}

/// Why a directory login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The password, the account or its state: the employee's to fix (said without
    /// telling which, so that the answer does not reveal accounts).
    #[error("the directory did not accept this password for {0}")]
    Refused(EmployeeId),
    /// The directory could not be asked.
    #[error("{0}")]
    Directory(#[from] DirectoryError),
}

/// Checks `password` for `employee` by binding as their entry (found by the gateway's
/// account with `id_attribute`; exactly one enabled entry), on the first server that
/// answers. An empty password is refused before any bind (LDAP would take it as an
/// anonymous bind). The password is not kept.
pub async fn login(
    d: &DirectorySection,
    employee: &EmployeeId,
    password: &str,
) -> Result<LoginProof, LoginError> {
    if password.is_empty() {
        return Err(LoginError::Refused(employee.clone()));
    }
    let d = d.clone();
    let employee = employee.clone();
    let password = zeroize::Zeroizing::new(password.to_owned());
    contained(async move {
        let (mut ldap, _) = open(&d).await?;
        let result = bind_as(&d, &mut ldap, &employee, &password).await;
        let _ = ldap.unbind().await;
        result
    })
    .await?
}

async fn bind_as(
    d: &DirectorySection,
    ldap: &mut Ldap,
    employee: &EmployeeId,
    password: &str,
) -> Result<LoginProof, LoginError> {
    let timeout = d.timeout.get();
    // The invited employee's one entry, unless its account is disabled.
    let enabled = d
        .disabled_filter()
        .map(|off| format!("(!{off})"))
        .unwrap_or_default();
    let filter = format!(
        "(&{}({}={}){enabled})",
        d.user_filter,
        d.id_attribute,
        escape(employee.as_str())
    );
    let found = search(ldap, timeout, &d.base_dn, Scope::Subtree, &filter, &["1.1"]).await?;
    let [(dn, _)] = found.as_slice() else {
        return Err(LoginError::Refused(employee.clone()));
    };
    match tokio::time::timeout(timeout, ldap.simple_bind(dn, password)).await {
        Err(_) => Err(LoginError::Directory(DirectoryError::Unreachable(
            "the directory did not answer the employee's bind in time".into(),
        ))),
        // 49: invalid credentials (a wrong password, or an account that may not log in).
        Ok(Ok(r)) if r.rc == 49 => Err(LoginError::Refused(employee.clone())),
        Ok(Ok(r)) if r.rc == 0 => Ok(LoginProof {
            employee: employee.clone(),
        }),
        Ok(Ok(r)) => Err(LoginError::Directory(DirectoryError::Bind(format!(
            "binding as the employee's entry: {} (code {})",
            r.text, r.rc
        )))),
        Ok(Err(e)) => Err(LoginError::Directory(DirectoryError::Bind(format!(
            "binding as the employee's entry: {e}"
        )))),
    }
}

async fn connect(
    url: &str,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Ldap, String> {
    let settings = LdapConnSettings::new()
        .set_conn_timeout(timeout)
        .set_config(tls)
        .set_starttls(url.starts_with("ldap://"));
    let (conn, ldap) = LdapConnAsync::with_settings(settings, url)
        .await
        .map_err(|e| describe(&e))?;
    ldap3::drive!(conn);
    Ok(ldap)
}

/// Connection errors in words (a certificate the CA did not sign says so).
fn describe(e: &ldap3::LdapError) -> String {
    let text = e.to_string();
    if text.contains("UnknownIssuer") || text.contains("invalid peer certificate") {
        format!("the server's certificate is not signed by the configured ca_file ({text})")
    } else {
        text
    }
}

fn password(d: &DirectorySection) -> Result<ztgw_pki::Secret<String>, DirectoryError> {
    let path = &d.bind_password_file;
    ztgw_pki::read_private_file(path, MAX_PASSWORD_BYTES)
        .map_err(|m| DirectoryError::Config(format!("{}: {m}", path.display())))
}

fn tls_config(d: &DirectorySection) -> Result<rustls::ClientConfig, DirectoryError> {
    let path = &d.ca_file;
    let bad = |m: String| DirectoryError::Config(format!("{}: {m}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    ztgw_pki::tls::client_config_trusting(&pem).map_err(bad)
}

/// One search, its entries parsed without trusting the server's encoding.
async fn search(
    ldap: &mut Ldap,
    timeout: Duration,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
) -> Result<Vec<(String, HashMap<String, Vec<String>>)>, DirectoryError> {
    let result = ldap
        .with_timeout(timeout)
        .search(base, scope, filter, attrs.to_vec())
        .await
        .map_err(|e| DirectoryError::Search(format!("{filter} under {base}: {e}")))?;
    let (entries, res) = (result.0, result.1);
    // "No such object" for a base search of a DN that does not exist: no entry.
    if res.rc != 0 && res.rc != 32 {
        return Err(DirectoryError::Search(format!(
            "{filter} under {base}: {} (code {})",
            res.text, res.rc
        )));
    }
    if entries.len() > MAX_ENTRIES {
        return Err(DirectoryError::Search(format!(
            "{filter} under {base} returned more than {MAX_ENTRIES} entries"
        )));
    }
    Ok(entries.into_iter().filter_map(entry).collect())
}

/// A search result entry (`[APPLICATION 4] { dn, [ { type, { value… } } … ] }`), or
/// nothing when the server sent something else (a referral) or something malformed.
fn entry(re: ResultEntry) -> Option<(String, HashMap<String, Vec<String>>)> {
    let tag: StructureTag = re.0;
    if tag.id != 4 {
        return None;
    }
    let mut parts = match tag.payload {
        PL::C(parts) => parts.into_iter(),
        PL::P(_) => return None,
    };
    let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
    let mut attrs = HashMap::new();
    for a in parts.next()?.expect_constructed()? {
        let mut a = a.expect_constructed()?.into_iter();
        let name = String::from_utf8(a.next()?.expect_primitive()?).ok()?;
        let values = a
            .next()?
            .expect_constructed()?
            .into_iter()
            .filter_map(|v| String::from_utf8(v.expect_primitive()?).ok())
            .collect();
        attrs.insert(name.to_ascii_lowercase(), values);
    }
    Some((dn, attrs))
}

async fn view(
    d: &DirectorySection,
    ldap: &mut Ldap,
    url: &str,
    known: &[EmployeeId],
) -> Result<DirectoryView, DirectoryError> {
    let timeout = d.timeout.get();
    let id_attr = d.id_attribute.to_ascii_lowercase();
    let mut people: BTreeMap<EmployeeId, Person> = BTreeMap::new();
    let mut skipped = Vec::new();
    for (role, group) in &d.roles {
        let members = match d.kind {
            DirectoryKind::ActiveDirectory => {
                let filter = format!(
                    "(&{}(memberOf:{IN_CHAIN}:={}))",
                    d.user_filter,
                    escape(group)
                );
                search(
                    ldap,
                    timeout,
                    &d.base_dn,
                    Scope::Subtree,
                    &filter,
                    &[&d.id_attribute],
                )
                .await?
            }
            DirectoryKind::Ldap => walk(d, ldap, group).await?,
        };
        for (dn, attrs) in members {
            let Some(id) = attrs.get(&id_attr).and_then(|v| v.first()) else {
                skipped.push(format!("{dn}: no {}", d.id_attribute));
                continue;
            };
            match EmployeeId::new(id) {
                Ok(id) => {
                    people
                        .entry(id.clone())
                        .or_insert_with(|| Person {
                            dn: dn.clone(),
                            employee: id,
                            disabled: false,
                            roles: BTreeSet::new(),
                        })
                        .roles
                        .insert(role.clone());
                }
                Err(e) => skipped.push(format!(
                    "{dn}: {} {id:?} is not an employee id: {e}",
                    d.id_attribute
                )),
            }
        }
    }
    if let Some(disabled) = d.disabled_filter() {
        let filter = format!("(&{}{disabled})", d.user_filter);
        for (_, attrs) in search(
            ldap,
            timeout,
            &d.base_dn,
            Scope::Subtree,
            &filter,
            &[&d.id_attribute],
        )
        .await?
        {
            if let Some(p) = attrs
                .get(&id_attr)
                .and_then(|v| v.first())
                .and_then(|id| EmployeeId::new(id).ok())
                .and_then(|id| people.get_mut(&id))
            {
                p.disabled = true;
            }
        }
    }
    let mut outside_groups = BTreeSet::new();
    for id in known.iter().filter(|id| !people.contains_key(*id)) {
        if exists(d, ldap, id).await? {
            outside_groups.insert(id.clone());
        }
    }
    Ok(DirectoryView {
        server: url.to_owned(),
        people,
        outside_groups,
        skipped,
    })
}

/// The people in `group` and, through its `member` values, in the groups nested in it
/// (bounded in depth and entries; a group met twice is walked once).
async fn walk(
    d: &DirectorySection,
    ldap: &mut Ldap,
    group: &str,
) -> Result<Vec<(String, HashMap<String, Vec<String>>)>, DirectoryError> {
    let timeout = d.timeout.get();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut people = Vec::new();
    let mut level = vec![group.to_owned()];
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for dn in level {
            if !seen.insert(dn.to_ascii_lowercase()) || seen.len() > MAX_ENTRIES {
                continue;
            }
            // A person?
            let person = search(
                ldap,
                timeout,
                &dn,
                Scope::Base,
                &d.user_filter,
                &[&d.id_attribute],
            )
            .await?;
            if let Some(p) = person.into_iter().next() {
                people.push(p);
                continue;
            }
            // A group: its members.
            for (_, attrs) in search(
                ldap,
                timeout,
                &dn,
                Scope::Base,
                "(objectClass=*)",
                &["member", "uniqueMember"],
            )
            .await?
            {
                for key in ["member", "uniquemember"] {
                    next.extend(attrs.get(key).into_iter().flatten().cloned());
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    Ok(people)
}

/// Whether `id` exists in the directory at all (an employee in no telework group, as
/// opposed to one deleted).
async fn exists(
    d: &DirectorySection,
    ldap: &mut Ldap,
    id: &EmployeeId,
) -> Result<bool, DirectoryError> {
    let filter = format!(
        "(&{}({}={}))",
        d.user_filter,
        d.id_attribute,
        escape(id.as_str())
    );
    Ok(!search(
        ldap,
        d.timeout.get(),
        &d.base_dn,
        Scope::Subtree,
        &filter,
        &[&d.id_attribute],
    )
    .await?
    .is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory server that speaks TLS with a certificate of `ca` and answers every
    /// request with `answer(message id)`.
    async fn fake_server(dir: &std::path::Path, answer: fn(&[u8]) -> Vec<u8>) -> DirectorySection {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let now = time::OffsetDateTime::now_utc();
        let (ca, _) = ztgw_pki::CertificateAuthority::generate(
            "fake-directory",
            ztgw_pki::SerialNumber::from_random([1; 16]),
            now - time::Duration::hours(1),
            time::Duration::days(1),
        )
        .expect("CA");
        let (cert, key) = ca
            .issue_server(
                &["127.0.0.1".into()],
                ztgw_pki::SerialNumber::from_random([2; 16]),
                now - time::Duration::hours(1),
                now + time::Duration::hours(2),
            )
            .expect("server certificate");
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).expect("ca");
        let pw = dir.join("pass");
        std::fs::write(&pw, "secret\n").expect("password");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        use rustls_pki_types::pem::PemObject as _;
        let chain = vec![
            rustls_pki_types::CertificateDer::from_pem_slice(cert.pem.as_bytes()).expect("cert"),
        ];
        let key =
            rustls_pki_types::PrivateKeyDer::from_pem_slice(key.expose().as_bytes()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("listen");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    while let Ok(n) = tls.read(&mut buf).await {
                        if n == 0 || tls.write_all(&answer(&buf[..n])).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        DirectorySection {
            kind: DirectoryKind::Ldap,
            urls: vec![format!("ldaps://127.0.0.1:{port}")],
            ca_file: dir.join("ca.pem"),
            bind_dn: "cn=svc".into(),
            bind_password_file: pw,
            base_dn: "dc=test".into(),
            user_filter: "(objectClass=person)".into(),
            id_attribute: "uid".into(),
            disabled_filter: None,
            sync_interval: ztgw_config::HumanDuration::parse("5m").expect("interval"),
            timeout: ztgw_config::HumanDuration::parse("3s").expect("timeout"),
            max_revoke_percent: 10,
            require_directory_login: false,
            roles: [("finance".to_owned(), "cn=finance,dc=test".to_owned())].into(),
        }
    }

    /// The message id of an LDAP request (`SEQUENCE { INTEGER id, … }`), as sent.
    fn message_id(request: &[u8]) -> &[u8] {
        let at = match request.get(1) {
            Some(l) if *l >= 0x80 => 2 + usize::from(l & 0x7f),
            _ => 2,
        };
        let len = request.get(at + 1).map_or(0, |l| usize::from(*l));
        request.get(at + 2..at + 2 + len).unwrap_or(&[1])
    }

    #[tokio::test]
    async fn a_malformed_answer_is_an_error_not_a_panic() {
        // A bind response whose result is an empty sequence: ldap3 panics reading it
        // (result.rs, "element"), in the task that asked.
        fn empty_result(request: &[u8]) -> Vec<u8> {
            let id = message_id(request);
            let mut m = vec![0x30, (id.len() + 4) as u8, 0x02, id.len() as u8];
            m.extend_from_slice(id);
            m.extend_from_slice(&[0x61, 0x00]);
            m
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let d = fake_server(dir.path(), empty_result).await;
        let e = read(&d, &[]).await.expect_err("a malformed answer");
        assert!(e.to_string().contains("could not be read"), "{e}");
        let employee = EmployeeId::new("e1").expect("id");
        let e = login(&d, &employee, "pw")
            .await
            .expect_err("a malformed answer");
        assert!(e.to_string().contains("could not be read"), "{e}");
    }

    #[test]
    fn values_cannot_change_a_filter() {
        // RFC 4515's examples, and every character that matters.
        assert_eq!(
            escape("Parens R Us (for all your parenthetical needs)"),
            "Parens R Us \\28for all your parenthetical needs\\29"
        );
        assert_eq!(escape("*"), "\\2a");
        assert_eq!(escape("C:\\MyFile"), "C:\\5cMyFile");
        assert_eq!(escape("a\0b"), "a\\00b");
        assert_eq!(escape("e1029"), "e1029");
        let hostile = "x)(uid=*))(|(uid=*";
        let f = format!("(uid={})", escape(hostile));
        assert_eq!(f.matches('(').count(), 1, "{f}");
        assert_eq!(f.matches(')').count(), 1, "{f}");
    }
}
