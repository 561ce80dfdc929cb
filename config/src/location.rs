//! Where in a file a mistake is, and the error that says so.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A 1-based line and column in a file (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The location of byte `offset` in `text`.
    pub fn of(text: &str, offset: usize) -> Self {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        Self { line, column }
    }
}

/// One mistake in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub location: Option<Location>,
    pub message: String,
}

/// Everything wrong with a configuration file, each with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    /// An error with no position in the file (unreadable, not UTF-8, too large).
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        Self {
            file: file.to_owned(),
            diagnostics: vec![Diagnostic {
                location: None,
                message: message.into(),
            }],
        }
    }

    /// An error at a byte span of `text`.
    pub fn at(
        file: &Path,
        text: &str,
        span: Option<Range<usize>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.to_owned(),
            diagnostics: vec![Diagnostic {
                location: span.map(|s| Location::of(text, s.start)),
                message: message.into(),
            }],
        }
    }

    /// A TOML syntax or type error.
    pub fn from_toml(file: &Path, text: &str, err: &toml::de::Error) -> Self {
        Self::at(file, text, err.span(), err.message().trim_end())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match d.location {
                Some(Location { line, column }) => {
                    write!(f, "{file}:{line}:{column}: {}", d.message)?
                }
                None => write!(f, "{file}: {}", d.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads a configuration file: at most `max_len` bytes of UTF-8.
pub fn read_config_file(path: &Path, max_len: u64) -> Result<String, ConfigError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| ConfigError::whole_file(path, format!("cannot read: {e}")))?;
    if meta.len() > max_len {
        return Err(ConfigError::whole_file(
            path,
            format!(
                "the file is {} bytes, more than the {max_len} allowed",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::whole_file(path, format!("cannot read: {e}")))?;
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(e.as_bytes());
        let loc = Location::of(&text, offset);
        ConfigError {
            file: path.to_owned(),
            diagnostics: vec![Diagnostic {
                location: Some(loc),
                message: "the file is not valid UTF-8 here".into(),
            }],
        }
    })
}

/// Where the line `header` (a table's `[name]`) starts in `text`: a line of its own, so
/// that a comment mentioning the table is not taken for it.
pub fn table_start(text: &str, header: &str) -> Option<usize> {
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_end() == header {
            return Some(at);
        }
        at += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_count_lines_and_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(Location::of(text, 0), Location { line: 1, column: 1 });
        assert_eq!(Location::of(text, 6), Location { line: 2, column: 1 });
        // 'é' is two bytes but one column.
        assert_eq!(Location::of(text, 9), Location { line: 2, column: 3 });
        assert_eq!(Location::of(text, 999), Location { line: 3, column: 1 });
    }
}
