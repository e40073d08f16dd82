//! The alerts crate's error type.

use std::fmt;
use std::path::PathBuf;

/// What can go wrong loading rules, evaluating them or sending notifications.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A rule file could not be read.
    #[error("reading the rule file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A rule file is not valid TOML, or has a field of the wrong type or an unknown one.
    #[error("the rule file is not valid: {0}")]
    Syntax(String),

    /// One or more rules are invalid; every problem found is listed, each naming its
    /// rule and field.
    #[error("{}", RuleErrors(.0))]
    Invalid(Vec<RuleError>),

    /// No rule has this name.
    #[error("there is no rule named {0:?}")]
    NoSuchRule(String),

    /// A time range or time that cannot be used (an end before its start, say).
    #[error("{0}")]
    InvalidInput(String),

    /// The database failed (writing the alerts table, reading back the state).
    #[error(transparent)]
    Query(#[from] sextant_query::Error),

    /// The storage engine failed.
    #[error(transparent)]
    Engine(#[from] sextant_engine::Error),
}

/// One problem with one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    /// The rule's name (or `#N` for the Nth rule of a file when it has no name).
    pub rule: String,
    /// The field at fault: `sql`, `for`, `annotations.summary`, ...
    pub field: String,
    /// What is wrong, as a sentence.
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rule {}, field {}: {}",
            self.rule, self.field, self.message
        )
    }
}

struct RuleErrors<'a>(&'a [RuleError]);

impl fmt::Display for RuleErrors<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems in the rules:", many.len())?;
                for e in many {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// The alerts crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
