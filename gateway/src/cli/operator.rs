//! `ztgw operator`: the web console's operators. `add` makes the operator's key here, has
//! the gateway certify it, and writes key, certificate and CA into one passphrase-protected
//! PKCS#12 file (0600) for the operator to import into a browser.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use ztgw_api::console::OperatorRole;
use ztgw_pki::{OperatorName, Secret};

use super::{Failure, HumanDuration, admin, exit, read_secret, show};
use crate::admin::{AdminRequest, AdminResponse};
use crate::enrolment::rfc3339;

/// PBKDF2 iterations for the PKCS#12 file's encryption and MAC (browsers and `pk12util`
/// import PBES2 with PBKDF2-HMAC-SHA-256 and AES-256-CBC).
const PKCS12_ITERATIONS: u32 = 600_000;

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Issue a console operator's certificate, written with its key to a PKCS#12 file.
    #[command(
        after_help = "Example:\n  ztgw operator add amina --role security-unit --out amina.p12 --passphrase-file amina.pass\n\nThe operator imports amina.p12 into their browser (the passphrase is asked) and\nopens the console's address (`[console] listen`)."
    )]
    Add {
        /// The operator's name, as the console and the journal show it.
        name: OperatorName,
        /// security-unit (sees and acts) or auditor (sees and exports).
        #[arg(long)]
        role: OperatorRole,
        /// Where to write the PKCS#12 file (refused if it exists).
        #[arg(long)]
        out: PathBuf,
        /// The file's passphrase, from this file (else ZTGW_OPERATOR_PASSPHRASE).
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
        /// How long the certificate is valid (e.g. 90d).
        #[arg(long, default_value = "365d")]
        valid_for: HumanDuration,
    },
    /// Revoke an operator's certificate at once (their next request is refused).
    Revoke {
        /// The operator's name, as given to `ztgw operator add`.
        name: OperatorName,
        /// A free-text note kept with the action in the registry and the journal.
        #[arg(long)]
        note: Option<String>,
    },
    /// The operators, their roles, and whether they are revoked.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(config: &Path, operator: &str, cmd: OperatorCommand) -> Result<(), Failure> {
    match cmd {
        OperatorCommand::Add {
            name,
            role,
            out,
            passphrase_file,
            valid_for,
        } => add(
            config,
            operator,
            name,
            role,
            &out,
            passphrase_file.as_deref(),
            valid_for,
        ),
        OperatorCommand::Revoke { name, note } => show(
            admin(
                config,
                operator,
                AdminRequest::OperatorRevoke { name, note },
            )?,
            false,
        ),
        OperatorCommand::List { json } => {
            show(admin(config, operator, AdminRequest::OperatorList)?, json)
        }
    }
}

fn add(
    config: &Path,
    operator: &str,
    name: OperatorName,
    role: OperatorRole,
    out: &Path,
    passphrase_file: Option<&Path>,
    valid_for: HumanDuration,
) -> Result<(), Failure> {
    let passphrase = read_secret(passphrase_file, "ZTGW_OPERATOR_PASSPHRASE")?;
    if passphrase.expose().chars().count() < 8 {
        return Err(Failure::new(
            exit::USAGE,
            "the PKCS#12 passphrase must have at least 8 characters",
        ));
    }
    if out.exists() {
        return Err(Failure::new(
            exit::REFUSED,
            format!("{}: exists; choose another file", out.display()),
        ));
    }
    let (key_pem, csr_pem) = ztgw_pki::generate_key_and_csr(&format!("ztgw operator {name}"))
        .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    let response = admin(
        config,
        operator,
        AdminRequest::OperatorAdd {
            name,
            role,
            csr_pem,
            valid_for_secs: valid_for.get().as_secs(),
        },
    )?;
    let AdminResponse::Operator {
        name,
        role,
        certificate_pem,
        ca_pem,
        not_after,
    } = response
    else {
        return Err(Failure::new(
            exit::FAILURE,
            "the gateway answered something else",
        ));
    };
    let bundle = pkcs12(&name, &key_pem, &certificate_pem, &ca_pem, &passphrase)
        .map_err(|e| Failure::new(exit::FAILURE, format!("the PKCS#12 file: {e}")))?;
    ztgw_pki::write_private_file(out, &bundle, ztgw_pki::Existing::Refuse)
        .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", out.display())))?;
    println!(
        "operator {name} ({}): certificate valid until {}, written with its key to {} (0600)",
        role.as_str(),
        rfc3339(not_after),
        out.display()
    );
    println!(
        "Hand the file and its passphrase to {name} separately; they import it into their browser."
    );
    Ok(())
}

/// The operator's key, certificate and the CA in one PKCS#12 file (PBES2, AES-256-CBC,
/// PBKDF2-HMAC-SHA-256; HMAC-SHA-256 integrity), under the friendly name `ztgw NAME`.
pub fn pkcs12(
    name: &OperatorName,
    key_pem: &Secret<String>,
    certificate_pem: &str,
    ca_pem: &str,
    passphrase: &Secret<String>,
) -> Result<Vec<u8>, String> {
    use p12_keystore::{Certificate, KeyStore, KeyStoreEntry, PrivateKey, PrivateKeyChain};

    let der = |pem: &str, label: &str| {
        ztgw_pki::pem_to_der(pem, label).ok_or_else(|| format!("no {label} in the PEM"))
    };
    let key = Secret::new(der(key_pem.expose(), "PRIVATE KEY")?);
    let cert =
        Certificate::from_der(&der(certificate_pem, "CERTIFICATE")?).map_err(|e| e.to_string())?;
    let ca = Certificate::from_der(&der(ca_pem, "CERTIFICATE")?).map_err(|e| e.to_string())?;
    let key = PrivateKey::from_der(key.expose()).map_err(|e| e.to_string())?;
    let mut store = KeyStore::new();
    let alias = format!("ztgw {name}");
    store.add_entry(
        &alias,
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(
            alias.as_bytes().to_vec(),
            key,
            [cert, ca],
        )),
    );
    store
        .writer(passphrase.expose())
        .encryption_iterations(PKCS12_ITERATIONS)
        .mac_iterations(PKCS12_ITERATIONS)
        .write()
        .map_err(|e| e.to_string())
}
