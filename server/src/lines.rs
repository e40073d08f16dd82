//! Where the shell's lines come from: a line editor with history (rustyline) when standard
//! input is a terminal, plain reading otherwise (pipes and files, as in tests and scripts).

use std::io::{BufRead, IsTerminal, Lines, StdinLock};
use std::path::PathBuf;

use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::{Error, Result};

/// What reading a line gave.
#[derive(Debug)]
pub enum Line {
    /// A line, without its end.
    Text(String),
    /// Ctrl-C in the editor: drop the statement being typed.
    Interrupted,
    /// The end of input (Ctrl-D).
    End,
}

/// The shell's source of lines.
pub enum LineSource {
    /// A terminal: line editing, and history kept in the file when there is one.
    Editor(Box<DefaultEditor>, Option<PathBuf>),
    /// Anything else: lines as they come, without prompts.
    Plain(Lines<StdinLock<'static>>),
}

impl std::fmt::Debug for LineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LineSource::Editor(_, history) => f.debug_tuple("Editor").field(history).finish(),
            LineSource::Plain(_) => f.write_str("Plain"),
        }
    }
}

impl LineSource {
    /// The editor when standard input is a terminal (history in `~/.sextant_history`),
    /// plain standard input otherwise or when the editor cannot start.
    pub fn open() -> LineSource {
        if std::io::stdin().is_terminal()
            && let Ok(mut editor) = DefaultEditor::new()
        {
            let history =
                std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".sextant_history"));
            if let Some(path) = &history {
                // A missing or unreadable history starts empty.
                let _ = editor.load_history(path);
            }
            return LineSource::Editor(Box::new(editor), history);
        }
        LineSource::Plain(std::io::stdin().lock().lines())
    }

    /// Whether a person is typing (prompts and hints are shown).
    pub fn is_interactive(&self) -> bool {
        matches!(self, LineSource::Editor(..))
    }

    /// The next line, after showing `prompt` when interactive.
    pub fn read(&mut self, prompt: &str) -> Result<Line> {
        match self {
            LineSource::Editor(editor, _) => match editor.readline(prompt) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    Ok(Line::Text(line))
                }
                Err(ReadlineError::Interrupted) => Ok(Line::Interrupted),
                Err(ReadlineError::Eof) => Ok(Line::End),
                Err(ReadlineError::Io(e)) => Err(Error::io("reading", "the terminal", e)),
                Err(e) => Err(Error::io(
                    "reading",
                    "the terminal",
                    std::io::Error::other(e.to_string()),
                )),
            },
            LineSource::Plain(lines) => match lines.next() {
                None => Ok(Line::End),
                Some(Ok(line)) => Ok(Line::Text(line)),
                Some(Err(e)) => Err(Error::io("reading", "standard input", e)),
            },
        }
    }

    /// Saves the history, if any; a failure to save is not an error worth stopping for.
    pub fn close(self) {
        if let LineSource::Editor(mut editor, Some(path)) = self {
            let _ = editor.save_history(&path);
        }
    }
}
