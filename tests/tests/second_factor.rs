//! Guessing the second factor (G8), against a gateway on loopback with a manual clock: a
//! wrong code makes the next attempt wait longer, a few lock the device (journaled, the
//! security unit notified), a locked device's right code is refused with the same answer
//! as a wrong one, `ztgw device unlock` lifts the lock, and a code is never looked at on
//! an otherwise invalid request.
//!
//! The gateway runs without a data plane, so a request whose code passed is refused
//! later, as `sessions_unavailable`: that answer is the sign the code was accepted.

use std::path::Path;

use ztgw_agent::AgentError;
use ztgw_gateway::admin::AdminRequest;
use ztgw_pki::totp::{TotpSecret, step_at};
use ztgw_tests::site::{ALWAYS, Posture, lab_policy, make_root};
use ztgw_tests::{GatewayOptions, TestAgent, TestGateway};

/// What the gateway answered: the reason code and the failed checks' ids.
fn answer(r: Result<ztgw_api::control::SessionGrant, AgentError>) -> (String, Vec<String>) {
    match r {
        Ok(g) => ("granted".into(), vec![g.session]),
        Err(AgentError::Refused { body, .. }) => {
            (body.error, body.checks.into_iter().map(|c| c.id).collect())
        }
        Err(e) => (format!("error: {e}"), vec![]),
    }
}

struct Setup {
    gw: TestGateway,
    agent: TestAgent,
    root: tempfile::TempDir,
    secret: TotpSecret,
}

impl Setup {
    async fn new(notify_to: &Path) -> Self {
        let policy = lab_policy(ALWAYS).replace(
            "[roles.finance]\n",
            "[roles.finance]\nsecond_factor = \"8h\"\n",
        );
        let gw = TestGateway::start(GatewayOptions {
            manual_clock: true,
            policy: Some(policy),
            replace: vec![(
                "notify_command = []".into(),
                format!(
                    "notify_command = [\"sh\", \"-c\", \"cat >> {0}; grep -E '^(NoNewPrivs|CapAmb)' /proc/self/status >> {0}\"]",
                    notify_to.display()
                ),
            )],
            ..Default::default()
        })
        .await;
        let agent = gw.enrol("e8101").await;
        let (secret, _) = gw
            .ctx()
            .registry
            .totp(&agent.device_id())
            .expect("registry")
            .expect("a secret");
        let root = tempfile::tempdir().expect("tempdir");
        make_root(root.path(), Posture::Compliant);
        Self {
            gw,
            agent,
            root,
            secret: TotpSecret::new(secret),
        }
    }

    fn now(&self) -> i64 {
        self.gw.ctx().clock.now().unix_timestamp()
    }

    fn right_code(&self) -> String {
        format!("{:06}", self.secret.code(step_at(self.now())))
    }

    fn wrong_code(&self) -> String {
        let right: u32 = self.right_code().parse().expect("digits");
        format!("{:06}", (right + 500_000) % 1_000_000)
    }

    async fn admit(&self, code: String) -> (String, Vec<String>) {
        answer(
            ztgw_agent::connect::admit(&self.agent.state(), self.root.path(), || Some(code)).await,
        )
    }

    fn advance(&self, secs: i64) {
        self.gw
            .manual_clock
            .as_ref()
            .expect("manual clock")
            .advance(time::Duration::seconds(secs));
    }
}

fn failed() -> (String, Vec<String>) {
    (
        "admission_refused".into(),
        vec!["second-factor-failed".into()],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guesses_wait_longer_then_lock_the_device_until_unlocked() {
    let notified = tempfile::tempdir().expect("tempdir");
    let notify_file = notified.path().join("notified.json");
    let s = Setup::new(&notify_file).await;

    // A wrong code, then the right one at once: refused the same way, unlooked at.
    assert_eq!(s.admit(s.wrong_code()).await, failed());
    assert_eq!(s.admit(s.right_code()).await, failed(), "too soon");
    // After the wait, the right code passes (and clears the count).
    s.advance(1);
    assert_eq!(s.admit(s.right_code()).await.0, "sessions_unavailable");
    let attempts =
        s.gw.ctx()
            .registry
            .factor_attempts(&s.agent.device_id())
            .expect("registry");
    assert_eq!(attempts.failures, 0, "a right code clears the count");

    // Five wrong codes, each after its wait (1, 2, 4, 8 s): the fifth locks.
    s.advance(30);
    for wait in [1, 2, 4, 8, 0] {
        assert_eq!(s.admit(s.wrong_code()).await, failed());
        s.advance(wait);
    }
    s.advance(60);
    assert_eq!(
        s.admit(s.right_code()).await,
        failed(),
        "locked: even the right code"
    );
    let locked = s.gw.journal("second-factor.locked");
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert_eq!(locked[0]["device"], s.agent.device_id().as_str());
    assert_eq!(locked[0]["failures"], 5);
    let told = std::fs::read_to_string(&notify_file).expect("the security unit was told");
    assert!(told.contains("second-factor.locked"), "{told}");
    // The command ran without the gateway's privileges.
    for line in ["NoNewPrivs:\t1", "CapAmb:\t0000000000000000"] {
        assert!(told.contains(line), "{line} not in {told}");
    }

    // The security unit lifts it.
    s.gw.admin(AdminRequest::DeviceUnlock {
        device: s.agent.device_id(),
        note: Some("called the employee".into()),
    })
    .expect("unlock");
    s.advance(30);
    assert_eq!(s.admit(s.right_code()).await.0, "sessions_unavailable");
    assert_eq!(s.gw.journal("second-factor.unlocked").len(), 1);
    s.gw.running.shutdown("test").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_is_not_looked_at_on_an_otherwise_invalid_request() {
    let notified = tempfile::tempdir().expect("tempdir");
    let s = Setup::new(&notified.path().join("n")).await;
    // A forbidden tool: the posture fails; the (wrong) code is neither judged nor counted.
    make_root(s.root.path(), Posture::ForbiddenTool);
    let (code, checks) = s.admit(s.wrong_code()).await;
    assert_eq!(code, "admission_refused");
    assert!(
        !checks.iter().any(|c| c.starts_with("second-factor")),
        "{checks:?}"
    );
    let attempts =
        s.gw.ctx()
            .registry
            .factor_attempts(&s.agent.device_id())
            .expect("registry");
    assert_eq!(attempts.failures, 0, "not counted");
    s.gw.running.shutdown("test").await;
}
