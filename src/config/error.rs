//! Why a configuration cannot be used: the key and line inside the file
//! (`ConfigError`), and the file itself (`LoadError`).

use std::fmt;
use std::path::{Path, PathBuf};

/// A configuration that cannot be used, with the place that says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// 1-based line in the file, when known.
    pub line: Option<usize>,
    /// What is wrong, starting with the key.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    /// An error about the whole file or a key, with no line to point at.
    pub fn general(message: impl Into<String>) -> ConfigError {
        ConfigError {
            line: None,
            message: message.into(),
        }
    }
}

/// Why a configuration file could not be loaded: the file and what is
/// wrong with it, printed as one line (`FILE: line N: key: what`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, with its line and key where known.
    pub error: ConfigError,
}

impl LoadError {
    /// `error` in the file at `path`.
    pub fn new(path: &Path, error: ConfigError) -> LoadError {
        LoadError {
            path: path.to_path_buf(),
            error,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.error)
    }
}

impl std::error::Error for LoadError {}
