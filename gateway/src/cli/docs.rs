//! Shell completions and manual pages, generated from the command-line definitions
//! themselves so they never drift from them.

use std::io::Write as _;
use std::path::Path;

use clap::CommandFactory as _;

use super::{Failure, exit};

/// Shells `completions` can write for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script of `cmd` for `shell` to standard output.
pub(super) fn completions(mut cmd: clap::Command, shell: Shell) -> Result<(), Failure> {
    let name = cmd.get_name().to_owned();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    // Into memory first: the generator panics on a failed write (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))
}

/// Writes `NAME.1` and one page per subcommand (`NAME-SUB.1`, …) into `dir`.
pub(super) fn man_pages(cmd: clap::Command, dir: &Path) -> Result<usize, Failure> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", dir.display())))?;
    let mut written = 0;
    write_pages(&cmd, cmd.get_name(), dir, &mut written)?;
    Ok(written)
}

fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut usize,
) -> Result<(), Failure> {
    let page = cmd.clone().name(name.to_owned());
    let mut bytes = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut bytes)
        .map_err(|e| Failure::new(exit::FAILURE, e.to_string()))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, bytes)
        .map_err(|e| Failure::new(exit::FAILURE, format!("{}: {e}", path.display())))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

/// The `ztgw` command's definition, for the generators.
pub(super) fn ztgw() -> clap::Command {
    super::Cli::command()
}

/// Every command and every option of `cmd` (recursively) that has no help text, as
/// `command path: --option` lines: the manual pages would show them bare.
pub fn undocumented(cmd: &clap::Command) -> Vec<String> {
    let mut out = Vec::new();
    collect_undocumented(cmd, cmd.get_name(), &mut out);
    out
}

fn collect_undocumented(cmd: &clap::Command, path: &str, out: &mut Vec<String>) {
    let cmd = {
        let mut c = cmd.clone();
        c.build();
        c
    };
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" || arg.is_hide_set() {
            continue;
        }
        if arg.get_help().is_none() && arg.get_long_help().is_none() {
            out.push(format!("{path}: {id}"));
        }
    }
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let sub_path = format!("{path} {}", sub.get_name());
        if sub.get_about().is_none() && sub.get_long_about().is_none() {
            out.push(format!("{sub_path}: (command)"));
        }
        collect_undocumented(sub, &sub_path, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_and_option_has_help_text() {
        let missing = undocumented(&ztgw());
        assert!(missing.is_empty(), "undocumented:\n{}", missing.join("\n"));
    }

    #[test]
    fn the_top_level_help_has_examples_and_exit_codes() {
        let help = ztgw().render_long_help().to_string();
        assert!(help.contains("Examples:"), "{help}");
        assert!(help.contains("Exit codes:"), "{help}");
    }
}
