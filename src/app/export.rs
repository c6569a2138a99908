//! "Export…" in the Sessions view: a save dialog (the format follows the
//! chosen name's extension: `.csv`, `.db`, `.mcap`, `.jsonl`), then the
//! export on a worker thread of its own, its progress and a Cancel button in
//! the window, and its outcome (or the reader's message) afterwards.
//!
//! The worker shares its state with the window through a mutex and asks for
//! a repaint when the state changes; the UI thread only reads it.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egui::RichText;

use super::widgets::fmt_bytes;
use crate::export::{self, Control, ExportOptions, Format, Progress};

/// Where an export job is.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// The save dialog is open.
    Choosing,
    /// Writing `out`.
    Running {
        /// The file being written.
        out: PathBuf,
        /// How far it is.
        progress: Progress,
    },
    /// Finished.
    Done {
        /// The file written.
        out: PathBuf,
        /// What was written, in words.
        summary: String,
    },
    /// Failed; nothing was written.
    Failed(String),
    /// Cancelled; nothing was written.
    Cancelled,
}

/// The export job of the Sessions view (one at a time).
#[derive(Debug, Default)]
pub struct ExportPanel {
    job: Option<Job>,
}

#[derive(Debug)]
struct Job {
    state: Arc<Mutex<JobState>>,
    cancel: Arc<AtomicBool>,
}

/// Repaints at most this often for progress.
const REPAINT_EVERY: Duration = Duration::from_millis(100);

impl ExportPanel {
    /// The job's state, if there is a job.
    pub fn state(&self) -> Option<JobState> {
        let job = self.job.as_ref()?;
        let s = job.state.lock().unwrap_or_else(|p| p.into_inner());
        Some(s.clone())
    }

    /// A job is choosing or writing.
    pub fn is_busy(&self) -> bool {
        matches!(
            self.state(),
            Some(JobState::Choosing | JobState::Running { .. })
        )
    }

