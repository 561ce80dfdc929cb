//! `ztgw-agent posture`: what this laptop looks like to the gateway, checked against the
//! profile its role requires, so the employee can fix problems before connecting (G6).

use std::path::PathBuf;

use ztgw_api::control::{PostureProfileView, path};
use ztgw_posture::collect::{CollectOptions, collect};
use ztgw_posture::evaluate::{Evaluation, Freshness, evaluate};
use ztgw_posture::profile::Profile;
use ztgw_posture::report::PostureReport;

use crate::client::ControlClient;
use crate::error::AgentError;
use crate::renew::device_client;
use crate::state::AgentState;

/// The profile to check against: the gateway's for this device, or (when the device is
/// not enrolled) the strict defaults.
pub async fn profile_for(state: &AgentState) -> Result<(String, Profile), AgentError> {
    match state.record() {
        Ok(_) => profile_with(&device_client(state)?).await,
        Err(AgentError::NotEnrolled { .. }) => Ok((
            "the default profile (not enrolled)".into(),
            Profile::default(),
        )),
        Err(e) => Err(e),
    }
}

/// The gateway's profile for the device whose certificate `client` presents.
pub async fn profile_with(client: &ControlClient) -> Result<(String, Profile), AgentError> {
    let view: PostureProfileView = client.get(path::POSTURE_PROFILE).await?;
    let profile: Profile = serde_json::from_value(view.profile)
        .map_err(|e| AgentError::Protocol(format!("the posture profile: {e}")))?;
    Ok((
        format!("{} (role {})", view.profile_name, view.role),
        profile,
    ))
}

/// Collects this device's report for `profile` (the nonce is the gateway's, or empty
/// for a preview) from the files under `root`; the system's own tools are asked what is
/// in force only when `root` is this running system (`/`).
pub fn collect_for(profile: &Profile, root: PathBuf, nonce: String) -> PostureReport {
    collect(&options_for(profile, root, nonce))
}

fn options_for(profile: &Profile, root: PathBuf, nonce: String) -> CollectOptions {
    let run_commands = root == std::path::Path::new("/");
    CollectOptions {
        run_commands,
        root,
        nonce,
        now: jiff::Timestamp::now().to_string(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        watch_tools: profile.forbidden_software.clone(),
        markers: profile
            .forbidden_data_markers
            .iter()
            .map(|m| (m.name.clone(), m.path.clone()))
            .collect(),
        path: std::env::var("PATH").unwrap_or_default(),
    }
}

/// Saves the running Windows' or Mac's posture sources into `dir/windows-posture/` or
/// `dir/macos-posture/`, with the profile's administration-data markers found here.
pub fn capture(
    profile: &Profile,
    dir: &std::path::Path,
) -> Result<ztgw_posture::windows::Captures, String> {
    let options = options_for(profile, "/".into(), String::new());
    let done = if cfg!(windows) {
        ztgw_posture::windows::capture(&ztgw_posture::probe::Live, &options, dir)
    } else if cfg!(target_os = "macos") {
        ztgw_posture::macos::capture(&ztgw_posture::probe::Live, &options, dir)
    } else {
        return Err(
            "--capture reads a running Windows or Mac; on Linux, copy the laptop's files and check them with --posture-root".into(),
        );
    };
    done.map_err(|e| format!("{}: {e}", dir.display()))
}

/// The report and its preview evaluation.
pub async fn preview(
    state: &AgentState,
    root: PathBuf,
) -> Result<(String, PostureReport, Evaluation), AgentError> {
    let (name, profile) = profile_for(state).await?;
    let report = collect_for(&profile, root, String::new());
    let evaluation = evaluate(
        &report,
        &profile,
        jiff::Timestamp::now(),
        Freshness::Preview,
    );
    Ok((name, report, evaluation))
}
