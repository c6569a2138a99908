//! The status bar: broker, link, consume rate, duplicates, malformed,
//! delivery failures, recorder, replay lateness, and the latest notice.

use egui::RichText;

use super::model::{Model, RecorderView};
use super::widgets::{elided_label, fmt_clock, fmt_count, OK_GREEN, PLAYHEAD, REC_RED, WARN};
use super::workers::{LinkState, PlayState};

/// How long a notice stays in the status bar.
const NOTICE_S: f64 = 8.0;

/// The status bar.
pub fn status_ui(ui: &mut egui::Ui, model: &Model, now: f64) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 10.0;
        let bus = &model.bus;
        let (dot, color, words) = match &bus.link {
            LinkState::Idle => (
                "○",
                ui.visuals().weak_text_color(),
                "not connected".to_owned(),
            ),
            LinkState::Connecting => ("◌", WARN, "connecting…".to_owned()),
            LinkState::Connected => ("●", OK_GREEN, "connected".to_owned()),
            LinkState::Retrying(e) => ("●", WARN, format!("retrying: {e}")),
            LinkState::Failed(e) => ("●", REC_RED, format!("failed: {e}")),
        };
        let where_ = if bus.brokers.is_empty() {
            "no broker".to_owned()
        } else if bus.embedded {
            format!("embedded broker {}", bus.brokers)
        } else {
            bus.brokers.clone()
        };
        ui.label(RichText::new(dot).monospace().color(color));
        let hover = if bus.embedded {
            format!(
                "Where the live view, recorder and replay connect (Settings, Brokers). The embedded broker {}.",
                crate::kafka::broker::retention_in_words()
            )
        } else {
            "Where the live view, recorder and replay connect (Settings, Brokers)".to_owned()
        };
        ui.label(RichText::new(where_).strong()).on_hover_text(hover);
        if bus.embedded {
            ui.label(format!(
                "keeps {} MiB/partition",
                crate::kafka::broker::RETAINED_BYTES >> 20
            ))
            .on_hover_text(crate::kafka::broker::retention_in_words());
        }
        if bus.demo {
            ui.label(RichText::new("demo engine running").color(PLAYHEAD))
                .on_hover_text(
                    "No broker configured: a simulated synth plays on the embedded broker",
                );
        }
        let mut w = words;
        if w.len() > 60 {
            w.truncate(57);
            w.push('…');
        }
        ui.label(RichText::new(w).color(color));
        ui.separator();
        ui.label(format!("{:.0} msg/s", bus.consume_rate))
            .on_hover_text("Messages consumed per second by the live view");
        let c = &bus.counters;
        ui.label(format!("dup {}", fmt_count(c.duplicates)))
            .on_hover_text("Duplicates dropped");
        let normal = ui.visuals().text_color();
        let bad = |n: u64| if n > 0 { WARN } else { normal };
        ui.label(
            RichText::new(format!("malformed {}", fmt_count(c.malformed))).color(bad(c.malformed)),
        )
        .on_hover_text("Undecodable messages skipped");
        ui.label(
            RichText::new(format!("undelivered {}", fmt_count(c.delivery_failed)))
                .color(bad(c.delivery_failed)),
        )
        .on_hover_text("Published messages the brokers never acknowledged");
        ui.separator();
        match &model.recorder {
            RecorderView::Idle => {
                ui.label("rec: idle");
            }
            RecorderView::Starting => {
                ui.label(RichText::new("rec: starting").color(WARN));
            }
            RecorderView::Recording { stats, .. } => {
                ui.label(
                    RichText::new(format!(
                        "rec • {} · {:.0} ev/s",
                        fmt_clock(stats.elapsed_ms),
                        stats.events_per_s
                    ))
                    .color(REC_RED),
                );
                if stats.gap_messages > 0 {
                    ui.label(
                        RichText::new(format!("gap {}", fmt_count(stats.gap_messages)))
                            .color(WARN),
                    )
                    .on_hover_text(
                        "Messages the broker deleted (retention) before the recorder read them; \
                         the recording resumed at the oldest message still kept",
                    );
                }
            }
            RecorderView::Stopping { .. } => {
                ui.label(RichText::new("rec: finalizing").color(WARN));
            }
        }
        if model.session.is_some() {
            ui.separator();
            let l = &model.playback.lateness;
            let state = match model.playback.state {
                PlayState::Playing => "playing",
                PlayState::Paused => "paused",
                PlayState::Stopped => "stopped",
            };
            ui.label(format!(
                "replay {state} · late p50 {:.1} ms p99 {:.1} ms",
                l.p50_us / 1000.0,
                l.p99_us / 1000.0
            ))
            .on_hover_text(format!(
                "Replay lateness (max {:.1} ms); {} sent, {} skipped while pinned",
                l.max_us / 1000.0,
                fmt_count(model.playback.dispatched),
                fmt_count(model.playback.skipped_pinned)
            ));
        }
        if let Some(n) = model.notices.back().filter(|n| now - n.at < NOTICE_S) {
            ui.separator();
            // long paths are cut in the middle; the whole message on hover
            let w = ui.available_width().max(80.0);
            elided_label(ui, &n.text, w, |t| RichText::new(t).italics())
                .on_hover_text(format!("Latest message: {}", n.text));
        }
    });
}
