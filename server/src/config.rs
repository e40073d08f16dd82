//! `sextant serve --config FILE`: the flags of `sextant serve` from a TOML file.
//!
//! Each key is the name of a flag without its dashes, each value a string, a number, or
//! a list for a flag given more than once:
//!
//! ```toml
//! data = "/var/lib/sextant"
//! http = "0.0.0.0:8086"
//! postgres = "off"
//! query-timeout = "30s"
//! http-connections = 256
//! rules = "/etc/sextant/rules.toml"
//! alert-webhook = ["http://alerts.internal/hook"]
//! ```
//!
//! A flag on the command line wins over the file (flags given more than once add to
//! its lists), and so does the environment variable a flag reads (`SEXTANT_TOKEN`, `SEXTANT_POSTGRES_PASSWORD`): the file is turned into
//! flags placed before the command line's, for clap to read as one.

use std::ffi::OsString;
use std::path::Path;

use crate::{Error, Result};

/// The file `sextant serve --config FILE` (or `--config=FILE`) names, found in the raw
/// command line, before clap checks it.
pub fn path_in(args: &[OsString]) -> Option<std::path::PathBuf> {
    let serve = args.iter().position(|a| a == "serve")?;
    let mut rest = args[serve + 1..].iter();
    while let Some(arg) = rest.next() {
        if arg == "--" {
            return None;
        }
        if arg == "--config" {
            return rest.next().map(std::path::PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(path.into());
        }
    }
    None
}

/// The command line `args` (`sextant serve ...`) with the flags of the TOML file `path`
/// placed right after `serve`, before the command line's own.
pub fn with_file(args: &[OsString], path: &Path, serve: &clap::Command) -> Result<Vec<OsString>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        action: "reading the configuration",
        path: path.to_path_buf(),
        source,
    })?;
    let flags = flags(&text, serve)
        .map_err(|reason| Error::Usage(format!("{}: {reason}", path.display())))?;
    let at = args
        .iter()
        .position(|a| a == "serve")
        .map_or(args.len(), |i| i + 1);
    let mut out = args[..at].to_vec();
    out.extend(flags.into_iter().map(OsString::from));
    out.extend_from_slice(&args[at..]);
    Ok(out)
}

/// The flags a configuration stands for, checked against the flags of `serve`.
fn flags(text: &str, serve: &clap::Command) -> std::result::Result<Vec<String>, String> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
    let mut flags = Vec::new();
    for (key, value) in &table {
        let arg = serve
            .get_arguments()
            .find(|a| a.get_long() == Some(key.as_str()) && key != "config")
            .ok_or_else(|| {
                format!(
                    "`{key}` is not a flag of `sextant serve`; the keys are its flags' names without dashes (see `sextant serve --help`)"
                )
            })?;
        // The environment variable a flag reads wins over the file.
        if arg
            .get_env()
            .is_some_and(|name| std::env::var_os(name).is_some())
        {
            continue;
        }
        let values = match value {
            toml::Value::Array(items) => items.iter().collect(),
            one => vec![one],
        };
        for value in values {
            let text = match value {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::Float(x) => x.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                other => {
                    return Err(format!(
                        "`{key}` is a {}; give a string, a number, or a list of them",
                        other.type_str()
                    ));
                }
            };
            flags.push(format!("--{key}={text}"));
        }
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn serve() -> Command {
        Command::new("serve")
            .arg(Arg::new("http").long("http"))
            .arg(Arg::new("query_timeout").long("query-timeout"))
            .arg(
                Arg::new("alert_webhooks")
                    .long("alert-webhook")
                    .action(ArgAction::Append),
            )
            .arg(Arg::new("config").long("config"))
    }

    #[test]
    fn keys_become_flags() {
        let text = "http = \"0.0.0.0:8086\"\nquery-timeout = \"30s\"\nalert-webhook = [\"http://a\", \"http://b\"]\n";
        assert_eq!(
            flags(text, &serve()).unwrap(),
            [
                "--alert-webhook=http://a",
                "--alert-webhook=http://b",
                "--http=0.0.0.0:8086",
                "--query-timeout=30s"
            ]
        );
    }

    #[test]
    fn unknown_keys_and_tables_are_refused_by_name() {
        let e = flags("htp = \"x\"", &serve()).unwrap_err();
        assert!(e.contains("`htp` is not a flag"), "{e}");
        let e = flags("config = \"x\"", &serve()).unwrap_err();
        assert!(e.contains("`config` is not a flag"), "{e}");
        let e = flags("[http]\nport = 1", &serve()).unwrap_err();
        assert!(e.contains("`http` is a table"), "{e}");
        assert!(flags("http = ", &serve()).is_err());
    }

    #[test]
    fn the_file_is_found_in_the_raw_command_line() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        assert_eq!(
            path_in(&args(&[
                "sextant", "serve", "--http", "off", "--config", "a.toml"
            ])),
            Some("a.toml".into())
        );
        assert_eq!(
            path_in(&args(&["sextant", "serve", "--config=b.toml"])),
            Some("b.toml".into())
        );
        assert_eq!(path_in(&args(&["sextant", "sql", "--config", "c"])), None);
        assert_eq!(path_in(&args(&["sextant", "serve"])), None);
    }

    #[test]
    fn the_file_goes_before_the_command_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sextant.toml");
        std::fs::write(&path, "http = \"off\"\n").unwrap();
        let args: Vec<OsString> = ["sextant", "serve", "--http", "127.0.0.1:1"]
            .map(OsString::from)
            .to_vec();
        let out = with_file(&args, &path, &serve()).unwrap();
        assert_eq!(
            out,
            ["sextant", "serve", "--http=off", "--http", "127.0.0.1:1"].map(OsString::from)
        );
    }
}
