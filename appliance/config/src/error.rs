//! What can be wrong with a configuration, phrased for the administrator who has to fix it.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: not valid TOML: {message}")]
    Syntax { origin: String, message: String },
    #[error("{origin}: {}", Problems(problems))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

/// One key that cannot be used as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// Dotted path, e.g. `tenant.timezone`.
    pub key: String,
    /// What the file says, when it says anything (absent for a missing key).
    pub value: Option<toml::Value>,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.value {
            Some(value) => write!(f, "key `{}` = {}: {}", self.key, value, self.reason),
            None => write!(f, "key `{}`: {}", self.key, self.reason),
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems:", many.len())?;
                for problem in many {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}