    /// Asks the running job to stop (it removes its partial output).
    pub fn cancel(&self) {
        if let Some(job) = &self.job {
            job.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Forgets a finished job.
    pub fn dismiss(&mut self) {
        if !self.is_busy() {
            self.job = None;
        }
    }

    /// Shows the save dialog for `input` and exports to the chosen file.
    pub fn choose_and_export(&mut self, input: &Path, ctx: &egui::Context) {
        let input = input.to_owned();
        let start_dir = input.parent().map(Path::to_owned);
        let stem = input.file_stem().map_or_else(
            || "session".to_owned(),
            |s| s.to_string_lossy().into_owned(),
        );
        self.spawn(JobState::Choosing, ctx, move || {
            let mut dialog = rfd::FileDialog::new()
                .set_title("Export the session")
                .set_file_name(format!("{stem}.csv"))
                .add_filter("CSV", &["csv"])
                .add_filter("SQLite", &["db", "sqlite", "sqlite3"])
                .add_filter("MCAP (Foxglove)", &["mcap"])
                .add_filter("JSON Lines", &["jsonl", "ndjson"]);
            if let Some(dir) = start_dir.filter(|d| d.is_dir()) {
                dialog = dialog.set_directory(dir);
            }
            dialog.save_file().map(|out| (input, out))
        });
    }

    /// Exports `input` to `out` on a worker (no dialog; an existing `out` is
    /// replaced, as a save dialog has already asked about it).
    pub fn start(&mut self, input: PathBuf, out: PathBuf, ctx: &egui::Context) {
        self.spawn(
            JobState::Running {
                out: out.clone(),
                progress: Progress::default(),
            },
            ctx,
            move || Some((input, out)),
        );
    }

    fn spawn(
        &mut self,
        first: JobState,
        ctx: &egui::Context,
        choose: impl FnOnce() -> Option<(PathBuf, PathBuf)> + Send + 'static,
    ) {
        if self.is_busy() {
            return;
        }
        let state = Arc::new(Mutex::new(first));
        let cancel = Arc::new(AtomicBool::new(false));
        self.job = Some(Job {
            state: Arc::clone(&state),
            cancel: Arc::clone(&cancel),
        });
        let ctx = ctx.clone();
        let set = {
            let state = Arc::clone(&state);
            let ctx = ctx.clone();
            move |s: JobState| {
                *state.lock().unwrap_or_else(|p| p.into_inner()) = s;
                ctx.request_repaint();
            }
        };
        let spawned = std::thread::Builder::new()
            .name("export".to_owned())
            .spawn(move || {
                let Some((input, out)) = choose() else {
                    // the dialog was closed: no job
                    set(JobState::Cancelled);
                    return;
                };
                set(run(&input, &out, &cancel, &set));
            });
        if let Err(e) = spawned {
            *state.lock().unwrap_or_else(|p| p.into_inner()) =
                JobState::Failed(format!("cannot start the export: {e}"));
        }
    }
}

/// Runs one export, reporting progress through `set`; returns the outcome.
fn run(input: &Path, out: &Path, cancel: &AtomicBool, set: &impl Fn(JobState)) -> JobState {
    let Some(format) = Format::from_path(out) else {
        return JobState::Failed(format!(
            "{}: name the file .csv, .db, .mcap or .jsonl to choose the format",
            out.display()
        ));
    };
    let opts = ExportOptions {
        force: true,
        ..ExportOptions::default()
    };
    let mut last = Instant::now()
        .checked_sub(REPAINT_EVERY)
        .unwrap_or_else(Instant::now);
    let result = {
        let mut ctl = Control::new(cancel, |progress| {
            if last.elapsed() >= REPAINT_EVERY {
                last = Instant::now();
                set(JobState::Running {
                    out: out.to_owned(),
                    progress,
                });
            }
        });
        export::export(input, out, format, &opts, &mut ctl)
    };
    match result {
        Ok(stats) => JobState::Done {
            out: out.to_owned(),
            summary: format!(
                "{} events and {} snapshots, {} ({format})",
                stats.events,
                stats.snapshots,
                fmt_bytes(stats.output_bytes)
            ),
        },
        Err(export::ExportError::Cancelled(_)) => JobState::Cancelled,
        Err(e) => JobState::Failed(e.to_string()),
    }
}

/// The "Export…" button for the session at `input`.
pub fn export_button(ui: &mut egui::Ui, input: &Path, panel: &mut ExportPanel) {
    let busy = panel.is_busy();
    let name = input
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let clicked = ui
        .add_enabled(!busy, egui::Button::new("Export…").small())
        .on_hover_text("Export to CSV, SQLite, MCAP (Foxglove) or JSON Lines; the file name's extension picks the format")
        .accessible_name(format!("Export {name}"))
        .clicked();
    if clicked {
        panel.choose_and_export(input, ui.ctx());
    }
}

/// The job's progress with Cancel, or its outcome with Dismiss.
pub fn progress_ui(ui: &mut egui::Ui, panel: &mut ExportPanel) {
    let Some(state) = panel.state() else {
        return;
    };
    let file = |p: &Path| {
        p.file_name().map_or_else(
            || p.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    };
    ui.horizontal(|ui| match &state {
        JobState::Choosing => {
            ui.spinner();
            ui.label("Choose where to export…");
        }
        JobState::Running { out, progress } => {
            ui.label(format!("Exporting to {}", file(out)));
            ui.add(
                egui::ProgressBar::new(progress.fraction())
                    .desired_width(260.0)
                    .show_percentage()
                    .text(format!(
                        "{} / {}",
                        fmt_bytes(progress.done),
                        fmt_bytes(progress.total)
                    )),
            );
            if ui
                .button("Cancel")
                .on_hover_text("Stop the export; nothing is written")
                .accessible_name("Cancel export")
                .clicked()
            {
                panel.cancel();
            }
        }
        JobState::Done { out, summary } => {
            ui.label(RichText::new(format!("Exported to {}", file(out))).strong())
                .on_hover_text(out.display().to_string());
            ui.label(summary);
            if ui
                .small_button("Dismiss")
                .accessible_name("Dismiss export")
                .clicked()
            {
                panel.dismiss();
            }
        }
        JobState::Failed(message) => {
            ui.label(
                RichText::new("Export failed:")
                    .strong()
                    .color(ui.visuals().error_fg_color),
            );
            ui.label(message);
            if ui
                .small_button("Dismiss")
                .accessible_name("Dismiss export")
                .clicked()
            {
                panel.dismiss();
            }
        }
        JobState::Cancelled => {
            ui.label("Export cancelled; nothing was written.");
            if ui
                .small_button("Dismiss")
                .accessible_name("Dismiss export")
                .clicked()
            {
                panel.dismiss();
            }
        }
    });
    if panel.is_busy() {
        // progress arrives from the worker's repaint requests; keep a slow
        // tick too in case one is missed
        ui.ctx().request_repaint_after(Duration::from_millis(250));
    }
}
