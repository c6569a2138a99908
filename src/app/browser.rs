//! The Sessions view: open (file dialog or drag and drop), loading progress
//! with cancel, a failed load's message with recovery, recent files, and the
//! sessions folder listed with date, duration, events and size.

use egui::{RichText, Vec2};

use super::model::{LoadView, Model};
use super::settings::Settings;
use super::widgets::{elided_label, fmt_bytes, fmt_clock, fmt_count, fmt_date, WARN};
use super::workers::{self, Command, Outbox};
use super::UiState;

/// The Sessions view.
pub fn browser_ui(
    ui: &mut egui::Ui,
    model: &Model,
    st: &mut UiState,
    settings: &mut Settings,
    outbox: &Outbox,
    cmds: &mut Vec<Command>,
) {
    ui.horizontal_wrapped(|ui| {
        if ui
            .add(
                egui::Button::new(RichText::new("📂 Open…").size(15.0))
                    .min_size(Vec2::new(90.0, 26.0)),
            )
            .on_hover_text("Open a session file (you can also drop one on the window)")
            .accessible_name("Open session")
            .clicked()
        {
            st.dialog_failed = None;
            if let Err(e) = workers::spawn_dialog(
                workers::Pick::SessionFile,
                Some(settings.sessions_dir.clone()),
                outbox.clone(),
            ) {
                st.dialog_failed = Some(format!("cannot show the file dialog: {e}"));
            }
        }
        if ui
            .button("⟳ Rescan")
            .on_hover_text("List the sessions folder again")
            .accessible_name("Rescan folder")
            .clicked()
        {
            cmds.push(Command::ScanSessions(settings.sessions_dir.clone()));
        }
        let dir = settings.sessions_dir.display().to_string();
        let w = ui.available_width();
        elided_label(ui, &dir, w, |t| RichText::new(t).weak())
            .on_hover_text(format!("Sessions folder (change it in Settings): {dir}"));
    });
    // a path typed in: always there, pointed out when no dialog can be shown
    if let Some(why) = &st.dialog_failed {
        ui.colored_label(WARN, format!("{why}: type the file's path below."));
    }
    ui.horizontal(|ui| {
        let l = ui.label("Path");
        let field = ui
            .add(
                egui::TextEdit::singleline(&mut st.open_path)
                    .hint_text("/path/to/session.msgpack")
                    .desired_width((ui.available_width() - 70.0).max(120.0)),
            )
            .labelled_by(l.id);
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let typed = st.open_path.trim();
        if (ui
            .add_enabled(!typed.is_empty(), egui::Button::new("Open"))
            .accessible_name("Open path")
            .clicked()
            || enter)
            && !typed.is_empty()
        {
            cmds.push(Command::Open {
                path: std::path::PathBuf::from(typed),
                recover: false,
            });
        }
    });

    // loading / failure / loaded
    match &model.load {
        LoadView::Loading {
            path,
            bytes_read,
            total_bytes,
        } => {
            ui.add_space(6.0);
            ui.horizontal(|ui| {
                let frac = if *total_bytes > 0 {
                    *bytes_read as f32 / *total_bytes as f32
                } else {
                    0.0
                };
                ui.label(format!("Loading {}", file_name(path)));
                ui.add(
                    egui::ProgressBar::new(frac)
                        .desired_width(260.0)
                        .show_percentage()
                        .text(format!(
                            "{} / {}",
                            fmt_bytes(*bytes_read),
                            fmt_bytes(*total_bytes)
                        )),
                );
                if ui
                    .button("Cancel")
                    .on_hover_text("Cancel loading")
                    .clicked()
                {
                    cmds.push(Command::CancelLoad);
                }
            });
        }
        LoadView::Failed(f) if !st.failure_dismissed => {
            ui.add_space(6.0);
            egui::Frame::group(ui.style())
                .stroke(egui::Stroke::new(1.5, ui.visuals().error_fg_color))
                .show(ui, |ui| {
                    ui.set_width(ui.available_width());
                    ui.label(
                        RichText::new(format!("Cannot open {}", file_name(&f.path)))
                            .strong()
                            .color(ui.visuals().error_fg_color),
                    );
                    ui.label(&f.message);
                    if let Some(off) = f.offset {
                        ui.label(format!(
                            "Everything before byte {} ({}) is readable.",
                            fmt_count(off),
                            fmt_bytes(off)
                        ));
                    }
                    ui.horizontal(|ui| {
                        if f.recoverable
                            && ui
                                .button("Recover readable part")
                                .on_hover_text("Load every record before the damage")
                                .clicked()
                        {
                            cmds.push(Command::Open {
                                path: f.path.clone(),
                                recover: true,
                            });
                        }
                        if ui.button("Dismiss").clicked() {
                            st.failure_dismissed = true;
                        }
                    });
                });
        }
        _ => {}
    }
    if let Some(s) = &model.session {
        ui.add_space(6.0);
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Loaded:").strong());
            ui.label(file_name(&s.path));
            ui.label(format!(
                "{} · {} events · {} paths · {} snapshots · {}",
                fmt_clock(s.duration_ms()),
                fmt_count(s.events),
                s.param_paths.len(),
                s.snapshots.len(),
                fmt_bytes(s.bytes)
            ));
            if s.report.dropped_bytes > 0 {
                ui.label(
                    RichText::new(format!(
                        "truncated: {} bytes dropped at the end",
                        fmt_count(s.report.dropped_bytes)
                    ))
                    .color(WARN),
                );
            }
            if let Some(c) = &s.report.corrupt {
                ui.label(
                    RichText::new(format!(
                        "recovered: kept what precedes the damage at byte {}",
                        fmt_count(c.offset)
                    ))
                    .color(WARN),
                );
            }
            super::export::export_button(ui, &s.path, &mut st.export);
        });
    }
    super::export::progress_ui(ui, &mut st.export);
    ui.separator();

    egui::ScrollArea::vertical()
        .id_salt("sessions-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            if !settings.recent_files.is_empty() {
                ui.label(RichText::new("Recent").strong());
                let mut open = None;
                for p in &settings.recent_files {
                    ui.horizontal(|ui| {
                        if ui
                            .link(file_name(p))
                            .on_hover_text(p.display().to_string())
                            .clicked()
                        {
                            open = Some(p.clone());
                        }
                        if let Some(dir) = p.parent() {
                            let w = ui.available_width();
                            elided_label(ui, &dir.display().to_string(), w, |t| {
                                RichText::new(t).weak().small()
                            });
                        }
                    });
                }
                if let Some(p) = open {
                    cmds.push(Command::Open {
                        path: p,
                        recover: false,
                    });
                }
                ui.add_space(8.0);
            }
            ui.horizontal(|ui| {
                ui.label(RichText::new("Sessions folder").strong());
                if model.browser.scanning {
                    ui.spinner();
                    ui.label(RichText::new("reading…").weak());
                }
            });
            if model.browser.files.is_empty() && !model.browser.scanning {
                ui.label(
                    RichText::new("No .msgpack files here yet. Press Record to make one.").weak(),
                );
                return;
            }
            egui::Grid::new("sessions-grid")
                .num_columns(6)
                .striped(true)
                .spacing([16.0, 4.0])
                .show(ui, |ui| {
                    for h in ["File", "Date", "Duration", "Events", "Size", ""] {
                        ui.label(RichText::new(h).weak());
                    }
                    ui.end_row();
                    for f in &model.browser.files {
                        let name = file_name(&f.path);
                        ui.label(&name).on_hover_text(f.path.display().to_string());
                        let date = f
                            .first_ts_ms
                            .or(f.modified_ms)
                            .map(fmt_date)
                            .unwrap_or_default();
                        ui.label(date);
                        ui.label(fmt_clock(f.duration_ms));
                        ui.label(fmt_count(f.events));
                        ui.label(fmt_bytes(f.bytes));
                        ui.horizontal(|ui| {
                            if ui
                                .small_button("Open")
                                .accessible_name(format!("Open {name}"))
                                .clicked()
                            {
                                cmds.push(Command::Open {
                                    path: f.path.clone(),
                                    recover: false,
                                });
                            }
                            super::export::export_button(ui, &f.path, &mut st.export);
                            if let Some(p) = &f.problem {
                                ui.label(RichText::new(format!("⚠ {p}")).color(WARN).small());
                            }
                        });
                        ui.end_row();
                    }
                });
        });
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
