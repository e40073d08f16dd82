//! `sextant`: Sextant as a program.
//!
//! - `sextant demo`: writes half an hour of telemetry from every layer into a database and
//!   prints the answers of dashboard and problem-solving queries.
//! - `sextant sql`: runs SQL on a database, from `-c`, `-f` or an interactive prompt.
//! - `sextant import`: writes line protocol and JSON-lines files into a database.

mod demo;
mod error;
mod import;
mod output;
mod sql;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::{Error, Result};

/// The directory `demo` uses when none is given.
const DEFAULT_DATA: &str = "sextant-data";

#[derive(Debug, Parser)]
#[command(
    name = "sextant",
    version,
    about = "Sextant: telemetry in one place, in SQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write half an hour of telemetry from every layer (host metrics, request latencies,
    /// application logs with an error burst after a deploy, sign-ups) and print the
    /// answers of a few dashboard and problem-solving queries.
    Demo {
        /// The database directory (created if missing; the demo's tables are rewritten).
        #[arg(long, default_value = DEFAULT_DATA)]
        data: PathBuf,
    },
    /// Run SQL: the statements of `-c` or `-f`, else read them from standard input, each
    /// ending with `;`.
    Sql {
        /// The database directory.
        #[arg(long)]
        data: PathBuf,
        /// SQL to run (several statements separated by `;`).
        #[arg(short = 'c', long = "command", conflicts_with = "file")]
        command: Option<String>,
        /// A file of SQL statements.
        #[arg(short = 'f', long)]
        file: Option<PathBuf>,
        /// How answers are printed.
        #[arg(long, value_enum, default_value_t = output::Format::Table)]
        format: output::Format,
    },
    /// Write line protocol (`.lp`, `.txt`, `.influx`) and JSON-lines (`.jsonl`, `.json`,
    /// `.ndjson`) files into a database. Bad lines are reported with their number and
    /// reason and the good ones kept; the exit code is 1 if any line was rejected.
    Import {
        /// The database directory.
        #[arg(long)]
        data: PathBuf,
        /// The unit of line protocol timestamps: ns, us, ms or s.
        #[arg(long, default_value = "ns")]
        precision: String,
        /// The files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { data } => demo::run(&data),
        Command::Sql {
            data,
            command,
            file,
            format,
        } => sql::run(&data, command, file, format),
        Command::Import {
            data,
            precision,
            files,
        } => import::run(&data, &precision, &files),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sextant: {e}");
            ExitCode::FAILURE
        }
    }
}
