//! `sextant sql`: statements from `-c`, `-f` or standard input.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use sextant_query::Database;

use crate::lines::{Line, LineSource};
use crate::output::{self, Format};
use crate::{Error, Result};

/// Runs the statements of `command` or `file`, or reads them from standard input. With
/// `-c` or `-f` the first failing statement ends the run with its error; at a prompt an
/// error is printed and the next statement read.
pub fn run(
    data: &Path,
    command: Option<String>,
    file: Option<PathBuf>,
    format: Format,
) -> Result<ExitCode> {
    if !data.join("MANIFEST").exists() {
        return Err(Error::Usage(format!(
            "{} holds no Sextant database (no MANIFEST); `sextant demo --data {}` makes one",
            data.display(),
            data.display()
        )));
    }
    let db = Database::open(data)?;
    let script = match (command, file) {
        (Some(c), _) => Some(c),
        (None, Some(f)) => {
            Some(std::fs::read_to_string(&f).map_err(|e| Error::io("reading", f, e))?)
        }
        (None, None) => None,
    };
    let stdout = std::io::stdout();
    match script {
        Some(script) => {
            for statement in statements(&script) {
                let batches = db.sql(&statement)?;
                output::print(&batches, format, &mut stdout.lock())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        None => shell(&db, format),
    }
}

/// Reads statements from standard input until its end, printing each answer and its time.
/// On a terminal, lines are edited with history (`~/.sextant_history`) and Ctrl-C drops
/// the statement being typed.
fn shell(db: &Database, format: Format) -> Result<ExitCode> {
    let mut input = LineSource::open();
    let interactive = input.is_interactive();
    if interactive {
        println!("Sextant SQL. End statements with ';'. Tables: SHOW TABLES; leave with Ctrl-D.");
    }
    let mut failed = false;
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() {
            "sextant> "
        } else {
            "     ... "
        };
        let line = match input.read(prompt)? {
            Line::Text(line) => line,
            Line::Interrupted => {
                pending.clear();
                continue;
            }
            Line::End => break,
        };
        pending.push_str(&line);
        pending.push('\n');
        if line.trim_end().ends_with(';') {
            for statement in statements(&pending) {
                let started = Instant::now();
                match db.sql(&statement) {
                    Ok(batches) => {
                        output::print(&batches, format, &mut std::io::stdout().lock())?;
                        if interactive {
                            println!("Time: {:.3} ms", started.elapsed().as_secs_f64() * 1e3);
                        }
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed = true;
                    }
                }
            }
            pending.clear();
        }
    }
    input.close();
    if !pending.trim().is_empty() {
        eprintln!("error: the input ended inside a statement (no closing ';')");
        failed = true;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Splits a script into statements at `;` outside quotes and comments, dropping empty ones.
pub fn statements(script: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = script.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    quote = None;
                }
            }
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    // A comment to the end of the line.
                    for c in chars.by_ref() {
                        if c == '\n' {
                            current.push('\n');
                            break;
                        }
                    }
                }
                ';' => {
                    if !current.trim().is_empty() {
                        out.push(current.trim().to_string());
                    }
                    current.clear();
                }
                _ => current.push(c),
            },
        }
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::statements;

    #[test]
    fn statements_split_at_semicolons_outside_quotes_and_comments() {
        assert_eq!(
            statements("SELECT 1; SELECT 'a;b' -- c;d\n; ;SELECT \"x;\""),
            ["SELECT 1", "SELECT 'a;b'", "SELECT \"x;\""]
        );
        assert!(statements(" ; -- only a comment\n").is_empty());
    }
}
